"""demo_tiny.py with the random-init recipe's differences (ViTDet Table 11, as mask_rcnn_vit_b_random.py): lr 1.6x
the MAE recipe's (1.6e-4 against 1e-4), weight decay 0.2 and no layer decay. The published recipe also trains for
three times as long (300 against 100 epochs); the demo gives every init the same number of iterations."""
from .demo_tiny import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

optimizer.lr = 1.6 * optimizer.lr
optimizer.weight_decay = 0.2
optimizer.params.lr_factor_func.decay = 1.0
train.init = "random"
