"""Tiny generated images and configs for the pretrain tests (32 px, 16 patches of 8 px, a 2-block encoder)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import CONFIGS

_TINY_MODEL = dict(model="mae_vit_tiny_patch16", input_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2,
                  decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)


def _smooth_image(rng: np.random.Generator, tint: np.ndarray | None = None, size: int = 32) -> Image.Image:
    """Low-frequency colour field plus one bright rectangle: predictable from neighbouring patches."""
    coarse = rng.uniform(0, 255, (3, 3, 3)) if tint is None else np.clip(tint + rng.normal(0, 30, (3, 3, 3)), 0, 255)
    img = Image.fromarray(coarse.astype(np.uint8)).resize((size, size), Image.BICUBIC)
    pixels = np.array(img)
    x, y = rng.integers(0, size - 10, 2)
    pixels[y:y + 8, x:x + 8] = rng.uniform(150, 255, 3).astype(np.uint8)
    return Image.fromarray(pixels)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    """A flat folder of 48 PNGs."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(48):
        _smooth_image(rng).save(root / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def classify_folders(tmp_path_factory) -> tuple[Path, Path]:
    """ImageFolder trees train/ (16 per class) and val/ (8 per class) of two classes told apart by colour."""
    root = tmp_path_factory.mktemp("classify")
    rng = np.random.default_rng(1)
    tints = {"reddish": np.array([200.0, 60, 60]), "bluish": np.array([60.0, 60, 200])}
    for split, count in (("train", 16), ("val", 8)):
        for name, tint in tints.items():
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                _smooth_image(rng, tint).save(root / split / name / f"{i:02d}.png")
    return root / "train", root / "val"


@pytest.fixture(scope="session")
def tiny_model() -> dict:
    """Config values of the tiny MAE every test trains (read only)."""
    return dict(_TINY_MODEL)


@pytest.fixture
def write_config():
    """``write_config(path, base, **values)``: a config file on top of a shipped one, as a user writes it."""
    def write(path: Path, base: str, **values) -> Path:
        lines = [f'_base_ = "{CONFIGS / "pretrain" / base}"'] + [f"{k} = {v!r}" for k, v in values.items()]
        path.write_text("\n".join(lines) + "\n")
        return path
    return write


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory, image_folder) -> Path:
    """A training checkpoint of the tiny MAE after one epoch on ``image_folder`` (its config holds the sizes)."""
    from pretrain import load_config, train_mae

    cfg = load_config("pretrain", CONFIGS / "pretrain/mae_pretrain.py", data_path=str(image_folder), batch_size=16,
                      epochs=1, warmup_epochs=0, num_workers=0, tensorboard=False, **_TINY_MODEL)
    return train_mae(cfg, tmp_path_factory.mktemp("pretrain") / "run")
