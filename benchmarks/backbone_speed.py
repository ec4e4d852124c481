"""ViT + simple feature pyramid, forward + backward: this project's backbone against detectron2's own.

    python -m benchmarks.backbone_speed                      # ViT-B, 512 px, CPU, one thread
    python -m benchmarks.backbone_speed --img 1024 --rounds 3
    python -m benchmarks.backbone_speed --blocks --rounds 5  # single blocks: global and window attention apart
    python -m benchmarks.backbone_speed --dispatch           # ops per forward + backward, host-to-device copies

The models, all with the same weights (ours loaded into detectron2's ``ViT`` + ``SimpleFeaturePyramid``, same
keys, as ``tests/backbone/test_vit.py`` checks):

- ``ours auto`` / ``ours chunked`` / ``ours sdpa`` / ``ours explicit``: ``backbone.ViT`` +
  ``backbone.SimpleFeaturePyramid`` with ``attn_impl="auto"`` (the default: per device and size) /
  ``"chunked"`` / ``"sdpa"`` / ``"explicit"`` (``backbone/attention.py``);
- ``timm mask``: the same with timm's SAM block and attention as they are (the decomposed bias as a dense SDPA
  mask, windows padded before ``qkv``: what
  ``backbone.ViT`` used before);
- ``detectron2``: ``detectron2.modeling.ViT`` + ``SimpleFeaturePyramid`` (ViTDet's
  ``common/models/mask_rcnn_vitdet.py`` sizes).

Time: one process, the variants interleaved round by round; on CPU the process's CPU time (one thread: the work
done, unaffected by other jobs taking turns on the cores), on a GPU wall time after synchronising; per variant
the median over rounds, and the median over rounds of each variant's time / the first variant's in the same
round. Memory: each
variant in its own subprocess, peak resident set during one forward + backward minus the resident set once the
model exists (CPU, with glibc's mmap threshold fixed at 64 KiB so that freed memory leaves the resident set;
``torch.cuda.max_memory_allocated`` on a GPU), and the bytes autograd saves for backward (exact).
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

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from mae_transfer.compare import markdown_table

SIZES = {"base": "vit_base", "large": "vit_large", "huge": "vit_huge", "smoke": "vit_tiny"}  # backbone.VIT_SIZES rows
# benchmarks/gpu.py --smoke: the same code in seconds on CPU, 64 wide, 2 blocks (block 1 global)
SMOKE = dict(embed_dim=64, depth=2, num_heads=2, window_block_indexes=(0,), drop_path_rate=0.0)
VARIANTS = ("ours chunked", "ours sdpa", "ours explicit", "timm mask", "detectron2")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def as_timm_sam(block):
    """``block`` (a ``backbone.vit._Block``) turned into timm's SAM ``Block`` with its ``Attention``, as they
    are: the decomposed bias as a dense SDPA mask, windows padded before ``qkv``. Same parameters."""
    from timm.models.vision_transformer_sam import Attention, Block
    block.__class__ = Block
    block.attn.__class__ = Attention
    return block


def vit_args(size: str, img: int, drop_path: bool = False) -> dict:
    """The ViT arguments of a benchmark size as ViTDet builds it (``backbone.vit_kwargs``) at ``img`` px, with
    ViTDet's drop path or none."""
    from backbone import vit_kwargs
    fixed = {"img_size": img, **({} if drop_path else {"drop_path_rate": 0.0}), **(SMOKE if size == "smoke" else {})}
    return vit_kwargs(SIZES[size], **fixed)


def build(variant: str, size: str, img: int):
    """One pyramid of ``variant`` (deterministic weights: seed 0, rel-pos tables random so that they count)."""

    from backbone import SimpleFeaturePyramid, ViT

    torch.manual_seed(0)
    impl = {"ours chunked": "chunked", "ours sdpa": "sdpa", "ours explicit": "explicit",
            "ours auto": "auto"}.get(variant, "sdpa")
    ours = SimpleFeaturePyramid(ViT(**vit_args(size, img), attn_impl=impl), square_pad=img)
    for block in ours.net.blocks:
        torch.nn.init.normal_(block.attn.rel_pos_h, std=0.02)
        torch.nn.init.normal_(block.attn.rel_pos_w, std=0.02)
    if variant == "timm mask":
        for block in ours.net.blocks:
            as_timm_sam(block)
    if variant != "detectron2":
        return ours
    from functools import partial

    import torch.nn as nn
    from detectron2.modeling import SimpleFeaturePyramid as D2Pyramid
    from detectron2.modeling import ViT as D2ViT
    from detectron2.modeling.backbone.fpn import LastLevelMaxPool

    theirs = D2Pyramid(D2ViT(**vit_args(size, img), norm_layer=partial(nn.LayerNorm, eps=1e-6),
                             out_feature="last_feat"),
                       in_feature="last_feat", out_channels=256, scale_factors=(4.0, 2.0, 1.0, 0.5),
                       top_block=LastLevelMaxPool(), norm="LN", square_pad=img)
    theirs.load_state_dict(ours.state_dict())
    return theirs


def fwd_bwd(model, x) -> None:
    loss = sum(level.float().sum() for level in model(x).values())
    loss.backward()
    model.zero_grad(set_to_none=True)


def saved_activations_mb(model, x) -> float:
    """Bytes autograd keeps for backward (distinct storages, parameters excluded): exact, allocator-free."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outputs = model(x)
    del outputs
    return sum(seen.values()) / 2**20


def memory(variant: str, size: str, img: int, device: str) -> dict:
    """Peak memory of one forward + backward, in this process (the parent sets MALLOC_MMAP_THRESHOLD_ so that
    freed blocks go back to the system and the resident set follows live memory)."""
    model = build(variant, size, img).to(device).train()
    x = torch.randn(1, 3, img, img, device=device)
    cuda = device.startswith("cuda")
    baseline = _rss_mb()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    fwd_bwd(model, x)
    out = {"variant": variant, "baseline_mb": baseline,
           "rise_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - baseline,
           "saved_mb": saved_activations_mb(model, x)}
    if cuda:
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def timings(variants, size: str, img: int, rounds: int, device: str) -> dict[str, list[float]]:
    models = {v: build(v, size, img).to(device).train() for v in variants}
    x = torch.randn(1, 3, img, img, device=device)
    with torch.no_grad():  # same outputs, else the comparison is void
        ref = models[variants[0]](x)
        for v in variants[1:]:
            for name, level in models[v](x).items():
                torch.testing.assert_close(level, ref[name], atol=1e-3, rtol=1e-3, msg=f"{v} {name}")
    # on CPU the process's CPU time: with one thread it is the work done, whatever else the machine runs
    clock = time.perf_counter if device.startswith("cuda") else time.process_time
    times: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(rounds + 1):  # round 0 warms up
        for v in variants:
            start, wall = clock(), time.perf_counter()
            fwd_bwd(models[v], x)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            if r:
                times[v].append(clock() - start)
                print(f"round {r} {v}: {times[v][-1]:.2f} s ({time.perf_counter() - wall:.2f} s wall), "
                      f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    return times


class DispatchCounter(TorchDispatchMode):
    """Counts the aten ops that do work (views excluded) and lists, among them, those given a host tensor (not
    0-dim) with a tensor on another device: on a GPU each of those is a blocking host-to-device copy, which
    makes the host wait for the stream."""

    def __init__(self):
        super().__init__()
        self.ops, self.host_copies = 0, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += not func.is_view
        tensors = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor) and t.dim()]
        if len({t.device.type for t in tensors}) > 1:
            self.host_copies.append(str(func))
        return func(*args, **(kwargs or {}))


def dispatch_counts(variants, size: str, img: int) -> dict[str, dict]:
    """Per variant, one forward + backward at batch 1: ops that do work (counted on CPU) and ops given a host
    tensor next to device ones (counted on the "meta" device, which stands for a GPU; not for ``ours chunked``,
    a CPU path that turns autocast off, which "meta" has no autocast for)."""
    out = {}
    for v in variants:
        counts = {}
        for device in ("cpu", "meta"):
            if device == "meta" and v == "ours chunked":
                continue
            model = build(v, size, img).to(device).train()
            with DispatchCounter() as seen:
                fwd_bwd(model, torch.zeros(1, 3, img, img, device=device))
            counts["ops" if device == "cpu" else "host_copies"] = seen.ops if device == "cpu" else len(seen.host_copies)
        out[v] = counts
    return out


BLOCKS = {"global 32x32 (512 px)": (32, 0), "global 64x64 (1024 px)": (64, 0), "window 14x14 (512 px, 9)": (32, 14),
          "window 14x14 (1024 px, 25)": (64, 14)}


def block_timings(variants, rounds: int) -> dict[str, dict[str, list[float]]]:
    """One ViT-B block (768 wide, 12 heads, rel-pos) per variant with the same weights, forward + backward of a
    (1, grid, grid, 768) map, CPU time, the variants interleaved round by round (first round warms up)."""
    from functools import partial

    import torch.nn as nn

    from backbone.vit import _Block
    out = {}
    for name, (grid, window) in BLOCKS.items():
        size = window or grid
        blocks = {}
        for v in variants:
            torch.manual_seed(0)
            impl = {"ours chunked": "chunked", "ours sdpa": "sdpa", "ours explicit": "explicit",
                    "ours auto": "auto"}.get(v, "sdpa")
            block = _Block(768, 12, qkv_bias=True, use_rel_pos=True, window_size=window, input_size=(size, size),
                           attn_impl=impl, norm_layer=partial(nn.LayerNorm, eps=1e-6))
            nn.init.normal_(block.attn.rel_pos_h, std=0.02)
            nn.init.normal_(block.attn.rel_pos_w, std=0.02)
            if v == "timm mask":
                as_timm_sam(block)
            if v == "detectron2":
                from detectron2.modeling.backbone.vit import Block as D2Block
                theirs = D2Block(768, 12, qkv_bias=True, use_rel_pos=True, window_size=window,
                                 input_size=(size, size), norm_layer=partial(nn.LayerNorm, eps=1e-6))
                theirs.load_state_dict(block.state_dict())
                block = theirs
            blocks[v] = block
        x = torch.randn(1, grid, grid, 768, requires_grad=True)
        times = {v: [] for v in variants}
        for r in range(rounds + 1):
            for v in variants:
                start = time.process_time()
                blocks[v](x).sum().backward()
                if r:
                    times[v].append(time.process_time() - start)
        out[name] = times
        print(f"{name}: " + ", ".join(f"{v} {statistics.median(t):.3f}" for v, t in times.items()), file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.backbone_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--img", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, first is the reference")
    parser.add_argument("--blocks", action="store_true",
                        help="time single ViT-B blocks (global 32x32 / 64x64, windows at 512 / 1024 px) instead")
    parser.add_argument("--dispatch", action="store_true",
                        help="count the ops of one forward + backward, and those copying a host tensor to the device")
    parser.add_argument("--memory-of", choices=VARIANTS + ("ours auto",), help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_of:
        print(json.dumps(memory(args.memory_of, args.size, args.img, args.device)))
        return 0
    if args.blocks:
        variants = args.variants.split(",")
        times = block_timings(variants, args.rounds)
        print(f"\nOne ViT-B block (768 wide, 12 heads, decomposed rel-pos), batch 1, forward + backward, fp32, CPU "
              f"time (s), median of {args.rounds} interleaved rounds after 1 warm-up, {args.threads} torch thread(s);"
              f" torch {torch.__version__}\n")
        print("\n".join(markdown_table(["block"] + variants, [
            [name] + [f"{statistics.median(t[v]):.3f}" for v in variants] for name, t in times.items()])))
        return 0

    if args.dispatch:
        variants = args.variants.split(",")
        counts = dispatch_counts(variants, args.size, args.img)
        print(f"\nViT-{args.size[0].upper()} + simple feature pyramid, batch 1, {args.img} px, one forward + backward;"
              f" torch {torch.__version__}\n")
        print("\n".join(markdown_table(["variant", "aten ops doing work", "ops copying a host tensor to the device"],
                                       [[v, str(c["ops"]), str(c.get("host_copies", "-"))] for v, c in counts.items()])))
        return 0

    variants = args.variants.split(",")
    load_before = os.getloadavg()
    mem = {}
    for v in variants:
        cmd = [sys.executable, "-m", "benchmarks.backbone_speed", "--memory-of", v, "--size", args.size,
               "--img", str(args.img), "--device", args.device, "--threads", str(args.threads)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"})
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        mem[v] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"memory {v}: RSS rise {mem[v]['rise_mb']:.0f} MiB, saved for backward {mem[v]['saved_mb']:.0f} MiB",
              file=sys.stderr)
    times = timings(variants, args.size, args.img, args.rounds, args.device)
    load_after = os.getloadavg()

    ref = variants[0]
    width, depth = (vit_args(args.size, args.img)[k] for k in ("embed_dim", "depth"))
    print(f"\nViT-{args.size[0].upper()} ({width} wide, {depth} blocks, 14x14 windows, 4 global blocks, rel-pos) + "
          f"simple feature pyramid, batch 1, {args.img} px, forward + backward, fp32; {args.device} "
          f"({platform.processor() or platform.machine()}, {args.threads} torch thread(s)); {args.rounds} "
          f"interleaved rounds after 1 warm-up; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after;"
          f" torch {torch.__version__}\n")
    cuda = args.device.startswith("cuda")
    rows = [[v, f"{statistics.median(times[v]):.2f}",
             f"{statistics.median(t / o for t, o in zip(times[v], times[ref])):.2f}x",
             f"{mem[v]['peak_cuda_mb'] if cuda else mem[v]['rise_mb']:.0f}", f"{mem[v]['saved_mb']:.0f}"]
            for v in variants]
    print("\n".join(markdown_table(
        ["variant", f"fwd+bwd median ({'s' if cuda else 'CPU s'})", f"time / {ref} (median of rounds)",
         "peak CUDA allocated (MiB)" if cuda else "peak RSS rise over the model (MiB)", "saved for backward (MiB)"],
        rows)))
    print("\nrounds (s): " + "; ".join(f"{v}: " + ", ".join(f"{t:.2f}" for t in times[v]) for v in variants))
    return 0


if __name__ == "__main__":
    sys.exit(main())
