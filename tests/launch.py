"""Launching multi-process tests: a free port and the torchrun command line (2 gloo CPU processes)."""

from __future__ import annotations

import socket
import sys


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
