"""``mae-transfer``: one command, one subcommand per job.

Each subcommand lives with the package that does the work and is imported only when called, so
``mae-transfer compare`` does not pay for importing detectron2 and mmseg. Every entry point takes the
remaining argument list and returns an exit code.
"""
from __future__ import annotations

import importlib
import sys

#  subcommand     module                    function     help
COMMANDS = {
    "pretrain":   ("pretrain.cli",           "pretrain",  "MAE-pretrain a ViT on an image folder"),
    "export":     ("pretrain.cli",           "export",    "write an encoder for the MAE release, timm or Hugging Face (--format)"),
    "visualize":  ("pretrain.cli",           "visualize", "reconstruction figure: original | masked | reconstruction | pasted"),
    "linprobe":   ("pretrain.cli",           "linprobe",  "linear probe of a frozen encoder on an image-folder classification set"),
    "finetune":   ("pretrain.cli",           "finetune",  "end-to-end fine-tuning on an image-folder classification set"),
    "detect":     ("detection.cli",          "main",      "Mask R-CNN with the ViT backbone in detectron2 (train | eval | predict)"),
    "segment":    ("segmentation.cli",       "main",      "UperNet with the ViT backbone in mmsegmentation (train | eval | predict)"),
    "compare":    ("mae_transfer.compare",   "main",      "tables of finished runs next to the published numbers"),
    "plot":       ("mae_transfer.plot",      "main",      "training loss and evaluation metrics of runs over iterations, one PNG"),
    "grid":       ("mae_transfer.grid",      "main",      "a grid of runs (a paper table) on SLURM or local processes, then compare"),
    "demo":       ("mae_transfer.demo",      "main",      "the whole toolkit end to end on generated data, on CPU"),
    "generate-data": ("mae_transfer.synthetic", "main",   "write the generated data sets (pretrain, classify, COCO, ADE20K)"),
    "zoo":        ("mae_transfer.zoo",       "main",      "make the demo zoo: pretrain its encoders (build), write files and model cards (publish)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: mae-transfer COMMAND [ARGS...]   (mae-transfer COMMAND -h for a command's options)", "",
             "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, _, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"mae-transfer: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, function, _ = COMMANDS[command]
    return int(getattr(importlib.import_module(module), function)(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
