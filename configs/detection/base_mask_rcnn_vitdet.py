"""Mask R-CNN ViTDet on COCO, everything the configs here share: ViT-B with the MAE recipe
(detectron2 projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py; ViTDet paper, arXiv 2203.16527).

detectron2's own model_zoo parts (common/models/mask_rcnn_vitdet.py, common/data/coco.py, common/optim.py,
common/train.py) with this project's backbone in place of detectron2's: the model's keys stay ViTDet's
(``backbone.net.*``, ``backbone.simfp_*``). The other files change only what differs from this one.

Initial weights: ``train.init_checkpoint`` is a pretrained ViT (MAE release, timm file, our export; loaded by
``backbone.load_pretrained``) or a whole detector (``model_final``; loaded by detectron2's checkpointer).
``train.init`` names the initialisation in the run record.
"""
import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L

from backbone import ViT, vit_kwargs
from detection.recipe import layer_decay, lsj_schedule
from detection.vitdet import ViTDetBackbone

# Model: RPN with 2 convs, 4conv1fc box head and mask head with LN, ImageNet RGB pixel mean/std.
model = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
model.backbone = L(ViTDetBackbone)(
    # 768 wide, 12 blocks, 12 heads, patch 16, 14x14 windows, global blocks 2/5/8/11, rel-pos, 1024 input
    net=L(ViT)(**vit_kwargs("vit_base", drop_path_rate=0.1)),
    out_channels=256,
    scale_factors=(4.0, 2.0, 1.0, 0.5),
    top_block=True,
    norm="LN",
    square_pad=1024,
)

# Data: large-scale jitter at 1024 (flip, resize x0.1-2.0, crop 1024), batch 64; test at shortest edge 1024.
dataloader = model_zoo.get_config("common/data/coco.py").dataloader
dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=1024, target_width=1024),
    L(T.FixedSizeCrop)(crop_size=(1024, 1024), pad=False),
]
dataloader.train.mapper.image_format = "RGB"
dataloader.train.mapper.recompute_boxes = True  # boxes of cropped masks
dataloader.train.total_batch_size = 64
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=1024, max_size=1024)]

# Optimizer: AdamW, lr 1e-4, betas (0.9, 0.999), weight decay 0.1 except norms and pos_embed, layer decay 0.7.
optimizer = model_zoo.get_config("common/optim.py").AdamW
optimizer.lr = 1e-4
optimizer.betas = (0.9, 0.999)
optimizer.weight_decay = 0.1
optimizer.params.weight_decay_norm = 0.0
optimizer.params.overrides = {"pos_embed": {"weight_decay": 0.0}}
optimizer.params.lr_factor_func = L(layer_decay)(decay=0.7, depth="${....model.backbone.net.depth}")

# Training: 100 epochs = 184,375 iterations, x0.1 at 163,889 and 177,546, 250 warm-up iterations from 0.001; AMP.
train = model_zoo.get_config("common/train.py").train
train.max_iter, lr_multiplier = lsj_schedule(epochs=100)
train.amp.enabled = True
train.ddp.fp16_compression = True
train.init_checkpoint = "detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_base.pth"  # the MAE release's ViT-B
train.init = "mae"
