"""``mae-transfer segment train|eval|predict`` in the one command grammar (``runlib.command_line``): mmseg's
tools/train.py, tools/test.py and inferencer for this project's configs.

    mae-transfer segment train --config C [--out DIR] [--init WEIGHTS] [--init-label LABEL] [--resume]
                               [--data-root DIR] [--launcher pytorch] [KEY=VALUE ...]
    mae-transfer segment eval --config C --weights W [--out DIR] [--init-label LABEL] [--data-root DIR]
                              [--launcher pytorch] [KEY=VALUE ...]          (alias: segment test)
    mae-transfer segment predict --config C --weights W --input PATH [PATH ...] --out DIR [--device cuda]
                                 [--label-offset 1] [KEY=VALUE ...]

mmseg's spellings are aliases: the config (and, for eval / predict, the checkpoint) as positional arguments,
``--work-dir``, ``--cfg-options K=V ...``, ``--checkpoint``. Several GPUs: ``torchrun --nproc_per_node 8 -m
mae_transfer.cli segment train --config C --launcher pytorch``. Bad input (config, override, data, checkpoint,
output folder) is one line and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from runlib import command_line as grammar
from runlib.images import MAX_PIXELS

USAGE_EXAMPLES = f"""examples:
  mae-transfer segment train --config configs/segmentation/upernet_vit_b_mae_ade20k_512x512_160k.py \\
      --data-root data/ade/ADEChallengeData2016
  torchrun --nproc_per_node 8 -m mae_transfer.cli segment train --config CONFIG --launcher pytorch
  mae-transfer segment train --config CONFIG --resume              # from the output folder's newest checkpoint
  mae-transfer segment train --config CONFIG --init zoo:demo-mae train_cfg.max_iters=1000 \\
      +model.backbone.init_values=1.0
  mae-transfer segment eval --config CONFIG --weights work_dirs/NAME/iter_160000.pth
  mae-transfer segment predict --config CONFIG --weights work_dirs/NAME/iter_160000.pth --input photos/ \\
      --out predictions/

KEY=VALUE keys must be in the config (a misspelt key is an error, not a new key); +KEY=VALUE adds a key.
"""
_USAGE = grammar.verb_usages("segment")
VERB_ALIASES = {"test": "eval"}  # mmseg's tools/test.py
TEST_ALIAS = "segment test for segment eval"


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = argparse.ArgumentParser(prog="mae-transfer segment",
                                     description="UperNet with this project's ViT in mmsegmentation",
                                     epilog=USAGE_EXAMPLES + grammar.framework_aliases(also=(TEST_ALIAS,)),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def verb(name: str, help_: str, aliases: tuple[str, ...] = ()) -> argparse.ArgumentParser:
        epilog = USAGE_EXAMPLES + grammar.framework_aliases(*grammar.OPTION_ALIASES[name],
                                                            also=(TEST_ALIAS,) if name == "eval" else ())
        return commands.add_parser(name, help=help_, aliases=list(aliases), usage=_USAGE[name],
                                   epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)

    train = verb("train", "train, then evaluate the final weights")
    test = verb("eval", "evaluate a trained checkpoint (alias: test)", aliases=("test",))
    predict = verb("predict", "segment images: overlays and label PNGs")
    for sub in (train, test, predict):
        grammar.add_config(sub, "an mmseg config, e.g. from configs/segmentation/")
    for sub in (test, predict):
        grammar.add_weights(sub, "a segmentor checkpoint of this config (iter_N.pth)")
    grammar.add_out(train, "checkpoints, logs and run_record.json (default: work_dirs/<config name>)")
    grammar.add_out(test, "logs and run_record.json (default: work_dirs/<config name>_test_<checkpoint name>)")
    predict.add_argument("--input", nargs="+", required=True, metavar="PATH",
                         help="image files, folders (their images) and glob patterns")
    grammar.add_out(predict, "writes vis/NAME.png (overlays) and pred/NAME.png (class indices, palette PNG)",
                    required=True)
    predict.add_argument("--label-offset", type=int, default=0, metavar="N",
                         help="pred/NAME.png holds class k as k+N (default 0: the 0-based class index; 1: the "
                              "ADE20K-format ground truth's convention, 0 = ignore)")
    predict.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                         help=f"refuse larger images (default {MAX_PIXELS:,}: the score maps are at full resolution)")
    predict.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the first GPU if any, else the CPU)")
    predict.add_argument("--opacity", type=float, default=0.5, metavar="A",
                         help="of the overlay's colours (default 0.5)")
    grammar.add_init(train, "the config's model.pretrained")
    train.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                       help="resume from the output folder's newest whole checkpoint, or from the one given")
    train.add_argument("--resume-from", metavar="CHECKPOINT", help="resume from this whole checkpoint")
    grammar.add_init_label(test, init_alias=True)
    for sub in (train, test):
        sub.add_argument("--data-root", type=Path, metavar="DIR",
                         help="ADE20K-format root (ADEChallengeData2016) for all splits")
        sub.add_argument("--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
                         help="'pytorch' under torchrun")
    for sub in (train, test, predict):
        grammar.add_overrides(sub, "train_cfg.max_iters=1000")
    verbs = {"train": train, "eval": test, "test": test, "predict": predict}
    return parser, verbs


def parse(argv: list[str]) -> argparse.Namespace:
    """The command line as a namespace in the one grammar's terms (``runlib.command_line.finish``)."""
    parser, verbs = _parser()
    args = grammar.parse_verb(parser, verbs, argv, VERB_ALIASES)
    required = ("config",) if args.command == "train" else ("config", "weights")
    args = grammar.finish(verbs[args.command], args, positional=required, required=required)
    if args.command == "train" and args.resume_from:
        args.resume = args.resume_from
    for name in ("config", "weights", "out"):
        if getattr(args, name, None) is not None:
            setattr(args, name, Path(getattr(args, name)))
    if args.command == "predict":
        args.input = [Path(item) for item in args.input]
    return args


def main(argv: list[str] | None = None) -> int:
    # mmengine resolves `mmseg::` config paths through pkg_resources, which warns on every use
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    args = parse(sys.argv[1:] if argv is None else argv)
    from runlib import run_command

    return run_command(f"segment {args.command}", lambda: _run(args))


def _run(args: argparse.Namespace) -> None:
    import segmentation
    from runlib import config_syntax_named, require_device
    from runlib.run_record import RECORD_NAME, metrics_text

    if args.command == "predict":
        require_device(args.device, "--device")
        with config_syntax_named(args.config):
            written = segmentation.predict(args.config, args.weights, args.input, args.out, device=args.device,
                                           cfg_options=args.overrides, opacity=args.opacity,
                                           label_offset=args.label_offset, max_pixels=args.max_pixels)
        print(f"{len(written)} images: overlays in {args.out / 'vis'}, label maps in {args.out / 'pred'}")
        return
    common = dict(init=args.init_label, data_root=args.data_root, launcher=args.launcher)
    if args.command == "train":
        out = args.out or Path("work_dirs") / args.config.stem
        metrics = segmentation.train(args.config, out, args.overrides, init_checkpoint=args.init,
                                     resume=args.resume, **common)
    else:
        out = args.out or Path("work_dirs") / f"{args.config.stem}_test_{args.weights.stem}"
        metrics = segmentation.test(args.config, args.weights, out, args.overrides, **common)
    print(f"{args.config.stem}: " + metrics_text(metrics, ", ")
          + f" (run record {out / RECORD_NAME})")
