"""The one output-folder policy of every command: nothing the user made is written over, deleted or written through.

- A command writes only into a folder that is new, empty, or one it made itself. It marks such a folder with
  ``.mae-transfer-run``, a small JSON file naming the command (``{"schema": "mae-transfer/output-v1",
  "written_by": "detect train"}``), and recognises its folders by that content, never by a common file name
  (``plan.json``, ``manifest.json``, ``config.yaml``). A run folder holding a run record of this project
  (``run_record.json`` with its schema) counts as made by a run as well.
- Nothing is written through a symlink: a symlink as the folder or anywhere inside it is refused (no command
  makes one, so it was put there by someone else).
- ``--out`` may not be, or contain, an input of the command (config file, data, images, checkpoint); paths are
  compared after resolving ``..`` and symlinks, and hard links count as the same file.
- Only folders carrying the command's own marker are ever deleted (``demo --fresh``, ``generate-data
  --overwrite``, pretraining's stale image caches).
- A finished run stays as it was when a resume of it fails: its record and metrics are put back.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .errors import UserError
from .run_record import RECORD_NAME, atomic_write, atomic_write_json, read_run_record

MARKER = ".mae-transfer-run"
MARKER_SCHEMA = "mae-transfer/output-v1"


def _resolved(path: str | Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_inputs_in(out: str | Path, inputs: Iterable[str | Path | None], flag: str = "--out") -> None:
    """Refuse an output path that is, or contains, one of ``inputs`` (``None`` entries are skipped), compared
    after resolving; writing there would replace or mix with what the command reads."""
    target = _resolved(out)
    for item in inputs:
        if item is None or str(item) == "":
            continue
        source = _resolved(item)
        if source == target or _same_file(item, out):
            raise UserError(f"{flag} {out} is the input {item}; outputs never replace an input: give another path")
        if target in source.parents:
            raise UserError(f"{flag} {out} contains the input {item}; outputs never go where the inputs are: "
                            "give another folder")


def written_by(folder: str | Path) -> str | None:
    """The command whose marker ``folder`` holds (``None``: no marker, or one that is not ours)."""
    marker = Path(folder) / MARKER
    if marker.is_symlink() or not marker.is_file():
        return None
    try:
        content = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(content, dict) or content.get("schema") != MARKER_SCHEMA:
        return None
    return content.get("written_by")


def made_by(folder: str | Path, command: str) -> bool:
    """Whether ``folder`` is a real folder (not a symlink) that ``command`` marked as its own."""
    folder = Path(folder)
    return not folder.is_symlink() and folder.is_dir() and written_by(folder) == command


def write_marker(folder: str | Path, command: str) -> None:
    """Mark ``folder`` as made by ``command`` (see ``made_by``)."""
    atomic_write_json({"schema": MARKER_SCHEMA, "written_by": command}, Path(folder) / MARKER)


def _holds_run_record(folder: Path) -> bool:
    try:
        read_run_record(folder / RECORD_NAME)
    except UserError:
        return False
    return True


def _first_symlink(folder: Path) -> Path | None:
    for root, dirs, files in os.walk(folder):  # os.walk does not descend into symlinked folders
        for name in sorted(dirs + files):
            if (Path(root) / name).is_symlink():
                return Path(root) / name
    return None


def _entries(folder: Path) -> list[Path]:
    """What ``folder`` holds, less a marker being written (processes of one run each mark the folder they
    share; the others may see the first one's temporary file)."""
    return [p for p in folder.iterdir() if not (p.name.startswith(f".{MARKER}.") and p.name.endswith(".tmp"))]


def check_output_dir(out_dir: str | Path, command: str) -> bool:
    """Refuse ``out_dir`` unless ``command`` may write into it; returns whether it already holds outputs.

    Allowed: a path that does not exist, an empty folder, a folder ``command`` marked (or holding a run record
    of this project), with no symlink in it."""
    out = Path(out_dir)
    if out.is_symlink():
        raise UserError(f"output folder {out} is a symlink (to {os.readlink(out)}); outputs are never written "
                        "through symlinks: give the real folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"output folder {out} exists and is not a folder")
    if not out.exists() or not _entries(out):
        return False
    link = _first_symlink(out)
    if link is not None:
        raise UserError(f"{link} is a symlink (to {os.readlink(link)}); outputs are never written through "
                        "symlinks: remove it or choose another output folder")
    owner = written_by(out)
    if owner is None and not _holds_run_record(out):
        names = sorted(p.name for p in _entries(out))
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise UserError(f"output folder {out} holds files that mae-transfer {command} did not write ({shown}); "
                        "give a new or empty folder")
    if owner is not None and owner != command:
        raise UserError(f"output folder {out} holds the outputs of mae-transfer {owner}; give another folder")
    return True


def prepare_run_dir(out_dir: str | Path, *, command: str, resume: bool = False,
                    inputs: Iterable[str | Path | None] = (), create: bool = True) -> Path:
    """The output folder of ``command`` made ready (created and marked) under the policy of this module, plus:
    a folder holding a finished run is refused unless ``resume`` (training into it again would overwrite its
    checkpoints and record). ``create=False`` only checks (a command that refuses early, before slow work)."""
    out = Path(out_dir)
    refuse_inputs_in(out, inputs)
    if check_output_dir(out, command) and not resume:
        record = out / RECORD_NAME
        try:
            status = read_run_record(record)["status"] if record.is_file() else None
        except UserError:
            status = None
        if status == "finished":
            raise UserError(f"output folder {out} holds a finished run ({record}); continue it with --resume or "
                            "choose another output folder")
    if not create:
        return out
    out.mkdir(parents=True, exist_ok=True)
    if written_by(out) != command:
        write_marker(out, command)
    return out


KEPT_ON_FAILED_RESUME = (RECORD_NAME, "metrics.json", "log.jsonl")


@contextmanager
def finished_run_kept(out_dir: str | Path, enabled: bool = True,
                      names: Iterable[str] = KEPT_ON_FAILED_RESUME) -> Iterator[None]:
    """Around a resumed run: if ``out_dir`` held a finished run and the block raises, its run record and metric
    logs are put back as they were (the error propagates), so a failed resume leaves the finished run intact."""
    out = Path(out_dir)
    saved: dict[str, bytes] = {}
    if enabled and (out / RECORD_NAME).is_file():
        try:
            finished = read_run_record(out)["status"] == "finished"
        except UserError:
            finished = False
        if finished:
            saved = {name: (out / name).read_bytes() for name in names
                     if (out / name).is_file() and not (out / name).is_symlink()}
    try:
        yield
    except BaseException:
        for name, data in saved.items():
            atomic_write(out / name, lambda tmp, data=data: tmp.write_bytes(data))
        raise
