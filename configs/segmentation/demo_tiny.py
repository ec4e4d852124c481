# The published recipe (upernet_vit_ade20k_512x512_160k) scaled down to run on CPU in minutes, on the ADE20K-
# format set that `mae-transfer generate-data` writes: the pretraining demo's encoder (configs/pretrain/
# demo_tiny.py: ViT-Tiny width, 4 blocks, patch 16, pretrained at 128 px), 64-channel heads (as the detection
# demo's; with 192 / 256 channels, the heads took 91 % of the forward FLOPs: 15.3 of 16.8 GFLOP for a batch of 4,
# against 1.8 of 3.3 with 64), 128 px crops, 300 iterations, fp32, BN instead of SyncBN. Optimizer, layer decay,
# head structure, output strides (4-32) and pipeline as published; the lr below.
_base_ = './_base_/upernet_vit_ade20k_512x512_160k.py'
from mae_transfer.synthetic import SEMANTIC_CLASSES  # noqa: E402 (after _base_, for mmengine)

width = 192
head_channels = 64
num_classes = len(SEMANTIC_CLASSES)
crop_size = (128, 128)
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(img_size=128, patch_size=16, embed_dim=width, depth=4, num_heads=3, out_indices=(0, 1, 2, 3),
                  pretrain_img_size=128),
    neck=dict(embed_dim=width, norm_cfg=norm_cfg),  # rescales 4, 2, 1, 0.5: strides 4, 8, 16, 32
    decode_head=dict(in_channels=[width] * 4, channels=head_channels, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=width, channels=head_channels, num_classes=num_classes, norm_cfg=norm_cfg),
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(85, 85)))

# fp32 (AMP needs a GPU). lr 10x the published 1e-4: with it, no init learned any object class in 600 iterations
# (nor at 3e-4 in 300); at 1e-3 the first ones appear, and 1e-3 gave every init a higher mIoU than 3e-3 at 600
# iterations (benchmarks/demo_diagnostics/README.md section 6).
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
max_iters = 300
param_scheduler = [  # a 5 % warm-up: mmengine chains schedulers, so a LinearLR of n steps leaves the lr at
    # (n - 1) / n of its base (the published 1,500 steps end at 99.9 %; 3 would leave it at 67 %)
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=15),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=15, end=max_iters, by_epoch=False),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=max_iters))

# mmseg's ADE20K pipeline with its scales divided by 4 (the images are 128 px, not 512).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(512, 128), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 128), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
data_root = 'data/synthetic/ade/ADEChallengeData2016'  # mae-transfer generate-data data/synthetic
# No palette: ADEFormatDataset draws one (the generator's SEMANTIC_PALETTE would triple the time mmengine
# spends formatting this config, which it does six times per run).
dataset = dict(type='ADEFormatDataset', data_root=data_root, metainfo=dict(classes=SEMANTIC_CLASSES))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(dataset, pipeline=train_pipeline))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(dataset, pipeline=test_pipeline))
test_dataloader = val_dataloader
run_record = dict(dataset='synthetic_ade')
