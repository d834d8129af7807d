"""Phase 2: fine-tune a fresh copy of a model on one end task, then test it (accuracy, macro-F1).

The input is the record's sentence alone (no prompt), classified by a sequence-classification head
over the task's labels, as in the paper's continual pre-training setting (DAS): the end task
measures what the representation learned, not how well a prompt is followed. Fine-tuning is plain
(no MIGU): MIGU is part of how the model was pre-trained, and the table compares those models.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from migu.data.task import Task
from migu.engine.steps import batch_plan, derive_seed, make_optimizer, make_scheduler, per_step, train_step
from migu.pretrain.config import FinetuneConfig
from migu.pretrain.metrics import accuracy, macro_f1
from migu.pretrain.models import load_classifier

__all__ = ["EndTaskResult", "finetune_end_task"]


@dataclass
class EndTaskResult:
    """One fine-tuned model on one end task.

    Attributes:
        accuracy: Share of test examples classified correctly.
        macro_f1: Macro-F1 over the classes of the test set and the predictions.
        n_train: Training examples; ``n_test``: test examples.
        steps: Optimizer steps; ``seconds``: wall time of training and testing.
        train_loss: Mean training loss over the steps.
        predictions: Per test record ``{"sentence", "label", "prediction"}``.
    """

    accuracy: float
    macro_f1: float
    n_train: int
    n_test: int
    steps: int
    seconds: float
    train_loss: float
    predictions: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Everything but the predictions (for results.json)."""
        return {k: v for k, v in self.__dict__.items() if k != "predictions"}


def _encode(tokenizer: Any, sentences: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    enc = tokenizer(
        list(sentences), truncation=True, max_length=max_length, padding=True, return_tensors="pt"
    )
    return dict(enc)  # input_ids, attention_mask (B, T) (+ token_type_ids for BERT)


def finetune_end_task(
    source: str,
    task: Task,
    cfg: FinetuneConfig,
    *,
    base_source: str,
    seed: int,
    accelerator: Any,
    dtype: str = "float32",
    gguf_file: str | None = None,
    show_progress: bool = True,
    desc: str = "",
    on_step: Callable[[], None] | None = None,
) -> EndTaskResult:
    """Fine-tune ``source`` on ``task.train`` and test on ``task.test``.

    Head init, batch order and dropout depend on ``(seed, task.name)`` only, so every row of the
    table is fine-tuned on the same batches from the same starting head.

    Args:
        source: The model to fine-tune (the base model or a pre-trained checkpoint).
        task: The end task.
        cfg: The ``finetune:`` block.
        base_source: The un-pre-trained model (see :func:`migu.pretrain.models.load_classifier`).
        seed: The run's seed.
        accelerator: ``accelerate.Accelerator`` for device and mixed precision.
        dtype: Weight dtype.
        gguf_file: GGUF file of the base model, if it is loaded from one.
        show_progress: A progress bar.
        desc: Label of the progress bar.
        on_step: Called after every optimizer step (the runner's kill switch for tests).

    Returns:
        The :class:`EndTaskResult`.
    """
    from accelerate.utils import set_seed

    t0 = time.perf_counter()
    task_seed = derive_seed(seed, "finetune", task.name)
    set_seed(task_seed)
    model, tok = load_classifier(
        source,
        num_labels=len(task.labels),
        base_source=base_source,
        seed=task_seed,
        dtype=dtype,
        gguf_file=gguf_file,
    )
    label_id = {label: i for i, label in enumerate(task.labels)}
    train = task.train
    micro_batches = batch_plan(
        len(train),
        batch_size=cfg.batch_size,
        accum=cfg.grad_accum_steps,
        epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        epoch_seed=lambda epoch: task_seed + epoch,
    )
    plan = per_step(micro_batches, cfg.grad_accum_steps)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(cfg.scheduler, optimizer, warmup_ratio=cfg.warmup_ratio, steps=len(plan))
    model, optimizer = accelerator.prepare(model, optimizer)
    device = accelerator.device
    losses = []
    model.train()

    def loss_of(indices: list[int]) -> torch.Tensor:
        records = [train[i] for i in indices]
        batch = _encode(tok, [r["sentence"] for r in records], cfg.max_length)
        batch["labels"] = torch.tensor([label_id[r["label"]] for r in records])  # (B,)
        return model(**{k: v.to(device) for k, v in batch.items()}).loss

    for step in tqdm(plan, desc=desc, unit="step", disable=not show_progress, leave=False):
        loss, _ = train_step(
            model,
            step,
            loss_of,
            optimizer,
            scheduler,
            accelerator=accelerator,
            max_grad_norm=cfg.max_grad_norm,
        )
        losses.append(loss)
        if on_step is not None:
            on_step()
    model.eval()
    preds: list[str] = []
    with torch.no_grad():
        for i in range(0, len(task.test), cfg.eval_batch_size):
            records = task.test[i : i + cfg.eval_batch_size]
            batch = _encode(tok, [r["sentence"] for r in records], cfg.max_length)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits  # (B, num_labels)
            preds.extend(task.labels[j] for j in logits.argmax(-1).tolist())
    gold = [r["label"] for r in task.test]
    result = EndTaskResult(
        accuracy=accuracy(gold, preds),
        macro_f1=macro_f1(gold, preds),
        n_train=len(train),
        n_test=len(gold),
        steps=len(plan),
        seconds=time.perf_counter() - t0,
        train_loss=sum(losses) / len(losses),
        predictions=[
            {"sentence": r["sentence"], "label": r["label"], "prediction": p}
            for r, p in zip(task.test, preds, strict=True)
        ],
    )
    accelerator.free_memory()  # drop accelerate's references to this model and optimizer
    return result
