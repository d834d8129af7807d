"""eval.general: multiple-choice probes scored by the engine before training and after every task.

The scores the engine writes are checked against an independent reference (tests/reference_mc.py,
one pair at a time, no batching) computed on the model the engine evaluated at that moment: the
saved random model before training, the final checkpoint's weights at the end.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from reference_mc import reference_loglikelihood
from safetensors.torch import load_file
from tiny_runs import run_killed, tiny_config, write_tiny_benchmark

from migu.data.multiple_choice import load_copa, load_multiple_choice
from migu.engine.config import ConfigError, load_run_config, run_config_from_dict
from migu.engine.runner import resume_run, run
from migu.engine.trained import evaluate_run
from migu.eval.general import check_general_entry, general_metrics, probe_names

COPA = [
    ("cause", "the dog ran.", "the cat sat.", "the red dog barked.", "B"),
    ("effect", "the cat sat.", "the dog ran.", "the blue cat slept.", "A"),
    ("effect", "the task was good.", "the answer was bad.", "the option was green.", "B"),
]
ARC = [
    {
        "id": "q1",
        "question": {
            "stem": "which is red?",
            "choices": [
                {"text": "the cat", "label": "A"},
                {"text": "the red dog", "label": "B"},
                {"text": "blue", "label": "C"},
            ],
        },
        "answerKey": "B",
    },
    {
        "id": "q2",
        "question": {
            "stem": "which is good?",
            "choices": [{"text": "good", "label": "A"}, {"text": "bad", "label": "B"}],
        },
        "answerKey": "A",
    },
]


@pytest.fixture()
def probe_data(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny CL_Benchmark folder with a COPA split, and an ARC file (AllenAI jsonl layout)."""
    bench = write_tiny_benchmark(tmp_path / "bench")
    (bench / "copa").mkdir()
    records = [
        {
            "sentence": f'Which sentence is the {kind} of "{premise}"? Choose one between A and B.\nA: {a}\nB: {b}',
            "label": label,
        }
        for kind, premise, a, b, label in COPA
    ]
    (bench / "copa" / "test.json").write_text(json.dumps(records))
    arc = tmp_path / "arc_test.jsonl"
    arc.write_text("".join(json.dumps(r) + "\n" for r in ARC))
    return bench, arc


def _reference_scores(model_dir: Path, weights: dict[str, torch.Tensor] | None, items) -> dict[str, float]:
    """acc / acc_norm of one model state, from the one-pair-at-a-time reference."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from migu.eval.multiple_choice import choice_length

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    if weights is not None:
        model.load_state_dict(weights, strict=False)
    tok = AutoTokenizer.from_pretrained(model_dir)
    acc = acc_norm = 0
    for item in items:
        lls = [reference_loglikelihood(model, tok, c, x) for c, x in item.requests()]
        normed = [ll / choice_length(item, j) for j, ll in enumerate(lls)]
        acc += max(range(len(lls)), key=lambda j: (lls[j], -j)) == item.answer
        acc_norm += max(range(len(lls)), key=lambda j: (normed[j], -j)) == item.answer
    return {"acc": acc / len(items), "acc_norm": acc_norm / len(items)}


def test_probes_are_scored_before_training_and_after_each_task(tiny_models_dir, probe_data, tmp_path):
    bench, arc = probe_data
    model_dir = tiny_models_dir["llama"]
    cfg = run_config_from_dict(
        tiny_config(
            model_dir,
            bench,
            tmp_path,
            **{"train.lr": 5e-2, "eval.general": {"copa": {}, "arc": {"path": str(arc), "limit": 2}}},
        )
    )
    result = run(cfg, show_progress=False)
    d = result.run_dir
    general = json.loads((d / "general.json").read_text())
    assert general["probes"] == ["copa", "arc"]
    assert [r["row"] for r in general["rows"]] == ["before training", "after agnews", "after sst2"]
    items = {"copa": load_copa(bench), "arc": load_multiple_choice(arc)}
    # Row 0 is the saved random model, the last row the trained weights of the final checkpoint.
    final = load_file(d / "checkpoint" / "model.safetensors")
    for name, probe_items in items.items():
        first, last = general["rows"][0]["results"][name], general["rows"][-1]["results"][name]
        assert first["n"] == last["n"] == len(probe_items)
        before = _reference_scores(model_dir, None, probe_items)
        after = _reference_scores(model_dir, final, probe_items)
        assert (first["acc"], first["acc_norm"]) == (before["acc"], before["acc_norm"])
        assert (last["acc"], last["acc_norm"]) == (after["acc"], after["acc_norm"])
        preds = [
            json.loads(x) for x in (d / "predictions" / f"row2_general_{name}.jsonl").read_text().splitlines()
        ]
        assert [p["id"] for p in preds] == [i.id for i in probe_items]
        assert last["acc"] == sum(p["pred"] == p["answer"] for p in preds) / len(preds)
    metrics = json.loads((d / "metrics.json").read_text())
    for name in items:
        first, last = general["rows"][0]["results"][name], general["rows"][-1]["results"][name]
        assert metrics[f"general/{name}/acc_before"] == first["acc"]
        assert metrics[f"general/{name}/acc"] == last["acc"]
        assert metrics[f"general/{name}/forgetting"] == pytest.approx(first["acc"] - last["acc"])
    # The trained weights differ from the random ones, so the final row scored another model.
    start = load_file(model_dir / "model.safetensors")
    assert any(not torch.equal(start[k], final[k]) for k in start if k in final)

    # `migu eval` scores the probes on the latest checkpoint too.
    evaluated = evaluate_run(d, show_progress=False)
    assert evaluated["general"]["arc"]["acc"] == general["rows"][-1]["results"]["arc"]["acc"]


def test_resume_keeps_the_probe_rows(tiny_models_dir, probe_data, tmp_path):
    bench, arc = probe_data
    raw = tiny_config(tiny_models_dir["llama"], bench, tmp_path, **{"eval.general": {"copa": {}}})
    full = run(run_config_from_dict(raw), show_progress=False)
    killed = run_killed(raw, tmp_path, after_steps=4)  # inside the second task
    assert len(json.loads((killed / "state.json").read_text())["general"]) == 2
    resumed = resume_run(killed, show_progress=False)
    a = json.loads((full.run_dir / "general.json").read_text())["rows"]
    b = json.loads((resumed.run_dir / "general.json").read_text())["rows"]
    assert a == b and len(b) == 3


def test_probes_need_a_decoder_and_fail_before_training(tiny_models_dir, probe_data, tmp_path):
    bench, _ = probe_data
    cfg = run_config_from_dict(
        tiny_config(tiny_models_dir["bert"], bench, tmp_path, **{"eval.general": {"copa": {}}})
    )
    with pytest.raises(ConfigError, match="eval.general .* causal LM.*encoder model"):
        run(cfg, show_progress=False)
    assert not (tmp_path / "tiny" / "checkpoint").exists()


def test_without_evaluation_before_training_there_is_no_forgetting_figure(
    tiny_models_dir, probe_data, tmp_path
):
    bench, _ = probe_data
    overrides = {"eval.general": {"copa": {}}, "eval.before_training": False, "data.tasks": ["agnews"]}
    cfg = run_config_from_dict(tiny_config(tiny_models_dir["llama"], bench, tmp_path, **overrides))
    run(cfg, show_progress=False)
    general = json.loads((tmp_path / "tiny" / "general.json").read_text())
    assert general["rows"][0] == {"row": "before training", "results": None}
    metrics = json.loads((tmp_path / "tiny" / "metrics.json").read_text())
    assert metrics["general/copa/forgetting"] is None and metrics["general/copa/acc_before"] is None
    assert 0.0 <= metrics["general/copa/acc"] <= 1.0


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"pth": "x.jsonl"}, r"eval.general.arc has unknown keys pth; allowed: path, format, limit, split"),
        ({}, r"eval.general.arc needs a `path`"),
        (
            {"path": "x.jsonl", "format": "mmlu"},
            r"eval.general.arc.format='mmlu' is not one of: auto, hellaswag",
        ),
        ({"path": "x.jsonl", "limit": 0}, r"eval.general.arc.limit=0: expected null or an integer >= 1"),
        ({"path": "x.jsonl", "split": "train"}, r"split applies to the built-in probes only"),
        (
            {"path": "x.jsonl", "split": "dev"},
            r"eval.general.arc.split='dev' is not one of: train, test, all",
        ),
    ],
)
def test_bad_probe_entries_name_the_key(entry, message):
    with pytest.raises(ConfigError, match=message):
        run_config_from_dict({"eval": {"general": {"arc": entry}}})


def test_probe_entries_from_yaml_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("eval:\n  general:\n    copa: {limit: 50}\n")
    cfg = load_run_config(path, ["eval.general.arc={path: a.jsonl, format: arc}"])
    assert cfg.eval.general == {
        "copa": {"format": "auto", "limit": 50, "split": "test"},
        "arc": {"path": "a.jsonl", "format": "arc", "split": "test"},
    }
    assert run_config_from_dict(cfg.to_dict()) == cfg  # checked entries round-trip
    assert check_general_entry("copa", None) == {
        "path": None,
        "format": "auto",
        "limit": None,
        "split": "test",
    }


def test_general_metrics_by_hand():
    rows = [
        {"a": {"acc": 0.6, "acc_norm": 0.5, "n": 10}},
        {"a": {"acc": 0.5, "acc_norm": 0.5, "n": 10}},
        {"a": {"acc": 0.4, "acc_norm": 0.3, "n": 10}},
    ]
    m = general_metrics(rows, ["a"])
    assert m["general/a/acc"] == 0.4 and m["general/a/acc_norm"] == 0.3 and m["general/a/acc_before"] == 0.6
    assert math.isclose(m["general/a/forgetting"], 0.2)
    assert general_metrics(rows[:1], ["a"])["general/a/forgetting"] is None  # nothing trained yet
    assert general_metrics([], ["a"]) == {}


def test_probe_names_reads_back_the_probes_general_metrics_wrote():
    rows = [{p: {"acc": 0.5, "acc_norm": 0.5, "n": 4} for p in ("copa", "boolq")}] * 2
    metrics = {"aa": 50.0, "general/x": 1.0, "general//acc": 0.1, **general_metrics(rows, ["copa", "boolq"])}
    assert probe_names(metrics) == ["boolq", "copa"]  # sorted; "general/x" and an empty name are not probes
    assert probe_names({"aa": 50.0, "bwt": -1.0}) == []


def test_dotted_overrides_walk_into_mapping_fields():
    cfg = load_run_config(None, ["eval.general.copa.limit=20", "train.task_epochs.rotten_tomatoes=2"])
    assert cfg.eval.general["copa"]["limit"] == 20
    assert cfg.train.task_epochs == {"rotten_tomatoes": 2.0}
    cfg = cfg.with_overrides({"eval.general.copa.limit": 30})  # merged into the existing entry
    assert cfg.eval.general["copa"] == {"format": "auto", "limit": 30, "split": "test"}
    with pytest.raises(ConfigError, match="eval.general.copa has unknown keys lmit"):
        load_run_config(None, ["eval.general.copa.lmit=20"])


def test_comparison_table_shows_the_probes(tmp_path):
    from migu.engine.runner import RunResult
    from migu.engine.summary import format_comparison

    metrics = {"general/copa/acc_before": 0.62, "general/copa/acc": 0.55, "general/copa/forgetting": 0.07}
    text = format_comparison({"LoRA": RunResult(tmp_path, ["a"], [[0.1], [0.9]], metrics)})
    rows = {line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1] for line in text.splitlines()[6:-1]}
    assert rows["copa: acc before training"] == "0.620"
    assert rows["copa: acc at the end"] == "0.550"
    assert rows["copa: forgetting"] == "0.070"
