import pytest

from backbone import ViT, vit_kwargs


def test_overrides_replace_preset_fields():
    kwargs = vit_kwargs("vit_base", img_size=512, drop_path_rate=0.0, attn_impl="explicit")
    assert (kwargs["embed_dim"], kwargs["depth"], kwargs["num_heads"]) == (768, 12, 12)
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
