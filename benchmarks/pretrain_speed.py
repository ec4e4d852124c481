"""MAE pretraining step: ours against the official code, and visible-only against mask tokens in the encoder.

    python -m benchmarks.pretrain_speed                     # ViT-L/16, 8-block decoder, batch 8, 224 px
    python -m benchmarks.pretrain_speed --size base --variants "ours,official" --rounds 3

One full training step (forward, backward, AdamW) at mask ratio 0.75 with norm-pix loss, equal math in every
variant:

- ``ours``: ``pretrain.MaskedAutoencoderViT`` with the optimizer ``pretrain.train`` builds (AdamW, fused);
- ``ours w/ [M]``: the paper's Table 1c ablation (``benchmarks.mae_variants.MaskTokensInEncoder``), same
  optimizer: the encoder runs on all 196 patches instead of the 49 visible ones;
- ``official``: the official ``models_mae.py`` and ``main_pretrain.py`` optimizer
  (``benchmarks.mae_variants``: torch's default AdamW);
- ``ours compiled`` / ``ours w/ [M] compiled``: the same under ``torch.compile`` (the ``compile=True`` config
  switch; compile time excluded), for the visible-only ratio compiled against compiled;
- ``HF ViTMAE``: ``transformers.ViTMAEForPreTraining`` with the same configuration, default AdamW.

Each variant runs in its own subprocess (so peak memory is its own), the variants interleaved round by round.
Time on CPU is the process's CPU time (one thread: the work done, unaffected by other jobs taking turns on the
cores), on a GPU wall time after synchronising. Per variant the median over rounds of each round's median step, and the median over rounds of
``variant / ours`` from the same round (load drifts; a round's neighbours see about the same). Also printed:
peak resident memory (and its rise over model + optimizer), forward GFLOPs of the encoder and of the whole model
per image (``torch.utils.flop_counter.FlopCounterMode``). On a GPU (``--device cuda``) steps run in bf16
autocast.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

from mae_transfer.compare import markdown_table

SIZES = {"base": "mae_vit_base_patch16", "large": "mae_vit_large_patch16", "huge": "mae_vit_huge_patch14"}
VARIANTS = ("ours", "ours w/ [M]", "official", "ours compiled", "ours w/ [M] compiled", "HF ViTMAE")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def ours_optimizer(model, lr: float = 1.5e-4):
    """As ``pretrain.train`` builds it: no decay on 1-D parameters, betas (0.9, 0.95), the fused kernel."""
    import torch
    from timm.optim import param_groups_weight_decay
    return torch.optim.AdamW(param_groups_weight_decay(model, 0.05), lr=lr, betas=(0.9, 0.95), fused=True)


def build(variant: str, size: str, img: int, **overrides):
    """(model, optimizer factory, loss of a batch, encoder forward of a batch) for ``variant``; ``overrides``
    (depth, decoder_depth, ...) go to our models and the official one."""
    from benchmarks.mae_variants import mask_tokens_in_encoder, official_mae, official_optimizer
    from pretrain.models_mae import mae_kwargs
    name = SIZES[size]
    if variant == "HF ViTMAE":
        from transformers import ViTMAEConfig, ViTMAEForPreTraining
        mae = mae_kwargs(name)
        config = ViTMAEConfig(hidden_size=mae["embed_dim"], num_hidden_layers=mae["depth"],
                              num_attention_heads=mae["num_heads"], intermediate_size=4 * mae["embed_dim"],
                              image_size=img, patch_size=mae["patch_size"],
                              decoder_hidden_size=mae["decoder_embed_dim"],
                              decoder_num_hidden_layers=mae["decoder_depth"],
                              decoder_num_attention_heads=mae["decoder_num_heads"],
                              decoder_intermediate_size=4 * mae["decoder_embed_dim"], mask_ratio=0.75,
                              norm_pix_loss=True, layer_norm_eps=1e-6)
        model = ViTMAEForPreTraining(config)
        return model, official_optimizer, lambda x: model(pixel_values=x).loss, lambda x: model.vit(pixel_values=x)
    if variant == "official":
        model = official_mae(name, img_size=img, norm_pix_loss=True, **overrides)
        return model, official_optimizer, lambda x: model(x, 0.75)[0], lambda x: model.forward_encoder(x, 0.75)
    from pretrain import build_mae
    model = (mask_tokens_in_encoder if variant.startswith("ours w/ [M]") else build_mae)(name, img_size=img, norm_pix_loss=True,
                                                                                **overrides)
    return model, ours_optimizer, lambda x: model(x, 0.75)[0], lambda x: model.forward_encoder(x, 0.75)


def measure(variant: str, size: str, batch: int, steps: int, warmup: int, img: int, device: str,
            threads: int | None) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, make_optimizer, loss_fn, encoder_fn = build(variant, size, img)
    model.to(device)
    dev = torch.device(device)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda")
    one = torch.randn(1, 3, img, img, device=device)
    with torch.no_grad(), autocast:
        with FlopCounterMode(display=False) as counter:
            loss_fn(one)
        total_flops = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            encoder_fn(one)
        encoder_flops = counter.get_total_flops()
    if variant.endswith("compiled"):
        compiled = torch.compile(model)
        loss_fn = lambda x: compiled(x, 0.75)[0]  # noqa: E731

    optimizer = make_optimizer(model)
    for p in model.parameters():  # materialise AdamW's state, so that the baseline holds weights + optimizer
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    images = torch.randn(batch, 3, img, img, device=device)
    baseline_mb = _rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    # on CPU the process's CPU time: with one thread it is the work done, whatever else the machine runs
    clock = time.perf_counter if dev.type == "cuda" else time.process_time
    times = []
    for i in range(warmup + steps):
        start = clock()
        with autocast:
            loss = loss_fn(images)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(clock() - start)
    step = statistics.median(times)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"variant": variant, "step_s": step, "images_per_s": batch / step, "times": times,
           "peak_rss_mb": peak_mb, "rise_mb": peak_mb - baseline_mb, "baseline_mb": baseline_mb,
           "gflops_fwd": total_flops / 1e9, "encoder_gflops_fwd": encoder_flops / 1e9,
           "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
           "threads": torch.get_num_threads()}
    if dev.type == "cuda":
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pretrain_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="large")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per round (median taken)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--img", type=int, default=224)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the variants, interleaved")
    parser.add_argument("--variants", default="ours,ours w/ [M],official",
                        help=f"comma-separated, from {VARIANTS}; the first is the reference of the ratios")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # a child process measuring one
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(measure(args.variant, args.size, args.batch, args.steps, args.warmup, args.img, args.device,
                                 args.threads)))
        return 0

    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variant(s) {sorted(unknown)}; choose from {VARIANTS}")
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for variant in variants:
            cmd = [sys.executable, "-m", "benchmarks.pretrain_speed", "--variant", variant, "--size", args.size,
                   "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--img", str(args.img), "--device", args.device, "--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
            runs[variant].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"round {r + 1} {variant}: {runs[variant][-1]['step_s']:.2f} s/step, "
                  f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    load_after = os.getloadavg()

    ref = variants[0]
    name = SIZES[args.size]
    print(f"\n{name}, decoder 512 x 8 blocks, batch {args.batch}, {args.img} px, mask ratio 0.75, norm-pix; "
          f"{args.device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{args.threads} torch thread(s), {'bf16 autocast' if args.device.startswith('cuda') else 'fp32'}); "
          f"per round {args.warmup} warm-up + {args.steps} timed steps, {args.rounds} interleaved rounds; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after\n")
    rows = []
    for variant in variants:
        rs = runs[variant]
        step = statistics.median(r["step_s"] for r in rs)
        ratio = statistics.median(r["step_s"] / o["step_s"] for r, o in zip(rs, runs[ref]))
        last = rs[-1]
        rows.append([variant, f"{step:.2f}", f"{ratio:.2f}x", f"{args.batch / step:.2f}",
                     f"{max(r['peak_rss_mb'] for r in rs):.0f}", f"{max(r['rise_mb'] for r in rs):.0f}",
                     f"{last['encoder_gflops_fwd']:.1f}", f"{last['gflops_fwd']:.1f}", f"{last['params_m']:.1f}"])
    print("\n".join(markdown_table(
        ["model", f"step ({'s' if args.device.startswith('cuda') else 'CPU s'})", f"step / {ref}", "images/s",
         "peak RSS (MiB)", "rise over weights + AdamW state (MiB)", "encoder GFLOPs/img (fwd)",
         "model GFLOPs/img (fwd)", "params (M)"], rows)))
    print("\nper round (s/step): " + "; ".join(
        f"{v}: " + ", ".join(f"{r['step_s']:.2f}" for r in runs[v]) for v in variants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
