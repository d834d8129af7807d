"""A trained run read back from its directory: evaluation (``migu eval``) and analysis (reports).

Nothing here trains. :func:`load_trained` rebuilds the model of a run directory as it stood after
its last finished task; :func:`evaluate_run` scores it on the run's tasks (or others).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from migu.engine.config import load_run_config, parse_overrides
from migu.engine.rundir import read_json, runs_below, write_json
from migu.engine.runner import _Run
from migu.engine.tasks import load_tasks

__all__ = ["evaluate_run", "load_trained"]


@contextlib.contextmanager
def load_trained(
    run_dir: str | Path, overrides: Sequence[str] = (), *, workdir: str = "eval", show_progress: bool = False
) -> Iterator[_Run]:
    """A run rebuilt from its directory, for evaluation and analysis (not for more training).

    The model gets the method's structure after the last finished task (adapters, merged weights)
    and the latest checkpoint's weights; MIGU's hooks are not attached. The tasks are the saved
    config's, or others through ``overrides``; the head keeps the labels the run was trained on.
    Files the caller writes go under ``RUN_DIR/<workdir>/``. Use as a context manager: the run is
    closed (hooks removed, memory freed) on exit.

    Yields:
        The run: ``.unwrapped`` (the model), ``.family``, ``.tasks``, ``.accelerator``,
        ``.state["task"]`` (finished tasks), ``.evaluate_all(row)``, ``.evaluate_general(row)``.

    Raises:
        FileNotFoundError: no ``config.yaml`` or no checkpoint.
        ConfigError: an invalid override.
    """
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise FileNotFoundError(f"{run_dir.resolve()} is not a run directory (no config.yaml).")
    ckpt = run_dir / "checkpoint"
    if not ckpt.is_dir():
        raise FileNotFoundError(
            f"{run_dir.resolve()} has no checkpoint yet (one is written after each task); nothing to evaluate."
        )
    saved = load_run_config(run_dir / "config.yaml")
    cfg = saved.with_overrides(parse_overrides(overrides)) if overrides else saved
    trained_labels = sorted({lab for t in load_tasks(saved.data, seed=saved.seed) for lab in t.labels})
    r = _Run(cfg, run_dir / workdir, show_progress, labels=trained_labels)
    try:
        r.state["task"] = read_json(run_dir / "state.json")["task"]
        r.start(resume=False)  # the method's structure at that point of the sequence
        if r.handle is not None:  # an unfinished run's next task attached MIGU: not wanted here
            r.handle.remove()
            r.handle = None
        r.accelerator.load_state(str(ckpt))
        yield r
    finally:
        r.close()


def evaluate_run(
    run_dir: str | Path, overrides: Sequence[str] = (), *, show_progress: bool = True
) -> dict[str, Any]:
    """Evaluate the latest checkpoint of a run on its tasks (or others, through overrides).

    Results go to ``RUN_DIR/eval/results.json`` and predictions to ``RUN_DIR/eval/predictions/``.

    Args:
        run_dir: A run directory with a checkpoint.
        overrides: ``key=value`` changes to the saved config, e.g. ``data.tasks=[rotten_tomatoes]``
            or ``eval.metric=rank``.

    Returns:
        ``{"tasks": [...], "accuracy": [...], "metric": str, "after_tasks": int}``, plus
        ``"general"`` (probe name -> ``{"acc", "acc_norm", "n"}``) when ``eval.general`` is set.
    """
    run_dir = Path(run_dir)
    # The parent of variants (NAME/<variant>) or of seeds (NAME/seed=<s>/<variant>).
    runs = [str(p.relative_to(run_dir)) for p in runs_below(run_dir)]
    if not (run_dir / "state.json").exists() and runs:
        raise FileNotFoundError(
            f"{run_dir} holds the runs of variants {', '.join(runs)}: evaluate one of them, e.g. "
            f"`migu eval {run_dir / runs[0]}`."
        )
    with load_trained(run_dir, overrides, workdir="eval", show_progress=show_progress) as r:
        done = r.state["task"]
        accs = r.evaluate_all(done)
        general = r.evaluate_general(done) if r.general else None
    result = {"tasks": [t.name for t in r.tasks], "accuracy": accs, "metric": r.metric, "after_tasks": done}
    if general is not None:
        result["general"] = general
    if r.is_main:
        write_json(run_dir / "eval" / "results.json", result)
    return result
