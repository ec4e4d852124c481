"""Files every run writes without ever leaving a torn one, and the run record the compare command reads.

A run record (``run_record.json`` in a run's output folder) says what ran and how it ended:

    {"schema": "mae-transfer/run-v1", "task": "detection" | "segmentation" | "pretrain" | "linprobe" | "finetune",
     "dataset": "coco_2017_val", "arch": "vit_base", "init": "mae" | "supervised" | "random" | <checkpoint>,
     "status": "finished" | "running" | "failed", "metrics": {"APbox": 51.2, "APmask": 45.5} | {"mIoU": ...},
     "error": "<why it failed>", "config": "<config file>", "updated": "<UTC time>",
     "executor": "slurm" | "local", "job_id": "<SLURM job id, JOBID or JOBID_TASK>" | null, ...extra fields}

Metric names: detection ``APbox``, ``APmask`` (COCO AP in percent); segmentation ``mIoU``, ``mAcc``, ``aAcc``
(percent); classification ``top1``; pretraining ``loss``.
"""
from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import torch

from .errors import UserError, error_message

SCHEMA = "mae-transfer/run-v1"
RECORD_NAME = "run_record.json"  # not metrics.json: detectron2 writes its training log under that name
TASKS = ("detection", "segmentation", "pretrain", "linprobe", "finetune")
STATUSES = ("finished", "running", "failed")


TMP_SUFFIX = ".tmp"


def _default_mode() -> int:
    """The mode ``open()`` gives a new file (0666 less the umask), as the frameworks' own files get."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path``: readers see the old file or the new one.

    The rename replaces ``path`` itself, never the target of a symlink standing there; a kill leaves at most
    a hidden ``.NAME.*.tmp`` file next to it (``remove_torn`` clears them)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, _default_mode())  # mkstemp makes 0600 files
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_json(obj: Any, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n"))


def remove_torn(folder: str | Path) -> list[Path]:
    """Delete the temporary files that a killed ``atomic_write`` left in ``folder``; returns them."""
    torn = [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file() and not p.is_symlink()]
    for p in torn:
        p.unlink(missing_ok=True)
    return torn


def executor_fields(environ: Mapping[str, str] = os.environ) -> dict[str, str | None]:
    """Where the run runs: ``"slurm"`` with its job id (``JOBID``, or ``JOBID_TASK`` for an array task, as
    ``squeue`` and ``scancel`` name it) inside a SLURM job, else ``"local"`` (with the job id of a submitit local
    job, its process id)."""
    if "SLURM_JOB_ID" not in environ:
        return {"executor": "local", "job_id": environ.get("SUBMITIT_LOCAL_JOB_ID")}
    array, task = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    return {"executor": "slurm", "job_id": f"{array}_{task}" if array and task else environ["SLURM_JOB_ID"]}


def write_run_record(out_dir: str | Path, *, task: str, status: str, dataset: str, arch: str, init: str,
                     metrics: dict[str, float] | None = None, error: str | None = None, **extra) -> Path:
    """Write ``out_dir/run_record.json`` atomically and return its path."""
    if task not in TASKS:
        raise ValueError(f"run record: task must be one of {TASKS}, got {task!r}")
    if status not in STATUSES:
        raise ValueError(f"run record: status must be one of {STATUSES}, got {status!r}")
    record = dict(schema=SCHEMA, task=task, status=status, dataset=dataset, arch=arch, init=init,
                  metrics={k: float(v) for k, v in (metrics or {}).items()},
                  updated=datetime.now(timezone.utc).isoformat(timespec="seconds"), **{**executor_fields(), **extra})
    if error is not None:
        record["error"] = error
    return atomic_write_json(record, Path(out_dir) / RECORD_NAME)


def read_run_record(path: str | Path) -> dict:
    """A run record, from its file or its run folder; one ``UserError`` naming the file if it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORD_NAME
    if path.exists() and not path.is_file():  # a FIFO or device would block or stream forever
        raise UserError(f"{path}: not a regular file")
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path}: no run record (the run has not written {RECORD_NAME})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise UserError(f"{path}: not a run record (expected \"schema\": \"{SCHEMA}\")")
    return record


def prepare_run_dir(out_dir: str | Path, *, resume: bool = False) -> Path:
    """The output folder of a new run (created) or of the run to resume, refusing what would lose data.

    A symlink is refused (outputs are never written through one), and so is a folder that holds a finished
    run unless ``resume``: training into it again would overwrite its checkpoints and record."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        raise UserError(f"output folder {out_dir} is a symlink (to {os.readlink(out_dir)}); outputs are never "
                        "written through symlinks: give the real folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output folder {out_dir} exists and is not a folder")
    record = out_dir / RECORD_NAME
    if not resume and record.is_file():
        try:
            status = read_run_record(record)["status"]
        except ValueError:
            status = None
        if status == "finished":
            raise UserError(f"output folder {out_dir} holds a finished run ({record}); continue it with --resume or "
                            "choose another output folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


class RunRecord:
    """The run record of one run in progress: see ``run_lifecycle``."""

    def __init__(self, out_dir: str | Path, enabled: bool, **fields):
        self.out_dir, self.enabled, self.fields = Path(out_dir), enabled, fields
        self.metrics: dict[str, float] = {}

    def write(self, status: str, **fields) -> None:
        """Record ``status`` with the metrics and fields so far plus ``fields`` (kept for later writes)."""
        self.fields.update(fields)
        if self.enabled:
            write_run_record(self.out_dir, status=status, metrics=self.metrics, **self.fields)


@contextmanager
def run_lifecycle(out_dir: str | Path, *, task: str, dataset: str, arch: str, init: str, enabled: bool = True,
                  **fields) -> Iterator[RunRecord]:
    """The one way a run records itself: "running" on entry, "finished" with ``record.metrics`` when the block
    ends, "failed" with the error when it raises (the error propagates). Inside, ``record.metrics = {...}``
    sets the metrics and ``record.write("running", iteration=...)`` reports progress. ``enabled=False`` (ranks
    other than 0) writes nothing. Enter it only once the config is known to be good, so that a config error
    leaves an earlier record of the folder as it was."""
    record = RunRecord(out_dir, enabled, task=task, dataset=dataset, arch=arch, init=init, **fields)
    record.write("running")
    try:
        yield record
    except BaseException as exc:
        record.write("failed", error=f"{type(exc).__name__}: {error_message(exc)}")
        raise
    record.write("finished")
