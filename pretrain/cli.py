"""Console entry points ``mae-transfer pretrain | export | visualize | linprobe | finetune``.

Each takes its argument list and returns an exit code; bad input (config, data, checkpoint, output folder, a
diverging loss) is one line on stderr and exit code 2 (``runlib.run_command``). Under ``torchrun`` the same
commands run data-parallel: ``torchrun --nproc_per_node 8 -m pretrain.train --config ... --out ...`` (or
``-m mae_transfer.cli pretrain``). pretrain, linprobe and finetune speak the one command grammar of every task
(``runlib.command_line``); export and visualize its ``--weights``, ``--input`` and ``--out``, with the checkpoint
as positional argument and ``--images`` kept as aliases.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Callable

from runlib import UserError, refuse_inputs_in, run_command
from runlib import command_line as grammar
from runlib.run_record import RECORD_NAME


def _setup_logging() -> None:
    level = logging.INFO if int(os.environ.get("RANK", 0)) == 0 else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def _run(command: str, body: Callable[[], None]) -> int:
    """``runlib.run_command`` with the training logs shown (INFO on rank 0)."""
    _setup_logging()
    return run_command(command, body)


CONFIG_EXAMPLES = {"pretrain": "mae_vit_base.py", "linprobe": "linprobe_vit_base.py",
                   "finetune": "finetune_vit_base.py"}


def _training_parser(command: str, description: str, init: bool = False) -> argparse.ArgumentParser:
    """The one command grammar (``runlib.command_line``); ``init``: the command takes initial weights."""
    usage = (f"mae-transfer {command} --config C --out DIR" + (" [--init WEIGHTS] [--init-label LABEL]" if init else "")
             + " [--resume] [options] [KEY=VALUE ...]")
    aliases = grammar.TRAIN_ALIASES if init else ("config", "out", "overrides")
    parser = argparse.ArgumentParser(prog=f"mae-transfer {command}", description=description, usage=usage,
                                     epilog=grammar.framework_aliases(*aliases))
    grammar.add_config(parser, f"config file, e.g. configs/pretrain/{CONFIG_EXAMPLES[command]}")
    grammar.add_out(parser, f"output folder: checkpoints/, log.jsonl, tb/, {RECORD_NAME}")
    if init:
        grammar.add_init(parser, "the config's checkpoint; none: random initial weights")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the newest checkpoint in --out (start fresh if there is none)")
    parser.add_argument("--resume-from", default=None, metavar="CHECKPOINT", help="continue from this checkpoint")
    grammar.add_overrides(parser, "data_path=/data/train epochs=400", can_add=False)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    # KEY=VALUE overrides may come before and after options
    return grammar.finish(parser, parser.parse_intermixed_args(argv), required=("config", "out"))


def _resume(args: argparse.Namespace) -> bool | str:
    return args.resume_from or args.resume


def pretrain(argv: list[str]) -> int:
    args = _parse(_training_parser("pretrain", "MAE-pretrain a ViT on an image folder."), argv)

    def body():
        from .train import train_mae
        checkpoint = train_mae(args.config, args.out, resume=_resume(args), overrides=args.overrides)
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"final checkpoint: {checkpoint}")
    return _run("pretrain", body)


def export(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mae-transfer export",
                                     usage="mae-transfer export --weights W --out PATH [--format mae|timm|hf] "
                                           "[--num-heads N]",
                                     description="Write a pretraining checkpoint's encoder in the official MAE release "
                                                 "format ({'model': state_dict}), for timm, or for Hugging Face "
                                                 "transformers (ViTMAEModel). PATH.json beside it records the label "
                                                 "of the weights (mae) when the checkpoint's run folder tells it.",
                                     epilog=grammar.aliases_line("--checkpoint, or the checkpoint as positional "
                                                                 "argument, for --weights"))
    grammar.add_weights(parser, "pretraining checkpoint (ours, the MAE repo's, an official *_full.pth, a Hugging Face "
                                "ViTMAE file) or a reference: timm:NAME, hf:ORG/REPO, a URL",
                        positional="the positional CHECKPOINT")
    grammar.add_positional_alias(parser, "weights", "CHECKPOINT", "--weights")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="output file, e.g. mae_pretrain_vit_base.pth (a folder for hf, and for timm without a "
                             "weights suffix)")
    parser.add_argument("--format", choices=("mae", "timm", "hf"), default="mae",
                        help="mae: {'model': state_dict} as the MAE release (default); timm: a folder with "
                             "model.safetensors and timm's config.json for timm.create_model('local-dir:OUT', "
                             "pretrained=True), or, for an OUT ending in .pth/.bin/.safetensors, the bare state dict "
                             "for timm.create_model(..., pretrained_cfg_overlay=dict(file=OUT)); hf: a folder for "
                             "transformers' ViTMAEModel.from_pretrained and AutoImageProcessor")
    parser.add_argument("--num-heads", type=int, default=None, metavar="N",
                        help="attention heads, for --format hf and timm folders when neither the checkpoint nor a "
                             "preset width tells")
    args = parser.parse_args(argv)
    grammar.take_positional(parser, args, "weights", "--weights")

    def body():
        from .export import export_encoder
        refuse_inputs_in(args.out, [args.weights])  # also through "..", a symlink or a hard link
        print(f"wrote {export_encoder(args.weights, args.out, args.format, args.num_heads)}")
    return _run("export", body)


def visualize(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mae-transfer visualize",
                                     usage="mae-transfer visualize --weights W --input PATH [PATH ...] --out PNG "
                                           "[options]",
                                     description="PNG grid: original | masked | reconstruction | reconstruction "
                                                 "with visible patches pasted.",
                                     epilog=grammar.aliases_line("--checkpoint, or the checkpoint as positional "
                                                                 "argument, for --weights; --images for --input"))
    grammar.add_weights(parser, "pretraining checkpoint with the decoder (ours, an official *_full.pth, "
                                "zoo:demo-mae-full)", positional="the positional CHECKPOINT")
    grammar.add_positional_alias(parser, "weights", "CHECKPOINT", "--weights")
    parser.add_argument("--input", "--images", dest="input", nargs="+", required=True, metavar="PATH",
                        help="image files, or one folder (alias: --images)")
    parser.add_argument("--out", required=True, metavar="PNG", help="output PNG")
    parser.add_argument("--num", type=int, default=4, metavar="N", help="images taken from a folder (default 4)")
    parser.add_argument("--mask-ratio", type=float, default=0.75, metavar="R",
                        help="share of patches masked (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the random mask")
    parser.add_argument("--model", default=None, metavar="NAME",
                        help="model name for files without a config (official *_full.pth), e.g. mae_vit_base_patch16")
    parser.add_argument("--input-size", type=int, default=None, metavar="PX",
                        help="image size for files without a config")
    parser.add_argument("--norm-pix", action=argparse.BooleanOptionalAction, default=None,
                        help="whether a file without a config was trained with norm_pix_loss (default yes)")
    args = parser.parse_args(argv)
    grammar.take_positional(parser, args, "weights", "--weights")

    def body():
        from .reconstruction import visualize as draw
        if args.num < 1:
            raise UserError(f"--num {args.num}: must be at least 1 (images taken from a folder)")
        images = args.input[0] if len(args.input) == 1 and Path(args.input[0]).is_dir() else args.input
        refuse_inputs_in(args.out, [args.weights, *args.input])
        path = draw(args.weights, images, args.out, mask_ratio=args.mask_ratio, seed=args.seed,
                    num_images=args.num, model_name=args.model, input_size=args.input_size,
                    norm_pix_loss=args.norm_pix)
        print(f"wrote {path}")
    return _run("visualize", body)


def _classify(command: str, description: str, argv: list[str]) -> int:
    args = _parse(_training_parser(command, description, init=True), argv)

    def body():
        from . import classify
        run = classify.linear_probe if command == "linprobe" else classify.finetune
        result = run(args.config, args.out, checkpoint=args.init, resume=_resume(args), overrides=args.overrides,
                     init_label=args.init_label)
        if int(os.environ.get("RANK", 0)) == 0:
            print(f"top-1 {result.top1:.2f} (best {result.top1_best:.2f}); final checkpoint: {result.checkpoint}")
    return _run(command, body)


def linprobe(argv: list[str]) -> int:
    return _classify("linprobe", "Linear probe of a frozen encoder on an ImageFolder classification set.", argv)


def finetune(argv: list[str]) -> int:
    return _classify("finetune", "End-to-end fine-tuning (or, without --init, supervised training from random "
                                 "init) on an ImageFolder classification set.", argv)
