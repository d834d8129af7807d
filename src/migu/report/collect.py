"""Find run directories, read what they hold, and group runs that differ only in their seed.

A run directory is a folder with ``state.json`` (see :mod:`migu.engine.rundir`). A path given to the
report may be a run directory or any folder above run directories (the parent of variant runs, a
sweep folder): it expands to every run directory below it.

Grouping: two runs belong to the same group when their configurations differ only in keys that
do not change what is measured (``seed``, ``name``, ``output_dir``, ``variants``, checkpoint and
evaluation batch settings). Without MIGU (``migu.enabled: false``) the other ``migu.*`` keys are
ignored too, since they have no effect. A group's label is its method (the variant's folder name,
or ``FT`` / ``FT+MIGU`` / ``LoRA+MIGU`` ... built from ``method.name``, ``method.replay_fraction``
and ``migu.enabled``) followed by the other keys that vary across the runs compared, e.g.
``FT+MIGU T=0.3``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migu.engine.rundir import safe_name
from migu.eval.metrics import mean_std  # noqa: F401  (re-exported: reports and benchmarks use it from here)

__all__ = [
    "Group",
    "NotARunDir",
    "RunRecord",
    "find_run_dirs",
    "flatten",
    "group_runs",
    "load_runs",
    "mean_std",
    "method_label",
    "read_run",
]

#: Config keys that never separate two runs into different groups (seeds are what a group spans).
IGNORED_KEYS = frozenset(
    {
        "seed",
        "name",
        "output_dir",
        "train.checkpoint_every",
        "eval.batch_size",
        "eval.save_predictions",
    }
)
#: Keys already told by the method label; they still separate groups.
METHOD_KEYS = frozenset({"method", "method.name", "method.replay_fraction", "migu.enabled"})
#: Short names of keys in group labels.
SHORT_KEYS = {"migu.threshold": "T", "data.order": "order", "data.tasks": "tasks"}
#: Display names of ``method.name`` values (the paper's row names).
METHOD_NAMES = {
    "ft": "FT",
    "lora": "LoRA",
    "inclora": "IncLoRA",
    "olora": "OIncLoRA",
    "moelora": "MoELoRA",
    "ewc": "EWC",
    "mtl": "MTL",
    "ft_per_task": "per-task FT",
}
# How deep below a given folder run directories are looked for (sweep / grid point / variant).
_MAX_DEPTH = 4


class NotARunDir(FileNotFoundError):
    """A path given to the report is not a run directory and holds none below it."""


@dataclass
class RunRecord:
    """What one run directory holds, as read from disk.

    Attributes:
        run_dir: The run directory.
        config: The raw ``config.yaml`` mapping (no schema applied, so older or newer runs read).
        tasks: Task names in training order.
        matrix: Accuracy matrix, ``len(tasks) + 1`` rows (row 0: before training), NaN where missing.
        metric: Name of the accuracy metric (``classify``, ``exact_match``, ``rank``).
        metrics: ``metrics.json``.
        status: ``state.json``'s status: ``finished``, ``running``, ``diverged`` (non-finite loss or
            weights), ``failed`` (an OS error such as a full disk) or ``interrupted`` (Ctrl-C).
        error: ``state.json``'s reason for a run that stopped (``None`` otherwise).
        variant: Name of the variant this run is, when its parent folder's config lists it.
        variant_overrides: The variant's overrides (dotted keys), empty when not a variant.
        label: Its group's label (set by :func:`group_runs`).
        chance: Task -> accuracy of a uniform guess among its labels (``1 / labels``), from
            ``environment.json``; empty for runs written before it recorded the label counts.
    """

    run_dir: Path
    config: dict[str, Any]
    tasks: list[str]
    matrix: list[list[float]]
    metric: str
    metrics: dict[str, Any]
    status: str
    variant: str | None = None
    variant_overrides: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    error: str | None = None
    chance: dict[str, float] = field(default_factory=dict)

    @property
    def seed(self) -> int | None:
        """The run's seed (``None`` if its config has none)."""
        return self.config.get("seed")

    @property
    def migu_enabled(self) -> bool:
        """Whether the run trained with MIGU."""
        return bool((self.config.get("migu") or {}).get("enabled", False))

    @property
    def threshold(self) -> float | None:
        """MIGU's threshold T, or ``None`` for a run without MIGU."""
        if not self.migu_enabled:
            return None
        return (self.config.get("migu") or {}).get("threshold")

    @property
    def finished(self) -> bool:
        """True when every task was trained and evaluated."""
        return self.status == "finished"

    @property
    def has_checkpoint(self) -> bool:
        """True when the run has a model checkpoint to analyse."""
        return (self.run_dir / "checkpoint").is_dir()


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys; lists become tuples so that values are hashable.

    Args:
        tree: A nested mapping (a raw config).
        prefix: Prepended to every key (used by the recursion).

    Returns:
        ``{"train.lr": 0.001, "data.tasks": ("a", "b"), ...}``.
    """
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = _hashable(value)
    return out


def _hashable(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, Mapping):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    return value


def _is_run_dir(path: Path) -> bool:
    return (path / "state.json").is_file()


def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories given by ``paths``: each path itself, or every run directory below it.

    Args:
        paths: Run directories, or folders above them (variant parents, sweep folders).

    Returns:
        Run directories in a stable order (as given, then sorted below each folder), no duplicates.

    Raises:
        NotARunDir: a path does not exist, or is neither a run directory nor above one.
    """
    found: list[Path] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            raise NotARunDir(f"{path}: no such folder. Expected a run directory written by `migu run`.")
        if _is_run_dir(path):
            below = [path]
        else:
            below = _scan(path, _MAX_DEPTH)[0]
        if not below and (path / "log.txt").is_file():
            raise NotARunDir(
                f"{path.resolve()} holds a log.txt but no state.json: the run failed or stopped before "
                "training started; its log.txt says why."
            )
        if not below:
            raise NotARunDir(
                f"{path.resolve()} is not a run directory (no state.json) and holds none up to "
                f"{_MAX_DEPTH} levels below. Expected a folder written by `migu run` or `migu sweep` "
                "(RUN_DIR/state.json, config.yaml, matrix.json, metrics.json)."
            )
        for p in below:
            if p.resolve() not in {f.resolve() for f in found}:
                found.append(p)
    return found


def _scan(folder: Path, depth: int) -> tuple[list[Path], list[Path]]:
    """Run directories below ``folder``, and folders a run began (log.txt) without a state.json."""
    runs: list[Path] = []
    never_started: list[Path] = []
    if depth == 0:
        return runs, never_started
    for child in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if _is_run_dir(child):
            runs.append(child)  # a run's own subfolders (checkpoint/, predictions/) hold no runs
        elif (child / "log.txt").is_file():
            never_started.append(child)
        else:
            below, stale = _scan(child, depth - 1)
            runs.extend(below)
            never_started.extend(stale)
    return runs, never_started


def _nan(rows: Sequence[Sequence[Any]]) -> list[list[float]]:
    return [[float("nan") if a is None else float(a) for a in row] for row in rows]


def _read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}.")
    return data


def read_run(run_dir: str | Path) -> RunRecord:
    """Read one run directory.

    Args:
        run_dir: A folder with ``state.json``, ``config.yaml``, ``matrix.json`` (``metrics.json``
            is optional: a run killed before its first evaluation has none).

    Returns:
        The :class:`RunRecord`.

    Raises:
        NotARunDir: a required file is missing; the message names it.
    """
    run_dir = Path(run_dir)
    missing = [n for n in ("state.json", "config.yaml", "matrix.json") if not (run_dir / n).is_file()]
    if missing:
        raise NotARunDir(
            f"{run_dir.resolve()} is not a complete run directory: {', '.join(missing)} missing. "
            "Expected the files `migu run` writes (state.json, config.yaml, matrix.json, metrics.json)."
        )
    state = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
    matrix = json.loads((run_dir / "matrix.json").read_text(encoding="utf-8"))
    metrics_file = run_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else {}
    config = _read_yaml(run_dir / "config.yaml")
    variant, overrides = None, {}
    parent_cfg = run_dir.parent / "config.yaml"
    if parent_cfg.is_file():
        variants = _read_yaml(parent_cfg).get("variants") or {}
        for name, ov in variants.items():
            # The engine names a variant's folder after the variant, with odd characters replaced.
            if name == run_dir.name or safe_name(name) == run_dir.name:
                variant, overrides = str(name), flatten(ov or {})
    return RunRecord(
        run_dir=run_dir,
        config=config,
        tasks=list(matrix.get("tasks", [])),
        matrix=_nan(matrix.get("matrix", [])),
        metric=str(matrix.get("metric", metrics.get("metric", ""))),
        metrics=metrics,
        status=str(state.get("status", "unknown")),
        variant=variant,
        variant_overrides=overrides,
        error=state.get("error"),
        chance=_chance(run_dir / "environment.json"),
    )


def _chance(environment: Path) -> dict[str, float]:
    """Task -> ``1 / labels`` from ``environment.json``'s ``test_sets`` (where it records them)."""
    if not environment.is_file():
        return {}
    try:
        test_sets = json.loads(environment.read_text(encoding="utf-8")).get("test_sets") or {}
    except (OSError, ValueError):
        return {}
    return {t: 1.0 / v["labels"] for t, v in test_sets.items() if isinstance(v, dict) and v.get("labels")}


def load_runs(
    paths: Iterable[str | Path], *, include_unfinished: bool = False
) -> tuple[list[RunRecord], list[tuple[Path, str]]]:
    """Read every run under ``paths``.

    Args:
        paths: Run directories or folders above them.
        include_unfinished: Keep runs that have not finished (their matrices have fewer rows).

    Returns:
        ``(runs, left_out)``: the runs read, and ``(run_dir, reason)`` for those left out.

    Raises:
        NotARunDir: a path is neither a run directory nor above one, or no run could be read.
    """
    paths = list(paths)
    runs: list[RunRecord] = []
    left_out: list[tuple[Path, str]] = []
    for path in map(Path, paths):
        if path.is_dir() and not _is_run_dir(path):
            left_out.extend(
                (d, "no state.json: the run failed or stopped before training started (see its log.txt)")
                for d in _scan(path, _MAX_DEPTH)[1]
            )
    for run_dir in find_run_dirs(paths):
        try:
            rec = read_run(run_dir)
        except (NotARunDir, ValueError, json.JSONDecodeError, yaml.YAMLError) as err:
            left_out.append((run_dir, str(err)))
            continue
        if not rec.finished and not include_unfinished:
            why = f": {rec.error}" if rec.error else ""
            left_out.append(
                (run_dir, f"not finished (status {rec.status!r}, {len(rec.matrix) - 1} task(s) done){why}")
            )
            continue
        runs.append(rec)
    if not runs:
        reasons = "; ".join(f"{p}: {r}" for p, r in left_out) or "none found"
        raise NotARunDir(f"No finished run to report under {', '.join(map(str, paths))} ({reasons}).")
    return runs, left_out


def method_label(config: Mapping[str, Any]) -> str:
    """The paper-style name of a run's method, from its raw config.

    ``method`` may be a mapping (``{name: lora, replay_fraction: 0.02}``), a plain string, or absent
    (runs from before methods existed: plain fine-tuning).

    Args:
        config: The raw ``config.yaml`` mapping.

    Returns:
        E.g. ``"FT"``, ``"FT+MIGU"``, ``"LoRAReplay+MIGU"``.
    """
    method = config.get("method")
    replay = 0.0
    if isinstance(method, Mapping):
        name = str(method.get("name") or "ft")
        replay = float(method.get("replay_fraction") or 0.0)
    elif isinstance(method, str) and method:
        name = method
    else:
        name = "ft"
    label = METHOD_NAMES.get(name.lower(), name)
    if replay > 0:
        label += "Replay"
    if (config.get("migu") or {}).get("enabled"):
        label += "+MIGU"
    return label


@dataclass
class Group:
    """Runs that differ only in their seed.

    Attributes:
        label: Human-readable name, unique among the groups of one report.
        method: The method part of the label (variant name or :func:`method_label`).
        runs: The runs, sorted by seed.
        settings: The varying keys that define this group (dotted key -> value).
    """

    label: str
    method: str
    runs: list[RunRecord]
    settings: dict[str, Any]

    @property
    def tasks(self) -> list[str]:
        """Task names (the same for every run of the group)."""
        return self.runs[0].tasks

    @property
    def threshold(self) -> float | None:
        """MIGU's T, or ``None`` without MIGU."""
        return self.runs[0].threshold

    @property
    def seeds(self) -> list[Any]:
        """The runs' seeds."""
        return [r.seed for r in self.runs]

    def metric_values(self, key: str) -> list[float]:
        """The runs' values of one ``metrics.json`` key (runs without it, or with null, left out)."""
        out = []
        for r in self.runs:
            v = r.metrics.get(key)
            if isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v):
                out.append(float(v))
        return out

    def mean_matrix(self) -> list[list[float]]:
        """Element-wise mean of the runs' accuracy matrices (NaN where no run has a value)."""
        n_rows = max(len(r.matrix) for r in self.runs)
        n_cols = len(self.tasks)
        out = []
        for i in range(n_rows):
            row = []
            for j in range(n_cols):
                vals = [
                    r.matrix[i][j]
                    for r in self.runs
                    if i < len(r.matrix) and j < len(r.matrix[i]) and not math.isnan(r.matrix[i][j])
                ]
                row.append(statistics.fmean(vals) if vals else float("nan"))
            out.append(row)
        return out


#: Keys that say which task sequence a run trained; ``group_runs(across_sequences=True)`` ignores them.
SEQUENCE_KEYS = frozenset({"data.order", "data.tasks", "__tasks__"})


def _group_key_values(run: RunRecord, across_sequences: bool = False) -> dict[str, Any]:
    flat = {k: v for k, v in flatten(run.config).items() if k not in IGNORED_KEYS and k != "variants"}
    flat = {k: v for k, v in flat.items() if not k.startswith("variants.")}
    if not run.migu_enabled:  # MIGU's settings do nothing without MIGU
        flat = {k: v for k, v in flat.items() if not k.startswith("migu.") or k == "migu.enabled"}
    flat["__tasks__"] = tuple(run.tasks)  # the sequence actually trained, whatever selected it
    if across_sequences:
        flat = {k: v for k, v in flat.items() if k not in SEQUENCE_KEYS}
    return flat


def _fmt_value(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_fmt_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def group_runs(runs: Sequence[RunRecord], *, across_sequences: bool = False) -> list[Group]:
    """Group runs that differ only in their seed, and label each group.

    Args:
        runs: The runs to compare.
        across_sequences: Let a group span task sequences too (``data.order``, ``data.tasks``), as
            the arms of a paired comparison do (:mod:`migu.report.paired`); runs' labels are then
            left as they are.

    Returns:
        Groups in order of first appearance; every run's ``label`` is set to its group's (unless
        ``across_sequences``).
    """
    values = [_group_key_values(r, across_sequences) for r in runs]
    keys = sorted({k for v in values for k in v})
    # A key varies when the runs that have it disagree; a key missing from a run (MIGU's settings of
    # a run without MIGU, a key added in a later version) does not make it vary.
    varying = [k for k in keys if len({v[k] for v in values if k in v}) > 1]
    # Keys some variant sets are told by the variants' names (FT+random, FT+MIGU(official)): not
    # repeated in the labels of variant runs. A sequence picked by data.order is told by the order.
    variant_keys = {k for r in runs if r.variant is not None for k in r.variant_overrides}
    redundant = {"__tasks__", "data.tasks"} if "data.order" in varying else set()
    if "data.tasks" in varying:
        redundant.add("__tasks__")
    groups: dict[tuple[Any, ...], Group] = {}
    for run, vals in zip(runs, values, strict=True):
        method = run.variant or method_label(run.config)
        settings = {k: vals.get(k, "<unset>") for k in varying}
        key = (method, *sorted(settings.items(), key=lambda kv: kv[0]))
        if key not in groups:
            shown = [
                k
                for k in varying
                if k not in METHOD_KEYS
                and k not in redundant
                and not (run.variant is not None and k in variant_keys)
                and k in vals
            ]
            parts = [
                f"{SHORT_KEYS.get(k, 'tasks' if k == '__tasks__' else k.split('.')[-1])}="
                f"{_fmt_value(vals.get(k))}"
                for k in shown
            ]
            label = " ".join([method, *parts])
            groups[key] = Group(label=label, method=method, runs=[], settings=settings)
        groups[key].runs.append(run)
    out = list(groups.values())
    _make_unique(out)
    for g in out:
        g.runs.sort(key=lambda r: (r.seed is None, r.seed if isinstance(r.seed, int) else 0, str(r.run_dir)))
        if not across_sequences:
            for r in g.runs:
                r.label = g.label
    return out


def _make_unique(groups: list[Group]) -> None:
    seen: dict[str, int] = {}
    for g in groups:
        n = seen.get(g.label, 0)
        seen[g.label] = n + 1
        if n:
            g.label = f"{g.label} ({n + 1})"
