"""What every test folder shares: the repository's paths, one thread for tiny models, one small generated data
world per session, checkpoint files in the official MAE release format, and a checkpoint that would run code.

Test modules import the paths: ``from tests.conftest import CONFIGS, REPO_ROOT``.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "configs"


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """One intra-op thread for the whole session: at these tiny sizes thread hand-offs cost more than they save,
    and on a shared CPU a waiting OpenMP thread slows every op several times (subprocesses that tests start get
    OMP_NUM_THREADS=1 to match)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def synthetic_data(tmp_path_factory):
    """Paths of a small generation (see mae_transfer.synthetic.generate): 64 px images, a few of each kind."""
    from mae_transfer.synthetic import SyntheticSpec, generate

    spec = SyntheticSpec(seed=0, image_size=64, num_pretrain=32, num_classify_train=6, num_classify_val=2,
                         classify_image_size=32, num_coco_train=8, num_coco_val=4, num_ade_train=8,
                         num_ade_val=4, max_objects=3)
    return generate(tmp_path_factory.mktemp("synthetic") / "data", spec)


def official_mae_encoder_state(width: int = 32, depth: int = 2, patch: int = 16, grid: int = 14, seed: int = 0,
                               std: float = 1.0) -> dict:
    """Random tensors under the official MAE release's encoder keys and shapes (docs/recipes.md §3), written out
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
    """``mae_release_state(width=, depth=, patch=, grid=, seed=, std=)``: an official-format encoder state dict
    (by default a 32-wide, 2-block ViT at patch 16 pretrained on 224 px). A folder whose models have other sizes
    overrides this fixture with its sizes bound (``functools.partial``); ``mae_file`` follows."""
    return official_mae_encoder_state


class HFCache:
    """A Hugging Face cache folder in the hub's own layout (models--ORG--NAME/refs/main, snapshots/COMMIT/FILE)."""
    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, root):
        self.root = root

    def add(self, repo: str, filename: str, state: dict):
        """Put ``state`` in the cache as ``filename`` of the model repo ``repo``; returns its path."""
        import torch
        from safetensors.torch import save_file

        repo_dir = self.root / f"models--{repo.replace('/', '--')}"
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(self.COMMIT)
        path = repo_dir / "snapshots" / self.COMMIT / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(state, path) if filename.endswith(".safetensors") else torch.save(state, path)
        return path


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> HFCache:
    """An empty Hugging Face cache in tmp_path, and huggingface_hub offline: tests never touch the network."""
    from huggingface_hub import constants

    cache = tmp_path / "hf_hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # huggingface_hub reads both at import
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return HFCache(cache)


def save_mae_release(path: Path, state: dict) -> Path:
    """``state`` written as the official release writes it: ``{'model': encoder state dict}``."""
    import torch

    torch.save({"model": state}, path)
    return path


@pytest.fixture(scope="module")
def mae_file(tmp_path_factory, mae_release_state) -> Path:
    """``mae_release_state()`` as an official release file, one per test module: a module gets the sizes its folder
    binds in ``mae_release_state`` (a session-wide file would keep the first folder's sizes for all)."""
    return save_mae_release(tmp_path_factory.mktemp("weights") / "mae_pretrain_vit_tiny.pth", mae_release_state())


class Payload:
    """Unpickling this runs a shell command (``touch MARKER``): what a crafted checkpoint file carries."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def write_payload(tmp_path):
    """``write_payload(path, wrap=...)``: saves ``wrap(Payload)`` at ``path`` (a plain pickle for ``.pkl``, as
    detectron2's model zoo writes them, else ``torch.save``); returns the marker file, which exists only if a
    loader ran the payload."""
    import torch

    marker = tmp_path / "payload_ran"

    def save(path: Path, wrap=lambda payload: payload) -> Path:
        obj = wrap(Payload(marker))
        path.write_bytes(pickle.dumps(obj)) if path.suffix == ".pkl" else torch.save(obj, path)
        return marker
    return save
