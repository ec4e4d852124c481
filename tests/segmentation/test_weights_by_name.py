"""Initial weights of a segmentation run by name (``hf:``, ``timm:``, URLs), and TensorBoard on by default."""

import pytest
import torch

import segmentation
from backbone import CheckpointError
from pretrain.config import read_mmengine_config
from segmentation.plain_vit import PlainViT
from tests.conftest import CONFIGS as ALL_CONFIGS

CONFIGS = ALL_CONFIGS / "segmentation"
WIDTH, DEPTH, HEADS, PATCH, PRETRAIN_IMAGE = 64, 4, 2, 8, 64


def test_plain_vit_loads_a_hf_reference(mae_release_state, hf_cache):
    state = mae_release_state()
    hf_cache.add("someone/tiny-mae", "model.safetensors", state)
    model = PlainViT(pretrained="hf:someone/tiny-mae", img_size=64, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH,
                     num_heads=HEADS, pretrain_img_size=PRETRAIN_IMAGE, out_indices=(0, 1, 2, 3))
    model.init_weights()
    assert model.load_report.unexpected == [] and model.load_report.missing == model.load_report.missing_rel_pos
    torch.testing.assert_close(model.state_dict()["blocks.3.attn.proj.weight"], state["blocks.3.attn.proj.weight"])


def test_a_reference_not_in_the_cache_stops_the_run_before_training(hf_cache, ade_root, tmp_path):
    with pytest.raises(CheckpointError, match=r"hf:someone/absent: not in the local cache.*fetch "
                                              r"https://huggingface.co/someone/absent/resolve/main/model.safetensors"):
        segmentation.train(CONFIGS / "demo_tiny.py", tmp_path / "run", {}, init_checkpoint="hf:someone/absent",
                           data_root=ade_root)
    assert not list((tmp_path / "run").glob("*/vis_data"))  # no Runner was started


@pytest.mark.parametrize("config", ["upernet_vit_b_mae_ade20k_512x512_160k.py", "demo_tiny.py"])
def test_tensorboard_is_on_by_default(config):
    backends = [b["type"] for b in read_mmengine_config(CONFIGS / config).visualizer.vis_backends]
    assert "TensorboardVisBackend" in backends and "LocalVisBackend" in backends


def test_cli_takes_a_url_checkpoint_and_names_where_to_put_it(ade_root, tmp_path, monkeypatch, capsys):
    from segmentation.cli import main
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch_hub"))
    url = "http://127.0.0.1:9/mae_pretrain_vit_base.pth"
    code = main(["train", str(CONFIGS / "demo_tiny.py"), "--checkpoint", url, "--data-root", str(ade_root),
                 "--work-dir", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert f"fetch {url} and save it as {tmp_path / 'torch_hub' / 'checkpoints' / 'mae_pretrain_vit_base.pth'}" in err[0]
