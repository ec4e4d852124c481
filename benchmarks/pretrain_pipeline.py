"""MAE pretraining: is the input pipeline holding the model step back?

    python -m benchmarks.pretrain_pipeline                       # demo encoder, 512 generated images, 3 rounds
    python -m benchmarks.pretrain_pipeline --steps 24 --rounds 5 --threads 2 --workers 0 2

Three runs of the real training loop (``pretrain.engine.fit`` with the job ``pretrain.train`` builds) on the demo
config (``configs/pretrain/demo_tiny.py``: ViT 192 wide, 4 blocks, patch 16, 128 px, 2-block decoder, batch 64),
interleaved round by round so that other load on the machine hits all of them alike:

- ``model only``: one random batch handed out again at every step, no input pipeline at all;
- ``per-file PIL``: ``decode_once=False``: each sample read from its PNG and augmented with PIL
  (``ImageFiles`` + ``pretrain_transform``), collated by the DataLoader;
- ``decoded once``: the default: the folder decoded once into a uint8 memory map, crops, flips and normalisation
  done per batch in torch (``DecodedImages`` + ``PretrainBatches``); the one-off decoding is timed separately.

Each step is timed from one call of the loss to the next, so it holds everything the loop does (fetching the
batch, forward, backward, AdamW, logging, and at an epoch's start the new DataLoader); each run's first step is left
out. Two clocks: wall time, and the process's CPU time. On a machine shared with other jobs the wall time of a step
depends on what else runs at that moment; the CPU time much less, and with one torch thread and no DataLoader
workers (the demo's setting) images per CPU-second is the rate the run would have on an idle core. With workers,
their CPU time is not in the process's, so only wall time is reported. Without workers the CPU time spent making
each batch (the dataset's samples and their collation, as the DataLoader calls them) is also measured inside the
run: its share of the step is the input pipeline's cost, free of the round-to-round drift of a shared machine.

Printed: images/s per round and the median, and each pipeline's rate as a fraction of the model-only rate of the
same round. Data: ``mae_transfer.synthetic`` scenes at 128 px (generated once into ``--data``).
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mae_transfer.compare import markdown_table

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "pretrain" / "demo_tiny.py"
PIPELINES = ("model only", "per-file PIL", "decoded once")


class RandomBatches(Dataset):
    """The model's input without an input pipeline: one random batch, handed out again at every step."""

    def __init__(self, num_images: int, batch: int, size: int, noise_tokens: int):
        generator = torch.Generator().manual_seed(0)
        self.num_images = num_images
        self.batch = {"image": torch.randn(batch, 3, size, size, generator=generator),
                      "noise": torch.rand(batch, noise_tokens, generator=generator),
                      "label": torch.full((batch,), -1), "skipped": torch.zeros(batch, dtype=torch.long)}

    def __len__(self) -> int:
        return self.num_images

    def set_epoch(self, epoch: int) -> None:
        pass

    def __getitems__(self, indices):
        return self.batch

    @staticmethod
    def collate_fn(batch):
        return batch


def generated_images(folder: Path, count: int) -> Path:
    from mae_transfer.synthetic import SyntheticSpec, generate
    spec = SyntheticSpec(seed=0, image_size=128, num_pretrain=count, num_classify_train=1, num_classify_val=1,
                         num_coco_train=1, num_coco_val=1, num_ade_train=1, num_ade_val=1)
    return generate(folder, spec)["pretrain"]


def measure(pipeline: str, data: Path, out: Path, steps: int, workers: int) -> dict:
    """One run of ``steps`` optimizer steps: images per second and per CPU-second over all steps but the first,
    and the time taken to prepare the data set (the one-off decoding, for "decoded once")."""
    from pretrain import build_mae, load_config
    from pretrain.engine import fit, runtime, seed_everything
    from pretrain.train import mae_job, pretrain_set

    cfg = load_config("pretrain", CONFIG, data_path=str(data), max_steps=steps, num_workers=workers,
                      tensorboard=False, checkpoint_every=10**9, decode_once=pipeline == "decoded once")
    with runtime(cfg) as rt:
        seed_everything(cfg.seed)
        model = build_mae(cfg.model, **cfg.model_kwargs())
        start = time.perf_counter()
        if pipeline == "model only":
            train_set = RandomBatches(sum(1 for _ in data.rglob("*.png")), cfg.batch_size, cfg.input_size, model.num_patches)
        else:
            train_set = pretrain_set(cfg, rt, out, noise_tokens=model.num_patches)
        prepare_s = time.perf_counter() - start
        job = mae_job(cfg, model, train_set)
        marks = []  # (wall, CPU) time at each call of the loss: one step apart

        def timed_loss(model, batch, loss=job.loss):
            marks.append((time.perf_counter(), time.process_time()))
            return loss(model, batch)

        job.loss = timed_loss
        fetch_cpu = time_fetching(train_set)
        fit(job, cfg, rt, out)
    (wall_start, cpu_start), (wall_end, cpu_end) = marks[1], marks[-1]
    images = cfg.batch_size * (len(marks) - 2)
    fetch = sum(fetch_cpu[2:len(marks)])  # the batches of the counted steps (the last fetch is consumed after)
    return {"images_per_s": images / (wall_end - wall_start), "images_per_cpu_s": images / (cpu_end - cpu_start),
            "fetch_cpu_share": fetch / (cpu_end - cpu_start), "prepare_s": prepare_s}


def pixel_agreement(data: Path, count: int = 64, epochs: int = 2) -> dict:
    """How far the two pipelines' images are apart for the same samples (same crop, flip and mask by design):
    |difference| in 0..255 pixel levels over ``count`` images and ``epochs`` epochs, and whether the masks agree."""
    from pretrain import load_config
    from pretrain.data import (IMAGENET_STD, DecodedImages, ImageFiles, PretrainBatches, list_images,
                               pretrain_transform)
    cfg = load_config("pretrain", CONFIG, data_path=str(data))
    files = list_images(data)[:count]
    per_file = ImageFiles(files, pretrain_transform(cfg.input_size, cfg.crop_scale), noise_tokens=64)
    with tempfile.TemporaryDirectory() as tmp:
        batched = PretrainBatches(DecodedImages.open(files, Path(tmp), cfg.stored_max_side), cfg.input_size,
                                  cfg.crop_scale, noise_tokens=64)
        diffs, same_masks = [], True
        for epoch in range(epochs):
            per_file.set_epoch(epoch)
            batched.set_epoch(epoch)
            batch = batched.__getitems__(list(range(len(files))))
            for i in range(len(files)):
                item = per_file[i]
                diffs.append((item["image"] - batch["image"][i]).abs() * torch.tensor(IMAGENET_STD).view(3, 1, 1) * 255)
                same_masks &= torch.equal(item["noise"], batch["noise"][i])
    diff = torch.stack(diffs)
    return {"mean": diff.mean().item(), "max": diff.max().item(), "above_1": (diff > 1).float().mean().item(),
            "same_masks": same_masks}


def time_fetching(train_set) -> list[float]:
    """CPU seconds each batch takes to make (samples and collation), as the DataLoader of ``fit`` fetches them
    (in this process: without workers)."""
    from torch.utils.data import default_collate

    spent: list[float] = []
    make_samples = getattr(train_set, "__getitems__", None) or (lambda indices: [train_set[i] for i in indices])
    collate = getattr(train_set, "collate_fn", None) or default_collate

    def timed_samples(indices):
        spent.append(-time.process_time())
        return make_samples(indices)

    def timed_collate(samples):
        batch = collate(samples)
        spent[-1] += time.process_time()
        return batch

    train_set.__getitems__, train_set.collate_fn = timed_samples, timed_collate  # what torch's fetcher calls
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pretrain_pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=512, help="generated 128 px images (the demo's 512)")
    parser.add_argument("--steps", type=int, default=24, help="optimizer steps per run (batch 64; first not timed)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--workers", type=int, nargs="+", default=[0],
                        help="DataLoader workers to measure the two pipelines with (the demo uses 0)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "mae_transfer_pipeline_bench")
    args = parser.parse_args(argv)
    if args.steps < 3:
        parser.error(f"--steps must be at least 3 (the first is not timed, rates need two more), got {args.steps}")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    data = generated_images(args.data, args.images)
    agree = pixel_agreement(data)
    print(f"decoded once vs per-file PIL, same samples: pixels differ by {agree['mean']:.4f} levels on average, "
          f"{agree['max']:.2f} at most, {agree['above_1']:.3%} by more than 1 level (of 255); masking noise "
          f"{'identical' if agree['same_masks'] else 'DIFFERENT'}", flush=True)
    runs = [("model only", 0)] + [(p, w) for w in args.workers for p in PIPELINES[1:]]
    results: dict[tuple[str, int], list[dict]] = {run: [] for run in runs}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for k in range(len(runs)):
                run = runs[(k + r) % len(runs)]  # a different order each round
                out = Path(tmp) / f"round{r}" / f"{run[0].replace(' ', '_')}_{run[1]}"
                results[run].append(measure(run[0], data, out, args.steps, run[1]))
                m = results[run][-1]
                print(f"round {r + 1}: {run[0]} ({run[1]} workers): {m['images_per_s']:.1f} images/s, "
                      f"{m['images_per_cpu_s']:.1f} images/CPU-s, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    load_after = os.getloadavg()

    print(f"\ndemo encoder ({CONFIG.name}), batch 64, {args.images} images of 128 px, {args.steps} steps per run "
          f"(first not counted), {args.rounds} interleaved rounds; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {args.threads} torch threads, torch {torch.__version__}; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after\n")
    for clock, key in (("wall clock", "images_per_s"), ("CPU time", "images_per_cpu_s")):
        unit = "images/s" if key == "images_per_s" else "images/CPU-s"
        shown = [run for run in runs if key == "images_per_s" or run[1] == 0]
        cpu = key == "images_per_cpu_s"
        print(f"\n{clock}:\n")
        header = (["pipeline", "workers", f"{unit} per round", f"median {unit}",
                   "end to end / model only (median over rounds)"]
                  + (["share of the step's CPU time spent making the batch (median)"] if cpu else [])
                  + ["one-off decoding (s, wall)"])
        model_only = [m[key] for m in results[runs[0]]]
        rows = []
        for run in shown:
            rates = [m[key] for m in results[run]]
            ratios = [rate / base for rate, base in zip(rates, model_only)]
            decode = f"{statistics.median(m['prepare_s'] for m in results[run]):.1f}" \
                if run[0] == "decoded once" else ""
            share = [f"{statistics.median(m['fetch_cpu_share'] for m in results[run]):.1%}"] if cpu else []
            rows.append([run[0], str(run[1]) if run[0] != "model only" else "", ", ".join(f"{x:.1f}" for x in rates),
                         f"{statistics.median(rates):.1f}", f"{statistics.median(ratios):.0%}", *share, decode])
        print("\n".join(markdown_table(header, rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
