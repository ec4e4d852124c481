"""MAE pretraining of the demo, checkpoint by checkpoint: the loss curve, a reconstruction figure and the probes of
``mae_transfer/probe.py`` at every kept checkpoint, next to a random encoder (and any other encoder given).

    PYTHONPATH=. python -m benchmarks.demo_diagnostics.pretrain_curve RUN_DIR --data DATA --out FOLDER \
        [--encoder supervised=PATH ...]

RUN_DIR is a pretraining run folder (``log.jsonl``, ``checkpoints/step_*.pth``; keep them with
``keep_checkpoints=N``); DATA a ``mae_transfer.synthetic`` generation with a ``classify`` and an ``ade`` part.
Writes FOLDER/loss_curve.png, FOLDER/reconstructions_step_N.png, FOLDER/probes.json and prints a Markdown table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from mae_transfer.probe import probe


def loss_curve(run_dir: Path, path: Path, marks: list[int]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    rows = [r for r in rows if "step" in r and "loss" in r]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8)
    for step in marks:
        ax.axvline(step, color="grey", ls=":", lw=0.8)
    ax.set(xlabel="step", ylabel="norm-pix loss (masked patches)", title=f"MAE pretraining: {run_dir.name}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    import pretrain
    from pretrain.engine import CHECKPOINT_DIR, Checkpoints

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--encoder", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--images", type=Path, help="images for the reconstruction figures (default DATA/coco/val)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoints = Checkpoints(args.run_dir / CHECKPOINT_DIR).all()
    steps = [int(p.stem.split("_")[1]) for p in checkpoints]
    loss_curve(args.run_dir, args.out / "loss_curve.png", steps)
    done = json.loads((args.out / "probes.json").read_text()) if (args.out / "probes.json").is_file() else {}
    encoders = [("random", "random")] + [tuple(e.split("=", 1)) for e in args.encoder]
    for step, checkpoint in zip(steps, checkpoints):
        export = args.out / f"encoder_step_{step}.pth"
        pretrain.export_encoder(checkpoint, export)
        pretrain.visualize(checkpoint, args.images or args.data / "coco" / "val",
                           args.out / f"reconstructions_step_{step}.png", num_images=4, seed=0)
        encoders.append((f"MAE step {step}", str(export)))
    print("| encoder | k-NN top-1 | linear top-1 | patch recall, things | patch recall, stuff | patch acc. |")
    print("|---|---|---|---|---|---|")  # probe.py's other columns are in probes.json
    for name, path in encoders:
        if name not in done:
            done[name] = probe(path, args.data)
            (args.out / "probes.json").write_text(json.dumps(done, indent=1))
        r = done[name]
        print(f"| {name} | {r['knn_top1']:.1f} | {r['linear_top1']:.1f} | {r['patch_thing_recall']:.1f} | "
              f"{r['patch_stuff_recall']:.1f} | {r['patch_accuracy']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
