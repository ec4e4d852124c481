"""A config file made ready for mmengine's Runner: overrides checked against it, data root and initial weights set,
and the run record's labels (dataset, arch, init).

Overrides (``--cfg-options``, ``cfg_options``) name keys that are in the config and that something reads after
the file is loaded: mmengine's ``merge_from_dict`` would add a misspelt or misplaced key, or set a variable of
the file that other values were computed from when it was read (``max_iters=5`` in a config whose
``train_cfg.max_iters`` was built from ``max_iters``), and the run would go on without it. A new key must be
asked for as ``+key=value`` (detectron2's / Hydra's syntax), and a value of another type than the config's (a
string for a number, a number for a list) is refused; numbers may replace numbers and ``None`` anything.
"""
from __future__ import annotations

import inspect
import math
import uuid
from functools import cache
from pathlib import Path
from typing import Any, Mapping

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from backbone import arch_name
from runlib import UserError, config_syntax_named
from pretrain.config import read_mmengine_config

DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")
NEW_KEY = "+"
_MISSING = object()


class SegmentationError(UserError):
    """A run that cannot start as asked (config, override, data root, checkpoint, output folder)."""


def load_config(config: str | Path, work_dir: str | Path, cfg_options: Mapping[str, Any] | None = None, *,
                data_root: str | Path | None = None, init_checkpoint: str | Path | None = None,
                init: str | None = None, launcher: str = "none") -> Config:
    """The config file with ``cfg_options`` merged, the data root and initial checkpoint set, ready for Runner.

    ``cfg.run_record`` ends up holding the run record's dataset, arch, init and config (see ``init_label``).
    """
    config = Path(config)
    if not config.is_file():
        raise SegmentationError(f"{config}: no such config file")
    if launcher != "none" and not torch.cuda.is_available():
        raise SegmentationError(f"--launcher {launcher} needs GPUs (mmengine's launchers pin one CUDA device per "
                                "process); on CPU run a single process without --launcher")
    with config_syntax_named(config, SegmentationError):
        cfg = read_mmengine_config(config)
    declared = pretrained_path(cfg)
    declared_iters = (cfg.get("train_cfg") or {}).get("max_iters")
    apply_overrides(cfg, cfg_options or {}, config)
    rescale_schedule(cfg, declared_iters, cfg_options or {})
    if data_root is not None:
        if not Path(data_root).is_dir():
            raise SegmentationError(f"{data_root}: data root does not exist (an ADE20K-format root such as "
                                    "ADEChallengeData2016 with images/ and annotations/)")
        for name in DATALOADERS:
            if cfg.get(name):
                base_dataset(cfg[name].dataset).data_root = str(data_root)
    if init_checkpoint is not None:
        cfg.model.backbone.pop("pretrained", None)
        cfg.model.pretrained = str(init_checkpoint)
    declared_init = cfg.get("run_record", {}).get("init")
    cfg.run_record = dict(
        dataset=cfg.get("run_record", {}).get("dataset")
        or Path(base_dataset(cfg.test_dataloader.dataset).get("data_root", "unknown")).name,
        arch=arch_name(cfg.model.backbone.get("embed_dim", 768), cfg.model.backbone.get("depth", 12)),
        init=init or init_label(pretrained_path(cfg), declared, declared_init),
        config=str(config), seed=cfg.get("randomness", {}).get("seed", -1))
    cfg.work_dir = str(work_dir)
    cfg.launcher = launcher
    if cfg.get("visualizer"):  # mmengine keeps one visualizer per name per process: a second run in the same
        # process would otherwise write its scalars into the first run's folder
        cfg.visualizer.name = f"{cfg.visualizer.get('name', 'visualizer')}-{uuid.uuid4().hex[:8]}"
    return cfg


def apply_overrides(cfg: Config, options: Mapping[str, Any], config: str | Path) -> None:
    """Merge ``{dotted.key: value}`` into ``cfg`` after checking every key and value against it (one
    ``SegmentationError`` naming the key otherwise); ``+dotted.key`` adds a key the config does not have."""
    checked, tree = {}, cfg.to_dict()
    for key, value in options.items():
        new = key.startswith(NEW_KEY)
        key = key.removeprefix(NEW_KEY)
        current = lookup(tree, key)
        if new and current is not _MISSING:
            raise SegmentationError(f"override +{key}: {key} is already in {config}; write {key}=... to change it")
        top = key.split(".", 1)[0]
        if not new and current is not _MISSING and top not in read_after_loading():
            raise SegmentationError(f"override {key}={value!r}: {top} is a variable of {config}, used only while the "
                                    f"file is read; setting it now changes nothing{_suggestion(tree, key, top)}")
        if not new and current is _MISSING:
            raise SegmentationError(f"override {key}={value!r}: {config} has no key {key!r}"
                                    f"{_suggestion(tree, key)}; write +{key}=... to add a new key")
        if not new and not _same_kind(value, current):
            raise SegmentationError(f"override {key}={value!r}: {config} has {key}={current!r} (type "
                                    f"{type(current).__name__}), the override is of type {type(value).__name__}")
        checked[key] = value
    cfg.merge_from_dict(checked)


def rescale_schedule(cfg: Config, declared_iters: int | None, options: Mapping[str, Any]) -> None:
    """When ``train_cfg.max_iters`` is overridden and no scheduler is, move the iteration-based schedulers'
    ``begin`` / ``end`` to the same fractions of the new length: warm-up and poly decay end where the config
    file has them end, so the lr reaches its final value at the last iteration. (detectron2's ``LRMultiplier``
    reads its schedule as fractions of ``train.max_iter``, so a detection run of another length scales the
    same way.)"""
    keys = [key.removeprefix(NEW_KEY) for key in options]
    iters = (cfg.get("train_cfg") or {}).get("max_iters")
    if ("train_cfg.max_iters" not in keys or any(key.startswith("param_scheduler") for key in keys)
            or not declared_iters or not isinstance(iters, int) or iters <= 0 or iters == declared_iters):
        return
    schedulers = cfg.get("param_scheduler") or []
    for scheduler in [schedulers] if isinstance(schedulers, Mapping) else schedulers:
        if scheduler.get("by_epoch", True):
            continue
        begin = round(scheduler.get("begin", 0) * iters / declared_iters)
        scheduler.begin = begin
        if scheduler.get("end", math.inf) <= declared_iters:  # two steps at least: with one, mmengine's
            # LinearLR would stay at its start_factor for the whole run
            scheduler.end = max(round(scheduler.end * iters / declared_iters), begin + 2)


def lookup(tree: Mapping, key: str) -> Any:
    """The value at a dotted key (list items by index, as mmengine's ``merge_from_dict``), or ``_MISSING``."""
    node: Any = tree
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _leaf_keys(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, Mapping):
        items = node.items()
    elif isinstance(node, (list, tuple)) and any(isinstance(v, Mapping) for v in node):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return [prefix[:-1]]
    return [k for key, value in items for k in _leaf_keys(value, f"{prefix}{key}.")]


@cache
def read_after_loading() -> frozenset[str]:
    """Top-level config keys that are read once the file is loaded: mmengine's Runner arguments and the others
    that Runner.from_cfg, mmseg's inference API and this package read. Any other top-level name is a variable
    the file used to compute those (``crop_size``, ``max_iters``, ``data_root``, ...)."""
    runner = set(inspect.signature(Runner.__init__).parameters) - {"self", "cfg"}
    return frozenset(runner | {"model_wrapper_cfg", "compile", "activation_checkpointing", "efficient_conv_bn_eval",
                               "test_pipeline", "tta_model", "tta_pipeline", "custom_imports", "run_record"})


def _suggestion(tree: Mapping, key: str, skip: str = "") -> str:
    """" (did you mean a.b.c?)" for config keys ending in the key's last part (not under ``skip``)."""
    last = key.rsplit(".", 1)[-1]
    close = [k for k in _leaf_keys(tree) if (k == last or k.endswith(f".{last}")) and k.split(".")[0] != skip
             and k.split(".")[0] in read_after_loading()]
    return f" (did you mean {', '.join(close[:3])}?)" if close else ""


def _same_kind(value: Any, current: Any) -> bool:
    """Whether an override may replace the config's value: numbers for numbers (not bools), strings for strings,
    sequences for sequences, dicts for dicts; None on either side always."""
    if value is None or current is None:
        return True
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(current, bool)
    for kind in ((int, float), str, (list, tuple), Mapping):
        if isinstance(current, kind):
            return isinstance(value, kind)
    return True


def pretrained_path(cfg: Config) -> str | None:
    """The initial backbone weights the config names (``model.pretrained`` or ``model.backbone.pretrained``)."""
    return cfg.model.get("pretrained") or cfg.model.backbone.get("pretrained")


def base_dataset(dataset_cfg):
    """The innermost dataset of wrappers such as RepeatDataset (where data_root lives)."""
    while "data_root" not in dataset_cfg and "dataset" in dataset_cfg:
        dataset_cfg = dataset_cfg.dataset
    return dataset_cfg


def init_label(pretrained: str | None, declared: str | None, declared_init: str | None) -> str:
    """What the backbone starts from: "random" without a checkpoint; the config's ``run_record.init``
    ("mae", "supervised") if the checkpoint is the one the config file names; else the checkpoint path."""
    if not pretrained:
        return "random"
    if pretrained == declared and declared_init:
        return declared_init
    return str(pretrained)
