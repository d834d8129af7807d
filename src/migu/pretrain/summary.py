"""The results table of a continual pre-training run, as plain text."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["format_results"]


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def format_results(results: Mapping[str, Any], run_dir: Path | None = None) -> str:
    """One line per row (``base``, then each pre-trained variant): accuracy and macro-F1 (in %) on
    every domain's end task and their mean; then the pre-training losses per domain.

    Args:
        results: The mapping written to ``results.json`` by :func:`migu.pretrain.runner.run_pretrain`.
        run_dir: The run directory, named on a last line when given (``results.json`` does not
            record it: a run directory can be moved, and the file names no folder of the machine).
    """
    domains = list(results["domains"])
    rows: Mapping[str, Mapping[str, Mapping[str, float]]] = results["rows"]
    columns = [*domains, "mean"]
    lw = max(8, *(len(r) + 2 for r in rows))
    cw = max(16, *(len(c) + 3 for c in columns))  # a cell is "acc / F1", up to 13 characters
    head = (
        f"End tasks after continual pre-training on {' -> '.join(domains)} "
        f"({results.get('model', '?')}, {results.get('objective', '?')}): accuracy / macro-F1 (%)"
    )
    lines = [head, "row".ljust(lw) + "".join(c.rjust(cw) for c in columns)]
    for name, per in rows.items():
        cells = []
        for c in columns:
            r = per.get(c) or {}
            cells.append(f"{_fmt(r.get('accuracy'))} / {_fmt(r.get('macro_f1'))}".rjust(cw))
        lines.append(name.ljust(lw) + "".join(cells))
    pre = results.get("pretrain") or {}
    if pre:
        lines.append("")
        lines.append("pre-training: mean LM loss, first -> last step (rows updated per step with MIGU)")
        for name, stats in pre.items():
            parts = []
            for s in stats:
                frac = s.get("update_fraction")
                extra = f", {100 * frac:.0f}% rows" if frac is not None and frac < 1.0 else ""
                parts.append(f"{s['domain']} {s['loss_first']:.3f}->{s['loss_last']:.3f}{extra}")
            lines.append(f"  {name}: " + "; ".join(parts))
    if run_dir is not None:
        lines.append(f"run directory: {run_dir}")
    return "\n".join(lines)
