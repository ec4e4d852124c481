"""One loader for every ViT checkpoint a user brings.

Accepted: the official MAE release (``{'model': encoder}``, and ``*_full.pth`` with the decoder), the MAE
repo's training checkpoints (``{'model', 'optimizer', 'epoch', 'scaler', 'args'}``), timm supervised files
(a bare dict, under ``'model'`` / ``'state_dict'``, or safetensors), detectron2 ViTDet models
(``backbone.net.*``) and this project's exports. Keys are the timm / MAE names throughout, so nothing is
renamed: a key either loads, is resized (position embedding to the model's grid, a patch-14 kernel to
patch 16), or is ignored for a stated reason (decoder, classification head, final norm, cls token). Bad
files raise one ``CheckpointError`` that names the file and the problem.

Every checkpoint of every task is read by ``read_checkpoint`` (checkpoint_file.py), which runs no code from the
file.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from timm.layers import resample_abs_pos_embed, resample_patch_embed

from .attention import resize_rel_pos
from .checkpoint_file import CheckpointError, read_checkpoint
from .hub import resolve_weights
from .layouts import to_timm_layout

logger = logging.getLogger(__name__)

_WRAPPERS = ("model", "state_dict", "module")           # where trainers nest the weights
_PREFIXES = ("module.", "backbone.net.", "net.")        # DDP, detectron2 ViTDet model, our pyramid
_BLOCK = re.compile(r"^blocks\.(\d+)\.")
_IGNORED = (  # checkpoint keys a dense backbone has no place for, and why
    (re.compile(r"^(decoder_|mask_token$)"), "MAE decoder (pretraining only)"),
    (re.compile(r"^(head|head_dist|fc_norm)\."), "classification head"),
    (re.compile(r"^norm\."), "final encoder norm (dense models use block outputs)"),
    (re.compile(r"^(cls_token|dist_token)$"), "class token (the dense backbone has none)"),
    (re.compile(r"^(backbone|simfp_\d+|proposal_generator|roi_heads)\."), "detector weights outside the ViT"),
)


@dataclass
class LoadReport:
    path: str
    loaded: list[str] = field(default_factory=list)
    resized: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def missing_rel_pos(self) -> list[str]:
        """Missing keys that are new, zero-initialised relative-position tables (expected for MAE files)."""
        return [k for k in self.missing if k.endswith(("rel_pos_h", "rel_pos_w"))]

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for reason in self.ignored.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        other_missing = [k for k in self.missing if k not in self.missing_rel_pos]
        parts = [f"loaded {len(self.loaded)} tensors from {self.path}"]
        if self.resized:
            parts.append("resized " + ", ".join(f"{k} {v}" for k, v in self.resized.items()))
        if reasons:
            parts.append("ignored " + ", ".join(f"{n} {r}" for r, n in reasons.items()))
        if self.missing_rel_pos:
            parts.append(f"{len(self.missing_rel_pos)} relative-position tables start at zero")
        if other_missing:
            parts.append(f"MISSING {len(other_missing)}: {', '.join(other_missing[:5])}")
        if self.unexpected:
            parts.append(f"UNEXPECTED {len(self.unexpected)}: {', '.join(self.unexpected[:5])}")
        return "; ".join(parts)


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint file, unwrapped from trainer dicts and common key prefixes, under timm / MAE
    names (numpy arrays of a pickle become tensors). ``path`` may also be a weights reference (``timm:NAME``,
    ``hf:ORG/REPO``, a URL: see ``backbone.hub``)."""
    path = Path(resolve_weights(path))
    obj = _arrays_to_tensors(read_checkpoint(path))
    while isinstance(obj, dict) and not _is_state_dict(obj):
        inner = next((obj[k] for k in _WRAPPERS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict) or not _is_state_dict(obj):
        raise CheckpointError(f"{path}: holds no state dict (found {type(obj).__name__}"
                              + (f" with keys {sorted(obj)[:8]}" if isinstance(obj, dict) else "") + ")")
    return to_timm_layout({_strip_prefix(k): v for k, v in obj.items()}, path)


def _arrays_to_tensors(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _arrays_to_tensors(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return torch.from_numpy(np.ascontiguousarray(obj))
    return obj


def _is_state_dict(obj: dict) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _strip_prefix(key: str) -> str:
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def _block_count(keys) -> int:
    ids = {int(m.group(1)) for k in keys if (m := _BLOCK.match(k))}
    return max(ids) + 1 if ids else 0


def _check_architecture(path: Path, ckpt: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> None:
    if "patch_embed.proj.weight" not in ckpt or not _block_count(ckpt):
        raise CheckpointError(f"{path}: not a ViT state dict: expected 'patch_embed.proj.weight' and "
                              f"'blocks.N.*' keys, found {len(ckpt)} keys such as {sorted(ckpt)[:4]}")
    width, model_width = ckpt["patch_embed.proj.weight"].shape[0], target["patch_embed.proj.weight"].shape[0]
    if width != model_width:
        raise CheckpointError(f"{path}: checkpoint ViT has width {width} but the model has width {model_width} "
                              "(a checkpoint of another model size?)")
    depth, model_depth = _block_count(ckpt), _block_count(target)
    if depth != model_depth:
        raise CheckpointError(f"{path}: checkpoint ViT has {depth} blocks but the model has {model_depth} "
                              "(a checkpoint of another model size?)")


def _pos_grid(num_tokens: int, has_cls: bool | None = None) -> tuple[int, int]:
    """(side, prefix tokens) of a square position embedding; the cls row is detected when not given."""
    if has_cls is None:
        has_cls = math.isqrt(num_tokens) ** 2 != num_tokens
    side = math.isqrt(num_tokens - has_cls)
    return side, int(has_cls)


def _resize_pos_embed(value: torch.Tensor, target: torch.Tensor, has_cls_model: bool) -> torch.Tensor:
    side, prefix = _pos_grid(value.shape[1])
    new_side, _ = _pos_grid(target.shape[1], has_cls_model)
    grid = resample_abs_pos_embed(value[:, prefix:], [new_side, new_side], num_prefix_tokens=0)
    if has_cls_model:
        cls_row = value[:, :1] if prefix else torch.zeros_like(grid[:, :1])
        grid = torch.cat([cls_row, grid], dim=1)
    return grid


def _convert(key: str, value: torch.Tensor, target: torch.Tensor, has_cls_model: bool) -> torch.Tensor | None:
    """The checkpoint tensor reshaped to the model's parameter, or None when no resize rule applies."""
    if key == "pos_embed":
        return _resize_pos_embed(value, target, has_cls_model)
    if key == "patch_embed.proj.weight" and value.shape[:2] == target.shape[:2]:
        return resample_patch_embed(value, list(target.shape[-2:]))
    if key.endswith(("rel_pos_h", "rel_pos_w")) and value.shape[1] == target.shape[1]:
        return resize_rel_pos(value, target.shape[0])
    return None


def load_pretrained(model: nn.Module, path: str | Path, *, log: bool = True) -> LoadReport:
    """Load the ViT weights of ``path`` into ``model`` (a ViT, or any module with timm/MAE ViT key names).

    Returns what was loaded, resized, ignored (with the reason), missing and unexpected; logs one summary.
    """
    path = Path(resolve_weights(path))
    ckpt = read_state_dict(path)
    target = model.state_dict()
    _check_architecture(path, ckpt, target)
    has_cls_model = bool(getattr(model, "pretrain_use_cls_token", "cls_token" in target))

    report = LoadReport(path=str(path))
    to_load: dict[str, torch.Tensor] = {}
    for key, value in ckpt.items():
        if key not in target:
            reason = next((why for pattern, why in _IGNORED if pattern.match(key)), None)
            if reason:
                report.ignored[key] = reason
            else:
                report.unexpected.append(key)
            continue
        if value.is_floating_point() != target[key].is_floating_point():
            raise CheckpointError(f"{path}: key '{key}' holds {value.dtype} values but the model's parameter is "
                                  f"{target[key].dtype} (not the weights of this model)")
        if value.shape != target[key].shape:
            converted = _convert(key, value, target[key], has_cls_model)
            if converted is None or converted.shape != target[key].shape:
                raise CheckpointError(f"{path}: key '{key}' has shape {tuple(value.shape)} but the model expects "
                                      f"{tuple(target[key].shape)}")
            report.resized[key] = f"{tuple(value.shape)}->{tuple(converted.shape)}"
            value = converted
        to_load[key] = value.to(target[key].dtype)
        report.loaded.append(key)
    report.missing = [k for k in target if k not in to_load]
    model.load_state_dict(to_load, strict=False)
    if log:
        logger.info(report.summary())
    return report
