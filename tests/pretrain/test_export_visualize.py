"""Export -> backbone.load_pretrained with nothing missing; reconstruction figure and its de-normalisation."""

import pytest
import torch
from PIL import Image

from backbone import CheckpointError, ViT, load_pretrained
from runlib import atomic_torch_save
from pretrain import export_encoder, visualize
from pretrain.cli import export as export_cli, visualize as visualize_cli
from pretrain.models_mae import MaskedAutoencoderViT
from pretrain.reconstruction import reconstruct


def test_export_is_the_release_format_and_loads_into_backbone_with_nothing_missing(pretrained, tmp_path):
    out = export_encoder(pretrained, tmp_path / "mae_pretrain_vit_tiny.pth")
    saved = torch.load(out, weights_only=True)
    assert list(saved) == ["model"]
    block = ["norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"]
    assert set(saved["model"]) == {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias",
                                   "norm.weight", "norm.bias"} | {
        f"blocks.{i}.{m}.{p}" for i in range(2) for m in block for p in ("weight", "bias")}
    assert saved["model"]["pos_embed"].shape == (1, 1 + 16, 32)

    vit = ViT(img_size=64, patch_size=8, embed_dim=32, depth=2, num_heads=2, pretrain_img_size=32,
              use_rel_pos=True, window_size=4, window_block_indexes=(0,))
    report = load_pretrained(vit, out)
    assert report.missing == report.missing_rel_pos and len(report.missing_rel_pos) == 4
    assert report.unexpected == []
    assert set(report.ignored) == {"cls_token", "norm.weight", "norm.bias"}
    trained = torch.load(pretrained, weights_only=True)["model"]
    assert torch.equal(vit.state_dict()["blocks.1.mlp.fc2.weight"], trained["blocks.1.mlp.fc2.weight"])


def test_export_refuses_a_file_without_an_encoder_and_keeps_the_target(pretrained, tmp_path, capsys):
    target = tmp_path / "encoder.pth"
    assert export_cli([str(pretrained), "--out", str(target)]) == 0
    before = target.read_bytes()
    other = atomic_torch_save({"model": {"head.weight": torch.zeros(2, 2)}}, tmp_path / "head_only.pth")
    with pytest.raises(CheckpointError, match="not an MAE encoder checkpoint"):
        export_encoder(other, target)
    assert export_cli([str(other), "--out", str(target)]) == 2
    assert "not an MAE encoder checkpoint" in capsys.readouterr().err
    assert target.read_bytes() == before  # the earlier export is untouched


def test_reconstruction_panels_and_norm_pix_denormalisation():
    torch.manual_seed(0)
    model = MaskedAutoencoderViT(img_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                                 decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2, norm_pix_loss=True)
    images = torch.randn(2, 3, 32, 32)
    target = model.patchify(images)
    normalised = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** .5
    model.forward_decoder = lambda latent, ids_restore: normalised  # a perfect norm-pix prediction
    panels = reconstruct(model.eval(), images, mask_ratio=0.75, seed=0)
    assert torch.allclose(panels["reconstruction"], images, atol=1e-4)  # de-normalised back to the pixels
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(0))
    removed = model.unpatchify(model(images, 0.75, noise=noise)[2].unsqueeze(-1).expand(-1, -1, 192))
    assert removed.sum() == 2 * 12 * 192 and torch.equal(panels["masked"], images * (1 - removed))
    assert torch.allclose(panels["pasted"], images, atol=1e-4)


def test_visualize_writes_the_four_column_figure(pretrained, image_folder, tmp_path, capsys):
    out = tmp_path / "fig.png"
    code = visualize_cli([str(pretrained), "--images", str(image_folder), "--num", "2", "--out", str(out),
                          "--mask-ratio", "0.6", "--seed", "3"])
    assert code == 0 and "wrote" in capsys.readouterr().out
    with Image.open(out) as fig:
        assert fig.format == "PNG" and fig.width > fig.height  # 4 columns, 2 rows
    one = visualize(pretrained, [sorted(image_folder.iterdir())[0]], tmp_path / "one.png")
    with Image.open(one) as fig:
        assert fig.width > 2 * fig.height * 0.9
    assert visualize_cli([str(pretrained), "--images", str(image_folder), "--out", str(out),
                          "--mask-ratio", "1.0"]) == 2


def test_visualize_names_an_image_it_cannot_read(pretrained, image_folder, tmp_path, capsys):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    assert visualize_cli([str(pretrained), "--images", str(sorted(image_folder.iterdir())[0]), str(broken),
                          "--out", str(tmp_path / "fig.png")]) == 2
    assert capsys.readouterr().err.strip().startswith(f"mae-transfer visualize: error: image {broken}: cannot be read")
    assert not (tmp_path / "fig.png").exists()
