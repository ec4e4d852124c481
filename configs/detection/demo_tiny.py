"""Tiny Mask R-CNN ViTDet for CPU runs on the project's generated COCO-format set (``mae_transfer.synthetic``).

The base with only sizes and schedule scaled down: a 4-block, 192-wide ViT pretrained at 128 px (the pretraining
demo's encoder; other encoders: ``model.backbone.net.*`` overrides), 64-channel pyramid and heads, fewer proposals
and sampled RoIs (32 per image, for at most 4 objects: at 128 the box head's convolutions made an iteration
about twice as costly), 128-px large-scale jitter, batch 4, 300 iterations, CPU, no AMP, the 6 generated
categories. The lr is the published one: at 10x it no init detected anything in 300 iterations (APbox 0.03 / 0.00
for MAE / random against 5.6 / 6.2 at 1x; benchmarks/demo_diagnostics/README.md section 6). Data:
``--train-json/--train-images/--val-json/--val-images`` (``detection.train(..., train_json=..., ...)``);
initial weights: ``train.init_checkpoint``. This is the MAE-init recipe; demo_tiny_supervised.py and
demo_tiny_random.py hold the other inits' published differences. The stock ``DatasetMapper`` crops the
polygon masks (through shapely). The demo changes the number of iterations only: lr steps and warm-up stay
at the same fractions of the run.
"""
import detectron2.data.transforms as T
from detectron2.config import LazyCall as L

from backbone import ViT
from detection.recipe import step_schedule

from .base_mask_rcnn_vitdet import dataloader, model, optimizer, train  # noqa: F401

model.backbone.net = L(ViT)(
    img_size=128, patch_size=16, embed_dim=192, depth=4, num_heads=3, drop_path_rate=0.1,
    use_rel_pos=True, window_size=4, window_block_indexes=(0, 2),  # global blocks 1 and 3
    pretrain_img_size=128,
)
model.backbone.square_pad = 128
model.backbone.out_channels = 64
model.proposal_generator.head.in_channels = 64
model.proposal_generator.pre_nms_topk = (500, 250)   # train, test
model.proposal_generator.post_nms_topk = (200, 100)
model.roi_heads.num_classes = 6  # mae_transfer.synthetic.THING_CLASSES
model.roi_heads.batch_size_per_image = 32  # RoIs sampled per image (<= 4 objects each): the box head's cost
model.roi_heads.box_head.input_shape.channels = 64
model.roi_heads.box_head.conv_dims = [64, 64, 64, 64]
model.roi_heads.box_head.fc_dims = [256]
model.roi_heads.box_predictor.input_shape.channels = 256
model.roi_heads.mask_head.input_shape.channels = 64
model.roi_heads.mask_head.conv_dims = [64, 64, 64, 64, 64]
# COCO AP ranks every detection by score; ViTDet's 0.05 cut (an inference-speed setting) drops most of them
# after a schedule this short, so the demo's evaluation keeps them all.
model.roi_heads.box_predictor.test_score_thresh = 0.0

dataloader.train.mapper.augmentations = [
    L(T.RandomFlip)(horizontal=True),
    L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=128, target_width=128),
    L(T.FixedSizeCrop)(crop_size=(128, 128), pad=False),
]
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 1
dataloader.test.num_workers = 1
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=128, max_size=128)]

train.max_iter = 300
lr_multiplier = step_schedule(max_iter=300, milestones=[267, 289], warmup_iters=25)  # 88.9 % and 96.3 %
train.device = "cpu"
train.amp.enabled = False
train.ddp.fp16_compression = False
train.init_checkpoint = ""  # random init unless given
train.init = ""
train.seed = 0
train.checkpointer.period = 100
train.eval_period = 0  # evaluate once, at the end
train.log_period = 20
