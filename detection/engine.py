"""Train, resume and evaluate Mask R-CNN ViTDet from a LazyConfig: detectron2's ``lazyconfig_train_net`` loop.

The loop is detectron2's own (``SimpleTrainer`` / ``AMPTrainer``, its hooks, ``COCOEvaluator``,
``inference_on_dataset``); what this module adds is the project's habits around it: initial weights by their
own loader (``detection.weights``), datasets checked before the first iteration (``detection.data``), and a
run record (``run_record.json``: "running" with the latest evaluation, then "finished" or "failed") that
``mae-transfer compare`` reads.

Output folder: ``config.yaml``, ``log.txt``, ``run_record.json``, detectron2's ``metrics.json`` (per-iteration
events) and TensorBoard events, ``model_NNNNNNN.pth`` / ``model_final.pth`` / ``last_checkpoint``,
``inference/coco_instances_results.json`` (the predictions COCOEvaluator scored).
"""
from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.data import DatasetCatalog
from detectron2.engine import AMPTrainer, SimpleTrainer, create_ddp_model, default_writers, hooks
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger
from omegaconf import OmegaConf

from backbone import arch_name as backbone_arch_name, write_run_record
from backbone.run_record import RECORD_NAME

from .data import DetectionInputError, check_datasets, check_train_mapper, register_coco_json
from .weights import Checkpointer, load_initial_weights

logger = logging.getLogger(__name__)
_LOGGERS = ("detectron2", "fvcore", "backbone", "detection")


@dataclass
class RunOptions:
    """One train or eval run (picklable: it crosses ``launch`` into every worker process)."""

    config_file: str
    overrides: list[str] = field(default_factory=list)
    output_dir: str | None = None        # default: the config's train.output_dir
    eval_only: bool = False
    resume: bool = False                 # continue from output_dir/last_checkpoint if there is one
    weights: str | None = None           # train.init_checkpoint: initial weights, or the detector to evaluate
    init: str | None = None              # run-record label of the initialisation (default: the config's train.init)
    train_json: str | None = None        # a COCO-format training set instead of the config's
    train_images: str | None = None
    val_json: str | None = None          # a COCO-format evaluation set instead of the config's
    val_images: str | None = None
    dataset_name: str | None = None      # custom sets register as NAME_train / NAME_val (default: the json stems)


_ABSENT = object()


def load_config(options: RunOptions):
    """The config with overrides, options and custom datasets applied, checked for what would fail later."""
    if not Path(options.config_file).is_file():
        raise DetectionInputError(f"config file {options.config_file} does not exist")
    cfg = LazyConfig.load(options.config_file)
    for override in options.overrides:  # a misspelt key would otherwise be added silently; +key=value adds one
        key = override.split("=", 1)[0]
        if "=" not in override or (not key.startswith("+") and OmegaConf.select(
                cfg, key, default=_ABSENT, throw_on_missing=False) is _ABSENT):
            raise DetectionInputError(f"override {override!r}: {options.config_file} has no key {key!r} "
                                      "(overrides are key=value with keys of the config, e.g. train.max_iter=1000; "
                                      "+key=value adds a key)")
    cfg = LazyConfig.apply_overrides(cfg, options.overrides)
    if options.output_dir:
        cfg.train.output_dir = str(options.output_dir)
    if options.weights is not None:
        cfg.train.init_checkpoint = str(options.weights)
    if OmegaConf.is_missing(cfg.train, "init_checkpoint"):
        raise DetectionInputError(f"{options.config_file} has no default initial weights: give them with "
                                  "train.init_checkpoint=/path/to/file (see the config's comment)")
    if options.eval_only and not cfg.train.init_checkpoint:
        raise DetectionInputError("evaluation needs the trained detector's weights (--weights FILE)")
    _check_device(cfg, amp=not options.eval_only)
    _use_custom_data(cfg, options)
    mask_on = cfg.model.roi_heads.get("mask_head") is not None
    num_classes = cfg.model.roi_heads.num_classes
    check_datasets(cfg.dataloader.test.dataset.names, num_classes=num_classes, mask_on=mask_on)
    if not options.eval_only:
        check_datasets(cfg.dataloader.train.dataset.names, num_classes=num_classes, mask_on=mask_on)
        check_train_mapper(cfg.dataloader.train.mapper)
    if "output_dir" not in cfg.dataloader.evaluator:
        cfg.dataloader.evaluator.output_dir = os.path.join(cfg.train.output_dir, "inference")
    return cfg


def _use_custom_data(cfg, options: RunOptions) -> None:
    for split, json_file, images, loader in (("train", options.train_json, options.train_images, "train"),
                                             ("val", options.val_json, options.val_images, "test")):
        if json_file is None and images is None:
            continue
        if json_file is None or images is None:
            raise DetectionInputError(f"a custom {split} set needs both --{split}-json and --{split}-images")
        name = f"{options.dataset_name}_{split}" if options.dataset_name else None
        cfg.dataloader[loader].dataset.names = register_coco_json(json_file, images, name)


def _check_device(cfg, amp: bool) -> None:
    device = str(cfg.train.device)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DetectionInputError(f"train.device={device!r} but no CUDA device is available; on CPU add "
                                  "train.device=cpu train.amp.enabled=False")
    if amp and cfg.train.amp.enabled and not device.startswith("cuda"):
        raise DetectionInputError(f"train.amp.enabled=True needs a CUDA device (train.device={device!r}); "
                                  "add train.amp.enabled=False")


def _names(names) -> list[str]:
    """A config's dataset ``names``: one name or a list of them."""
    return [names] if isinstance(names, str) else list(names)


def arch_name(cfg) -> str:
    """The run record's ``arch`` for the config's ViT (``backbone.arch_name``)."""
    return backbone_arch_name(cfg.model.backbone.net.embed_dim, cfg.model.backbone.net.depth)


def init_label(cfg, options: RunOptions) -> str:
    """The run record's ``init``: given, else the config's ``train.init``, else the checkpoint path or "random"."""
    return options.init or cfg.train.get("init") or cfg.train.init_checkpoint or "random"


def coco_metrics(results: dict | None) -> dict[str, float]:
    """APbox / APmask (percent) of detectron2's COCO results."""
    results = results or {}
    names = {"bbox": "APbox", "segm": "APmask"}
    return {names[task]: results[task]["AP"] for task in names if "AP" in results.get(task, {})}


def do_test(cfg, model) -> dict:
    results = inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))
    if comm.is_main_process():
        print_csv_format(results)
    return results


def do_train(cfg, resume: bool, on_eval) -> dict:
    """detectron2's lazyconfig training loop; returns the last evaluation's results."""
    model = instantiate(cfg.model)
    logger.info(f"Model:\n{model}")
    model.to(cfg.train.device)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)

    ddp_model = create_ddp_model(model, **cfg.train.ddp)
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(ddp_model, train_loader, optimizer)
    checkpointer = Checkpointer(ddp_model, cfg.train.output_dir, trainer=trainer)
    last = {}

    def evaluate():
        last["results"] = do_test(cfg, ddp_model)
        on_eval(trainer.iter + 1, last["results"])
        return last["results"]

    for name in _names(cfg.dataloader.test.dataset.names):  # a bad evaluation set fails now, not after training
        DatasetCatalog.get(name)
    main = comm.is_main_process()
    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if main else None,
        hooks.EvalHook(cfg.train.eval_period, evaluate),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period)
        if main else None,
    ])
    if resume and checkpointer.has_checkpoint():
        checkpointer.resume_or_load("", resume=True)
        start_iter = trainer.iter + 1
        logger.info(f"resuming from {checkpointer.get_checkpoint_file()} at iteration {start_iter}")
    else:
        load_initial_weights(model, cfg.train.init_checkpoint)
        start_iter = 0
    trainer.train(start_iter, cfg.train.max_iter)
    return last.get("results", {})


def evaluate_checkpoint(cfg) -> dict:
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    load_initial_weights(model, cfg.train.init_checkpoint, detector_only=True)
    return do_test(cfg, create_ddp_model(model))


@contextmanager
def _logging(output_dir: str):
    """detectron2's console logging for every logger the run uses, plus ``output_dir/log.txt`` for this run."""
    rank = comm.get_rank()
    loggers = [setup_logger(distributed_rank=rank, name=name, enable_propagation=name in ("backbone", "detection"))
               for name in _LOGGERS]
    os.makedirs(output_dir, exist_ok=True)
    suffix = f".rank{rank}" if rank else ""
    handler = logging.FileHandler(os.path.join(output_dir, "log.txt" + suffix))
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", "%m/%d %H:%M:%S"))
    for log in loggers:
        log.addHandler(handler)
    try:
        yield
    finally:
        for log in loggers:
            log.removeHandler(handler)
        handler.close()


def run(options: RunOptions) -> dict[str, float]:
    """One train (+ final evaluation) or eval run in this process; returns APbox / APmask.

    Every process of a ``launch`` runs this; the main one writes the run record.
    """
    main = comm.is_main_process()
    try:
        cfg = load_config(options)
    except Exception as exc:
        if main and options.output_dir:
            write_run_record(options.output_dir, task="detection", status="failed", dataset="", arch="",
                             init=options.init or "", error=f"{type(exc).__name__}: {exc}", config=options.config_file)
        raise
    out = cfg.train.output_dir
    record = dict(task="detection", dataset="+".join(_names(cfg.dataloader.test.dataset.names)),
                  arch=arch_name(cfg), init=init_label(cfg, options), config=options.config_file,
                  max_iter=cfg.train.max_iter, seed=cfg.train.get("seed", -1))
    with _logging(out):
        if main:
            LazyConfig.save(cfg, os.path.join(out, "config.yaml"))
            write_run_record(out, status="running", **record)
        seed = cfg.train.get("seed", -1)
        seed_all_rng(None if seed < 0 else seed + comm.get_rank())
        logger.info(f"{'evaluating' if options.eval_only else 'training'} {options.config_file} -> {out}")

        def on_eval(iteration: int, results: dict) -> None:
            if main:
                write_run_record(out, status="running", metrics=coco_metrics(results), iteration=iteration,
                                 **record)

        try:
            results = evaluate_checkpoint(cfg) if options.eval_only else do_train(cfg, options.resume, on_eval)
        except BaseException as exc:
            if main:
                write_run_record(out, status="failed", error=f"{type(exc).__name__}: {exc}", **record)
            raise
        metrics = coco_metrics(results)
        if main:
            write_run_record(out, status="finished", metrics=metrics, results=results, **record)
            logger.info(f"finished: {metrics} written to {os.path.join(out, RECORD_NAME)}")
    return metrics


def train(config: str | Path, out_dir: str | Path, overrides: list[str] = (), *, init_checkpoint: str | None = None,
          init: str | None = None, train_json: str | None = None, train_images: str | None = None,
          val_json: str | None = None, val_images: str | None = None, dataset_name: str | None = None,
          resume: bool = False) -> dict[str, float]:
    """Train from a LazyConfig in this process, evaluate, write ``out_dir/run_record.json``; returns APbox/APmask."""
    return run(RunOptions(str(config), list(overrides), str(out_dir), resume=resume,
                          weights=None if init_checkpoint is None else str(init_checkpoint), init=init,
                          train_json=_str(train_json), train_images=_str(train_images),
                          val_json=_str(val_json), val_images=_str(val_images), dataset_name=dataset_name))


def evaluate(config: str | Path, out_dir: str | Path, weights: str | Path, overrides: list[str] = (), *,
             init: str | None = None, val_json: str | None = None, val_images: str | None = None,
             dataset_name: str | None = None) -> dict[str, float]:
    """Evaluate a trained detector (``weights``) on the config's test set or on ``val_json``/``val_images``."""
    return run(RunOptions(str(config), list(overrides), str(out_dir), eval_only=True, weights=str(weights),
                          init=init, val_json=_str(val_json), val_images=_str(val_images),
                          dataset_name=dataset_name))


def _str(path: str | Path | None) -> str | None:
    return None if path is None else str(path)
