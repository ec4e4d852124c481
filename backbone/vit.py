"""Plain ViT for dense prediction (ViTDet, arXiv 2203.16527, Sec. 3).

The image is patchified once (stride 16), the absolute position embedding of the pretraining grid is resized
to the input grid, and the tokens stay a (B, H, W, C) map through every block: most blocks attend within
windows, a few attend globally. No cls token is kept: its position row is dropped.

Built from timm's SAM blocks (windows padded to a multiple of their size, decomposed relative position) with
the relative position added without a dense bias tensor (``backbone.attention``) and, in window blocks, ``qkv``
and ``proj`` on the image's tokens only (``_Block``), so
for the same arguments ``state_dict()`` has exactly the keys of detectron2's ``ViT`` and, for the encoder
weights, of the official MAE release and timm: checkpoints move between all three untouched.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn as nn
from timm.layers import Format, PatchEmbed, resample_abs_pos_embed
from timm.models.vision_transformer_sam import Block, window_unpartition
from torch.utils.checkpoint import checkpoint

from .attention import IMPLS, RelPosAttention
from .shape_constants import shape_constant


def abs_pos_for_grid(pos_embed: torch.Tensor, has_cls_token: bool, grid: tuple[int, int]) -> torch.Tensor:
    """Position embedding (1, 1?+h0*w0, C) of the square pretraining grid -> (1, h, w, C) for the input grid.

    The cls row is dropped; the rest is resized bicubically without antialiasing, as detectron2's
    ``get_abs_pos`` does, so that ViTDet checkpoints give the same features here as there.
    """
    if has_cls_token:
        pos_embed = pos_embed[:, 1:]
    pos_embed = resample_abs_pos_embed(pos_embed, list(grid), num_prefix_tokens=0, antialias=False)
    return pos_embed.reshape(1, grid[0], grid[1], -1)


@shape_constant
def window_gather_index(B: int, H: int, W: int, window_size: int, device: torch.device) -> torch.Tensor:
    """For each token of the windows of the padded (B, Hp, Wp) grid, in window order, its row in the
    (B * H * W + 1) rows of the tokens followed by the fill row (the last)."""
    Hp, Wp = H + -H % window_size, W + -W % window_size
    rows = torch.arange(Hp, device=device)[:, None]
    cols = torch.arange(Wp, device=device)[None, :]
    token = torch.where((rows < H) & (cols < W), rows * W + cols, -1)  # (Hp, Wp), -1 for padding
    token = token.view(Hp // window_size, window_size, Wp // window_size, window_size).transpose(1, 2).reshape(-1)
    index = torch.where(token >= 0, token + H * W * torch.arange(B, device=device)[:, None], B * H * W)
    return index.reshape(-1)


def partition_windows(x: torch.Tensor, window_size: int, fill: torch.Tensor | None
                      ) -> tuple[torch.Tensor, tuple[int, int]]:
    """(B, H, W, C) -> windows (B * windows, ws, ws, C) and the padded grid (Hp, Wp): timm's ``window_partition``
    with the padding tokens set to ``fill`` (C,) instead of zero (zero if None).

    One gather from the tokens and a ``fill`` row (backward: one scatter-add): padding by concatenation and then
    permuting takes about twice as long (benchmarks/backbone_speed.md), and filling slices of a new tensor copies
    the whole gradient once per slice."""
    B, H, W, C = x.shape
    fill = x.new_zeros(C) if fill is None else fill.to(x.dtype)
    index = window_gather_index(B, H, W, window_size, x.device)
    windows = torch.cat([x.reshape(B * H * W, C), fill[None]]).index_select(0, index)
    return windows.view(-1, window_size, window_size, C), (H + -H % window_size, W + -W % window_size)


class _Block(Block):
    """timm's SAM block with ``RelPosAttention`` (same parameters, no dense relative-position bias).

    In window blocks the ``qkv`` and ``proj`` layers run on the H x W tokens only, not on the padding that
    makes the grid a multiple of the window (512 px: a 32 x 32 grid padded to 42 x 42 for 14 x 14 windows, 72 %
    more tokens). Same outputs and gradients as timm and detectron2, which pad the normalised tokens with zeros
    before ``qkv``: a zero token's q, k and v are ``qkv.bias``, so the padding is filled with the bias (and its
    gradient flows to the bias), and ``proj`` of a padded token is cropped away.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, use_rel_pos: bool, input_size: tuple[int, int],
                 attn_impl: str, **kwargs):
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, use_rel_pos=use_rel_pos, input_size=input_size,
                         **kwargs)
        self.attn = RelPosAttention(dim, num_heads=num_heads, qkv_bias=qkv_bias, use_rel_pos=use_rel_pos,
                                    input_size=input_size if self.window_size == 0 else (self.window_size,) * 2,
                                    impl=attn_impl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.window_size == 0:
            return super().forward(x)
        B, H, W, C = x.shape
        windows, pad_hw = partition_windows(self.attn.qkv(self.norm1(x)), self.window_size, self.attn.qkv.bias)
        attended = window_unpartition(self.attn.attend(windows), self.window_size, (H, W), pad_hw)
        x = x + self.drop_path1(self.ls1(self.attn.project(attended)))
        x = x.reshape(B, H * W, C)  # the MLP as timm's block runs it
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x.reshape(B, H, W, C)


class ViT(nn.Module):
    """Vision Transformer backbone with windowed and global attention blocks.

    Args:
        img_size: input size the model is built for; sets the global blocks' relative-position tables
            (other sizes still work: tables are interpolated, as in detectron2).
        patch_size: patch (and output stride) size.
        in_chans: input channels.
        embed_dim, depth, num_heads, mlp_ratio, qkv_bias: the transformer's shape.
        drop_path_rate: stochastic depth, linearly increasing over blocks to this rate.
        norm_layer: normalisation layer (LayerNorm, eps 1e-6).
        act_layer: activation in the MLP.
        use_abs_pos: add the absolute position embedding (stored at the pretraining grid).
        use_rel_pos: add decomposed relative position to attention (MViTv2 / ViTDet).
        rel_pos_zero_init: start the relative-position tables at zero (a no-op at first, so pretrained
            features are unchanged), else truncated normal (std 0.02).
        window_size: window side for the blocks in ``window_block_indexes``; 0 disables windows.
        window_block_indexes: blocks using window attention; all others attend globally.
        use_act_checkpoint: recompute block activations in the backward pass to save memory.
        pretrain_img_size: image size of pretraining; fixes the stored position-embedding grid.
        pretrain_use_cls_token: the stored position embedding has a leading cls row (MAE, timm).
        out_indices: blocks whose outputs are returned (default: the last one only). mmseg's UperNet
            takes several, e.g. (3, 5, 7, 11) for ViT-B.
        attn_impl: how attention adds the relative position: ``"auto"`` (per device, see
            ``backbone.attention.attention_impl``), ``"sdpa"``, ``"explicit"``, ``"chunked"`` or ``"flex"``;
            same outputs.
    """

    def __init__(
        self,
        img_size: int = 1024,
        patch_size: int = 16,
        in_chans: int = 3,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        norm_layer: type[nn.Module] = partial(nn.LayerNorm, eps=1e-6),
        act_layer: type[nn.Module] = nn.GELU,
        use_abs_pos: bool = True,
        use_rel_pos: bool = False,
        rel_pos_zero_init: bool = True,
        window_size: int = 0,
        window_block_indexes: Sequence[int] = (),
        use_act_checkpoint: bool = False,
        pretrain_img_size: int = 224,
        pretrain_use_cls_token: bool = True,
        out_indices: Sequence[int] | None = None,
        attn_impl: str = "auto",
    ):
        super().__init__()
        if img_size % patch_size or pretrain_img_size % patch_size:
            raise ValueError(f"patch_size {patch_size} must divide img_size {img_size} "
                             f"and pretrain_img_size {pretrain_img_size}")
        if attn_impl not in IMPLS + ("auto",):
            raise ValueError(f"attn_impl must be one of {IMPLS + ('auto',)}, got {attn_impl!r}")
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.use_act_checkpoint = use_act_checkpoint
        self.out_indices = tuple(range(depth)[i] for i in (out_indices or (depth - 1,)))

        self.patch_embed = PatchEmbed(img_size=None, patch_size=patch_size, in_chans=in_chans,
                                      embed_dim=embed_dim, output_fmt=Format.NHWC, strict_img_size=False)
        if use_abs_pos:
            grid = pretrain_img_size // patch_size
            self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + pretrain_use_cls_token, embed_dim))
        else:
            self.pos_embed = None

        drop_path = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            _Block(embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=drop_path[i],
                   norm_layer=norm_layer, act_layer=act_layer, use_rel_pos=use_rel_pos,
                   window_size=window_size if i in window_block_indexes else 0,
                   input_size=(img_size // patch_size, img_size // patch_size), attn_impl=attn_impl)
            for i in range(depth)
        )
        self.init_weights(rel_pos_zero_init)

    def init_weights(self, rel_pos_zero_init: bool = True) -> None:
        """Random init as detectron2's ViT: truncated normal (0.02) for Linear and pos_embed, unit LayerNorm."""
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for block in self.blocks:
            if block.attn.use_rel_pos and not rel_pos_zero_init:
                nn.init.trunc_normal_(block.attn.rel_pos_h, std=0.02)
                nn.init.trunc_normal_(block.attn.rel_pos_w, std=0.02)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, H, W) image -> one (B, embed_dim, H/p, W/p) map per block in ``out_indices``."""
        x = self.patch_embed(x)  # [B, h, w, D]
        if self.pos_embed is not None:
            x = x + abs_pos_for_grid(self.pos_embed, self.pretrain_use_cls_token, (x.shape[1], x.shape[2]))
        outputs = []
        for i, block in enumerate(self.blocks):
            x = checkpoint(block, x, use_reentrant=False) if self.use_act_checkpoint and self.training else block(x)
            if i in self.out_indices:
                outputs.append(x.permute(0, 3, 1, 2))
        return outputs
