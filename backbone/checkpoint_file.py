"""Reading a checkpoint file without running code from it, and the one error every bad weights file raises.

PyTorch files go through ``torch.load(weights_only=True)``, safetensors through safetensors, and pickles
(detectron2's model-zoo ``.pkl``) through an unpickler that builds only numpy arrays and plain containers.
"""
from __future__ import annotations

import argparse
import io
import pickle
from pathlib import Path

import torch

from runlib.errors import UserError


class CheckpointError(UserError):
    """A checkpoint file that cannot be used, with the file and the problem in the message."""


# What a detectron2 model-zoo pickle may build: numpy arrays (and their dtypes and scalars) in plain
# containers; each of these only turns bytes into data. numpy >= 2 pickles name numpy._core, older ones
# numpy.core; protocol 5 arrays come through _frombuffer, protocol 2 bytes through _codecs.encode.
_PICKLE_GLOBALS = {(f"{package}.{module}", name) for package in ("numpy.core", "numpy._core")
                   for module, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                                        ("numeric", "_frombuffer"))} | {
    ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"), ("_codecs", "encode")}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"it refers to {module}.{name}, which a weights file has no use for "
                                         "(only numpy arrays and plain containers are read from pickles)")
        return super().find_class(module, name)


def read_checkpoint(path: str | Path, *, allow: tuple[type, ...] = ()) -> object:
    """The object saved in a checkpoint file, read without running code from it.

    ``.safetensors``: safetensors; ``.pkl``: numpy arrays in plain containers only (detectron2's model zoo,
    written by Python 2 pickles too); anything else: ``torch.load(weights_only=True)`` with ``argparse.Namespace``
    (the MAE repo's checkpoints carry their arguments) and ``allow`` as the only classes admitted.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            return load_file(str(path))
        if path.suffix == ".pkl":
            return _ArraysOnlyUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
        with torch.serialization.safe_globals([argparse.Namespace, *allow]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch/zipfile/pickle raise many types for one cause: a bad file
        reason = _load_failure(exc)
        if "GLOBAL" in reason or "refers to" in reason:
            raise CheckpointError(f"{path}: refused, it would run code on loading: {reason}") from None
        raise CheckpointError(f"{path}: cannot be read as a checkpoint, the file is truncated, corrupt or not a "
                              f"PyTorch/safetensors/pickle file ({type(exc).__name__}: {reason})") from None


def _load_failure(exc: BaseException) -> str:
    """The line of a loader's error that says what was wrong (torch wraps it in paragraphs of advice)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if "GLOBAL" in line] or [
        line for line in lines if not line.startswith(("Weights only load failed", "Check the documentation",
                                                       "Please file an issue"))]
    return (useful or lines or [""])[-1]
