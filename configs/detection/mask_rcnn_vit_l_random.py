"""ViT-L from random init: the ViT-B random-init recipe with ViT-L sizes, 200 epochs (ViTDet T11).

Drop path 0.4, as the ViT-L MAE recipe (the ViTDet paper's Table 11 gives none for this baseline). Published
(ViTDet T4): 50.0 APbox / 44.2 APmask.
"""
from detectron2.config import LazyCall as L

from backbone import ViT, vit_kwargs
from detection.recipe import lsj_schedule

from .mask_rcnn_vit_b_random import dataloader, model, optimizer, train  # noqa: F401

model.backbone.net = L(ViT)(**vit_kwargs("vit_large", drop_path_rate=0.4))
train.max_iter, lr_multiplier = lsj_schedule(epochs=200)
