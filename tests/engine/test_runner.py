"""End-to-end runs of the engine on tiny random models of each family, resume after a kill, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from tiny_runs import run_killed, save_tiny_model, tiny_config

from migu.cli import main
from migu.engine.config import ConfigError, run_config_from_dict
from migu.engine.runner import RunDirExists, resume_run, run, run_variants
from migu.engine.trained import evaluate_run
from migu.eval.text import normalize_answer

FAMILY_METRIC = {"bert": "classify", "t5": "exact_match", "llama": "exact_match"}


@pytest.mark.parametrize("family", ["bert", "t5", "llama"])
def test_run_writes_a_complete_run_directory(family, tiny_models_dir, tiny_benchmark, tmp_path):
    cfg = run_config_from_dict(tiny_config(tiny_models_dir[family], tiny_benchmark, tmp_path))
    result = run(cfg, show_progress=False)
    d = tmp_path / "tiny"
    assert result.run_dir == d
    for name in (
        "config.yaml",
        "environment.json",
        "state.json",
        "matrix.json",
        "matrix.csv",
        "metrics.json",
        "log.txt",
    ):
        assert (d / name).is_file(), name
    assert (d / "checkpoint" / "model.safetensors").is_file()
    assert not (d / "checkpoint.tmp").exists() and not (d / "checkpoint.old").exists()
    matrix = json.loads((d / "matrix.json").read_text())
    assert matrix["tasks"] == ["agnews", "sst2"]
    assert matrix["rows"] == ["before training", "after agnews", "after sst2"]
    assert len(matrix["matrix"]) == 3 and all(len(r) == 2 for r in matrix["matrix"])
    assert matrix["metric"] == FAMILY_METRIC[family]
    assert all(0.0 <= a <= 1.0 for r in matrix["matrix"] for a in r)
    assert (d / "matrix.csv").read_text().splitlines()[0] == "row,agnews,sst2"
    # Every task evaluated before training and after every task: 3 rows x 2 tasks of predictions.
    preds = sorted(p.name for p in (d / "predictions").iterdir())
    assert preds == [f"row{i}_{t}.jsonl" for i in range(3) for t in ("agnews", "sst2")]
    lines = [json.loads(x) for x in (d / "predictions" / "row2_sst2.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and {"i", "sentence", "label", "prediction", "correct"} <= set(lines[0])
    # The accuracy in the matrix is the share of correct predictions in the file.
    assert matrix["matrix"][2][1] == pytest.approx(sum(x["correct"] for x in lines) / len(lines))
    metrics = json.loads((d / "metrics.json").read_text())
    for key in (
        "final_average_accuracy",
        "backward_transfer",
        "forward_transfer",
        "forgetting",
        "learning_accuracy",
    ):
        assert key in metrics
    assert metrics["optimizer_steps"] == 6  # 2 tasks x max_steps_per_task
    # The kinds of answer, counted again from the prediction files: the task's own label, a label of
    # the other task only (the task-label-free way to forget), or none of the sequence's labels.
    labels = {"agnews": {"red", "blue"}, "sst2": {"cat", "dog", "cow"}}
    for row in range(3):
        for col, task in enumerate(("agnews", "sst2")):
            answers = [
                normalize_answer(json.loads(x)["prediction"])
                for x in (d / "predictions" / f"row{row}_{task}.jsonl").read_text().splitlines()
            ]
            other = labels["sst2" if task == "agnews" else "agnews"]
            n_other = sum(a in other for a in answers)
            n_none = sum(a not in other and a not in labels[task] for a in answers)
            assert metrics["answers_other_task_label"][row][col] == n_other / len(answers)
            assert metrics["answers_no_label"][row][col] == n_none / len(answers)
    if family == "bert":  # a classification head can only answer with a label of the sequence
        assert all(v == 0.0 for r in metrics["answers_no_label"] for v in r)
    assert metrics["final_answers_other_task_label"] == pytest.approx(
        sum(metrics["answers_other_task_label"][2]) / 2
    )
    assert 0.45 < metrics["mean_update_fraction"] < 0.55  # T = 0.5
    state = json.loads((d / "state.json").read_text())
    assert state["status"] == "finished" and state["task"] == 2
    env = json.loads((d / "environment.json").read_text())
    assert (
        env["seed"] == 0
        and env["versions"]["torch"] == torch.__version__.split("+")[0]
        or env["versions"]["torch"]
    )
    assert yaml.safe_load((d / "config.yaml").read_text())["model"]["name"] == str(tiny_models_dir[family])


def test_migu_disabled_updates_every_row_and_skip_first_task(tiny_models_dir, tiny_benchmark, tmp_path):
    base = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    ft = run(run_config_from_dict({**base, "name": "ft", "migu": {"enabled": False}}), show_progress=False)
    assert ft.metrics["mean_update_fraction"] == 1.0
    skip = run(
        run_config_from_dict(
            {**base, "name": "skip", "migu": {"enabled": True, "threshold": 0.5, "skip_first_task": True}}
        ),
        show_progress=False,
    )
    # The first task trains unmasked, so only the second task's 3 steps are masked.
    state = json.loads((skip.run_dir / "state.json").read_text())
    assert state["masked_steps"] == 3


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoint" / "model.safetensors"))


def test_resume_after_kill_ends_bit_identical(tmp_path, tiny_benchmark):
    # Dropout on, so that the resumed run must restore the RNG state to match.
    model_dir = save_tiny_model(tmp_path / "bert_dropout", "bert", dropout=0.2)
    cfg = tiny_config(
        model_dir,
        tiny_benchmark,
        tmp_path,
        **{"train.max_steps_per_task": 4, "train.checkpoint_every": 2, "migu.mode": "strict"},
    )
    full = run(run_config_from_dict({**cfg, "name": "full"}), show_progress=False)

    # 7 steps: the kill lands in the middle of the second task, one step after its checkpoint at step 2.
    run_dir = run_killed(cfg, tmp_path, after_steps=7)
    state = json.loads((run_dir / "state.json").read_text())
    assert state["status"] == "running" and state["task"] == 1 and state["step"] == 2
    assert len(state["rows"]) == 2  # before training, after task 1

    resumed = resume_run(run_dir, show_progress=False)
    assert resumed.matrix == full.matrix
    # The first task trained whole in the killed process; the second was resumed mid-way, and the
    # union of its masks before the kill is lost, so its share of rows updated is unknown.
    first, second = resumed.metrics["rows_updated_per_task"]
    assert first == full.metrics["rows_updated_per_task"][0] and second is None
    # The kinds of answer are part of each evaluation's record, saved with it: the resumed run has all.
    for key in ("answers_other_task_label", "answers_no_label"):
        assert resumed.metrics[key] == full.metrics[key]
    w_full, w_resumed = _weights(full.run_dir), _weights(run_dir)
    assert w_full.keys() == w_resumed.keys()
    for name in w_full:
        assert torch.equal(w_full[name], w_resumed[name]), name
    for row in range(3):
        for task in ("agnews", "sst2"):
            name = f"row{row}_{task}.jsonl"
            assert (run_dir / "predictions" / name).read_text() == (
                full.run_dir / "predictions" / name
            ).read_text()


def test_resume_trusts_the_state_saved_with_the_weights(tmp_path, tiny_benchmark):
    # A kill between the checkpoint's rename and the rewrite of RUN_DIR/state.json leaves new weights
    # beside the previous state. Resume must read the state saved inside the checkpoint, or it would
    # train the steps since the previous checkpoint a second time.
    model_dir = save_tiny_model(tmp_path / "bert", "bert")
    cfg = tiny_config(
        model_dir, tiny_benchmark, tmp_path, **{"train.max_steps_per_task": 4, "train.checkpoint_every": 2}
    )
    full = run(run_config_from_dict({**cfg, "name": "full"}), show_progress=False)
    run_dir = run_killed(cfg, tmp_path, after_steps=7)  # latest checkpoint: task 2, step 2
    saved = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    assert (saved["task"], saved["step"]) == (1, 2)
    stale = {**saved, "step": 0}  # RUN_DIR/state.json as it was at the task boundary
    (run_dir / "state.json").write_text(json.dumps(stale))

    resumed = resume_run(run_dir, show_progress=False)
    assert resumed.matrix == full.matrix
    # The first task trained whole in the killed process; the second was resumed mid-way, and the
    # union of its masks before the kill is lost, so its share of rows updated is unknown.
    first, second = resumed.metrics["rows_updated_per_task"]
    assert first == full.metrics["rows_updated_per_task"][0] and second is None
    # The kinds of answer are part of each evaluation's record, saved with it: the resumed run has all.
    for key in ("answers_other_task_label", "answers_no_label"):
        assert resumed.metrics[key] == full.metrics[key]
    w_full, w_resumed = _weights(full.run_dir), _weights(run_dir)
    assert all(torch.equal(w_full[name], w_resumed[name]) for name in w_full)


def test_keep_checkpoint_false_removes_it_once_finished(tiny_models_dir, tiny_benchmark, tmp_path):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"train.keep_checkpoint": False})
    kept = run(
        run_config_from_dict({**cfg, "name": "kept", "train": {**cfg["train"], "keep_checkpoint": True}}),
        show_progress=False,
    )
    dropped = run(run_config_from_dict(cfg), show_progress=False)
    assert (kept.run_dir / "checkpoint").is_dir()
    assert not (dropped.run_dir / "checkpoint").exists()
    assert dropped.matrix == kept.matrix  # the switch changes what is kept, not what is learned
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        evaluate_run(dropped.run_dir, show_progress=False)


def test_existing_run_dir_is_not_overwritten(tiny_models_dir, tiny_benchmark, tmp_path):
    cfg = run_config_from_dict(tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path))
    run(cfg, show_progress=False)
    before = (tmp_path / "tiny" / "matrix.json").read_text()
    with pytest.raises(RunDirExists, match="--resume"):
        run(cfg, show_progress=False)
    assert (tmp_path / "tiny" / "matrix.json").read_text() == before
    # Resuming a finished run returns its results without training again.
    again = resume_run(tmp_path / "tiny", show_progress=False)
    assert again.matrix == json.loads(before)["matrix"]


def test_variants_and_eval(tiny_models_dir, tiny_benchmark, tmp_path, capsys):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    cfg["variants"] = {"FT": {"migu.enabled": False}, "FT+MIGU": {"migu.enabled": True}}
    results = run_variants(run_config_from_dict(cfg), show_progress=False)
    assert list(results) == ["FT", "FT+MIGU"]
    assert results["FT"].metrics["mean_update_fraction"] == 1.0
    assert results["FT+MIGU"].metrics["mean_update_fraction"] < 0.6
    assert (tmp_path / "tiny" / "config.yaml").is_file()
    # evaluate_run on the finished run reproduces the last row of its matrix.
    out = evaluate_run(results["FT+MIGU"].run_dir, show_progress=False)
    assert out["accuracy"] == results["FT+MIGU"].matrix[-1]
    assert (results["FT+MIGU"].run_dir / "eval" / "results.json").is_file()
    # --resume on the parent folder of the variants returns the finished runs.
    assert main(["run", "--resume", str(tmp_path / "tiny"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "FT+MIGU" in printed and "final average accuracy" in printed


def test_cli_errors_name_the_problem(tmp_path, capsys, tiny_benchmark):
    assert main(["run", "train.lr=-1", "--print-config"]) == 2
    assert "train.lr" in capsys.readouterr().err
    assert main(["run", "data.source=kaggle", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "data.source" in err and "packaged" in err and "cl_benchmark" in err
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    missing = tmp_path / "no_model"
    assert main(["run", f"model.name={missing}", f"output_dir={tmp_path}", "--no-progress"]) == 2
    assert str(missing) in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                "data.source=cl_benchmark",
                f"data.data_dir={tmp_path / 'nodata'}",
                "data.tasks=[agnews]",
                f"output_dir={tmp_path}",
                "--no-progress",
            ]
        )
        == 2  # a task-data error: the message names the fix, no traceback hint
    )
    err = capsys.readouterr().err
    assert str(tmp_path / "nodata") in err and "MIGU_DEBUG" not in err
    assert main(["eval", str(tmp_path / "nothing")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_print_config_shows_the_embedded_default(capsys):
    assert main(["run", "--print-config", "train.lr=2e-4"]) == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["name"] == "all-MiniLM-L6-v2"
    assert cfg["train"]["lr"] == 2e-4
    assert set(cfg["variants"]) == {"FT", "FT+MIGU"}


def test_task_epochs_set_the_steps_of_one_task(tiny_models_dir, tiny_benchmark, tmp_path):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path, **{"train.max_steps_per_task": None})
    cfg["train"]["task_epochs"] = {"sst2": 2}
    result = run(run_config_from_dict(cfg), show_progress=False)
    # 24 training records, batch 4: 6 steps for agnews (1 epoch), 12 for sst2 (2 epochs).
    assert result.metrics["optimizer_steps"] == 18
    # A near-miss of a task's name is an error; a task of another sequence is unused (a preset's
    # task_epochs must not block data.tasks=[...] on the command line).
    assert run_config_from_dict({**cfg, "train": {"task_epochs": {"yelp": 2}}}).data.tasks == [
        "agnews",
        "sst2",
    ]
    cfg["train"]["task_epochs"] = {"sst3": 2}
    with pytest.raises(
        ConfigError, match=r"train.task_epochs names sst3 \(did you mean sst2\?\), not in data.tasks"
    ):
        run_config_from_dict(cfg)
    with pytest.raises(ConfigError, match=r"train.task_epochs.sst2=0 is out of range"):
        run_config_from_dict({**cfg, "train": {"task_epochs": {"sst2": 0}}})


@pytest.mark.parametrize("criterion", ["output", "random"])
def test_rows_updated_per_task_are_the_rows_whose_weights_moved(
    criterion, tiny_models_dir, tiny_benchmark, tmp_path
):
    """metrics.json's rows_updated_per_task against the weights: with AdamW, no weight decay and a
    fresh optimizer, a row that no step of the task let update has exactly zero moments and does not
    move at all, and a row updated once moves; so the share of target rows whose weight changed is
    the union of the per-step masks."""
    model_dir = tiny_models_dir["bert"]
    cfg = tiny_config(
        model_dir,
        tiny_benchmark,
        tmp_path,
        **{"data.tasks": ["agnews"], "train.checkpoint_every": 0, "train.max_steps_per_task": 3},
    )
    cfg["migu"] = {"enabled": True, "threshold": 0.7, "criterion": criterion}
    result = run(run_config_from_dict(cfg), show_progress=False)
    before = load_file(str(Path(model_dir) / "model.safetensors"))  # saved without the "bert." prefix
    after = {k.removeprefix("bert."): v for k, v in _weights(result.run_dir).items()}
    moved = total = 0
    for name, w in before.items():
        if name.startswith("encoder.layer.") and name.endswith(".weight") and w.dim() == 2:  # block linears
            moved += int((after[name] != w).any(dim=1).sum())  # (d_out,) rows that changed
            total += w.shape[0]
    assert total > 0
    (updated,) = result.metrics["rows_updated_per_task"]
    assert updated == moved / total
    assert 0.3 <= updated < 1.0  # more than one step's 30%, fewer than all rows in 3 steps

    ft = run(run_config_from_dict({**cfg, "name": "ft", "migu": {"enabled": False}}), show_progress=False)
    assert ft.metrics["rows_updated_per_task"] == [None]
