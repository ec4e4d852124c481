"""A config file made ready for mmengine's Runner: overrides checked against it, data root and initial weights set,
and the run record's labels (dataset, arch, init).

Overrides (trailing ``KEY=VALUE`` on the command line, ``cfg_options``) are read and checked as every task's
(``runlib.overrides``): keys of the config only (``+key=value`` adds one), values of the config value's kind.
Here they must also name keys that something reads after the file is loaded: setting a variable of the file
that other values were computed from when it was read (``max_iters=5`` in a config whose
``train_cfg.max_iters`` was built from ``max_iters``) would change nothing, and the run would go on without it.
"""
from __future__ import annotations

import inspect
import math
import uuid
from functools import cache, partial
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from backbone import arch_name
from runlib import UserError, config_syntax_named
from runlib import overrides as override_syntax
from runlib.overrides import leaf_keys, lookup_in, suggestion
from runlib.run_record import init_label, no_weights
from pretrain.config import read_mmengine_config

DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


class SegmentationError(UserError):
    """A run that cannot start as asked (config, override, data root, checkpoint, output folder)."""


def load_config(config: str | Path, work_dir: str | Path,
                cfg_options: Mapping[str, Any] | Iterable[str] | None = None, *, data_root: str | Path | None = None,
                init_checkpoint: str | Path | None = None, init: str | None = None,
                launcher: str = "none") -> Config:
    """The config file with ``cfg_options`` (``key=value`` strings or ``{key: value}``) merged, the data root and
    initial checkpoint set (``random`` / ``none``: no initial weights), ready for Runner.

    ``cfg.run_record`` ends up holding the run record's dataset, arch, init and config (init: ``init``, else
    ``runlib.run_record.init_label`` of the weights and the config's ``run_record.init``).
    """
    config = Path(config)
    if not config.is_file():
        raise SegmentationError(f"{config}: no such config file")
    if launcher != "none" and not torch.cuda.is_available():
        raise SegmentationError(f"--launcher {launcher} needs GPUs (mmengine's launchers pin one CUDA device per "
                                "process); on CPU run a single process without --launcher")
    with config_syntax_named(config, SegmentationError):
        cfg = read_mmengine_config(config)
    declared_iters = (cfg.get("train_cfg") or {}).get("max_iters")
    rescale_schedule(cfg, declared_iters, apply_overrides(cfg, cfg_options or (), config))
    if data_root is not None:
        if not Path(data_root).is_dir():
            raise SegmentationError(f"{data_root}: data root does not exist (an ADE20K-format root such as "
                                    "ADEChallengeData2016 with images/ and annotations/)")
        for name in DATALOADERS:
            if cfg.get(name):
                base_dataset(cfg[name].dataset).data_root = str(data_root)
    if init_checkpoint is not None:  # "random" / "none": no initial weights
        cfg.model.backbone.pop("pretrained", None)
        cfg.model.pretrained = None if no_weights(init_checkpoint) else str(init_checkpoint)
    declared_init = cfg.get("run_record", {}).get("init")
    cfg.run_record = dict(
        dataset=cfg.get("run_record", {}).get("dataset")
        or Path(base_dataset(cfg.test_dataloader.dataset).get("data_root", "unknown")).name,
        arch=arch_name(cfg.model.backbone.get("embed_dim", 768), cfg.model.backbone.get("depth", 12)),
        init=init or init_label(pretrained_path(cfg), declared_init),
        config=str(config), seed=cfg.get("randomness", {}).get("seed", -1))
    cfg.work_dir = str(work_dir)
    cfg.launcher = launcher
    if cfg.get("visualizer"):  # mmengine keeps one visualizer per name per process: a second run in the same
        # process would otherwise write its scalars into the first run's folder
        cfg.visualizer.name = f"{cfg.visualizer.get('name', 'visualizer')}-{uuid.uuid4().hex[:8]}"
    return cfg


def apply_overrides(cfg: Config, options: Mapping[str, Any] | Iterable[str], config: str | Path) -> list[str]:
    """Merge overrides (``key=value`` strings, or ``{dotted.key: value}``) into ``cfg`` after checking every key
    and value against it (``runlib.overrides``; one ``SegmentationError`` naming the key otherwise), and refusing
    a variable of the file (``max_iters`` where ``train_cfg.max_iters`` was computed from it); ``+dotted.key``
    adds a key the config does not have. Returns the keys set."""
    tree = cfg.to_dict()
    read_later = read_after_loading()

    def known_keys() -> list[str]:
        return [key for key in leaf_keys(tree) if key.split(".")[0] in read_later]

    checked = override_syntax.parse_overrides(options, config, partial(lookup_in, tree), known_keys=known_keys,
                                              error=SegmentationError)
    for override in checked:
        top = override.key.split(".", 1)[0]
        if not override.new and top not in read_later:
            raise SegmentationError(f"override {override.text}: {top} is a variable of {config}, used only while "
                                    "the file is read; setting it now changes nothing"
                                    f"{suggestion(override.key, known_keys())}")
    cfg.merge_from_dict({override.key: override.value for override in checked})
    return [override.key for override in checked]


def rescale_schedule(cfg: Config, declared_iters: int | None, keys: Iterable[str]) -> None:
    """When ``train_cfg.max_iters`` is overridden and no scheduler is, move the iteration-based schedulers'
    ``begin`` / ``end`` to the same fractions of the new length: warm-up and poly decay end where the config
    file has them end, so the lr reaches its final value at the last iteration. (detectron2's ``LRMultiplier``
    reads its schedule as fractions of ``train.max_iter``, so a detection run of another length scales the
    same way.)"""
    keys = list(keys)
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


@cache
def read_after_loading() -> frozenset[str]:
    """Top-level config keys that are read once the file is loaded: mmengine's Runner arguments and the others
    that Runner.from_cfg, mmseg's inference API and this package read. Any other top-level name is a variable
    the file used to compute those (``crop_size``, ``max_iters``, ``data_root``, ...)."""
    runner = set(inspect.signature(Runner.__init__).parameters) - {"self", "cfg"}
    return frozenset(runner | {"model_wrapper_cfg", "compile", "activation_checkpointing", "efficient_conv_bn_eval",
                               "test_pipeline", "tta_model", "tta_pipeline", "custom_imports", "run_record"})


def pretrained_path(cfg: Config) -> str | None:
    """The initial backbone weights the config names (``model.pretrained`` or ``model.backbone.pretrained``)."""
    return cfg.model.get("pretrained") or cfg.model.backbone.get("pretrained")


def base_dataset(dataset_cfg):
    """The innermost dataset of wrappers such as RepeatDataset (where data_root lives)."""
    while "data_root" not in dataset_cfg and "dataset" in dataset_cfg:
        dataset_cfg = dataset_cfg.dataset
    return dataset_cfg
