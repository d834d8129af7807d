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
