"""Fixtures of the detection tests: the tiny CPU configuration and files in the published formats."""
from __future__ import annotations

from functools import partial

import pytest

from tests.conftest import CONFIGS as ALL_CONFIGS

CONFIGS = ALL_CONFIGS / "detection"
DEMO = CONFIGS / "demo_tiny.py"
WIDTH, DEPTH, HEADS, PATCH = 32, 2, 2, 16

# The demo config made smaller still: a 2-block, 32-wide ViT, batch 2, 3 iterations, no data-loader workers.
# A score threshold of 0 keeps every detection, so that a barely trained model still has AP to report.
TINY = [f"model.backbone.net.embed_dim={WIDTH}", f"model.backbone.net.depth={DEPTH}",
        f"model.backbone.net.num_heads={HEADS}", "model.backbone.net.window_block_indexes=[0]",
        "dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0", "dataloader.test.num_workers=0",
        "train.max_iter=3", "train.checkpointer.period=2", "model.roi_heads.box_predictor.test_score_thresh=0.0"]


@pytest.fixture(scope="session")
def tiny() -> tuple[str, ...]:
    """Overrides that shrink configs/detection/demo_tiny.py for tests (TINY)."""
    return tuple(TINY)


@pytest.fixture(scope="session")
def mae_release_state(mae_release_state):
    """The root fixture at the tiny ViT's sizes, pretrained at 224 px (``mae_file`` follows);
    ``mae_release_state(width=, depth=)``."""
    return partial(mae_release_state, width=WIDTH, depth=DEPTH, patch=PATCH, grid=14)


@pytest.fixture(scope="session")
def coco(synthetic_data) -> dict:
    """detection.train's dataset arguments for the generated COCO-format set."""
    return dict(train_json=synthetic_data["coco_train_json"], train_images=synthetic_data["coco_train_images"],
                val_json=synthetic_data["coco_val_json"], val_images=synthetic_data["coco_val_images"])
