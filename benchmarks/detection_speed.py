"""Mask R-CNN ViTDet training step with this project's backbone vs. detectron2's own ViT / SimpleFeaturePyramid.

    python -m benchmarks.detection_speed                         # ViT-B, batch 1, 512 px on CPU (1024 px on GPU)
    python -m benchmarks.detection_speed --size large --img 1024 --device cuda --batch 2

Two detectors that differ only in the backbone, both from the same recipe (detectron2's
``common/models/mask_rcnn_vitdet.py``, the heads of configs/detection/base_mask_rcnn_vitdet.py):

- ``ours``: ``detection.ViTDetBackbone`` (``backbone.ViT``: timm's SAM blocks, fused SDPA attention);
- ``detectron2``: ``detectron2.modeling.ViT`` + ``SimpleFeaturePyramid`` at the same sizes (same keys).

Each is measured in its own subprocess (so that peak memory is its own) on the same generated batch (random
image, 4 boxes with masks per image, LSJ square padding to ``--img``): a full training step (forward with
losses, backward, AdamW with layer decay 0.7 as the recipe) and the backbone alone (forward + backward of the sum
of p2..p6). Printed: median times, peak memory (CPU: resident set and its rise over weights + AdamW state; GPU:
``max_memory_allocated`` under fp16 autocast, as the recipe's AMP) and the ratios detectron2 / ours.
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

from benchmarks.backbone_speed import SIZES, vit_args
from mae_transfer.compare import markdown_table

VARIANTS = ("ours", "detectron2")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _model(variant: str, size: str, img: int):
    from detectron2 import model_zoo
    from detectron2.config import LazyCall as L
    from detectron2.config import instantiate

    from backbone import ViT
    from detection.vitdet import ViTDetBackbone

    net = vit_args(size, img, drop_path=True)
    cfg = model_zoo.get_config("common/models/mask_rcnn_vitdet.py")
    if variant == "ours":
        cfg.model.backbone = L(ViTDetBackbone)(net=L(ViT)(**net), out_channels=256,
                                               scale_factors=(4.0, 2.0, 1.0, 0.5), top_block=True, norm="LN")
    else:
        cfg.model.backbone.net.update(net)
    cfg.model.backbone.square_pad = img
    return instantiate(cfg.model)


def _batch(batch: int, img: int, device: str):
    import torch
    from detectron2.structures import BitMasks, Boxes, Instances

    g = torch.Generator().manual_seed(0)
    inputs = []
    for _ in range(batch):
        xy = torch.randint(0, img // 2, (4, 2), generator=g).float()
        wh = torch.randint(img // 16, img // 2, (4, 2), generator=g).float()
        boxes = torch.cat([xy, xy + wh], 1)
        masks = torch.zeros(4, img, img, dtype=torch.bool)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes.int().tolist()):
            mask[y0:y1, x0:x1] = True
        instances = Instances((img, img), gt_boxes=Boxes(boxes), gt_classes=torch.randint(0, 80, (4,), generator=g),
                              gt_masks=BitMasks(masks))
        inputs.append({"image": torch.rand(3, img, img, generator=g) * 255, "instances": instances.to(device)})
    return inputs


def measure(variant: str, size: str, batch: int, steps: int, warmup: int, img: int, device: str,
            threads: int | None) -> dict:
    import torch
    from detectron2.solver.build import get_default_optimizer_params
    from detectron2.utils.events import EventStorage

    from detection.recipe import layer_decay

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = _model(variant, size, img).to(device).train()
    params = get_default_optimizer_params(model, base_lr=1e-4, weight_decay_norm=0.0,
                                          lr_factor_func=layer_decay(0.7, vit_args(size, img)["depth"]),
                                          overrides={"pos_embed": {"weight_decay": 0.0}})
    optimizer = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), weight_decay=0.1)
    for p in model.parameters():  # materialise AdamW's state, so that the baseline holds weights + optimizer
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    inputs = _batch(batch, img, device)
    cuda = device.startswith("cuda")
    autocast = torch.autocast("cuda", dtype=torch.float16, enabled=cuda)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    baseline_mb = _rss_mb()
    if cuda:
        torch.cuda.reset_peak_memory_stats()

    def timed(step) -> list[float]:
        times = []
        for i in range(warmup + steps):
            start = time.perf_counter()
            step()
            if cuda:
                torch.cuda.synchronize()
            if i >= warmup:
                times.append(time.perf_counter() - start)
        return times

    def train_step():
        with autocast:
            loss = sum(model(inputs).values())
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    images = model.preprocess_image(inputs).tensor

    def backbone_step():
        with autocast:
            loss = sum(level.float().sum() for level in model.backbone(images).values())
        loss.backward()
        model.zero_grad(set_to_none=True)

    with EventStorage(0):
        step_times = timed(train_step)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"variant": variant, "step_s": statistics.median(step_times), "step_times": step_times,
           "peak_rss_mb": peak_mb, "rise_mb": peak_mb - baseline_mb, "baseline_mb": baseline_mb,
           "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "threads": torch.get_num_threads()}
    if cuda:
        out["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
    out["backbone_s"] = statistics.median(timed(backbone_step))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.detection_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="base")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--img", type=int, default=None, help="input side (default: 512 on CPU, 1024 on GPU)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="rounds over both models, alternating; the fastest round counts (other load only slows)")
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)  # a child process measuring one
    args = parser.parse_args(argv)
    img = args.img or (1024 if args.device.startswith("cuda") else 512)
    if args.variant:
        print(json.dumps(measure(args.variant, args.size, args.batch, args.steps, args.warmup, img, args.device,
                                 args.threads)))
        return 0

    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    for _ in range(args.repeats):
        for variant in VARIANTS:
            cmd = [sys.executable, "-m", "benchmarks.detection_speed", "--variant", variant, "--size", args.size,
                   "--batch", str(args.batch), "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--img", str(img), "--device", args.device] + (
                   ["--threads", str(args.threads)] if args.threads else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
                return proc.returncode
            run = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f"measured {variant}: {run['step_s']:.2f} s/step, backbone {run['backbone_s']:.2f} s, "
                  f"load {os.getloadavg()[0]:.2f}", file=sys.stderr)
            if variant not in results or run["step_s"] < results[variant]["step_s"]:
                results[variant] = run
    load_after = os.getloadavg()

    width, depth = (vit_args(args.size, img)[k] for k in ("embed_dim", "depth"))
    cuda = args.device.startswith("cuda")
    print(f"\nMask R-CNN ViTDet, ViT-{args.size[0].upper()} ({width} wide, {depth} blocks), batch {args.batch}, "
          f"{img}x{img} px (square-padded), 4 instances per image; {args.device} "
          f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {results['ours']['threads']} "
          f"torch threads, {'fp16 autocast' if cuda else 'fp32'}); median of {args.steps} steps after "
          f"{args.warmup} warm-up, best of {args.repeats} rounds; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after\n")
    memory = ["peak CUDA allocated (MiB)"] if cuda else ["peak RSS (MiB)", "rise over weights + AdamW state (MiB)"]
    rows = [[variant, f"{r['step_s']:.2f}", f"{r['backbone_s']:.2f}"]
            + ([f"{r['peak_cuda_mb']:.0f}"] if cuda else [f"{r['peak_rss_mb']:.0f}", f"{r['rise_mb']:.0f}"])
            + [f"{r['params_m']:.1f}"] for variant, r in results.items()]
    print("\n".join(markdown_table(["backbone", "train step (s)", "backbone fwd+bwd (s)", *memory, "params (M)"], rows)))
    ours, d2 = results["ours"], results["detectron2"]
    mem_key = "peak_cuda_mb" if cuda else "rise_mb"
    print(f"\nratios detectron2 / ours: train step {d2['step_s'] / ours['step_s']:.2f}x, backbone fwd+bwd "
          f"{d2['backbone_s'] / ours['backbone_s']:.2f}x, memory {d2[mem_key] / ours[mem_key]:.2f}x "
          f"({'peak allocated' if cuda else 'RSS rise'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
