import pytest
import torch

from backbone import ViT, abs_pos_for_grid, vit_kwargs


def tiny_vit(**overrides) -> ViT:
    kwargs = dict(img_size=64, patch_size=16, embed_dim=32, depth=2, num_heads=2, pretrain_img_size=64)
    kwargs.update(overrides)
    return ViT(**kwargs).eval()


def randomize_rel_pos(model: ViT) -> None:
    for block in model.blocks:
        torch.nn.init.normal_(block.attn.rel_pos_h, std=0.5)
        torch.nn.init.normal_(block.attn.rel_pos_w, std=0.5)


def test_window_covering_the_grid_equals_global_attention():
    torch.manual_seed(0)
    windowed = tiny_vit(use_rel_pos=True, window_size=4, window_block_indexes=(0, 1))  # 64 / 16 = 4x4 grid
    randomize_rel_pos(windowed)
    global_ = tiny_vit(use_rel_pos=True)
    global_.load_state_dict(windowed.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(windowed(x)[-1], global_(x)[-1])


def test_windows_see_less_than_global_attention():
    torch.manual_seed(0)
    windowed = tiny_vit(window_size=2, window_block_indexes=(0, 1))
    global_ = tiny_vit()
    global_.load_state_dict(windowed.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(windowed(x)[-1], global_(x)[-1], atol=1e-4)


def test_window_padding_handles_grids_the_window_does_not_divide():
    torch.manual_seed(0)
    model = tiny_vit(use_rel_pos=True, window_size=3, window_block_indexes=(0,))
    x = torch.randn(1, 3, 80, 112)  # 5 x 7 grid, windows of 3 need padding on both axes
    with torch.no_grad():
        out = model(x)[-1]
    assert out.shape == (1, 32, 5, 7)
    assert torch.isfinite(out).all()


def test_window_partition_pads_with_the_fill_token_and_sends_its_gradient_back():
    from timm.models.vision_transformer_sam import window_partition

    from backbone.vit import partition_windows
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 4, dtype=torch.float64, requires_grad=True)
    fill = torch.randn(4, dtype=torch.float64, requires_grad=True)
    windows, pad_hw = partition_windows(x, 3, fill)
    # reference: timm's partition of the grid padded to 6 x 9 with the fill token
    padded = fill.expand(2, 6, 9, 4).clone()
    padded[:, :5, :7] = x
    expected, expected_hw = window_partition(padded, 3)
    assert pad_hw == expected_hw == (6, 9)
    torch.testing.assert_close(windows, expected)
    grad = torch.randn_like(windows)
    got = torch.autograd.grad(windows, (x, fill), grad)
    torch.testing.assert_close(got, torch.autograd.grad(expected, (x, fill), grad))
    divisible = x[:, :3, :6]  # no padding: exactly timm's windows
    torch.testing.assert_close(partition_windows(divisible, 3, None)[0], window_partition(divisible, 3)[0])


def test_zero_initialised_rel_pos_leaves_outputs_unchanged():
    torch.manual_seed(0)
    with_rel = tiny_vit(use_rel_pos=True, window_size=2, window_block_indexes=(0,))
    without = tiny_vit(use_rel_pos=False, window_size=2, window_block_indexes=(0,))
    result = without.load_state_dict(with_rel.state_dict(), strict=False)
    assert sorted(result.unexpected_keys) == sorted(k for k in with_rel.state_dict() if "rel_pos" in k)
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(with_rel(x)[-1], without(x)[-1])
        randomize_rel_pos(with_rel)
        assert not torch.allclose(with_rel(x)[-1], without(x)[-1], atol=1e-4)


def test_pos_embed_resize_at_the_same_size_is_the_identity():
    pos = torch.randn(1, 1 + 14 * 14, 8)
    torch.testing.assert_close(abs_pos_for_grid(pos, True, (14, 14)), pos[:, 1:].reshape(1, 14, 14, 8),
                               rtol=0, atol=0)


def test_pos_embed_resize_drops_cls_and_reaches_non_square_grids():
    grid = torch.linspace(0, 1, 14)
    smooth = (grid[:, None] + 2 * grid[None, :]).reshape(1, 196, 1)  # a plane: bicubic keeps it a plane
    pos = torch.cat([torch.full((1, 1, 1), 99.0), smooth], dim=1)
    resized = abs_pos_for_grid(pos, True, (28, 7))
    assert resized.shape == (1, 28, 7, 1)
    assert resized.max() <= 3.0 + 1e-3  # the cls row (99) was not mixed in
    assert resized[0, -1, -1, 0] > resized[0, 0, 0, 0]


def test_out_indices_return_intermediate_blocks():
    torch.manual_seed(0)
    model = tiny_vit(depth=4, out_indices=(1, 3))
    last_only = tiny_vit(depth=4)
    last_only.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = model(x)
        torch.testing.assert_close(maps[-1], last_only(x)[-1])
    assert [m.shape for m in maps] == [(1, 32, 4, 4)] * 2
    assert not torch.allclose(maps[0], maps[1])


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = tiny_vit(use_rel_pos=True).train()
    ckpt = tiny_vit(use_rel_pos=True, use_act_checkpoint=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    for model in (plain, ckpt):
        model(x)[-1].square().mean().backward()
    for (name, a), (_, b) in zip(plain.named_parameters(), ckpt.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_keys_and_outputs_equal_detectron2_vit():
    vit_module = pytest.importorskip("detectron2.modeling.backbone.vit")
    torch.manual_seed(0)
    kwargs = vit_kwargs("vit_tiny", img_size=128, depth=4, window_size=4, window_block_indexes=(0, 2),
                        drop_path_rate=0.0)
    ours = ViT(**kwargs).eval()
    randomize_rel_pos(ours)
    theirs = vit_module.ViT(**kwargs, norm_layer=ours.blocks[0].norm1.__class__).eval()
    for block in theirs.blocks:  # detectron2's default LayerNorm eps differs from ViTDet's configs (1e-6)
        block.norm1.eps = block.norm2.eps = 1e-6
    assert set(ours.state_dict()) == set(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[-1], theirs(x)["last_feat"], atol=1e-4, rtol=1e-4)


def test_bad_sizes_are_one_clear_error():
    with pytest.raises(ValueError, match="patch_size 16 must divide img_size 100"):
        tiny_vit(img_size=100)


def test_arch_names_follow_the_presets():
    from backbone import VIT_SIZES, arch_name
    base, tiny = VIT_SIZES["vit_base"], VIT_SIZES["vit_tiny"]
    assert arch_name(base.width, base.depth) == "vit_base"
    assert arch_name(tiny.width, 4) == "vit_tiny_d4"
    assert arch_name(100, 3) == "vit_w100_d3"


def timm_reference_blocks(model: ViT) -> ViT:
    """A copy of ``model`` whose blocks are timm's SAM ``Block`` and ``Attention`` as they are (the dense-mask
    SDPA path; window padding before ``qkv``)."""
    import copy

    from benchmarks.backbone_speed import as_timm_sam
    reference = copy.deepcopy(model)
    for block in reference.blocks:
        as_timm_sam(block)
    return reference


@pytest.mark.parametrize("impl", ["explicit", "sdpa", "chunked"])
def test_attention_impls_equal_timm_sam_attention_in_outputs_and_gradients(impl):
    torch.manual_seed(0)
    # a 5 x 7 grid: global blocks interpolate the 4 x 4 tables, the window block pads to 6 x 9 (three-wide windows)
    model = tiny_vit(use_rel_pos=True, depth=3, window_size=3, window_block_indexes=(1,), attn_impl=impl).train()
    randomize_rel_pos(model)
    reference = timm_reference_blocks(model)
    x = torch.randn(2, 3, 80, 112)
    for m in (model, reference):
        m(x)[-1].square().mean().backward()
    torch.testing.assert_close(model(x)[-1], reference(x)[-1], atol=1e-5, rtol=1e-5)
    for (name, a), (_, b) in zip(model.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-4, msg=name)
    assert model.blocks[0].attn.rel_pos_h.grad.abs().sum() > 0  # the relative position is trained


@pytest.mark.skipif(not torch.cuda.is_available(), reason="FlexAttention has no backward on CPU (torch 2.14)")
def test_flex_attention_equals_timm_sam_attention_on_gpu():
    torch.manual_seed(0)
    model = tiny_vit(use_rel_pos=True, attn_impl="flex").cuda().train()
    randomize_rel_pos(model)
    reference = timm_reference_blocks(model)
    x = torch.randn(2, 3, 64, 64, device="cuda")
    for m in (model, reference):
        m(x)[-1].square().mean().backward()
    torch.testing.assert_close(model(x)[-1], reference(x)[-1], atol=1e-4, rtol=1e-4)
    for (name, a), (_, b) in zip(model.named_parameters(), reference.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-4, rtol=1e-3, msg=name)


@pytest.mark.parametrize("impl", ["sdpa", "chunked"])
def test_attention_keeps_no_token_by_token_tensor_for_backward(impl):
    torch.manual_seed(0)
    tokens = 8 * 8
    model = tiny_vit(img_size=128, use_rel_pos=True, depth=1, attn_impl=impl).train()
    shapes = []

    def pack(t):
        shapes.append(tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(torch.randn(1, 3, 128, 128))
    assert not [s for s in shapes if s.count(tokens) >= 2]  # timm's dense mask and explicit logits are N x N


def test_chunked_attention_equals_explicit_across_chunk_boundaries_and_without_grad():
    from backbone.attention import explicit_attention
    from backbone.chunked_attention import chunked_attention
    torch.manual_seed(0)
    B, heads, H, W, C = 2, 3, 5, 7, 8
    q, k, v = (torch.randn(B, heads, H * W, C, dtype=torch.float64, requires_grad=True) for _ in range(3))
    rel_h = torch.randn(B, heads, H, W, H, dtype=torch.float64, requires_grad=True)
    rel_w = torch.randn(B, heads, H, W, W, dtype=torch.float64, requires_grad=True)
    inputs = (q, k, v, rel_h, rel_w)
    grad_out = torch.randn(B, heads, H * W, C, dtype=torch.float64)
    reference = explicit_attention(*inputs, scale=C ** -0.5)
    expected = torch.autograd.grad(reference, inputs, grad_out)
    for chunk in (1, 6, 35, 64):  # one row, a last chunk of 5, exactly N, more than N
        out = chunked_attention(*inputs, scale=C ** -0.5, chunk=chunk)
        torch.testing.assert_close(out, reference)
        for name, got, want in zip("q k v rel_h rel_w".split(), torch.autograd.grad(out, inputs, grad_out), expected):
            torch.testing.assert_close(got, want, msg=f"chunk {chunk}: d{name}")
    with torch.no_grad():
        torch.testing.assert_close(chunked_attention(*inputs, scale=C ** -0.5, chunk=6), reference.detach())
    with pytest.raises(ValueError, match="'chunked' has no attention dropout"):
        chunked_attention(*inputs, scale=C ** -0.5, dropout_p=0.1)


def test_auto_attention_on_cpu_is_explicit_in_windows_and_chunked_in_global_blocks():
    from backbone.attention import attention_impl
    cpu = torch.device("cpu")
    assert attention_impl(cpu, tokens=14 * 14) == "explicit"
    assert attention_impl(cpu, tokens=32 * 32) == "chunked"
    assert attention_impl(cpu, dropout_p=0.1, tokens=32 * 32) == "sdpa"  # chunked has no attention dropout
    assert attention_impl(torch.device("cuda"), tokens=32 * 32) == "sdpa"


def test_unknown_attention_impl_is_one_clear_error():
    with pytest.raises(ValueError, match="attn_impl must be one of .* got 'fast'"):
        tiny_vit(attn_impl="fast")


def test_rel_pos_tables_are_gathered_as_timm_gathers_them():
    from timm.models.vision_transformer_sam import get_rel_pos as timm_get_rel_pos

    from backbone.attention import get_rel_pos
    torch.manual_seed(0)
    table = torch.randn(13, 4, dtype=torch.float64, requires_grad=True)
    for q_size, k_size in ((7, 7), (5, 5), (9, 9), (5, 9), (9, 4)):  # as stored, resized down / up, unequal sizes
        ours, timms = get_rel_pos(q_size, k_size, table), timm_get_rel_pos(q_size, k_size, table)
        torch.testing.assert_close(ours, timms)
        grad = torch.randn_like(ours)
        torch.testing.assert_close(torch.autograd.grad(ours, table, grad), torch.autograd.grad(timms, table, grad))


@pytest.mark.parametrize("impl", ["explicit", "sdpa"])  # "chunked" turns autocast off, which "meta" cannot
def test_forward_and_backward_copy_nothing_from_the_host(impl):
    from timm.models.vision_transformer_sam import get_rel_pos as timm_get_rel_pos

    from backbone import SimpleFeaturePyramid
    from benchmarks.backbone_speed import DispatchCounter  # lists ops given a host tensor next to device ones
    # "meta" stands for a GPU: the tensors live off the host, and an index made on the host shows as a mixed op
    model = SimpleFeaturePyramid(tiny_vit(use_rel_pos=True, depth=3, window_size=3, window_block_indexes=(1,),
                                          attn_impl=impl), out_channels=16).train().to("meta")
    with DispatchCounter() as seen:
        sum(level.sum() for level in model(torch.empty(2, 3, 80, 112, device="meta")).values()).backward()
    assert seen.host_copies == []
    with DispatchCounter() as seen:  # timm's (and detectron2's) get_rel_pos: a host index on each call
        timm_get_rel_pos(4, 4, torch.empty(7, 8, device="meta"))
    assert seen.host_copies == ["aten.index.Tensor"]


def test_a_model_first_run_in_inference_mode_still_trains():
    torch.manual_seed(0)
    model = tiny_vit(use_rel_pos=True, window_size=3, window_block_indexes=(0,), attn_impl="sdpa")
    x = torch.randn(1, 3, 176, 48)  # an 11 x 3 grid no other test uses: its cached indexes are made here
    with torch.inference_mode():
        expected = model(x)[-1]
    model.train()
    out = model(x)[-1]
    out.sum().backward()  # would fail if an index made under inference mode were saved for backward
    torch.testing.assert_close(out.detach(), expected)
    assert model.blocks[0].attn.rel_pos_h.grad is not None
