"""General-ability probes of a run (``eval.general``): multiple-choice benchmarks outside the sequence.

The paper's §4.3 measures what instruction tuning makes a decoder forget of its general abilities by
zero-shot multiple-choice accuracy on standard benchmarks. A run lists such probes under
``eval.general``, one entry per probe name::

    eval:
      general:
        copa: {limit: 100}                                  # built in: CL_Benchmark COPA, test split
        arc_easy: {path: /data/arc_easy_test.jsonl, format: arc}

The engine scores every probe before training and after every task, like the accuracy matrix, and
reports per probe the accuracy before training, at the end, and their difference (``forgetting``).

This module holds the pure parts: checking an entry, loading its items, and the metrics of the rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from migu.data.multiple_choice import MC_FORMATS, MCItem, load_copa, load_multiple_choice

__all__ = ["GENERAL_KEYS", "BUILTIN_PROBES", "check_general_entry", "general_metrics", "load_general_probe"]

#: Keys of one ``eval.general`` entry.
GENERAL_KEYS = ("path", "format", "limit", "split")
#: Probe names that need no ``path``: read from the CL_Benchmark folder (``data.data_dir`` or default).
BUILTIN_PROBES = ("copa",)
_FORMATS = ("auto", *MC_FORMATS)


def check_general_entry(name: str, entry: Any, key: str = "eval.general") -> dict[str, Any]:
    """Validate one probe entry and return it with its defaults filled in.

    Args:
        name: The probe's name (its key under ``eval.general``).
        entry: A mapping with ``path`` (a benchmark file; optional for :data:`BUILTIN_PROBES`),
            ``format`` (``"auto"`` or a format of :data:`migu.data.multiple_choice.MC_FORMATS`),
            ``limit`` (first questions only, ``None``: all) and ``split`` (built-in probes only).
        key: The dotted config key, for messages.

    Returns:
        ``{"path", "format", "limit", "split"}``.

    Raises:
        ValueError: unknown keys, a missing path, a bad format, limit or split; the message names the
            key and what is allowed.
    """
    where = f"{key}.{name}"
    if not isinstance(name, str) or not name.strip() or "/" in name:
        raise ValueError(f"{key}: probe name {name!r} must be a non-empty string without '/'.")
    if entry is None:
        entry = {}
    if not isinstance(entry, Mapping):
        raise ValueError(
            f"{where}={entry!r}: expected a mapping such as {{path: FILE, format: arc, limit: 500}}."
        )
    unknown = sorted(set(entry) - set(GENERAL_KEYS))
    if unknown:
        raise ValueError(
            f"{where} has unknown keys {', '.join(map(str, unknown))}; allowed: {', '.join(GENERAL_KEYS)}."
        )
    path = entry.get("path")
    if path is None and name not in BUILTIN_PROBES:
        raise ValueError(
            f"{where} needs a `path` to a benchmark file (JSON, JSON Lines or Parquet); only "
            f"{', '.join(BUILTIN_PROBES)} is built in."
        )
    if path is not None and (not isinstance(path, str) or not path.strip()):
        raise ValueError(f"{where}.path={path!r}: expected a file path.")
    fmt = entry.get("format", "auto")
    if fmt not in _FORMATS:
        raise ValueError(f"{where}.format={fmt!r} is not one of: {', '.join(_FORMATS)}.")
    limit = entry.get("limit")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"{where}.limit={limit!r}: expected null or an integer >= 1.")
    split = entry.get("split", "test")
    if split not in ("train", "test", "all"):
        raise ValueError(f"{where}.split={split!r} is not one of: train, test, all.")
    if split != "test" and path is not None:
        raise ValueError(f"{where}.split applies to the built-in probes only; `path` already names the file.")
    return {"path": path, "format": fmt, "limit": limit, "split": split}


def load_general_probe(
    name: str, entry: Mapping[str, Any], cl_benchmark_dir: str | Path | None = None
) -> list[MCItem]:
    """The items of one probe.

    Args:
        name: The probe's name.
        entry: A checked entry (:func:`check_general_entry`).
        cl_benchmark_dir: The CL_Benchmark folder of built-in probes (``None``: the default one).

    Raises:
        migu.data.multiple_choice.MultipleChoiceFileError: a missing or malformed file.
    """
    entry = check_general_entry(name, entry)
    if entry["path"] is None:  # a built-in probe
        return load_copa(cl_benchmark_dir, split=entry["split"], limit=entry["limit"])
    return load_multiple_choice(entry["path"], format=entry["format"], limit=entry["limit"])


def _acc(row: Mapping[str, Any] | None, name: str, key: str = "acc") -> float | None:
    if not row or name not in row:
        return None
    value = row[name].get(key)
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def probe_names(metrics: Mapping[str, Any]) -> list[str]:
    """The probes a run's flat metrics hold (the ``general/<name>/acc`` keys ``general_metrics``
    writes), sorted; empty for a run without ``eval.general``."""
    names = set()
    for key in metrics:
        prefix, _, rest = key.partition("/")
        name, _, field = rest.partition("/")
        if prefix == "general" and name and field == "acc":
            names.add(name)
    return sorted(names)


def general_metrics(
    rows: Sequence[Mapping[str, Any] | None], names: Sequence[str]
) -> dict[str, float | None]:
    """Flat metrics of the probe rows (row 0: before training, row i: after task i).

    Args:
        rows: One mapping per evaluation row, probe name -> ``{"acc", "acc_norm", "n"}``; row 0 is
            ``None`` when the run did not evaluate before training.
        names: The probes.

    Returns:
        Per probe ``general/<name>/acc`` and ``general/<name>/acc_norm`` (the last row),
        ``general/<name>/acc_before`` (row 0) and ``general/<name>/forgetting`` (``acc_before - acc``,
        positive when the model lost accuracy; ``None`` without row 0 or without a trained task).
    """
    out: dict[str, float | None] = {}
    if not rows:
        return out
    first, last = rows[0], rows[-1]
    for name in names:
        before, final = _acc(first, name), _acc(last, name)
        out[f"general/{name}/acc"] = final
        out[f"general/{name}/acc_norm"] = _acc(last, name, "acc_norm")
        out[f"general/{name}/acc_before"] = before
        trained = len(rows) > 1
        out[f"general/{name}/forgetting"] = (
            before - final if trained and before is not None and final is not None else None
        )
    return out
