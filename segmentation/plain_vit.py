"""``backbone.ViT`` as an mmseg backbone for UperNet, under the MAE paper's transfer protocol (arXiv 2111.06377,
Table 5 and Appendix A.4).

The MAE paper runs every arm (MAE, supervised, random) through one backbone code and schedule: global
attention in all blocks, relative position turned on for transfer and initialised to zero, multi-level
features from four evenly spaced blocks. This adapter is ``backbone.ViT`` with those settings, registered in
mmseg's ``MODELS`` as ``PlainViT``; its parameter names stay ``blocks.N.*``, ``pos_embed``,
``patch_embed.proj.*`` (``backbone.*`` in the segmentor), so an official MAE release or a timm supervised
file loads through ``backbone.load_pretrained`` untouched.

Honest differences from mmseg's own ``MAE`` backbone (BEiT code):
- relative position is ViTDet's decomposed form (``attn.rel_pos_h`` / ``attn.rel_pos_w`` per block, the
  query projected onto per-axis offset embeddings, MViTv2 / ViTDet) instead of BEiT's
  ``relative_position_bias_table`` (a learned bias per head and 2-D offset); both start at zero, so the
  pretrained features are unchanged at step 0;
- the cls token is dropped before the blocks (ViTDet) instead of carried through them;
- no layer scale (mmseg's MAE config adds ``init_values=1.0``, an identity at initialisation).
"""
from __future__ import annotations

from typing import Sequence

import torch
from mmengine.logging import print_log
from mmseg.registry import MODELS

from backbone import LoadReport, ViT, load_pretrained, vit_size


@MODELS.register_module()
class PlainViT(ViT):
    """A plain ViT returning the maps of ``out_indices`` (e.g. blocks 3, 5, 7, 11 of ViT-B) for an mmseg neck.

    Args:
        pretrained: checkpoint loaded by ``init_weights`` through ``backbone.load_pretrained`` (an official
            MAE file, a timm file, this project's exports); None keeps the random initialisation. mmseg's
            ``EncoderDecoder(pretrained=...)`` fills it in.
        **vit_kwargs: ``backbone.ViT`` arguments (``img_size``, ``patch_size``, ``embed_dim``, ``depth``,
            ``num_heads``, ``drop_path_rate``, ``out_indices``, ``pretrain_img_size``, ...). Defaults differ
            from ViTDet's for this protocol: ``window_size=0`` (global attention everywhere) and
            ``use_rel_pos=True`` with zero-initialised tables.
    """

    def __init__(self, pretrained: str | None = None, **vit_kwargs):
        if vit_kwargs.get("window_size") or vit_kwargs.get("window_block_indexes"):
            raise ValueError("PlainViT attends globally in every block (the MAE/BEiT UperNet protocol); "
                             f"got window_size={vit_kwargs.get('window_size')} and "
                             f"window_block_indexes={vit_kwargs.get('window_block_indexes')}")
        if "rel_pos_zero_init" in vit_kwargs:
            raise ValueError("PlainViT always zero-initialises its relative-position tables (every arm starts "
                             "from its pretrained features); remove 'rel_pos_zero_init'")
        super().__init__(**{"use_rel_pos": True, **vit_kwargs})
        self.pretrained = pretrained
        self.load_report: LoadReport | None = None

    def init_weights(self, rel_pos_zero_init: bool = True) -> None:
        """Random init (``backbone.ViT``), then the ``pretrained`` checkpoint over it. mmengine's Runner calls
        this once before training; testing loads a full segmentor checkpoint instead."""
        super().init_weights(rel_pos_zero_init=True)
        if getattr(self, "pretrained", None):
            self.load_report = load_pretrained(self, self.pretrained, log=False)
            print_log(f"PlainViT: {self.load_report.summary()}", logger="current")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(B, 3, H, W) -> one (B, embed_dim, H/16, W/16) map per block in ``out_indices``."""
        return tuple(super().forward(x))


def upernet_sizes(size: str, out_indices: Sequence[int]) -> dict:
    """The ``model`` entries of an UperNet config that follow from a ViT size of ``backbone.VIT_SIZES``: the
    backbone's shape and blocks read, and the width of the neck and heads that take its maps."""
    vit = vit_size(size)
    return dict(backbone=dict(embed_dim=vit.width, depth=vit.depth, num_heads=vit.heads,
                              out_indices=tuple(out_indices)),
                neck=dict(embed_dim=vit.width),
                decode_head=dict(in_channels=[vit.width] * 4, channels=vit.width),
                auxiliary_head=dict(in_channels=vit.width))
