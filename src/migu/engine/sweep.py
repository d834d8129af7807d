"""``migu sweep``: one run per point of a grid of config values, for ``migu report`` to compare.

A grid maps dotted config keys to lists of values, e.g. ``{"migu.threshold": [0.3, 0.7],
"seed": [0, 1]}``; its points are the Cartesian product, in the order the keys are given. Point
``{migu.threshold: 0.3, seed: 0}`` of a base config named ``NAME`` is written to::

    <output_dir>/NAME/migu.threshold=0.3,seed=0/             a run directory, or, when the base
    <output_dir>/NAME/migu.threshold=0.3,seed=0/<variant>/   config has variants, one per variant
                                                             (with the point's config.yaml above them)

Running a sweep again skips the runs that finished, resumes the ones that started, and starts the
others; a run that fails is reported and the sweep goes on. ``sweep.json`` in the sweep folder
records every run's outcome.
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from migu.engine.config import ConfigError, RunConfig, parse_overrides
from migu.engine.rundir import safe_name

__all__ = [
    "SweepOutcome",
    "SweepRun",
    "expand_grid",
    "format_sweep_summary",
    "load_sweep_config",
    "parse_grid",
    "plan_sweep",
    "point_name",
    "run_sweep",
    "select_variants",
]

# Keys a grid may not set: they decide where the runs go, which the sweep owns.
_RESERVED = ("name", "output_dir")


def parse_grid(items: Sequence[str] | Mapping[str, Any]) -> dict[str, list[Any]]:
    """Parse ``KEY=[v1,v2]`` strings (values as YAML) or a mapping into a grid.

    A single value (``seed=3``) is a list of one.

    Args:
        items: ``["migu.threshold=[0.3,0.7]", "seed=[0,1]"]`` or ``{"seed": [0, 1]}``.

    Returns:
        Dotted key -> list of values, in the order given.

    Raises:
        ConfigError: not ``KEY=VALUES``, invalid YAML, an empty list, a repeated or reserved key.
    """
    grid: dict[str, list[Any]] = {}
    pairs: list[tuple[str, Any]] = []
    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    else:
        for item in items:  # one at a time: a key given twice is an error, not "the last one wins"
            pairs.extend(parse_overrides([item]).items())
    for key, values in pairs:
        if key in _RESERVED:
            raise ConfigError(
                f"grid key {key!r}: the sweep sets it (runs go to <output_dir>/<name>/<grid point>/); "
                "set it as a plain override instead."
            )
        if key in grid:
            raise ConfigError(f"grid key {key!r} given twice.")
        values = list(values) if isinstance(values, list | tuple) else [values]
        if not values:
            raise ConfigError(f"grid key {key!r} has no value.")
        grid[key] = values
    return grid


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every point of the grid (Cartesian product; the last key varies fastest)."""
    keys = list(grid)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(grid[k] for k in keys))]


def _fmt(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "-".join(_fmt(v) for v in value)
    if isinstance(value, Mapping):
        return "-".join(f"{k}_{_fmt(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def point_name(point: Mapping[str, Any]) -> str:
    """Folder name of a grid point: ``key=value,key=value`` (characters unsafe in paths replaced)."""
    return safe_name("+".join(f"{k}={_fmt(v)}" for k, v in point.items())) or "base"


@dataclass
class SweepRun:
    """One run of a sweep.

    Attributes:
        point: The grid point's values.
        name: The point's folder name.
        variant: The variant's name (``None`` when the base config has no variants).
        config: The run's configuration (point and variant applied, no variants left).
        run_dir: Where it is written.
        point_config: The point's configuration with its variants (written above variant runs).
    """

    point: dict[str, Any]
    name: str
    variant: str | None
    config: RunConfig
    run_dir: Path
    point_config: RunConfig

    @property
    def label(self) -> str:
        """``point`` or ``point/variant``."""
        return self.name if self.variant is None else f"{self.name}/{self.variant}"


@dataclass
class SweepOutcome:
    """What happened to one run of a sweep.

    Attributes:
        run: The run.
        status: ``"finished"`` (ran now), ``"skipped"`` (had finished before) or ``"failed"``.
        seconds: Wall-clock time spent on it now.
        metrics: Its ``metrics.json`` (empty when failed).
        error: ``"ExceptionType: message"`` when failed.
        traceback: The traceback when failed.
    """

    run: SweepRun
    status: str
    seconds: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    traceback: str = ""


def select_variants(config: RunConfig, names: Sequence[str]) -> RunConfig:
    """``config`` with only the variants ``names`` (kept in the config's order).

    Raises:
        ConfigError: a name is not a variant of ``config`` (the message lists them), or none is given.
    """
    if not names:
        raise ConfigError("--variants is empty: give variant names, e.g. --variants FT,FT+MIGU.")
    unknown = [n for n in names if n not in config.variants]
    if unknown:
        raise ConfigError(
            f"--variants: {', '.join(unknown)} not among the config's variants "
            f"({', '.join(config.variants) or 'none'})."
        )
    return dataclasses.replace(config, variants={k: v for k, v in config.variants.items() if k in names})


def plan_sweep(base: RunConfig, grid: Mapping[str, Sequence[Any]]) -> tuple[Path, list[SweepRun]]:
    """Every run of a sweep, with its configuration checked before anything runs.

    Args:
        base: The configuration every point starts from (its ``variants`` are run at each point).
        grid: Dotted key -> values (see :func:`parse_grid`). A base config with ``seeds`` adds
            them as the grid key ``seed``, last.

    Returns:
        ``(sweep_dir, runs)`` with ``sweep_dir = <output_dir>/<name or "sweep">``.

    Raises:
        ConfigError: a grid point or a variant gives an invalid configuration (the message names it),
            or two points would share a folder.
    """
    if base.seeds:
        # A sweep runs seeds as a grid key: the config's seeds become the last one.
        if "seed" in grid:
            raise ConfigError(
                f"the config runs seeds={base.seeds} and the grid sets seed: keep one of the two "
                "(--grid seed=[...] with seeds=[], or no seed in the grid)."
            )
        grid = {**grid, "seed": list(base.seeds)}
        base = dataclasses.replace(base, seeds=[])
    sweep_dir = Path(base.output_dir) / safe_name(base.name or "sweep")
    runs: list[SweepRun] = []
    seen: dict[str, dict[str, Any]] = {}
    for point in expand_grid(grid):
        name = point_name(point)
        if name in seen:
            raise ConfigError(f"grid points {seen[name]} and {point} would share the folder {name!r}.")
        seen[name] = point
        try:
            cfg = base.with_overrides({**point, "output_dir": str(sweep_dir), "name": name})
        except ConfigError as e:
            raise ConfigError(f"grid point {name}: {e}") from None
        if not cfg.variants:
            runs.append(SweepRun(point, name, None, cfg, sweep_dir / name, cfg))
            continue
        for variant, overrides in cfg.variants.items():
            try:
                vcfg = dataclasses.replace(cfg.with_overrides(overrides), variants={})
            except ConfigError as e:
                raise ConfigError(f"grid point {name}, variant {variant}: {e}") from None
            runs.append(SweepRun(point, name, variant, vcfg, sweep_dir / name / safe_name(variant), cfg))
    return sweep_dir, runs


def _status(run_dir: Path) -> str | None:
    from migu.engine.rundir import read_json

    state = run_dir / "state.json"
    if not state.is_file():
        return None
    try:
        return str(read_json(state).get("status"))
    except (OSError, ValueError):
        return None


def _write_summary(sweep_dir: Path, grid: Mapping[str, Sequence[Any]], outcomes: list[SweepOutcome]) -> None:
    from migu.engine.rundir import write_json

    write_json(
        sweep_dir / "sweep.json",
        {
            "grid": {k: list(v) for k, v in grid.items()},
            "runs": [
                {
                    "run": o.run.label,
                    "run_dir": str(o.run.run_dir),
                    "point": o.run.point,
                    "variant": o.run.variant,
                    "status": o.status,
                    "seconds": round(o.seconds, 3),
                    "final_average_accuracy": o.metrics.get("final_average_accuracy"),
                    "error": o.error or None,
                    "traceback": o.traceback or None,
                }
                for o in outcomes
            ],
        },
    )


def _record_variants(path: Path, point: dict[str, Any]) -> None:
    """Write the point's config above its variant runs, or add the variants it lacks: a later
    sweep with other ``--variants`` into the same folder must not leave its runs unnamed."""
    from migu.engine.rundir import atomic_write_text

    if not path.is_file():
        atomic_write_text(path, yaml.safe_dump(point, sort_keys=False))
        return
    existing = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    known = existing.get("variants") or {}
    missing = {k: v for k, v in (point.get("variants") or {}).items() if k not in known}
    if missing:
        existing["variants"] = {**known, **missing}
        atomic_write_text(path, yaml.safe_dump(existing, sort_keys=False))


def run_sweep(
    base: RunConfig,
    grid: Mapping[str, Sequence[Any]],
    *,
    show_progress: bool = True,
    echo: Callable[[str], None] = print,
) -> tuple[Path, list[SweepOutcome]]:
    """Run every point of ``grid`` on top of ``base``; skip finished runs, survive failed ones.

    Args:
        base: The configuration every point starts from.
        grid: Dotted key -> values.
        show_progress: Progress bars inside each run.
        echo: Where one line per run goes (start, outcome).

    Returns:
        ``(sweep_dir, outcomes)``, one outcome per run, in plan order. ``sweep_dir/sweep.json``
        holds the same.

    Raises:
        ConfigError: an invalid grid point (nothing is run then).
    """
    from migu.engine.rundir import read_json
    from migu.engine.runner import run

    sweep_dir, runs = plan_sweep(base, grid)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    outcomes: list[SweepOutcome] = []
    for i, sr in enumerate(runs, 1):
        head = f"[{i}/{len(runs)}] {sr.label}"
        status = _status(sr.run_dir)
        if status == "finished":
            metrics_file = sr.run_dir / "metrics.json"
            metrics = read_json(metrics_file) if metrics_file.is_file() else {}
            outcomes.append(SweepOutcome(sr, "skipped", metrics=metrics))
            echo(f"{head}: finished before, skipped")
            continue
        resume = status is not None  # started before (killed or failed mid-way): continue it
        echo(f"{head}: {'resuming' if resume else 'running'}")
        if sr.variant is not None:
            # What `migu run` writes above variant runs: lets `migu run --resume POINT` and the
            # report's variant labels work on sweep folders too.
            _record_variants(sr.run_dir.parent / "config.yaml", sr.point_config.to_dict())
        t0 = time.perf_counter()
        try:
            result = run(sr.config, sr.run_dir, resume=resume, show_progress=show_progress)
        except KeyboardInterrupt:
            raise
        except Exception as err:  # one failed run must not stop the others
            outcome = SweepOutcome(
                sr,
                "failed",
                time.perf_counter() - t0,
                error=f"{type(err).__name__}: {err}",
                traceback=traceback.format_exc(),
            )
            echo(f"{head}: FAILED: {outcome.error.splitlines()[0] if outcome.error else ''}")
        else:
            outcome = SweepOutcome(sr, "finished", time.perf_counter() - t0, metrics=dict(result.metrics))
            echo(f"{head}: finished in {outcome.seconds:.1f} s")
        outcomes.append(outcome)
        _write_summary(sweep_dir, grid, outcomes)
        gc.collect()  # each run builds a model: free it before the next
    _write_summary(sweep_dir, grid, outcomes)
    return sweep_dir, outcomes


def format_sweep_summary(outcomes: Sequence[SweepOutcome]) -> str:
    """A plain-text table: run, status, final average accuracy, BWT, seconds, error."""

    def num(x: Any) -> str:
        return f"{x:.3f}" if isinstance(x, int | float) and not isinstance(x, bool) else "-"

    rows = [
        [
            o.run.label,
            o.status,
            num(o.metrics.get("final_average_accuracy")),
            num(o.metrics.get("backward_transfer")),
            f"{o.seconds:.1f}",
            (o.error.splitlines()[0][:100] if o.error else ""),
        ]
        for o in outcomes
    ]
    headers = ["run", "status", "AA", "BWT", "seconds", "error"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    counts = {s: sum(o.status == s for o in outcomes) for s in ("finished", "skipped", "failed")}
    lines.append(
        f"{counts['finished']} finished, {counts['skipped']} skipped (finished before), {counts['failed']} failed"
    )
    return "\n".join(lines)


def load_sweep_config(
    path: str | Path | None, overrides: Sequence[str] = (), *, base: RunConfig | None = None
) -> tuple[RunConfig, dict[str, list[Any]]]:
    """A sweep's base configuration and the grid its file gives under ``sweep:`` (if any).

    A sweep file is a run config with one more top-level key, ``sweep``, mapping dotted keys to
    lists of values. Its name defaults to the file's stem.

    Args:
        path: YAML file, or ``None`` to start from ``base``.
        overrides: ``key=value`` strings applied on top.
        base: The config a missing ``path`` stands for (default ``RunConfig()``).

    Returns:
        ``(config, grid)``; the grid is empty when the file has no ``sweep:``.

    Raises:
        ConfigError: a missing or invalid file, a bad override, or a bad ``sweep:`` block.
    """
    from migu.engine.config import load_run_config, load_yaml

    if path is None:
        return load_run_config(None, overrides, base=base), {}
    file = Path(path).expanduser().resolve()
    raw: Any = None
    if file.is_file():
        try:
            raw = load_yaml(file.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            raw = None  # load_run_config below reports the syntax error with its position
    grid: dict[str, list[Any]] = {}
    if isinstance(raw, Mapping) and "sweep" in raw:
        rest = {k: v for k, v in raw.items() if k != "sweep"}
        if not isinstance(raw["sweep"], Mapping):
            raise ConfigError(
                f"{file}: `sweep:` must map dotted keys to lists of values, e.g. {{seed: [0, 1]}}."
            )
        try:
            grid = parse_grid(raw["sweep"])
            cfg = load_run_config(None, overrides, base=(base or RunConfig()).with_overrides(rest))
        except ConfigError as e:
            raise ConfigError(f"{file}: {e}") from None
    else:
        cfg = load_run_config(file, overrides, base=base)
    if cfg.name is None:
        cfg = cfg.with_overrides({"name": file.stem})
    return cfg, grid
