"""Loader for the paper's 15 classification tasks in the O-LoRA ``CL_Benchmark`` folder layout.

The MIGU paper's Standard CL (orders 1-3) and Long sequence (orders 4-6) benchmarks use the task
files of the O-LoRA repository. This module reads a folder laid out like the copy this project keeps
in ``../shared/data/cl_benchmark`` (never inside the repository)::

    <root>/
      instruction_config.json      {task_type: [{"instruction_type": "zero-shot", "instruction": ...}]}
      <task>/labels.json           ["label 1", "label 2", ...]
      <task>/train.json            [{"label": ..., "sentence": ...}, ...]
      <task>/test.json             same form

The root comes from the ``root`` argument, else from the ``MIGU_CL_BENCHMARK_DIR`` environment
variable, else from :func:`default_cl_benchmark_dir`.

The task folders are flat and lower-case (``imdb``), where O-LoRA nests them under the task type
(``SC/IMDB``); :data:`OLORA_DATASET_NAMES` records the O-LoRA names, which the official scripts write
after ``Dataset:`` in the prompt (see :func:`migu.data.task.format_prompt`).

Loading all 15 tasks of the real folder takes about 0.5 s (the largest split, amazon's test
file, about 35 ms); parsed files are cached per path and modification time, so that a
continual-learning run that reloads every task after every task parses each file once.
"""

from __future__ import annotations

import functools
import json
import os
import random
from pathlib import Path

from migu.data.records import read_records
from migu.data.sampling import balanced_sample, check_cap
from migu.data.task import Task, TaskDataError

__all__ = [
    "CL_BENCHMARK_ENV_VAR",
    "CL_BENCHMARK_TASK_TYPES",
    "NO_GOLD_LABELS",
    "OLORA_DATASET_NAMES",
    "BenchmarkDataError",
    "available_cl_benchmark_tasks",
    "default_cl_benchmark_dir",
    "load_cl_benchmark_task",
]

#: Environment variable naming the CL_Benchmark folder.
CL_BENCHMARK_ENV_VAR = "MIGU_CL_BENCHMARK_DIR"

#: Task name -> the paper's task type (the prompt's ``Task:`` field and the key of
#: ``instruction_config.json``), as in the official configs (``configs/*/train_tasks.json`` of
#: cmnfriend/O-LoRA and wenyudu/MIGU). COPA is its own type ``"COPA"``: both repositories list it
#: under ``"COPA"`` (e.g. MIGU ``configs/order4_configs/copa/train_tasks.json``) and their
#: ``load_COPA_dataset`` uses neither an instruction nor an option line, which is why
#: ``instruction_config.json`` has no COPA entry.
CL_BENCHMARK_TASK_TYPES: dict[str, str] = {
    "dbpedia": "TC",
    "agnews": "TC",
    "yahoo": "TC",
    "amazon": "SC",
    "yelp": "SC",
    "imdb": "SC",
    "sst2": "SC",
    "mnli": "NLI",
    "cb": "NLI",
    "rte": "NLI",
    "qqp": "QQP",
    "boolq": "BoolQA",
    "multirc": "MultiRC",
    "wic": "WiC",
    "copa": "COPA",
}

#: Task name -> dataset name in the O-LoRA configs (written after ``Dataset:`` by the official code).
OLORA_DATASET_NAMES: dict[str, str] = {
    "dbpedia": "dbpedia",
    "agnews": "agnews",
    "yahoo": "yahoo",
    "amazon": "amazon",
    "yelp": "yelp",
    "imdb": "IMDB",
    "sst2": "SST-2",
    "mnli": "MNLI",
    "cb": "CB",
    "rte": "RTE",
    "qqp": "QQP",
    "boolq": "BoolQA",
    "multirc": "MultiRC",
    "wic": "WiC",
    "copa": "COPA",
}

#: Labels that mean "no gold label": records carrying one are dropped. MNLI marks examples whose
#: annotators did not agree with ``"-"``; 131 of the CL_Benchmark MNLI test records have it. The
#: official code keeps them, so they count as errors there (no model answers "-"), capping its MNLI
#: accuracy at 98.3%.
NO_GOLD_LABELS: frozenset[str] = frozenset({"-"})

# Task types that the official code prompts without an instruction (see CL_BENCHMARK_TASK_TYPES).
_NO_INSTRUCTION_TASK_TYPES = frozenset({"COPA"})

_INSTRUCTION_FILE = "instruction_config.json"
_LABELS_FILE = "labels.json"
_SPLITS = ("train", "test")

# Any O-LoRA spelling (``SST-2``, ``BoolQA``) or case (``IMDB``) of a task name -> our folder name.
_ALIASES: dict[str, str] = {
    **{olora.lower(): name for name, olora in OLORA_DATASET_NAMES.items()},
    **{name: name for name in CL_BENCHMARK_TASK_TYPES},
}


class BenchmarkDataError(TaskDataError):
    """A CL_Benchmark folder or file is missing or malformed; the message names the file and the fix."""


# ---------------------------------------------------------------------------------------------------
# Locating the folder
# ---------------------------------------------------------------------------------------------------


def _candidate_dirs() -> list[Path]:
    """The default folder relative to the working directory, then relative to this source file."""
    relative = Path("..", "shared", "data", "cl_benchmark")
    # Working directory = the repository root when tests or scripts run from it.
    from_cwd = (Path.cwd() / relative).resolve()
    # src/migu/data/cl_benchmark.py -> repository root, for an editable install run from elsewhere.
    from_package = (Path(__file__).resolve().parents[3] / relative).resolve()
    return [from_cwd] if from_package == from_cwd else [from_cwd, from_package]


def default_cl_benchmark_dir() -> Path:
    """Where the CL_Benchmark folder is looked for when no ``root`` is given.

    Order: the ``MIGU_CL_BENCHMARK_DIR`` environment variable if it is set (returned as given, even
    if the folder does not exist, so that a typo shows in the error); else
    ``<repository root>/../shared/data/cl_benchmark``, with the repository root taken first as the
    current working directory and then from this package's location (``src/migu/data`` in a
    checkout). The first of these two that exists is returned, else the working-directory one.

    Returns:
        The folder path (absolute unless the environment variable holds a relative path).
    """
    env = os.environ.get(CL_BENCHMARK_ENV_VAR)
    if env:
        return Path(env).expanduser()
    candidates = _candidate_dirs()
    return next((path for path in candidates if path.is_dir()), candidates[0])


def _resolve_root(root: str | Path | None) -> Path:
    """The benchmark folder to read, checked to exist.

    Raises:
        BenchmarkDataError: If the folder does not exist; the message says where it looked.
    """
    if root is not None:
        path, how = Path(root).expanduser(), "the root argument (data.data_dir in a run config)"
    elif os.environ.get(CL_BENCHMARK_ENV_VAR):
        path, how = default_cl_benchmark_dir(), f"${CL_BENCHMARK_ENV_VAR}"
    else:
        path, how = default_cl_benchmark_dir(), "the default location"
    if not path.is_dir():
        looked = map(str, _candidate_dirs()) if how == "the default location" else [str(path)]
        raise BenchmarkDataError(
            f"CL_Benchmark folder not found (from {how}); looked in: {', '.join(looked)}. "
            f"In a run config set data.data_dir=<folder> (in Python: root=<folder>), or set "
            f"{CL_BENCHMARK_ENV_VAR}=<folder>, to the folder holding "
            f"instruction_config.json and one sub-folder per task (O-LoRA CL_Benchmark layout)."
        )
    return path


def available_cl_benchmark_tasks(root: str | Path | None = None) -> list[str]:
    """Names of the task folders in a CL_Benchmark folder.

    A task folder is a sub-folder holding a ``labels.json``; whether its splits are complete and
    well formed is checked only when it is loaded.

    Args:
        root: The benchmark folder; ``None`` uses :func:`default_cl_benchmark_dir`.

    Returns:
        The folder names, sorted.

    Raises:
        BenchmarkDataError: If the benchmark folder does not exist.
    """
    path = _resolve_root(root)
    return sorted(child.name for child in path.iterdir() if (child / _LABELS_FILE).is_file())


# ---------------------------------------------------------------------------------------------------
# Reading and checking files
# ---------------------------------------------------------------------------------------------------


def _missing_file_error(path: Path, what: str) -> BenchmarkDataError:
    return BenchmarkDataError(
        f"Missing {what}: {path}. Every task folder needs labels.json, train.json and test.json "
        f"(O-LoRA CL_Benchmark layout); restore the file or point root / {CL_BENCHMARK_ENV_VAR} at "
        f"a complete copy."
    )


def _read_json(path: Path, what: str) -> object:
    """Parse a JSON file, turning every failure into a BenchmarkDataError naming the file."""
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise _missing_file_error(path, what) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BenchmarkDataError(
            f"Malformed JSON in {what} {path}: {error}. Fix or replace the file (it must be UTF-8 JSON)."
        ) from None


# Cached on the file's identity and modification time, so that an edited or replaced file is
# re-read. The result is immutable (tuples), so callers cannot corrupt the cache.
@functools.lru_cache(maxsize=64)
def _parse_split(path_str: str, mtime_ns: int, size: int) -> tuple[tuple[str, str], ...]:
    path = Path(path_str)
    records = []
    for where, record in read_records(path, BenchmarkDataError):
        if not isinstance(record, dict):
            raise BenchmarkDataError(
                f'{path}, {where}: expected an object with "sentence" and "label", '
                f"found {type(record).__name__} {record!r:.80}."
            )
        for key in ("sentence", "label"):
            if not isinstance(record.get(key), str):
                problem = "has no" if key not in record else "has a non-string"
                raise BenchmarkDataError(
                    f"{path}, {where} {problem} {key!r} field (keys: {sorted(record)}). "
                    f'Every record needs string fields "sentence" and "label"; fix or drop it.'
                )
        records.append((record["sentence"], record["label"]))
    return tuple(records)


def _read_split(path: Path) -> tuple[tuple[str, str], ...]:
    if not path.is_file():
        raise _missing_file_error(path, "split file")
    stat = path.stat()
    return _parse_split(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


def _read_labels(path: Path) -> tuple[str, ...]:
    data = _read_json(path, "labels file")
    if (
        not isinstance(data, list)
        or not data
        or not all(isinstance(label, str) and label for label in data)
        or len(set(data)) != len(data)
    ):
        raise BenchmarkDataError(
            f"{path} must hold a non-empty JSON list of distinct, non-empty label strings, found "
            f"{data!r:.200}."
        )
    return tuple(data)


def _read_instruction(root: Path, task_type: str) -> str:
    """The zero-shot instruction for ``task_type``, as O-LoRA's ``_get_instruction`` picks it.

    O-LoRA (``instruction_strategy single``) takes the first zero-shot instruction of the type.
    """
    path = root / _INSTRUCTION_FILE
    if not path.is_file():
        raise BenchmarkDataError(
            f"Missing {path}: it maps each task type to its instruction text (O-LoRA's "
            f"configs/instruction_config.json). Copy it into the benchmark folder."
        )
    config = _read_json(path, "instruction file")
    if not isinstance(config, dict):
        raise BenchmarkDataError(f"{path} must hold a JSON object {{task_type: [instructions]}}.")
    entries = config.get(task_type)
    if entries is None:
        if task_type in _NO_INSTRUCTION_TASK_TYPES:
            return ""  # the official code prompts COPA without an instruction
        raise BenchmarkDataError(
            f"{path} has no instruction for task type {task_type!r} (it has: {', '.join(sorted(config))}). "
            f'Add an entry {{"{task_type}": [{{"instruction_type": "zero-shot", "instruction": ...}}]}}.'
        )
    if isinstance(entries, list):
        for entry in entries:
            if (
                isinstance(entry, dict)
                and entry.get("instruction_type") == "zero-shot"
                and isinstance(entry.get("instruction"), str)
            ):
                return entry["instruction"]
    raise BenchmarkDataError(
        f"{path}: task type {task_type!r} needs a list holding an entry "
        f'{{"instruction_type": "zero-shot", "instruction": "..."}}, found {entries!r:.200}.'
    )


def _checked_records(
    path: Path, records: tuple[tuple[str, str], ...], labels: tuple[str, ...]
) -> tuple[list[tuple[str, str]], int]:
    """Drop no-gold-label records and check every other label; returns (records, number dropped)."""
    known = set(labels)
    kept = []
    dropped = 0
    for index, (sentence, label) in enumerate(records):
        if label in known:
            kept.append((sentence, label))
        elif label in NO_GOLD_LABELS:
            dropped += 1
        else:
            raise BenchmarkDataError(
                f"{path}, record {index}: label {label!r} is not in {path.parent / _LABELS_FILE} "
                f"({', '.join(map(repr, labels))}). Add the label there or fix the record."
            )
    if not kept:
        detail = f" ({dropped} records without a gold label were dropped)" if dropped else ""
        raise BenchmarkDataError(f"{path} holds no usable records{detail}; a task needs both splits.")
    return kept, dropped


# ---------------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------


def load_cl_benchmark_task(
    name: str,
    root: str | Path | None = None,
    *,
    max_train: int | None = None,
    max_train_per_class: int | None = None,
    max_test: int | None = None,
    seed: int = 0,
    task_type: str | None = None,
) -> Task:
    """Load one task of a CL_Benchmark folder.

    The returned records are a seeded shuffle of the files' records (every record without caps).
    The caps sample per class as the papers do (O-LoRA trains on 1000 examples per class):
    ``max_train_per_class`` keeps at most k training records of each label; ``max_train`` and
    ``max_test`` cap the total, drawing the labels in equal shares as far as the data allows
    (``max_train`` applies after ``max_train_per_class``). The same arguments always give the same
    task; ``seed`` changes which training records a cap keeps and their order. The test sample does
    not depend on ``seed``: runs with different seeds are scored on the same test items.

    Records whose label is in :data:`NO_GOLD_LABELS` (MNLI's ``"-"``) are dropped; ``Task.source``
    says how many.

    Args:
        name: Task folder name, e.g. ``"dbpedia"`` (see :func:`available_cl_benchmark_tasks`). The
            O-LoRA spellings (``"SST-2"``, ``"BoolQA"``, any case) are accepted for the 15 tasks.
        root: The benchmark folder; ``None`` uses :func:`default_cl_benchmark_dir`
            (``$MIGU_CL_BENCHMARK_DIR`` or ``../shared/data/cl_benchmark``).
        max_train: Keep at most this many training records, class-balanced (``None``: all).
        max_train_per_class: Keep at most this many training records per label (``None``: all).
        max_test: Keep at most this many test records, class-balanced (``None``: all).
        seed: Seed of the training sample and of its record order (not of the test sample).
        task_type: The task type (prompt ``Task:`` field, key of ``instruction_config.json``).
            ``None`` takes it from :data:`CL_BENCHMARK_TASK_TYPES`; needed for other task folders.

    Returns:
        The task, with ``instruction`` the type's zero-shot instruction (empty for COPA, as in the
        official code) and records ``{"sentence": str, "label": str}``.

    Raises:
        BenchmarkDataError: If the benchmark folder, the task folder, ``labels.json``, a split file
            or ``instruction_config.json`` is missing or malformed, a record lacks ``"sentence"``
            or ``"label"``, a label is not in ``labels.json``, or a split is empty. The message
            names the file and the fix.
        ValueError: If a cap is negative or not an int, or ``task_type`` is not given for a task
            outside :data:`CL_BENCHMARK_TASK_TYPES`.
    """
    for value, arg in (
        (max_train, "max_train"),
        (max_train_per_class, "max_train_per_class"),
        (max_test, "max_test"),
    ):
        check_cap(value, arg)
    if not isinstance(name, str) or not name or name in (".", "..") or Path(name).name != name:
        raise BenchmarkDataError(f"Task name must be a plain folder name such as 'dbpedia', got {name!r}.")
    path = _resolve_root(root)
    folder = name if (path / name).is_dir() else _ALIASES.get(name.lower(), name)
    task_dir = path / folder
    if not task_dir.is_dir():
        available = available_cl_benchmark_tasks(path)
        raise BenchmarkDataError(
            f"No task folder {name!r} in {path}; available tasks: {', '.join(available) or '(none)'}. "
            f"Check the name, or point root / {CL_BENCHMARK_ENV_VAR} at another CL_Benchmark folder."
        )
    if task_type is None:
        task_type = CL_BENCHMARK_TASK_TYPES.get(folder)
        if task_type is None:
            raise ValueError(
                f"Task {folder!r} is not one of the paper's tasks ({', '.join(CL_BENCHMARK_TASK_TYPES)}), "
                f"so its task type is unknown. In a run config set data.task_types.{folder}=<type> (a key of "
                f"{path / _INSTRUCTION_FILE}; in Python: task_type=...), or load your own files with "
                "data.source=files."
            )

    labels = _read_labels(task_dir / _LABELS_FILE)
    splits: dict[str, dict[str, list[str]]] = {}
    dropped: dict[str, int] = {}
    for split in _SPLITS:
        split_path = task_dir / f"{split}.json"
        records, dropped[split] = _checked_records(split_path, _read_split(split_path), labels)
        splits[split] = {label: [] for label in labels}
        for sentence, label in records:  # file order, so the seeded sample is deterministic
            splits[split][label].append(sentence)
    instruction = _read_instruction(path, task_type)

    source = f"{task_dir} (O-LoRA CL_Benchmark layout)"
    notes = [
        f"{count} {split} records without a gold label dropped" for split, count in dropped.items() if count
    ]
    if notes:
        source += "; " + ", ".join(notes)
    # String seeds are hashed with SHA-512 by `random`: stable across processes and PYTHONHASHSEED.
    return Task(
        name=folder,
        labels=labels,
        train=balanced_sample(
            splits["train"],
            labels,
            per_class=max_train_per_class,
            total=max_train,
            rng=random.Random(f"migu.cl_benchmark:{folder}:{seed}:train"),
        ),
        test=balanced_sample(
            splits["test"],
            labels,
            per_class=None,
            total=max_test,
            rng=random.Random(f"migu.cl_benchmark:{folder}:test"),  # fixed: the same items for every seed
        ),
        instruction=instruction,
        source=source,
        task_type=task_type,
    )
