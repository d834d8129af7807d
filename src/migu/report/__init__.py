"""Reports and sweeps: compare runs in one HTML page, and run a grid of configurations.

- :func:`build_report` (``migu report``): accuracy matrices, per-task curves, metrics across methods
  and seeds, threshold curves, task similarity through MIGU's masks, magnitudes, time and memory.
- :func:`run_sweep` (``migu sweep``): one run per point of a grid of config values, skipping
  finished runs and going on after a failed one.

Names are imported on first use, so that ``migu sweep`` does not load matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SECTION_IDS",
    "NotARunDir",
    "ReportOptions",
    "ReportResult",
    "SweepOutcome",
    "SweepRun",
    "build_report",
    "format_sweep_summary",
    "load_sweep_config",
    "parse_grid",
    "plan_sweep",
    "run_sweep",
]

_WHERE = {
    "SECTION_IDS": "build",
    "ReportOptions": "build",
    "ReportResult": "build",
    "build_report": "build",
    "NotARunDir": "collect",
    "SweepOutcome": "sweep",
    "SweepRun": "sweep",
    "format_sweep_summary": "sweep",
    "load_sweep_config": "sweep",
    "parse_grid": "sweep",
    "plan_sweep": "sweep",
    "run_sweep": "sweep",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"migu.report.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'migu.report' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
