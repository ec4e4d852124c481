"""The models the MAE speed benchmark compares: the official code and the "w/ [M]" ablation."""
import torch

from benchmarks.mae_variants import OfficialMAE, mask_tokens_in_encoder, official_mae
from pretrain import build_mae

TINY = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=2, decoder_embed_dim=32, decoder_depth=1,
            decoder_num_heads=2, norm_pix_loss=True)


def test_ours_equals_the_official_code_in_loss_predictions_and_gradients():
    torch.manual_seed(0)
    ours = build_mae("mae_vit_base_patch16", **TINY)
    official = official_mae("mae_vit_base_patch16", **TINY)
    assert isinstance(official, OfficialMAE)
    official.load_state_dict(ours.state_dict())  # same parameter names
    imgs = torch.randn(3, 3, 32, 32)
    results = []
    for model in (ours, official):
        torch.manual_seed(1)  # both draw the masking noise as torch.rand(N, L)
        loss, pred, mask = model(imgs, 0.75)
        loss.backward()
        results.append((loss, pred, mask, {n: p.grad for n, p in model.named_parameters() if p.requires_grad}))
    (loss_a, pred_a, mask_a, grads_a), (loss_b, pred_b, mask_b, grads_b) = results
    assert torch.equal(mask_a, mask_b) and mask_a.dtype == mask_b.dtype == torch.float32
    torch.testing.assert_close(pred_a, pred_b, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-6, atol=0)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-5, atol=1e-6, msg=name)


def test_mask_tokens_in_encoder_feeds_every_patch_through_the_encoder():
    seen = {}
    for name, model in (("visible", build_mae("mae_vit_base_patch16", **TINY)),
                        ("w/ [M]", mask_tokens_in_encoder("mae_vit_base_patch16", **TINY))):
        model.blocks[0].register_forward_hook(lambda m, args, out, n=name: seen.__setitem__(n, args[0].shape))
        model.decoder_blocks[0].register_forward_hook(
            lambda m, args, out, n=name: seen.__setitem__(n + " decoder", args[0].shape))
        loss, pred, mask = model(torch.randn(2, 3, 32, 32), 0.75, noise=torch.rand(2, 16))
        assert pred.shape == (2, 16, 192) and mask.sum() == 2 * 12 and torch.isfinite(loss)
        loss.backward()
        assert model.mask_token.grad.abs().sum() > 0
    assert seen["visible"] == (2, 1 + 4, 32) and seen["w/ [M]"] == (2, 1 + 16, 32)
    assert seen["visible decoder"] == seen["w/ [M] decoder"] == (2, 1 + 16, 32)
