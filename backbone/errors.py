"""One kind of error for input the user can fix, and one way every command reports it.

A ``UserError`` (a config value, a data set, a checkpoint, an output folder) is reported by every
``mae-transfer`` command as one line, ``mae-transfer COMMAND: error: MESSAGE``, with exit code 2 (argparse's
code for bad arguments); its message names the file, key or value. Anything else is a bug and keeps its
traceback.
"""
from __future__ import annotations

import sys
from typing import Callable

USER_ERROR_EXIT = 2


class UserError(ValueError):
    """Input that cannot be used as given; the message names the file, key or value and what is wrong."""


def error_message(exc: BaseException) -> str:
    """The message of ``exc``; for an error re-raised from a DataLoader worker, the original one's, not the
    worker's traceback text that torch wraps it in."""
    message = str(exc)
    if "Original Traceback" in message:  # torch's ExceptionWrapper: the last line is "module.Type: message"
        return message.rstrip().splitlines()[-1].partition(": ")[2]
    return message


def run_command(command: str, body: Callable[[], object]) -> int:
    """Run ``body`` for ``mae-transfer COMMAND``: 0 when it returns, one line and ``USER_ERROR_EXIT`` on a
    ``UserError`` (also one raised inside a DataLoader worker, which torch re-raises under the same type)."""
    try:
        body()
    except UserError as exc:
        print(f"mae-transfer {command}: error: {error_message(exc)}", file=sys.stderr)
        return USER_ERROR_EXIT
    return 0
