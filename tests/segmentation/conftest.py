"""Tiny UperNet runs on the generated ADE20K-format set: the demo config with a 64-wide, 4-block ViT (patch 8)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

import segmentation  # noqa: F401  (installs the mmcv.ops stand-in, registers our modules)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs" / "segmentation"
DEMO = CONFIGS / "demo_tiny.py"
WIDTH, DEPTH, HEADS, PATCH, PRETRAIN_IMAGE = 64, 4, 2, 8, 64

# demo_tiny.py shrunk further: 64 px crops (the generated test images' size), every size a test needs,
# 2 iterations, quiet logs.
TINY = {
    "model.data_preprocessor.size": (64, 64), "model.backbone.img_size": 64,
    "model.test_cfg.crop_size": (64, 64), "model.test_cfg.stride": (43, 43),
    "train_dataloader.dataset.pipeline.2.scale": (256, 64), "train_dataloader.dataset.pipeline.3.crop_size": (64, 64),
    "val_dataloader.dataset.pipeline.1.scale": (256, 64), "test_dataloader.dataset.pipeline.1.scale": (256, 64),
    "model.backbone.embed_dim": WIDTH, "model.backbone.depth": DEPTH, "model.backbone.num_heads": HEADS,
    "model.backbone.out_indices": (0, 1, 2, 3), "model.backbone.patch_size": PATCH,
    "model.backbone.pretrain_img_size": PRETRAIN_IMAGE, "model.neck.rescales": [2, 1, 0.5, 0.25],
    "model.neck.embed_dim": WIDTH, "model.decode_head.in_channels": [WIDTH] * 4,
    "model.decode_head.channels": 32, "model.auxiliary_head.in_channels": WIDTH,
    "model.auxiliary_head.channels": 16,
    "train_cfg.max_iters": 2, "train_cfg.val_interval": 2, "param_scheduler.0.end": 1,
    "param_scheduler.1.begin": 1, "param_scheduler.1.end": 2,
    "default_hooks.checkpoint.interval": 2, "default_hooks.logger.interval": 1, "log_level": "WARNING",
}


def _mae_release_state(width=WIDTH, depth=DEPTH, patch=PATCH, grid=PRETRAIN_IMAGE // PATCH, seed=0) -> dict:
    """Random tensors under the keys and shapes of the official MAE release (REFERENCE.md §3), by hand."""
    g = torch.Generator().manual_seed(seed)
    shapes = {"cls_token": (1, 1, width), "pos_embed": (1, 1 + grid * grid, width),
              "patch_embed.proj.weight": (width, 3, patch, patch), "patch_embed.proj.bias": (width,),
              "norm.weight": (width,), "norm.bias": (width,)}
    for i in range(depth):
        shapes.update({
            f"blocks.{i}.norm1.weight": (width,), f"blocks.{i}.norm1.bias": (width,),
            f"blocks.{i}.attn.qkv.weight": (3 * width, width), f"blocks.{i}.attn.qkv.bias": (3 * width,),
            f"blocks.{i}.attn.proj.weight": (width, width), f"blocks.{i}.attn.proj.bias": (width,),
            f"blocks.{i}.norm2.weight": (width,), f"blocks.{i}.norm2.bias": (width,),
            f"blocks.{i}.mlp.fc1.weight": (4 * width, width), f"blocks.{i}.mlp.fc1.bias": (4 * width,),
            f"blocks.{i}.mlp.fc2.weight": (width, 4 * width), f"blocks.{i}.mlp.fc2.bias": (width,),
        })
    return {k: 0.02 * torch.randn(s, generator=g) for k, s in shapes.items()}


@pytest.fixture
def mae_release_state():
    """``mae_release_state(width=, depth=, seed=)``: an official-format encoder state dict."""
    return _mae_release_state


@pytest.fixture(scope="session")
def mae_file(tmp_path_factory) -> Path:
    """A tiny encoder in the official MAE release format, ``{'model': encoder state dict}``."""
    path = tmp_path_factory.mktemp("weights") / "mae_pretrain_vit_tiny.pth"
    torch.save({"model": _mae_release_state()}, path)
    return path


@pytest.fixture(scope="session")
def ade_root(synthetic_data) -> Path:
    return Path(synthetic_data["ade_root"])


def _tiny_config(**options):
    from mmengine.config import Config

    cfg = Config.fromfile(str(DEMO))
    cfg.merge_from_dict({**TINY, **options})
    return cfg


def _build_segmentor(**options):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    init_default_scope("mmseg")
    return MODELS.build(_tiny_config(**options).model)


@pytest.fixture
def tiny_config():
    """demo_tiny.py with TINY and keyword ``options`` merged (--cfg-options keys): ``tiny_config(**options)``."""
    return _tiny_config


@pytest.fixture
def build_segmentor():
    """The segmentor of ``tiny_config(**options)``, built through mmseg's registry."""
    return _build_segmentor


@pytest.fixture
def tiny_options() -> dict:
    return dict(TINY)


@pytest.fixture
def configs_dir() -> Path:
    return CONFIGS
