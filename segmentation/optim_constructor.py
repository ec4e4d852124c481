"""Layer-wise learning-rate decay for a segmentor whose backbone is a ``backbone.ViT`` (``PlainViT``).

mmseg's ``LayerDecayOptimizerConstructor`` cannot be used: it accepts only backbones whose class name
contains "MAE", "BEiT" or "ConvNeXt" (``NotImplementedError`` otherwise) and reads layer ids from
``backbone.layers.i`` names. This constructor takes the ids and scales from ``backbone.param_groups``, the
rule the MAE fine-tuning code (facebookresearch/mae util/lr_decay.py) and ViTDet (detectron2
projects/ViTDet, ``get_vit_lr_decay_rate``) share: block ``i`` learns at
``decay ** (depth - i)`` of the base rate, the embeddings at ``decay ** (depth + 1)``, the neck and heads at
the full rate. It gives mmseg's MAE config the same scales for ViT-B (its ``num_layers + 2`` bookkeeping is
this formula). 1-D parameters (norms, biases) and the position embedding get no weight decay.

Config::

    optim_wrapper = dict(
        type='AmpOptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
        constructor='ViTLayerDecayOptimizerConstructor', paramwise_cfg=dict(layer_decay_rate=0.65))
"""
from __future__ import annotations

import torch.nn as nn
from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS

from backbone import ViT, param_groups


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class ViTLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """``paramwise_cfg=dict(layer_decay_rate=r)``; the depth is read from ``model.backbone``."""

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict | None = None):
        super().__init__(optim_wrapper_cfg, paramwise_cfg)
        if set(self.paramwise_cfg) != {"layer_decay_rate"}:
            raise ValueError("ViTLayerDecayOptimizerConstructor: paramwise_cfg must be exactly "
                             f"dict(layer_decay_rate=...), got {self.paramwise_cfg}")
        rate = self.paramwise_cfg["layer_decay_rate"]
        if not 0 < rate <= 1:
            raise ValueError(f"ViTLayerDecayOptimizerConstructor: layer_decay_rate must be in (0, 1], got {rate}")

    def add_params(self, params: list[dict], module: nn.Module, **kwargs) -> None:
        vit = getattr(module, "backbone", None)
        if not isinstance(vit, ViT):
            raise TypeError("ViTLayerDecayOptimizerConstructor needs a segmentor whose .backbone is a "
                            f"backbone.ViT (e.g. PlainViT), got {type(vit).__name__}")
        rate = self.paramwise_cfg["layer_decay_rate"]
        groups = param_groups(module.named_parameters(), self.base_wd, rate, vit.depth, base_lr=self.base_lr)
        scales = sorted({g["lr_scale"] for g in groups})
        print_log(f"layer-wise lr decay {rate} over {vit.depth} blocks: {len(groups)} parameter groups, "
                  f"lr scale {scales[0]:.3g} (embeddings) to {scales[-1]:.3g} (neck, heads)", logger="current")
        params.extend(groups)
