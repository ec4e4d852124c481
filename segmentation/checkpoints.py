"""Segmentation checkpoints: read without running code, written whole, resumed from the last whole one.

mmengine 0.10.7 reads checkpoints with a bare ``torch.load`` and writes them in place: under torch >= 2.6 it
cannot read its own files (their message hub pickles ``HistoryBuffer`` objects and, through ``getattr``, bound
methods), and a kill during a write leaves a torn ``iter_N.pth`` that ``last_checkpoint`` may point at. In every
run of ``segmentation`` three things differ:

- mmengine's loader of local files (``CheckpointLoader``'s default scheme, used by ``load_from``, resume, test,
  ``init_model`` and mmseg's inferencer) is ``backbone.read_checkpoint``: ``torch.load(weights_only=True)``,
  nothing but tensors and plain Python data. ``strict_checkpoint_loader()`` puts it in place for a block (a run,
  through ``segmentation.framework_patches()``) and puts mmengine's back afterwards;
- ``SafeCheckpointHook`` (the config's ``default_hooks.checkpoint``, swapped in by ``load_config``) saves the
  message hub as plain data (its ``HistoryBuffer``s as lists, restored on loading) and writes each file through
  ``runlib.atomic_write`` (a hidden temporary file renamed into place), so an ``iter_N.pth`` is whole or absent;
- ``resume_checkpoint`` picks the newest whole checkpoint of a run folder, skipping (and naming) torn files and a
  stale or empty ``last_checkpoint``, which names its file relative to the run folder.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader
from mmseg.registry import HOOKS

from backbone import read_checkpoint
from runlib import atomic_write, remove_torn
from runlib.run_record import newest_whole_checkpoint

from .config import SegmentationError

ATOMIC_BACKEND = "atomic_local"
_BUFFER = "__history_buffer__"  # marks a HistoryBuffer saved as plain data
_STEP = re.compile(r"^(?:iter|epoch)_(\d+)\.pth$")


def load_from_strict_reader(filename: str, map_location=None) -> object:
    """mmengine's loader of local checkpoint files, through the strict reader (tensors land on the CPU; mmengine
    moves the model's and the optimizer's to their devices when it loads them)."""
    return read_checkpoint(Path(filename).expanduser())


@contextmanager
def strict_checkpoint_loader() -> Iterator[None]:
    """mmengine's loader of local checkpoint files is ``load_from_strict_reader`` inside the block; afterwards it
    is the one that was there before."""
    before = CheckpointLoader._schemes.get("")  # the table has no public getter
    CheckpointLoader.register_scheme(prefixes="", loader=load_from_strict_reader, force=True)
    try:
        yield
    finally:
        if before is None:
            CheckpointLoader._schemes.pop("", None)
        else:
            CheckpointLoader._schemes[""] = before


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing every file whole: a temporary file renamed into place."""

    def put(self, obj: bytes, filepath) -> None:
        atomic_write(filepath, lambda tmp: tmp.write_bytes(obj))

    def put_text(self, obj: str, filepath, encoding: str = "utf-8") -> None:
        atomic_write(filepath, lambda tmp: tmp.write_text(obj, encoding=encoding))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


def to_plain(obj):
    """``obj`` with HistoryBuffers as marked dicts and numpy values as Python numbers and lists (tensors kept)."""
    if isinstance(obj, HistoryBuffer):
        return {_BUFFER: dict(log=obj._log_history.tolist(), count=obj._count_history.tolist(),
                              max_length=obj.max_length)}
    if isinstance(obj, dict):
        return type(obj)((k, to_plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_plain(v) for v in obj)
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.tolist()
    return obj


def from_plain(obj):
    """Undo ``to_plain`` for HistoryBuffers (mmengine's MessageHub resumes only those)."""
    if isinstance(obj, dict):
        if set(obj) == {_BUFFER}:
            saved = obj[_BUFFER]
            return HistoryBuffer(saved["log"], saved["count"], saved["max_length"])
        return type(obj)((k, from_plain(v)) for k, v in obj.items())
    return obj


@HOOKS.register_module()
class SafeCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) whose files ``backbone.read_checkpoint`` reads and that are
    never torn: plain data in place of pickled objects, atomic writes (``backend_args`` defaults to the
    ``atomic_local`` file backend; another backend, e.g. a remote store, is used as given)."""

    def __init__(self, *args, backend_args: dict | None = None, **kwargs):
        if backend_args is None and kwargs.get("file_client_args") is None:
            backend_args = {"backend": ATOMIC_BACKEND}
        super().__init__(*args, backend_args=backend_args, **kwargs)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        for key in [k for k in checkpoint if k not in ("state_dict", "optimizer")]:
            checkpoint[key] = to_plain(checkpoint[key])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if "message_hub" in checkpoint:
            checkpoint["message_hub"] = from_plain(checkpoint["message_hub"])

    def _save_checkpoint_with_step(self, runner, step, meta):
        pointer = Path(runner.work_dir) / "last_checkpoint"
        if pointer.is_symlink():  # mmengine rewrites it with open(): never write through a link
            pointer.unlink()
        super()._save_checkpoint_with_step(runner, step, meta)
        # mmengine writes the absolute path: a copied or moved run folder would resume from the original's file
        last = Path(self.last_ckpt)
        if last.parent.resolve() == Path(runner.work_dir).resolve():
            atomic_write(pointer, lambda tmp: tmp.write_text(last.name))


def use_safe_checkpoint_hook(cfg) -> None:
    """Make the config's checkpoint hook a ``SafeCheckpointHook`` (it has mmengine's ``CheckpointHook``)."""
    hook = cfg.get("default_hooks", {}).get("checkpoint")
    if hook is not None and hook.get("type") in ("CheckpointHook", CheckpointHook):
        hook.type = "SafeCheckpointHook"


def resume_checkpoint(work_dir: str | Path) -> tuple[Path, list[str]]:
    """The checkpoint to resume a run folder from, and what was passed over on the way: the one
    ``last_checkpoint`` names (read relative to the folder), else the newest ``iter_N.pth`` / ``epoch_N.pth``,
    whichever is whole first; torn files are skipped, temporary files of a killed write removed. One
    ``SegmentationError`` when nothing usable is left."""
    work_dir = Path(work_dir)
    notes = [f"removed {tmp}, left by a write that was killed" for tmp in remove_torn(work_dir)]
    path, passed_over, skipped = newest_whole_checkpoint(work_dir, _step)
    notes += passed_over
    if path is not None:
        return path, notes
    found = f" ({'; '.join(skipped)})" if skipped else " (no iter_N.pth)"
    raise SegmentationError(f"--resume: no whole checkpoint to resume in {work_dir}{found}; start a new run "
                            "without --resume or resume from a checkpoint file")


def _step(name: str) -> int | None:
    match = _STEP.match(name)
    return int(match.group(1)) if match else None


def load_segmentor_weights(path: str | Path, model: torch.nn.Module, config: str | Path) -> dict:
    """Load a segmentor checkpoint (``{'state_dict': ..., 'meta': ...}`` as mmengine saves it, or a bare state
    dict) into ``model`` through the strict reader; one ``SegmentationError`` unless it holds exactly the
    weights of ``model``. Returns the checkpoint's ``meta`` (``{}`` if none)."""
    checkpoint = read_checkpoint(path)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SegmentationError(f"{path}: holds no state dict of tensors")
    target = getattr(model, "module", model).state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    problems = {
        "missing": [k for k in target if k not in state],
        "unexpected": [k for k in state if k not in target],
        "of another shape": [f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in state.items()
                             if k in target and v.shape != target[k].shape],
    }
    found = [f"{len(keys)} keys {what} (e.g. {', '.join(keys[:3])})" for what, keys in problems.items() if keys]
    if found:
        raise SegmentationError(f"{path}: not a checkpoint of the model in {config} (a checkpoint of another "
                                f"architecture?): " + "; ".join(found))
    getattr(model, "module", model).load_state_dict(state, strict=True)
    meta = checkpoint.get("meta", {}) if isinstance(checkpoint, dict) else {}
    return meta if isinstance(meta, dict) else {}
