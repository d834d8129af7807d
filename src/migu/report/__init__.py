"""Reports: compare finished runs in one HTML page (``migu report``).

:func:`build_report`: accuracy matrices, per-task curves, metrics across methods and seeds,
paired comparisons with a sign-flip test (:mod:`migu.report.paired`), threshold curves, task
similarity through MIGU's masks, magnitudes, time and memory. Reports only read run directories;
sweeps, which run runs, are in :mod:`migu.engine.sweep`.

Names are imported on first use, so that importing the package does not load matplotlib.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "SECTION_IDS",
    "NotARunDir",
    "ReportOptions",
    "ReportResult",
    "build_report",
]

_WHERE = {
    "SECTION_IDS": "build",
    "ReportOptions": "build",
    "ReportResult": "build",
    "build_report": "build",
    "NotARunDir": "collect",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"migu.report.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'migu.report' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
