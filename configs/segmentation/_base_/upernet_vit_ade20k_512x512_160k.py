# UperNet on a plain ViT, ADE20K 512x512, 160k iterations: the MAE paper's transfer protocol (arXiv 2111.06377,
# Table 5 and Appendix A.4: BEiT's UperNet code, batch 16, relative position on for transfer, zero-initialised).
# Built as mmseg's configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py is, from mmseg's own _base_
# files, with every one of its numbers; only the backbone (this project's ViT), the layer-decay constructor and
# the checkpoint hook differ. Sizes: upernet_vit_{b,l}_ade20k_512x512_160k.py. Initial weights: the leaf configs, nothing else.
_base_ = [
    'mmseg::_base_/models/upernet_mae.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py',
]
custom_imports = dict(imports=['segmentation'], allow_failed_imports=False)  # its registrations
# mmengine's CheckpointHook, writing files whole and as plain data that a weights-only torch.load reads
default_hooks = dict(checkpoint=dict(type='SafeCheckpointHook'))

crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,  # the leaf configs name the checkpoint (loaded by backbone.load_pretrained)
    backbone=dict(
        _delete_=True,
        type='PlainViT',
        img_size=512,
        patch_size=16,
        drop_path_rate=0.1,
        use_rel_pos=True,  # zero-initialised, for every init (MAE paper Appendix A.4)
        pretrain_img_size=224,
    ),
    neck=dict(rescales=[4, 2, 1, 0.5]),  # Feature2Pyramid: strides 4, 8, 16, 32
    decode_head=dict(num_classes=150),  # UPerHead
    auxiliary_head=dict(num_classes=150),  # FCNHead on the stride-16 level, loss weight 0.4
    test_cfg=dict(mode='slide', crop_size=crop_size, stride=(341, 341)))

optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',  # fp16, dynamic loss scale
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='ViTLayerDecayOptimizerConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.65))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False),
]

# 8 GPUs x 2 images = batch 16. ADEFormatDataset = mmseg's ADE20KDataset with input checks.
train_dataloader = dict(batch_size=2, dataset=dict(type='ADEFormatDataset'))
val_dataloader = dict(batch_size=1, dataset=dict(type='ADEFormatDataset'))
test_dataloader = val_dataloader

# Curves in TensorBoard as for pretraining and detection (tensorboard --logdir WORK_DIR), besides mmengine's
# vis_data/scalars.json that `mae-transfer plot` reads.
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')

randomness = dict(seed=0)  # every init sees the same data order
run_record = dict(dataset='ade20k')  # for the run record segmentation.train writes (runlib.run_lifecycle)
