"""PlainViT: built by mmseg's registry, multi-level NCHW maps, zero rel-pos for every init, initial weights."""
import pytest
import torch

from segmentation import PlainViT


def test_registry_builds_segmentor_with_multilevel_backbone(build_segmentor, tiny_options):
    model = build_segmentor()
    assert isinstance(model.backbone, PlainViT)
    assert model.backbone.out_indices == (0, 1, 2, 3)
    features = model.backbone(torch.randn(2, 3, 128, 96))
    assert isinstance(features, tuple) and len(features) == 4
    assert all(f.shape == (2, tiny_options["model.backbone.embed_dim"], 16, 12) for f in features)  # patch 8
    pyramid = model.neck(features)  # Feature2Pyramid: strides 4, 8, 16, 32
    assert [p.shape[-2:] for p in pyramid] == [(32, 24), (16, 12), (8, 6), (4, 3)]
    assert model.decode_head(pyramid).shape == (2, 12, 32, 24)


def test_global_attention_and_zero_rel_pos_for_every_init(build_segmentor, mae_file):
    for pretrained in (None, str(mae_file)):
        model = build_segmentor(**{"model.pretrained": pretrained})
        model.init_weights()
        blocks = model.backbone.blocks
        assert all(b.window_size == 0 and b.attn.use_rel_pos for b in blocks)
        assert all(b.attn.rel_pos_h.abs().sum() == 0 and b.attn.rel_pos_w.abs().sum() == 0 for b in blocks)
    with pytest.raises(ValueError, match="globally"):
        PlainViT(embed_dim=32, depth=2, num_heads=2, window_size=14, window_block_indexes=(0,))


def test_init_weights_loads_the_configs_checkpoint_under_backbone_keys(build_segmentor, mae_file):
    """What mmengine's Runner calls before training: the config's ``model.pretrained`` lands in the segmentor as
    ``backbone.<MAE key>`` (the file formats themselves are tested in tests/backbone/test_checkpoint.py)."""
    state = torch.load(mae_file)["model"]
    model = build_segmentor(**{"model.pretrained": str(mae_file)})
    model.init_weights()
    loaded = model.state_dict()
    shared = [key for key in state if f"backbone.{key}" in loaded]
    assert len(shared) == len(model.backbone.load_report.loaded) == len(state) - 3  # cls token, final norm
    for key in shared:
        torch.testing.assert_close(loaded[f"backbone.{key}"], state[key], rtol=0, atol=0, msg=key)
