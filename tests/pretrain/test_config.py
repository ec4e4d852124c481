"""Shipped configs carry the recipes of docs/recipes.md §2 (MAE paper Tables 8-10, facebookresearch/mae
FINETUNE.md); bad values are one ConfigError naming key and value."""
import pytest

from pretrain import ConfigError, load_config
from tests.conftest import CONFIGS


def test_pretrain_configs_are_the_paper_recipe_not_the_argparse_defaults():
    for size, model in (("base", "mae_vit_base_patch16"), ("large", "mae_vit_large_patch16"),
                        ("huge", "mae_vit_huge_patch14")):
        cfg = load_config("pretrain", CONFIGS / "pretrain" / f"mae_vit_{size}.py")
        assert cfg.model == model
        assert (cfg.blr, cfg.batch_size, cfg.epochs, cfg.warmup_epochs) == (1.5e-4, 4096, 800, 40)
        assert (cfg.mask_ratio, cfg.norm_pix_loss, cfg.weight_decay, cfg.betas) == (0.75, True, 0.05, (0.9, 0.95))
        assert cfg.crop_scale == (0.2, 1.0) and cfg.input_size == 224
        assert cfg.effective_lr == pytest.approx(1.5e-4 * 4096 / 256)
    assert load_config("pretrain", CONFIGS / "pretrain" / "mae_vit_huge.py").encoder_kwargs()["patch_size"] == 14


def test_transfer_configs_are_the_paper_recipes():
    lp = load_config("linprobe", CONFIGS / "pretrain" / "linprobe_vit_base.py")
    assert (lp.blr, lp.batch_size, lp.weight_decay, lp.momentum, lp.epochs, lp.warmup_epochs) == (0.1, 16384, 0, 0.9, 90, 10)
    assert load_config("linprobe", CONFIGS / "pretrain" / "linprobe_vit_large.py").epochs == 50
    ft = load_config("finetune", CONFIGS / "pretrain" / "finetune_vit_base.py")
    assert (ft.blr, ft.layer_decay, ft.drop_path, ft.epochs, ft.batch_size) == (5e-4, 0.65, 0.1, 100, 1024)
    assert (ft.mixup, ft.cutmix, ft.smoothing, ft.warmup_epochs, ft.betas) == (0.8, 1.0, 0.1, 5, (0.9, 0.999))
    assert ft.global_pool and ft.rand_aug == "rand-m9-mstd0.5-inc1"
    ft = load_config("finetune", CONFIGS / "pretrain" / "finetune_vit_large.py")
    assert (ft.blr, ft.layer_decay, ft.drop_path, ft.epochs) == (1e-3, 0.75, 0.2, 50)
    assert load_config("finetune", CONFIGS / "pretrain" / "finetune_vit_huge.py").drop_path == 0.3
    for name in ("demo_tiny.py", "demo_tiny_linprobe.py", "demo_tiny_finetune.py"):
        kind = "linprobe" if "linprobe" in name else "finetune" if "finetune" in name else "pretrain"
        load_config(kind, CONFIGS / "pretrain" / name)


def test_overrides_are_typed_and_applied_last():
    cfg = load_config("pretrain", CONFIGS / "pretrain" / "mae_vit_base.py",
                      ["epochs=10", "warmup_epochs=1", "blr=1e-3", "norm_pix_loss=false", "data_path=/data/in1k/train",
                       "crop_scale=(0.3, 1)", "lr=None", "dataset=in1k,100"], seed=3)
    assert (cfg.epochs, cfg.blr, cfg.norm_pix_loss, cfg.data_path, cfg.crop_scale, cfg.seed) == (
        10, 1e-3, False, "/data/in1k/train", (0.3, 1.0), 3)
    assert cfg.lr is None and cfg.dataset == "in1k,100"  # a string field keeps its text (no list, no number)


@pytest.mark.parametrize("override, key", [
    ("mask_ratio=-0.1", "mask_ratio = -0.1"),
    ("mask_ratio=1.0", "mask_ratio = 1.0"),
    ("mask_ratio=1.5", "mask_ratio = 1.5"),
    ("model=mae_vit_gigantic_patch16", "model = 'mae_vit_gigantic_patch16'"),
    ("patch_size=15", "input_size = 224: must be a multiple of the patch size 15"),
    ("input_size=100", "input_size = 100"),
    ("epochs=ten", "override epochs=ten: epochs is an int in"),
    ("warmup_epochs=900", "warmup_epochs = 900"),
    ("nonsense=1", "mae_vit_base.py has no key 'nonsense'"),
    ("epochs", "expected key=value"),
])
def test_a_bad_value_is_one_error_naming_key_and_value(override, key):
    with pytest.raises(ConfigError) as info:
        load_config("pretrain", CONFIGS / "pretrain" / "mae_vit_base.py", [override])
    assert key in str(info.value)


def test_missing_recipe_values_and_missing_files_are_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"missing key\(s\) \['batch_size'"):
        load_config("pretrain", None, model="mae_vit_base_patch16")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("pretrain", tmp_path / "absent.py")
    broken = tmp_path / "broken.py"
    broken.write_text("epochs = = 3\n")
    with pytest.raises(ConfigError, match=f"{broken}, line 1: syntax error in the config file: invalid syntax"):
        load_config("pretrain", broken)


def test_a_float_field_takes_a_float_where_the_file_wrote_an_int(tmp_path):
    # configs/pretrain/demo_tiny.py writes warmup_epochs = 4; the field is a float (the demo's plans set 0.6)
    cfg = load_config("pretrain", CONFIGS / "pretrain" / "demo_tiny.py", ["warmup_epochs=0.6", "epochs=6"])
    assert cfg.warmup_epochs == 0.6
    with pytest.raises(ConfigError, match=r"override epochs=0.5: epochs is an int in .*demo_tiny.py"):
        load_config("pretrain", CONFIGS / "pretrain" / "demo_tiny.py", ["epochs=0.5"])
