"""Shared fixtures: one small generated data world per test session (every test uses project-made data)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """Paths of a small generation (see mae_transfer.synthetic.generate): 64 px images, a few of each kind."""
    from mae_transfer.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(seed=0, image_size=64, num_pretrain=32, num_classify_train=6, num_classify_val=2,
                         classify_image_size=32, num_coco_train=8, num_coco_val=4, num_ade_train=8,
                         num_ade_val=4, max_objects=3)
    return generate(tmp_path_factory.mktemp("synthetic") / "data", spec)


def official_mae_encoder_state(width: int, depth: int, patch: int = 16, grid: int = 14, seed: int = 0,
                               std: float = 1.0) -> dict:
    """Random tensors under the official MAE release's encoder keys and shapes (REFERENCE.md §3), written out
    by hand rather than taken from any model of this project, so loaders are tested against the format itself."""
    import torch

    g = torch.Generator().manual_seed(seed)
    shapes = {"cls_token": (1, 1, width), "pos_embed": (1, 1 + grid * grid, width),
              "patch_embed.proj.weight": (width, 3, patch, patch), "patch_embed.proj.bias": (width,),
              "norm.weight": (width,), "norm.bias": (width,)}
    for i in range(depth):
        for name, shape in (("norm1.weight", (width,)), ("norm1.bias", (width,)),
                            ("attn.qkv.weight", (3 * width, width)), ("attn.qkv.bias", (3 * width,)),
                            ("attn.proj.weight", (width, width)), ("attn.proj.bias", (width,)),
                            ("norm2.weight", (width,)), ("norm2.bias", (width,)),
                            ("mlp.fc1.weight", (4 * width, width)), ("mlp.fc1.bias", (4 * width,)),
                            ("mlp.fc2.weight", (width, 4 * width)), ("mlp.fc2.bias", (width,))):
            shapes[f"blocks.{i}.{name}"] = shape
    return {k: std * torch.randn(s, generator=g) for k, s in shapes.items()}


@pytest.fixture(scope="session")
def mae_release_state():
    """``mae_release_state(width=, depth=, patch=, grid=, seed=, std=)``: an official-format encoder state dict."""
    return official_mae_encoder_state


REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread for the tiny models of the tests: thread hand-offs cost more than they save at this
    size, and on a shared CPU a waiting OpenMP thread slows every op several times. Module-scoped, so that
    module-scoped fixtures that train run under it too."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
