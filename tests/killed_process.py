"""Run a ``migu`` command in this process and SIGKILL it after N optimizer steps, as an out-of-memory
kill would: ``python tests/killed_process.py N run CONFIG --no-progress``.

The kill comes through the public step callback (:func:`migu.engine.steps.on_step`), so the product
code holds no test switch.
"""

from __future__ import annotations

import os
import signal
import sys

from migu.cli import main
from migu.engine.steps import on_step


def _kill_after(n: int):
    def callback(done: int) -> None:
        if done >= n:
            os.kill(os.getpid(), signal.SIGKILL)

    return callback


if __name__ == "__main__":
    with on_step(_kill_after(int(sys.argv[1]))):
        sys.exit(main(sys.argv[2:]))
