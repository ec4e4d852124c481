"""Initial weights land in the detector's ViT (``backbone.net``) and nowhere else; layer-wise lr decay and weight
decay through detectron2's optimizer params follow detectron2's own ViTDet rule. (How a checkpoint file is read
and resized, and the layer-decay scales themselves, are tested in tests/backbone/.)"""
import pytest
import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate

from detection.weights import load_initial_weights
from tests.detection.conftest import DEMO


def tiny_cfg(tiny):
    cfg = LazyConfig.load(str(DEMO))
    return LazyConfig.apply_overrides(cfg, list(tiny))


def test_a_pretrained_vit_file_fills_the_detectors_vit_and_leaves_the_rest(tiny, mae_file, mae_release_state):
    model = instantiate(tiny_cfg(tiny).model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert load_initial_weights(model, str(mae_file)) == "backbone"
    state, after = mae_release_state(), model.state_dict()
    for key, value in state.items():
        if key.startswith("blocks.") or key.startswith("patch_embed."):
            torch.testing.assert_close(after[f"backbone.net.{key}"], value, rtol=0, atol=0, msg=key)
    untouched = [k for k in after if not k.startswith("backbone.net.")]
    assert untouched and all(torch.equal(after[k], before[k]) for k in untouched)  # pyramid and heads keep their init


def test_layer_decay_is_detectron2s_rule_and_norms_have_no_weight_decay(tiny):
    cfg = tiny_cfg(tiny)
    depth, decay, lr = cfg.model.backbone.net.depth, cfg.optimizer.params.lr_factor_func.decay, cfg.optimizer.lr
    model = instantiate(cfg.model)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    norm_params = {f"{m_name}.{p_name}" for m_name, m in model.named_modules() if isinstance(m, torch.nn.LayerNorm)
                   for p_name, _ in m.named_parameters(recurse=False)}  # the ViT's and the pyramid's norms
    assert (depth, decay) == (2, 0.7)

    scales = set()
    for name, param in model.named_parameters():
        group = group_of[id(param)]
        expected = get_vit_lr_decay_rate(name, decay, depth)  # detectron2's ViTDet rule
        assert group["lr"] == pytest.approx(lr * expected), name
        scales.add(round(expected, 6))
        if name in norm_params or name.endswith("pos_embed"):
            assert group["weight_decay"] == 0.0, name
        elif name.endswith(("attn.qkv.weight", "mlp.fc1.weight", "cls_score.weight")):
            assert group["weight_decay"] == cfg.optimizer.weight_decay, name
    assert len(scales) == depth + 2  # embeddings, each block, and the rest: the rule was applied, not all 1
    assert any(".simfp_" in n for n in norm_params) and any(".blocks." in n for n in norm_params)
