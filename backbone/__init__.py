"""The shared ViT backbone: pure torch + timm, no detection or segmentation framework.

``ViT`` and ``SimpleFeaturePyramid`` carry detectron2 ViTDet's parameter names; ``load_pretrained`` reads the
official MAE release, timm files, Hugging Face ViTMAE and this project's exports, also by name (``timm:NAME``,
``hf:ORG/REPO``, URLs: ``resolve_weights``); ``param_groups`` / ``lr_scale`` give layer-wise learning-rate decay.
"""
from .checkpoint import CheckpointError, LoadReport, load_pretrained, read_checkpoint, read_state_dict
from .hub import is_reference, resolve_weights
from .layer_decay import layer_id, lr_scale, param_groups, uses_weight_decay
from .presets import (VIT_SIZES, ViTSize, arch_name, build_vit, size_of_width, vit_base, vit_huge, vit_kwargs,
                      vit_large, vit_size, vit_small, vit_tiny)
from .pyramid import SimpleFeaturePyramid
from .vit import ViT, abs_pos_for_grid

__all__ = [
    "ViT", "SimpleFeaturePyramid", "abs_pos_for_grid",
    "VIT_SIZES", "ViTSize", "vit_size", "size_of_width", "arch_name", "build_vit", "vit_kwargs",
    "vit_tiny", "vit_small", "vit_base", "vit_large", "vit_huge",
    "load_pretrained", "read_checkpoint", "read_state_dict", "LoadReport", "CheckpointError",
    "resolve_weights", "is_reference",
    "layer_id", "lr_scale", "param_groups", "uses_weight_decay",
]
