"""Export the encoder of a pretraining checkpoint in the official MAE release format.

``{'model': state_dict}`` with exactly the keys of ``mae_pretrain_vit_*.pth`` (REFERENCE.md §3): cls_token,
pos_embed, patch_embed.proj.*, blocks.N.*, norm.*. The decoder, the mask token and the training state stay
behind. ``backbone.load_pretrained`` reads the result with nothing missing but the new relative-position
tables, and so does the official fine-tuning code.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from backbone import CheckpointError, atomic_torch_save, read_state_dict

logger = logging.getLogger(__name__)

ENCODER_KEY = re.compile(r"^(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|blocks\.\d+\..+|norm\.(weight|bias))$")
_REQUIRED = ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight")


def encoder_state_dict(state: dict[str, torch.Tensor], source: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The encoder tensors of an MAE state dict (ours, the MAE repo's, or an official ``*_full.pth``)."""
    encoder = {k: v for k, v in state.items() if ENCODER_KEY.match(k)}
    absent = [k for k in _REQUIRED if k not in encoder]
    if absent or not any(k.startswith("blocks.") for k in encoder):
        raise CheckpointError(f"{source}: not an MAE encoder checkpoint (missing {absent or ['blocks.*']})")
    return encoder


def export_encoder(checkpoint: str | Path, out_path: str | Path) -> Path:
    """Write ``{'model': encoder state dict}`` of ``checkpoint`` to ``out_path`` (atomically) and return it."""
    state = read_state_dict(checkpoint)
    encoder = encoder_state_dict(state, checkpoint)
    path = atomic_torch_save({"model": encoder}, out_path)
    logger.info("exported %d encoder tensors from %s to %s (left out %d: decoder, mask token)",
                len(encoder), checkpoint, path, len(state) - len(encoder))
    return path
