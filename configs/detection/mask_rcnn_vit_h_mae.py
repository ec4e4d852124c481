"""ViT-H, MAE init, 75 epochs: ViT-H sizes, drop path 0.5, layer decay 0.9 (detectron2's mask_rcnn_vitdet_h_75ep).

Published: 56.7 APbox / 50.2 APmask (detectron2 ViTDet README). Two differences from detectron2's file, both as
in its ViT-B and ViT-L files (projects/ViTDet/configs/COCO/mask_rcnn_vitdet_{b,l}_100ep.py): norms and pos_embed
keep weight decay 0 (detectron2's H file decays them: ``optimizer.params.weight_decay_norm=None
optimizer.params.overrides={}`` restores that), and warm-up stays 250 iterations (detectron2's H file keeps the
100-epoch fraction, 188).
"""
from detectron2.config import LazyCall as L

from backbone import ViT, vit_kwargs
from detection.recipe import lsj_schedule

from .mask_rcnn_vit_b_mae import dataloader, model, optimizer, train

# 1280 wide, 32 blocks, 16 heads, patch 16, global blocks 7/15/23/31
model.backbone.net = L(ViT)(**vit_kwargs("vit_huge", drop_path_rate=0.5))
optimizer.params.lr_factor_func.decay = 0.9
# MAE's ViT-H is patch 14; this is detectron2's copy resampled to patch 16 (the official patch-14 file also loads:
# backbone.load_pretrained resamples the kernel).
train.init_checkpoint = "detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_huge_p14to16.pth"
train.max_iter, lr_multiplier = lsj_schedule(epochs=75)
