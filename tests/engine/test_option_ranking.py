"""eval.metric=rank: each option's summed answer log-likelihood, batched, against one-at-a-time scoring.

The reference scores every (record, option) alone, unpadded, from the token ids the family trains on
(prompt + answer for decoders; encoder input + answer labels for T5), with a Python loop over the
answer tokens in float64.
"""

from __future__ import annotations

import pytest
import torch
from tiny_runs import tiny_config
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from migu.engine.config import run_config_from_dict
from migu.engine.families import make_family
from migu.engine.tasks import load_tasks
from migu.models.loading import load_model


def _reference_decoder(model, family, task, sentence: str, label: str) -> float:
    prompt, answer = family._prompt_ids(task, sentence), family._answer_ids(label)
    ids = torch.tensor([prompt + answer])  # (1, L)
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0].double().log_softmax(-1)  # (L, V)
    return sum(logp[len(prompt) - 1 + k, tok].item() for k, tok in enumerate(answer))


def _reference_t5(model, family, task, sentence: str, label: str) -> float:
    prompt, answer = family._prompt_ids(task, sentence), family._answer_ids(label)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([prompt]), labels=torch.tensor([answer])).logits[0]  # (Lt, V)
    logp = logits.double().log_softmax(-1)
    return sum(logp[k, tok].item() for k, tok in enumerate(answer))


@pytest.mark.parametrize(
    ("kind", "auto", "reference"),
    [
        ("llama", AutoModelForCausalLM, _reference_decoder),
        ("t5", AutoModelForSeq2SeqLM, _reference_t5),
    ],
)
def test_batched_option_scores_match_one_at_a_time(
    kind, auto, reference, tiny_models_dir, tiny_benchmark, tmp_path
):
    cfg = run_config_from_dict(tiny_config(tiny_models_dir[kind], tiny_benchmark, tmp_path))
    loaded = load_model(str(tiny_models_dir[kind]))
    model = auto.from_pretrained(tiny_models_dir[kind]).eval()
    tasks = load_tasks(cfg.data, seed=0)
    labels = sorted({lab for t in tasks for lab in t.labels})
    family = make_family(
        loaded.family,
        loaded.tokenizer,
        max_length=96,
        max_target_length=8,
        labels=labels,
        max_new_tokens=4,
        label_space="options",  # ranked among the input's options, as the reference below
    )
    for task in tasks:  # 2 and 3 options; records of different lengths share a padded batch
        records = task.test[:5]
        scores = family._option_logprobs(model, task, records)  # (5, n_options)
        expected = [
            [reference(model, family, task, r["sentence"], lab) for lab in task.labels] for r in records
        ]
        torch.testing.assert_close(
            scores.double(), torch.tensor(expected, dtype=torch.float64), atol=1e-4, rtol=0
        )
        best = [task.labels[max(range(len(e)), key=e.__getitem__)] for e in expected]
        assert family.predict(model, task, records, "rank") == best
