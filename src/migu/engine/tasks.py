"""The task sequence of a run, from the ``data:`` block of its configuration."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

from migu.data.task import Task
from migu.engine.config import DataConfig

__all__ = ["cap_per_class", "load_tasks", "test_set_record"]


def cap_per_class(records: list[dict[str, str]], k: int) -> list[dict[str, str]]:
    """The first ``k`` records of each label, in their original order."""
    seen: Counter[str] = Counter()
    out = []
    for r in records:
        if seen[r["label"]] < k:
            seen[r["label"]] += 1
            out.append(r)
    return out


def load_tasks(data: DataConfig, seed: int) -> list[Task]:
    """Load the tasks of ``data.tasks`` in order.

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
    tasks = []
    for name in data.tasks:
        if data.source == "packaged":
            from migu.data.packaged import load_packaged_task

            task = load_packaged_task(name, max_train=data.max_train, max_test=data.max_test, seed=seed)
            if data.max_train_per_class is not None:
                task = dataclasses.replace(task, train=cap_per_class(task.train, data.max_train_per_class))
        elif data.source == "files":
            from migu.data.files import load_file_task

            task = load_file_task(
                name,
                data.files[name],
                base_dir=data.data_dir,
                max_train=data.max_train,
                max_train_per_class=data.max_train_per_class,
                max_test=data.max_test,
                seed=seed,
            )
        elif data.source == "hub":
            from migu.data.hub import load_hub_task

            task = load_hub_task(
                name,
                data.hub.get(name),
                base_dir=data.data_dir,
                max_train=data.max_train,
                max_train_per_class=data.max_train_per_class,
                max_test=data.max_test,
                seed=seed,
            )
        else:
            from migu.data.cl_benchmark import load_cl_benchmark_task

            task = load_cl_benchmark_task(
                name,
                data.data_dir,
                max_train=data.max_train,
                max_train_per_class=data.max_train_per_class,
                max_test=data.max_test,
                seed=seed,
                task_type=data.task_types.get(name),
            )
        tasks.append(task)
    return tasks


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
