"""Attention with decomposed relative position (MViTv2, arXiv 2112.01526; ViTDet, arXiv 2203.16527) without a
dense bias tensor.

The bias of query ``q`` (at row ``qh``, column ``qw``) on key ``k`` is ``rel_h[q, kh] + rel_w[q, kw]``, with
``rel_h = einsum(q, Rh)`` and ``rel_w = einsum(q, Rw)`` as detectron2's ``add_decomposed_rel_pos``. timm's SAM
attention adds the two terms into a dense (heads, N, N) float mask and passes it to
``scaled_dot_product_attention``: at 1024 px a global block's mask is 4096 x 4096 per head, materialised and,
since the mask needs a gradient, attended by SDPA's unfused math path. Four ways without that tensor:

- ``"explicit"``: detectron2's computation, logits ``(q * scale) @ k^T`` with both terms added as broadcast
  views (no bias tensor), softmax, ``@ v``.
- ``"sdpa"``: the bias as part of the dot product, so that SDPA's fused kernels run without a mask:
  ``q' = [q * scale, rel_h, rel_w]`` and ``k' = [k, onehot(row), onehot(column)]`` give
  ``q'.k' = scale q.k + rel_h[q, kh] + rel_w[q, kw]`` exactly. Head dim grows by H + W (64 + 64 + 64 at 1024
  px); ``v`` is zero-padded to it, as the fused kernels want one head dim.
- ``"chunked"``: detectron2's computation over chunks of query rows with a backward of its own that recomputes
  each chunk's probabilities (``backbone/chunked_attention.py``): head dim C, no N x N tensor; plain ``bmm``.
- ``"flex"``: FlexAttention with a ``score_mod`` adding ``rel_h[q, k // W] + rel_w[q, k % W]`` inside the
  kernel (compiled; no backward on CPU in torch 2.14).

``attention_impl`` chooses per device, from measurements recorded in ``benchmarks/backbone_speed.md``; all four
give the same outputs and gradients up to float rounding, and the parameters are timm's (``qkv``, ``proj``,
``rel_pos_h``, ``rel_pos_w``), so checkpoints do not change.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.vision_transformer_sam import Attention

from .chunked_attention import chunked_attention
from .shape_constants import shape_constant

IMPLS = ("explicit", "sdpa", "chunked", "flex")


SMALL_ATTENTION = 256  # tokens: a 14 x 14 window (196) is small, a 32 x 32 global block (1,024) is not


def attention_impl(device: torch.device, dropout_p: float = 0.0, tokens: int = 0) -> str:
    """The implementation used when a module's ``impl`` is ``"auto"``, by measurement: on CPU ``"explicit"`` for
    windows (up to ``SMALL_ATTENTION`` tokens) and ``"chunked"`` above; ``"sdpa"`` elsewhere (and wherever
    attention dropout is on, which ``"chunked"`` does not do).

    Why: on CPU, in global blocks ``"sdpa"`` multiplies through head dim C + H + W and detectron2 writes N x N
    logits, while ``"chunked"`` does neither; in 14 x 14 windows keeping the 196 x 196 probabilities costs less
    than recomputing them. On CUDA the fused kernels make ``"sdpa"`` the fastest and the leanest at 1024 px, and
    no slower at 512 px. The timings and memory are in benchmarks/backbone_speed.md (CPU) and benchmarks/gpu.md
    (H200).
    """
    if device.type != "cpu":
        return "sdpa"
    if tokens <= SMALL_ATTENTION:
        return "explicit"
    return "sdpa" if dropout_p else "chunked"


@shape_constant
def relative_position_index(q_size: int, k_size: int, device: torch.device) -> torch.Tensor:
    """(q_size, k_size) rows of the relative-position table for query i and key j: the coordinates of timm's and
    detectron2's ``get_rel_pos``, scaled when the sizes differ, made on ``device`` (``backbone.shape_constants``)."""
    q_coords = torch.arange(q_size, dtype=torch.float32, device=device)[:, None] * max(k_size / q_size, 1.0)
    k_coords = torch.arange(k_size, dtype=torch.float32, device=device)[None, :] * max(q_size / k_size, 1.0)
    return ((q_coords - k_coords) + (k_size - 1) * max(q_size / k_size, 1.0)).long()


def resize_rel_pos(table: torch.Tensor, length: int) -> torch.Tensor:
    """A relative-position table (L, C) linearly resized to (length, C), as timm's and detectron2's ``get_rel_pos``
    resize it (for a grid other than the one it was built for, and for a checkpoint's table of another size)."""
    return F.interpolate(table.reshape(1, table.shape[0], -1).permute(0, 2, 1), size=length,
                         mode="linear").reshape(-1, length).permute(1, 0)


def get_rel_pos(q_size: int, k_size: int, rel_pos: torch.Tensor) -> torch.Tensor:
    """The table (2 * max(q_size, k_size) - 1, C), linearly resized to that length if it has another, gathered to
    (q_size, k_size, C): timm's ``get_rel_pos``, without a host-to-device index copy per call."""
    length = 2 * max(q_size, k_size) - 1
    if rel_pos.shape[0] != length:
        rel_pos = resize_rel_pos(rel_pos, length)
    return rel_pos[relative_position_index(q_size, k_size, rel_pos.device)]


def rel_pos_terms(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                  grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """q (B, heads, H*W, C) -> rel_h (B, heads, H, W, H) and rel_w (B, heads, H, W, W), as detectron2's
    ``add_decomposed_rel_pos`` (tables interpolated when the grid differs from the one they were built for)."""
    H, W = grid
    Rh = get_rel_pos(H, H, rel_pos_h)
    Rw = get_rel_pos(W, W, rel_pos_w)
    r_q = q.unflatten(2, (H, W))
    return torch.einsum("bnhwc,hkc->bnhwk", r_q, Rh), torch.einsum("bnhwc,wkc->bnhwk", r_q, Rw)


def explicit_attention(q, k, v, rel_h, rel_w, scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    B, heads, N, _ = q.shape
    H, W = rel_h.shape[2], rel_h.shape[3]
    attn = ((q * scale) @ k.transpose(-2, -1)).view(B, heads, H, W, H, W)
    # out of place, as detectron2: adding in place into a view of the logits costs autograd four N x N copies in
    # backward (measured), against one N x N temporary here
    attn = (attn + rel_h[..., None] + rel_w[..., None, :]).view(B, heads, N, N)
    attn = attn.softmax(dim=-1)
    if dropout_p:
        attn = F.dropout(attn, dropout_p)
    return attn @ v


@shape_constant
def row_col_onehot(H: int, W: int, pad: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(H*W, H + W + pad): for token n, a one at its row and one at H + its column; ``pad`` zero columns."""
    # comparisons, not F.one_hot: its range check synchronises with a GPU
    row = torch.arange(H, device=device)
    col = torch.arange(W, device=device)
    row_onehot = (row[:, None, None] == row[None, None, :]).expand(H, W, H)
    col_onehot = (col[None, :, None] == col[None, None, :]).expand(H, W, W)
    onehot = torch.cat([row_onehot, col_onehot], dim=-1).reshape(H * W, H + W).to(dtype)
    return F.pad(onehot, (0, pad))


def sdpa_attention(q, k, v, rel_h, rel_w, scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    B, heads, N, C = q.shape
    H, W = rel_h.shape[2], rel_h.shape[3]
    pad = -(C + H + W) % 8  # fused GPU kernels want head dims in multiples of 8
    onehot = row_col_onehot(H, W, pad, q.device, q.dtype)
    q_aug = torch.cat([q * scale, rel_h.reshape(B, heads, N, H), rel_w.reshape(B, heads, N, W)], dim=-1)
    k_aug = torch.cat([k, onehot.expand(B, heads, N, -1)], dim=-1)
    if pad:
        q_aug = F.pad(q_aug, (0, pad))
    v_pad = F.pad(v, (0, q_aug.shape[-1] - C))
    out = F.scaled_dot_product_attention(q_aug, k_aug, v_pad, dropout_p=dropout_p, scale=1.0)
    return out[..., :C]


_compiled_flex = None


def flex_attention(q, k, v, rel_h, rel_w, scale: float, dropout_p: float = 0.0) -> torch.Tensor:
    global _compiled_flex
    if dropout_p:
        raise ValueError("attention impl 'flex' has no attention dropout; use 'sdpa' or 'explicit'")
    if _compiled_flex is None:  # FlexAttention is only fast compiled (eager it falls back to dense math)
        from torch.nn.attention.flex_attention import flex_attention as flex
        _compiled_flex = torch.compile(flex, dynamic=False)
    B, heads, N, _ = q.shape
    W = rel_w.shape[-1]
    rel_h, rel_w = rel_h.reshape(B, heads, N, -1), rel_w.reshape(B, heads, N, W)

    def add_rel_pos(score, b, h, q_idx, kv_idx):
        return score + rel_h[b, h, q_idx, kv_idx // W] + rel_w[b, h, q_idx, kv_idx % W]

    return _compiled_flex(q, k, v, score_mod=add_rel_pos, scale=scale)


ATTENTION = {"explicit": explicit_attention, "sdpa": sdpa_attention, "chunked": chunked_attention,
             "flex": flex_attention}


class RelPosAttention(Attention):
    """timm's SAM ``Attention`` (same parameters and outputs) computing the decomposed relative position
    without a dense bias; ``impl`` is one of ``IMPLS`` or ``"auto"`` (``attention_impl``)."""

    def __init__(self, *args, impl: str = "auto", **kwargs):
        super().__init__(*args, **kwargs)
        if impl not in IMPLS + ("auto",):
            raise ValueError(f"attention impl must be one of {IMPLS + ('auto',)}, got {impl!r}")
        self.impl = impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C), as timm's."""
        return self.project(self.attend(self.qkv(x)))

    def attend(self, qkv: torch.Tensor) -> torch.Tensor:
        """qkv (B, H, W, 3C), the ``qkv`` layer's output -> (B, H, W, C), attention before the projection."""
        B, H, W, _ = qkv.shape
        N = H * W
        q, k, v = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)  # (B, heads, N, C)
        q, k = self.q_norm(q), self.k_norm(k)
        dropout_p = self.attn_drop.p if self.training else 0.0
        if self.use_rel_pos:
            rel_h, rel_w = rel_pos_terms(q, self.rel_pos_h, self.rel_pos_w, (H, W))
            impl = self.impl if self.impl != "auto" else attention_impl(qkv.device, dropout_p, N)
            x = ATTENTION[impl](q, k, v, rel_h, rel_w, self.scale, dropout_p)
        else:  # no bias at all: timm's fused path
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
        return x.transpose(1, 2).reshape(B, H, W, -1)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj_drop(self.proj(x))
