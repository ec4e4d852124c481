"""ViT-B from random init: the ViTDet paper's recipe (its Table 11; detectron2 ships none).

lr 1.6e-4, weight decay 0.2, 300 epochs, no layer decay. Table 11 gives no drop path for this baseline: the
base's 0.1 is kept. Published (ViTDet T4): 48.1 APbox / 42.6 APmask.
"""
from detection.recipe import lsj_schedule

from .mask_rcnn_vit_b_mae import dataloader, model, optimizer, train  # noqa: F401

train.init_checkpoint = ""
train.init = "random"
optimizer.lr = 1.6e-4
optimizer.weight_decay = 0.2
optimizer.params.lr_factor_func.decay = 1.0
train.max_iter, lr_multiplier = lsj_schedule(epochs=300)
