"""The demo end to end (``slow``), and the path its MAE encoder takes into detectron2 and mmseg."""
import csv
from pathlib import Path

import pytest
import torch

from mae_transfer import cli

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"


@pytest.fixture(scope="module")
def demo_export(tmp_path_factory) -> dict[str, torch.Tensor]:
    """An MAE of the demo's pretraining config (random weights, so every tensor differs from any init),
    exported in the release format as the demo exports it."""
    import pretrain

    cfg = pretrain.load_config("pretrain", CONFIGS / "pretrain" / "demo_tiny.py")
    torch.manual_seed(123)
    mae = pretrain.build_mae(cfg.model, **cfg.model_kwargs())
    with torch.no_grad():
        for tensor in mae.parameters():
            tensor.add_(torch.randn_like(tensor))  # nothing left at a value a fresh init could also give
    folder = tmp_path_factory.mktemp("export")
    torch.save({"model": mae.state_dict()}, folder / "step_00000001.pth")
    path = pretrain.export_encoder(folder / "step_00000001.pth", folder / "mae_encoder.pth")
    return {"path": path, "state": torch.load(path, weights_only=True)["model"]}


# The encoder tensors a plain-ViT backbone has no use for: the cls token (ViTDet drops it) and the final norm
# (the dense heads read block outputs, as in ViTDet and BEiT/MAE's UperNet).
UNUSED_BY_DENSE_BACKBONES = {"cls_token", "norm.weight", "norm.bias"}


def assert_every_encoder_tensor_arrived(exported: dict, backbone_state: dict) -> None:
    used = {k: v for k, v in exported.items() if k not in UNUSED_BY_DENSE_BACKBONES}
    assert set(used) <= set(backbone_state), sorted(set(used) - set(backbone_state))
    changed = [k for k, v in used.items() if not torch.equal(v, backbone_state[k])]
    assert not changed, changed
    assert len(used) == 3 + 12 * 4  # pos_embed, patch_embed.proj.{weight,bias}, 12 tensors in each of 4 blocks
    # what the backbone has besides: only the relative-position tables, zero-initialised for every init
    extra = set(backbone_state) - set(used)
    assert extra and all(".attn.rel_pos_" in k for k in extra), sorted(extra)
    assert all(not backbone_state[k].any() for k in extra)


def test_mae_export_reaches_the_detectron2_backbone_unchanged(demo_export):
    from detectron2.config import LazyConfig, instantiate

    from detection.weights import load_initial_weights

    model = instantiate(LazyConfig.load(str(CONFIGS / "detection" / "demo_tiny.py")).model)
    assert load_initial_weights(model, str(demo_export["path"])) == "backbone"
    assert_every_encoder_tensor_arrived(demo_export["state"], model.backbone.net.state_dict())


def test_mae_export_reaches_the_mmseg_backbone_unchanged(demo_export):
    import segmentation  # noqa: F401  (registers PlainViT)
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(CONFIGS / "segmentation" / "demo_tiny.py"))
    cfg.model.pretrained = str(demo_export["path"])  # as segmentation.train(init_checkpoint=...) sets it
    init_default_scope("mmseg")
    segmentor = MODELS.build(cfg.model)
    segmentor.init_weights()
    assert_every_encoder_tensor_arrived(demo_export["state"], segmentor.backbone.state_dict())


@pytest.mark.slow
def test_quick_demo_runs_every_stage_and_reuses_them(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    first = capsys.readouterr().out

    rows = list(csv.DictReader((out / "comparison.csv").open()))
    transfer = {(r["task"], r["init"]) for r in rows}
    assert transfer == {(task, init) for task in ("detection", "segmentation")
                        for init in ("mae", "supervised", "random")}
    for row in rows:
        metric = row["APbox"] if row["task"] == "detection" else row["mIoU"]
        assert 0.0 <= float(metric) <= 100.0
    for figure in ("comparison.png", "reconstructions.png", "loss_curves.png"):
        assert (out / figure).stat().st_size > 10_000, figure
    assert "| detection/mae |" in first and "| segmentation/random |" in first
    assert (out / "pretrain" / "mae_encoder.pth").is_file()

    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    second = capsys.readouterr().out
    assert second.count("reused (finished in an earlier run)") == 8  # all but data, compare and figures
