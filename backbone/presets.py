"""Model sizes, as ViTDet builds them for detection (ViTDet paper, arXiv 2203.16527, Sec. 4 and Table 4; detectron2
projects/ViTDet configs; docs/recipes.md §1 and §4).

Each preset is a table row: width, depth, heads, the ViTDet drop-path rate, and four evenly spaced global
blocks with 14x14 windows everywhere else. Keyword arguments override any field (e.g. ``img_size=512``,
``out_indices=(3, 5, 7, 11)``, ``drop_path_rate=0.0``).
"""
from __future__ import annotations

import inspect

from .vit import ViT

#            embed_dim depth heads patch drop_path global blocks
VIT_SIZES = {
    "vit_tiny":  (192,  12,  3,  16, 0.1, (2, 5, 8, 11)),
    "vit_small": (384,  12,  6,  16, 0.1, (2, 5, 8, 11)),
    "vit_base":  (768,  12, 12,  16, 0.1, (2, 5, 8, 11)),
    "vit_large": (1024, 24, 16,  16, 0.4, (5, 11, 17, 23)),
    "vit_huge":  (1280, 32, 16,  16, 0.5, (7, 15, 23, 31)),  # MAE's ViT-H is patch 14; ViTDet resamples to 16
}


def vit_kwargs(name: str, **overrides) -> dict:
    """The ViT constructor arguments of a preset, with overrides applied."""
    if name not in VIT_SIZES:
        raise ValueError(f"unknown ViT size {name!r}; choose one of {sorted(VIT_SIZES)}")
    embed_dim, depth, num_heads, patch_size, drop_path_rate, global_blocks = VIT_SIZES[name]
    kwargs = dict(
        img_size=1024, patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
        mlp_ratio=4.0, qkv_bias=True, drop_path_rate=drop_path_rate, use_rel_pos=True, window_size=14,
        window_block_indexes=tuple(i for i in range(depth) if i not in global_blocks),
    )
    unknown = set(overrides) - set(inspect.signature(ViT).parameters)
    if unknown:
        raise ValueError(f"unknown ViT argument(s) {sorted(unknown)} for preset {name!r}")
    kwargs.update(overrides)
    return kwargs


def build_vit(name: str, **overrides) -> ViT:
    return ViT(**vit_kwargs(name, **overrides))


def vit_tiny(**overrides) -> ViT:
    return build_vit("vit_tiny", **overrides)


def vit_small(**overrides) -> ViT:
    return build_vit("vit_small", **overrides)


def vit_base(**overrides) -> ViT:
    return build_vit("vit_base", **overrides)


def vit_large(**overrides) -> ViT:
    return build_vit("vit_large", **overrides)


def vit_huge(**overrides) -> ViT:
    return build_vit("vit_huge", **overrides)


def arch_name(embed_dim: int, depth: int) -> str:
    """The name runs are recorded under: ``vit_base`` for a preset's width and depth, ``vit_tiny_d4`` for a
    preset's width at another depth, else ``vit_w{width}_d{depth}``."""
    for name, (preset_width, preset_depth, *_) in VIT_SIZES.items():
        if embed_dim == preset_width:
            return name if depth == preset_depth else f"{name}_d{depth}"
    return f"vit_w{embed_dim}_d{depth}"
