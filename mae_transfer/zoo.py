"""``mae-transfer zoo``: make the demo zoo, the encoders ``make demo`` can start from (``zoo:demo-mae``,
``zoo:demo-supervised``; ``zoo:demo-mae-full`` keeps the decoder for the reconstruction figure).

    mae-transfer zoo build --plan gpu --out runs/zoo     # data, MAE pretraining, its supervised twin (resumable)
    mae-transfer zoo publish runs/zoo                    # fp16 files, probes and model cards into zoo/

Users of MAE download released weights and fine-tune; the demo does the same with encoders this project pretrained
itself on the generated world's object-centric pretraining images (the ImageNet analogue of
``mae_transfer/synthetic.py``), at a scale where MAE pretraining pays: the literature's small-scale successes see
10^7-10^8 images, which is minutes on one GPU and days on two CPU cores. Two plans share every stage and differ in
size only: ``gpu`` (65,536 images, the paper's recipe at batch 4096, 1.05 x 10^7 images seen) and ``cpu``
(16,384 images, the demo's small-batch recipe, 1.6 x 10^5 images seen). The supervised twin is the same model
trained on the same images with their labels for 300/1600 of MAE's images, the paper's ratio (Appendix A.2).

``build`` runs each stage to its end, reusing a finished one and resuming an interrupted one from its last
checkpoint (exactly: see ``pretrain/engine.py``), so a run killed at any point continues where it stopped.
``publish`` writes each encoder as fp16 in the MAE release layout (``{'model': state_dict}``), probes it frozen
(k-NN and linear-probe top-1, ``mae_transfer/probe.py``) next to a random encoder, and writes its model card and
``zoo/index.json`` (file, sha256, how it was made).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from runlib import UserError, atomic_torch_save, atomic_write_json, prepare_run_dir, read_run_record, run_command
from runlib.output_dir import made_by
from runlib.run_record import atomic_write
from backbone.zoo import INDEX_NAME, default_zoo, read_index, sha256_of
from mae_transfer.synthetic import SyntheticSpec, generate

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "pretrain"
COMMAND = "zoo build"
STATE = "zoo_build.json"   # the plan a build folder holds and the wall time of its stages
ENCODER_SHAPE = "ViT 192 wide, 4 blocks, 3 heads, patch 16, 128 px (the demo_tiny encoder)"


# The frozen probes' own labelled images: separate streams of the same world (classification train / val, and
# ADE-format scenes for the patch-level probe), never seen in pretraining.
PROBE_DATA = SyntheticSpec(seed=0, image_size=128, num_pretrain=6, num_classify_train=100, num_classify_val=50,
                           classify_image_size=128, num_coco_train=1, num_coco_val=1, num_ade_train=48, num_ade_val=24)


@dataclass(frozen=True)
class ZooPlan:
    name: str
    num_pretrain: int          # generated pretraining images (the first ones of the same stream as the demo's)
    mae_config: str            # in configs/pretrain/
    supervised_config: str
    about: str = ""
    overrides: tuple[tuple[str, object], ...] = ()   # for both runs (tests make a tiny plan with them)
    probe_data: SyntheticSpec = PROBE_DATA


PLANS = {
    "gpu": ZooPlan("gpu", 65536, "zoo_demo_mae.py", "zoo_demo_supervised.py",
                   "one GPU, minutes: 1.05 x 10^7 images seen by MAE, bf16, torch.compile"),
    "cpu": ZooPlan("cpu", 16384, "zoo_demo_mae_cpu.py", "zoo_demo_supervised_cpu.py",
                   "CPU, about 50 minutes of one idle core: 1.6 x 10^5 images seen by MAE"),
}


def pretrain_data(num_pretrain: int) -> SyntheticSpec:
    """The pretraining images, and the held-out classification images the supervised twin is evaluated on."""
    return SyntheticSpec(seed=0, image_size=128, num_pretrain=num_pretrain, num_classify_train=0,
                         num_classify_val=50, classify_image_size=128, num_coco_train=1, num_coco_val=1,
                         num_ade_train=1, num_ade_val=1)


# ---------------------------------------------------------------------------------------------- build
def claim(out: Path, plan: ZooPlan) -> dict:
    """``out`` as this command's folder (``runlib.output_dir``: new, empty, or one it marked) and its state: the
    plan it builds (another plan's folder is refused) and the wall time of each stage so far."""
    prepare_run_dir(out, command=COMMAND, resume=True)
    state_file = out / STATE
    if state_file.is_file():
        state = json.loads(state_file.read_text())
        if state.get("plan") != _plain(plan):
            raise UserError(f"--out {out} holds a zoo build of plan {state['plan'].get('name')!r}, not {plan.name!r}")
        return state
    state = {"plan": _plain(plan), "seconds": {}}
    atomic_write_json(state, state_file)
    return state


def _plain(plan: ZooPlan) -> dict:
    """What makes the build: the plan less its description."""
    return {k: v for k, v in json.loads(json.dumps(asdict(plan))).items() if k != "about"}


def _finished(run_dir: Path) -> bool:
    try:
        return read_run_record(run_dir)["status"] == "finished"
    except UserError:
        return False


def _stage(out: Path, state: dict, name: str, work) -> None:
    """Run ``work`` and add its wall time to the stage's total over all invocations (a resumed stage adds up)."""
    start = time.monotonic()
    print(f"zoo build: {name} ...", flush=True)
    try:
        work()
    finally:
        state["seconds"][name] = round(state["seconds"].get(name, 0.0) + time.monotonic() - start, 1)
        atomic_write_json(state, out / STATE)
    print(f"zoo build: {name} done ({state['seconds'][name]:.0f} s in all)", flush=True)


def build(out: Path, plan: ZooPlan) -> None:
    import pretrain

    state = claim(out, plan)
    state["hardware"] = hardware()
    data: dict[str, Path] = {}
    _stage(out, state, "data", lambda: data.update(generate(out / "data", pretrain_data(plan.num_pretrain),
                                                                       workers=os.cpu_count() or 1)))
    common = dict(data_path=str(data["pretrain"]), dataset="synthetic_pretrain", tensorboard=False, **dict(plan.overrides))
    for name, run, config, extra in (
            ("mae", pretrain.train_mae, plan.mae_config, {}),
            ("supervised", pretrain.finetune, plan.supervised_config, dict(val_path=str(data["classify_val"])))):
        run_dir = out / name
        if _finished(run_dir):
            print(f"zoo build: {name}: finished in an earlier run", flush=True)
            continue
        _stage(out, state, name, lambda run=run, config=config, extra=extra, run_dir=run_dir: run(
            CONFIGS / config, run_dir, resume=True, overrides={**common, **extra}))
    print(f"zoo build: {out} is ready; `mae-transfer zoo publish {out}` writes the zoo files", flush=True)


def hardware() -> str:
    threads = torch.get_num_threads()
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (1 GPU), torch {torch.__version__}"
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() \
        else platform.processor()
    return f"{cpu}, {os.cpu_count()} cores, {threads} torch thread(s), torch {torch.__version__}"


# ---------------------------------------------------------------------------------------------- publish
def _latest(run_dir: Path) -> Path:
    from pretrain.engine import CHECKPOINT_DIR, Checkpoints
    latest = Checkpoints(run_dir / CHECKPOINT_DIR).latest()
    if latest is None or not _finished(run_dir):
        raise UserError(f"{run_dir}: not a finished run (run mae-transfer zoo build first)")
    return latest


def _fp16(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def publish(build_dir: Path, zoo_dir: Path | None = None, command: str = "") -> dict[str, dict]:
    """Write the zoo files of a finished build into ``zoo_dir``; returns the new index entries."""
    from backbone import read_checkpoint
    from pretrain.export import encoder_state_dict
    from mae_transfer.probe import probe

    zoo_dir = Path(zoo_dir or default_zoo())
    if not made_by(build_dir, COMMAND) or not (build_dir / STATE).is_file():
        raise UserError(f"{build_dir}: not a folder of mae-transfer zoo build")
    state = json.loads((build_dir / STATE).read_text())
    plan = state["plan"]
    mae_ckpt, sup_ckpt = _latest(build_dir / "mae"), _latest(build_dir / "supervised")
    mae_state = read_checkpoint(mae_ckpt)
    files = {"demo-mae": {"model": _fp16(encoder_state_dict(mae_state["model"], mae_ckpt))},
             # with its training config (paths left out), from which pretrain.visualize rebuilds the model
             "demo-mae-full": {"model": _fp16(mae_state["model"]),
                               "config": {k: v for k, v in mae_state["config"].items() if not k.endswith("_path")}},
             "demo-supervised": {"model": _fp16(read_checkpoint(sup_ckpt)["model"])}}
    zoo_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        atomic_torch_save(content, zoo_dir / f"{name}.pth")

    probe_data = generate(build_dir / "probe-data", SyntheticSpec(**plan["probe_data"]))["manifest"].parent
    probes = {name: probe(str(zoo_dir / f"{name}.pth"), probe_data) for name in ("demo-mae", "demo-supervised")}
    probes["random"] = probe("random", probe_data)
    runs = {"mae": _run_facts(build_dir / "mae", mae_state), "supervised": _run_facts(build_dir / "supervised",
                                                                                     read_checkpoint(sup_ckpt))}
    made = {"command": command or f"mae-transfer zoo build --plan {plan['name']} --out DIR && "
                                  "mae-transfer zoo publish DIR",
            "plan": plan["name"], "data": asdict(pretrain_data(plan["num_pretrain"])),
            "hardware": state.get("hardware", ""),
            "published": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    entries = {
        "demo-mae": dict(run=runs["mae"], probe=probes["demo-mae"], seconds=state["seconds"].get("mae"),
                         about="MAE encoder (no decoder), MAE release layout", config=plan["mae_config"]),
        "demo-mae-full": dict(run=runs["mae"], seconds=state["seconds"].get("mae"), config=plan["mae_config"],
                              about="the same MAE with its decoder (MAE *_full.pth layout), for reconstructions"),
        "demo-supervised": dict(run=runs["supervised"], probe=probes["demo-supervised"],
                                seconds=state["seconds"].get("supervised"), config=plan["supervised_config"],
                                about="supervised twin: same model, same images with their labels (timm layout + head)"),
    }
    index = read_index(zoo_dir)
    for name, entry in entries.items():
        path = zoo_dir / f"{name}.pth"
        entry.update(file=path.name, card=f"{name}.md", sha256=sha256_of(path), bytes=path.stat().st_size,
                     encoder=ENCODER_SHAPE, random_probe=probes["random"], **made)
        index[name] = entry
        atomic_write(zoo_dir / entry["card"], lambda tmp, name=name, entry=entry: tmp.write_text(card(name, entry)))
    atomic_write_json(index, zoo_dir / INDEX_NAME)
    return entries


def _run_facts(run_dir: Path, checkpoint: dict) -> dict:
    record = read_run_record(run_dir)
    config = checkpoint.get("config", {})
    steps = int(checkpoint["step"])
    return {"steps": steps, "batch_size": config.get("batch_size"), "images_seen": steps * config.get("batch_size", 0),
            "epochs": config.get("epochs"), "lr": config.get("lr") or config.get("blr", 0) * config.get("batch_size", 0) / 256,
            "metrics": record.get("metrics", {}), "task": record["task"]}


def card(name: str, entry: dict) -> str:
    """The model card: what the file is, how it was made, what it knows (frozen probes), its checksum."""
    run = entry["run"]
    lines = [f"# zoo:{name}", "", entry["about"] + ".", "",
             "| | |", "|---|---|",
             f"| encoder | {entry['encoder']} |",
             f"| file | `zoo/{entry['file']}`, fp16, {entry['bytes'] / 2**20:.1f} MiB |",
             f"| sha256 | `{entry['sha256']}` |",
             f"| made by | `{entry['command']}` (plan `{entry['plan']}`, config `configs/pretrain/{entry['config']}`) |",
             f"| data | `mae_transfer.synthetic`, seed {entry['data']['seed']}: {entry['data']['num_pretrain']:,} "
             f"object-centric pretraining images, {entry['data']['image_size']} px, 6 classes (labels used only by "
             "the supervised twin) |",
             f"| training | {run['task']}: {run['steps']:,} steps of {run['batch_size']}, {run['epochs']} epochs, "
             f"lr {run['lr']:.3g}: **{run['images_seen']:,} images seen** |",
             f"| final metrics | {', '.join(f'{k} {v:.4g}' for k, v in run['metrics'].items())} |",
             f"| hardware, time | {entry['hardware']}; {entry['seconds'] or 0:,.0f} s of training wall time |",
             f"| published | {entry['published']} |"]
    if "probe" in entry:
        p, r = entry["probe"], entry["random_probe"]
        lines += ["", "Frozen probes (`mae_transfer/probe.py`: block-4 patch tokens averaged; 600 / 300 held-out "
                  "classification images; patch probe on 48 / 24 ADE-format scenes), against the same model at "
                  "random init:", "",
                  "| encoder | k-NN top-1 | linear top-1 | patch recall, things | patch recall, stuff |",
                  "|---|---|---|---|---|",
                  f"| zoo:{name} | {p['knn_top1']:.1f} | {p['linear_top1']:.1f} | {p['patch_thing_recall']:.1f} | "
                  f"{p['patch_stuff_recall']:.1f} |",
                  f"| random | {r['knn_top1']:.1f} | {r['linear_top1']:.1f} | {r['patch_thing_recall']:.1f} | "
                  f"{r['patch_stuff_recall']:.1f} |"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- command
def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mae-transfer zoo", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog="plans:\n" + "\n".join(
                                         f"  {name:4} {plan.about}" for name, plan in PLANS.items()))
    verbs = parser.add_subparsers(dest="verb", required=True)
    b = verbs.add_parser("build", help="generate the data and train both encoders (resumes an interrupted build)")
    b.add_argument("--plan", choices=sorted(PLANS), default="gpu" if torch.cuda.is_available() else "cpu")
    b.add_argument("--out", type=Path, required=True, metavar="DIR",
                   help="the build folder (new, empty, or an earlier build's)")
    p = verbs.add_parser("publish", help="write the fp16 files, probes and model cards of a finished build")
    p.add_argument("build_dir", type=Path, metavar="BUILD_DIR", help="a finished build's folder (zoo build --out)")
    p.add_argument("--out", "--zoo", dest="zoo", type=Path, default=default_zoo(), metavar="DIR",
                   help="the zoo folder (alias: --zoo; default: $MAE_TRANSFER_ZOO, else zoo/ in the repository: "
                        "%(default)s)")
    args = parser.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))

    def body():
        if args.verb == "build":
            build(args.out, PLANS[args.plan])
        else:
            for name, entry in publish(args.build_dir, args.zoo).items():
                print(f"zoo:{name}: {args.zoo / entry['file']} ({entry['bytes'] / 2**20:.1f} MiB, "
                      f"sha256 {entry['sha256'][:12]}...), card {args.zoo / entry['card']}")
    return run_command("zoo", body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
