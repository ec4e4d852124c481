"""Files every run writes without ever leaving a torn one, and the run record the compare command reads.

A run record (``run_record.json`` in a run's output folder) says what ran and how it ended:

    {"schema": "mae-transfer/run-v1", "task": "detection" | "segmentation" | "pretrain" | "linprobe" | "finetune",
     "dataset": "coco_2017_val", "arch": "vit_base", "init": "mae" | "supervised" | "random" | <checkpoint>,
     "status": "finished" | "running" | "failed", "metrics": {"APbox": 51.2, "APmask": 45.5} | {"mIoU": ...},
     "error": "<why it failed>", "config": "<config file>", "updated": "<UTC time>",
     "executor": "slurm" | "local", "job_id": "<SLURM job id, JOBID or JOBID_TASK>" | null, ...extra fields}

Metric names: detection ``APbox``, ``APmask`` (COCO AP in percent) and their AP50, AP75, APs, APm, APl as
``APbox_50`` ... ``APmask_l``; segmentation ``mIoU``, ``mAcc``, ``aAcc`` (percent); classification ``top1``;
pretraining ``loss``. What the run cost is under ``"cost"`` (runlib/cost.py). Records are strict JSON: a NaN or
inf is written as null. A resumed run keeps the ``init`` of the run it continues (``recorded_init``).
"""
from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
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
    if path.is_dir() and not path.is_symlink():  # os.replace would fail only after the whole write
        raise UserError(f"{path}: is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    except OSError as exc:  # a read-only or full folder: name the file asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, _default_mode())  # after writing: mkstemp makes 0600 files, and so do writers that replace one
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def finite_json(obj: Any) -> Any:
    """``obj`` with every inf and NaN float as None: strict JSON (RFC 8259 has no NaN), which every parser reads.
    detectron2 reports an AP without objects of its size as NaN."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def metrics_text(metrics: dict[str, Any], separator: str = "  ") -> str:
    """``APbox 12.34  APmask 10.00``: a record's metrics for a line of output; a metric without a value (null in
    the record, NaN from the evaluator) is ``n/a``."""
    def value(v: Any) -> str:
        return f"{v:.2f}" if isinstance(v, (int, float)) and math.isfinite(v) else "n/a"
    return separator.join(f"{name} {value(v)}" for name, v in metrics.items())


def atomic_write_json(obj: Any, path: str | Path) -> Path:
    """``obj`` as strict JSON (non-finite numbers written as null), atomically."""
    text = json.dumps(finite_json(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def remove_torn(folder: str | Path) -> list[Path]:
    """Delete the temporary files that a killed ``atomic_write`` left in ``folder``; returns them."""
    torn = [p for p in Path(folder).glob(f".*{TMP_SUFFIX}") if p.is_file() and not p.is_symlink()]
    for p in torn:
        p.unlink(missing_ok=True)
    return torn


def keep_log_before(path: str | Path, key: str, start: int) -> None:
    """Rewrite the JSON-lines log ``path`` (atomically) with only the records whose ``key`` (the step) is below
    ``start``: a run resumed at step ``start`` logs those steps again, and a fresh run (``start`` 0) starts the log
    over. A line that a kill tore is dropped."""
    path = Path(path)
    kept = []
    if start and path.is_file():
        for line in path.read_text().splitlines():
            try:
                if json.loads(line)[key] < start:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue
    atomic_write(path, lambda tmp: tmp.write_text("".join(line + "\n" for line in kept)))


def is_whole(path: str | Path) -> bool:
    """Whether ``path`` is a complete PyTorch file: torch.save writes a zip archive whose directory comes last,
    so a file cut short by a kill has none (an empty file is cut short too). A file that is no zip archive at all
    (a plain pickle, such as detectron2's model-zoo ``.pkl``) is left for its loader to judge."""
    try:
        with open(path, "rb") as file:
            head = file.read(4)
        if head and head != b"PK\x03\x04":
            return True
        with zipfile.ZipFile(path):
            return True
    except (OSError, zipfile.BadZipFile):
        return False


def newest_whole_checkpoint(folder: str | Path, step_of: Callable[[str], float | None],
                            pointer: str = "last_checkpoint") -> tuple[Path | None, list[str], list[str]]:
    """The checkpoint to resume a run folder from: the file ``folder/pointer`` names, else the newest whole file
    whose name ``step_of`` gives a step; torn and missing files are passed over. Returns (the file or None,
    notes on what was passed over, the files passed over as "NAME why").

    The pointer is read relative to ``folder``; an absolute path in it (as mmengine writes) is taken as its file
    name in ``folder``, so that a copied run folder resumes from its own files, never the original's."""
    folder = Path(folder)
    notes, skipped = [], []
    pointer_file = folder / pointer
    named = pointer_file.read_text().strip() if pointer_file.is_file() else ""
    if pointer_file.is_file() and not named:
        notes.append(f"{pointer_file} is empty; looking for the newest whole checkpoint")
    steps = {p: step for p in folder.glob("*.pth") if (step := step_of(p.name)) is not None}
    candidates = ([folder / Path(named).name if Path(named).is_absolute() else folder / named] if named else [])
    for path in dict.fromkeys(candidates + sorted(steps, key=steps.get, reverse=True)):
        if path.is_file() and is_whole(path):
            return path, notes, skipped
        why = "missing" if not path.exists() else "torn (incomplete file)"
        notes.append(f"skipped {path}: {why}")
        skipped.append(f"{path.name} {why}")
    return None, notes, skipped


NO_WEIGHTS = ("random", "none")      # --init values that mean: start from random weights
INIT_WORDS = ("mae", "supervised")   # labels found as words in a weights reference
TASK_LABELS = {"pretrain": "mae", "finetune": "supervised"}  # the label of weights a run of the task trained
EXPORT_SCHEMA = "mae-transfer/export-v1"
INIT_LABEL_RULE = ("the run record's init (a row of compare's tables): --init-label, else the resumed run's, "
                   "else 'random' without weights, else the label an export recorded beside the weights "
                   "(WEIGHTS.json) or the task of the run folder holding them (pretrain: 'mae', finetune: "
                   "'supervised'), else 'mae' or 'supervised' when that word is in the weights' file or folder "
                   "name (zoo:demo-mae, output/mae/encoder.pth, hf:facebook/vit-mae-base), else the config's own "
                   "label, else the weights as given")


def no_weights(weights: str | Path | None) -> bool:
    """Whether an ``--init`` value asks for random initial weights (``random``, ``none``, empty)."""
    return weights is not None and str(weights).strip().lower() in (*NO_WEIGHTS, "")


def init_label(weights: str | Path | None, config_label: str | None = None) -> str:
    """The run record's ``init`` of a run starting from ``weights`` (a file, ``timm:``/``hf:``/``zoo:`` name, URL),
    by ``INIT_LABEL_RULE`` less its first two steps (the caller's): ``random`` without weights, the label recorded
    with a local file or folder (``recorded_weights_label``), a word of ``INIT_WORDS`` in the reference's last two
    names, the config's label, the reference."""
    if weights is None or no_weights(weights):
        return "random"
    recorded = recorded_weights_label(weights)
    if recorded:
        return recorded
    last_two = re.split(r"[/\\]", str(weights).split(":")[-1])[-2:]
    words = set(re.split(r"[^a-z0-9]+", " ".join(last_two).lower()))
    return next((word for word in INIT_WORDS if word in words), None) or config_label or str(weights)


def export_record_path(weights: str | Path) -> Path:
    """Where an export records what its weights are: ``NAME.json`` beside the file or folder ``NAME`` (beside,
    not inside: a timm or Hugging Face folder holds the files of its own layout only)."""
    weights = Path(weights)
    return weights.with_name(weights.name + ".json")


def recorded_weights_label(weights: str | Path) -> str | None:
    """The label recorded with local weights: the ``init`` of the export record beside them, else that of the
    run whose folder holds them (the folder of the weights or the one above it, as ``checkpoints/``): ``mae`` for
    a pretrain run, ``supervised`` for a finetune run (``TASK_LABELS``). None for a name (``timm:``, ``hf:``, a
    URL) and for weights nothing records."""
    path = Path(weights)
    if not path.exists():
        return None
    try:
        export = json.loads(export_record_path(path).read_text())
    except (OSError, ValueError):
        export = None
    if isinstance(export, dict) and export.get("schema") == EXPORT_SCHEMA and isinstance(export.get("init"), str):
        return export["init"]
    for folder in path.resolve().parents[:2]:
        if (folder / RECORD_NAME).is_file():
            try:
                return TASK_LABELS.get(read_run_record(folder).get("task"))
            except UserError:
                return None
    return None


def write_export_record(source: str | Path, out: str | Path, format: str) -> Path | None:
    """Record beside the export ``out`` (``export_record_path``) the label of the weights it came from, so that a
    run starting from the export records the same ``init``; when nothing records one, remove a record an earlier
    export left there. Returns the record written, or None."""
    record_path = export_record_path(out)
    label = recorded_weights_label(source)
    if label is None:
        record_path.unlink(missing_ok=True)
        return None
    return atomic_write_json({"schema": EXPORT_SCHEMA, "init": label, "source": str(source), "format": format},
                             record_path)


def recorded_init(out_dir: str | Path) -> str | None:
    """The ``init`` of the run record in ``out_dir``, if there is a readable one: a resumed run keeps the label of
    the run it continues (its weights come from that run's checkpoint, not from an initialisation)."""
    try:
        init = read_run_record(out_dir).get("init")
    except UserError:
        return None
    return init if isinstance(init, str) and init else None


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
