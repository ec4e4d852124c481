"""Linear probe and fine-tuning on an ImageFolder set, from an MAE export or from random init."""
from pathlib import Path

import pytest
import torch

from backbone import ViT, load_pretrained, lr_scale
from runlib import read_run_record
from pretrain import ConfigError, export_encoder, finetune, linear_probe, load_config, train_mae
from tests.conftest import CONFIGS

TINY = dict(input_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory, image_folder, tiny_model) -> Path:
    folder = tmp_path_factory.mktemp("pretrain")
    cfg = load_config("pretrain", CONFIGS / "pretrain" / "mae_pretrain.py", data_path=str(image_folder),
                      batch_size=16, epochs=1, warmup_epochs=0, num_workers=0, tensorboard=False, **tiny_model)
    return export_encoder(train_mae(cfg, folder / "run"), folder / "encoder.pth")


def classify_overrides(folders, **values) -> dict:
    train, val = folders
    return {**dict(model="vit_tiny_patch16", data_path=str(train), val_path=str(val), batch_size=8, epochs=2,
                   warmup_epochs=1, num_workers=0, tensorboard=False, **TINY), **values}


def test_linear_probe_trains_only_the_head_and_reports_top1_per_epoch(encoder, classify_folders, tmp_path):
    result = linear_probe(CONFIGS / "pretrain" / "linprobe.py", tmp_path / "lp", checkpoint=encoder,
                          overrides=classify_overrides(classify_folders))
    assert [h["epoch"] for h in result.history] == [1.0, 2.0]
    assert all(0 <= h["top1"] <= 100 for h in result.history) and result.top1 == result.history[-1]["top1"]
    trained = torch.load(result.checkpoint, weights_only=True)["model"]
    start = torch.load(encoder, weights_only=True)["model"]
    for key, value in start.items():  # the encoder is frozen, its final norm included
        assert torch.equal(trained[key], value), key
    # BatchNorm without affine parameters before the linear head, with running statistics
    assert "head.0.weight" not in trained and trained["head.0.running_var"].shape == (32,)
    assert trained["head.1.weight"].shape == (2, 32)
    record = read_run_record(tmp_path / "lp")
    # the export records the label of its pretraining run beside it (runlib.run_record.init_label)
    assert (record["task"], record["status"], record["init"]) == ("linprobe", "finished", "mae")
    assert record["metrics"] == {"top1": result.top1, "top1_best": result.top1_best}


def test_command_line_takes_overrides_around_options(encoder, classify_folders, tmp_path, capsys):
    from pretrain.cli import linprobe
    values = classify_overrides(classify_folders, epochs=1)
    overrides = [f"{k}={v}" for k, v in values.items()]
    code = linprobe(["--config", str(CONFIGS / "pretrain" / "linprobe.py"), *overrides[:3], "--out", str(tmp_path / "lp"),
                     "--checkpoint", str(encoder), *overrides[3:]])
    assert code == 0 and "top-1" in capsys.readouterr().out
    assert read_run_record(tmp_path / "lp")["metrics"]["top1"] >= 0


def test_linear_probe_needs_a_checkpoint(classify_folders, tmp_path):
    with pytest.raises(ConfigError, match="needs encoder weights"):
        linear_probe(CONFIGS / "pretrain" / "linprobe.py", tmp_path / "lp", overrides=classify_overrides(classify_folders))


def test_finetune_from_the_export_uses_layer_decay_and_resumes(encoder, classify_folders, tmp_path):
    overrides = classify_overrides(classify_folders, epochs=1, layer_decay=0.5, drop_path=0.1)
    result = finetune(CONFIGS / "pretrain" / "finetune.py", tmp_path / "ft", checkpoint=encoder, overrides=overrides)
    ckpt = torch.load(result.checkpoint, weights_only=True)
    # the config's layer_decay reaches the optimizer (the scales themselves: tests/backbone/test_layer_decay.py)
    scale_of = {name: g["lr_scale"] for g in ckpt["optimizer"]["param_groups"] for name in g["names"]}
    assert scale_of == {name: lr_scale(name, 0.5, 2) for name in scale_of}
    assert min(scale_of.values()) < 1
    no_decay = {n for g in ckpt["optimizer"]["param_groups"] if g["weight_decay"] == 0 for n in g["names"]}
    assert {"pos_embed", "cls_token", "blocks.0.norm1.weight", "head.bias"} <= no_decay
    assert "blocks.0.attn.qkv.weight" not in no_decay
    assert read_run_record(tmp_path / "ft")["init"] == "mae"

    # one more epoch, continued from the checkpoint: the epoch-1 evaluation is kept, epoch 2 is added
    more = finetune(CONFIGS / "pretrain" / "finetune.py", tmp_path / "ft", checkpoint=encoder, resume=True,
                    overrides={**overrides, "epochs": 2})
    assert [h["epoch"] for h in more.history] == [1.0, 2.0] and more.history[0] == result.history[0]


def test_finetune_from_random_init_is_the_supervised_baseline_and_loads_into_backbone(classify_folders, tmp_path):
    result = finetune(CONFIGS / "pretrain" / "finetune.py", tmp_path / "sup",
                      overrides=classify_overrides(classify_folders, epochs=1, drop_path=0.1))
    record = read_run_record(tmp_path / "sup")
    assert (record["task"], record["init"], record["status"]) == ("finetune", "random", "finished")
    vit = ViT(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, pretrain_img_size=32, use_rel_pos=True)
    load_pretrained(vit, result.checkpoint)  # a timm state dict under 'model': what backbone reads (tests/backbone)
