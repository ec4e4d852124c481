"""The shared ViT backbone: pure torch + timm, no detection or segmentation framework.

``ViT`` and ``SimpleFeaturePyramid`` carry detectron2 ViTDet's parameter names; ``load_pretrained`` reads the
official MAE release, timm files, Hugging Face ViTMAE and this project's exports, also by name (``timm:NAME``,
``hf:ORG/REPO``, URLs: ``resolve_weights``); ``param_groups`` / ``lr_scale`` give layer-wise learning-rate decay.
"""
from .checkpoint import CheckpointError, LoadReport, load_pretrained, read_checkpoint, read_state_dict
from .errors import (USER_ERROR_EXIT, LossDiverged, UserError, config_syntax_named, error_message, require_device,
                     run_command)
from .hub import is_reference, resolve_weights
from .layer_decay import layer_id, lr_scale, param_groups, uses_weight_decay
from .presets import VIT_SIZES, arch_name, build_vit, vit_base, vit_huge, vit_kwargs, vit_large, vit_small, vit_tiny
from .pyramid import SimpleFeaturePyramid
from .output_dir import finished_run_kept, prepare_run_dir, refuse_inputs_in
from .run_record import (atomic_torch_save, atomic_write, atomic_write_json, read_run_record, remove_torn,
                         run_lifecycle, write_run_record)
from .vit import ViT, abs_pos_for_grid

__all__ = [
    "ViT", "SimpleFeaturePyramid", "abs_pos_for_grid",
    "VIT_SIZES", "arch_name", "build_vit", "vit_kwargs", "vit_tiny", "vit_small", "vit_base", "vit_large", "vit_huge",
    "load_pretrained", "read_checkpoint", "read_state_dict", "LoadReport", "CheckpointError",
    "resolve_weights", "is_reference", "UserError", "USER_ERROR_EXIT", "error_message", "run_command",
    "LossDiverged", "config_syntax_named", "require_device",
    "layer_id", "lr_scale", "param_groups", "uses_weight_decay",
    "atomic_write", "atomic_torch_save", "atomic_write_json", "remove_torn", "write_run_record", "read_run_record",
    "run_lifecycle", "prepare_run_dir", "refuse_inputs_in", "finished_run_kept",
]
