import pytest
import torch

from backbone import SimpleFeaturePyramid, ViT


def tiny_pyramid(**overrides) -> SimpleFeaturePyramid:
    net = ViT(img_size=128, patch_size=16, embed_dim=32, depth=2, num_heads=2, pretrain_img_size=64)
    return SimpleFeaturePyramid(net, out_channels=16, **overrides).eval()


@pytest.mark.parametrize("height,width", [(128, 128), (64, 192)])
def test_levels_p2_to_p6_have_strides_4_to_64(height, width):
    pyramid = tiny_pyramid()
    with torch.no_grad():
        features = pyramid(torch.randn(2, 3, height, width))
    assert list(features) == ["p2", "p3", "p4", "p5", "p6"]
    assert pyramid._out_feature_strides == {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    for name, stride in pyramid._out_feature_strides.items():
        assert features[name].shape == (2, 16, -(-height // stride), -(-width // stride)), name
    assert pyramid.size_divisibility == 32  # detectron2's: p6 is a max-pool of p5


def test_without_top_block_the_pyramid_stops_at_p5():
    pyramid = tiny_pyramid(top_block=False)
    with torch.no_grad():
        features = pyramid(torch.randn(1, 3, 64, 64))
    assert list(features) == ["p2", "p3", "p4", "p5"]
    assert pyramid.size_divisibility == 32


def test_keys_equal_detectron2_simple_feature_pyramid():
    vit = pytest.importorskip("detectron2.modeling.backbone.vit")
    fpn = pytest.importorskip("detectron2.modeling.backbone.fpn")
    ours = tiny_pyramid()
    net = vit.ViT(img_size=128, patch_size=16, embed_dim=32, depth=2, num_heads=2, pretrain_img_size=64)
    theirs = vit.SimpleFeaturePyramid(net, "last_feat", 16, (4.0, 2.0, 1.0, 0.5),
                                      top_block=fpn.LastLevelMaxPool(), norm="LN")
    assert set(ours.state_dict()) == set(theirs.state_dict())
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_unsupported_scale_is_one_clear_error():
    with pytest.raises(ValueError, match="scale factor 3.0 is not supported"):
        tiny_pyramid(scale_factors=(3.0,))


def test_pyramid_norms_hand_the_next_conv_contiguous_maps_with_timm_values():
    from timm.layers import LayerNorm2d as TimmLayerNorm2d

    from backbone.pyramid import LayerNorm2d
    torch.manual_seed(0)
    ours, timm_norm = LayerNorm2d(8), TimmLayerNorm2d(8)
    for norm in (ours, timm_norm):
        norm.weight.data.copy_(torch.linspace(0.5, 2.0, 8))
        norm.bias.data.copy_(torch.linspace(-1.0, 1.0, 8))
    x = torch.randn(2, 8, 5, 7)
    out = ours(x)
    assert out.is_contiguous()  # timm's own leaves channels-last strides, on which conv backward is slow on CPU
    torch.testing.assert_close(out, timm_norm(x))
    convs_after_norm = [m for m in tiny_pyramid().modules() if isinstance(m, torch.nn.Conv2d) and
                        isinstance(getattr(m, "norm", None), LayerNorm2d)]
    assert len(convs_after_norm) == 8  # a 1x1 and a 3x3 conv per level, each normed by the contiguous kind
