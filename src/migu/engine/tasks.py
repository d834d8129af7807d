"""The task sequence of a run, from the ``data:`` block of its configuration."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

from migu.data.task import Task
from migu.engine.config import DataConfig

__all__ = ["load_tasks", "test_set_record"]


def load_tasks(data: DataConfig, seed: int) -> list[Task]:
    """Load the tasks of ``data.tasks`` in order.

    Each task comes from the registered source ``data.source`` (:mod:`migu.data.sources`).

    Args:
        data: The ``data:`` block (source, task names, caps).
        seed: Decides which training examples a cap keeps (test samples are the same for every seed).

    Returns:
        The tasks, in training order.

    Raises:
        ValueError: unknown task (the message lists the available ones), bad data files, or a hub
            dataset that cannot be reached (no network: the message says how to use local files).
        ImportError: the package that ships packaged data is missing (the message gives the fix).
    """
    from migu.data.sources import get_source

    source = get_source(data.source, data.module)
    return [source.load(name, data, seed) for name in data.tasks]


def test_set_record(tasks: Sequence[Task]) -> dict[str, dict[str, Any]]:
    """What identifies each task's test sample: its size and a SHA-256 of its (sentence, label) pairs,
    and the task's number of labels.

    Written to the run directory (``test_sets.json``) so that runs can be checked to be scored on the
    same items: two runs with equal digests saw the same test records in the same order.
    """
    out = {}
    for task in tasks:
        h = hashlib.sha256()
        for r in task.test:
            h.update(json.dumps([r["sentence"], r["label"]], ensure_ascii=False).encode("utf-8"))
            h.update(b"\n")
        # labels: the number of options, so reports can draw chance (1 / labels) beside the accuracy
        out[task.name] = {"n": len(task.test), "sha256": h.hexdigest(), "labels": len(task.labels)}
    return out
