"""ViT-L, MAE init, 100 epochs: ViT-L sizes, drop path 0.4, layer decay 0.8 (detectron2's mask_rcnn_vitdet_l_100ep).

Published: 55.5 APbox / 49.2 APmask (detectron2 ViTDet README).
"""
from detectron2.config import LazyCall as L

from backbone import ViT, vit_kwargs

from .mask_rcnn_vit_b_mae import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

# 1024 wide, 24 blocks, 16 heads, global blocks 5/11/17/23
model.backbone.net = L(ViT)(**vit_kwargs("vit_large", drop_path_rate=0.4))
optimizer.params.lr_factor_func.decay = 0.8
train.init_checkpoint = "detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_large.pth"
