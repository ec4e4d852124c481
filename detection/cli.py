"""``mae-transfer detect train|eval|predict`` in the one command grammar (``runlib.command_line``):

    mae-transfer detect train --config C --out DIR [--init WEIGHTS] [--init-label LABEL] [--resume] [KEY=VALUE ...]
    mae-transfer detect eval --config C --weights W --out DIR [KEY=VALUE ...]
    mae-transfer detect predict --config C --weights W --input PATH [PATH ...] --out DIR [KEY=VALUE ...]

with detectron2's ``lazyconfig_train_net`` habits (``--num-gpus``, ``--num-machines``, ... and its spellings
``--config-file``, ``--output-dir``, ``--init-checkpoint`` as aliases), this project's datasets, initial weights
and run record; ``predict`` draws and saves a trained detector's predictions on image files."""
from __future__ import annotations

import argparse
import os
import sys
import time

from runlib import config_syntax_named, prepare_run_dir, require_device, run_command
from runlib import command_line as grammar
from runlib.images import MAX_PIXELS

_EXAMPLES = f"""examples:
  mae-transfer detect train --config configs/detection/mask_rcnn_vit_b_mae.py --num-gpus 8 \\
      --out output/vit_b_mae --init /ckpt/mae_pretrain_vit_base.pth
  mae-transfer detect train --config configs/detection/mask_rcnn_vit_b_mae.py --out out \\
      --train-json my/train.json --train-images my/train --val-json my/val.json --val-images my/val \\
      model.roi_heads.num_classes=3
  mae-transfer detect eval --config configs/detection/mask_rcnn_vit_b_mae.py --weights model_final.pkl \\
      --out output/eval train.device=cpu
  mae-transfer detect predict --config configs/detection/mask_rcnn_vit_b_mae.py --weights model_final.pth \\
      --input photos/ extra/*.jpg --out predictions model.roi_heads.box_predictor.test_score_thresh=0.5
COCO in detectron2's layout is found under $DETECTRON2_DATASETS (default ./datasets).
KEY=VALUE keys must be in the config (a misspelt key is an error, not a new key); +KEY=VALUE adds a key."""
_USAGE = grammar.verb_usages("detect")


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="mae-transfer detect", description="Mask R-CNN with the ViT backbone in "
                                     "detectron2: train (or resume) from a LazyConfig, evaluate a trained "
                                     "detector, or draw its predictions on images",
                                     epilog=f"{_EXAMPLES}\n{grammar.ALIASES}",
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    verbs = {}
    for name, help_ in (("train", "train (or --resume) from a LazyConfig, then evaluate"),
                        ("eval", "evaluate a trained detector"),
                        ("predict", "overlays and COCO-format predictions of a trained detector on image files")):
        aliases = grammar.framework_aliases(*grammar.OPTION_ALIASES[name])
        sub = verbs[name] = commands.add_parser(name, help=help_, usage=_USAGE[name], epilog=f"{_EXAMPLES}\n{aliases}",
                                                formatter_class=argparse.RawDescriptionHelpFormatter)
        grammar.add_config(sub, "a LazyConfig, e.g. configs/detection/*.py"
                           + (" (or a yacs .yaml)" if name == "predict" else ""))
        if name == "predict":
            _predict_arguments(sub)
            continue
        if name == "train":
            grammar.add_out(sub, "run folder (default: the config's train.output_dir)")
            grammar.add_init(sub, "the config's train.init_checkpoint; a ViT (MAE, timm, our export) or a detector")
            sub.add_argument("--resume", action="store_true", help="continue from OUT/last_checkpoint")
            sub.add_argument("--train-json", metavar="JSON",
                             help="a COCO-format instances json to train on instead of the config's")
            sub.add_argument("--train-images", metavar="DIR", help="the image folder of --train-json")
        else:
            grammar.add_weights(sub, "the detector to evaluate (.pth or model-zoo .pkl)")
            grammar.add_out(sub, "folder for the evaluation's results and run record (default: the config's "
                                 "train.output_dir)")
            grammar.add_init_label(sub, init_alias=True)
        sub.add_argument("--val-json", metavar="JSON",
                         help="a COCO-format instances json to evaluate on instead of the config's")
        sub.add_argument("--val-images", metavar="DIR", help="the image folder of --val-json")
        sub.add_argument("--dataset-name", metavar="NAME",
                         help="register the --*-json sets as NAME_train / NAME_val (default: the json file names); "
                              "the run record names the evaluation set")
        sub.add_argument("--num-gpus", type=int, default=1, metavar="N", help="processes (GPUs) per machine")
        sub.add_argument("--num-machines", type=int, default=1, metavar="N")
        sub.add_argument("--machine-rank", type=int, default=0, metavar="N",
                         help="the rank of the machine that runs this command")
        # detectron2's default: a port derived from the user id, so that users of one machine do not collide.
        port = 2 ** 15 + 2 ** 14 + hash(os.getuid() if sys.platform != "win32" else 1) % 2 ** 14
        sub.add_argument("--dist-url", default=f"tcp://127.0.0.1:{port}", metavar="URL",
                         help="initialization URL for multi-machine training")
        grammar.add_overrides(sub, "train.max_iter=1000 dataloader.train.total_batch_size=16")
    return parser, verbs


def _predict_arguments(sub: argparse.ArgumentParser) -> None:
    grammar.add_weights(sub, "the trained detector (.pth or model-zoo .pkl)")
    sub.add_argument("--input", required=True, nargs="+", metavar="PATH",
                     help="image files, folders (their images) and glob patterns")
    grammar.add_out(sub, "folder for one overlay per image and coco_instances_results.json", required=True)
    sub.add_argument("--categories", metavar="JSON", help="a COCO json whose categories name the classes "
                                                          "(default: the config's test set); when it lists images, "
                                                          "each input's results take the id of the image of its "
                                                          "file name (an input not in it is an error)")
    sub.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                     help=f"refuse larger images (default {MAX_PIXELS:,}: the outputs are at full resolution)")
    sub.add_argument("--device", help="cuda, cpu, ... (default: CUDA when available)")
    grammar.add_overrides(sub, "model.roi_heads.box_predictor.test_score_thresh=0.5 (LazyConfig or yacs keys)")


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line as a namespace in the one grammar's terms (``runlib.command_line.finish``)."""
    parser, verbs = _parser()
    args = grammar.parse_verb(parser, verbs, argv)
    required = ("config",) if args.command == "train" else ("config", "weights")
    return grammar.finish(verbs[args.command], args, positional=required, required=required)


def main(argv: list[str]) -> int:
    args = parse(argv)
    return run_command("detect", lambda: predict(args) if args.command == "predict" else train_or_eval(args))


def predict(args: argparse.Namespace) -> None:
    from .predict import RESULTS_NAME, Predictor, predict_files

    inputs, overrides = args.input, args.overrides
    require_device(args.device, "--device")
    prepare_run_dir(args.out, command="detect predict", resume=True, create=False,  # before the model is built
                    inputs=[args.config, args.weights, args.categories, *inputs])
    with config_syntax_named(args.config):
        predictor = Predictor(args.config, args.weights, overrides, device=args.device,
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
    from runlib.run_record import RECORD_NAME, metrics_text

    from .data import DetectionInputError
    from .engine import RunOptions, run

    train = args.command == "train"
    options = RunOptions(
        config_file=args.config, overrides=list(args.overrides), output_dir=args.out,
        eval_only=not train, resume=train and args.resume,
        weights=args.init if train else args.weights, init=args.init_label,
        train_json=args.train_json if train else None, train_images=args.train_images if train else None,
        val_json=args.val_json, val_images=args.val_images, dataset_name=args.dataset_name)
    if args.num_gpus > 1 and args.num_gpus > torch.cuda.device_count():
        raise DetectionInputError(f"--num-gpus {args.num_gpus} but {torch.cuda.device_count()} CUDA devices are "
                                  "visible")
    launch(run, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
           dist_url=args.dist_url, args=(options,))
    if args.machine_rank == 0 and options.output_dir:
        record = read_run_record(options.output_dir)
        print(f"{args.command} finished: {metrics_text(record['metrics'])}  "
              f"({os.path.join(options.output_dir, RECORD_NAME)})")
