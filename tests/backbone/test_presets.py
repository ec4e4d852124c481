import pytest

from backbone import VIT_SIZES, ViT, vit_kwargs

# The registry is the one place sizes are written in code, so it is checked here against the papers, written out by
# hand: width, depth, heads (ViT paper, arXiv 2010.11929, Table 1; DeiT for tiny / small), ViTDet's drop path and
# global blocks (detectron2 projects/ViTDet configs; ViTDet paper Sec. 4), MAE's patch and 512 / 8 / 16 decoder
# (facebookresearch/mae models_mae.py). Every other test reads sizes from the registry.
PUBLISHED = {
    "vit_tiny":  (192, 12, 3, 0.1, (2, 5, 8, 11), 16),
    "vit_small": (384, 12, 6, 0.1, (2, 5, 8, 11), 16),
    "vit_base":  (768, 12, 12, 0.1, (2, 5, 8, 11), 16),
    "vit_large": (1024, 24, 16, 0.4, (5, 11, 17, 23), 16),
    "vit_huge":  (1280, 32, 16, 0.5, (7, 15, 23, 31), 14),
}


def test_the_registry_holds_the_published_sizes():
    assert {name: (s.width, s.depth, s.heads, s.drop_path, s.global_blocks, s.mae_patch)
            for name, s in VIT_SIZES.items()} == PUBLISHED
    assert {(s.patch, s.decoder_width, s.decoder_depth, s.decoder_heads) for s in VIT_SIZES.values()} == {
        (16, 512, 8, 16)}


def test_the_registry_is_read_only():
    with pytest.raises(TypeError):
        VIT_SIZES["vit_giant"] = VIT_SIZES["vit_huge"]
    with pytest.raises(AttributeError):
        VIT_SIZES["vit_base"].width = 1


def test_overrides_replace_preset_fields():
    kwargs = vit_kwargs("vit_base", img_size=512, drop_path_rate=0.0, attn_impl="explicit")
    base = VIT_SIZES["vit_base"]
    assert (kwargs["embed_dim"], kwargs["depth"], kwargs["num_heads"]) == (base.width, base.depth, base.heads)
    assert (kwargs["img_size"], kwargs["drop_path_rate"], kwargs["attn_impl"]) == (512, 0.0, "explicit")
    assert kwargs["window_block_indexes"] == (0, 1, 3, 4, 6, 7, 9, 10)


@pytest.mark.parametrize("name", ["grid", "drop_path", "self", "imgsize"])
def test_names_that_are_not_vit_arguments_are_refused(name):
    # "grid" and "drop_path" are local variables of ViT.__init__: only its signature counts
    with pytest.raises(ValueError, match=rf"unknown ViT argument\(s\) \['{name}'\] for preset 'vit_base'"):
        vit_kwargs("vit_base", **{name: 3})


def test_every_preset_field_is_a_vit_argument():
    ViT(**vit_kwargs("vit_tiny", img_size=64, depth=1))


def test_unknown_preset_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown ViT size 'vit_giant'"):
        vit_kwargs("vit_giant")
