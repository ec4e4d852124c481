"""One kind of error for input the user can fix, and one way every command reports it.

A ``UserError`` (a config value, a data set, a checkpoint, an output folder) is reported by every
``mae-transfer`` command as one line, ``mae-transfer COMMAND: error: MESSAGE``, with exit code 2 (argparse's
code for bad arguments); its message names the file, key or value. So is an ``OSError`` of the file system
about a path the command was given (a read-only output folder, a folder where a file is written, a full disk).
Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import errno
import re
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

USER_ERROR_EXIT = 2

# Errors of the file system a command was pointed at (a read-only or full disk, a folder where a file was
# asked for): the user's to fix, reported with the path like any other input error.
_ENVIRONMENT_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.EISDIR, errno.ENOTDIR, errno.EEXIST,
                       errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.ELOOP)


class UserError(ValueError):
    """Input that cannot be used as given; the message names the file, key or value and what is wrong."""


class LossDiverged(UserError, FloatingPointError):
    """The loss (or what the model predicts) became inf or NaN. Reported in one line like other input errors:
    what usually makes it is a config value (the learning rate); the run record says "failed" with the reason."""


@contextmanager
def config_syntax_named(config: str | Path, error: type[UserError] = UserError) -> Iterator[None]:
    """Report a Python config file that does not parse as one ``error`` naming the file and line (the
    frameworks' loaders raise a bare ``SyntaxError``, or wrap it without the line)."""
    try:
        yield
    except SyntaxError as exc:
        # mmengine re-raises ast.parse's error as "There are syntax errors in config file FILE: ..." without the
        # line; the original is its context
        original = exc.__context__ if exc.lineno is None and isinstance(exc.__context__, SyntaxError) else exc
        wrapped = re.search(r"config file (.+?): ", exc.msg or "")
        real_file = original.filename and not original.filename.startswith("<")
        where = original.filename if real_file else wrapped.group(1) if wrapped else str(config)
        line = f", line {original.lineno}" if original.lineno else ""
        raise error(f"{where}{line}: syntax error in the config file: {original.msg}") from None


def require_device(device: str | None, option: str) -> None:
    """Refuse a CUDA device when none is available, naming the option that asked for it."""
    import torch

    if device and str(device).startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{option}={device!r} but no CUDA device is available; use cpu")


def error_message(exc: BaseException) -> str:
    """The message of ``exc``; for an error re-raised from a DataLoader worker, the original one's, not the
    worker's traceback text that torch wraps it in."""
    message = str(exc)
    if "Original Traceback" in message:  # torch's ExceptionWrapper: the last line is "module.Type: message"
        return message.rstrip().splitlines()[-1].partition(": ")[2]
    return message


def file_system_message(exc: OSError) -> str | None:
    """One line for an ``OSError`` of the file system about a named path (a read-only output folder, a folder
    given where a file is written, a full disk); None for any other error."""
    if exc.errno not in _ENVIRONMENT_ERRNOS or exc.filename is None:
        return None
    # os.replace(tmp, target) names both; the target is the path the user gave
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    if exc.errno == errno.EISDIR:
        return f"{path}: is a folder; give a file name"
    return f"{path}: {exc.strerror}"


def run_command(command: str, body: Callable[[], object]) -> int:
    """Run ``body`` for ``mae-transfer COMMAND``: 0 when it returns, one line and ``USER_ERROR_EXIT`` on a
    ``UserError`` (also one raised inside a DataLoader worker, which torch re-raises under the same type) or
    on a file-system error about a path (``file_system_message``)."""
    try:
        body()
    except UserError as exc:
        print(f"mae-transfer {command}: error: {error_message(exc)}", file=sys.stderr)
        return USER_ERROR_EXIT
    except OSError as exc:
        message = file_system_message(exc)
        if message is None:
            raise
        print(f"mae-transfer {command}: error: {message}", file=sys.stderr)
        return USER_ERROR_EXIT
    return 0
