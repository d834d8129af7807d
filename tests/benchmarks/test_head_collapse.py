"""benchmarks/head_collapse.py: the feature and answer statistics it prints, on a tiny BERT with set weights."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from tiny_runs import save_tiny_model, tiny_config, write_tiny_benchmark

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from head_collapse import feature_stats  # noqa: E402

from migu.engine.config import run_config_from_dict  # noqa: E402
from migu.engine.families import make_family  # noqa: E402
from migu.engine.tasks import load_tasks  # noqa: E402
from migu.models.loading import load_model  # noqa: E402


@pytest.fixture
def encoder(tmp_path):
    bert = save_tiny_model(tmp_path / "bert", "bert")
    cfg = run_config_from_dict(tiny_config(bert, write_tiny_benchmark(tmp_path / "bench"), tmp_path / "runs"))
    tasks = load_tasks(cfg.data, seed=0)
    union = sorted({lab for t in tasks for lab in t.labels})  # blue, cat, cow, dog, red
    loaded = load_model(str(bert), num_labels=len(union))
    family = make_family(
        "encoder", loaded.tokenizer, max_length=96, max_target_length=8, labels=union, max_new_tokens=4
    )
    return tasks, union, family, loaded.model.eval()


def test_a_constant_feature_gives_one_answer_and_zero_spread(encoder):
    tasks, union, family, model = encoder
    with torch.no_grad():
        model.bert.pooler.dense.weight.zero_()
        model.bert.pooler.dense.bias.fill_(3.0)  # tanh(3) = 0.9951: every unit saturated, for every input
        model.classifier.weight.zero_()
        # Over all labels "cat" wins for every input; within agnews' options (red, blue) "red" wins.
        model.classifier.bias.copy_(torch.tensor([{"cat": 5.0, "red": 1.0}.get(lab, 0.0) for lab in union]))
    rows = feature_stats(model, family, tasks)
    assert [r["task"] for r in rows] == [t.name for t in tasks]
    for task, row in zip(tasks, rows, strict=True):
        gold = [r["label"] for r in task.test]
        assert row["distinct"] == 1 and row["feature_std"] == 0.0 and row["saturated"] == 1.0
        assert row["logit_std"] == 0.0
        assert row["gap"] == pytest.approx(4.0)  # "cat" (5) over "red" (1), the same for every input
        assert row["acc_all"] == pytest.approx(gold.count("cat") / len(gold))
        own_best = "cat" if "cat" in task.labels else "red" if "red" in task.labels else None
        assert row["acc_options"] == pytest.approx(gold.count(own_best) / len(gold))


def test_statistics_match_an_independent_computation(encoder):
    tasks, union, family, model = encoder
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.bert.pooler.parameters():
            p.normal_(0, 2.0)  # some units saturate, others do not
    rows = feature_stats(model, family, tasks)
    captured = []
    hook = model.bert.pooler.register_forward_hook(lambda m, i, o: captured.append(o))
    try:
        for task, row in zip(tasks, rows, strict=True):
            captured.clear()
            batch = family.encode_prompts([(task, r) for r in task.test])
            with torch.no_grad():
                logits = model(**batch).logits  # (N, n_union)
            pooled = captured[0]  # (N, hidden): tanh output
            gold = torch.tensor([union.index(r["label"]) for r in task.test])
            own = [union.index(lab) for lab in task.labels]
            best_own = torch.tensor(own)[logits[:, own].argmax(-1)]
            top = logits.sort(-1, descending=True).values
            assert row["distinct"] == len(set(logits.argmax(-1).tolist()))
            assert row["saturated"] == pytest.approx((pooled.abs() > 0.99).float().mean().item())
            assert row["feature_std"] == pytest.approx(pooled.std(0).mean().item(), rel=1e-5)
            assert row["logit_std"] == pytest.approx(top[:, 0].std().item(), rel=1e-5)
            assert row["gap"] == pytest.approx((top[:, 0] - top[:, 1]).mean().item(), rel=1e-5)
            assert row["acc_all"] == pytest.approx((logits.argmax(-1) == gold).float().mean().item())
            assert row["acc_options"] == pytest.approx((best_own == gold).float().mean().item())
    finally:
        hook.remove()


def test_mean_pooling_reads_the_masked_mean_of_the_token_states(encoder):
    from head_collapse import use_mean_pooling

    tasks, union, family, model = encoder
    label = tasks[0].labels[0]
    records = [{"sentence": "x", "label": label}, {"sentence": "red blue " * 40, "label": label}]
    batch = family.encode_prompts([(tasks[0], r) for r in records])
    assert (batch["attention_mask"] == 0).any()  # padded prompts of different lengths
    with torch.no_grad():
        states = model.bert(**batch).last_hidden_state  # (B, L, H), before the swap
        mask = batch["attention_mask"]  # (B, L)
        reference = torch.stack(
            [states[i, mask[i].bool()].mean(0) for i in range(len(mask))]
        )  # (B, H): each item's own tokens only
        use_mean_pooling(model)
        logits = model(**batch).logits  # (B, n_union)
    expected = model.classifier(reference)  # dropout is off in eval mode
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
    assert set(model.state_dict()) >= {
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
    }  # checkpoint keys kept
