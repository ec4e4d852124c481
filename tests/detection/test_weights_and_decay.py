"""Initial weights through backbone.load_pretrained (official MAE format: nothing unexpected, no warnings) and
layer-wise lr decay / weight decay through detectron2's optimizer params."""
import logging
import warnings
from pathlib import Path

import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate

from backbone import CheckpointError
from detection.weights import load_initial_weights

DEMO = Path(__file__).resolve().parents[2] / "configs" / "detection" / "demo_tiny.py"


def tiny_cfg(tiny):
    cfg = LazyConfig.load(str(DEMO))
    return LazyConfig.apply_overrides(cfg, list(tiny))


def test_official_mae_file_loads_into_the_detector_with_nothing_unexpected_and_no_warning(tiny, mae_file, mae_state,
                                                                                            caplog):
    model = instantiate(tiny_cfg(tiny).model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        assert load_initial_weights(model, str(mae_file)) == "backbone"
    assert caught == []
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    (summary,) = [r.getMessage() for r in caplog.records if str(mae_file) in r.getMessage()]
    assert "UNEXPECTED" not in summary and "MISSING" not in summary
    assert "resized pos_embed (1, 197, 32)->(1, 65, 32)" in summary  # 224-px grid to the 128-px model
    assert "relative-position tables start at zero" in summary

    state, after = mae_state(), model.state_dict()
    for key, value in state.items():
        if key.startswith("blocks.") or key.startswith("patch_embed."):
            torch.testing.assert_close(after[f"backbone.net.{key}"], value, rtol=0, atol=0, msg=key)
    untouched = [k for k in after if not k.startswith("backbone.net.")]
    assert all(torch.equal(after[k], before[k]) for k in untouched)  # pyramid and heads keep their init


def test_vit_file_of_another_size_is_one_clear_error(tiny, tmp_path, mae_state):
    path = tmp_path / "mae_pretrain_vit_wider.pth"
    torch.save({"model": mae_state(width=48)}, path)
    with pytest.raises(CheckpointError, match="width 48 but the model has width 32"):
        load_initial_weights(instantiate(tiny_cfg(tiny).model), str(path))


def test_layer_decay_and_weight_decay_of_every_parameter(tiny):
    cfg = tiny_cfg(tiny)
    depth, decay, lr = cfg.model.backbone.net.depth, cfg.optimizer.params.lr_factor_func.decay, cfg.optimizer.lr
    model = instantiate(cfg.model)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    norm_params = {f"{m_name}.{p_name}" for m_name, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)
                   for p_name, _ in m.named_parameters(recurse=False)}  # the ViT's and the pyramid's norms
    assert (depth, decay) == (2, 0.7)

    for name, param in model.named_parameters():
        group = group_of[id(param)]
        if name.startswith(("backbone.net.patch_embed.", "backbone.net.pos_embed")):
            expected = decay ** (depth + 1)                      # layer id 0
        elif name.startswith("backbone.net.blocks."):
            expected = decay ** (depth - int(name.split(".")[3]))  # blocks.i: id i + 1
        else:
            expected = 1.0                                        # pyramid and detector heads
        assert group["lr"] == pytest.approx(lr * expected), name
        assert group["lr"] == pytest.approx(lr * get_vit_lr_decay_rate(name, decay, depth)), name  # detectron2's rule

        if name in norm_params or name.endswith("pos_embed"):
            assert group["weight_decay"] == 0.0, name
        elif name.endswith(("attn.qkv.weight", "mlp.fc1.weight", "cls_score.weight")):
            assert group["weight_decay"] == cfg.optimizer.weight_decay, name
    assert any(".simfp_" in n for n in norm_params) and any(".blocks." in n for n in norm_params)
