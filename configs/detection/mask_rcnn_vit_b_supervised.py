"""ViT-B, supervised ImageNet-1K init: the ViTDet paper's baseline recipe (its Table 11; detectron2 ships none).

lr 8e-5, weight decay 0.1, drop path 0.1, 50 epochs, no layer decay. Published (ViTDet T4, without rel-pos):
47.6 APbox / 42.4 APmask.
"""
from detection.recipe import lsj_schedule

from .mask_rcnn_vit_b_mae import dataloader, model, optimizer, train

# The paper's own supervised ViT-B (MAE paper, Appendix A.2) is not public: DeiT-B (Touvron et al., arXiv 2012.12877,
# ImageNet-1K only, 81.8 top-1) stands in, fetched by timm's name (backbone.hub). Any file or reference works:
# train.init_checkpoint=/path/file.pth
train.init_checkpoint = "timm:deit_base_patch16_224.fb_in1k"
train.init = "supervised"
model.backbone.net.drop_path_rate = 0.1
optimizer.lr = 8e-5
optimizer.weight_decay = 0.1
optimizer.params.lr_factor_func.decay = 1.0
train.max_iter, lr_multiplier = lsj_schedule(epochs=50)
