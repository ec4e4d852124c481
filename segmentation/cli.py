"""``mae-transfer segment train|test|predict``: mmseg's tools/train.py, tools/test.py and inferencer for this
project's configs.

    mae-transfer segment train CONFIG [--out DIR] [--data-root DIR] [--checkpoint FILE --init NAME]
                                      [--resume [CKPT]] [--launcher pytorch] [--cfg-options K=V ...]
    mae-transfer segment test CONFIG CHECKPOINT [--out DIR] [--data-root DIR] [--init NAME]
                                      [--launcher pytorch] [--cfg-options K=V ...]
    mae-transfer segment predict CONFIG CHECKPOINT --input PATH [PATH ...] --out DIR [--device cuda]
                                      [--label-offset 1]

Several GPUs: ``torchrun --nproc_per_node 8 -m mae_transfer.cli segment train CONFIG --launcher pytorch``.
Bad input (config, override, data, checkpoint, output folder) is one line and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from runlib.images import MAX_PIXELS

USAGE_EXAMPLES = """examples:
  mae-transfer segment train configs/segmentation/upernet_vit_b_mae_ade20k_512x512_160k.py \\
      --data-root data/ade/ADEChallengeData2016
  torchrun --nproc_per_node 8 -m mae_transfer.cli segment train CONFIG --launcher pytorch
  mae-transfer segment train CONFIG --resume                      # from the output folder's newest checkpoint
  mae-transfer segment train CONFIG --cfg-options train_cfg.max_iters=1000 +model.backbone.init_values=1.0
  mae-transfer segment test CONFIG work_dirs/NAME/iter_160000.pth
  mae-transfer segment predict CONFIG work_dirs/NAME/iter_160000.pth --input photos/ --out predictions/

--cfg-options keys must be in the config (a misspelt key is an error, not a new key); +key=value adds a key.
"""


def _parser() -> argparse.ArgumentParser:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(prog="mae-transfer segment",
                                     description="UperNet with this project's ViT in mmsegmentation",
                                     epilog=USAGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train, then test the final weights")
    test = commands.add_parser("test", help="test a trained checkpoint")
    predict = commands.add_parser("predict", help="segment images: overlays and label PNGs")
    for sub in (train, test, predict):
        sub.add_argument("config", type=Path, help="an mmseg config, e.g. from configs/segmentation/")
    for sub in (test, predict):
        sub.add_argument("checkpoint", type=Path, help="a segmentor checkpoint of this config (iter_N.pth)")
    train.add_argument("--out", "--work-dir", dest="out", type=Path,
                       help="checkpoints, logs and run_record.json (default: work_dirs/<config name>)")
    test.add_argument("--out", "--work-dir", dest="out", type=Path,
                      help="logs and run_record.json (default: work_dirs/<config name>_test_<checkpoint name>)")
    predict.add_argument("--out", "--work-dir", dest="out", type=Path, required=True,
                         help="writes vis/NAME.png (overlays) and pred/NAME.png (class indices, palette PNG)")
    predict.add_argument("--input", nargs="+", required=True, type=Path,
                         help="image files, folders (their images) and glob patterns")
    predict.add_argument("--label-offset", type=int, default=0, metavar="N",
                         help="pred/NAME.png holds class k as k+N (default 0: the 0-based class index; 1: the "
                              "ADE20K-format ground truth's convention, 0 = ignore)")
    predict.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                         help=f"refuse larger images (default {MAX_PIXELS:,}: the score maps are at full resolution)")
    predict.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the first GPU if any, else the CPU)")
    predict.add_argument("--opacity", type=float, default=0.5, help="of the overlay's colours (default 0.5)")
    for sub in (train, test):
        sub.add_argument("--data-root", type=Path, help="ADE20K-format root (ADEChallengeData2016) for all splits")
        sub.add_argument("--init", help="init label for the run record: mae, supervised, random, ... "
                                        "(default: from the config or the checkpoint path)")
        sub.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                         help="'pytorch' under torchrun")
    for sub in (train, test, predict):
        sub.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                         help="override config values, key=value (mmengine syntax); the key must be in the "
                              "config, +key=value adds one")
    train.add_argument("--checkpoint", help="initial backbone weights, a file or timm:NAME / hf:ORG/REPO / a URL "
                                            "(replaces model.pretrained)")
    train.add_argument("--resume", nargs="?", const=True, default=False,
                       help="resume from the output folder's newest whole checkpoint, or from the one given")
    return parser


def main(argv: list[str] | None = None) -> int:
    # mmengine resolves `mmseg::` config paths through pkg_resources, which warns on every use
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    from runlib import run_command

    return run_command(f"segment {args.command}", lambda: _run(args))


def _run(args: argparse.Namespace) -> None:
    import segmentation
    from runlib import config_syntax_named, require_device
    from runlib.run_record import RECORD_NAME

    if args.command == "predict":
        require_device(args.device, "--device")
        with config_syntax_named(args.config):
            written = segmentation.predict(args.config, args.checkpoint, args.input, args.out, device=args.device,
                                           cfg_options=args.cfg_options, opacity=args.opacity,
                                           label_offset=args.label_offset, max_pixels=args.max_pixels)
        print(f"{len(written)} images: overlays in {args.out / 'vis'}, label maps in {args.out / 'pred'}")
        return
    common = dict(init=args.init, data_root=args.data_root, launcher=args.launcher)
    if args.command == "train":
        out = args.out or Path("work_dirs") / args.config.stem
        metrics = segmentation.train(args.config, out, args.cfg_options, init_checkpoint=args.checkpoint,
                                     resume=args.resume, **common)
    else:
        out = args.out or Path("work_dirs") / f"{args.config.stem}_test_{args.checkpoint.stem}"
        metrics = segmentation.test(args.config, args.checkpoint, out, args.cfg_options, **common)
    print(f"{args.config.stem}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
          + f" (run record {out / RECORD_NAME})")
