"""``mae-transfer detect train|eval|predict``: detectron2's ``lazyconfig_train_net`` habits (``--config-file``,
``--resume``, ``--num-gpus`` ... and trailing ``key=value`` overrides), with this project's datasets, initial
weights and run record; ``predict`` draws and saves a trained detector's predictions on image files."""
from __future__ import annotations

import argparse
import os
import re
import sys
import time

from runlib import config_syntax_named, prepare_run_dir, require_device, run_command
from runlib.images import MAX_PIXELS

_EXAMPLES = """examples:
  mae-transfer detect train --config-file configs/detection/mask_rcnn_vit_b_mae.py --num-gpus 8 \\
      --out output/vit_b_mae train.init_checkpoint=/ckpt/mae_pretrain_vit_base.pth
  mae-transfer detect train --config-file configs/detection/mask_rcnn_vit_b_mae.py --out out \\
      --train-json my/train.json --train-images my/train --val-json my/val.json --val-images my/val \\
      model.roi_heads.num_classes=3
  mae-transfer detect eval --config-file configs/detection/mask_rcnn_vit_b_mae.py --weights model_final.pkl \\
      --out output/eval train.device=cpu
  mae-transfer detect predict --config-file configs/detection/mask_rcnn_vit_b_mae.py --weights model_final.pth \\
      --input photos/ extra/*.jpg --out predictions model.roi_heads.box_predictor.test_score_thresh=0.5
COCO in detectron2's layout is found under $DETECTRON2_DATASETS (default ./datasets)."""

# A trailing "key=value" (dotted config key) after --input's files is an override, not an input.
_OVERRIDE = re.compile(r"^\+?[A-Za-z_][\w.]*=")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mae-transfer detect", description="Mask R-CNN with the ViT backbone in "
                                     "detectron2: train (or resume) from a LazyConfig, evaluate a trained "
                                     "detector, or draw its predictions on images",
                                     epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("train", "train (or --resume) from a LazyConfig, then evaluate"),
                        ("eval", "evaluate a trained detector"),
                        ("predict", "overlays and COCO-format predictions of a trained detector on image files")):
        sub = commands.add_parser(name, help=help_, epilog=_EXAMPLES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--config-file", required=True, metavar="FILE",
                         help="a LazyConfig, e.g. configs/detection/*.py"
                         + (" (or a yacs .yaml)" if name == "predict" else ""))
        if name == "predict":
            _predict_arguments(sub)
            continue
        sub.add_argument("--out", "--output-dir", dest="out",
                         help="run folder (default: the config's train.output_dir)")
        if name == "train":
            sub.add_argument("--resume", action="store_true", help="continue from OUT/last_checkpoint")
            sub.add_argument("--init-checkpoint", help="initial weights: a pretrained ViT (MAE, timm, our export) "
                                                       "or a detector (default: the config's train.init_checkpoint)")
            sub.add_argument("--train-json", help="a COCO-format instances json to train on instead of the config's")
            sub.add_argument("--train-images", help="the image folder of --train-json")
        else:
            sub.add_argument("--weights", required=True, help="the detector to evaluate (.pth or model-zoo .pkl)")
        sub.add_argument("--init", help="the run record's name for the initialisation (default: the config's "
                                        "train.init: mae, supervised, random)")
        sub.add_argument("--val-json", help="a COCO-format instances json to evaluate on instead of the config's")
        sub.add_argument("--val-images", help="the image folder of --val-json")
        sub.add_argument("--dataset-name", help="register the --*-json sets as NAME_train / NAME_val (default: "
                                                "the json file names); the run record names the evaluation set")
        sub.add_argument("--num-gpus", type=int, default=1, help="processes (GPUs) per machine")
        sub.add_argument("--num-machines", type=int, default=1)
        sub.add_argument("--machine-rank", type=int, default=0, help="the rank of the machine that runs this command")
        # detectron2's default: a port derived from the user id, so that users of one machine do not collide.
        port = 2 ** 15 + 2 ** 14 + hash(os.getuid() if sys.platform != "win32" else 1) % 2 ** 14
        sub.add_argument("--dist-url", default=f"tcp://127.0.0.1:{port}",
                         help="initialization URL for multi-machine training")
        sub.add_argument("overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                         help="config overrides, e.g. train.max_iter=1000 dataloader.train.total_batch_size=16")
    return parser


def _predict_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--weights", required=True, help="the trained detector (.pth or model-zoo .pkl)")
    sub.add_argument("--input", required=True, nargs="+", metavar="PATH",
                     help="image files, folders (their images) and glob patterns")
    sub.add_argument("--out", "--output-dir", dest="out", required=True,
                     help="folder for one overlay per image and coco_instances_results.json")
    sub.add_argument("--categories", metavar="JSON", help="a COCO json whose categories name the classes "
                                                          "(default: the config's test set); when it lists images, "
                                                          "each input's results take the id of the image of its "
                                                          "file name (an input not in it is an error)")
    sub.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                     help=f"refuse larger images (default {MAX_PIXELS:,}: the outputs are at full resolution)")
    sub.add_argument("--device", help="cuda, cpu, ... (default: CUDA when available)")
    sub.add_argument("overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                     help="config overrides (LazyConfig or yacs keys), e.g. "
                          "model.roi_heads.box_predictor.test_score_thresh=0.5")


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return run_command("detect", lambda: predict(args) if args.command == "predict" else train_or_eval(args))


def predict(args: argparse.Namespace) -> None:
    from .predict import RESULTS_NAME, Predictor, predict_files

    inputs = [item for item in args.input if not (_OVERRIDE.match(item) and not os.path.exists(item))]
    overrides = [item for item in args.input if item not in inputs] + list(args.overrides)
    require_device(args.device, "--device")
    prepare_run_dir(args.out, command="detect predict", resume=True, create=False,  # before the model is built
                    inputs=[args.config_file, args.weights, args.categories, *inputs])
    with config_syntax_named(args.config_file):
        predictor = Predictor(args.config_file, args.weights, overrides, device=args.device,
                              categories=args.categories, max_pixels=args.max_pixels)
    start = time.perf_counter()
    results = predict_files(predictor, inputs, args.out, ground_truth=args.categories)
    print(f"predict finished: {len(results)} instances in {time.perf_counter() - start:.1f} s, one overlay per image "
          f"and {RESULTS_NAME}  ({args.out})")


def train_or_eval(args: argparse.Namespace) -> None:
    # detectron2 (seconds to import) only once the arguments are known to be well formed.
    import torch

    from . import frameworks  # noqa: F401, I001  (first: detectron2 without its import-time notices)
    from detectron2.engine import launch

    from runlib import read_run_record
    from runlib.run_record import RECORD_NAME

    from .data import DetectionInputError
    from .engine import RunOptions, run

    train = args.command == "train"
    options = RunOptions(
        config_file=args.config_file, overrides=list(args.overrides), output_dir=args.out,
        eval_only=not train, resume=train and args.resume,
        weights=args.init_checkpoint if train else args.weights, init=args.init,
        train_json=args.train_json if train else None, train_images=args.train_images if train else None,
        val_json=args.val_json, val_images=args.val_images, dataset_name=args.dataset_name)
    if args.num_gpus > 1 and args.num_gpus > torch.cuda.device_count():
        raise DetectionInputError(f"--num-gpus {args.num_gpus} but {torch.cuda.device_count()} CUDA devices are "
                                  "visible")
    launch(run, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(options,))
    if args.machine_rank == 0 and options.output_dir:
        record = read_run_record(options.output_dir)
        metrics = "  ".join(f"{k} {v:.2f}" for k, v in record["metrics"].items())
        print(f"{args.command} finished: {metrics}  ({os.path.join(options.output_dir, RECORD_NAME)})")
