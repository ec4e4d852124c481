"""demo_tiny.py with the supervised-init recipe's differences (ViTDet Table 11, as mask_rcnn_vit_b_supervised.py):
lr 0.8x the MAE recipe's (8e-5 against 1e-4) and no layer decay. The published recipe also trains for half as
long (50 against 100 epochs); the demo gives every init the same number of iterations."""
from .demo_tiny import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

optimizer.lr = 0.8 * optimizer.lr
optimizer.params.lr_factor_func.decay = 1.0
train.init = "supervised"
