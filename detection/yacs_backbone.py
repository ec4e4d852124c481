"""The ViTDet backbone for detectron2's yacs configs (``MODEL.BACKBONE.NAME``), registered on import.

    import detection.yacs_backbone as vitdet
    cfg = get_cfg(); vitdet.add_vit_config(cfg)
    cfg.merge_from_file("configs/detection/yacs_mask_rcnn_vit_b.yaml")   # MODEL.BACKBONE.NAME: build_vitdet_backbone
    model = build_model(cfg)                                             # same keys and shapes as the LazyConfig's
    optimizer = vitdet.build_optimizer(cfg, model)                       # AdamW + layer decay, for DefaultTrainer

``MODEL.VIT.*`` are ``backbone.ViT``'s and ``SimpleFeaturePyramid``'s arguments (defaults: ViT-B as ViTDet
builds it, from ``backbone.VIT_SIZES``); ``MODEL.VIT.PRETRAINED`` is a pretrained ViT file read by
``backbone.load_pretrained`` when the backbone is built (leave ``MODEL.WEIGHTS`` empty then; it is for whole
detectors). ``SOLVER.LAYER_DECAY``
is the layer-wise lr decay rate. The LSJ augmentation and the step schedule of the recipe exist only in the
LazyConfigs (detectron2's yacs data path has no LSJ).
"""
from __future__ import annotations

from . import frameworks  # noqa: F401, I001  (first: detectron2 without its import-time notices)

import logging

import torch
from detectron2.config import CfgNode as CN
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping

from backbone import ViT, load_pretrained, vit_kwargs

from .recipe import layer_decay
from .vitdet import ViTDetBackbone
from .weights import local_path

logger = logging.getLogger(__name__)


def add_vit_config(cfg: CN) -> None:
    """Add ``MODEL.VIT.*``, ``SOLVER.LAYER_DECAY`` and ``SOLVER.BETAS`` (ViT-B as ViTDet builds it:
    ``backbone.vit_kwargs("vit_base")``)."""
    vit = vit_kwargs("vit_base")
    cfg.MODEL.VIT = CN()
    cfg.MODEL.VIT.IMG_SIZE = vit["img_size"]
    cfg.MODEL.VIT.PATCH_SIZE = vit["patch_size"]
    cfg.MODEL.VIT.EMBED_DIM = vit["embed_dim"]
    cfg.MODEL.VIT.DEPTH = vit["depth"]
    cfg.MODEL.VIT.NUM_HEADS = vit["num_heads"]
    cfg.MODEL.VIT.MLP_RATIO = vit["mlp_ratio"]
    cfg.MODEL.VIT.DROP_PATH_RATE = vit["drop_path_rate"]
    cfg.MODEL.VIT.USE_REL_POS = vit["use_rel_pos"]
    cfg.MODEL.VIT.WINDOW_SIZE = vit["window_size"]
    cfg.MODEL.VIT.WINDOW_BLOCK_INDEXES = list(vit["window_block_indexes"])
    cfg.MODEL.VIT.USE_ACT_CHECKPOINT = False
    cfg.MODEL.VIT.PRETRAIN_IMG_SIZE = 224
    cfg.MODEL.VIT.PRETRAINED = ""
    cfg.MODEL.VIT.OUT_CHANNELS = 256
    cfg.MODEL.VIT.SCALE_FACTORS = [4.0, 2.0, 1.0, 0.5]
    cfg.MODEL.VIT.NORM = "LN"
    cfg.MODEL.VIT.SQUARE_PAD = 1024
    cfg.SOLVER.LAYER_DECAY = 0.7
    cfg.SOLVER.BETAS = (0.9, 0.999)


@BACKBONE_REGISTRY.register()
def build_vitdet_backbone(cfg: CN, input_shape: ShapeSpec) -> ViTDetBackbone:
    v = cfg.MODEL.VIT
    net = ViT(img_size=v.IMG_SIZE, patch_size=v.PATCH_SIZE, in_chans=input_shape.channels, embed_dim=v.EMBED_DIM,
              depth=v.DEPTH, num_heads=v.NUM_HEADS, mlp_ratio=v.MLP_RATIO, drop_path_rate=v.DROP_PATH_RATE,
              use_rel_pos=v.USE_REL_POS, window_size=v.WINDOW_SIZE, window_block_indexes=v.WINDOW_BLOCK_INDEXES,
              use_act_checkpoint=v.USE_ACT_CHECKPOINT, pretrain_img_size=v.PRETRAIN_IMG_SIZE)
    if v.PRETRAINED:
        logger.info(f"backbone.net: {load_pretrained(net, local_path(v.PRETRAINED), log=False).summary()}")
    return ViTDetBackbone(net, out_channels=v.OUT_CHANNELS, scale_factors=tuple(v.SCALE_FACTORS), top_block=True,
                          norm=v.NORM, square_pad=v.SQUARE_PAD)


def build_optimizer(cfg: CN, model: torch.nn.Module) -> torch.optim.Optimizer:
    """AdamW with layer decay ``SOLVER.LAYER_DECAY``, no weight decay on norms (``SOLVER.WEIGHT_DECAY_NORM``)
    nor ``pos_embed``: the LazyConfigs' optimizer for ``DefaultTrainer.build_optimizer``."""
    params = get_default_optimizer_params(
        model, base_lr=cfg.SOLVER.BASE_LR, weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        lr_factor_func=layer_decay(cfg.SOLVER.LAYER_DECAY, cfg.MODEL.VIT.DEPTH),
        overrides={"pos_embed": {"weight_decay": 0.0}})
    return maybe_add_gradient_clipping(cfg, torch.optim.AdamW)(
        params, lr=cfg.SOLVER.BASE_LR, betas=tuple(cfg.SOLVER.BETAS), weight_decay=cfg.SOLVER.WEIGHT_DECAY)
