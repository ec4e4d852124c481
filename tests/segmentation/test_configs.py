"""The published configs: the numbers of mmseg's configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py and
the MAE paper's ADE20K protocol (arXiv 2111.06377, Sec. 5 / Table 5), MAE vs supervised differing only in the
checkpoint, L from B by size fields only, and every config built through mmseg's registry."""
import functools

import pytest
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from backbone import VIT_SIZES
from pretrain.config import read_mmengine_config
from segmentation import PlainViT, framework_patches
from segmentation.frameworks import mmseg_build_notices_off


def backbone_sizes(name: str, out_indices: tuple[int, ...]) -> dict:
    size = VIT_SIZES[name]
    return dict(embed_dim=size.width, depth=size.depth, num_heads=size.heads, out_indices=out_indices)


# ViT-B / ViT-L (the registry's rows, pinned to the MAE paper's sizes in tests/backbone/test_presets.py); B's
# out_indices from mmseg's MAE config, L's the same spacing over 24 blocks
SIZES = {"b": backbone_sizes("vit_base", (3, 5, 7, 11)), "l": backbone_sizes("vit_large", (7, 11, 15, 23))}


@functools.lru_cache(maxsize=None)
def load(configs_dir, name: str) -> Config:
    return read_mmengine_config(configs_dir / f"{name}.py")


def flat(tree, prefix="") -> dict:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in flat(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def differing_keys(a: Config, b: Config) -> set[str]:
    fa, fb = flat(a.to_dict()), flat(b.to_dict())
    return {k for k in fa.keys() | fb.keys() if fa.get(k, "<absent>") != fb.get(k, "<absent>")}


@pytest.mark.parametrize("size", ["b", "l"])
def test_mae_and_supervised_differ_only_in_the_checkpoint(configs_dir, size):
    mae = load(configs_dir, f"upernet_vit_{size}_mae_ade20k_512x512_160k")
    supervised = load(configs_dir, f"upernet_vit_{size}_supervised_ade20k_512x512_160k")
    assert differing_keys(mae, supervised) == {"model.pretrained", "run_record.init"}
    assert (mae.run_record.init, supervised.run_record.init) == ("mae", "supervised")
    assert mae.model.pretrained != supervised.model.pretrained


def test_large_differs_from_base_in_sizes_only(configs_dir):
    base = load(configs_dir, "upernet_vit_b_mae_ade20k_512x512_160k")
    large = load(configs_dir, "upernet_vit_l_mae_ade20k_512x512_160k")
    sizes = {f"model.backbone.{k}" for k in SIZES["b"]} | {
        "model.neck.embed_dim", "model.decode_head.in_channels", "model.decode_head.channels",
        "model.auxiliary_head.in_channels"}
    assert differing_keys(base, large) == sizes | {"model.pretrained"}


@pytest.mark.parametrize("size", ["b", "l"])
def test_numbers_equal_reference(configs_dir, size):
    """mmseg's configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py, with this project's backbone and
    layer-decay constructor."""
    cfg = load(configs_dir, f"upernet_vit_{size}_mae_ade20k_512x512_160k")
    backbone = cfg.model.backbone
    assert backbone.type == "PlainViT" and backbone.img_size == 512 and backbone.patch_size == 16
    assert {k: backbone[k] for k in SIZES[size]} == SIZES[size]
    width = backbone.embed_dim  # the neck and heads take the backbone's maps
    assert cfg.model.neck.embed_dim == cfg.model.auxiliary_head.in_channels == cfg.model.decode_head.channels == width
    assert cfg.model.decode_head.in_channels == [width] * 4
    assert backbone.drop_path_rate == 0.1 and backbone.use_rel_pos is True
    assert cfg.model.neck.type == "Feature2Pyramid" and cfg.model.neck.rescales == [4, 2, 1, 0.5]
    assert (cfg.model.decode_head.type, cfg.model.decode_head.num_classes) == ("UPerHead", 150)
    assert (cfg.model.auxiliary_head.type, cfg.model.auxiliary_head.num_classes) == ("FCNHead", 150)

    wrapper = cfg.optim_wrapper
    assert wrapper.type == "AmpOptimWrapper"  # fp16
    assert wrapper.optimizer == dict(type="AdamW", lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert wrapper.constructor == "ViTLayerDecayOptimizerConstructor"
    assert wrapper.paramwise_cfg == dict(layer_decay_rate=0.65)
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.begin, warmup.end, warmup.by_epoch) == ("LinearLR", 0, 1500, False)
    assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end) == ("PolyLR", 1.0, 0.0, 1500, 160000)
    assert cfg.train_cfg.max_iters == 160000
    assert cfg.train_dataloader.batch_size * 8 == 16  # 8 GPUs x 2

    assert cfg.model.test_cfg.mode == "slide" and cfg.model.test_cfg.crop_size == (512, 512)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        assert loader.dataset.type == "ADEFormatDataset"
        assert loader.dataset.data_root.endswith("ADEChallengeData2016")
        loads = [t for t in loader.dataset.pipeline if t.type == "LoadAnnotations"]
        assert len(loads) == 1 and loads[0].reduce_zero_label is True
    crop = next(t for t in cfg.train_dataloader.dataset.pipeline if t.type == "RandomCrop")
    assert crop.crop_size == (512, 512)
    assert cfg.custom_imports.imports == ["segmentation"]
    assert cfg.default_hooks.checkpoint.type == "SafeCheckpointHook"


@pytest.mark.parametrize("size", ["b", "l"])
def test_published_config_builds_through_the_registry(configs_dir, size):
    init_default_scope("mmseg")
    cfg = load(configs_dir, f"upernet_vit_{size}_supervised_ade20k_512x512_160k")
    with framework_patches(), mmseg_build_notices_off():  # as a run builds it
        model = MODELS.build(cfg.model)
    assert isinstance(model.backbone, PlainViT) and model.backbone.pretrained == cfg.model.pretrained
    assert type(model.neck).__name__ == "Feature2Pyramid" and type(model.decode_head).__name__ == "UPerHead"
    width = SIZES[size]["embed_dim"]
    assert model.decode_head.lateral_convs[0].conv.in_channels == width
    assert model.backbone.blocks[0].attn.rel_pos_h.shape == (2 * 512 // 16 - 1, width // SIZES[size]["num_heads"])
    assert sum(p.numel() for p in model.backbone.parameters()) > (80e6 if size == "b" else 300e6)


def test_demo_config_is_the_recipe_scaled_down(configs_dir):
    from mae_transfer.synthetic import SEMANTIC_CLASSES

    demo = load(configs_dir, "demo_tiny")
    published = load(configs_dir, "upernet_vit_b_mae_ade20k_512x512_160k")
    assert demo.train_dataloader.dataset.metainfo.classes == SEMANTIC_CLASSES
    assert demo.model.decode_head.num_classes == demo.model.auxiliary_head.num_classes == len(SEMANTIC_CLASSES)
    assert demo.optim_wrapper.type == "OptimWrapper"  # fp32 on CPU
    for key in ("constructor", "paramwise_cfg"):
        assert demo.optim_wrapper[key] == published.optim_wrapper[key]
    # the optimizer as published but for the lr, 10x at demo scale (the diagnostics' sweep)
    published_optimizer = published.optim_wrapper.optimizer
    assert demo.optim_wrapper.optimizer == {**published_optimizer, "lr": 10 * published_optimizer.lr}
    for part in ("neck", "decode_head", "auxiliary_head"):
        assert demo.model[part].type == published.model[part].type
    assert demo.model.backbone.type == "PlainViT" and demo.model.backbone.use_rel_pos
    assert demo.model.neck.norm_cfg.type == "BN"
