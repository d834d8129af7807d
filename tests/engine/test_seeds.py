"""`seeds: [...]` in a run config: every variant once per seed, and a summary over the seeds."""

from __future__ import annotations

import json
import statistics

import pytest
from tiny_runs import tiny_config

from migu.cli import main
from migu.engine.config import ConfigError, load_run_config, run_config_from_dict
from migu.engine.runner import RunResult
from migu.engine.summary import format_over_seeds


def _seeded_config(tmp_path, tiny_models_dir, tiny_benchmark, seeds=(0, 1)):
    cfg = tiny_config(tiny_models_dir["bert"], tiny_benchmark, tmp_path)
    cfg["seeds"] = list(seeds)
    cfg["variants"] = {"FT": {"migu.enabled": False}, "FT+MIGU": {"migu.enabled": True}}
    path = tmp_path / "seeds.yaml"
    path.write_text(json.dumps(cfg))
    return path


def test_each_variant_runs_once_per_seed_with_that_seed(tmp_path, tiny_models_dir, tiny_benchmark, capsys):
    path = _seeded_config(tmp_path, tiny_models_dir, tiny_benchmark)
    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    base = tmp_path / "tiny"
    # Seed by seed, so that the first pair is complete before the second seed starts.
    order = [
        out.index(f"== run {i}/4: {v} seed={s} (")
        for i, (s, v) in enumerate([(0, "FT"), (0, "FT+MIGU"), (1, "FT"), (1, "FT+MIGU")], 1)
    ]
    assert order == sorted(order)
    for seed in (0, 1):
        for variant, migu in (("FT", False), ("FT+MIGU", True)):
            run_dir = base / f"seed={seed}" / variant
            cfg = load_run_config(run_dir / "config.yaml")
            assert (cfg.seed, cfg.seeds, cfg.migu.enabled) == (seed, [], migu)
            assert json.loads((run_dir / "state.json").read_text())["status"] == "finished"
    # Different seeds draw different training samples, so the runs differ.
    m0 = json.loads((base / "seed=0" / "FT" / "matrix.json").read_text())
    m1 = json.loads((base / "seed=1" / "FT" / "matrix.json").read_text())
    assert m0 != m1
    assert "over seeds 0, 1: mean ± std, %" in out and "FT+MIGU - FT, paired by seed (points):" in out
    assert f"next: migu report {base}" in out
    # The report finds the four runs and groups them by variant, one group per variant over the seeds.
    from migu.report.collect import group_runs, load_runs

    runs, left_out = load_runs([base])
    assert left_out == []
    groups = group_runs(runs)
    assert sorted((g.label, len(g.runs)) for g in groups) == [("FT", 2), ("FT+MIGU", 2)]
    assert main(["eval", str(base)]) == 2
    assert "holds the runs of variants seed=0/FT, seed=0/FT+MIGU, seed=1/FT" in capsys.readouterr().err
    # --resume of the parent: every run has finished, nothing to do.
    assert main(["run", "--resume", str(base), "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "has finished; nothing to do" in captured.err and "paired by seed" in captured.out


def test_a_killed_seeded_run_resumes_from_the_parent(tmp_path, tiny_models_dir, tiny_benchmark, capsys):
    path = _seeded_config(tmp_path, tiny_models_dir, tiny_benchmark)
    assert main(["run", str(path), "--no-progress"]) == 0
    base = tmp_path / "tiny"
    finished = (base / "seed=1" / "FT+MIGU" / "metrics.json").read_text()
    # The last run lost: --resume on the parent trains it again and leaves the others as they are.
    import shutil

    shutil.rmtree(base / "seed=1" / "FT+MIGU")
    kept = (base / "seed=0" / "FT" / "metrics.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["run", "--resume", str(base), "--no-progress"]) == 0
    assert (base / "seed=0" / "FT" / "metrics.json").stat().st_mtime_ns == kept
    assert (
        json.loads((base / "seed=1" / "FT+MIGU" / "metrics.json").read_text())["final_average_accuracy"]
        == (json.loads(finished)["final_average_accuracy"])
    )


def test_seeds_config_errors_name_the_fix():
    with pytest.raises(ConfigError, match="repeats a seed"):
        run_config_from_dict({"seeds": [0, 0]})
    with pytest.raises(ConfigError, match="every seed must be >= 0"):
        run_config_from_dict({"seeds": [-1]})
    with pytest.raises(ConfigError, match="a list of integers"):
        run_config_from_dict({"seeds": ["a"]})
    with pytest.raises(ConfigError, match="variants.A sets seed, and seeds=.* drop seed from the variant"):
        run_config_from_dict({"seeds": [0, 1], "variants": {"A": {"seed": 3}}})
    with pytest.raises(ConfigError, match=r"seed=5 with seeds=\[0, 1\].* give seeds=\[5\]"):
        run_config_from_dict({"seeds": [0, 1], "seed": 5})
    assert run_config_from_dict({"seeds": 2}).seeds == [2]


def _result(variant, seed, aa, la, bwt):
    metrics = {
        "final_average_accuracy": aa,
        "learning_accuracy": la,
        "backward_transfer": bwt,
        "metric": "classify",
    }
    return RunResult(
        run_dir=None,
        tasks=["a", "b"],
        matrix=[[0.5, 0.5], [aa, 0.5], [aa, aa]],
        metrics=metrics,
        variant=variant,
        seed=seed,
    )


def test_the_summary_over_seeds_against_a_hand_computation():
    aa_ft, aa_migu = [0.60, 0.64, 0.62], [0.66, 0.65, 0.70]
    results = {}
    for s in range(3):
        results[f"FT seed={s}"] = _result("FT", s, aa_ft[s], 0.7, -0.10)
        results[f"FT+MIGU seed={s}"] = _result("FT+MIGU", s, aa_migu[s], 0.7, -0.05 + 0.01 * s)
    text = format_over_seeds(results)
    mean = statistics.fmean(100 * x for x in aa_ft)
    sd = statistics.stdev(100 * x for x in aa_ft)
    assert f"{mean:.1f} ± {sd:.1f}" in text  # FT's AA over the seeds, in %
    diffs = [100 * (b - a) for a, b in zip(aa_ft, aa_migu, strict=True)]  # +6, +1, +8
    line = next(x for x in text.splitlines() if x.strip().startswith("AA"))
    assert f"{statistics.fmean(diffs):+.1f} ± {statistics.stdev(diffs):.1f}" in line
    assert "per seed: +6.0 +1.0 +8.0" in line and "3 of 3 higher; larger than its spread" in line
    assert "sign-flip p 0.250" in line  # 3 of 3 the same sign: 2 of the 8 sign patterns reach the mean
    # LA is the same for both: a zero difference is within its spread, and every pattern reaches it.
    la_line = next(x for x in text.splitlines() if x.strip().startswith("LA"))
    assert "+0.0 ± 0.0" in la_line and "within its spread" in la_line and "sign-flip p 1.000" in la_line
    # Only the first seed's matrices are printed; the others are pointed to.
    assert (
        text.count("after each task") == 2
        and "the matrices of seeds 1, 2 are in their run directories" in text
    )


def test_a_sweep_runs_the_configs_seeds_as_its_last_grid_key():
    from migu.engine.sweep import plan_sweep

    _, runs = plan_sweep(run_config_from_dict({"seeds": [0, 1]}), {"migu.threshold": [0.5, 0.9]})
    assert [(r.point["migu.threshold"], r.point["seed"], r.config.seed, r.config.seeds) for r in runs] == [
        (0.5, 0, 0, []),
        (0.5, 1, 1, []),
        (0.9, 0, 0, []),
        (0.9, 1, 1, []),
    ]
    with pytest.raises(ConfigError, match=r"the grid sets seed: keep one of the two"):
        plan_sweep(run_config_from_dict({"seeds": [0, 1]}), {"seed": [0, 1]})
