"""How each model family is trained on a task and evaluated, without a task id.

Every family sees the same prompt (the paper's format, :func:`migu.data.task.format_prompt`), which
lists the task's options; no family is told which task an input comes from.

- encoder: one classification head over the union of the label strings of the whole sequence.
  ``label_space="all"`` (the default): the loss and the prediction range over every label of the
  sequence, so a model that forgets can answer with another task's label, as a generative model can
  (class-incremental in effect, no task label anywhere). ``label_space="options"``: the loss and the
  prediction are restricted to the options written in the input (logits of other labels set to
  -inf), which rules that way of forgetting out and is closer to task-incremental learning.
- encoder-decoder: the target is the label text.
- decoder: prompt followed by the label text and EOS; the loss covers the answer tokens only.

Evaluation metrics: ``classify`` (encoders), ``exact_match`` (greedy generation, compared after
lower-casing and stripping punctuation, as the paper) and ``rank`` (the label with the highest
summed log-likelihood of its tokens given the prompt, over every label of the sequence with
``label_space="all"`` or over the input's options with ``"options"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from migu.data.task import Item, Task, format_prompt
from migu.engine.config import LABEL_SPACE_CHOICES
from migu.eval.text import exact_match

__all__ = ["FAMILY_METRICS", "Family", "Item", "make_family"]

#: metrics each family can compute; the first is the default of ``eval.metric: auto``
FAMILY_METRICS = {
    "encoder": ("classify",),
    "encoder-decoder": ("exact_match", "rank"),
    "decoder": ("exact_match", "rank"),
}


# The prompt ends with this; when a prompt is too long the middle (the end of the sentence) is cut,
# not the tail, so that the model always sees the options and "Answer:".
_PROMPT_TAIL = "\nAnswer:"


class Family:
    """Batches and evaluation for one model family.

    Args:
        tokenizer: The model's tokenizer.
        max_length: Longest prompt in tokens (longer ones lose the end of the sentence).
        max_target_length: Longest answer in tokens (generative families).
        labels: Union of the label strings of the whole sequence (encoder head order).
        max_new_tokens: Greedy decoding length for ``exact_match``.
        label_space: One of :data:`~migu.engine.config.LABEL_SPACE_CHOICES`: which labels the encoder head and ``rank`` choose
            from (``exact_match`` generates freely either way).
    """

    name = ""

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_length: int,
        max_target_length: int,
        labels: Sequence[str],
        max_new_tokens: int,
        label_space: str = "all",
    ) -> None:
        if label_space not in LABEL_SPACE_CHOICES:
            raise ValueError(f"label_space={label_space!r} is not one of {LABEL_SPACE_CHOICES}.")
        self.label_space = label_space
        self.tokenizer = tokenizer
        # Prompts are cut by _prompt_ids (keeping the options and "Answer:"), not by the tokenizer;
        # this silences its "longer than the maximum length" warning on the full prompt.
        tokenizer.model_max_length = 1 << 30
        self.max_length = max_length
        self.max_target_length = max_target_length
        self.label_ids = {lab: i for i, lab in enumerate(labels)}
        self.max_new_tokens = max_new_tokens
        self._tail = len(tokenizer(_PROMPT_TAIL)["input_ids"])

    def choices(self, task: Task) -> list[str]:
        """The labels an answer to an input of ``task`` is chosen from (see :data:`~migu.engine.config.LABEL_SPACE_CHOICES`)."""
        return list(task.labels) if self.label_space == "options" else list(self.label_ids)

    # ------------------------------------------------------------------ shared helpers
    def _prompt_ids(self, task: Task, sentence: str) -> list[int]:
        ids = self.tokenizer(format_prompt(task, sentence))["input_ids"]
        if len(ids) > self.max_length:
            head = max(1, self.max_length - self._tail)
            ids = ids[:head] + ids[-(self.max_length - head) :]
        return ids

    def sentence_room(self, task: Task) -> int:
        """Tokens of ``model.max_length`` left for a sentence of ``task`` after its instruction and options.

        The prompt's fixed parts (task type, dataset name, instruction, options, ``Answer:``) are never
        cut, so a ``max_length`` below their length leaves the model no text to read (0 here).
        """
        fixed = len(self.tokenizer(format_prompt(task, ""))["input_ids"])
        return max(0, self.max_length - fixed)

    def _pad(self, rows: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
        width = max(len(r) for r in rows)
        out = torch.full((len(rows), width), value, dtype=torch.long)  # (B, L)
        for i, r in enumerate(rows):
            if left:
                out[i, width - len(r) :] = torch.tensor(r)
            else:
                out[i, : len(r)] = torch.tensor(r)
        return out

    def encode_prompts(self, items: Sequence[Item], left: bool = False) -> dict[str, torch.Tensor]:
        """Token ids and attention mask of the prompts of (task, record) pairs, padded to one length
        (on the left with ``left``, for generation): the model inputs without labels."""
        rows = [self._prompt_ids(task, r["sentence"]) for task, r in items]
        ids = self._pad(rows, self.tokenizer.pad_token_id, left=left)  # (B, L)
        mask = self._pad([[1] * len(r) for r in rows], 0, left=left)  # (B, L)
        return {"input_ids": ids, "attention_mask": mask}

    def _answer_ids(self, label: str) -> list[int]:
        ids = self.tokenizer(" " + label, add_special_tokens=False)["input_ids"]
        eos = self.tokenizer.eos_token_id
        ids = ids[: self.max_target_length - (eos is not None)]
        return ids + ([eos] if eos is not None else [])

    # ------------------------------------------------------------------ interface
    def training_batch(self, items: Sequence[Item]) -> dict[str, torch.Tensor]:
        """Model inputs with ``labels`` for one training micro-batch of (task, record) pairs.

        The records of one batch may come from different tasks (replay); each is prompted with
        its own task's instruction and options.
        """
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training loss of a batch from :meth:`training_batch`."""
        return model(**batch).loss

    @torch.no_grad()
    def predict(self, model: nn.Module, task: Task, records: Sequence[dict], metric: str) -> list[str]:
        """Predicted label strings (``exact_match``: the generated text) for ``records``."""
        raise NotImplementedError

    def evaluate(
        self, model: nn.Module, task: Task, records: Sequence[dict], metric: str, batch_size: int
    ) -> list[dict[str, Any]]:
        """Predictions for ``records``: ``{"label", "prediction", "correct"}`` per record, in order."""
        if metric not in FAMILY_METRICS[self.name]:
            raise ValueError(
                f"eval.metric={metric!r} does not apply to a {self.name} model; allowed: "
                f"{', '.join(FAMILY_METRICS[self.name])} (or 'auto')."
            )
        was_training = model.training
        model.eval()
        out: list[dict[str, Any]] = []
        try:
            for start in range(0, len(records), batch_size):
                chunk = records[start : start + batch_size]
                for r, pred in zip(chunk, self.predict(model, task, chunk, metric), strict=True):
                    correct = exact_match(pred, r["label"]) if metric == "exact_match" else pred == r["label"]
                    out.append({"label": r["label"], "prediction": pred, "correct": bool(correct)})
        finally:
            model.train(was_training)
        return out


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


class EncoderFamily(Family):
    """Classification over the union label head (restricted to the input's options with ``"options"``)."""

    name = "encoder"

    def _option_mask(self, task: Task) -> torch.Tensor:
        if self.label_space == "all":
            return torch.zeros(len(self.label_ids))  # (n_union,): every label of the sequence competes
        mask = torch.full((len(self.label_ids),), float("-inf"))  # (n_union,)
        mask[[self.label_ids[lab] for lab in task.labels]] = 0.0
        return mask

    def training_batch(self, items: Sequence[Item]) -> dict[str, torch.Tensor]:
        batch = self.encode_prompts(items)
        batch["labels"] = torch.tensor([self.label_ids[r["label"]] for _, r in items])  # (B,)
        batch["option_mask"] = torch.stack([self._option_mask(task) for task, _ in items])  # (B, n_union)
        return batch

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "option_mask")}
        logits = model(**inputs).logits.float() + batch["option_mask"]  # (B, n_union)
        return nn.functional.cross_entropy(logits, batch["labels"])

    @torch.no_grad()
    def predict(self, model: nn.Module, task: Task, records: Sequence[dict], metric: str) -> list[str]:
        union = list(self.label_ids)
        batch = _to(self.encode_prompts([(task, r) for r in records]), _device(model))
        logits = model(**batch).logits.float()  # (B, n_union)
        logits = logits + self._option_mask(task).to(logits.device)
        return [union[i] for i in logits.argmax(-1).tolist()]


class _GenerativeFamily(Family):
    """Shared evaluation of the two generative families."""

    def _option_logprobs(self, model: nn.Module, task: Task, records: Sequence[dict]) -> torch.Tensor:
        """Summed log-probability of each choice's tokens given the prompt: ``(B, n_choices)``."""
        choices = self.choices(task)
        expanded = [(task, {"sentence": r["sentence"], "label": lab}) for r in records for lab in choices]
        batch = _to(self.training_batch(expanded), _device(model))
        logits, labels = self._answer_logits(model, batch)  # (B*n_opt, L, V), (B*n_opt, L)
        keep = labels != -100  # (B*n_opt, L): the answer tokens
        # log_softmax over the vocabulary at the answer positions only: the full (B*n_opt, L, V)
        # tensor in float32 is gigabytes for a 50k vocabulary and dominated evaluation time.
        logp = logits[keep].float().log_softmax(-1)  # (N_answer, V)
        tok = logp.gather(-1, labels[keep].unsqueeze(-1)).squeeze(-1)  # (N_answer,)
        rows = keep.nonzero()[:, 0]  # (N_answer,): which sequence each answer token belongs to
        scores = torch.zeros(labels.shape[0], dtype=tok.dtype, device=tok.device).index_add_(0, rows, tok)
        return scores.view(len(records), len(choices))

    def _answer_logits(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and labels aligned (position t's logits predict labels[t]): ``(B, L, V)``, ``(B, L)``."""
        raise NotImplementedError

    def _generate(self, model: nn.Module, task: Task, records: Sequence[dict]) -> list[str]:
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, model: nn.Module, task: Task, records: Sequence[dict], metric: str) -> list[str]:
        if metric == "rank":
            best = self._option_logprobs(model, task, records).argmax(-1)  # (B,)
            choices = self.choices(task)
            return [choices[i] for i in best.tolist()]
        return self._generate(model, task, records)


class EncoderDecoderFamily(_GenerativeFamily):
    """Target = label text (T5)."""

    name = "encoder-decoder"

    def _answer_ids(self, label: str) -> list[int]:
        ids = self.tokenizer(label, add_special_tokens=False)["input_ids"]  # no leading space for T5
        eos = self.tokenizer.eos_token_id
        ids = ids[: self.max_target_length - (eos is not None)]
        return ids + ([eos] if eos is not None else [])

    def training_batch(self, items: Sequence[Item]) -> dict[str, torch.Tensor]:
        batch = self.encode_prompts(items)
        batch["labels"] = self._pad([self._answer_ids(r["label"]) for _, r in items], -100)  # (B, Lt)
        return batch

    def _answer_logits(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return model(**batch).logits, batch["labels"]  # (B, Lt, V): the decoder input is labels shifted right

    def _generate(self, model: nn.Module, task: Task, records: Sequence[dict]) -> list[str]:
        batch = _to(self.encode_prompts([(task, r) for r in records]), _device(model))
        out = model.generate(**batch, max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1)
        return self.tokenizer.batch_decode(out, skip_special_tokens=True)


class DecoderFamily(_GenerativeFamily):
    """Prompt, then the answer and EOS; loss on the answer only (Llama, SmolLM2, GPT-2)."""

    name = "decoder"

    def training_batch(self, items: Sequence[Item]) -> dict[str, torch.Tensor]:
        ids, labels = [], []
        for task, r in items:
            prompt = self._prompt_ids(task, r["sentence"])
            answer = self._answer_ids(r["label"])
            ids.append(prompt + answer)
            labels.append([-100] * len(prompt) + answer)
        input_ids = self._pad(ids, self.tokenizer.pad_token_id)  # (B, L), right padding
        return {
            "input_ids": input_ids,
            "attention_mask": self._pad([[1] * len(r) for r in ids], 0),
            "labels": self._pad(labels, -100),
        }

    def _answer_logits(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        logits = model(**inputs).logits  # (B, L, V): position t predicts token t + 1
        return logits[:, :-1], batch["labels"][:, 1:]  # (B, L-1, V), (B, L-1): views, no copy

    def _generate(self, model: nn.Module, task: Task, records: Sequence[dict]) -> list[str]:
        batch = _to(self.encode_prompts([(task, r) for r in records], left=True), _device(model))
        out = model.generate(
            **batch,
            max_new_tokens=self.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=self.tokenizer.pad_token_id,
            eos_token_id=self.tokenizer.eos_token_id,
        )
        new = out[:, batch["input_ids"].shape[1] :]  # (B, <= max_new_tokens)
        return [t.split("\n")[0] for t in self.tokenizer.batch_decode(new, skip_special_tokens=True)]


_FAMILIES = {f.name: f for f in (EncoderFamily, EncoderDecoderFamily, DecoderFamily)}


def make_family(name: str, tokenizer: Any, **kwargs: Any) -> Family:
    """The :class:`Family` for ``name`` (``"encoder"``, ``"encoder-decoder"`` or ``"decoder"``)."""
    return _FAMILIES[name](tokenizer, **kwargs)
