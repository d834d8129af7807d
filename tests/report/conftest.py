"""Tiny runs for the report tests: real sweeps over ``tiny_assets`` (tests/conftest.py), a few seconds."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_sweeps(tiny_assets) -> dict[str, Path]:
    """FT+MIGU at two thresholds x two seeds, and FT at two seeds, through `migu sweep`."""
    from migu.cli import main

    cfg = str(tiny_assets["config"])
    args = ["--grid", "seed=[0,1]", "--no-progress"]
    assert (
        main(["sweep", cfg, "name=migu", "migu.enabled=true", "--grid", "migu.threshold=[0.3,0.7]", *args])
        == 0
    )
    assert main(["sweep", cfg, "name=ft", "migu.enabled=false", *args]) == 0
    return {"migu": tiny_assets["runs"] / "migu", "ft": tiny_assets["runs"] / "ft"}


@pytest.fixture(scope="session")
def tiny_report(tiny_sweeps, tmp_path_factory):
    """The report of both sweeps, with the checkpoint analyses."""
    from migu.report import ReportOptions, build_report

    out = tmp_path_factory.mktemp("report")
    return build_report([tiny_sweeps["ft"], tiny_sweeps["migu"]], out, ReportOptions(samples=8))
