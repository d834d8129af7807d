"""`migu sweep`: grid parsing and expansion, skipping finished runs, going on after a failed one."""

from __future__ import annotations

import json

import pytest
import yaml

from migu.cli import main
from migu.engine.config import ConfigError, RunConfig
from migu.engine.sweep import expand_grid, load_sweep_config, parse_grid, plan_sweep, point_name


def test_parse_and_expand_a_grid_in_the_order_given():
    grid = parse_grid(["migu.threshold=[0.3, 0.7]", "seed=[0,1]", "data.order=2"])
    assert grid == {"migu.threshold": [0.3, 0.7], "seed": [0, 1], "data.order": [2]}
    points = expand_grid(grid)
    assert points[:2] == [
        {"migu.threshold": 0.3, "seed": 0, "data.order": 2},
        {"migu.threshold": 0.3, "seed": 1, "data.order": 2},
    ]
    assert len(points) == 4
    assert point_name(points[0]) == "migu.threshold=0.3+seed=0+data.order=2"
    assert point_name({"data.tasks": ["a", "b"], "model.name": "/m/x"}) == "data.tasks=a-b+model.name=_m_x"


@pytest.mark.parametrize(
    "items, match",
    [
        (["seed"], "not of the form key=value"),
        (["seed=[]"], "no value"),
        (["name=[a,b]"], "the sweep sets it"),
        (["seed=[0"], "not valid YAML"),
        (["seed=[0]", "seed=[1]"], "given twice"),
    ],
)
def test_bad_grid_entries_say_what_is_expected(items, match):
    with pytest.raises(ConfigError, match=match):
        parse_grid(items)


def test_plan_checks_every_point_before_running_and_expands_variants(tmp_path):
    base = RunConfig(name="s", output_dir=str(tmp_path), variants={"FT": {"migu.enabled": False}, "M": {}})
    sweep_dir, runs = plan_sweep(base, {"seed": [0, 1]})
    assert sweep_dir == tmp_path / "s"
    assert [r.label for r in runs] == ["seed=0/FT", "seed=0/M", "seed=1/FT", "seed=1/M"]
    assert runs[2].run_dir == tmp_path / "s" / "seed=1" / "FT"
    assert runs[2].config.seed == 1 and not runs[2].config.migu.enabled and not runs[2].config.variants
    with pytest.raises(ConfigError, match="grid point migu.threshold=1.5"):
        plan_sweep(base, {"migu.threshold": [0.5, 1.5]})
    with pytest.raises(ConfigError, match="grid point train.nope=1"):
        plan_sweep(base, {"train.nope": [1]})


def test_a_config_file_may_carry_its_grid(tmp_path):
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"seed": 3, "sweep": {"migu.threshold": [0.1, 0.2]}}))
    cfg, grid = load_sweep_config(path, ["train.lr=0.5"])
    assert grid == {"migu.threshold": [0.1, 0.2]} and cfg.seed == 3 and cfg.train.lr == 0.5
    assert cfg.name == "grid"
    path.write_text(yaml.safe_dump({"sweep": {"seed": []}}))
    with pytest.raises(ConfigError, match="grid.yaml: grid key 'seed' has no value"):
        load_sweep_config(path)


def test_sweep_skips_finished_runs_and_goes_on_after_a_failed_one(tiny_assets, tmp_path, capsys):
    args = [
        "sweep",
        str(tiny_assets["config"]),
        f"output_dir={tmp_path}",
        "name=s",
        "--grid",
        f"model.name=[/nonexistent/model, {tiny_assets['model']}]",
        "--no-progress",
    ]
    assert main(args) == 1  # the bad point failed, the good one after it still ran
    out = capsys.readouterr().out
    assert "FAILED: ModelNotFound" in out and "1 finished, 0 skipped (finished before), 1 failed" in out
    summary = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert [r["status"] for r in summary["runs"]] == ["failed", "finished"]
    assert "Traceback" in summary["runs"][0]["traceback"]
    good = tmp_path / "s" / point_name({"model.name": str(tiny_assets["model"])})
    assert json.loads((good / "state.json").read_text())["status"] == "finished"
    mtime = (good / "metrics.json").stat().st_mtime_ns
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "finished before, skipped" in out and "0 finished, 1 skipped (finished before), 1 failed" in out
    assert (good / "metrics.json").stat().st_mtime_ns == mtime  # not run again
    assert main(["sweep", str(tiny_assets["config"]), "--no-progress"]) == 2  # no grid: nothing to do
    assert main(["sweep", str(tiny_assets["config"]), "--grid", "seed=[0,1]", "--dry-run"]) == 0
    assert capsys.readouterr().out.strip().endswith("2 run(s) under " + str(tiny_assets["runs"] / "tiny"))


def test_a_second_sweep_with_other_variants_names_its_runs_too(tiny_assets, tmp_path):
    import yaml

    from migu.report.collect import load_runs

    cfg = yaml.safe_load(tiny_assets["config"].read_text())
    cfg["variants"] = {
        "FT": {"migu.enabled": False},
        "FT+MIGU": {"migu.enabled": True},
        "T3": {"migu.threshold": 0.3},
    }
    path = tmp_path / "v.yaml"
    path.write_text(yaml.safe_dump(cfg))
    base = ["sweep", str(path), f"output_dir={tmp_path}", "name=v", "--grid", "seed=[0]", "--no-progress"]
    assert main([*base, "--variants", "FT"]) == 0
    assert main([*base, "--variants", "FT+MIGU,T3"]) == 0  # the same point folder, other variants
    point = tmp_path / "v" / point_name({"seed": 0})
    assert list(yaml.safe_load((point / "config.yaml").read_text())["variants"]) == ["FT", "FT+MIGU", "T3"]
    runs, _ = load_runs([point])
    assert sorted(r.variant for r in runs) == ["FT", "FT+MIGU", "T3"]  # every run is named
