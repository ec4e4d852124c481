"""Both registration paths build the backbone; its keys are detectron2 ViTDet's, so ViTDet detectors load exactly."""
import pickle

import pytest
import torch
from detectron2 import model_zoo
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.modeling import Backbone, build_model

import detection.yacs_backbone as vitdet
from backbone import CheckpointError
from detection.vitdet import ViTDetBackbone
from detection.weights import load_initial_weights

from tests.detection.conftest import CONFIGS
WIDTH, DEPTH, HEADS = 32, 2, 2
TINY_NET = dict(embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, window_block_indexes=[0], img_size=128,
                window_size=4, drop_path_rate=0.0)


def lazy_model(**net):
    cfg = LazyConfig.load(str(CONFIGS / "mask_rcnn_vit_b_mae.py"))
    cfg.model.backbone.net.update(TINY_NET | net)
    cfg.model.backbone.square_pad = 128
    return instantiate(cfg.model).eval()


def detectron2_vitdet(**net):
    """detectron2's own ViTDet Mask R-CNN (its ViT and SimpleFeaturePyramid) at the same sizes."""
    cfg = model_zoo.get_config("common/models/mask_rcnn_vitdet.py")
    cfg.model.backbone.net.update(TINY_NET | net)
    cfg.model.backbone.square_pad = 128
    return instantiate(cfg.model).eval()


def yacs_cfg():
    cfg = get_cfg()
    vitdet.add_vit_config(cfg)
    cfg.merge_from_file(str(CONFIGS / "yacs_mask_rcnn_vit_b.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    return cfg


def assert_pyramid(features: dict, height: int, width: int):
    assert list(features) == ["p2", "p3", "p4", "p5", "p6"]
    for level, stride in zip(features, (4, 8, 16, 32, 64)):
        assert features[level].shape == (1, 256, -(-height // stride), -(-width // stride)), level


def test_lazyconfig_backbone_is_a_detectron2_backbone_with_p2_to_p6():
    backbone = lazy_model().backbone
    assert isinstance(backbone, ViTDetBackbone) and isinstance(backbone, Backbone)
    assert {k: (v.channels, v.stride) for k, v in backbone.output_shape().items()} == {
        "p2": (256, 4), "p3": (256, 8), "p4": (256, 16), "p5": (256, 32), "p6": (256, 64)}
    assert backbone.padding_constraints == {"size_divisibility": backbone.size_divisibility}
    assert backbone.size_divisibility in (32, 64)
    with torch.no_grad():  # padded to the 128-px square as detectron2's ImageList pads it
        assert_pyramid(backbone(torch.randn(1, 3, 64, 128)), 128, 128)


def test_yacs_builds_the_same_model_as_the_lazyconfig(mae_file, mae_release_state):
    cfg = yacs_cfg()
    lazy = LazyConfig.load(str(CONFIGS / "mask_rcnn_vit_b_mae.py")).model.backbone
    v = cfg.MODEL.VIT
    assert (v.EMBED_DIM, v.DEPTH, v.NUM_HEADS, v.DROP_PATH_RATE, v.WINDOW_SIZE, v.IMG_SIZE, v.SQUARE_PAD) == (
        lazy.net.embed_dim, lazy.net.depth, lazy.net.num_heads, lazy.net.drop_path_rate, lazy.net.window_size,
        lazy.net.img_size, lazy.square_pad)
    assert list(v.WINDOW_BLOCK_INDEXES) == list(lazy.net.window_block_indexes)

    v.EMBED_DIM, v.DEPTH, v.NUM_HEADS, v.WINDOW_BLOCK_INDEXES = WIDTH, DEPTH, HEADS, [0]
    v.IMG_SIZE, v.WINDOW_SIZE, v.SQUARE_PAD, v.DROP_PATH_RATE = 128, 4, 128, 0.0
    v.PRETRAINED = str(mae_file)
    yacs = build_model(cfg).eval()
    assert type(yacs.backbone) is ViTDetBackbone
    ours = lazy_model()
    assert {k: v.shape for k, v in yacs.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}
    with torch.no_grad():
        assert_pyramid(yacs.backbone(torch.randn(1, 3, 96, 64)), 128, 128)
    torch.testing.assert_close(yacs.backbone.net.blocks[1].attn.qkv.weight,
                               mae_release_state()["blocks.1.attn.qkv.weight"],
                               rtol=0, atol=0)  # MODEL.VIT.PRETRAINED went through backbone.load_pretrained

    optimizer = vitdet.build_optimizer(cfg, yacs)
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    net, lr = yacs.backbone.net, cfg.SOLVER.BASE_LR
    assert group_of[id(net.patch_embed.proj.weight)]["lr"] == pytest.approx(lr * 0.7 ** (DEPTH + 1))
    assert group_of[id(net.blocks[0].attn.qkv.weight)]["lr"] == pytest.approx(lr * 0.7 ** DEPTH)
    assert group_of[id(yacs.roi_heads.box_predictor.cls_score.weight)]["lr"] == pytest.approx(lr)
    assert group_of[id(net.pos_embed)]["weight_decay"] == group_of[id(net.blocks[0].norm1.weight)]["weight_decay"] == 0
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["betas"] == (0.9, 0.999)


def test_keys_are_detectron2_vitdet_keys_and_its_model_final_loads_exactly(tmp_path):
    theirs, ours = detectron2_vitdet(), lazy_model()
    state = theirs.state_dict()
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in ours.state_dict().items()}
    assert any(k.startswith("backbone.net.blocks.0.attn.rel_pos_h") for k in state)
    assert any(k.startswith("backbone.simfp_2.") for k in state)

    # A model-zoo model_final: numpy arrays in a pickle, as detectron2 publishes ViTDet's.
    path = tmp_path / "model_final_vitdet.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "test"}, f)
    assert load_initial_weights(ours, str(path), detector_only=True) == "detector"
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0, msg=key)

    image = [{"image": torch.rand(3, 96, 128) * 255, "height": 96, "width": 128}]
    with torch.no_grad():
        features = [m.backbone(m.preprocess_image(image).tensor) for m in (theirs, ours)]
    for level in features[0]:
        torch.testing.assert_close(features[1][level], features[0][level], rtol=1e-4, atol=1e-4, msg=level)


def test_detector_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "model_final_deeper.pth"
    torch.save({"model": detectron2_vitdet(depth=DEPTH + 1).state_dict()}, path)
    with pytest.raises(CheckpointError, match=r"another architecture.*blocks\.2"):
        load_initial_weights(lazy_model(), str(path))
