"""ViT-L, supervised ImageNet-1K init: the ViT-B baseline recipe with ViT-L sizes and drop path 0.4 (ViTDet T11).

Published (ViTDet T4, without rel-pos): 49.6 APbox / 43.8 APmask.
"""
from detectron2.config import LazyCall as L

from backbone import ViT, vit_kwargs

from .mask_rcnn_vit_b_supervised import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone.net = L(ViT)(**vit_kwargs("vit_large", drop_path_rate=0.4))
