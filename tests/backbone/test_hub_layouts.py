"""backbone.layouts: Hugging Face ViTMAE / ViT checkpoints and LayerScale (DeiT III) under timm / MAE names, checked
by outputs: transformers' model and timm's ViT loaded from the converted keys compute the same features."""
import pytest
import torch
from safetensors.torch import save_file
from timm.models.vision_transformer import VisionTransformer

from backbone import ViT, load_pretrained, read_state_dict
from backbone.layouts import fold_layer_scale, hf_to_timm, is_hf_layout, timm_to_hf

transformers = pytest.importorskip("transformers")

WIDTH, DEPTH, HEADS, PATCH, SIZE = 32, 2, 2, 8, 32
GRID = SIZE // PATCH


def hf_config(**overrides):
    return transformers.ViTMAEConfig(
        hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS, intermediate_size=4 * WIDTH,
        image_size=SIZE, patch_size=PATCH, decoder_hidden_size=16, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=2, decoder_intermediate_size=64, layer_norm_eps=1e-6, **overrides)


def randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Every parameter random (LayerNorms and biases too), so that a swapped or dropped tensor shows."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2 + (1.0 if p.ndim == 1 and p.shape[0] == WIDTH else 0.0))
    return model.eval()


def timm_vit(**overrides) -> VisionTransformer:
    kwargs = dict(img_size=SIZE, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS, num_classes=0)
    return VisionTransformer(**{**kwargs, **overrides}).eval()


def hf_features(model, images: torch.Tensor) -> torch.Tensor:
    """All tokens (cls first) after the final norm, unmasked and in image order (mask ratio 0, increasing noise)."""
    noise = torch.arange(GRID * GRID, dtype=torch.float32).expand(images.shape[0], -1)
    with torch.no_grad():
        return model(pixel_values=images, noise=noise).last_hidden_state


@pytest.mark.parametrize("cls", ["ViTMAEModel", "ViTMAEForPreTraining"])
def test_saved_hf_vitmae_computes_the_same_features_in_timm_and_loads_into_backbone_vit(tmp_path, cls):
    hf = randomized(getattr(transformers, cls)(hf_config(mask_ratio=0.0)))
    hf.save_pretrained(tmp_path)
    state = read_state_dict(tmp_path / "model.safetensors")
    encoder = {k: v for k, v in state.items() if not k.startswith(("decoder", "mask_token"))}

    reference = timm_vit()
    reference.load_state_dict(encoder, strict=True)  # every timm key, nothing left over
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        ours = reference.forward_features(images)
    vit = hf.vit if cls == "ViTMAEForPreTraining" else hf
    torch.testing.assert_close(ours, hf_features(vit, images), rtol=1e-4, atol=1e-5)

    dense = ViT(img_size=SIZE, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
                pretrain_img_size=SIZE, use_rel_pos=True)
    report = load_pretrained(dense, tmp_path / "model.safetensors", log=False)
    assert report.unexpected == [] and report.missing == report.missing_rel_pos
    for key, value in dense.state_dict().items():
        if key in encoder:
            torch.testing.assert_close(value, encoder[key], rtol=0, atol=0, msg=key)


def test_the_hub_release_and_transformers_5_layouts_convert_alike():
    """The Hub files (``vit.encoder.layer.N.attention.attention.query``, decoder ``decoder_layers``) and
    transformers 5's own module names (``vit.layers.N.attention.q_proj``) give the same timm / MAE tensors."""
    hf = randomized(transformers.ViTMAEForPreTraining(hf_config()))
    in_memory = hf.state_dict()  # transformers 5 names
    release = {}
    for key, value in in_memory.items():  # the layout of e.g. facebook/vit-mae-base, written out by hand
        for new, old in (("vit.layers.", "vit.encoder.layer."), ("attention.q_proj", "attention.attention.query"),
                         ("attention.k_proj", "attention.attention.key"), ("attention.v_proj", "attention.attention.value"),
                         ("attention.o_proj", "attention.output.dense"), ("mlp.fc1", "intermediate.dense"),
                         ("mlp.fc2", "output.dense")):
            key = key.replace(new, old)
        release[key] = value
    assert "vit.encoder.layer.0.attention.attention.query.weight" in release
    assert "decoder.decoder_layers.0.attention.output.dense.weight" in release
    assert "vit.encoder.layer.1.output.dense.bias" in release and is_hf_layout(release)
    from_memory, from_release = hf_to_timm(in_memory), hf_to_timm(release)
    assert from_memory.keys() == from_release.keys()
    assert all(torch.equal(from_memory[k], from_release[k]) for k in from_memory)
    from pretrain import MaskedAutoencoderViT
    mae = MaskedAutoencoderViT(img_size=SIZE, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
                               decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    assert set(from_release) == set(mae.state_dict())  # exactly the official names, decoder included


def test_encoder_written_in_the_hub_layout_converts_back_unchanged(mae_release_state):
    state = mae_release_state(width=WIDTH, depth=DEPTH, patch=PATCH, grid=GRID)
    hf = timm_to_hf(state)
    assert "encoder.layer.1.attention.attention.value.bias" in hf and "layernorm.weight" in hf
    back = hf_to_timm(hf)
    assert back.keys() == state.keys() and all(torch.equal(back[k], state[k]) for k in state)
    prefixed = timm_to_hf(state, prefix="vit.")
    assert all(k.startswith("vit.") for k in prefixed) and hf_to_timm(prefixed).keys() == state.keys()


def test_hf_vit_image_classifier_keeps_its_head_under_the_timm_name(tmp_path):
    config = transformers.ViTConfig(hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
                                    intermediate_size=4 * WIDTH, image_size=SIZE, patch_size=PATCH, num_labels=5,
                                    layer_norm_eps=1e-6)
    hf = randomized(transformers.ViTForImageClassification(config))
    hf.save_pretrained(tmp_path)
    state = read_state_dict(tmp_path / "model.safetensors")
    reference = timm_vit(num_classes=5)
    reference.load_state_dict(state, strict=True)
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(reference(images), hf(pixel_values=images).logits, rtol=1e-4, atol=1e-5)


def test_layer_scale_folds_into_the_projections_with_the_same_outputs(tmp_path):
    """A DeiT III-style ViT (LayerScale, no position embedding on the class token) and the same weights folded
    into a ViT without LayerScale compute the same; the dense backbone reads the folded file."""
    torch.manual_seed(0)
    deit3 = timm_vit(init_values=0.1, no_embed_class=True, num_classes=4)
    with torch.no_grad():
        for name, p in deit3.named_parameters():
            if name.endswith("gamma"):
                p.copy_(torch.rand_like(p) + 0.1)
    state = deit3.state_dict()
    assert any(k.endswith("ls1.gamma") for k in state)
    folded = fold_layer_scale(state)
    assert not any("gamma" in k for k in folded)
    plain = timm_vit(no_embed_class=True, num_classes=4)
    plain.load_state_dict(folded, strict=True)
    images = torch.randn(2, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(plain(images), deit3(images), rtol=1e-4, atol=1e-5)

    save_file(state, tmp_path / "deit3.safetensors")
    dense = ViT(img_size=SIZE, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
                pretrain_img_size=SIZE)
    report = load_pretrained(dense, tmp_path / "deit3.safetensors", log=False)
    assert report.unexpected == [] and report.missing == []
    torch.testing.assert_close(dense.state_dict()["blocks.1.mlp.fc2.weight"], folded["blocks.1.mlp.fc2.weight"])
