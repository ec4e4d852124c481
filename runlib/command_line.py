"""The one command grammar of every training and evaluation task (pretrain, finetune, linprobe, detect, segment):

    mae-transfer TASK [VERB] --config C --out DIR [--init WEIGHTS] [--init-label LABEL] [--resume] [KEY=VALUE ...]
    mae-transfer TASK eval|predict --config C --weights W [--input PATH ...] --out DIR [KEY=VALUE ...]

The frameworks' own spellings are accepted as aliases: ``--config-file`` (detectron2) and the config as the first
positional argument (mmseg's tools) for ``--config``; ``--output-dir`` / ``--work-dir`` for ``--out``;
``--init-checkpoint`` / ``--checkpoint`` for ``--init`` (training) and ``--checkpoint`` or the second positional
argument for ``--weights`` (evaluation, prediction); ``--cfg-options K=V ...`` for trailing ``KEY=VALUE``; and
``--init LABEL`` with a bare word that names no file (``--init mae``: detectron2 train's run-record label) for
``--init-label LABEL``. The other commands (generate-data, export, visualize, compare, plot, zoo, grid, demo)
take ``--out``, ``--weights`` and ``--input`` where they apply, a positional spelling kept as alias
(``add_positional_alias``).
"""
from __future__ import annotations

import argparse
import os
import re
import textwrap
from typing import Iterable

from .overrides import is_override
from .run_record import INIT_LABEL_RULE, NO_WEIGHTS

_FRAMEWORK_SPELLINGS = {  # grammar option -> the frameworks' spellings of it
    "config": "--config-file or a first positional CONFIG for --config",
    "out": "--output-dir, --work-dir for --out",
    "init": "--init-checkpoint, --checkpoint for --init",
    "weights": "--checkpoint or a second positional CHECKPOINT for --weights",
    "overrides": "--cfg-options K=V ... for trailing KEY=VALUE",
    "init_label": "--init WORD (a bare word naming no file, e.g. --init mae) for --init-label WORD",
}


def framework_aliases(*options: str, also: tuple[str, ...] = ()) -> str:
    """The epilog paragraph naming the frameworks' spellings of ``options`` (keys of ``_FRAMEWORK_SPELLINGS``; all
    when none is given), then the command's own ``also``."""
    parts = [_FRAMEWORK_SPELLINGS[name] for name in options or _FRAMEWORK_SPELLINGS] + list(also)
    return textwrap.fill("aliases (the frameworks' spellings): " + "; ".join(parts), width=110)


ALIASES = framework_aliases()
TRAIN_ALIASES = ("config", "out", "init", "overrides", "init_label")  # of a training command
EVAL_ALIASES = ("config", "weights", "out", "overrides", "init_label")
PREDICT_ALIASES = ("config", "weights", "out", "overrides")
OPTION_ALIASES = {"train": TRAIN_ALIASES, "eval": EVAL_ALIASES, "predict": PREDICT_ALIASES}


def verb_usages(task: str) -> dict[str, str]:
    """The usage line of ``mae-transfer TASK train | eval | predict``: one grammar for detect and segment."""
    return {
        "train": f"mae-transfer {task} train --config C --out DIR [--init WEIGHTS] [--init-label LABEL] [--resume] "
                 "[options] [KEY=VALUE ...]",
        "eval": f"mae-transfer {task} eval --config C --weights W --out DIR [options] [KEY=VALUE ...]",
        "predict": f"mae-transfer {task} predict --config C --weights W --input PATH [PATH ...] --out DIR [options] "
                   "[KEY=VALUE ...]",
    }
WEIGHTS_REFERENCES = "a file, timm:NAME, hf:ORG/REPO, zoo:NAME, a URL, detectron2://PATH"
_BARE_WORD = re.compile(r"[A-Za-z][\w-]*")


def add_config(parser: argparse.ArgumentParser, help_: str) -> None:
    parser.add_argument("--config", "--config-file", dest="config", metavar="C",
                        help=f"{help_} (alias: --config-file, or the config as first positional argument)")


def add_out(parser: argparse.ArgumentParser, help_: str, required: bool = False) -> None:
    parser.add_argument("--out", "--output-dir", "--work-dir", dest="out", metavar="DIR", required=required,
                        help=f"{help_} (aliases: --output-dir, --work-dir)")


def add_init(parser: argparse.ArgumentParser, default: str) -> None:
    """``--init WEIGHTS`` (with its aliases) and ``--init-label LABEL`` of a training command."""
    parser.add_argument("--init", metavar="WEIGHTS",
                        help=f"initial weights: {WEIGHTS_REFERENCES}, or {' / '.join(NO_WEIGHTS)} for random "
                             f"initial weights (default: {default}). A bare word naming no file (--init mae) is "
                             "read as --init-label")
    parser.add_argument("--init-checkpoint", "--checkpoint", dest="init_alias", metavar="WEIGHTS",
                        help="aliases of --init")
    add_init_label(parser)


def add_init_label(parser: argparse.ArgumentParser, init_alias: bool = False) -> None:
    """``--init-label``; with ``init_alias`` (evaluation, which takes no initial weights) ``--init`` too."""
    parser.add_argument("--init-label", *(["--init"] if init_alias else []), dest="init_label", metavar="LABEL",
                        help=f"LABEL: {INIT_LABEL_RULE}" + (" (alias: --init)" if init_alias else ""))


def add_weights(parser: argparse.ArgumentParser, help_: str, positional: str = "the second positional argument"
                ) -> None:
    parser.add_argument("--weights", "--checkpoint", dest="weights", metavar="W",
                        help=f"{help_} (alias: --checkpoint, or {positional})")


def aliases_line(text: str) -> str:
    """A command's epilog: its other spellings, in one paragraph at the end of ``-h``."""
    return textwrap.fill(f"aliases: {text}", width=110)


def add_positional_alias(parser: argparse.ArgumentParser, dest: str, metavar: str, option: str, type=None) -> None:
    """An optional positional argument kept as the alias of ``option`` (whose ``dest`` is ``dest``); ``-h`` names it
    in the option's help and the aliases line, not among the arguments."""
    parser.add_argument(f"{dest}_positional", nargs="?", metavar=metavar, type=type, help=argparse.SUPPRESS)


def take_positional(parser: argparse.ArgumentParser, args: argparse.Namespace, dest: str, option: str) -> None:
    """``args.<dest>`` from the option or its positional alias (``add_positional_alias``); both given with
    different values, or neither, is one argparse error."""
    positional, given = vars(args).pop(f"{dest}_positional"), getattr(args, dest)
    if given is not None and positional is not None and given != positional:
        parser.error(f"{option} {given} and the positional {positional}: give it once")
    if given is None and positional is None:
        parser.error(f"the following arguments are required: {option}")
    setattr(args, dest, given if given is not None else positional)


def add_overrides(parser: argparse.ArgumentParser, example: str, can_add: bool = True) -> None:
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                        help=f"config overrides, e.g. {example}; the key must be in the config"
                             + (" (+KEY=VALUE adds one)" if can_add else "")
                             + "; values read as 1, 1e-4, true, None, [a,b], (a,b), else text")
    parser.add_argument("--cfg-options", dest="cfg_options", nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE", help="alias of trailing KEY=VALUE overrides (mmseg's spelling)")


def parse_verb(parser: argparse.ArgumentParser, verbs: dict[str, argparse.ArgumentParser], argv: list[str],
               aliases: dict[str, str] = {}) -> argparse.Namespace:
    """Parse ``VERB ARGS...`` with the verb's parser, options and ``KEY=VALUE`` items in any order (argparse's
    intermixed parsing, which does not go through sub-parsers); ``aliases`` maps a verb's other names to it.
    Anything else (``-h``, an unknown verb) goes to ``parser``, which prints help or the error and exits."""
    if not argv or argv[0] not in verbs:
        parser.parse_args(argv)
        parser.error(f"unknown command {argv[0]!r}")  # parse_args above exits first
    args = verbs[argv[0]].parse_intermixed_args(argv[1:])
    args.command = aliases.get(argv[0], argv[0])
    return args


def finish(parser: argparse.ArgumentParser, args: argparse.Namespace, positional: Iterable[str] = ("config",),
           required: Iterable[str] = ("config",)) -> argparse.Namespace:
    """The namespace in the one grammar's terms: ``overrides`` gathers trailing ``KEY=VALUE`` items,
    ``--cfg-options`` and any ``KEY=VALUE`` that ``--input`` or ``--resume`` took; other positional items fill
    ``positional`` (config, then weights) where the option was not given; ``init`` is the initial weights (None:
    the config's) and ``init_label`` the label; missing ``required`` options are one argparse error."""
    overrides, items = [], list(getattr(args, "overrides", None) or [])
    if getattr(args, "input", None):  # "--input a.jpg b.jpg k=v": k=v is an override
        overrides += [item for item in args.input if is_override(item)]
        args.input = [item for item in args.input if not is_override(item)]
    if isinstance(getattr(args, "resume", None), str) and is_override(args.resume):  # "--resume k=v"
        overrides.append(args.resume)
        args.resume = True
    overrides += [item for item in items if is_override(item)] + list(getattr(args, "cfg_options", []))
    bare = [item for item in items if not is_override(item)]
    for name in positional:
        if getattr(args, name, None) is None and bare:
            setattr(args, name, bare.pop(0))
    if bare:
        parser.error(f"unrecognized arguments: {' '.join(bare)}")
    missing = [name for name in required if getattr(args, name, None) is None]
    if missing:
        parser.error("the following arguments are required: " + ", ".join(f"--{name}" for name in missing))
    args.overrides = overrides
    vars(args).pop("cfg_options", None)
    if "init_alias" in vars(args):
        _resolve_init(parser, args)
    return args


def _resolve_init(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """``--init`` and its aliases -> ``args.init`` (weights) and ``args.init_label``."""
    init, alias = args.init, vars(args).pop("init_alias")
    if init is not None and is_label_word(init):
        args.init_label = args.init_label or init
        init = None
    if init is not None and alias is not None:
        parser.error(f"--init {init} and --init-checkpoint/--checkpoint {alias}: give the initial weights once")
    args.init = init if init is not None else alias


def is_label_word(value: str) -> bool:
    """Whether an ``--init`` value is a label rather than weights: a bare word (letters, digits, ``-``, ``_``)
    that is not ``random`` / ``none`` and names no file."""
    return bool(_BARE_WORD.fullmatch(value)) and value.lower() not in NO_WEIGHTS and not os.path.exists(value)
