"""Tiny UperNet runs on the generated ADE20K-format set: the demo config with a 64-wide, 4-block ViT (patch 8)."""
from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import pytest

import segmentation  # noqa: F401  (registers our modules)
from pretrain.config import read_mmengine_config
from segmentation.frameworks import framework_patches, mmseg_build_notices_off
from tests.conftest import save_mae_release

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
# TINY continued to 4 iterations (a resumed run)
LONGER = {"train_cfg.max_iters": 4, "train_cfg.val_interval": 4, "param_scheduler.1.end": 4,
          "default_hooks.checkpoint.interval": 4}


@pytest.fixture(scope="session")
def mae_release_state(mae_release_state):
    """The root fixture at this folder's sizes (``WIDTH`` wide, ``DEPTH`` blocks, patch ``PATCH``, pretrained at
    ``PRETRAIN_IMAGE`` px), with small values; ``mae_release_state(width=, depth=, seed=)``."""
    return partial(mae_release_state, width=WIDTH, depth=DEPTH, patch=PATCH, grid=PRETRAIN_IMAGE // PATCH, std=0.02)


@pytest.fixture(scope="session")
def ade_root(synthetic_data) -> Path:
    return Path(synthetic_data["ade_root"])


@pytest.fixture(scope="session")
def configs_dir(pytestconfig) -> Path:
    return pytestconfig.rootpath / "configs" / "segmentation"


@pytest.fixture(scope="session")
def demo_config(configs_dir) -> Path:
    return configs_dir / "demo_tiny.py"


@pytest.fixture
def tiny_config(demo_config):
    """demo_tiny.py with TINY and keyword ``options`` merged (--cfg-options keys): ``tiny_config(**options)``."""
    def load(**options):
        cfg = read_mmengine_config(demo_config)
        cfg.merge_from_dict({**TINY, **options})
        return cfg
    return load


@pytest.fixture
def build_segmentor(tiny_config):
    """The segmentor of ``tiny_config(**options)``, built through mmseg's registry as a run builds it."""
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    def build(**options):
        init_default_scope("mmseg")
        with framework_patches(), mmseg_build_notices_off():  # as a run builds it
            return MODELS.build(tiny_config(**options).model)
    return build


@pytest.fixture
def tiny_options() -> dict:
    return dict(TINY)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, demo_config, ade_root, mae_release_state) -> Path:
    """A run folder of ``segmentation.train`` (TINY, 2 iterations from an MAE release file): ``iter_2.pth``, its
    ``last_checkpoint`` and a finished run record. Tests copy it (``copy_run``) before changing anything."""
    work = tmp_path_factory.mktemp("trained") / "mae"
    mae_file = save_mae_release(tmp_path_factory.mktemp("weights") / "mae_pretrain_vit_tiny.pth", mae_release_state())
    segmentation.train(demo_config, work, TINY, init_checkpoint=mae_file, init="mae", data_root=ade_root)
    return work


@pytest.fixture
def copy_run(trained_run, tmp_path):
    """``copy_run(name)``: a copy of ``trained_run`` under tmp_path whose ``last_checkpoint`` names its own
    ``iter_2.pth``."""
    def copy(name: str = "run") -> Path:
        work = shutil.copytree(trained_run, tmp_path / name)
        (work / "last_checkpoint").write_text(str(work / "iter_2.pth"))
        return work
    return copy


@pytest.fixture
def longer_options() -> dict:
    """TINY run to 4 iterations (to resume a ``trained_run`` copy)."""
    return {**TINY, **LONGER}


@pytest.fixture(scope="session")
def cli_options():
    """``cli_options({key: value})``: the ``--cfg-options`` arguments of the CLI for them."""
    return lambda options: ["--cfg-options"] + [f"{k}={str(v).replace(' ', '')}" for k, v in options.items()]


@pytest.fixture(scope="session")
def logged_iterations():
    """``logged_iterations(work_dir)``: training iterations in the work dir's mmengine logs
    (*/vis_data/scalars.json), in order."""
    def logged(work_dir: Path) -> list[int]:
        rows = [json.loads(line) for log in sorted(work_dir.glob("*/vis_data/scalars.json"))
                for line in log.read_text().splitlines()]
        return [row["iter"] for row in rows if "iter" in row]
    return logged
