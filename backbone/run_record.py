"""Files every run writes without ever leaving a torn one, and the run record the compare command reads.

A run record (``run_record.json`` in a run's output folder) says what ran and how it ended:

    {"schema": "mae-transfer/run-v1", "task": "detection" | "segmentation" | "pretrain" | "linprobe" | "finetune",
     "dataset": "coco_2017_val", "arch": "vit_base", "init": "mae" | "supervised" | "random" | <checkpoint>,
     "status": "finished" | "running" | "failed", "metrics": {"APbox": 51.2, "APmask": 45.5} | {"mIoU": ...},
     "error": "<why it failed>", "config": "<config file>", "updated": "<UTC time>", ...extra fields}

Metric names: detection ``APbox``, ``APmask`` (COCO AP in percent); segmentation ``mIoU``, ``mAcc``, ``aAcc``
(percent); classification ``top1``; pretraining ``loss``.
"""
from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

SCHEMA = "mae-transfer/run-v1"
RECORD_NAME = "run_record.json"  # not metrics.json: detectron2 writes its training log under that name
TASKS = ("detection", "segmentation", "pretrain", "linprobe", "finetune")
STATUSES = ("finished", "running", "failed")


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and rename the result onto ``path``: readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
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


def write_run_record(out_dir: str | Path, *, task: str, status: str, dataset: str, arch: str, init: str,
                     metrics: dict[str, float] | None = None, error: str | None = None, **extra) -> Path:
    """Write ``out_dir/run_record.json`` atomically and return its path."""
    if task not in TASKS:
        raise ValueError(f"run record: task must be one of {TASKS}, got {task!r}")
    if status not in STATUSES:
        raise ValueError(f"run record: status must be one of {STATUSES}, got {status!r}")
    record = dict(schema=SCHEMA, task=task, status=status, dataset=dataset, arch=arch, init=init,
                  metrics={k: float(v) for k, v in (metrics or {}).items()},
                  updated=datetime.now(timezone.utc).isoformat(timespec="seconds"), **extra)
    if error is not None:
        record["error"] = error
    return atomic_write_json(record, Path(out_dir) / RECORD_NAME)


def read_run_record(path: str | Path) -> dict:
    """A run record, from its file or its run folder; one ValueError naming the file if it is not one."""
    path = Path(path)
    if path.is_dir():
        path = path / RECORD_NAME
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: no run record (the run has not written {RECORD_NAME})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise ValueError(f"{path}: not a run record (expected \"schema\": \"{SCHEMA}\")")
    return record
