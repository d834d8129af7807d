"""benchmarks/results_doc.py: the statistics it prints, and docs/results.md matching results/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from results_doc import sign_flip_p  # noqa: E402


def test_sign_flip_p_on_hand_computed_cases():
    # All of n differences positive: only "all +" and "all -" reach |mean| -> 2 / 2^n.
    assert sign_flip_p([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    assert sign_flip_p([0.5] * 9) == pytest.approx(2 / 512)
    # [3, -1]: patterns (+,+) 1, (+,-) 2, (-,+) -2, (-,-) -1 -> |mean| >= 1 for all four.
    assert sign_flip_p([3.0, -1.0]) == pytest.approx(1.0)
    # [4, 1, 1]: |mean| of the 8 patterns: 2, 4/3, 4/3, 2/3 and mirrored -> 2 of 8 reach 2.
    assert sign_flip_p([4.0, 1.0, 1.0]) == pytest.approx(2 / 8)


def test_results_doc_matches_the_raw_results():
    out = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "results_doc.py"), "--check"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr + out.stdout


def test_tables_use_only_points_where_every_variant_finished(tmp_path):
    import yaml

    sys.path.insert(0, str(ROOT / "tests" / "report"))
    from fake_runs import write_fake_run
    from results_doc import complete_pairs

    from migu.report.collect import load_runs

    variants = {"FT": {"migu.enabled": False}, "FT+MIGU": {"migu.enabled": True}}
    for seed, names in ((0, ("FT", "FT+MIGU")), (1, ("FT",))):  # seed 1: FT+MIGU not finished yet
        point = tmp_path / f"seed={seed}"
        point.mkdir()
        (point / "config.yaml").write_text(yaml.safe_dump({"variants": variants}))
        for name in names:
            cfg = {"seed": seed, "data": {"order": 1}, "migu": {"enabled": name == "FT+MIGU"}}
            write_fake_run(point / name, cfg, [[0.1, 0.2], [0.9, 0.3], [0.6, 0.8]])
    runs, _ = load_runs([tmp_path])
    kept = complete_pairs(runs)
    assert sorted((r.variant, r.seed) for r in kept) == [("FT", 0), ("FT+MIGU", 0)]
