"""Fixed 2-D sine-cosine position embedding of MAE (MAE paper Sec. 3), value for value the official
facebookresearch/mae ``util/pos_embed.py``: half the channels encode one grid axis, half the other, each as
``concat(sin(pos * omega), cos(pos * omega))`` with ``omega_i = 1 / 10000^(2i / D)``.

The official grid is built with ``meshgrid(w, h)``, so the *first* half of the channels varies along the
width (columns) and the second half along the height (rows). Released checkpoints store exactly these values
in ``pos_embed`` / ``decoder_pos_embed``; we keep the convention so they compare equal.
"""
from __future__ import annotations

import numpy as np


def get_1d_sincos_pos_embed_from_grid(embed_dim: int, pos: np.ndarray) -> np.ndarray:
    """Positions (M,) -> (M, embed_dim): sines of all frequencies, then cosines."""
    if embed_dim % 2:
        raise ValueError(f"sin-cos embedding needs an even dimension, got {embed_dim}")
    omega = np.arange(embed_dim // 2, dtype=np.float32)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega  # [D/2]
    out = np.einsum("m,d->md", pos.reshape(-1), omega)  # [M, D/2], outer product
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)  # [M, D]


def get_2d_sincos_pos_embed_from_grid(embed_dim: int, grid: np.ndarray) -> np.ndarray:
    """grid (2, 1, H, W) of (first, second) coordinates -> (H*W, embed_dim)."""
    if embed_dim % 4:
        raise ValueError(f"2-D sin-cos embedding needs a dimension divisible by 4, got {embed_dim}")
    emb_first = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])  # [H*W, D/2]
    emb_second = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])  # [H*W, D/2]
    return np.concatenate([emb_first, emb_second], axis=1)  # [H*W, D]


def get_2d_sincos_pos_embed(embed_dim: int, grid_size: int, cls_token: bool = False) -> np.ndarray:
    """(grid_size**2 [+1], embed_dim) embedding of a square grid in row-major order; a zero row for the cls
    token comes first when ``cls_token``."""
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(grid_w, grid_h), axis=0)  # w goes first, as in the official code
    pos_embed = get_2d_sincos_pos_embed_from_grid(embed_dim, grid.reshape(2, 1, grid_size, grid_size))
    if cls_token:
        pos_embed = np.concatenate([np.zeros([1, embed_dim]), pos_embed], axis=0)
    return pos_embed
