"""Layer-wise learning-rate decay (BEiT; used by MAE fine-tuning, ViTDet and mmseg's MAE configs).

Parameters closer to the input learn more slowly: layer id 0 for the embeddings (patch, position, cls and
mask tokens), ``i + 1`` for ``blocks.i``, and ``depth + 1`` for everything after the blocks (final norm,
heads, pyramid, detector). The scale is ``decay ** (depth + 1 - layer_id)``.

The two published rules are this one formula written twice (docs/recipes.md §2):
- MAE (facebookresearch/mae ``util/lr_decay.py``): ``num_layers = depth + 1``, head id ``num_layers``, ``decay ** (num_layers - id)``;
- ViTDet (detectron2 ``modeling/backbone/vit.py``, ``get_vit_lr_decay_rate``): ``num_layers = depth``, non-ViT id ``num_layers + 1``,
  ``rate ** (num_layers + 1 - id)``.
Both give a block ``i`` the scale ``decay ** (depth - i)`` and the embeddings ``decay ** (depth + 1)``.
"""
from __future__ import annotations

import re
from typing import Iterable

import torch.nn as nn

_EMBEDDING = re.compile(r"(^|\.)(patch_embed|pos_embed|cls_token|mask_token)(\.|$)")
_BLOCK = re.compile(r"(^|\.)blocks\.(\d+)\.")
NO_WEIGHT_DECAY = ("pos_embed", "cls_token", "mask_token", "dist_token")


def layer_id(name: str, depth: int) -> int:
    """0 for embeddings, i + 1 for ``blocks.i``, depth + 1 for anything else (prefixes such as
    ``backbone.net.`` are allowed)."""
    if _EMBEDDING.search(name):
        return 0
    if match := _BLOCK.search(name):
        return int(match.group(2)) + 1
    return depth + 1


def lr_scale(name: str, decay: float, depth: int) -> float:
    """Learning-rate multiplier of the parameter ``name`` in a ViT of ``depth`` blocks."""
    return decay ** (depth + 1 - layer_id(name, depth))


def uses_weight_decay(name: str, param: nn.Parameter) -> bool:
    """Norms, biases and the position embedding / tokens are not decayed (MAE, ViTDet, mmseg)."""
    return param.ndim > 1 and name.rsplit(".", 1)[-1] not in NO_WEIGHT_DECAY


def param_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    weight_decay: float,
    decay: float,
    depth: int,
    base_lr: float | None = None,
) -> list[dict]:
    """Optimizer groups, one per (layer id, decayed or not); each carries ``lr_scale`` (and ``lr`` when
    ``base_lr`` is given) and the parameter ``names`` for inspection. Frozen parameters are skipped."""
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        lid, decayed = layer_id(name, depth), uses_weight_decay(name, param)
        group = groups.setdefault((lid, decayed), {
            "params": [], "names": [], "weight_decay": weight_decay if decayed else 0.0,
            "lr_scale": lr_scale(name, decay, depth), "layer_id": lid,
        })
        group["params"].append(param)
        group["names"].append(name)
    result = [groups[key] for key in sorted(groups)]
    if base_lr is not None:
        for group in result:
            group["lr"] = base_lr * group["lr_scale"]
    return result
