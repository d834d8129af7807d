"""How the command-line tools end: one mapping from errors to messages and exit codes.

``migu`` and ``migu pretrain`` both run their work through :func:`run_command`, so an error ends
either command the same way: one line on stderr that names the problem and the fix, no traceback
(``MIGU_DEBUG=1`` shows it for the errors that are not the user's input), and an exit code a script
can test.

| code | meaning |
| --- | --- |
| 0 | done |
| 1 | a missing package, bad data, a full disk or a forbidden folder (the message says the fix) |
| 2 | bad input: config, task, model, preset, run directory (nothing was started) |
| 3 | training diverged (the run is marked ``diverged``) |
| 130 | interrupted (Ctrl-C); the run resumes from its last checkpoint |
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = ["run_command"]


def run_command(command: str, work: Callable[[], int], *, resume: str = "migu run --resume RUN_DIR") -> int:
    """Run ``work`` and turn the errors users can fix into a message on stderr and an exit code.

    Args:
        command: The command's name in messages, e.g. ``"migu run"``.
        work: The command's body; returns its exit code.
        resume: The command line that continues an interrupted run, for the Ctrl-C message.

    Returns:
        ``work``'s exit code, or the code of the error (see the module's table).
    """
    from migu.config.schema import ConfigError
    from migu.data.task import TaskDataError
    from migu.engine.rundir import RunDirLocked
    from migu.engine.runner import RunDirExists, TrainingDiverged
    from migu.models.loading import ModelNotFound

    try:
        return work()
    except (ConfigError, TaskDataError, RunDirExists, RunDirLocked, ModelNotFound, FileNotFoundError) as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 2
    except TrainingDiverged as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print(
            f"{command}: interrupted. A run continues from its last checkpoint with `{resume}`.",
            file=sys.stderr,
        )
        return 130
    except OSError as err:  # disk full, read-only or forbidden folder: the message names the path
        print(f"{command}: {err}", file=sys.stderr)
        return 1
    except (ImportError, ValueError) as err:  # missing data/model package, bad data: the message says the fix
        if os.environ.get("MIGU_DEBUG"):
            raise
        print(f"{command}: {err}\n(set MIGU_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
