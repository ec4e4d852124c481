"""``mae-transfer demo``: the whole toolkit end to end on generated data, on CPU, with fixed seeds.

1. generate the data world: a labelled, object-centric pretraining set (the IN-1K analogue), a held-out
   classification set, and smaller labelled scene sets in COCO and ADE20K format;
2. MAE-pretrain a small ViT on the pretraining images (labels unused) and export its encoder (MAE release format);
3. train the same ViT supervised on the same images with their labels (the IN-1K supervised baseline);
4. Mask R-CNN (detectron2) and 5. UperNet (mmseg) from each of MAE / supervised / random init, one run per seed,
   with the same config machinery as the real COCO / ADE20K runs (configs/*/demo_tiny*.py);
6. the compare table (with each run's cost; the paper layout in LaTeX), a reconstruction figure and the loss curves.

Stages 1-5 are the plan's grid file (``configs/grid/demo*.py``) run by ``mae-transfer grid``'s local executor,
``--jobs`` runs at a time, each a process with one torch thread and its own log (OUT/jobs/). Every stage writes into
one output folder. A run that already finished there is reused (``--fresh`` starts over); the numbers printed are
whatever the runs measured, at toy scale, not the papers' numbers.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

from backbone import resolve_weights
from runlib import UserError, prepare_run_dir, run_command
from runlib.output_dir import check_output_dir, made_by
from mae_transfer.plot import plot_runs
from mae_transfer.synthetic import SyntheticSpec

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
GRIDS = {"quick": "demo_quick.py", "default": "demo.py", "paper": "demo_paper.py"}  # each plan as a grid file
# The demo_tiny configs of pretrain/, detection/ and segmentation/ share one encoder: ViT-Tiny width (192, 3 heads),
# 4 blocks, patch 16, 128 px images. The demo sets only data paths, data sizes, seeds and the number of epochs or
# iterations of each stage; learning rates, warm-ups and lr steps are the configs', as fractions of the run.
# Detection's per-init recipe (ViTDet Table 11: lr, weight decay, layer decay) is its own config file.
DETECTION_CONFIGS = {"mae": "demo_tiny.py", "supervised": "demo_tiny_supervised.py", "random": "demo_tiny_random.py"}


@dataclass(frozen=True)
class Plan:
    """How much of everything a demo run does.

    Shaped like the paper's regime: MAE and the supervised baseline see the same labelled, object-centric
    pretraining set (the IN-1K analogue; MAE ignores the labels), many more images than the labelled scenes
    the detectors and segmenters are fine-tuned on (the COCO / ADE20K analogues). ``seeds`` transfer runs per
    init and task (seeds 0..seeds-1); pretraining and the supervised baseline run once.
    """
    data: SyntheticSpec
    pretrain_epochs: int
    supervised_epochs: int
    detection_iters: int
    segmentation_iters: int
    seeds: int = 1
    about: str = ""


def _data(num_pretrain: int, coco_train: int, ade_train: int, val: int, classify_val: int) -> SyntheticSpec:
    return SyntheticSpec(seed=0, image_size=128, num_pretrain=num_pretrain, num_classify_train=0,
                         num_classify_val=classify_val, classify_image_size=128, num_coco_train=coco_train,
                         num_coco_val=val, num_ade_train=ade_train, num_ade_val=val, max_objects=4)


# Sizes chosen by cost and by what the transfer runs need (benchmarks/demo_diagnostics/README.md section 6).
# Cost, one torch thread per run, idle 2-core machine: about 0.75 CPU s per MAE step and 1.3 s per supervised step
# of 64 images, 0.5 s per Mask R-CNN and 0.3 s per UperNet iteration of 4 images, plus 20-40 s per run (start-up,
# evaluation); ``--jobs`` runs (default: one per core) share the cores. Length: at 100 iterations no init learned
# any object class in either task; UperNet needs about 400-600 iterations at the demo's lr before the first
# object classes appear, Mask R-CNN reaches APbox 5-6 in 300. Measured with 2 jobs on the idle 2 cores: quick
# 154 s (every stage once: the machinery, not the inits), default 763 s, paper 2,730 s (README).
PLANS = {
    "quick": Plan(_data(num_pretrain=256, coco_train=48, ade_train=48, val=8, classify_val=4),
                  pretrain_epochs=6, supervised_epochs=4, detection_iters=40, segmentation_iters=30,
                  about="every stage once, at the smallest size that runs (the test suite runs it)"),
    "default": Plan(_data(num_pretrain=768, coco_train=96, ade_train=96, val=24, classify_val=10),
                    pretrain_epochs=24, supervised_epochs=8, detection_iters=300, segmentation_iters=400,
                    about="the whole pipeline in about 15 minutes, one seed"),
    "paper": Plan(_data(num_pretrain=2048, coco_train=192, ade_train=192, val=48, classify_val=20),
                  pretrain_epochs=24, supervised_epochs=6, detection_iters=400, segmentation_iters=600, seeds=3,
                  about="the paper's proportions within an hour: pretraining sees 10x more images than each "
                        "transfer set, 3 seeds per transfer run"),
}


class Stages:
    """Runs named stages in order in this process, printing progress."""

    def __init__(self, total: int):
        self.total, self.index, self.started = total, 0, time.monotonic()

    def _prefix(self, name: str) -> str:
        self.index += 1
        return f"[{self.index}/{self.total}] {name}"

    def run(self, name: str, work: Callable[[], object]) -> None:
        prefix = self._prefix(name)
        print(f"{prefix} ...", flush=True)
        start, cpu = time.monotonic(), cpu_seconds()
        work()
        print(f"{prefix}: done in {time.monotonic() - start:.0f} s, {cpu_seconds() - cpu:.0f} s of CPU "
              f"(total {time.monotonic() - self.started:.0f} s)", flush=True)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the grid's local jobs, data-loader workers). With one thread per process it
    is about the wall time the same work takes on otherwise idle cores, whatever else shares them now."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def _epochs(config: Path, kind: str, epochs: int) -> dict:
    """``epochs`` and the config's warm-up at the same fraction of the run."""
    import pretrain
    cfg = pretrain.load_config(kind, config)
    return dict(epochs=epochs, warmup_epochs=cfg.warmup_epochs * epochs / cfg.epochs)


def _detection_overrides(config: Path, iters: int, seed: int) -> list[str]:
    """``iters`` iterations with the config's lr steps at the same fractions of the run (its warm-up is a
    fraction already), and ``seed``."""
    from detection.engine import load_lazy_config
    schedule = load_lazy_config(str(config)).lr_multiplier.scheduler
    milestones = [round(m * iters / schedule.num_updates) for m in schedule.milestones]
    return [f"train.max_iter={iters}", f"lr_multiplier.scheduler.num_updates={iters}",
            f"lr_multiplier.scheduler.milestones={milestones}", f"train.checkpointer.period={iters}",
            f"train.seed={seed}"]


def _segmentation_options(config: Path, iters: int, seed: int) -> dict:
    """``iters`` iterations with the config's warm-up (a LinearLR, then PolyLR) at the same fraction, and ``seed``."""
    from pretrain.config import read_mmengine_config
    cfg = read_mmengine_config(config)
    warmup, poly = cfg.param_scheduler
    end = max(1, round(warmup["end"] * iters / cfg.train_cfg.max_iters))
    return {"train_cfg.max_iters": iters, "train_cfg.val_interval": iters,
            "default_hooks.checkpoint.interval": iters, "randomness.seed": seed,
            "param_scheduler": [dict(warmup, end=end), dict(poly, begin=end, end=iters)]}


PLAN_FILE = "plan.json"
COMMAND = "demo"  # the output folder's marker (runlib.output_dir): --fresh empties only a folder it marked


def claim_output(out: Path, fresh: bool) -> None:
    """Make ``out`` the demo's folder: new, empty, or one an earlier demo made and marked (which ``fresh``
    empties). A folder holding anything else, or a symlink, is refused: the demo never writes over or deletes
    what it did not make."""
    if check_output_dir(out, COMMAND) and fresh:
        if not made_by(out, COMMAND):
            raise UserError(f"--out {out} was not made by mae-transfer demo; --fresh empties only a demo's folder")
        shutil.rmtree(out)
    prepare_run_dir(out, command=COMMAND, resume=True)


def check_plan(out: Path, plan: Plan, zoo: bool = False) -> None:
    """Record the plan (and where the encoders come from) in ``out``; an ``out`` holding another plan's stages is
    an error (they would be reused). The number of seeds may change: more seeds add runs next to the finished ones."""
    path = out / PLAN_FILE
    wanted = json.loads(json.dumps({k: v for k, v in asdict(plan).items() if k not in ("seeds", "about")}))
    if zoo:
        wanted["encoders"] = "zoo"
    stored = json.loads(path.read_text()) if path.is_file() else wanted
    if {key: stored.get(key) for key in wanted} != wanted:
        raise UserError(f"{out} holds a run of another plan ({path}); give another --out or add --fresh to start "
                        "over there")
    path.write_text(json.dumps(wanted, indent=1))


ZOO_ENCODERS = {"mae": "zoo:demo-mae", "supervised": "zoo:demo-supervised"}
ZOO_RECONSTRUCTION = "zoo:demo-mae-full"


def from_zoo(runs: list) -> list:
    """The plan's runs less its pretraining: each init's transfer runs start from the zoo's released encoder."""
    return [replace(run, weights=ZOO_ENCODERS.get(run.init, run.weights),
                    after=tuple(name for name in run.after if not name.startswith("pretrain/")))
            for run in runs if not run.name.startswith("pretrain/")]


def run_demo(out: Path, name: str, seeds: int | None = None, fresh: bool = False, jobs: int = 1,
             zoo: bool = False) -> dict[str, Path]:
    """Run every stage of plan ``name`` into ``out`` and return the paths of the results: the plan's grid file on
    the grid's local executor (``jobs`` runs at a time; a transfer run starts once the encoder it needs is
    exported, random-init runs fill the cores meanwhile), then the figures. With ``zoo`` the MAE and supervised
    encoders are the zoo's released ones (``mae-transfer zoo``) instead of pretrained here."""
    import pretrain  # heavy imports only once the demo starts
    from mae_transfer import grid

    plan = PLANS[name] if seeds is None else replace(PLANS[name], seeds=seeds)
    if zoo:
        for reference in (*ZOO_ENCODERS.values(), ZOO_RECONSTRUCTION):
            resolve_weights(reference)  # a zoo without the demo's entries fails here, before anything is written
    claim_output(out, fresh)
    check_plan(out, plan, zoo)
    grid_file = CONFIGS / "grid" / GRIDS[name]
    runs = grid.load_grid(grid_file, out, seeds=plan.seeds)
    grid.execute(from_zoo(runs) if zoo else runs, out, grid_file, grid.LocalExecutor(out), jobs=jobs, owned=True)

    results = {"table": out / "comparison.md", "latex": out / "comparison.tex", "csv": out / "comparison.csv",
               "chart": out / "comparison.png", "reconstructions": out / "reconstructions.png",
               "loss_curves": out / "loss_curves.png"}
    stages = Stages(total=2)
    stages.run("reconstruction figure", lambda: pretrain.visualize(
        ZOO_RECONSTRUCTION if zoo else latest_checkpoint(out / "pretrain" / "mae"), out / "data" / "coco" / "val",
        results["reconstructions"], num_images=4, seed=0))
    stages.run("loss curves", lambda: plot_runs([out], results["loss_curves"]))
    return results


def latest_checkpoint(run_dir: Path) -> Path:
    """The pretraining checkpoint of the highest step, as the engine picks it when resuming."""
    from pretrain.engine import CHECKPOINT_DIR, Checkpoints
    latest = Checkpoints(run_dir / CHECKPOINT_DIR).latest()
    if latest is None:
        raise FileNotFoundError(f"{run_dir / CHECKPOINT_DIR}: no pretraining checkpoint")
    return latest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mae-transfer demo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog="plans:\n" + "\n".join(
                                         f"  {name:8} {plan.about}" for name, plan in PLANS.items()))
    parser.add_argument("--plan", choices=sorted(PLANS), default="default", help="how much to run (default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="the same as --plan quick (under 5 minutes on 2 cores)")
    parser.add_argument("--seeds", type=int, help="transfer runs per init and task, seeds 0..N-1 (default: the plan's)")
    parser.add_argument("--out", type=Path, help="output folder (default output/demo, output/demo-PLAN for other plans)")
    parser.add_argument("--fresh", action="store_true", help="start over instead of reusing finished stages")
    parser.add_argument("--zoo", action="store_true",
                        help="transfer from the zoo's released encoders (zoo:demo-mae, zoo:demo-supervised; "
                             "mae-transfer zoo makes them) instead of pretraining both here")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="independent runs at a time, one torch thread each (default: the number of cores, "
                             "%(default)s here); the numbers do not depend on it")
    args = parser.parse_args(argv)
    name = "quick" if args.quick else args.plan
    plan = PLANS[name]
    if args.seeds is not None:
        if args.seeds < 1:
            parser.error(f"--seeds must be at least 1, got {args.seeds}")
        plan = replace(plan, seeds=args.seeds)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    out = args.out or Path("output/demo" if name == "default" else f"output/demo-{name}")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    print(f"mae-transfer demo ({name} plan, {plan.seeds} seed{'s' * (plan.seeds > 1)}) into {out}", flush=True)
    started = time.monotonic()

    def body():
        results = run_demo(out, name, seeds=args.seeds, fresh=args.fresh, jobs=args.jobs, zoo=args.zoo)
        print("\n" + results["table"].read_text())
        print(f"finished in {time.monotonic() - started:.0f} s ({cpu_seconds():.0f} s of CPU); outputs in {out}:")
        for key, path in results.items():
            print(f"  {key:16} {path}")
    return run_command("demo", body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
