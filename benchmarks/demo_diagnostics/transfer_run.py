"""One transfer run of the demo, with one torch thread and settings of your own: the lr / schedule sweeps of
README.md section 6 are made of these.

    PYTHONPATH=. python -m benchmarks.demo_diagnostics.transfer_run --demo output/demo --task segmentation \
        --init mae --iters 600 --val-interval 200 --out /tmp/sweep/seg_mae_lr1e-3 \
        --set optim_wrapper.optimizer.lr=1e-3

``--demo`` is a finished demo folder (its generated data and its MAE / supervised encoders); the run is the
demo's own (``mae_transfer.demo.train_detection`` / ``train_segmentation`` machinery: the demo_tiny configs, the
configs' warm-up and lr steps as fractions of ``--iters``, seed 0) with ``--set`` applied on top: detectron2
``key=value`` overrides for detection, mmengine ``--cfg-options`` style keys (values read as Python literals) for
segmentation. UperNet's per-class IoU table is in the run's log at every ``--val-interval``.
"""
from __future__ import annotations

import argparse
import ast
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.demo_diagnostics.transfer_run",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, required=True, help="a finished demo folder")
    parser.add_argument("--task", choices=("detection", "segmentation"), required=True)
    parser.add_argument("--init", choices=("mae", "supervised", "random"), required=True)
    parser.add_argument("--iters", type=int, required=True)
    parser.add_argument("--val-interval", type=int, help="segmentation: evaluate every N iterations (default: once)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    import torch

    from mae_transfer import demo
    torch.set_num_threads(1)
    checkpoint = {"mae": args.demo / "pretrain" / "mae_encoder.pth",
                  "supervised": args.demo / "supervised" / "supervised_vit.pth", "random": None}[args.init]
    data = args.demo / "data"
    if args.task == "detection":
        import detection
        config = demo.CONFIGS / "detection" / demo.DETECTION_CONFIGS[args.init]
        detection.train(config, args.out, demo._detection_overrides(config, args.iters, args.seed) + args.set,
                        init_checkpoint=checkpoint and str(checkpoint), init=args.init,
                        train_json=data / "coco/annotations/instances_train.json", train_images=data / "coco/train",
                        val_json=data / "coco/annotations/instances_val.json", val_images=data / "coco/val",
                        dataset_name="synthetic_coco")
    else:
        import segmentation
        config = demo.CONFIGS / "segmentation" / "demo_tiny.py"
        options = demo._segmentation_options(config, args.iters, args.seed)
        options["train_cfg.val_interval"] = args.val_interval or args.iters
        for item in args.set:
            key, value = item.split("=", 1)
            options[key] = ast.literal_eval(value)
        segmentation.train(config, args.out, options, init_checkpoint=checkpoint, init=args.init,
                           data_root=data / "ade" / "ADEChallengeData2016")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
