"""export --format timm | hf: the written encoder loads in timm and in transformers with the outputs of ours; and
Hugging Face ViTMAE checkpoints load into MaskedAutoencoderViT without renaming, with the outputs of theirs."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from backbone import VIT_SIZES, read_state_dict
from pretrain import export_encoder
from pretrain.cli import export as export_cli
from pretrain.export import timm_create_args
from pretrain.models_mae import MaskedAutoencoderViT
from pretrain.reconstruction import load_mae

transformers = pytest.importorskip("transformers")
timm = pytest.importorskip("timm")

SIZE, PATCH, WIDTH, DEPTH, HEADS = 32, 8, 32, 2, 2
TOKENS = (SIZE // PATCH) ** 2


def ordered_noise(batch: int) -> torch.Tensor:
    """Increasing noise: the kept patches are the first ones, in image order (on both sides)."""
    return torch.arange(TOKENS, dtype=torch.float32).expand(batch, -1)


def our_encoder_output(checkpoint: Path, images: torch.Tensor, mask_ratio: float) -> torch.Tensor:
    model, _ = load_mae(checkpoint)
    with torch.no_grad():
        return model.forward_encoder(images, mask_ratio, noise=ordered_noise(images.shape[0]))[0]


@pytest.mark.parametrize("name", ["encoder.pth", "encoder.safetensors"])
def test_timm_export_loads_in_timm_create_model_with_our_outputs(pretrained, tmp_path, name):
    out = export_encoder(pretrained, tmp_path / name, format="timm")
    encoder = read_state_dict(out)
    arch, kwargs = timm_create_args(encoder, HEADS)  # what the export prints
    assert arch == "vit_base_patch16_224"
    assert kwargs == dict(patch_size=PATCH, img_size=SIZE, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS)
    model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(out)), num_classes=0,
                              **kwargs).eval()
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        features = model.forward_features(images)  # cls + all patches after the final norm
    torch.testing.assert_close(features, our_encoder_output(pretrained, images, 0.0), rtol=1e-4, atol=1e-5)


def test_timm_folder_export_loads_by_local_dir_with_our_outputs(pretrained, tmp_path):
    """A folder in timm's own layout (model.safetensors + config.json): timm needs no arguments but the folder."""
    out = export_encoder(pretrained, tmp_path / "timm_folder", format="timm", num_heads=HEADS)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "vit_base_patch16_224" and config["num_classes"] == 0
    assert config["pretrained_cfg"]["mean"] == list(timm.data.IMAGENET_DEFAULT_MEAN)  # MAE's, not ViT-B's 0.5
    model = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        features = model.forward_features(images)
    torch.testing.assert_close(features, our_encoder_output(pretrained, images, 0.0), rtol=1e-4, atol=1e-5)
    assert timm.data.resolve_data_config({}, model=model)["input_size"] == (3, SIZE, SIZE)


def test_exported_files_have_the_modes_of_new_files(pretrained, tmp_path):
    """0666 less the umask, as open() gives (here umask 022: 0644), not mkstemp's 0600."""
    import os

    previous = os.umask(0o022)
    try:
        outputs = [export_encoder(pretrained, tmp_path / "mae.pth"),
                   export_encoder(pretrained, tmp_path / "timm.safetensors", format="timm"),
                   *export_encoder(pretrained, tmp_path / "hf", format="hf").iterdir(),
                   *export_encoder(pretrained, tmp_path / "timm", format="timm").iterdir()]
    finally:
        os.umask(previous)
    assert len(outputs) == 7  # mae, timm file, hf: 3 files, timm folder: 2
    assert {str(path): oct(path.stat().st_mode & 0o777) for path in outputs} == {
        str(path): "0o644" for path in outputs}


def test_timm_name_for_preset_widths():
    def shaped(width, depth, patch, grid):
        return {"patch_embed.proj.weight": torch.zeros(width, 3, patch, patch),
                "pos_embed": torch.zeros(1, 1 + grid * grid, width),
                **{f"blocks.{i}.mlp.fc1.weight": torch.zeros(4 * width, width) for i in range(depth)}}
    base, huge, tiny = (VIT_SIZES[name] for name in ("vit_base", "vit_huge", "vit_tiny"))
    assert timm_create_args(shaped(base.width, base.depth, 16, 14), base.heads) == ("vit_base_patch16_224", {})
    assert timm_create_args(shaped(huge.width, huge.depth, 14, 16), None) == ("vit_huge_patch14_224", {})
    assert timm_create_args(shaped(tiny.width, 4, 16, 8), tiny.heads) == (
        "vit_tiny_patch16_224", {"img_size": 128, "depth": 4})


def test_hf_export_loads_in_transformers_vitmae_with_our_outputs(pretrained, tmp_path):
    out = export_encoder(pretrained, tmp_path / "hf", format="hf")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "vit_mae" and config["num_attention_heads"] == HEADS
    assert config["mask_ratio"] == 0.75 and config["image_size"] == SIZE and config["norm_pix_loss"] is True
    model = transformers.ViTMAEModel.from_pretrained(out).eval()
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        theirs = model(pixel_values=images, noise=ordered_noise(2))
    ours = our_encoder_output(pretrained, images, 0.75)  # the same 75 % of patches removed on both sides
    assert theirs.last_hidden_state.shape == (2, 1 + TOKENS // 4, WIDTH)
    torch.testing.assert_close(theirs.last_hidden_state, ours, rtol=1e-4, atol=1e-5)
    assert read_state_dict(out / "model.safetensors").keys() == read_state_dict(
        export_encoder(pretrained, tmp_path / "mae.pth")).keys()

    processor = transformers.AutoImageProcessor.from_pretrained(out)
    assert type(processor).__name__.startswith("ViTImageProcessor")
    pixels = processor(images=np.full((50, 70, 3), 255, np.uint8), return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, SIZE, SIZE)  # resized to the encoder's input, normalised with ImageNet's stats
    expected = (1 - torch.tensor(timm.data.IMAGENET_DEFAULT_MEAN)) / torch.tensor(timm.data.IMAGENET_DEFAULT_STD)
    torch.testing.assert_close(pixels[0, :, 0, 0], expected, rtol=1e-4, atol=1e-4)


def test_load_pretrained_takes_a_saved_model_folder(pretrained, tmp_path):
    """An HF folder (ours, or transformers' save_pretrained) and a timm folder load as their weights file."""
    from backbone import ViT, load_pretrained

    reference = load_pretrained(ViT(img_size=SIZE, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS),
                                export_encoder(pretrained, tmp_path / "mae.pth"), log=False)
    for folder in (export_encoder(pretrained, tmp_path / "hf", format="hf"),
                   export_encoder(pretrained, tmp_path / "timm", format="timm", num_heads=HEADS)):
        report = load_pretrained(ViT(img_size=SIZE, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH,
                                     num_heads=HEADS), folder, log=False)
        assert report.path == str(folder / "model.safetensors")
        assert sorted(report.loaded) == sorted(reference.loaded) and report.missing == reference.missing


def hf_pretraining_model(tmp_path: Path) -> tuple[Path, "transformers.ViTMAEForPreTraining"]:
    torch.manual_seed(0)
    config = transformers.ViTMAEConfig(
        hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=4 * WIDTH,
        image_size=SIZE, patch_size=PATCH, decoder_hidden_size=16, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2, decoder_intermediate_size=64, norm_pix_loss=True, layer_norm_eps=1e-6)
    hf = transformers.ViTMAEForPreTraining(config).eval()
    with torch.no_grad():
        for p in hf.parameters():  # everything random, so that a swapped or dropped tensor shows
            p.add_(torch.randn_like(p) * 0.1)
    hf.save_pretrained(tmp_path / "hf_mae")
    return tmp_path / "hf_mae" / "model.safetensors", hf


def test_hf_vitmae_for_pretraining_loads_into_our_mae_with_the_same_outputs(tmp_path):
    path, hf = hf_pretraining_model(tmp_path)
    ours = MaskedAutoencoderViT(img_size=SIZE, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
                                decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2, norm_pix_loss=True).eval()
    ours.load_state_dict(read_state_dict(path), strict=True)  # no renaming by the user
    images, noise = torch.randn(2, 3, SIZE, SIZE), torch.rand(2, TOKENS)
    with torch.no_grad():
        loss, pred, mask = ours(images, 0.75, noise=noise)
        theirs = hf(pixel_values=images, noise=noise)
    assert torch.equal(mask, theirs.mask)
    torch.testing.assert_close(pred, theirs.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss, theirs.loss, rtol=1e-5, atol=1e-6)


def test_export_from_a_hf_file_reads_its_config_and_round_trips(tmp_path, capsys):
    path, hf = hf_pretraining_model(tmp_path)
    assert export_cli([str(path), "--format", "hf", "--out", str(tmp_path / "again")]) == 0
    assert "wrote" in capsys.readouterr().out
    again = transformers.ViTMAEModel.from_pretrained(tmp_path / "again").eval()
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(again(pixel_values=images, noise=ordered_noise(2)).last_hidden_state,
                                   hf.vit(pixel_values=images, noise=ordered_noise(2)).last_hidden_state,
                                   rtol=1e-5, atol=1e-6)


def test_hf_export_without_a_known_head_count_is_one_error(tmp_path, capsys, mae_release_state):
    source = tmp_path / "encoder.pth"
    torch.save({"model": mae_release_state(width=WIDTH, depth=DEPTH, patch=PATCH, grid=4)}, source)
    assert export_cli([str(source), "--format", "hf", "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "number of attention heads" in err[0] and "--num-heads" in err[0]
    assert export_cli([str(source), "--format", "hf", "--num-heads", "4", "--out", str(tmp_path / "hf")]) == 0
    assert transformers.ViTMAEConfig.from_pretrained(tmp_path / "hf").num_attention_heads == 4


def test_exports_record_the_label_of_their_run_for_the_runs_starting_from_them(pretrained, tmp_path):
    """A pretraining run's checkpoint is labelled 'mae' by its run record; its exports, whatever their names and
    formats, carry the label beside them (NAME.json), and so do exports of an export. A finetune run's weights are
    'supervised'. Weights nothing records keep the name rule (here: the weights as given)."""
    import shutil

    from runlib.run_record import export_record_path, init_label, write_run_record

    assert init_label(pretrained) == "mae"
    encoder = export_encoder(pretrained, tmp_path / "encoder.pth")
    folders = [export_encoder(encoder, tmp_path / "hf", format="hf", num_heads=HEADS),
               export_encoder(encoder, tmp_path / "timm", format="timm", num_heads=HEADS)]
    assert [init_label(path) for path in (encoder, *folders)] == ["mae", "mae", "mae"]
    assert json.loads(export_record_path(encoder).read_text())["source"] == str(pretrained)
    assert sorted(p.name for p in folders[1].iterdir()) == ["config.json", "model.safetensors"]  # beside, not in

    tuned = tmp_path / "tuned"
    write_run_record(tuned, task="finetune", status="finished", dataset="d", arch="vit", init="random")
    (tuned / "checkpoints").mkdir()
    assert init_label(shutil.copy(encoder, tuned / "checkpoints" / "step_1.pth")) == "supervised"

    plain = Path(shutil.copy(encoder, tmp_path / "plain.pth"))
    assert init_label(plain) == str(plain)
    export_encoder(plain, encoder)  # the same export from weights nothing records: its old record goes
    assert not export_record_path(encoder).exists() and init_label(encoder) == str(encoder)
