"""backbone.hub: weights by name (timm:, hf:, URLs) through the caches of huggingface_hub and torch.hub.

No network: the ``hf_cache`` fixture (tests/conftest.py) builds a Hugging Face cache in the hub's own layout and
runs huggingface_hub offline; URLs are served by a local HTTP server or are file:// URLs.
"""
import functools
import http.server
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from backbone import (CheckpointError, ViT, build_vit, is_reference, load_pretrained, read_state_dict,
                      resolve_weights)
from tests.conftest import REPO_ROOT

WIDTH, DEPTH = 32, 2
@pytest.fixture
def encoder(mae_release_state):
    return mae_release_state(width=WIDTH, depth=DEPTH, grid=4)


def dense_vit() -> ViT:
    return ViT(img_size=64, embed_dim=WIDTH, depth=DEPTH, num_heads=2, pretrain_img_size=64)


def test_references_and_plain_paths():
    assert all(map(is_reference, ["timm:vit_base_patch16_224.mae", "hf:facebook/vit-mae-base", "hf-hub:timm/x",
                                  "https://a/b.pth", "http://a/b.pth", "file:///a/b.pth"]))
    assert not any(map(is_reference, ["weights/a.pth", "/abs/a.pth", "a:b.pth"]))
    assert is_reference(Path("hf:facebook/vit-mae-base"))  # a CLI's Path keeps these intact
    assert resolve_weights("weights/a.pth") == "weights/a.pth"
    assert resolve_weights("file:///tmp/some%20dir/a.pth") == "/tmp/some dir/a.pth"


def test_hf_repo_resolves_from_the_cache_and_loads(hf_cache, encoder):
    path = hf_cache.add("someone/tiny-mae", "model.safetensors", encoder)
    assert resolve_weights("hf:someone/tiny-mae") == str(path)
    assert resolve_weights("hf-hub:someone/tiny-mae/model.safetensors") == str(path)
    model = dense_vit()
    report = load_pretrained(model, "hf:someone/tiny-mae", log=False)
    assert report.missing == [] and report.unexpected == []
    torch.testing.assert_close(model.state_dict()["blocks.1.attn.qkv.weight"], encoder["blocks.1.attn.qkv.weight"])


def test_hf_repo_with_only_a_pytorch_bin_and_a_named_file_in_a_subfolder(hf_cache, encoder):
    bin_path = hf_cache.add("someone/old-repo", "pytorch_model.bin", encoder)
    assert resolve_weights("hf:someone/old-repo") == str(bin_path)
    sub = hf_cache.add("someone/many", "weights/encoder.safetensors", encoder)
    assert resolve_weights("hf:someone/many/weights/encoder.safetensors") == str(sub)
    assert read_state_dict("hf:someone/many/weights/encoder.safetensors").keys() == encoder.keys()


def test_offline_without_the_file_is_one_error_naming_what_to_fetch_and_where(hf_cache, encoder):
    with pytest.raises(CheckpointError) as info:
        resolve_weights("hf:someone/absent")
    message = str(info.value)
    assert message.startswith("hf:someone/absent: not in the local cache")
    assert "https://huggingface.co/someone/absent/resolve/main/model.safetensors" in message
    target = str(hf_cache.root / "models--someone--absent" / "snapshots" / "main" / "model.safetensors")
    assert f"save it as {target}" in message and "\n" not in message
    # doing what the message says makes the reference work, still offline
    (hf_cache.root / "models--someone--absent" / "snapshots" / "main").mkdir(parents=True)
    save_file(encoder, target)
    assert resolve_weights("hf:someone/absent") == target
    with pytest.raises(CheckpointError, match=r"hf:ORG/REPO or hf:ORG/REPO/FILE"):
        resolve_weights("hf:just-a-name")


def test_timm_name_resolves_through_its_hugging_face_repo(hf_cache, encoder):
    """``timm:NAME`` finds the file where timm.create_model(NAME, pretrained=True) caches it (the name's hub repo)."""
    from timm.models import get_pretrained_cfg
    repo = get_pretrained_cfg("vit_base_patch16_224.mae").hf_hub_id
    assert repo == "timm/vit_base_patch16_224.mae"
    path = hf_cache.add(repo, "model.safetensors", encoder)
    assert resolve_weights("timm:vit_base_patch16_224.mae") == str(path)
    with pytest.raises(CheckpointError, match=r"timm:deit_base_patch16_224.fb_in1k: not in the local cache.*"
                                              r"timm/deit_base_patch16_224.fb_in1k/resolve/main/model.safetensors"):
        resolve_weights("timm:deit_base_patch16_224.fb_in1k")
    with pytest.raises(CheckpointError, match="not a timm model name"):
        resolve_weights("timm:no_such_model_anywhere")


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server over ``tmp_path / 'served'``; yields its base URL."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_is_downloaded_once_into_the_torch_hub_cache(tmp_path, http_server, encoder, monkeypatch):
    root, base = http_server
    torch.save({"model": encoder}, root / "mae_pretrain_tiny.pth")
    hub_dir = tmp_path / "torch_hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub_dir))
    local = resolve_weights(f"{base}/mae_pretrain_tiny.pth")
    assert local == str(hub_dir / "checkpoints" / "mae_pretrain_tiny.pth")
    (root / "mae_pretrain_tiny.pth").unlink()  # the second time comes from the cache
    model = dense_vit()
    assert load_pretrained(model, f"{base}/mae_pretrain_tiny.pth", log=False).missing == []

    with pytest.raises(CheckpointError) as info:
        resolve_weights(f"{base}/missing.pth")
    assert f"fetch {base}/missing.pth and save it as {hub_dir / 'checkpoints' / 'missing.pth'}" in str(info.value)


SUPERVISED = {  # the supervised configs' defaults -> our preset of the same size
    "timm:deit_base_patch16_224.fb_in1k": ("vit_base", ["configs/detection/mask_rcnn_vit_b_supervised.py",
                                                        "configs/segmentation/upernet_vit_b_supervised_ade20k_512x512_160k.py"]),
    "timm:deit3_large_patch16_224.fb_in1k": ("vit_large", ["configs/detection/mask_rcnn_vit_l_supervised.py",
                                                           "configs/segmentation/upernet_vit_l_supervised_ade20k_512x512_160k.py"]),
}


@pytest.mark.parametrize("reference", sorted(SUPERVISED))
def test_supervised_config_defaults_fit_the_preset_backbone(reference, hf_cache):
    """The timm architecture behind each supervised default (2 blocks of it, random weights, in the cache where
    timm puts the real file) loads into our ViT of that size with every tensor used."""
    import timm
    from timm.models import get_pretrained_cfg

    size, configs = SUPERVISED[reference]
    for config in configs:
        assert reference in (REPO_ROOT / config).read_text()
    name = reference.removeprefix("timm:")
    source = timm.create_model(name, pretrained=False, depth=2)
    hf_cache.add(get_pretrained_cfg(name).hf_hub_id, "model.safetensors", source.state_dict())
    model = build_vit(size, depth=2, img_size=224, window_size=0, window_block_indexes=())
    report = load_pretrained(model, reference, log=False)
    assert report.unexpected == [] and report.missing == report.missing_rel_pos
    assert set(report.ignored) <= {"cls_token", "norm.weight", "norm.bias", "head.weight", "head.bias"}


def test_an_unreachable_hub_is_one_error_without_retries(hf_cache, monkeypatch):
    """Online, but the Hub does not answer: one request, then the error (huggingface_hub alone retries 5 times
    with back-off, printing a warning each time)."""
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    endpoint = "http://127.0.0.1:9"  # the discard port: connection refused
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    sleeps = []
    monkeypatch.setattr(_http.time, "sleep", sleeps.append)
    with pytest.raises(CheckpointError, match=r"^hf:someone/absent: not in the local cache and cannot be downloaded "
                                              r"\(the Hugging Face Hub cannot be reached: ConnectError"):
        resolve_weights("hf:someone/absent")
    assert sleeps == []
    with pytest.raises(CheckpointError, match=f"fetch {endpoint}/someone/absent/resolve/main/model.safetensors"):
        resolve_weights("hf:someone/absent")  # the endpoint asked (HF_ENDPOINT), not a fixed one


def test_detectron2_reference_resolves_as_detectron2_does(tmp_path, http_server, encoder, monkeypatch):
    """``detectron2://PATH`` is detectron2's model-zoo URL prefix plus PATH, cached where iopath caches it."""
    import backbone.hub

    root, base = http_server
    (root / "ImageNetPretrained" / "MAE").mkdir(parents=True)
    torch.save({"model": encoder}, root / "ImageNetPretrained" / "MAE" / "mae_tiny.pth")
    monkeypatch.setenv("FVCORE_CACHE", str(tmp_path / "iopath_cache"))
    monkeypatch.setattr(backbone.hub, "DETECTRON2_URL", f"{base}/")
    reference = "detectron2://ImageNetPretrained/MAE/mae_tiny.pth?matching_heuristics=True"
    assert is_reference(reference)
    local = resolve_weights(reference)
    assert local == str(tmp_path / "iopath_cache" / "ImageNetPretrained" / "MAE" / "mae_tiny.pth")
    assert load_pretrained(dense_vit(), reference, log=False).missing == []
    (root / "ImageNetPretrained" / "MAE" / "mae_tiny.pth").unlink()
    assert resolve_weights(reference) == local  # from the cache the second time
