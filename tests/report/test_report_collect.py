"""Finding, reading and grouping run directories (hand-written runs, no training)."""

from __future__ import annotations

import math

import pytest
import yaml
from fake_runs import write_fake_run

from migu.report.collect import NotARunDir, find_run_dirs, group_runs, load_runs, method_label, read_run

MATRIX = [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]]


def _cfg(seed=0, migu=False, threshold=0.7, **extra):
    cfg = {"seed": seed, "name": "x", "output_dir": "runs", "migu": {"enabled": migu, "threshold": threshold}}
    cfg.update(extra)
    return cfg


def test_method_label_reads_method_as_mapping_string_or_absent():
    assert method_label({}) == "FT"
    assert method_label({"migu": {"enabled": True}}) == "FT+MIGU"
    assert method_label({"method": "lora", "migu": {"enabled": True}}) == "LoRA+MIGU"
    assert method_label({"method": {"name": "lora", "replay_fraction": 0.02}}) == "LoRAReplay"
    assert method_label({"method": {"name": "inclora"}, "migu": {"enabled": False}}) == "IncLoRA"
    assert method_label({"method": {"name": "my_method"}}) == "my_method"


def test_a_folder_expands_to_the_run_dirs_below_it_and_a_wrong_path_says_what_was_expected(tmp_path):
    a = write_fake_run(tmp_path / "sweep" / "p1" / "FT", _cfg(), MATRIX)
    b = write_fake_run(tmp_path / "sweep" / "p2", _cfg(seed=1), MATRIX)
    (a / "checkpoint").mkdir()  # a run's own subfolders are not searched
    assert find_run_dirs([tmp_path / "sweep"]) == [a, b]
    assert find_run_dirs([a, tmp_path / "sweep"]) == [a, b]  # no duplicates
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotARunDir, match=r"is not a run directory \(no state.json\).*migu run"):
        find_run_dirs([tmp_path / "empty"])
    with pytest.raises(NotARunDir, match="no such folder"):
        find_run_dirs([tmp_path / "missing"])


def test_read_run_turns_null_into_nan_and_finds_its_variant(tmp_path):
    parent = tmp_path / "default"
    parent.mkdir()
    (parent / "config.yaml").write_text(
        yaml.safe_dump({"variants": {"FT": {"migu.enabled": False}, "FT+MIGU": {"migu.enabled": True}}})
    )
    run = read_run(write_fake_run(parent / "FT+MIGU", _cfg(migu=True), [[None, 0.5], [0.5, 0.5], [0.5, 0.5]]))
    assert math.isnan(run.matrix[0][0]) and run.matrix[0][1] == 0.5
    assert run.variant == "FT+MIGU" and run.variant_overrides == {"migu.enabled": True}
    assert run.threshold == 0.7 and run.finished and not run.has_checkpoint
    (parent / "FT+MIGU" / "matrix.json").unlink()
    with pytest.raises(NotARunDir, match="matrix.json missing"):
        read_run(parent / "FT+MIGU")


def test_runs_differing_only_in_seed_share_a_group_labelled_by_method_and_varying_keys(tmp_path):
    for seed in (0, 1):
        write_fake_run(tmp_path / f"ft{seed}", _cfg(seed=seed, threshold=0.5), MATRIX)
        for t in (0.3, 0.7):
            write_fake_run(tmp_path / f"migu{seed}_{t}", _cfg(seed=seed, migu=True, threshold=t), MATRIX)
    write_fake_run(tmp_path / "lora", _cfg(migu=True, threshold=0.3, method={"name": "lora"}), MATRIX)
    write_fake_run(tmp_path / "running", _cfg(seed=5), MATRIX[:2], status="running")
    runs, left_out = load_runs([tmp_path])
    assert [(p.name, "not finished" in why) for p, why in left_out] == [("running", True)]
    groups = group_runs(runs)
    labels = {g.label: sorted(g.seeds) for g in groups}
    # FT's own threshold (0.5) does nothing without MIGU: it neither splits nor labels the FT runs.
    assert labels == {"FT": [0, 1], "FT+MIGU T=0.3": [0, 1], "FT+MIGU T=0.7": [0, 1], "LoRA+MIGU T=0.3": [0]}
    g = next(g for g in groups if g.label == "FT+MIGU T=0.3")
    assert g.threshold == 0.3 and g.metric_values("final_average_accuracy") == [0.5, 0.5]
    assert g.mean_matrix() == MATRIX


def test_other_varying_keys_appear_in_the_label_and_a_variant_name_is_the_method(tmp_path):
    parent = tmp_path / "p"
    parent.mkdir()
    (parent / "config.yaml").write_text(yaml.safe_dump({"variants": {"strict": {"migu.mode": "strict"}}}))
    write_fake_run(parent / "strict", _cfg(migu=True, train={"lr": 0.1}), MATRIX)
    write_fake_run(tmp_path / "b", _cfg(migu=True, train={"lr": 0.2}), MATRIX)
    labels = sorted(g.label for g in group_runs(load_runs([tmp_path])[0]))
    assert labels == ["FT+MIGU lr=0.2", "strict lr=0.1"]


def test_a_failed_run_without_state_is_listed_as_left_out(tmp_path):
    write_fake_run(tmp_path / "ok", _cfg(), MATRIX)
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "log.txt").write_text("")
    runs, left_out = load_runs([tmp_path])
    assert [r.run_dir.name for r in runs] == ["ok"]
    assert [p.name for p, _ in left_out] == ["failed"] and "before training started" in left_out[0][1]
    with pytest.raises(NotARunDir, match="no state.json: the run failed"):
        load_runs([tmp_path / "failed"])
    write_fake_run(tmp_path / "only_running", _cfg(), MATRIX[:2], status="running")
    with pytest.raises(NotARunDir, match="No finished run.*not finished"):
        load_runs([tmp_path / "only_running"])


def test_chance_levels_come_from_the_run_and_are_drawn(tmp_path):
    import json

    from migu.report.plots import per_task_figure

    run_dir = write_fake_run(tmp_path / "r", {"seed": 0}, [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]])
    assert read_run(run_dir).chance == {}  # a run from before the label counts: no chance drawn
    test_sets = {"a": {"n": 10, "sha256": "x", "labels": 4}, "b": {"n": 10, "sha256": "y", "labels": 2}}
    (run_dir / "environment.json").write_text(json.dumps({"test_sets": test_sets}))
    record = read_run(run_dir)
    assert record.chance == {"a": 0.25, "b": 0.5}

    fig = per_task_figure(record.tasks, {"FT": [record.matrix]}, "t", record.chance)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    for ax, level in zip(panels, (25.0, 50.0), strict=True):
        flat = [line for line in ax.get_lines() if line.get_label().startswith("chance")]
        assert len(flat) == 1 and list(flat[0].get_ydata()) == [level, level]
