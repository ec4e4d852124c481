"""The demo end to end (``slow``), and the path its MAE encoder takes into detectron2 and mmseg."""
import csv
import json

import pytest
import torch

from runlib import UserError
from runlib.output_dir import MARKER
from mae_transfer import cli, demo
from tests.conftest import CONFIGS



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
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from pretrain.config import read_mmengine_config
    from segmentation.frameworks import framework_patches, mmseg_build_notices_off  # registers PlainViT

    cfg = read_mmengine_config(CONFIGS / "segmentation" / "demo_tiny.py")
    cfg.model.pretrained = str(demo_export["path"])  # as segmentation.train(init_checkpoint=...) sets it
    init_default_scope("mmseg")
    with framework_patches(), mmseg_build_notices_off():  # as a run builds it
        segmentor = MODELS.build(cfg.model)
    segmentor.init_weights()
    assert_every_encoder_tensor_arrived(demo_export["state"], segmentor.backbone.state_dict())


def _flat(cfg, prefix="") -> dict:
    from omegaconf import DictConfig, OmegaConf
    cfg = OmegaConf.create(cfg) if not isinstance(cfg, DictConfig) else cfg
    return {k: v for k, v in _walk(OmegaConf.to_container(cfg), prefix)}


def _walk(node, prefix):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), node


def test_detection_inits_differ_only_by_the_published_recipe():
    from detectron2.config import LazyConfig

    mae = _flat(LazyConfig.load(str(CONFIGS / "detection" / demo.DETECTION_CONFIGS["mae"])))
    assert mae["optimizer.params.lr_factor_func.decay"] < 1  # MAE: layer decay
    for init, lr, wd in (("supervised", 0.8, mae["optimizer.weight_decay"]), ("random", 1.6, 0.2)):
        other = _flat(LazyConfig.load(str(CONFIGS / "detection" / demo.DETECTION_CONFIGS[init])))
        assert other["optimizer.lr"] == pytest.approx(lr * mae["optimizer.lr"])
        assert other["optimizer.weight_decay"] == wd and other["optimizer.params.lr_factor_func.decay"] == 1.0
        assert other["train.init"] == init
        differ = {k for k in mae.keys() | other.keys() if mae.get(k) != other.get(k)}
        assert differ <= {"optimizer.lr", "optimizer.weight_decay", "optimizer.params.lr_factor_func.decay",
                          "train.init"}, differ


def test_detection_schedule_keeps_the_configs_fractions():
    from detectron2.config import LazyConfig, instantiate

    config = CONFIGS / "detection" / "demo_tiny.py"
    original = LazyConfig.load(str(config))
    stretched = LazyConfig.apply_overrides(LazyConfig.load(str(config)),
                                           demo._detection_overrides(config, iters=120, seed=2))
    assert stretched.train.max_iter == 120 and stretched.train.seed == 2
    before, after = instantiate(original.lr_multiplier), instantiate(stretched.lr_multiplier)
    for where in (0.001, 0.05, 0.5, 0.85, 0.93, 0.99):  # warm-up, plateau, after each step
        assert after(where) == pytest.approx(before(where)), where


def test_segmentation_schedule_keeps_the_configs_fractions():
    from pretrain.config import read_mmengine_config

    config = CONFIGS / "segmentation" / "demo_tiny.py"
    cfg = read_mmengine_config(config)
    fraction = cfg.param_scheduler[0]["end"] / cfg.train_cfg.max_iters
    cfg.merge_from_dict(demo._segmentation_options(config, iters=200, seed=1))
    warmup, poly = cfg.param_scheduler
    assert cfg.train_cfg.max_iters == 200 and poly["end"] == 200 and poly["begin"] == warmup["end"]
    assert warmup["end"] == round(fraction * 200) and warmup["start_factor"] == 1e-6 and poly["type"] == "PolyLR"
    assert cfg.randomness.seed == 1


def test_segmentation_run_record_carries_the_seed(tmp_path):
    from segmentation.run import load_config

    config = CONFIGS / "segmentation" / "demo_tiny.py"
    cfg = load_config(config, tmp_path, demo._segmentation_options(config, iters=50, seed=3))
    assert cfg.run_record["seed"] == 3


def test_an_output_folder_of_another_plan_is_refused(tmp_path):
    demo.check_plan(tmp_path, "quick")
    demo.check_plan(tmp_path, "quick")  # the same plan again: reused (more seeds or --recipe-search add runs)
    with pytest.raises(UserError, match="another plan"):
        demo.check_plan(tmp_path, "default")
    with pytest.raises(UserError, match="another plan"):  # the encoders of another origin
        demo.check_plan(tmp_path, "quick", pretrain=True)


def test_plans_are_shaped_like_the_papers():
    for name in demo.GRIDS:
        plan = demo.read_plan(name)
        params = plan["params"]
        assert params["num_pretrain"] >= 4 * params["num_scenes_train"], name  # pretraining sees far more images
        assert params["mae_epochs"] > params["supervised_epochs"], name
        assert params["num_scenes_test"] == params["num_scenes_val"], name  # the recipe search reports on as many
    assert demo.read_plan("paper")["seeds"] >= 3


class _Called(Exception):
    pass


@pytest.mark.parametrize("flags, pretrain, search", [([], False, False), (["--zoo"], False, False),
                                                     (["--pretrain"], True, False), (["--recipe-search"], False, True)])
def test_the_demo_transfers_from_the_zoo_unless_told_to_pretrain(monkeypatch, tmp_path, flags, pretrain, search):
    calls = []

    def run_demo(out, name, **kwargs):
        calls.append(kwargs)
        raise _Called

    monkeypatch.setattr(demo, "run_demo", run_demo)
    monkeypatch.setattr(demo, "run_command", lambda name, body: body())
    with pytest.raises(_Called):
        demo.main(["--quick", "--out", str(tmp_path), *flags])
    assert calls[0]["pretrain"] is pretrain and calls[0]["recipe_search"] is search


def test_zoo_and_pretrain_exclude_each_other(capsys):
    with pytest.raises(SystemExit):
        demo.main(["--zoo", "--pretrain"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_fresh_removes_only_a_folder_the_demo_made(tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert cli.main(["demo", "--quick", "--fresh", "--out", str(foreign)]) == 2
    assert "holds files that mae-transfer demo did not write" in capsys.readouterr().err
    assert (foreign / "thesis.tex").read_text() == "precious"

    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(UserError, match="symlink"):
        demo.claim_output(tmp_path / "link", fresh=True)

    ours = tmp_path / "demo"
    demo.claim_output(ours, fresh=False)
    demo.check_plan(ours, "quick")
    (ours / "pretrain").mkdir()
    demo.claim_output(ours, fresh=True)
    assert [p.name for p in ours.iterdir()] == [MARKER]  # emptied, and marked as the demo's again


@pytest.mark.slow
def test_quick_demo_runs_every_stage_and_reuses_them(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--pretrain", "--out", str(out)]) == 0  # the pretraining path
    first = capsys.readouterr().out

    rows = list(csv.DictReader((out / "comparison.csv").read_text().splitlines()))
    transfer = {(r["task"], r["init"]) for r in rows}
    assert transfer == {(task, init) for task in ("detection", "segmentation")
                        for init in ("mae", "supervised", "random")}
    for row in rows:
        metric = row["APbox"] if row["task"] == "detection" else row["mIoU"]
        assert 0.0 <= float(metric) <= 100.0
    for figure in ("comparison.png", "reconstructions.png", "loss_curves.png"):
        assert (out / figure).stat().st_size > 10_000, figure
    assert "| detection/mae/seed0 |" in first and "| segmentation/random/seed0 |" in first
    assert "GFLOPs" in first and "train s/iter" in first                      # every run recorded its cost
    paper = (out / "comparison.tex").read_text()                            # a row per init, as MAE Tables 4/5
    assert all(f"\n{init} & $" in paper for init in ("MAE", "supervised", "random"))
    assert (out / "pretrain" / "mae" / "encoder.pth").is_file()
    records = [json.loads(p.read_text()) for p in out.glob("*/*/seed0/run_record.json")]
    assert len(records) == 6 and all(r["seed"] == 0 for r in records)

    assert cli.main(["demo", "--quick", "--pretrain", "--out", str(out)]) == 0
    second = capsys.readouterr().out
    assert second.count("finished (not resubmitted)") == 9 and "9 runs, 0 submitted" in second  # all but figures
