"""Launching multi-process tests: a free port, the torchrun command line (2 gloo CPU processes), and
one launch with the environment these tests share."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the launch helpers themselves run without importing torch
    import torch


def free_port() -> int:
    """A TCP port nobody listens on now (the rendezvous port of one launch)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(*target: str, nproc: int = 2) -> list[str]:
    """``python -m torch.distributed.run`` on localhost with ``nproc`` processes, then ``target``
    (a script and its arguments, or ``-m module ...``)."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()), *target,
    ]  # fmt: skip


def launch_env(**extra: str) -> dict[str, str]:
    """The environment of a launched test: one thread a process (2 processes share 2 cores), no Hub,
    and gloo pinned to the loopback interface (every rank is on this machine; without it gloo picks
    the interface its hostname resolves to)."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "GLOO_SOCKET_IFNAME": "lo", **extra}


def run_launch(build: Callable[[], list[str]], timeout: int) -> subprocess.CompletedProcess:
    """Run the command ``build()`` returns; if it times out, once more with a fresh command (a new port).

    Only for launches that write nothing a second try would find (worker scripts writing one output
    file). A worker that deadlocks in MIGU's own collectives hangs both tries, so this hides no bug of
    ours. The one hang seen (a CI run, 300 s) was torch's teardown after the work, which
    :func:`exit_worker` now skips; the second try is a guard against another such stall.
    """
    for attempt in (1, 2):
        cmd = build()
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=launch_env())
        except subprocess.TimeoutExpired:
            if attempt == 2:
                raise
            warnings.warn(
                f"{' '.join(cmd[:8])} ... timed out after {timeout} s; launching it once more", stacklevel=2
            )
    raise AssertionError("unreachable")


def exit_worker() -> None:
    """End a launched worker after its last barrier without torch's process teardown.

    On this CPU, that teardown sometimes never ends (a rank blocked in ``std::thread::join`` at exit,
    after ``destroy_process_group`` returned and the results were saved; seen with py-spy in a hung CI
    launch) or aborts ("terminate called without an active exception"). Both are torch's, after the
    test's work is done, so workers leave with ``os._exit(0)`` once their output is written.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def assert_close_up_to_adam_noise(
    actual: torch.Tensor,
    expected: torch.Tensor,
    *,
    atol: float,
    outlier_atol: float,
    max_outlier_fraction: float,
    msg: str,
) -> None:
    """``actual`` equals ``expected`` to ``atol`` (plus rtol 1e-5) except in at most
    ``max_outlier_fraction`` of the elements, which must still be within ``outlier_atol``.

    Why: 2 ranks sum gradients in another order than 1 process, and an element whose true gradient is
    about 0 gets a gradient of float noise, which Adam divides by ``sqrt(v)`` and turns into a move of
    up to one step of lr. How far that noise goes depends on the CPU's kernels (measured: 1 of 4096
    elements at 2.4e-3 x lr on an Intel Xeon, none beyond 1e-3 x lr on an AMD EPYC). A real fault
    of the distributed run (a rank missing the all-reduce, a mask differing between ranks) moves whole
    rows by steps of lr: many elements, and far beyond ``outlier_atol``.
    """
    diff = (actual - expected).abs()  # same shape as the weight
    beyond = diff > atol + 1e-5 * expected.abs()
    fraction = beyond.float().mean().item()
    worst = diff.max().item() if diff.numel() else 0.0
    assert fraction <= max_outlier_fraction and worst <= outlier_atol, (
        f"{msg}: {int(beyond.sum())} of {diff.numel()} elements beyond {atol:g} "
        f"(at most {max_outlier_fraction:.1%} allowed), largest difference {worst:.3g} (at most {outlier_atol:g})"
    )
