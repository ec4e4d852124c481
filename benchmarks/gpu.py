"""The GPU numbers in one command: MAE pretraining, Mask R-CNN ViTDet, UperNet, and the attention choice.

    python -m benchmarks.gpu              # one H100 / H200, about 5 minutes; writes benchmarks/gpu_results.json
    python -m benchmarks.gpu --smoke      # the same code on CPU at tiny sizes (tests/benchmarks/test_gpu_smoke.py)

Sections, each in its own subprocess (its own peak memory; a failure is recorded and the others still run):

- ``attention``: one global block of ViT-B at 1024 px (64 x 64 tokens, 768 wide, 12 heads), forward + backward
  in bf16 autocast, for each ``backbone.attention`` implementation (``sdpa``, ``chunked``, ``flex``,
  ``explicit``) and timm's dense-mask SAM attention: ms and peak memory. This is the measurement ``attention_impl`` should follow on GPUs.
- ``backbone``: ViT-B + simple feature pyramid alone, batch 1 at 512 and 1024 px, fp16 autocast, forward +
  backward: ours (``sdpa``, ``chunked``, ``explicit``) against detectron2's ``ViT`` + ``SimpleFeaturePyramid``
  with the same weights, ms, peak memory rise, output difference and the stream synchronisations of one step.
- ``mae`` / ``mae_compiled``: ViT-L/16 MAE pretraining step (8-block decoder, mask 0.75, norm-pix, AdamW, batch
  128), bf16 autocast: ours, the official code (``benchmarks.mae_variants``), the mask-token ablation and, last,
  ours and the ablation under ``torch.compile`` (skipped in ``--smoke``: compiling on CPU takes minutes); images/s and MFU = model
  FLOPs of a step (forward + backward, counted by ``torch.utils.flop_counter.FlopCounterMode``) / step time /
  the chip's dense bf16 peak (H100 SXM and H200: 989 TFLOP/s; A100: 312).
- ``detection``: Mask R-CNN ViTDet ViT-B, batch 1 at 1024 px, fp16 autocast + GradScaler (the recipe's AMP):
  ours against detectron2's own ViT / SimpleFeaturePyramid (``benchmarks.detection_speed.measure``),
  s/iteration and peak ``torch.cuda.max_memory_allocated``. detectron2's ViTDet model zoo lists 10.9 GB
  training memory for this model.
- ``upernet``: UperNet ViT-B, ADE20K recipe (``configs/segmentation/upernet_vit_b_supervised_*``, random init),
  batch 2 at 512 px, fp16 ``AmpOptimWrapper``: s/iteration and peak memory.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SECTIONS = ("attention", "backbone", "mae", "detection", "upernet", "mae_compiled")
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s, vendor data sheets


def _device(smoke: bool) -> str:
    import torch
    return "cpu" if smoke or not torch.cuda.is_available() else "cuda"


def _sync(device: str) -> None:
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def _peak_mb(device: str) -> float | None:
    import torch
    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None


def _reset_peak(device: str) -> None:
    import torch
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _timed(step, device: str, warmup: int, steps: int) -> float:
    """Median seconds of ``steps`` calls after ``warmup``."""
    times = []
    for i in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        step()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _stream_syncs(step, device: str) -> int | None:
    """How many times one call of ``step`` makes the host wait for the GPU (CUDA's sync debug mode warns at each:
    blocking copies, ``.item()``, ``nonzero``); None on CPU."""
    import warnings

    import torch
    if device != "cuda":
        return None
    try:
        torch.cuda.set_sync_debug_mode("warn")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            step()
    except Exception as exc:  # a count is not worth the section's timings
        print(f"stream sync count failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def section_attention(smoke: bool) -> dict:
    import torch
    import torch.nn as nn
    from functools import partial

    from backbone.attention import IMPLS
    from backbone.vit import _Block
    from benchmarks.backbone_speed import as_timm_sam, vit_args

    device = _device(smoke)
    vit = vit_args("smoke" if smoke else "base", 1024)
    dim, heads = vit["embed_dim"], vit["num_heads"]
    grids = {}
    for grid in (8,) if smoke else (32, 64):  # 512 and 1024 px at patch 16
        x = torch.randn(1, grid, grid, dim, device=device)
        results = {}
        for impl in IMPLS + ("timm mask",):
            if impl == "flex" and device == "cpu":
                results[impl] = {"skipped": "FlexAttention has no backward on CPU"}
                continue
            torch.manual_seed(0)
            block = _Block(dim, heads, qkv_bias=True, use_rel_pos=True, input_size=(grid, grid),
                           attn_impl="sdpa" if impl == "timm mask" else impl,
                           norm_layer=partial(nn.LayerNorm, eps=1e-6)).to(device)
            if impl == "timm mask":
                as_timm_sam(block)
            nn.init.normal_(block.attn.rel_pos_h, std=0.02)
            nn.init.normal_(block.attn.rel_pos_w, std=0.02)
            inp = x.clone().requires_grad_()

            def step():
                with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                    out = block(inp)
                out.float().sum().backward()

            try:
                step()  # compiles flex
                _reset_peak(device)
                ms = 1e3 * _timed(step, device, warmup=0 if smoke else 3, steps=1 if smoke else 20)
                results[impl] = {"fwd_bwd_ms": ms, "peak_mb": _peak_mb(device)}
            except Exception as exc:  # record and go on: one missing kernel should not hide the others
                results[impl] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
            finally:
                block = inp = None
        grids[str(grid)] = results
    return {"dim": dim, "heads": heads, "dtype": "bf16" if device == "cuda" else "fp32", "grids": grids}


def section_backbone(smoke: bool) -> dict:
    """ViT-B + simple feature pyramid alone, forward + backward, fp16 autocast (the detection recipe's AMP),
    batch 1 at 512 and 1024 px: ours (sdpa, chunked, explicit) against detectron2's ViT + SimpleFeaturePyramid with
    the same weights, interleaved round by round; peak memory is the rise of ``max_memory_allocated`` over what is
    allocated before the step (all models stay resident); stream synchronisations in one step (at batch 1 the step
    is bound by how fast the host queues kernels, and each synchronisation stops it queueing ahead)."""
    from functools import partial

    import torch

    from benchmarks import backbone_speed

    device = _device(smoke)
    variants = ("ours sdpa", "ours chunked", "ours explicit", "detectron2")
    size = "smoke" if smoke else "base"
    out = {}
    for img in (128,) if smoke else (512, 1024):
        models = {v: backbone_speed.build(v, size, img).to(device).train() for v in variants}
        x = torch.randn(1, 3, img, img, device=device)
        autocast = torch.autocast(device, dtype=torch.float16, enabled=device == "cuda")

        def step(v):
            with autocast:
                levels = models[v](x)
            loss = sum(level.float().sum() for level in levels.values())
            loss.backward()
            models[v].zero_grad(set_to_none=True)

        with torch.no_grad(), autocast:  # the same function, else the comparison is void
            ref = models[variants[0]](x)
            max_diff = {v: max((level.float() - ref[k].float()).abs().max().item() for k, level in models[v](x).items())
                        for v in variants[1:]}
        times = {v: [] for v in variants}
        for r in range(1 if smoke else 13):  # 3 warm-up rounds
            for v in variants:
                _sync(device)
                start = time.perf_counter()
                step(v)
                _sync(device)
                if smoke or r >= 3:
                    times[v].append(time.perf_counter() - start)
        peaks, syncs = {}, {}
        for v in variants:
            syncs[v] = _stream_syncs(partial(step, v), device)
            _reset_peak(device)
            before = torch.cuda.memory_allocated() if device == "cuda" else 0
            step(v)
            peaks[v] = (torch.cuda.max_memory_allocated() - before) / 2**20 if device == "cuda" else None
        ref_ms = statistics.median(times["detectron2"])
        out[str(img)] = {v: {"fwd_bwd_ms": 1e3 * statistics.median(times[v]),
                             "speed_vs_detectron2": ref_ms / statistics.median(times[v]),
                             "peak_rise_mb": peaks[v], "max_abs_diff_vs_sdpa": max_diff.get(v, 0.0),
                             "stream_syncs": syncs[v]}
                         for v in variants}
        models = None
    return {"model": f"ViT-{size} + simple feature pyramid", "batch": 1,
            "dtype": "fp16 autocast" if device == "cuda" else "fp32", "results": out}


def section_mae(smoke: bool, variants=("ours", "official", "ours w/ [M]")) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.pretrain_speed import build

    device = _device(smoke)
    size, img, batch = ("base", 32, 2) if smoke else ("large", 224, 128)  # smoke: ViT-B shrunk to 64 x 2 blocks
    peak = next((v for k, v in PEAK_BF16.items() if device == "cuda" and k in torch.cuda.get_device_name()), None)
    results = {}
    for variant in variants:
        torch.manual_seed(0)
        try:
            smaller = dict(embed_dim=64, depth=2, num_heads=2, decoder_embed_dim=32, decoder_depth=1,
                           decoder_num_heads=2) if smoke else {}
            model, make_optimizer, loss_fn, _ = build(variant.removesuffix(" compiled"), size, img, **smaller)
            model.to(device)
            optimizer = make_optimizer(model)
            run = torch.compile(model) if variant.endswith(" compiled") else model
            images = torch.randn(batch, 3, img, img, device=device)

            def step():
                with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                    loss = run(images, 0.75)[0]
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)

            with FlopCounterMode(display=False) as counter:  # eager model: the compiled one does the same math
                with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
                    loss = model(images, 0.75)[0]
                loss.backward()
            optimizer.zero_grad(set_to_none=True)
            flops = counter.get_total_flops()
            step()  # compiles
            _reset_peak(device)
            seconds = _timed(step, device, warmup=0 if smoke else 5, steps=1 if smoke else 20)
            results[variant] = {"step_s": seconds, "images_per_s": batch / seconds, "tflop_per_step": flops / 1e12,
                                "mfu": flops / seconds / peak if peak else None, "peak_mb": _peak_mb(device)}
        except Exception as exc:
            results[variant] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
        finally:
            model = optimizer = run = None
    return {"model": f"mae_vit_{size}_patch16", "img": img, "batch": batch, "peak_flops": peak,
            "dtype": "bf16" if device == "cuda" else "fp32", "results": results}


def section_mae_compiled(smoke: bool) -> dict:
    """``ours`` and ``ours w/ [M]`` under ``torch.compile`` (the visible-only ratio compiled against compiled):
    last, as compiling ViT-L takes a minute or two."""
    return section_mae(smoke, ("ours compiled", "ours w/ [M] compiled"))


def section_detection(smoke: bool) -> dict:
    from benchmarks import detection_speed

    device = _device(smoke)
    size, img = ("smoke", 128) if smoke else ("base", 1024)
    results = {}
    for variant in detection_speed.VARIANTS:
        try:
            r = detection_speed.measure(variant, size, batch=1, steps=1 if smoke else 10, warmup=0 if smoke else 3,
                                        img=img, device=device, threads=None)
            results[variant] = {"step_s": r["step_s"], "backbone_s": r["backbone_s"],
                                "peak_mb": r.get("peak_cuda_mb")}
        except Exception as exc:
            results[variant] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
    return {"model": f"Mask R-CNN ViTDet ViT-{size}", "img": img, "batch": 1,
            "dtype": "fp16 autocast" if device == "cuda" else "fp32", "results": results}


def section_upernet(smoke: bool) -> dict:
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample

    from pretrain.config import read_mmengine_config
    from segmentation.frameworks import framework_patches, mmseg_build_notices_off  # registers PlainViT & co.

    device = _device(smoke)
    config = "demo_tiny.py" if smoke else "upernet_vit_b_supervised_ade20k_512x512_160k.py"
    cfg = read_mmengine_config(HERE.parent / "configs" / "segmentation" / config)
    cfg.model.pretrained = None
    img, batch = (cfg.crop_size[0], 2) if smoke else (512, 2)
    init_default_scope("mmseg")
    with framework_patches(), mmseg_build_notices_off():  # as segmentation.train builds it
        model = MODELS.build(cfg.model).to(device).train()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper if device == "cuda"
                                  else {**cfg.optim_wrapper, "type": "OptimWrapper"})
    g = torch.Generator().manual_seed(0)
    data = {"inputs": [torch.randint(0, 256, (3, img, img), dtype=torch.uint8, generator=g) for _ in range(batch)],
            "data_samples": []}
    for _ in range(batch):
        sample = SegDataSample(metainfo={"img_shape": (img, img), "ori_shape": (img, img)})
        sample.gt_sem_seg = PixelData(data=torch.randint(0, cfg.model.decode_head.num_classes, (1, img, img),
                                                         generator=g))
        data["data_samples"].append(sample)
    _reset_peak(device)
    seconds = _timed(lambda: model.train_step(data, wrapper), device, warmup=0 if smoke else 3,
                     steps=1 if smoke else 10)
    return {"model": "UperNet ViT-B" if not smoke else "UperNet (demo_tiny)", "img": img, "batch": batch,
            "dtype": "fp16 AmpOptimWrapper" if device == "cuda" else "fp32", "step_s": seconds,
            "peak_mb": _peak_mb(device)}


def run_section(name: str, smoke: bool, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.gpu", "--section", name] + (["--smoke"] if smoke else [])
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1][:500] if proc.stderr.strip() else f"rc {proc.returncode}"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.perf_counter() - start
    return out


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(results: dict) -> str:
    lines = [f"{results['device']} | torch {results['torch']} | {'smoke (CPU, tiny sizes)' if results['smoke'] else ''}"]
    att = results["attention"]
    if "grids" in att:
        for grid, res in att["grids"].items():
            lines.append(f"\nattention: one global block, {grid}x{grid} tokens, {att['dim']} wide, {att['dtype']}, "
                         "forward + backward")
            for impl, r in res.items():
                lines.append(f"  {impl:10s} " + (f"{r['fwd_bwd_ms']:8.2f} ms  peak {_fmt(r['peak_mb'], '.0f')} MiB"
                                                 if "fwd_bwd_ms" in r else r.get("error") or r.get("skipped")))
    else:
        lines.append(f"\nattention: {att.get('error') or att.get('skipped')}")
    bb = results["backbone"]
    if "results" in bb:
        for img, res in bb["results"].items():
            lines.append(f"\n{bb['model']}, batch 1, {img} px, {bb['dtype']}, forward + backward")
            for v, r in res.items():
                lines.append(f"  {v:14s} {r['fwd_bwd_ms']:8.2f} ms  {r['speed_vs_detectron2']:.2f}x detectron2  "
                             f"peak rise {_fmt(r['peak_rise_mb'], '.0f')} MiB  max |diff| {r['max_abs_diff_vs_sdpa']:.2g}"
                             + (f"  syncs {r['stream_syncs']}" if r.get("stream_syncs") is not None else ""))
    else:
        lines.append(f"\nbackbone: {bb.get('error') or bb.get('skipped')}")
    mae = results["mae"]
    if "results" in mae:
        lines.append(f"\nMAE {mae['model']}, batch {mae['batch']}, {mae['img']} px, {mae['dtype']}")
        compiled = results["mae_compiled"].get("results", {"ours compiled": results["mae_compiled"]})
        for variant, r in {**mae["results"], **compiled}.items():
            lines.append(f"  {variant:14s} " + (
                f"{r['images_per_s']:9.1f} img/s  {r['step_s']:.3f} s/step  MFU {_fmt(r['mfu'], '.1%')}  "
                f"peak {_fmt(r['peak_mb'], '.0f')} MiB" if "step_s" in r else r.get("error") or r.get("skipped")))
        steps = {v: r.get("step_s") for v, r in {**mae["results"], **compiled}.items()}
        if steps.get("ours") and steps.get("official"):
            lines.append(f"  step of the official code / ours: {steps['official'] / steps['ours']:.2f}x"
                         + (f" (compiled: {steps['official'] / steps['ours compiled']:.2f}x)"
                            if steps.get("ours compiled") else ""))
        if steps.get("ours") and steps.get("ours w/ [M]"):
            lines.append(f"  visible-only speed-up (step w/ [M] / ours): {steps['ours w/ [M]'] / steps['ours']:.2f}x"
                         + (f" (compiled: {steps['ours w/ [M] compiled'] / steps['ours compiled']:.2f}x)"
                            if steps.get("ours compiled") and steps.get("ours w/ [M] compiled") else ""))
    else:
        lines.append(f"\nMAE: {mae.get('error') or mae.get('skipped')}")
    det = results["detection"]
    if "results" in det:
        lines.append(f"\n{det['model']}, batch {det['batch']}, {det['img']} px, {det['dtype']}")
        for variant, r in det["results"].items():
            lines.append(f"  {variant:11s} " + (
                f"{r['step_s']:.3f} s/iter (backbone fwd+bwd {r['backbone_s']:.3f} s)  "
                f"peak {_fmt(r['peak_mb'], '.0f')} MiB" if "step_s" in r else r["error"]))
    else:
        lines.append(f"\ndetection: {det.get('error') or det.get('skipped')}")
    seg = results["upernet"]
    lines.append(f"\n{seg['model']}, batch {seg['batch']}, {seg['img']} px, {seg['dtype']}: {seg['step_s']:.3f} "
                 f"s/iter, peak {_fmt(seg['peak_mb'], '.0f')} MiB" if "step_s" in seg else
                 f"\nUperNet: {seg.get('error') or seg.get('skipped')}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny sizes: the same code paths, in seconds")
    parser.add_argument("--out", type=Path, default=None,
                        help="results JSON (default benchmarks/gpu_results.json; none with --smoke)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS, help="run these sections only")
    parser.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)  # a child process
    args = parser.parse_args(argv)
    if args.section:
        if args.smoke:
            import torch
            torch.set_num_threads(1)
        print(json.dumps(globals()[f"section_{args.section}"](args.smoke)))
        return 0

    import torch
    device = _device(args.smoke)
    results = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
               "smoke": args.smoke, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    # one H100 / H200 (measured): each section well under a minute, the two compiled MAE models 1-2 minutes;
    # the limits stop a section that hangs
    limits = {"attention": 60, "backbone": 75, "mae": 90, "detection": 100, "upernet": 60, "mae_compiled": 180}
    out = args.out or (None if args.smoke else HERE / "gpu_results.json")
    for name in SECTIONS:
        if name not in args.only:
            results[name] = {"skipped": "not in --only"}
            continue
        if args.smoke and name == "mae_compiled":
            results[name] = {"skipped": "torch.compile is not timed in --smoke"}
            continue
        results[name] = run_section(name, args.smoke, limits[name] * (4 if args.smoke else 1))
        print(f"{name}: done in {results[name].get('wall_s', 0):.0f} s: {json.dumps(results[name])}", file=sys.stderr,
              flush=True)
        if out:  # after every section, so that a run stopped part-way keeps what it measured
            out.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    if out:
        print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
