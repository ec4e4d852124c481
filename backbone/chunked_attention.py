"""Attention with decomposed relative position, computed over chunks of query rows, with its own backward.

For each chunk of ``c`` queries the logits ``(q * scale) @ k^T`` (c x N) get ``rel_h[q, kh] + rel_w[q, kw]``
added as broadcast views, the softmax is taken in place and multiplied into ``v``. Nothing N x N is kept: the
backward recomputes each chunk's probabilities ``P`` (as flash attention does) and applies the softmax gradient

    dS = P * (dO @ v^T - rowsum(dO * O)),    dq = scale dS @ k,    dk += scale dS^T @ q,    dv += P^T @ dO,
    d rel_h[q, kh] = sum_kw dS[q, kh, kw],   d rel_w[q, kw] = sum_kh dS[q, kh, kw],

so that the gradient of the relative-position terms costs two sums, not a product. Work per global block: the
logits and ``attn @ v`` at head dim C, like detectron2's explicit path, against the head dim C + H + W that
``"sdpa"`` (the bias folded into the dot product) multiplies through; memory: a (heads, c, N) buffer or two
instead of detectron2's (heads, N, N) logits and probabilities. PyTorch's fused CPU kernels take no per-query
bias with a gradient, and FlexAttention has no CPU backward (torch 2.14), hence this one, in plain ``bmm``.
Measured against the others in ``benchmarks/backbone_speed.md``.
"""
from __future__ import annotations

import torch

# query rows per chunk: 128 and 256 measured equal at 32 x 32 and 64 x 64 tokens on CPU, 64 slower; a sequence
# of up to twice that runs as one chunk (a 14 x 14 window as 128 + 68 rows measured about 10 % slower than whole)
CHUNK = 128


def _rows_per_chunk(chunk: int, N: int) -> int:
    return N if N <= 2 * chunk else chunk


def _probabilities(q_chunk, k_t, rel_h_chunk, rel_w_chunk, out):
    """softmax(q_chunk @ k_t + rel_h + rel_w) written into ``out`` (BH, c, N); q_chunk is already scaled."""
    torch.bmm(q_chunk, k_t, out=out)
    grid = out.view(*out.shape[:2], rel_h_chunk.shape[-1], rel_w_chunk.shape[-1])
    grid.add_(rel_h_chunk[..., None]).add_(rel_w_chunk[..., None, :])
    return torch.softmax(out, -1, out=out)


class ChunkedRelPosAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, rel_h, rel_w, scale: float, chunk: int):
        B, heads, N, C = q.shape
        H, W = rel_h.shape[2], rel_h.shape[3]
        chunk = _rows_per_chunk(chunk, N)
        q_scaled = (q * scale).reshape(B * heads, N, C)
        k_t = k.reshape(B * heads, N, C).transpose(1, 2)
        v = v.reshape(B * heads, N, C)
        rel_h, rel_w = rel_h.reshape(B * heads, N, H), rel_w.reshape(B * heads, N, W)
        out = q.new_empty(B * heads, N, C)
        probs = q.new_empty(B * heads, min(chunk, N), N)
        for start in range(0, N, chunk):
            c = min(chunk, N - start)
            rows = slice(start, start + c)
            p = _probabilities(q_scaled[:, rows], k_t, rel_h[:, rows], rel_w[:, rows], probs[:, :c])
            torch.bmm(p, v, out=out[:, rows])
        ctx.save_for_backward(q_scaled, k_t, v, rel_h, rel_w, out)
        ctx.scale, ctx.chunk, ctx.shapes = scale, chunk, (q.shape, (B, heads, H, W, H), (B, heads, H, W, W))
        return out.view(B, heads, N, C)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        q_scaled, k_t, v, rel_h, rel_w, out = ctx.saved_tensors
        BH, N, C = q_scaled.shape
        grad_out = grad_out.reshape(BH, N, C)
        row_dot = (grad_out * out).sum(-1, keepdim=True)  # rowsum(dO * O) = rowsum(P * dP)
        dq, dk, dv = torch.empty_like(q_scaled), q_scaled.new_zeros(BH, N, C), q_scaled.new_zeros(BH, N, C)
        d_rel_h, d_rel_w = torch.empty_like(rel_h), torch.empty_like(rel_w)
        probs, d_logits = (q_scaled.new_empty(BH, min(ctx.chunk, N), N) for _ in range(2))
        for start in range(0, N, ctx.chunk):
            c = min(ctx.chunk, N - start)
            rows = slice(start, start + c)
            p = _probabilities(q_scaled[:, rows], k_t, rel_h[:, rows], rel_w[:, rows], probs[:, :c])
            dv.baddbmm_(p.transpose(1, 2), grad_out[:, rows])
            ds = torch.bmm(grad_out[:, rows], v.transpose(1, 2), out=d_logits[:, :c]).sub_(row_dot[:, rows]).mul_(p)
            torch.bmm(ds, k_t.transpose(1, 2), out=dq[:, rows])
            dk.baddbmm_(ds.transpose(1, 2), q_scaled[:, rows])
            ds = ds.view(BH, c, rel_h.shape[-1], rel_w.shape[-1])
            torch.sum(ds, -1, out=d_rel_h[:, rows])
            torch.sum(ds, -2, out=d_rel_w[:, rows])
        q_shape, h_shape, w_shape = ctx.shapes
        # the logits were made from q * scale: dq carries the scale, dk is taken against the scaled q already
        return (dq.mul_(ctx.scale).view(q_shape), dk.view(q_shape), dv.view(q_shape), d_rel_h.view(h_shape),
                d_rel_w.view(w_shape), None, None)


def chunked_attention(q, k, v, rel_h, rel_w, scale: float, dropout_p: float = 0.0, chunk: int = CHUNK):
    if dropout_p:
        raise ValueError("attention impl 'chunked' has no attention dropout; use 'sdpa' or 'explicit'")
    # one dtype throughout, the matmuls' (under autocast: the reduced one); autocast would refuse the out= calls
    with torch.autocast(q.device.type, enabled=False):
        k, v, rel_h, rel_w = (t.to(q.dtype) for t in (k, v, rel_h, rel_w))
        return ChunkedRelPosAttention.apply(q, k, v, rel_h, rel_w, scale, chunk)
