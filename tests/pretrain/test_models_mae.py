"""MaskedAutoencoderViT against the MAE paper (arXiv 2111.06377, Sec. 3; docs/recipes.md §1), the official key
names and Hugging Face's ViTMAE."""
import math

import numpy as np
import pytest
import torch

from pretrain import MaskedAutoencoderViT, build_mae, get_2d_sincos_pos_embed


def tiny(**kwargs) -> MaskedAutoencoderViT:
    args = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32,
                decoder_depth=1, decoder_num_heads=2)
    return MaskedAutoencoderViT(**{**args, **kwargs})


@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.75, 0.9])
def test_masking_keeps_int_l_times_one_minus_ratio_per_sample(ratio):
    model = tiny()
    x = torch.randn(5, 16, 7)
    kept, mask, ids_restore = model.random_masking(x, ratio)
    keep = int(16 * (1 - ratio))
    assert kept.shape == (5, keep, 7)
    assert (mask.sum(1) == 16 - keep).all()
    # the kept tokens are the unmasked ones, in shuffled order
    for n in range(5):
        visible = x[n][mask[n] == 0]
        assert sorted(map(tuple, visible.tolist())) == sorted(map(tuple, kept[n].tolist()))


def test_ids_restore_inverts_the_shuffle_and_the_mask_follows_the_noise():
    model = tiny()
    torch.manual_seed(0)
    noise = torch.rand(3, 16)
    x = torch.arange(16.0).view(1, 16, 1).expand(3, -1, -1)
    kept, mask, ids_restore = model.random_masking(x, 0.75, noise)
    ids_shuffle = torch.argsort(noise, dim=1)
    assert torch.equal(torch.gather(ids_shuffle, 1, ids_restore), torch.arange(16).expand(3, -1))
    # the 4 smallest-noise patches stay, the rest are removed (mask 1)
    expected = torch.ones(3, 16)
    expected.scatter_(1, noise.topk(4, largest=False).indices, 0)
    assert torch.equal(mask, expected)
    assert torch.equal(kept[..., 0].sort(1).values, noise.topk(4, largest=False).indices.sort(1).values.float())
    # same noise, same mask through the whole model; other noise, another mask
    imgs = torch.randn(3, 3, 32, 32)
    _, _, mask_a = model(imgs, 0.75, noise=noise)
    _, _, mask_b = model(imgs, 0.75, noise=noise.clone())
    _, _, mask_c = model(imgs, 0.75, noise=torch.rand(3, 16))
    assert torch.equal(mask_a, expected) and torch.equal(mask_a, mask_b) and not torch.equal(mask_a, mask_c)


def test_patchify_unpatchify_round_trip_and_layout():
    model = tiny(in_chans=3)
    imgs = torch.randn(2, 3, 32, 32)
    patches = model.patchify(imgs)
    assert patches.shape == (2, 16, 8 * 8 * 3)
    assert torch.equal(model.unpatchify(patches), imgs)
    # patch (row 1, column 2) holds that 8x8 block, flattened as (row, column, channel)
    block = imgs[:, :, 8:16, 16:24].permute(0, 2, 3, 1).reshape(2, -1)
    assert torch.equal(patches[:, 1 * 4 + 2], block)


def test_loss_is_mse_over_masked_patches_only_and_norm_pix_formula():
    torch.manual_seed(0)
    imgs = torch.randn(2, 3, 32, 32)
    for norm_pix in (False, True):
        model = tiny(norm_pix_loss=norm_pix)
        pred = torch.randn(2, 16, 192)
        mask = (torch.rand(2, 16) > 0.5).float()
        target = model.patchify(imgs)
        if norm_pix:  # each patch by its own mean and (unbiased) variance, eps 1e-6
            n = target.shape[-1]
            mean = target.sum(-1, keepdim=True) / n
            var = ((target - mean) ** 2).sum(-1, keepdim=True) / (n - 1)
            target = (target - mean) / torch.sqrt(var + 1e-6)
        expected = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
        loss = model.forward_loss(imgs, pred, mask)
        assert torch.allclose(loss, expected, rtol=1e-6)
        # predictions on visible patches do not matter, on removed ones they do
        changed = pred + 10 * (1 - mask).unsqueeze(-1)
        assert torch.allclose(model.forward_loss(imgs, changed, mask), loss, rtol=1e-6)
        changed = pred + 10 * mask.unsqueeze(-1)
        assert not torch.allclose(model.forward_loss(imgs, changed, mask), loss)


def test_sincos_embedding_values():
    # embed_dim 4, 2x2 grid: one frequency (1.0) per half; the first half follows the column (w), the second
    # the row (h), rows in row-major (h, w) order, as the official code builds it
    s, c = math.sin(1.0), math.cos(1.0)
    expected = np.array([[0, 1, 0, 1], [s, c, 0, 1], [0, 1, s, c], [s, c, s, c]])
    assert np.allclose(get_2d_sincos_pos_embed(4, 2), expected, atol=1e-7)
    with_cls = get_2d_sincos_pos_embed(8, 3, cls_token=True)
    assert with_cls.shape == (10, 8) and not with_cls[0].any()
    # frequencies 1 / 10000^(2i/D) for D = 8: the 1-D halves of width 4 use omega = (1, 1/100)
    row = with_cls[1 + 1 * 3 + 2]  # h = 1, w = 2
    assert np.allclose(row, [math.sin(2), math.sin(0.02), math.cos(2), math.cos(0.02),
                             math.sin(1), math.sin(0.01), math.cos(1), math.cos(0.01)], atol=1e-6)


def test_model_embeddings_are_fixed_sincos_and_match_hugging_face():
    from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding
    model = tiny(decoder_embed_dim=64)
    assert not model.pos_embed.requires_grad and not model.decoder_pos_embed.requires_grad
    for ours, dim in ((model.pos_embed, 32), (model.decoder_pos_embed, 64)):
        # Hugging Face builds the canonical (h, w) layout and swaps the halves to the official (w, h) one
        hf = build_2d_sinusoidal_position_embedding(height=4, width=4, embed_dim=dim, cls_token=True)
        hf = torch.cat([hf[..., dim // 2:], hf[..., :dim // 2]], dim=-1)
        assert torch.allclose(ours[0], hf.float(), atol=1e-6)


def test_parameter_names_are_the_official_ones():
    model = tiny()
    block = ["norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"]
    encoder = {"cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight",
               "norm.bias"} | {f"blocks.{i}.{m}.{p}" for i in range(2) for m in block for p in ("weight", "bias")}
    decoder = {"mask_token", "decoder_pos_embed", "decoder_embed.weight", "decoder_embed.bias",
               "decoder_norm.weight", "decoder_norm.bias", "decoder_pred.weight", "decoder_pred.bias"} | {
        f"decoder_blocks.0.{m}.{p}" for m in block for p in ("weight", "bias")}
    assert set(model.state_dict()) == encoder | decoder
    assert model.norm.eps == 1e-6 and model.blocks[0].norm1.eps == 1e-6


def test_initialisation():
    torch.manual_seed(0)
    model = build_mae("mae_vit_small_patch16", img_size=64, depth=1, decoder_depth=1)
    w = model.patch_embed.proj.weight.view(384, -1)  # xavier-uniform of the conv viewed as a Linear
    assert w.abs().max() <= math.sqrt(6 / (w.shape[0] + w.shape[1]))
    assert w.abs().max() > 0.9 * math.sqrt(6 / (w.shape[0] + w.shape[1]))
    qkv = model.blocks[0].attn.qkv
    assert qkv.weight.abs().max() <= math.sqrt(6 / sum(qkv.weight.shape)) and not qkv.bias.any()
    assert abs(model.cls_token.std().item() - 0.02) < 0.004 and abs(model.mask_token.std().item() - 0.02) < 0.004


def test_matches_hugging_face_vitmae_given_the_same_weights_and_noise():
    """An independent implementation of the same method gives the same loss and predictions."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining
    torch.manual_seed(0)
    ours = tiny(norm_pix_loss=True).eval()
    hf = ViTMAEForPreTraining(ViTMAEConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, image_size=32,
        patch_size=8, decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
        decoder_intermediate_size=128, norm_pix_loss=True, layer_norm_eps=1e-6, mask_ratio=0.75)).eval()
    sd = ours.state_dict()
    mapped = {"vit.embeddings.cls_token": sd["cls_token"], "vit.embeddings.position_embeddings": sd["pos_embed"],
              "vit.embeddings.patch_embeddings.projection.weight": sd["patch_embed.proj.weight"],
              "vit.embeddings.patch_embeddings.projection.bias": sd["patch_embed.proj.bias"],
              "vit.layernorm.weight": sd["norm.weight"], "vit.layernorm.bias": sd["norm.bias"]}
    for k in ("mask_token", "decoder_pos_embed", "decoder_embed.weight", "decoder_embed.bias", "decoder_norm.weight",
              "decoder_norm.bias", "decoder_pred.weight", "decoder_pred.bias"):
        mapped[f"decoder.{k}"] = sd[k]
    for ours_prefix, hf_prefix in [(f"blocks.{i}", f"vit.layers.{i}") for i in range(2)] + [
            ("decoder_blocks.0", "decoder.decoder_layers.0")]:
        for p in ("weight", "bias"):
            for name, value in zip("qkv", sd[f"{ours_prefix}.attn.qkv.{p}"].chunk(3)):
                mapped[f"{hf_prefix}.attention.{name}_proj.{p}"] = value
            mapped[f"{hf_prefix}.attention.o_proj.{p}"] = sd[f"{ours_prefix}.attn.proj.{p}"]
            mapped[f"{hf_prefix}.layernorm_before.{p}"] = sd[f"{ours_prefix}.norm1.{p}"]
            mapped[f"{hf_prefix}.layernorm_after.{p}"] = sd[f"{ours_prefix}.norm2.{p}"]
            mapped[f"{hf_prefix}.mlp.fc1.{p}"] = sd[f"{ours_prefix}.mlp.fc1.{p}"]
            mapped[f"{hf_prefix}.mlp.fc2.{p}"] = sd[f"{ours_prefix}.mlp.fc2.{p}"]
    assert set(mapped) == set(hf.state_dict())
    hf.load_state_dict(mapped)
    imgs, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    with torch.no_grad():
        loss, pred, mask = ours(imgs, 0.75, noise=noise)
        out = hf(pixel_values=imgs, noise=noise)
    assert torch.equal(mask, out.mask)
    assert torch.allclose(pred, out.logits, atol=1e-5)
    assert torch.allclose(loss, out.loss, rtol=1e-5)


def test_unshuffle_puts_kept_tokens_back_and_mask_tokens_in_the_gaps():
    model = tiny()
    noise = torch.rand(2, 16)
    ids_shuffle = torch.argsort(noise, dim=1)
    _, mask, ids_restore = model.random_masking(torch.zeros(2, 16, 1), 0.75, noise)
    encoded = torch.randn(2, 1 + 4, 32)  # cls + the 4 kept patches in shuffled order
    full = model.unshuffle(encoded, ids_restore)
    assert full.shape == (2, 1 + 16, 32)
    assert torch.equal(full[:, 0], encoded[:, 0])
    for n in range(2):
        for rank, patch in enumerate(ids_shuffle[n, :4].tolist()):
            assert torch.equal(full[n, 1 + patch], encoded[n, 1 + rank])
        assert torch.equal(full[n, 1:][mask[n] == 1], model.mask_token[0].expand(12, -1))


def test_bad_arguments_are_one_clear_error():
    model = tiny()
    for ratio in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="mask_ratio"):
            model(torch.randn(1, 3, 32, 32), ratio)
    with pytest.raises(ValueError, match="noise must have shape"):
        model(torch.randn(2, 3, 32, 32), 0.75, noise=torch.rand(2, 15))
    with pytest.raises(ValueError, match="does not divide img_size"):
        tiny(img_size=30)
    with pytest.raises(ValueError, match="unknown model 'mae_vit_gigantic_patch16'"):
        build_mae("mae_vit_gigantic_patch16")
