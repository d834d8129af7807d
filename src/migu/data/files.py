"""Tasks from your own files: JSON, JSONL or CSV with a text and a label column.

A task sequence is defined in the run config, without writing Python::

    data:
      source: files
      tasks: [reviews, topics]
      files:
        reviews: {train: data/reviews_train.csv, test: data/reviews_test.csv,
                  text_column: review, label_column: stars, labels: ["1", "2", "3", "4", "5"],
                  instruction: "What is the rating of the following review? Choose one from the option.\\n",
                  task_type: SC}
        topics: {train: data/topics/train.jsonl, test: data/topics/test.jsonl}

Relative paths are resolved against ``data.data_dir`` (default: the current directory). Without
``labels`` the label set is the sorted set of the training labels. JSON files hold a list of
records; JSONL one record per line; CSV a header row.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from migu.data.records import read_records
from migu.data.sampling import balanced_sample, check_cap
from migu.data.task import Task, TaskDataError

__all__ = ["FILE_SPEC_KEYS", "TaskFileError", "load_file_task"]

#: keys of one task's entry under ``data.files``
FILE_SPEC_KEYS = ("train", "test", "labels", "text_column", "label_column", "instruction", "task_type")


class TaskFileError(TaskDataError):
    """A task file is missing, malformed, or does not hold what the task definition says."""


def _read_records(path: Path) -> list[tuple[str, Any]]:
    """``(where, record)`` pairs, ``where`` naming the record for messages ("record 3", "line 17")."""
    if not path.is_file():
        raise TaskFileError(f"task file not found: {path.resolve()}")
    return read_records(path, TaskFileError)


def _pools(path: Path, text_col: str, label_col: str, labels: tuple[str, ...] | None) -> dict[str, list[str]]:
    records = _read_records(path)
    if not records:
        raise TaskFileError(f"{path} is empty: a task needs at least one record in each split.")
    pools: dict[str, list[str]] = {}
    for where, r in records:
        if not isinstance(r, Mapping):
            raise TaskFileError(f"{path}, {where}: a record must be an object with named fields.")
        for col in (text_col, label_col):
            if col not in r:
                raise TaskFileError(
                    f"{path}, {where}: no column {col!r} (it has {', '.join(map(repr, r))}); set "
                    f"text_column / label_column in the task's entry under data.files."
                )
            value = r[col]
            if value is None or (isinstance(value, str) and not value.strip()):
                raise TaskFileError(
                    f"{path}, {where}: {col!r} is {'null' if value is None else 'empty'}; every record "
                    "needs a text and a label. Fix or remove the record."
                )
            if not isinstance(value, str | int | float | bool):
                raise TaskFileError(
                    f"{path}, {where}: {col!r} is a {type(value).__name__} ({value!r:.60}); expected text."
                )
        label = str(r[label_col])
        if labels is not None and label not in labels:
            raise TaskFileError(
                f"{path}, {where}: label {label!r} is not one of the task's labels {list(labels)}; "
                "fix the record or add the label to `labels`."
            )
        pools.setdefault(label, []).append(str(r[text_col]))
    return pools


def load_file_task(
    name: str,
    spec: Mapping[str, Any],
    *,
    base_dir: str | Path | None = None,
    max_train: int | None = None,
    max_train_per_class: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
) -> Task:
    """Load one task from its entry under ``data.files`` (see the module docstring).

    Raises:
        TaskFileError: missing or malformed file, missing column, unknown label, empty split.
        ValueError: a bad cap.
    """
    for value, arg in (
        (max_train, "max_train"),
        (max_train_per_class, "max_train_per_class"),
        (max_test, "max_test"),
    ):
        check_cap(value, arg)
    unknown = sorted(set(spec) - set(FILE_SPEC_KEYS))
    if unknown or "train" not in spec or "test" not in spec:
        raise TaskFileError(
            f"data.files.{name}: needs `train` and `test`; allowed keys: {', '.join(FILE_SPEC_KEYS)}"
            + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    text_col = spec.get("text_column", "sentence")
    label_col = spec.get("label_column", "label")
    labels = tuple(str(x) for x in spec["labels"]) if spec.get("labels") is not None else None
    train_path, test_path = base / spec["train"], base / spec["test"]
    train = _pools(train_path, text_col, label_col, labels)
    if labels is None:
        labels = tuple(sorted(train))
    test = _pools(test_path, text_col, label_col, labels)
    return Task(
        name=name,
        labels=labels,
        train=balanced_sample(
            train,
            labels,
            total=max_train,
            per_class=max_train_per_class,
            rng=random.Random(f"{name}:{seed}:train"),
        ),
        test=balanced_sample(test, labels, total=max_test, rng=random.Random(f"{name}:test")),
        instruction=spec.get("instruction", ""),
        source=f"{train_path} / {test_path}",
        task_type=spec.get("task_type", "TC"),
    )
