"""ViT-L, supervised ImageNet-1K init: the ViT-B baseline recipe with ViT-L sizes and drop path 0.4 (ViTDet T11).

Published (ViTDet T4, without rel-pos): 49.6 APbox / 43.8 APmask.
"""
from detectron2.config import LazyCall as L

from backbone import ViT, vit_kwargs

from .mask_rcnn_vit_b_supervised import dataloader, lr_multiplier, model, optimizer, train  # noqa: F401

model.backbone.net = L(ViT)(**vit_kwargs("vit_large", drop_path_rate=0.4))
# timm's only ImageNet-1K-only supervised ViT-L/16 is DeiT III-L (Touvron et al., arXiv 2204.07118, 84.9 top-1,
# a stronger recipe than the paper's own ViT-L, 82.5, MAE paper Appendix A.2, which is not public). Its LayerScale
# is folded into the projections on loading (backbone.layouts), exactly.
train.init_checkpoint = "timm:deit3_large_patch16_224.fb_in1k"
