"""Every config's numbers are the published recipe's, field by field (the expected values are written here from the
papers and upstream files, not read from the configs; sizes from the registry, which test_presets checks)."""

import detectron2.data.transforms as T
import pytest
from detectron2.config import LazyConfig

from backbone import VIT_SIZES
from tests.detection.conftest import CONFIGS
COCO_TRAIN_IMAGES, BATCH = 118_000, 64

# Sizes: the registry's rows (backbone.VIT_SIZES, pinned to the papers in tests/backbone/test_presets.py); drop path:
# MAE recipes: detectron2 projects/ViTDet/configs/COCO/mask_rcnn_vitdet_{b,l}_100ep.py and _h_75ep.py; supervised and
# random-init baselines: ViTDet paper (arXiv 2203.16527) Table 11.
#                                  size        drop  layer  lr      wd   epochs init
RECIPES = {
    "mask_rcnn_vit_b_mae.py":        ("vit_base",  0.1, 0.7, 1e-4,   0.1, 100, "mae"),
    "mask_rcnn_vit_l_mae.py":        ("vit_large", 0.4, 0.8, 1e-4,   0.1, 100, "mae"),
    "mask_rcnn_vit_h_mae.py":        ("vit_huge",  0.5, 0.9, 1e-4,   0.1, 75,  "mae"),
    "mask_rcnn_vit_b_supervised.py": ("vit_base",  0.1, 1.0, 8e-5,   0.1, 50,  "supervised"),
    "mask_rcnn_vit_l_supervised.py": ("vit_large", 0.4, 1.0, 8e-5,   0.1, 50,  "supervised"),
    "mask_rcnn_vit_b_random.py":     ("vit_base",  None, 1.0, 1.6e-4, 0.2, 300, "random"),
    "mask_rcnn_vit_l_random.py":     ("vit_large", None, 1.0, 1.6e-4, 0.2, 200, "random"),
}


def test_every_recipe_config_is_tested():
    assert sorted(p.name for p in CONFIGS.glob("mask_rcnn_*.py")) == sorted(RECIPES)


@pytest.fixture(scope="module", params=sorted(RECIPES))
def recipe(request):
    return LazyConfig.load(str(CONFIGS / request.param)), RECIPES[request.param]


def test_backbone(recipe):
    cfg, (size, drop_path, *_) = recipe
    net, size = cfg.model.backbone.net, VIT_SIZES[size]
    assert (net.embed_dim, net.depth, net.num_heads) == (size.width, size.depth, size.heads)
    assert (net.patch_size, net.img_size, net.mlp_ratio, net.window_size) == (16, 1024, 4.0, 14)
    assert sorted(set(range(size.depth)) - set(net.window_block_indexes)) == list(size.global_blocks)
    assert net.use_rel_pos
    if drop_path is not None:  # Table 11 gives none for random init
        assert net.drop_path_rate == drop_path
    pyramid = cfg.model.backbone
    assert (pyramid.out_channels, tuple(pyramid.scale_factors), pyramid.norm, pyramid.top_block) == (
        256, (4.0, 2.0, 1.0, 0.5), "LN", True)
    assert pyramid.square_pad == 1024


def test_heads_and_input(recipe):
    model = recipe[0].model
    assert list(model.proposal_generator.head.conv_dims) == [-1, -1]  # RPN with 2 convs
    box = model.roi_heads.box_head
    assert (list(box.conv_dims), list(box.fc_dims), box.conv_norm) == ([256] * 4, [1024], "LN")  # 4conv1fc
    assert model.roi_heads.mask_head.conv_norm == "LN"
    assert model.roi_heads.num_classes == 80
    assert model.input_format == "RGB"
    assert list(model.pixel_mean) == [123.675, 116.28, 103.53]
    assert list(model.pixel_std) == [58.395, 57.12, 57.375]


def test_data(recipe):
    loader = recipe[0].dataloader
    assert loader.train.total_batch_size == BATCH
    flip, resize, crop = loader.train.mapper.augmentations
    assert flip._target_ is T.RandomFlip and flip.horizontal
    assert resize._target_ is T.ResizeScale
    assert (resize.min_scale, resize.max_scale, resize.target_height, resize.target_width) == (0.1, 2.0, 1024, 1024)
    assert crop._target_ is T.FixedSizeCrop and tuple(crop.crop_size) == (1024, 1024)
    assert loader.train.mapper.recompute_boxes and loader.train.mapper.use_instance_mask
    (test_resize,) = loader.test.mapper.augmentations
    assert test_resize._target_ is T.ResizeShortestEdge
    assert (test_resize.short_edge_length, test_resize.max_size) == (1024, 1024)
    assert (loader.train.dataset.names, loader.test.dataset.names) == ("coco_2017_train", "coco_2017_val")


def test_optimizer(recipe):
    cfg, (size, _, layer_decay, lr, weight_decay, *_) = recipe
    depth = VIT_SIZES[size].depth
    opt = cfg.optimizer
    assert opt._target_.__name__ == "AdamW"
    assert (opt.lr, tuple(opt.betas), opt.weight_decay) == (lr, (0.9, 0.999), weight_decay)
    assert opt.params.weight_decay_norm == 0.0
    assert opt.params.overrides == {"pos_embed": {"weight_decay": 0.0}}
    assert (opt.params.lr_factor_func.decay, opt.params.lr_factor_func.depth) == (layer_decay, depth)


def test_schedule(recipe):
    cfg, (*_, epochs, init) = recipe
    train, lr = cfg.train, cfg.lr_multiplier
    assert train.max_iter == epochs * COCO_TRAIN_IMAGES // BATCH  # detectron2 rounds down
    if epochs == 100:
        assert train.max_iter == 184_375
    first, second = lr.scheduler.milestones
    assert abs(first / train.max_iter - 0.889) < 5e-4 and abs(second / train.max_iter - 0.963) < 5e-4
    assert list(lr.scheduler["values"]) == [1.0, 0.1, 0.01] and lr.scheduler.num_updates == train.max_iter
    assert round(lr.warmup_length * train.max_iter) == 250 and lr.warmup_factor == 0.001
    assert train.amp.enabled
    assert train.init == init
    if init == "random":
        assert train.init_checkpoint == ""


def test_yacs_config_resizes_as_the_recipe_within_the_square_pad():
    """detectron2's yacs defaults (800 / 1333) would exceed the 1024 square; the recipe tests at 1024 / 1024."""
    from detectron2.config import get_cfg

    from detection.yacs_backbone import add_vit_config

    cfg = get_cfg()
    add_vit_config(cfg)
    cfg.merge_from_file(str(CONFIGS / "yacs_mask_rcnn_vit_b.yaml"))
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, cfg.MODEL.VIT.SQUARE_PAD) == (1024, 1024, 1024)
    assert cfg.INPUT.MAX_SIZE_TRAIN <= cfg.MODEL.VIT.SQUARE_PAD
