"""backbone.load_pretrained on files written in the published formats (docs/recipes.md §3), and on bad files."""
import argparse
import logging
import pickle
from functools import partial

import pytest
import torch
from safetensors.torch import save_file

from backbone import CheckpointError, ViT, load_pretrained, read_checkpoint, read_state_dict

WIDTH, DEPTH, PATCH = 32, 2, 16


@pytest.fixture(scope="module")
def mae_release_state(mae_release_state):
    """The root fixture at this module's sizes (pretrained at 64 px); ``mae_release_state(width=, depth=, patch=,
    grid=)``."""
    return partial(mae_release_state, width=WIDTH, depth=DEPTH, patch=PATCH, grid=4)


def mae_decoder_state(width=WIDTH, decoder_width=16, patch=PATCH, grid=4) -> dict:
    shapes = {"mask_token": (1, 1, decoder_width), "decoder_embed.weight": (decoder_width, width),
              "decoder_embed.bias": (decoder_width,), "decoder_pos_embed": (1, 1 + grid * grid, decoder_width),
              "decoder_blocks.0.attn.qkv.weight": (3 * decoder_width, decoder_width),
              "decoder_norm.weight": (decoder_width,), "decoder_norm.bias": (decoder_width,),
              "decoder_pred.weight": (patch * patch * 3, decoder_width), "decoder_pred.bias": (patch * patch * 3,)}
    return {k: torch.randn(s) for k, s in shapes.items()}


def dense_vit(**overrides) -> ViT:
    kwargs = dict(img_size=128, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=2, pretrain_img_size=64,
                  use_rel_pos=True, window_size=4, window_block_indexes=(0,))
    kwargs.update(overrides)
    return ViT(**kwargs)


def assert_loaded(model: ViT, state: dict, skip=("pos_embed", "patch_embed.proj.weight")):
    loaded = model.state_dict()
    for key, value in state.items():
        if key in loaded and key not in skip:
            torch.testing.assert_close(loaded[key], value, rtol=0, atol=0, msg=key)


def test_official_encoder_file_loads_with_nothing_unexpected(caplog, mae_file, mae_release_state):
    state = mae_release_state()
    model = dense_vit()
    with caplog.at_level(logging.INFO, logger="backbone.checkpoint"):
        report = load_pretrained(model, mae_file)
    assert report.unexpected == []
    assert sorted(report.ignored) == ["cls_token", "norm.bias", "norm.weight"]
    assert report.missing == report.missing_rel_pos and len(report.missing) == 2 * DEPTH
    assert report.resized == {}
    assert_loaded(model, state, skip=())
    summary = [r.getMessage() for r in caplog.records]
    assert len(summary) == 1 and "MISSING" not in summary[0] and "UNEXPECTED" not in summary[0]


def test_full_file_ignores_the_decoder_on_purpose(tmp_path, mae_release_state):
    path = tmp_path / "mae_pretrain_vit_tiny_full.pth"
    torch.save({"model": {**mae_release_state(), **mae_decoder_state()}}, path)
    report = load_pretrained(dense_vit(), path)
    assert report.unexpected == []
    decoder = [k for k, why in report.ignored.items() if why.startswith("MAE decoder")]
    assert sorted(decoder) == sorted(mae_decoder_state())


def test_mae_training_checkpoint_with_argparse_args_loads(tmp_path, mae_release_state):
    path = tmp_path / "checkpoint-799.pth"
    torch.save({"model": mae_release_state(), "optimizer": {}, "epoch": 799, "scaler": {},
                "args": argparse.Namespace(model="mae_vit_tiny", mask_ratio=0.75)}, path)
    assert load_pretrained(dense_vit(), path).unexpected == []


@pytest.mark.parametrize("layout", ["bare", "state_dict", "safetensors"])
def test_timm_supervised_files_load(tmp_path, layout, mae_release_state):
    state = {**mae_release_state(), "fc_norm.weight": torch.ones(WIDTH), "fc_norm.bias": torch.zeros(WIDTH),
             "head.weight": torch.randn(10, WIDTH), "head.bias": torch.zeros(10)}
    path = tmp_path / ("deit.safetensors" if layout == "safetensors" else "deit.pth")
    if layout == "safetensors":
        save_file(state, str(path))
    else:
        torch.save(state if layout == "bare" else {"state_dict": state}, path)
    model = dense_vit()
    report = load_pretrained(model, path)
    assert report.unexpected == []
    assert {"head.weight", "fc_norm.weight"} <= set(report.ignored)
    assert_loaded(model, state, skip=())


def test_pos_embed_of_another_grid_is_resized(tmp_path, mae_release_state):
    path = tmp_path / "mae_448.pth"
    torch.save({"model": mae_release_state(grid=8)}, path)  # pretrained at 8x8 patches, the model stores 4x4
    model = dense_vit()
    report = load_pretrained(model, path)
    assert report.resized == {"pos_embed": f"(1, 65, {WIDTH})->(1, 17, {WIDTH})"}
    assert model.pos_embed.shape == (1, 17, WIDTH)


def test_patch14_kernel_is_resampled_to_patch16(tmp_path, mae_release_state):
    path = tmp_path / "mae_pretrain_vit_huge_like.pth"
    state = mae_release_state(patch=14, grid=4)
    torch.save({"model": state}, path)
    model = dense_vit()
    report = load_pretrained(model, path)
    assert "patch_embed.proj.weight" in report.resized
    # a constant image gives the same embedding with the resampled kernel (the resampling preserves sums)
    x14 = torch.full((1, 3, 14, 14), 0.5)
    x16 = torch.full((1, 3, 16, 16), 0.5)
    before = torch.nn.functional.conv2d(x14, state["patch_embed.proj.weight"]).flatten()
    after = torch.nn.functional.conv2d(x16, model.patch_embed.proj.weight.detach()).flatten()
    torch.testing.assert_close(before, after, rtol=1e-3, atol=1e-3)


def test_vitdet_detector_file_loads_its_backbone(tmp_path):
    source = dense_vit()
    for block in source.blocks:
        torch.nn.init.normal_(block.attn.rel_pos_h)
    state = {f"backbone.net.{k}": v for k, v in source.state_dict().items()}
    state.update({"backbone.simfp_2.0.weight": torch.randn(4, 4, 2, 2), "roi_heads.box_predictor.cls_score.weight":
                  torch.randn(81, 8)})
    path = tmp_path / "model_final.pkl.pth"
    torch.save({"model": state, "iteration": 5}, path)
    model = dense_vit()
    report = load_pretrained(model, path)
    assert report.missing == [] and report.unexpected == []
    assert_loaded(model, source.state_dict(), skip=())


def test_a_rel_pos_table_of_another_grid_gives_the_bias_timm_gives_it_at_the_new_grid(tmp_path):
    """A ViTDet file built for 64 px (4-token global grid, 7-row tables) loaded for 128 px (8 tokens, 15 rows):
    the model's table gives, at every query and key, what timm's ``get_rel_pos`` makes of the file's table."""
    from timm.models.vision_transformer_sam import get_rel_pos

    source = dense_vit(img_size=64)
    for block in source.blocks:
        torch.nn.init.normal_(block.attn.rel_pos_h)
    path = tmp_path / "vitdet_64.pth"
    torch.save({"model": source.state_dict()}, path)
    model = dense_vit(img_size=128)
    report = load_pretrained(model, path)
    assert report.resized["blocks.1.attn.rel_pos_h"] == "(7, 16)->(15, 16)"
    table, resized = source.blocks[1].attn.rel_pos_h.detach(), model.blocks[1].attn.rel_pos_h.detach()
    torch.testing.assert_close(get_rel_pos(8, 8, resized), get_rel_pos(8, 8, table), rtol=0, atol=0)


def corrupt(tmp_path, mae_release_state):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"\x00garbage" * 100)
    return path


def truncated(tmp_path, mae_release_state):
    path = tmp_path / "truncated.pth"
    torch.save({"model": mae_release_state()}, path)
    path.write_bytes(path.read_bytes()[:5000])
    return path


def resnet(tmp_path, mae_release_state):
    path = tmp_path / "resnet50.pth"
    torch.save({"conv1.weight": torch.randn(8, 3, 7, 7), "layer1.0.conv1.weight": torch.randn(8, 8, 1, 1)}, path)
    return path


def wider(tmp_path, mae_release_state):
    path = tmp_path / "mae_pretrain_vit_wider.pth"
    torch.save({"model": mae_release_state(width=48)}, path)
    return path


def deeper(tmp_path, mae_release_state):
    path = tmp_path / "mae_pretrain_vit_deeper.pth"
    torch.save({"model": mae_release_state(depth=DEPTH + 2)}, path)
    return path


def no_tensors(tmp_path, mae_release_state):
    path = tmp_path / "args_only.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    return path


@pytest.mark.parametrize("make,message", [
    (lambda tmp, state: tmp / "absent.pth", "no such checkpoint file"),
    (corrupt, "cannot be read as a checkpoint"),
    (truncated, "cannot be read as a checkpoint"),
    (resnet, "not a ViT state dict"),
    (wider, "width 48 but the model has width 32"),
    (deeper, "has 4 blocks but the model has 2"),
    (no_tensors, "holds no state dict"),
])
def test_bad_files_raise_one_error_naming_the_file_and_leave_the_model_untouched(tmp_path, make, message,
                                                                                 mae_release_state):
    path = make(tmp_path, mae_release_state)
    model = dense_vit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=message) as error:
        load_pretrained(model, path)
    assert str(path) in str(error.value)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_read_state_dict_strips_ddp_prefix(tmp_path):
    path = tmp_path / "ddp.pth"
    torch.save({"model": {"module.pos_embed": torch.zeros(1, 17, WIDTH)}}, path)
    assert list(read_state_dict(path)) == ["pos_embed"]


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_a_pickle_payload_is_refused_and_never_runs(tmp_path, suffix, write_payload):
    path = tmp_path / f"model_final{suffix}"
    marker = write_payload(path, lambda p: {"model": {"w": p}})
    with pytest.raises(CheckpointError, match=f"{path.name}: refused, it would run code") as error:
        read_checkpoint(path)
    assert not marker.exists()
    assert "system" in str(error.value)  # names what the file wanted to run


def test_a_model_zoo_pickle_of_numpy_arrays_reads_as_tensors(tmp_path, mae_release_state):
    import numpy as np
    state = mae_release_state()
    path = tmp_path / "model_final.pkl"
    blob = {"model": {f"backbone.net.{k}": v.numpy() for k, v in state.items()}, "__author__": "ViTDet",
            "matching_heuristics": np.bool_(True)}
    path.write_bytes(pickle.dumps(blob, protocol=2))
    loaded = read_state_dict(path)
    assert set(loaded) == set(state)
    torch.testing.assert_close(loaded["blocks.0.attn.qkv.weight"], state["blocks.0.attn.qkv.weight"], rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_or_bool_tensors_are_not_cast_into_float_weights(tmp_path, mae_release_state, dtype):
    state = mae_release_state()
    state["blocks.0.mlp.fc1.bias"] = torch.ones_like(state["blocks.0.mlp.fc1.bias"]).to(dtype)
    path = tmp_path / "odd.pth"
    torch.save({"model": state}, path)
    model = dense_vit()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=f"blocks.0.mlp.fc1.bias' holds {dtype}"):
        load_pretrained(model, path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_pickles_of_every_protocol_read(tmp_path, protocol):
    import numpy as np
    path = tmp_path / "w.pkl"
    path.write_bytes(pickle.dumps({"model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)}}, protocol=protocol))
    assert read_state_dict(path)["w"].tolist() == [[0, 1, 2], [3, 4, 5]]
