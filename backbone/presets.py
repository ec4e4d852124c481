"""Model sizes: one registry, ``VIT_SIZES``, that the backbone, the MAE, the exports, the yacs defaults and the configs
read.

Each size is a table row (``ViTSize``): the encoder's width, depth and heads (ViT paper, arXiv 2010.11929,
Table 1), ViTDet's patch, drop-path rate and four evenly spaced global blocks with 14x14 windows everywhere else
(ViTDet paper, arXiv 2203.16527, Sec. 4 and Table 4; detectron2 projects/ViTDet configs; docs/recipes.md §1 and
§4), and MAE's pretraining patch and decoder (MAE paper, arXiv 2111.06377; facebookresearch/mae ``models_mae.py``).
``vit_kwargs`` turns a row into ``ViT`` arguments; keyword arguments override any field (e.g. ``img_size=512``,
``out_indices=(3, 5, 7, 11)``, ``drop_path_rate=0.0``).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import MappingProxyType

from .vit import ViT


@dataclass(frozen=True)
class ViTSize:
    width: int
    depth: int
    heads: int
    global_blocks: tuple[int, ...]  # the blocks ViTDet leaves global; the others attend in 14x14 windows
    drop_path: float                # ViTDet's stochastic depth
    patch: int = 16                 # ViTDet's patch (detection and segmentation)
    mae_patch: int = 16             # MAE's pretraining patch: its model name ends in _patch{mae_patch}
    decoder_width: int = 512        # MAE's decoder, the same for every size
    decoder_depth: int = 8
    decoder_heads: int = 16

    @property
    def window_blocks(self) -> tuple[int, ...]:
        return tuple(i for i in range(self.depth) if i not in self.global_blocks)


VIT_SIZES: MappingProxyType[str, ViTSize] = MappingProxyType({
    "vit_tiny":  ViTSize(width=192,  depth=12, heads=3,  global_blocks=(2, 5, 8, 11),   drop_path=0.1),
    "vit_small": ViTSize(width=384,  depth=12, heads=6,  global_blocks=(2, 5, 8, 11),   drop_path=0.1),
    "vit_base":  ViTSize(width=768,  depth=12, heads=12, global_blocks=(2, 5, 8, 11),   drop_path=0.1),
    "vit_large": ViTSize(width=1024, depth=24, heads=16, global_blocks=(5, 11, 17, 23), drop_path=0.4),
    # MAE's ViT-H is patch 14; ViTDet resamples it to 16
    "vit_huge":  ViTSize(width=1280, depth=32, heads=16, global_blocks=(7, 15, 23, 31), drop_path=0.5, mae_patch=14),
})


def vit_size(name: str) -> ViTSize:
    """The registry's row ``name`` (``vit_base``, ...)."""
    if name not in VIT_SIZES:
        raise ValueError(f"unknown ViT size {name!r}; choose one of {sorted(VIT_SIZES)}")
    return VIT_SIZES[name]


def size_of_width(width: int) -> str | None:
    """The name of the size ``width`` wide, None when no size is (widths are unique in the registry)."""
    return next((name for name, size in VIT_SIZES.items() if size.width == width), None)


def vit_kwargs(name: str, **overrides) -> dict:
    """The ViT constructor arguments of a size as ViTDet builds it, with overrides applied."""
    size = vit_size(name)
    kwargs = dict(
        img_size=1024, patch_size=size.patch, embed_dim=size.width, depth=size.depth, num_heads=size.heads,
        mlp_ratio=4.0, qkv_bias=True, drop_path_rate=size.drop_path, use_rel_pos=True, window_size=14,
        window_block_indexes=size.window_blocks,
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
    """The name runs are recorded under: ``vit_base`` for a size's width and depth, ``vit_tiny_d4`` for a size's
    width at another depth, else ``vit_w{width}_d{depth}``."""
    name = size_of_width(embed_dim)
    if name is None:
        return f"vit_w{embed_dim}_d{depth}"
    return name if depth == VIT_SIZES[name].depth else f"{name}_d{depth}"
