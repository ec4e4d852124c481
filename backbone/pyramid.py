"""Simple feature pyramid (ViTDet, arXiv 2203.16527, Sec. 3 and Fig. 2c).

Only the last stride-16 map of the plain ViT is used: deconvolutions build strides 4 and 8, max-pooling
builds stride 32, then each level gets a 1x1 and a 3x3 conv (each followed by LayerNorm) to 256 channels.
An optional extra level (p6, stride 64) is a stride-2 max-pool of p5, as detectron2's LastLevelMaxPool.

Module names match detectron2's ``SimpleFeaturePyramid`` (``net``, ``simfp_2`` .. ``simfp_5``, convs with a
``norm`` child), so a detectron2 ViTDet checkpoint loads here key for key.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import LayerNorm2d as _PermutingLayerNorm2d

from .vit import ViT


class LayerNorm2d(_PermutingLayerNorm2d):
    """timm's LayerNorm over the channels of (B, C, H, W), its output made contiguous. timm normalises a permuted
    view and permutes back, leaving channels-last strides; a conv taking that input ran its backward 2x slower on
    CPU (the 3 x 3 conv of p2 at 512 px: 1.4 s; the pyramid's forward + backward 2.9-3.2 s against 1.9-2.1 s
    contiguous, benchmarks/backbone_speed.md). Same parameters as timm's and detectron2's ``LayerNorm``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).contiguous()


class ConvNorm(nn.Conv2d):
    """Conv2d followed by a norm, with the norm as a child named ``norm`` (detectron2's ``layers.Conv2d``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: nn.Module | None):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=norm is None)
        self.norm = norm if norm is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


def _rescale_layers(scale: float, dim: int, norm: bool) -> tuple[list[nn.Module], int]:
    """The resampling ops for one pyramid level and the channel count they leave."""
    if scale == 4.0:
        return [nn.ConvTranspose2d(dim, dim // 2, 2, stride=2), LayerNorm2d(dim // 2) if norm else nn.Identity(),
                nn.GELU(), nn.ConvTranspose2d(dim // 2, dim // 4, 2, stride=2)], dim // 4
    if scale == 2.0:
        return [nn.ConvTranspose2d(dim, dim // 2, 2, stride=2)], dim // 2
    if scale == 1.0:
        return [], dim
    if scale == 0.5:
        return [nn.MaxPool2d(kernel_size=2, stride=2)], dim
    raise ValueError(f"scale factor {scale} is not supported (use 4.0, 2.0, 1.0 or 0.5)")


class SimpleFeaturePyramid(nn.Module):
    """Multi-scale maps p2..p5 (+p6) from a plain ViT's last map.

    Args:
        net: the ViT (its last output is the pyramid's input).
        out_channels: channels of every pyramid level (256 in ViTDet).
        scale_factors: resampling of the stride-16 map per level: 4, 2, 1, 0.5 give strides 4, 8, 16, 32.
        top_block: add p6 by stride-2 max-pool of the coarsest level.
        norm: LayerNorm after every conv ("LN", as ViTDet) or none ("").
        square_pad: pad inputs to this square size (1024 in ViTDet's LSJ recipe); 0 for none.
    """

    def __init__(
        self,
        net: ViT,
        out_channels: int = 256,
        scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
        top_block: bool = True,
        norm: str = "LN",
        square_pad: int = 0,
    ):
        super().__init__()
        if norm not in ("LN", ""):
            raise ValueError(f"norm must be 'LN' or '', got {norm!r}")
        self.net = net
        self.top_block = top_block
        self.square_pad = square_pad
        strides = [int(net.patch_size / scale) for scale in scale_factors]
        self.stage_names = []
        for scale, stride in zip(scale_factors, strides):
            layers, dim = _rescale_layers(scale, net.embed_dim, norm == "LN")
            layers += [ConvNorm(dim, out_channels, 1, LayerNorm2d(out_channels) if norm else None),
                       ConvNorm(out_channels, out_channels, 3, LayerNorm2d(out_channels) if norm else None)]
            name = f"simfp_{int(math.log2(stride))}"
            self.add_module(name, nn.Sequential(*layers))
            self.stage_names.append(name)
        self.size_divisibility = strides[-1]  # as detectron2: p6 is pooled from p5, so inputs need only p5's stride
        if top_block:
            strides.append(strides[-1] * 2)
        self._out_feature_strides = {f"p{int(math.log2(s))}": s for s in strides}
        self._out_features = list(self._out_feature_strides)
        self._out_feature_channels = {name: out_channels for name in self._out_features}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, C, H, W) image, H and W multiples of ``size_divisibility`` -> {"p2": ..., ..., "p6": ...}."""
        last = self.net(x)[-1]
        levels = [getattr(self, name)(last) for name in self.stage_names]
        if self.top_block:
            levels.append(F.max_pool2d(levels[-1], kernel_size=1, stride=2))
        return dict(zip(self._out_features, levels))
