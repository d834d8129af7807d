"""A run directory on disk: every file written atomically, so a crash never leaves half a file.

Layout of ``RUN_DIR``::

    config.yaml         the resolved configuration (what ``--resume`` reads back)
    environment.json    package versions, device, seed, git commit, command line, and per task
                        the size and SHA-256 of its test sample (``test_sets``)
    state.json          progress: finished tasks, optimizer steps into the current task, status
    matrix.json/.csv    accuracy matrix R (row 0: before training; row i: after task i)
    metrics.json        metrics of R (migu.eval.metrics.summarize) and timings
    predictions/        row<i>_<task>.jsonl: label, prediction, correct per test record
    checkpoint/         model, optimizer, RNG states (accelerate.save_state) and the scheduler
    log.txt             the run's log
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "LOCK_FILE",
    "LOG_FILE",
    "RunDirLocked",
    "add_log_file",
    "atomic_write_bytes",
    "atomic_write_text",
    "config_changes",
    "environment_info",
    "latest_complete",
    "lock_run_dir",
    "portable_path",
    "read_json",
    "runs_below",
    "safe_name",
    "seed_folder",
    "swap_in",
    "write_json",
    "write_matrix",
]

#: The file a running ``migu run`` holds an OS lock on (``fcntl.flock``); the lock dies with the process.
LOCK_FILE = "run.lock"
#: The run's log (training loss, accuracy rows, errors); ``migu run`` and ``migu pretrain`` write it.
LOG_FILE = "log.txt"


def safe_name(name: str) -> str:
    """A run or variant name as a folder name: characters other than letters, digits, ``_.+=-`` become ``_``.

    The one rule every writer and reader of run directories uses (``FT+MIGU(official)`` ->
    ``FT+MIGU_official_``), so that ``--resume``, sweeps and reports find the same folders.
    """
    return re.sub(r"[^\w.+=-]", "_", name)


def seed_folder(seed: int) -> str:
    """The folder of one seed of a run with ``seeds: [...]`` (``<name>/seed=<s>/<variant>``), named as
    a sweep names its grid point ``{seed: s}``."""
    return f"seed={seed}"


def runs_below(folder: Path) -> list[Path]:
    """The run directories one level below ``folder`` (its variants, or its seeds without variants)
    and two levels below it in seed folders (``seed=<s>/<variant>``); checkpoints are not runs."""
    found = [*folder.glob("*/state.json"), *folder.glob("seed=*/*/state.json")]  # seed_folder's names
    return sorted(p.parent for p in found if not p.parent.name.startswith("checkpoint"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class RunDirLocked(RuntimeError):
    """Another process is writing this run directory."""


class RunDirLock:
    """An exclusive OS lock on ``RUN_DIR/run.lock`` for as long as a run writes there.

    ``fcntl.flock`` locks belong to the open file: a process that dies (SIGKILL included) leaves no
    stale lock behind. Where ``fcntl`` does not exist (Windows) the lock is a no-op.
    """

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._file: Any = None

    def acquire(self) -> None:
        """Take the lock or raise :class:`RunDirLocked` naming the holder's pid."""
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        f = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            f.close()
            raise RunDirLocked(
                f"{self.path.parent.resolve()} is being written by another migu process (pid {holder}). "
                "Wait for it to finish (or stop it), or write to another run directory (name=... / output_dir=...)."
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file drops the flock
            self._file = None

    def __enter__(self) -> RunDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def lock_run_dir(run_dir: str | Path) -> RunDirLock:
    """An unacquired :class:`RunDirLock` for ``run_dir`` (use it as a context manager)."""
    return RunDirLock(Path(run_dir))


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict) and tree:
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def config_changes(old: dict[str, Any], new: dict[str, Any], ignore: Sequence[str] = ()) -> list[str]:
    """Dotted keys whose value differs between two config dicts, as ``"key: old -> new"`` lines.

    Keys in ``ignore`` (and below them) are not compared.
    """
    a, b = _flat(old), _flat(new)
    skip = tuple(ignore)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key in skip or key.startswith(tuple(f"{k}." for k in skip)):
            continue
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            lines.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return lines


def add_log_file(run_dir: str | Path, logger: logging.Logger) -> logging.Handler:
    """Send ``logger``'s INFO records to ``RUN_DIR/log.txt`` (appended: a resumed run adds to it).
    Remove the returned handler (and close it) when the run ends."""
    handler = logging.FileHandler(Path(run_dir) / LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def swap_in(tmp: Path, final: Path) -> None:
    """Put the folder ``tmp`` in the place of ``final`` by renames: ``final`` -> ``final.old``,
    ``tmp`` -> ``final``, then ``final.old`` removed. A kill at any moment leaves a complete folder
    at ``final`` or at ``final.old`` (:func:`latest_complete`)."""
    old = final.with_name(final.name + ".old")
    if final.exists():
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def latest_complete(final: Path) -> Path | None:
    """The folder :func:`swap_in` last completed: ``final``, else ``final.old`` (killed between
    the two renames), else ``None`` (nothing saved yet)."""
    if final.is_dir():
        return final
    old = final.with_name(final.name + ".old")
    return old if old.is_dir() else None


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; run files read like any other file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomically write ``text`` as UTF-8 (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, data: Any) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def write_matrix(
    run_dir: Path, tasks: Sequence[str], rows: Sequence[Sequence[float | None]], metric: str
) -> None:
    """Write the accuracy matrix as ``matrix.json`` and ``matrix.csv`` (rows present so far).

    A cell not evaluated (row 0 with ``eval.before_training: false``) is ``None``: null in JSON, an
    empty cell in CSV.
    """
    names = ["before training" if i == 0 else f"after {tasks[i - 1]}" for i in range(len(rows))]
    write_json(
        run_dir / "matrix.json", {"metric": metric, "tasks": list(tasks), "rows": names, "matrix": rows}
    )
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["row", *tasks])
    for name, row in zip(names, rows, strict=True):
        writer.writerow([name, *("" if a is None else f"{a:.6f}" for a in row)])
    atomic_write_text(run_dir / "matrix.csv", buf.getvalue())


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def portable_path(path: str | Path) -> str:
    """``path`` without the parts that only name this machine, for files others read.

    A folder inside an installed package becomes ``site-packages/<package>/...``, one in the home
    folder ``~/...``, one under the working directory a relative path; anything else is kept.
    Hub ids and other strings that are not absolute paths are returned unchanged.
    """
    import site
    import sysconfig

    text = str(path)
    p = Path(text)
    if not p.is_absolute():
        return text
    roots = [sysconfig.get_paths()["purelib"], *site.getsitepackages()]
    for root in roots:
        if p.is_relative_to(root):
            return str(Path("site-packages") / p.relative_to(root))
    if p.is_relative_to(Path.cwd()):
        return str(p.relative_to(Path.cwd()))
    if p.is_relative_to(Path.home()):
        return str(Path("~") / p.relative_to(Path.home()))
    return text


def cpu_model() -> str | None:
    """The processor's model name (``/proc/cpuinfo`` on Linux, else :func:`platform.processor`).

    Recorded because the times quoted for a run depend on it: the same preset takes different
    times on two machines of the same core count.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment_info(
    seed: int, device: str, num_processes: int, model_source: str | None = None
) -> dict[str, Any]:
    """What a reader needs to reproduce a run: versions, device, seed, commit, command line.

    ``model_source`` (where the weights were loaded from) is recorded without machine-only parts
    (:func:`portable_path`).
    """
    import torch

    versions = {}
    for pkg in ("migu", "torch", "transformers", "peft", "accelerate", "safetensors", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "versions": versions,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "device": device,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "num_processes": num_processes,
        "torch_threads": torch.get_num_threads(),
        "seed": seed,
        "git_commit": _git_commit(),
        "command": sys.argv,
        **({"model_source": portable_path(model_source)} if model_source is not None else {}),
    }
