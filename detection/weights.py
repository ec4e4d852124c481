"""Initial weights of a detection run: a pretrained ViT or a whole detector, each by its own loader.

A pretrained ViT (official MAE release, timm supervised file, this project's export) goes through
``backbone.load_pretrained`` into ``model.backbone.net``: one summary line, no suffix matching, no spurious
shape warnings. A whole detector (a ViTDet ``model_final`` ``.pkl``/``.pth``, a checkpoint of this trainer) goes
through detectron2's ``DetectionCheckpointer``, and must match the model's architecture key for key; only the
class-count-sized predictor layers may differ (fine-tuning a COCO detector on other categories).

Every file, whichever path it comes by (initial weights, ``--weights``, the ``last_checkpoint`` of a resumed
run), is read by ``backbone.read_checkpoint``, which runs no code from it: ``Checkpointer._load_file`` hands
detectron2 the dict that reader returns. Checkpoints and ``last_checkpoint`` are written atomically, so a
kill during a save leaves the previous checkpoint named and loadable.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from urllib.parse import urlparse

import torch.nn as nn
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.utils.file_io import PathManager

from backbone import CheckpointError, is_reference, load_pretrained, read_checkpoint, read_state_dict, resolve_weights
from runlib import atomic_torch_save, atomic_write

logger = logging.getLogger(__name__)

_DETECTOR_KEYS = ("proposal_generator.", "roi_heads.")
# Predictor layers sized by the number of categories.
_CLASS_SIZED = re.compile(r"^roi_heads\.(box_predictor\.(cls_score|bbox_pred)|mask_head\.predictor)\.")


class Checkpointer(DetectionCheckpointer):
    """detectron2's checkpointer that reads every file with ``backbone.read_checkpoint`` (no code runs on load),
    writes each file atomically and keeps what the last load did not match."""

    incompatible = None

    def _load_file(self, filename: str) -> dict:
        """The checkpoint as detectron2's own ``_load_file`` returns it, read without unpickling code."""
        data = read_checkpoint(filename)
        if not isinstance(data, dict):
            raise CheckpointError(f"{filename}: holds a {type(data).__name__}, not a checkpoint dict")
        # detectron2's model-zoo .pkl ({"model": numpy arrays, "__author__": ...}) and its own .pth files: as is
        return data if "model" in data else {"model": data}

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        atomic_write(Path(self.save_dir) / "last_checkpoint", lambda tmp: tmp.write_text(last_filename_basename))

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict(), **{k: v.state_dict() for k, v in self.checkpointables.items()},
                **kwargs}
        path = atomic_torch_save(data, Path(self.save_dir) / f"{name}.pth")
        self.logger.info(f"Saving checkpoint to {path}")
        self.tag_last_checkpoint(path.name)

    def _load_model(self, checkpoint):
        self.incompatible = super()._load_model(checkpoint)
        return self.incompatible


def local_path(path: str) -> str:
    """A local file for ``path``: ``timm:NAME``, ``hf:ORG/REPO``, ``detectron2://`` and http(s) URLs come from
    their caches (``backbone.resolve_weights``; ``detectron2://`` from detectron2's), other schemes through
    detectron2's ``PathManager``. A ``?matching_heuristics=True`` query
    (detectron2's MAE-loading habit) is dropped: it is not needed here."""
    plain = urlparse(path)._replace(query="").geturl()
    if is_reference(plain) or Path(plain).is_dir():  # a model folder: its weights file
        return resolve_weights(plain)
    if "://" not in plain:
        if not Path(plain).is_file():
            raise CheckpointError(f"{plain}: no such checkpoint file")
        return plain
    try:
        return PathManager.get_local_path(plain)
    except Exception as exc:  # urllib / iopath raise many types for one cause: the file cannot be fetched
        raise CheckpointError(f"{path}: cannot be fetched ({type(exc).__name__}: {exc}); download it and give "
                              "its local path (train.init_checkpoint=/path/to/file)") from None


def is_detector_checkpoint(path: str) -> bool:
    """True for a whole-detector file: RPN / ROI-head keys present (a model-zoo ``.pkl`` as any other file)."""
    return any(key.startswith(_DETECTOR_KEYS) for key in read_state_dict(path))


def load_detector(model: nn.Module, path: str, checkpointer: Checkpointer | None = None) -> None:
    """Load a whole detector with detectron2's checkpointer; raise if its architecture is not the model's."""
    checkpointer = checkpointer or Checkpointer(model)
    checkpointer.load(path, checkpointables=[])
    result = checkpointer.incompatible
    mismatched = [(k, a, b) for k, a, b in result.incorrect_shapes if not _CLASS_SIZED.match(k)]
    resized = {k for k, _, _ in result.incorrect_shapes}
    missing = [k for k in result.missing_keys if k not in resized]
    problems = []
    if missing:
        problems.append(f"{len(missing)} model keys missing from it (e.g. {', '.join(missing[:3])})")
    if result.unexpected_keys:
        problems.append(f"{len(result.unexpected_keys)} keys the model does not have "
                        f"(e.g. {', '.join(result.unexpected_keys[:3])})")
    if mismatched:
        problems.append(f"{len(mismatched)} shapes differ (e.g. {mismatched[0][0]}: checkpoint "
                        f"{tuple(mismatched[0][1])}, model {tuple(mismatched[0][2])})")
    if problems:
        raise CheckpointError(f"{path}: a detector of another architecture than the config's: {'; '.join(problems)}")


def load_initial_weights(model: nn.Module, path: str, *, detector_only: bool = False) -> str:
    """Load ``path`` into a ViTDet ``model``; returns "backbone" or "detector" (what it held), "" for no path.

    With ``detector_only`` (evaluation) a pretrained-ViT file is an error: its heads would be untrained.
    """
    if not path:
        return ""
    local = local_path(path)
    if is_detector_checkpoint(local):
        load_detector(model, local)
        return "detector"
    if detector_only:
        raise CheckpointError(f"{path}: holds a ViT backbone only, not a trained detector; evaluation needs a "
                              "detector checkpoint such as OUTPUT/model_final.pth")
    report = load_pretrained(model.backbone.net, local, log=False)
    logger.info(f"backbone.net: {report.summary()}")
    return "backbone"
