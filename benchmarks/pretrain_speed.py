"""MAE pretraining speed: visible-only encoder vs. mask tokens in the encoder vs. Hugging Face ViTMAE.

    python -m benchmarks.pretrain_speed                     # ViT-L/16, 8-block decoder, batch 8, 224 px
    python -m benchmarks.pretrain_speed --size base --batch 16 --steps 5

One full training step (forward, backward, AdamW) of three models of the same size and batch at mask
ratio 0.75 with norm-pix loss, each in its own subprocess so that peak memory is its own:

- ``ours``: ``pretrain.MaskedAutoencoderViT``, the encoder sees the 25 % visible patches only;
- ``ours w/ [M]``: the same model with ``mask_tokens_in_encoder=True`` (the paper's Table 1c ablation);
- ``HF ViTMAE``: ``transformers.ViTMAEForPreTraining`` with the same configuration (random init).

Printed: median step time, images/s, peak resident memory (and its rise over the model + optimizer
baseline), forward GFLOPs of the encoder and of the whole model per image (torch's FlopCounterMode), and the
ratios the paper reports (ViT-L, 8-block decoder: 2.8x wall-clock and 3.3x encoder FLOPs for w/ [M]). The
device is the CPU here (fp32); with a GPU, ``--device cuda`` measures in bf16 autocast.
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

SIZES = {"base": ("mae_vit_base_patch16", 768, 12, 12, 16), "large": ("mae_vit_large_patch16", 1024, 24, 16, 16),
         "huge": ("mae_vit_huge_patch14", 1280, 32, 16, 14)}
VARIANTS = ("ours", "ours w/ [M]", "HF ViTMAE")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _build(variant: str, size: str, img: int):
    import torch
    name, dim, depth, heads, patch = SIZES[size]
    if variant == "HF ViTMAE":
        from transformers import ViTMAEConfig, ViTMAEForPreTraining
        config = ViTMAEConfig(hidden_size=dim, num_hidden_layers=depth, num_attention_heads=heads,
                              intermediate_size=4 * dim, image_size=img, patch_size=patch, decoder_hidden_size=512,
                              decoder_num_hidden_layers=8, decoder_num_attention_heads=16,
                              decoder_intermediate_size=2048, mask_ratio=0.75, norm_pix_loss=True,
                              layer_norm_eps=1e-6)
        model = ViTMAEForPreTraining(config)
        return model, lambda x: model(pixel_values=x).loss, lambda x: model.vit(pixel_values=x)
    from pretrain import build_mae
    model = build_mae(name, img_size=img, norm_pix_loss=True, mask_tokens_in_encoder=variant == "ours w/ [M]")
    return model, lambda x: model(x, 0.75)[0], lambda x: model.forward_encoder(x, 0.75)


def measure(variant: str, size: str, batch: int, steps: int, warmup: int, img: int, device: str,
            threads: int | None) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, loss_fn, encoder_fn = _build(variant, size, img)
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

    optimizer = torch.optim.AdamW(model.parameters(), lr=1.5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    for p in model.parameters():  # materialise AdamW's state, so that the baseline holds weights + optimizer
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    images = torch.randn(batch, 3, img, img, device=device)
    baseline_mb = _rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        with autocast:
            loss = loss_fn(images)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
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
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--img", type=int, default=224)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="rounds over the three models; the fastest round counts (other load only slows)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # a child process measuring one
    args = parser.parse_args(argv)
    if args.variant:
        print(json.dumps(measure(args.variant, args.size, args.batch, args.steps, args.warmup, args.img, args.device,
                                 args.threads)))
        return 0

    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            cmd = [sys.executable, "-m", "benchmarks.pretrain_speed", "--variant", variant, "--size", args.size,
                   "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--img", str(args.img), "--device", args.device] + (
                   ["--threads", str(args.threads)] if args.threads else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"measured {variant}: {run['step_s']:.2f} s/step, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
            if variant not in results or run["step_s"] < results[variant]["step_s"]:
                results[variant] = run
    load_after = os.getloadavg()

    name = SIZES[args.size][0]
    print(f"\n{name}, decoder 512 x 8 blocks, batch {args.batch}, {args.img} px, mask ratio 0.75, norm-pix; "
          f"{args.device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{results['ours']['threads']} torch threads, fp32 on CPU / bf16 on GPU); median of {args.steps} steps "
          f"after {args.warmup} warm-up, best of {args.repeats} rounds; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after\n")
    print("| model | step (s) | images/s | peak RSS (MiB) | rise over weights + AdamW state (MiB) "
          "| encoder GFLOPs/img (fwd) | model GFLOPs/img (fwd) | params (M) |")
    print("|---|---|---|---|---|---|---|---|")
    for variant, r in results.items():
        print(f"| {variant} | {r['step_s']:.2f} | {r['images_per_s']:.2f} | {r['peak_rss_mb']:.0f} | "
              f"{r['rise_mb']:.0f} | {r['encoder_gflops_fwd']:.1f} | {r['gflops_fwd']:.1f} | {r['params_m']:.1f} |")
    ours, tokens, hf = results["ours"], results["ours w/ [M]"], results["HF ViTMAE"]
    print("\nratios (measured | paper, ViT-L 8-block decoder, TPU-v3):")
    print(f"- w/ [M] / visible-only step time: {tokens['step_s'] / ours['step_s']:.2f}x | 2.8x wall-clock")
    print(f"- w/ [M] / visible-only encoder FLOPs: {tokens['encoder_gflops_fwd'] / ours['encoder_gflops_fwd']:.2f}x "
          f"| 3.3x")
    print(f"- w/ [M] / visible-only memory rise: {tokens['rise_mb'] / ours['rise_mb']:.2f}x | -")
    print(f"- HF ViTMAE / ours: step time {hf['step_s'] / ours['step_s']:.2f}x, FLOPs "
          f"{hf['gflops_fwd'] / ours['gflops_fwd']:.2f}x, memory rise {hf['rise_mb'] / ours['rise_mb']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
