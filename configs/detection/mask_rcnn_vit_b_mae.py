"""ViT-B, MAE init, 100 epochs: the base unchanged (detectron2's mask_rcnn_vitdet_b_100ep).

Published: 51.6 APbox / 45.9 APmask (detectron2 ViTDet README).
"""
from .base_mask_rcnn_vitdet import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401
