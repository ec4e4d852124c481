"""Initial weights of a detection run by name: ``timm:NAME`` and ``hf:ORG/REPO`` from the Hugging Face cache,
URLs that cannot be fetched as one error naming the file to fetch and where to put it (no network here)."""

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from timm.models import get_pretrained_cfg

from backbone import CheckpointError
from detection.weights import load_initial_weights, local_path
from tests.conftest import CONFIGS

DEMO = CONFIGS / "detection" / "demo_tiny.py"


def test_hf_reference_loads_the_backbone_of_the_detector(tiny, mae_release_state, hf_cache):
    state = mae_release_state()
    hf_cache.add("someone/tiny-mae", "model.safetensors", state)
    model = instantiate(LazyConfig.apply_overrides(LazyConfig.load(str(DEMO)), list(tiny)).model)
    assert load_initial_weights(model, "hf:someone/tiny-mae") == "backbone"
    torch.testing.assert_close(model.state_dict()["backbone.net.blocks.1.mlp.fc1.weight"],
                               state["blocks.1.mlp.fc1.weight"], rtol=0, atol=0)


def test_timm_name_and_unreachable_url(mae_release_state, hf_cache, tmp_path, monkeypatch):
    path = hf_cache.add(get_pretrained_cfg("deit_base_patch16_224.fb_in1k").hf_hub_id, "model.safetensors",
                        mae_release_state())
    assert local_path("timm:deit_base_patch16_224.fb_in1k") == str(path)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    with pytest.raises(CheckpointError, match=r"fetch http://127.0.0.1:9/mae_pretrain_vit_base.pth and save it as "
                                              rf"{tmp_path / 'torch_hub' / 'checkpoints' / 'mae_pretrain_vit_base.pth'}"):
        local_path("http://127.0.0.1:9/mae_pretrain_vit_base.pth?matching_heuristics=True")


def test_detectron2_reference_is_the_file_detectrons_path_manager_gives(mae_release_state, tmp_path, monkeypatch):
    """The configs' default ``detectron2://`` weights, already in detectron2's cache: the same file either way,
    without a network (PathManager and resolve_weights download only what is not cached)."""
    from detectron2.utils.file_io import PathManager

    from backbone import resolve_weights

    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "iopath_cache"))
    reference = "detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_base.pth"
    cached = tmp_path / "iopath_cache" / "detectron2" / "ImageNetPretrained" / "MAE" / "mae_pretrain_vit_base.pth"
    cached.parent.mkdir(parents=True)
    torch.save({"model": mae_release_state()}, cached)
    assert resolve_weights(reference) == PathManager.get_local_path(reference) == str(cached)
    assert local_path(reference + "?matching_heuristics=True") == str(cached)
