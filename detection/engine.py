"""Train, resume and evaluate Mask R-CNN ViTDet from a LazyConfig: detectron2's ``lazyconfig_train_net`` loop.

The loop is detectron2's own (``SimpleTrainer`` / ``AMPTrainer``, its hooks, ``COCOEvaluator``,
``inference_on_dataset``); what this module adds is the project's habits around it: initial weights by their
own loader (``detection.weights``), overrides of the config's keys and types only, datasets checked before
the first iteration (``detection.data``), and a run record (``backbone.run_lifecycle``: "running" with the
latest evaluation, then "finished" or "failed") that ``mae-transfer compare`` reads, with the run's cost
(``runlib.cost``: parameters, FLOPs, time per iteration and per image, peak memory, device-hours).

Output folder: ``config.yaml``, ``log.txt``, ``run_record.json``, detectron2's ``metrics.json`` (per-iteration
events; on resume only the events before the resumed iteration are kept) and TensorBoard events,
``model_NNNNNNN.pth`` / ``model_final.pth`` / ``last_checkpoint`` (written atomically), and
``inference/coco_instances_results.json`` (the predictions COCOEvaluator scored). A finished training run is
continued only with ``resume``, from the newest whole checkpoint (a torn one is skipped, and logged); temporary
files a killed run left are removed when the next run starts. A loss or prediction that becomes inf or NaN ends
the run "failed" (``LossDiverged``), and a training set with RLE masks is read as bitmasks.
"""
from __future__ import annotations

from . import frameworks  # noqa: F401, I001  (first: detectron2 without its import-time notices)

import inspect
import logging
import math
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from detectron2.config import LazyConfig, instantiate
from detectron2.engine import AMPTrainer, SimpleTrainer, create_ddp_model, default_writers, hooks
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from detectron2.utils.logger import setup_logger
from detectron2.utils.registry import locate
from omegaconf import OmegaConf

from backbone import arch_name
from runlib import (LossDiverged, UserError, atomic_write, config_syntax_named, finished_run_kept, prepare_run_dir,
    read_run_record, remove_torn, run_lifecycle)
from runlib import overrides as override_syntax
from runlib.cost import FirstBatch, RunCost
from runlib.overrides import MISSING, Override
from runlib.run_record import RECORD_NAME, keep_log_before, newest_whole_checkpoint, no_weights, recorded_init
from runlib.run_record import init_label as derived_init_label
from runlib.safe_yaml import is_yaml, load_yaml

from .cost import iteration_times, model_cost, timing_callbacks
from .data import CheckedMapper, DetectionInputError, check_datasets, has_rle_masks, preload, register_coco_json
from .scoring import coco_metrics, predicted_tasks, score_without_detections
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



def load_config(options: RunOptions):
    """The config with overrides, options and custom datasets applied, checked for what would fail later: every
    problem found here is raised before the run writes anything."""
    if not Path(options.config_file).is_file():
        raise DetectionInputError(f"config file {options.config_file} does not exist")
    with config_syntax_named(options.config_file, DetectionInputError):
        cfg = load_lazy_config(options.config_file)
    for override in options.overrides:
        apply_override(cfg, override, options.config_file)
    if options.output_dir:
        cfg.train.output_dir = str(options.output_dir)
    if options.weights is not None:  # "random" / "none": no initial weights, as the random-init configs
        cfg.train.init_checkpoint = "" if no_weights(options.weights) else str(options.weights)
    if OmegaConf.is_missing(cfg.train, "init_checkpoint"):
        raise DetectionInputError(f"{options.config_file} has no default initial weights: give them with "
                                  "train.init_checkpoint=/path/to/file (see the config's comment)")
    if options.eval_only and not cfg.train.init_checkpoint:
        raise DetectionInputError("evaluation needs the trained detector's weights (--weights FILE)")
    if not options.eval_only and not cfg.train.max_iter > 0:
        raise DetectionInputError(f"train.max_iter = {cfg.train.max_iter!r} in {options.config_file} (with overrides): "
                                  "must be positive, the run would train no iteration")
    _check_device(cfg, amp=not options.eval_only)
    _use_custom_data(cfg, options)
    mask_on = cfg.model.roi_heads.get("mask_head") is not None
    num_classes = cfg.model.roi_heads.num_classes
    check_datasets(cfg.dataloader.test.dataset.names, num_classes=num_classes, mask_on=mask_on, training=False)
    if not options.eval_only:
        check_datasets(cfg.dataloader.train.dataset.names, num_classes=num_classes, mask_on=mask_on, training=True)
    if "output_dir" not in cfg.dataloader.evaluator:
        cfg.dataloader.evaluator.output_dir = os.path.join(cfg.train.output_dir, "inference")
    return cfg


def load_lazy_config(config_file: str):
    """``LazyConfig.load``, except that a ``.yaml`` file is read as data (detectron2 reads it with
    ``yaml.unsafe_load``, under which a tag runs code); a ``.py`` LazyConfig is Python and runs as such."""
    if is_yaml(config_file):
        return OmegaConf.create(load_yaml(config_file), flags={"allow_objects": True})
    return LazyConfig.load(config_file)


def apply_override(cfg, override: str, config_file: str) -> None:
    """Apply one ``key=value`` override, read and checked as every task's (``runlib.overrides``: a key the
    config does not have is refused, ``+key=value`` adds one, a value of another kind than the config's is
    refused: ``train.max_iter=abc`` would otherwise fail only once training has started)."""
    def lookup(key: str):
        return OmegaConf.select(cfg, key, default=MISSING, throw_on_missing=False, throw_on_resolution_failure=False)

    for checked in override_syntax.parse_overrides([override], config_file, lookup, error=DetectionInputError):
        _set(cfg, checked)


def _set(cfg, override: Override) -> None:
    """``OmegaConf.update`` at a dotted key, through configs only (as detectron2's ``LazyConfig.apply_overrides``:
    ``model.backbone.x`` where ``model.backbone`` is a class is refused, not written into the class)."""
    parts = override.key.split(".")
    for end in range(1, len(parts)):
        prefix = ".".join(parts[:end])
        node = OmegaConf.select(cfg, prefix, default=None)
        if node is None:
            break
        if not OmegaConf.is_config(node):
            raise DetectionInputError(f"override {override.text}: {prefix} is a {type(node).__name__}, not a "
                                      "config with keys")
    try:
        OmegaConf.update(cfg, override.key, override.value, merge=True)
    except Exception as exc:  # omegaconf raises many types for one cause: a value its node cannot hold
        raise DetectionInputError(f"override {override.text}: {type(exc).__name__}: {exc}".splitlines()[0]) from None


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


def init_label(cfg, options: RunOptions) -> str:
    """The run record's ``init``: given, else (resuming) the resumed run's, else derived from the weights and
    the config's ``train.init`` (``runlib.run_record.INIT_LABEL_RULE``)."""
    resumed = recorded_init(cfg.train.output_dir) if options.resume else None
    return options.init or resumed or derived_init_label(cfg.train.init_checkpoint, cfg.train.get("init"))


def resume_point(output_dir: str | Path) -> tuple[Path | None, list[str]]:
    """The checkpoint ``--resume`` continues from, and what was passed over: the one ``last_checkpoint`` names,
    else the newest whole ``model_final.pth`` / ``model_NNNNNNN.pth``; torn files are skipped. None when the
    folder has no checkpoint (the run starts from its initial weights, as with detectron2's ``resume_or_load``);
    one error when it has only torn ones."""
    path, notes, skipped = newest_whole_checkpoint(output_dir, _checkpoint_step)
    if path is None and skipped:
        raise DetectionInputError(f"--resume: no whole checkpoint in {output_dir} ({'; '.join(skipped)}); start a new "
                                  "run without --resume")
    return path, notes


def _checkpoint_step(name: str) -> float | None:
    """The iteration of a checkpoint that detectron2's ``PeriodicCheckpointer`` names, ``model_final`` last."""
    if name == "model_final.pth":
        return math.inf
    match = re.fullmatch(r"model_(\d+)\.pth", name)
    return int(match.group(1)) if match else None


def use_bitmasks_for_rle(loader_cfg) -> None:
    """Have the loader's mapper read masks as bitmasks when its data holds RLE masks (detectron2's stock mapper
    reads polygons only and fails on RLE, which SAM, CVAT and COCO's crowd annotations use); polygon-only data
    keeps polygons, which are cheaper to crop and resize."""
    mapper = loader_cfg.mapper
    target = mapper.get("_target_")
    target = locate(target) if isinstance(target, str) else target
    takes_format = "instance_mask_format" in mapper or (
        target is not None and "instance_mask_format" in inspect.signature(target).parameters)
    if takes_format and has_rle_masks(loader_cfg.dataset.names):
        mapper.instance_mask_format = "bitmask"


def build_loader(loader_cfg):
    """``instantiate(loader_cfg)`` with the mapper wrapped in ``CheckedMapper`` (images checked as read). Each
    part is instantiated where it stands in the config, so its relative interpolations resolve."""
    target = loader_cfg._target_
    parts = {key: instantiate(loader_cfg[key]) for key in loader_cfg if key not in ("_target_", "mapper")}
    return (locate(target) if isinstance(target, str) else target)(
        mapper=CheckedMapper(instantiate(loader_cfg.mapper)), **parts)


def do_test(cfg, model, cost: RunCost | None = None) -> dict:
    """Evaluate (a model that detects nothing scores COCO's AP 0, ``scoring.score_without_detections``); with
    ``cost``, time the model calls and count the FLOPs at the first test batch."""
    loader = FirstBatch(build_loader(cfg.dataloader.test))
    callbacks = timing_callbacks(cost.inference) if cost else None
    evaluator = instantiate(cfg.dataloader.evaluator)
    results = inference_on_dataset(model, loader, evaluator, callbacks=callbacks)
    results = score_without_detections(evaluator, results, predicted_tasks(model, evaluator))
    if comm.is_main_process():
        print_csv_format(results)
        if cost and loader.first is not None and "flops" not in cost.fields:  # once, at the first evaluation
            cost.fields.update(model_cost(model, loader.first))
    return results


def keep_metrics_before(output_dir: str | Path, start_iter: int) -> None:
    """Rewrite detectron2's ``metrics.json`` (atomically) with only the events of iterations before
    ``start_iter``: a resumed run repeats the iterations after its checkpoint, and a fresh run starts over.
    A line a kill tore is dropped."""
    keep_log_before(Path(output_dir) / "metrics.json", "iteration", start_iter)


def do_train(cfg, resume_from: Path | None, on_eval, cost: RunCost | None = None) -> dict:
    """detectron2's lazyconfig training loop (continuing from the checkpoint ``resume_from`` if given); returns
    the last evaluation's results."""
    model = instantiate(cfg.model)
    logger.info(f"Model:\n{model}")
    model.to(cfg.train.device)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = build_loader(cfg.dataloader.train)

    ddp_model = create_ddp_model(model, **cfg.train.ddp)
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(ddp_model, train_loader, optimizer)
    checkpointer = Checkpointer(ddp_model, cfg.train.output_dir, trainer=trainer)
    last = {}

    def evaluate():
        last["results"] = do_test(cfg, ddp_model, cost)
        # iterations done: trainer.iter is the step's index inside the loop, and max_iter once it has ended
        on_eval(min(trainer.iter + 1, trainer.max_iter), last["results"])
        return last["results"]

    main = comm.is_main_process()
    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if main else None,
        hooks.EvalHook(cfg.train.eval_period, evaluate),
    ])
    if resume_from is not None:
        checkpointer.load(str(resume_from))  # model, optimizer, scheduler and the trainer's iteration
        start_iter = trainer.iter + 1
        logger.info(f"resuming from {resume_from} at iteration {start_iter}")
    else:
        load_initial_weights(model, cfg.train.init_checkpoint)
        start_iter = 0
    if main:  # the writers are made now: detectron2's JSONWriter appends to metrics.json from its creation
        keep_metrics_before(cfg.train.output_dir, start_iter)
        trainer.register_hooks([hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter),
                                                     period=cfg.train.log_period)])
    cost = cost or RunCost()
    cost.training_started(cfg.train.device)
    try:
        trainer.train(start_iter, cfg.train.max_iter)
    except FloatingPointError as exc:  # detectron2's check of the loss, and of the boxes at evaluation
        raise LossDiverged(f"{exc} (a learning rate too high for this batch and model? lower optimizer.lr)") from None
    cost.training_ended(iteration_times(trainer), warmup=0)  # IterationTimer leaves out its warm-up
    return last.get("results", {})


def evaluate_checkpoint(cfg, cost: RunCost | None = None) -> dict:
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    load_initial_weights(model, cfg.train.init_checkpoint, detector_only=True)
    return do_test(cfg, create_ddp_model(model), cost)


@contextmanager
def _logging(output_dir: str):
    """detectron2's console logging for every logger the run uses, plus ``output_dir/log.txt`` for this run. The
    console handlers are this run's too (made for the streams of now, removed at the end): a process that runs
    several (the tests, a grid job) never keeps a handler bound to a stream that has since been closed."""
    rank = comm.get_rank()
    before = {name: list(logging.getLogger(name).handlers) for name in _LOGGERS}
    setup_logger.cache_clear()  # detectron2 caches the logger set-up, handlers and all
    loggers = [setup_logger(distributed_rank=rank, name=name, enable_propagation=name in ("backbone", "detection"))
               for name in _LOGGERS]
    suffix = f".rank{rank}" if rank else ""
    handler = logging.FileHandler(os.path.join(output_dir, "log.txt" + suffix))
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(name)s %(levelname)s: %(message)s", "%m/%d %H:%M:%S"))
    for log in loggers:
        log.addHandler(handler)
    try:
        yield
    finally:
        for log in loggers:
            for added in [h for h in log.handlers if h not in before[log.name]]:
                log.removeHandler(added)
        handler.close()
        setup_logger.cache_clear()


def prepare_output(cfg, options: RunOptions) -> Path:
    """The run folder, made ready without losing data (``backbone.prepare_run_dir``): a finished training run is
    continued only with ``resume``, and an evaluation never goes into a training run's folder."""
    out = Path(cfg.train.output_dir)
    if options.eval_only and (out / RECORD_NAME).is_file():
        try:
            record = read_run_record(out)
        except UserError:
            record = {}
        if record.get("status") == "finished" and record.get("mode") != "eval":
            raise DetectionInputError(f"output folder {out} holds a finished training run ({out / RECORD_NAME}); "
                                      "evaluate into another folder (--out)")
    inputs = [options.config_file, options.weights, options.train_json, options.train_images, options.val_json,
              options.val_images]
    prepare_run_dir(out, command="detect eval" if options.eval_only else "detect train",
                    resume=options.resume or options.eval_only, inputs=inputs)
    return out


def run(options: RunOptions) -> dict[str, float]:
    """One train (+ final evaluation) or eval run in this process; returns APbox / APmask.

    Every process of a ``launch`` runs this; the main one writes the run record. The config, the output folder
    and the datasets are checked before anything is written, so a mistake there leaves the folder (and an
    earlier run's record in it) as it was.
    """
    main = comm.is_main_process()
    cfg = load_config(options)
    out = prepare_output(cfg, options)
    preload(cfg.dataloader.test.dataset.names)
    if not options.eval_only:
        preload(cfg.dataloader.train.dataset.names)
        use_bitmasks_for_rle(cfg.dataloader.train)
    resume_from, passed_over = resume_point(out) if options.resume and not options.eval_only else (None, [])
    net = cfg.model.backbone.net
    with _logging(str(out)), finished_run_kept(out, enabled=main and options.resume), run_lifecycle(
            out, task="detection", dataset="+".join(_names(cfg.dataloader.test.dataset.names)),
            arch=arch_name(net.embed_dim, net.depth), init=init_label(cfg, options), enabled=main,
            config=options.config_file, mode="eval" if options.eval_only else "train",
            max_iter=cfg.train.max_iter, seed=cfg.train.get("seed", -1)) as record:
        for note in passed_over:
            logger.warning(f"resume: {note}")
        if main:
            torn = remove_torn(out)
            if torn:
                logger.info(f"removed {len(torn)} temporary files a killed run left: {', '.join(p.name for p in torn)}")
            atomic_write(out / "config.yaml", lambda tmp: LazyConfig.save(cfg, str(tmp)))
        seed = cfg.train.get("seed", -1)
        seed_all_rng(None if seed < 0 else seed + comm.get_rank())
        logger.info(f"{'evaluating' if options.eval_only else 'training'} {options.config_file} -> {out}")

        def on_eval(iteration: int, results: dict) -> None:
            record.metrics = coco_metrics(results)
            record.write("running", iteration=iteration)

        cost = RunCost(devices=comm.get_world_size())
        with frameworks.run_notices_off():
            results = (evaluate_checkpoint(cfg, cost) if options.eval_only
                       else do_train(cfg, resume_from, on_eval, cost))
        record.metrics = coco_metrics(results)
        if not record.metrics:
            raise DetectionInputError(f"the evaluation on {'+'.join(_names(cfg.dataloader.test.dataset.names))} "
                                      "gave no COCO AP (no box or mask results)")
        record.fields["results"] = results
        record.fields["cost"] = cost.as_record()
        logger.info(f"finished: {record.metrics} written to {out / RECORD_NAME}")
    return record.metrics


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
