"""``mae-transfer detect train|eval``: detectron2's ``lazyconfig_train_net`` habits (``--config-file``,
``--resume``, ``--num-gpus`` ... and trailing ``key=value`` overrides), with this project's datasets, initial
weights and run record."""
from __future__ import annotations

import argparse
import os
import sys

_EXAMPLES = """examples:
  mae-transfer detect train --config-file configs/detection/mask_rcnn_vit_b_mae.py --num-gpus 8 \\
      --output-dir output/vit_b_mae train.init_checkpoint=/ckpt/mae_pretrain_vit_base.pth
  mae-transfer detect train --config-file configs/detection/mask_rcnn_vit_b_mae.py --output-dir out \\
      --train-json my/train.json --train-images my/train --val-json my/val.json --val-images my/val \\
      model.roi_heads.num_classes=3
  mae-transfer detect eval --config-file configs/detection/mask_rcnn_vit_b_mae.py --weights model_final.pkl \\
      --output-dir output/eval train.device=cpu
COCO in detectron2's layout is found under $DETECTRON2_DATASETS (default ./datasets)."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mae-transfer detect", description="Mask R-CNN with the ViT backbone in "
                                     "detectron2: train (or resume) from a LazyConfig, or evaluate a trained detector",
                                     epilog=_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_ in (("train", "train (or --resume) from a LazyConfig, then evaluate"),
                        ("eval", "evaluate a trained detector")):
        sub = commands.add_parser(name, help=help_, epilog=_EXAMPLES,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--config-file", required=True, metavar="FILE",
                         help="a LazyConfig, e.g. configs/detection/*.py")
        sub.add_argument("--output-dir", help="run folder (default: the config's train.output_dir)")
        if name == "train":
            sub.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR/last_checkpoint")
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
        sub.add_argument("--machine-rank", type=int, default=0, help="this machine's rank")
        # detectron2's default: a port derived from the user id, so that users of one machine do not collide.
        port = 2 ** 15 + 2 ** 14 + hash(os.getuid() if sys.platform != "win32" else 1) % 2 ** 14
        sub.add_argument("--dist-url", default=f"tcp://127.0.0.1:{port}",
                         help="initialization URL for multi-machine training")
        sub.add_argument("overrides", nargs=argparse.REMAINDER, metavar="KEY=VALUE",
                         help="config overrides, e.g. train.max_iter=1000 dataloader.train.total_batch_size=16")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    # detectron2 (seconds to import) only once the arguments are known to be well formed.
    import torch
    from detectron2.engine import launch

    from backbone import CheckpointError, read_run_record
    from backbone.run_record import RECORD_NAME

    from .data import DetectionInputError
    from .engine import RunOptions, run

    train = args.command == "train"
    options = RunOptions(
        config_file=args.config_file, overrides=list(args.overrides), output_dir=args.output_dir,
        eval_only=not train, resume=train and args.resume,
        weights=args.init_checkpoint if train else args.weights, init=args.init,
        train_json=args.train_json if train else None, train_images=args.train_images if train else None,
        val_json=args.val_json, val_images=args.val_images, dataset_name=args.dataset_name)
    if args.num_gpus > 1 and args.num_gpus > torch.cuda.device_count():
        print(f"mae-transfer detect: error: --num-gpus {args.num_gpus} but {torch.cuda.device_count()} CUDA "
              "devices are visible", file=sys.stderr)
        return 2
    try:
        launch(run, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
               dist_url=args.dist_url, args=(options,))
    except (DetectionInputError, CheckpointError) as exc:
        print(f"mae-transfer detect: error: {exc}", file=sys.stderr)
        return 2
    if args.machine_rank == 0 and options.output_dir:
        record = read_run_record(options.output_dir)
        metrics = "  ".join(f"{k} {v:.2f}" for k, v in record["metrics"].items())
        print(f"{args.command} finished: {metrics}  ({os.path.join(options.output_dir, RECORD_NAME)})")
    return 0
