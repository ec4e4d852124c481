"""Layer-wise lr decay: our constructor gives mmseg's MAE scales to PlainViT, and refuses bad settings."""
import pytest
from mmengine.optim import build_optim_wrapper
from mmseg.engine.optimizers.layer_decay_optimizer_constructor import get_layer_id_for_vit


def test_groups_and_scales(build_segmentor, tiny_config):
    model = build_segmentor()
    cfg = tiny_config()
    decay, depth = cfg.optim_wrapper.paramwise_cfg.layer_decay_rate, model.backbone.depth
    lr = cfg.optim_wrapper.optimizer.lr
    groups = build_optim_wrapper(model, cfg.optim_wrapper).optimizer.param_groups

    names = [n for g in groups for n in g["names"]]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(names) == sorted(trainable)  # every parameter exactly once
    lr_of = {n: g["lr"] for g in groups for n in g["names"]}
    wd_of = {n: g["weight_decay"] for g in groups for n in g["names"]}
    params = dict(model.named_parameters())
    for name in names:
        # mmseg's rule for its MAE backbone (blocks are called layers there), num_layers + 2 bookkeeping
        mmseg_id = get_layer_id_for_vit(name.replace("backbone.blocks.", "backbone.layers."), depth + 2)
        assert lr_of[name] == pytest.approx(lr * decay ** (depth + 2 - mmseg_id - 1)), name
        no_decay = params[name].ndim == 1 or name.endswith("pos_embed")
        assert wd_of[name] == (0.0 if no_decay else 0.05), name
    assert lr_of["backbone.patch_embed.proj.weight"] == pytest.approx(lr * decay ** (depth + 1))
    assert lr_of[f"backbone.blocks.{depth - 1}.attn.qkv.weight"] == pytest.approx(lr * decay)
    assert lr_of["decode_head.conv_seg.weight"] == pytest.approx(lr)
    assert wd_of["backbone.pos_embed"] == 0.0 and wd_of["backbone.blocks.0.attn.qkv.weight"] == 0.05


def test_bad_settings_are_clear_errors(build_segmentor, tiny_config):
    model = build_segmentor()
    wrapper = tiny_config().optim_wrapper
    with pytest.raises(ValueError, match="exactly"):
        build_optim_wrapper(model, dict(wrapper, paramwise_cfg=dict(num_layers=4, layer_decay_rate=0.65)))
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        build_optim_wrapper(model, dict(wrapper, paramwise_cfg=dict(layer_decay_rate=1.5)))
