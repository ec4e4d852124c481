"""``mae-transfer segment train|test``: mmseg's tools/train.py and tools/test.py for this project's configs.

    mae-transfer segment train CONFIG [--work-dir DIR] [--data-root DIR] [--checkpoint FILE --init NAME]
                                      [--resume [CKPT]] [--launcher pytorch] [--cfg-options K=V ...]
    mae-transfer segment test CONFIG CHECKPOINT [--work-dir DIR] [--data-root DIR] [--init NAME]
                                      [--launcher pytorch] [--cfg-options K=V ...]

Several GPUs: ``torchrun --nproc_per_node 8 -m mae_transfer.cli segment train CONFIG --launcher pytorch``.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

USAGE_EXAMPLES = """examples:
  mae-transfer segment train configs/segmentation/upernet_vit_b_mae_ade20k_512x512_160k.py \\
      --data-root data/ade/ADEChallengeData2016
  torchrun --nproc_per_node 8 -m mae_transfer.cli segment train CONFIG --launcher pytorch
  mae-transfer segment train CONFIG --resume                      # from the work dir's latest checkpoint
  mae-transfer segment test CONFIG work_dirs/NAME/iter_160000.pth
"""


def _parser() -> argparse.ArgumentParser:
    from mmengine.config import DictAction

    parser = argparse.ArgumentParser(prog="mae-transfer segment",
                                     description="UperNet with this project's ViT in mmsegmentation",
                                     epilog=USAGE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train, then test the final weights")
    test = commands.add_parser("test", help="test a trained checkpoint")
    for sub in (train, test):
        sub.add_argument("config", type=Path, help="an mmseg config, e.g. from configs/segmentation/")
    test.add_argument("checkpoint", type=Path, help="a segmentor checkpoint of this config (iter_N.pth)")
    for sub in (train, test):
        sub.add_argument("--work-dir", type=Path,
                         help="checkpoints, logs and run_record.json (default: work_dirs/<config name>)")
        sub.add_argument("--data-root", type=Path, help="ADE20K-format root (ADEChallengeData2016) for all splits")
        sub.add_argument("--init", help="init label for the run record: mae, supervised, random, ... "
                                        "(default: from the config or the checkpoint path)")
        sub.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                         help="'pytorch' under torchrun")
        sub.add_argument("--cfg-options", nargs="+", action=DictAction, default={},
                         help="override config values, key=value (mmengine syntax)")
    train.add_argument("--checkpoint", help="initial backbone weights, a file or timm:NAME / hf:ORG/REPO / a URL "
                                            "(replaces model.pretrained)")
    train.add_argument("--resume", nargs="?", const=True, default=False,
                       help="resume from the work dir's latest checkpoint, or from the one given")
    return parser


def main(argv: list[str] | None = None) -> int:
    # mmengine resolves `mmseg::` config paths through pkg_resources, which warns on every use
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    import segmentation
    from backbone.run_record import RECORD_NAME
    from segmentation.run import USER_ERRORS, error_message

    work_dir = args.work_dir or Path("work_dirs") / args.config.stem
    common = dict(init=args.init, data_root=args.data_root, launcher=args.launcher)
    try:
        if args.command == "train":
            metrics = segmentation.train(args.config, work_dir, args.cfg_options, init_checkpoint=args.checkpoint,
                                         resume=args.resume, **common)
        else:
            metrics = segmentation.test(args.config, args.checkpoint, work_dir, args.cfg_options, **common)
    except USER_ERRORS as exc:
        print(f"mae-transfer segment {args.command}: error: {error_message(exc)}", file=sys.stderr)
        return 1
    print(f"{args.config.stem}: " + ", ".join(f"{k} {v:.2f}" for k, v in metrics.items())
          + f" (run record {work_dir / RECORD_NAME})")
    return 0
