"""Layer-decay scales against the two published rules, written out independently of backbone.layer_decay."""
import pytest
import torch.nn as nn

from backbone import SimpleFeaturePyramid, ViT, layer_id, lr_scale, param_groups

DEPTH, DECAY = 12, 0.65


def mae_rule(name: str) -> float:
    """facebookresearch/mae util/lr_decay.py: num_layers = depth + 1."""
    num_layers = DEPTH + 1
    if name in ("cls_token", "pos_embed") or name.startswith("patch_embed"):
        lid = 0
    elif name.startswith("blocks"):
        lid = int(name.split(".")[1]) + 1
    else:
        lid = num_layers
    return DECAY ** (num_layers - lid)


def vitdet_rule(name: str) -> float:
    """detectron2 ViTDet get_vit_lr_decay_rate: num_layers = depth."""
    lid = DEPTH + 1
    if name.startswith("backbone"):
        if ".pos_embed" in name or ".patch_embed" in name:
            lid = 0
        elif ".blocks." in name and ".residual." not in name:
            lid = int(name[name.find(".blocks."):].split(".")[2]) + 1
    return DECAY ** (DEPTH + 1 - lid)


def twelve_block_vit() -> ViT:
    return ViT(img_size=64, patch_size=16, embed_dim=16, depth=DEPTH, num_heads=2, pretrain_img_size=64,
               use_rel_pos=True)


def test_scales_match_the_mae_rule_on_a_12_block_model():
    names = [n for n, _ in twelve_block_vit().named_parameters()] + ["cls_token", "norm.weight", "head.weight"]
    for name in names:
        assert lr_scale(name, DECAY, DEPTH) == pytest.approx(mae_rule(name)), name
    assert lr_scale("blocks.11.mlp.fc2.weight", DECAY, DEPTH) == pytest.approx(DECAY)
    assert lr_scale("pos_embed", DECAY, DEPTH) == pytest.approx(DECAY ** 13)


def test_scales_match_the_vitdet_rule_on_a_detector_model():
    model = nn.Module()
    model.backbone = SimpleFeaturePyramid(twelve_block_vit(), out_channels=8)
    model.roi_heads = nn.Linear(8, 2)
    for name, _ in model.named_parameters():
        assert lr_scale(name, DECAY, DEPTH) == pytest.approx(vitdet_rule(name)), name
    assert lr_scale("backbone.simfp_2.0.weight", DECAY, DEPTH) == 1.0


def test_decoder_blocks_are_not_mistaken_for_encoder_blocks():
    assert layer_id("decoder_blocks.3.attn.qkv.weight", DEPTH) == DEPTH + 1
    assert layer_id("backbone.blocks.3.attn.qkv.weight", DEPTH) == 4


def test_param_groups_split_weight_decay_and_carry_scales():
    model = twelve_block_vit()
    groups = param_groups(model.named_parameters(), weight_decay=0.05, decay=DECAY, depth=DEPTH, base_lr=1e-3)
    by_name = {name: g for g in groups for name in g["names"]}
    assert set(by_name) == {n for n, _ in model.named_parameters()}
    for name, param in model.named_parameters():
        group = by_name[name]
        no_decay = param.ndim == 1 or name == "pos_embed"
        assert group["weight_decay"] == (0.0 if no_decay else 0.05), name
        assert group["lr"] == pytest.approx(1e-3 * mae_rule(name)), name
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_frozen_parameters_are_left_out():
    model = twelve_block_vit()
    model.patch_embed.requires_grad_(False)
    groups = param_groups(model.named_parameters(), weight_decay=0.05, decay=DECAY, depth=DEPTH)
    names = {n for g in groups for n in g["names"]}
    assert not any(n.startswith("patch_embed") for n in names)
