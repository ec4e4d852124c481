"""``mae-transfer demo``: the whole toolkit end to end on generated data, on CPU, with a fixed seed.

1. generate the data world (unlabelled images, a classification set, COCO and ADE20K-format scenes);
2. MAE-pretrain a small ViT on the unlabelled images and export its encoder (MAE release format);
3. train the same ViT supervised on the classification set (the analogue of the IN-1K supervised baseline);
4. Mask R-CNN (detectron2) and 5. UperNet (mmseg) from each of MAE / supervised / random init, with the same
   config machinery as the real COCO / ADE20K runs (configs/*/demo_tiny.py: sizes and schedule scaled down);
6. the compare table, a reconstruction figure and the loss curves.

Every stage writes into one output folder. A stage that already finished there is reused (``--fresh`` starts
over); the numbers printed are whatever the runs measured, at toy scale, not the papers' numbers.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from backbone import atomic_torch_save, read_run_record, read_state_dict
from mae_transfer.synthetic import SyntheticSpec, generate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
INITS = ("mae", "supervised", "random")
# The demo_tiny configs of pretrain/, detection/ and segmentation/ share one encoder: ViT-Tiny width (192, 3 heads),
# 4 blocks, patch 16, 128 px images. The demo only sets data paths and the length of each schedule.


@dataclass(frozen=True)
class Plan:
    """How much of everything a demo run does."""
    data: SyntheticSpec
    pretrain_epochs: int
    supervised_epochs: int
    detection_iters: int
    segmentation_iters: int


PLANS = {
    "default": Plan(SyntheticSpec(seed=0, image_size=128, num_pretrain=512, num_classify_train=48,
                                  num_classify_val=12, classify_image_size=128, num_coco_train=96,
                                  num_coco_val=24, num_ade_train=96, num_ade_val=24, max_objects=4),
                    pretrain_epochs=40, supervised_epochs=20, detection_iters=200, segmentation_iters=150),
    "quick": Plan(SyntheticSpec(seed=0, image_size=128, num_pretrain=256, num_classify_train=24,
                                num_classify_val=6, classify_image_size=128, num_coco_train=48, num_coco_val=8,
                                num_ade_train=48, num_ade_val=8, max_objects=3),
                  pretrain_epochs=8, supervised_epochs=6, detection_iters=60, segmentation_iters=40),
}


class Stages:
    """Runs named stages in order, printing progress; a stage whose output is complete is reused."""

    def __init__(self, total: int):
        self.total, self.index, self.started = total, 0, time.monotonic()

    def run(self, name: str, finished: Callable[[], bool], work: Callable[[], object]) -> None:
        self.index += 1
        prefix = f"[{self.index}/{self.total}] {name}"
        if finished():
            print(f"{prefix}: reused (finished in an earlier run)", flush=True)
            return
        print(f"{prefix} ...", flush=True)
        start = time.monotonic()
        work()
        print(f"{prefix}: done in {time.monotonic() - start:.0f} s "
              f"(total {time.monotonic() - self.started:.0f} s)", flush=True)


def finished_run(folder: Path) -> bool:
    try:
        return read_run_record(folder)["status"] == "finished"
    except ValueError:
        return False


def _pretrain_overrides(plan: Plan, data: Path) -> dict:
    return dict(data_path=str(data), dataset="synthetic_pretrain", epochs=plan.pretrain_epochs,
                warmup_epochs=max(1, plan.pretrain_epochs // 10), num_workers=0, tensorboard=False)


def _supervised_overrides(plan: Plan, train: Path, val: Path) -> dict:
    return dict(data_path=str(train), val_path=str(val), dataset="synthetic_classify",
                epochs=plan.supervised_epochs, warmup_epochs=1, num_workers=0, tensorboard=False)


def _detection_overrides(iters: int) -> list[str]:
    """The demo config's schedule stretched to ``iters``: steps at 88.9 % and 96.3 %, 1/12 warm-up."""
    milestones = [round(iters * 0.889), round(iters * 0.963)]
    return [f"train.max_iter={iters}", f"lr_multiplier.scheduler.num_updates={iters}",
            f"lr_multiplier.scheduler.milestones={milestones}", f"lr_multiplier.warmup_length={1 / 12:.4f}",
            f"train.checkpointer.period={iters}",
            # a schedule this short leaves most scores under ViTDet's 0.05 cut; AP ranks every detection anyway
            "model.roi_heads.box_predictor.test_score_thresh=0.0"]


def _segmentation_options(iters: int) -> dict:
    warmup = max(10, iters // 20)  # as configs/segmentation/demo_tiny.py: a LinearLR of n steps ends at (n-1)/n
    return {"train_cfg.max_iters": iters, "train_cfg.val_interval": iters,
            "default_hooks.checkpoint.interval": iters,
            "param_scheduler": [
                dict(type="LinearLR", start_factor=1e-6, by_epoch=False, begin=0, end=warmup),
                dict(type="PolyLR", eta_min=0.0, power=1.0, begin=warmup, end=iters, by_epoch=False)]}


def run_demo(out: Path, plan: Plan, fresh: bool = False) -> dict[str, Path]:
    """Run every stage into ``out`` and return the paths of the results."""
    import pretrain  # heavy imports only once the demo starts

    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    stages = Stages(total=6 + 2 * len(INITS))
    data: dict[str, Path] = {}

    def make_data():
        data.update(generate(out / "data", plan.data))

    stages.run("generate data", lambda: False, make_data)

    mae_dir, mae_encoder = out / "pretrain", out / "pretrain" / "mae_encoder.pth"
    stages.run("MAE pretraining", lambda: finished_run(mae_dir) and mae_encoder.is_file(), lambda: pretrain.export_encoder(
        pretrain.train_mae(CONFIGS / "pretrain" / "demo_tiny.py", mae_dir,
                           overrides=_pretrain_overrides(plan, data["pretrain"])), mae_encoder))

    sup_dir, sup_encoder = out / "supervised", out / "supervised" / "supervised_vit.pth"

    def supervised():
        result = pretrain.finetune(CONFIGS / "pretrain" / "demo_tiny_finetune.py", sup_dir, overrides=_supervised_overrides(
            plan, data["classify_train"], data["classify_val"]))
        atomic_torch_save({"model": read_state_dict(result.checkpoint)}, sup_encoder)  # timm file layout

    stages.run("supervised training (classification)", lambda: finished_run(sup_dir) and sup_encoder.is_file(),
               supervised)
    checkpoints = {"mae": mae_encoder, "supervised": sup_encoder, "random": None}

    for init in INITS:
        run_dir = out / "detection" / init

        def detect(init=init, run_dir=run_dir):
            import detection
            detection.train(CONFIGS / "detection" / "demo_tiny.py", run_dir, _detection_overrides(plan.detection_iters),
                            init_checkpoint=checkpoints[init] and str(checkpoints[init]), init=init,
                            train_json=data["coco_train_json"], train_images=data["coco_train_images"],
                            val_json=data["coco_val_json"], val_images=data["coco_val_images"],
                            dataset_name="synthetic_coco")

        stages.run(f"Mask R-CNN, {init} init", lambda run_dir=run_dir: finished_run(run_dir), detect)

    for init in INITS:
        run_dir = out / "segmentation" / init

        def segment(init=init, run_dir=run_dir):
            import segmentation
            segmentation.train(CONFIGS / "segmentation" / "demo_tiny.py", run_dir,
                               _segmentation_options(plan.segmentation_iters), init_checkpoint=checkpoints[init],
                               init=init, data_root=data["ade_root"])

        stages.run(f"UperNet, {init} init", lambda run_dir=run_dir: finished_run(run_dir), segment)

    results = {"table": out / "comparison.md", "csv": out / "comparison.csv", "chart": out / "comparison.png",
               "reconstructions": out / "reconstructions.png", "loss_curves": out / "loss_curves.png"}

    def compare():
        from mae_transfer.compare import compare_runs, render_markdown, write_csv, write_png
        comparison = compare_runs([out / "detection", out / "segmentation"])
        results["table"].write_text(render_markdown(comparison))
        write_csv(comparison, results["csv"])
        write_png(comparison, results["chart"])

    stages.run("compare", lambda: False, compare)
    stages.run("reconstruction figure", lambda: False, lambda: pretrain.visualize(
        _latest_checkpoint(mae_dir), data["coco_val_images"], results["reconstructions"], num_images=4, seed=0))
    stages.run("loss curves", lambda: False, lambda: plot_loss_curves(out, results["loss_curves"]))
    return results


def _latest_checkpoint(run_dir: Path) -> Path:
    return max((run_dir / "checkpoints").glob("*.pth"), key=lambda p: p.stat().st_mtime)


def _jsonl(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def loss_curves(out: Path) -> dict[str, tuple[list[float], list[float]]]:
    """(steps, losses) per run, from each framework's own log: log.jsonl (pretrain), detectron2's metrics.json,
    mmengine's vis_data/scalars.json."""
    curves = {}
    for name, path, step_key, loss_key in (
        [("MAE pretraining", out / "pretrain" / "log.jsonl", "step", "loss"),
         ("supervised", out / "supervised" / "log.jsonl", "step", "loss")]
        + [(f"Mask R-CNN {i}", out / "detection" / i / "metrics.json", "iteration", "total_loss") for i in INITS]
        + [(f"UperNet {i}", p, "step", "loss") for i in INITS
           for p in sorted((out / "segmentation" / i).glob("*/vis_data/scalars.json"))[-1:]]
    ):
        if path.is_file():
            rows = [r for r in _jsonl(path) if step_key in r and loss_key in r]
            curves[name] = ([r[step_key] for r in rows], [r[loss_key] for r in rows])
    return curves


def plot_loss_curves(out: Path, path: Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = loss_curves(out)
    groups = [("pretraining and classification", [n for n in curves if not n.startswith(("Mask", "Uper"))]),
              ("Mask R-CNN (detectron2)", [n for n in curves if n.startswith("Mask")]),
              ("UperNet (mmseg)", [n for n in curves if n.startswith("Uper")])]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, (title, names) in zip(axes, groups):
        for name in names:
            ax.plot(*curves[name], label=name)
        ax.set(title=title, xlabel="step", ylabel="training loss")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mae-transfer demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("output/demo"), help="output folder (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smaller run (under 5 minutes on 2 cores)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of reusing finished stages")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    plan = PLANS["quick" if args.quick else "default"]
    print(f"mae-transfer demo ({'quick' if args.quick else 'default'} plan) into {args.out}", flush=True)
    started = time.monotonic()
    results = run_demo(args.out, plan, fresh=args.fresh)
    print("\n" + results["table"].read_text())
    print(f"finished in {time.monotonic() - started:.0f} s; outputs in {args.out}:")
    for name, path in results.items():
        print(f"  {name:16} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
