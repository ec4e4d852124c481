"""Train and test UperNet through mmengine's Runner, and write the run record the compare command reads.

``train`` = Runner.train() (resume optional) followed by Runner.test() of the final weights; ``test`` = a
strict load of a trained checkpoint, then Runner.test(). Before either starts, the config, its overrides, the
output folder, the checkpoints and every image and label map are checked; a problem there is one
``UserError`` and leaves the folder's run record as it was. Then ``runlib.run_lifecycle`` writes
``work_dir/run_record.json``: "running", then "finished" with mIoU / mAcc / aAcc (percent, from mmseg's
IoUMetric) and the run's cost (``runlib.cost``: parameters, FLOPs, time per iteration and per image, peak
memory, device-hours), or "failed" with the error (``LossDiverged`` when the loss becomes inf or NaN). Only rank 0
writes it. A resumed run keeps the init label of the run it continues.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
from mmengine.config import Config
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmseg.registry import DATASETS, HOOKS

from backbone import read_state_dict, resolve_weights
from runlib import LossDiverged, finished_run_kept, prepare_run_dir, read_run_record, run_lifecycle
from runlib.cost import RunCost
from runlib.run_record import RECORD_NAME, is_whole, recorded_init

from .checkpoints import load_segmentor_weights, resume_checkpoint, use_safe_checkpoint_hook
from .config import DATALOADERS, SegmentationError, load_config, pretrained_path
from .cost import CostHook, model_cost
from .frameworks import framework_patches, mmseg_build_notices_off

METRICS = ("mIoU", "mAcc", "aAcc")


@framework_patches()
def train(config: str | Path, work_dir: str | Path, cfg_options: dict | None = None, *,
          init_checkpoint: str | Path | None = None, init: str | None = None,
          data_root: str | Path | None = None, resume: bool | str = False,
          launcher: str = "none") -> dict[str, float]:
    """Train the config (optionally resuming), then test the final weights; returns mIoU / mAcc / aAcc.

    Args:
        config: an mmseg config file (e.g. configs/segmentation/upernet_vit_b_mae_ade20k_512x512_160k.py).
        work_dir: checkpoints, logs, the dumped config and the run record. A folder holding a finished run is
            refused unless ``resume``.
        cfg_options: overrides of keys in the config, {"train_cfg.max_iters": 100, ...}; "+key" adds a key.
        init_checkpoint: initial backbone weights (replaces the config's ``model.pretrained``).
        init: the run record's init label ("mae", "supervised", "random"); by default see ``init_label``.
        data_root: the ADE20K-format root for all splits (replaces the config's).
        resume: True resumes from the work dir's newest whole checkpoint, a path from that checkpoint.
        launcher: "none", or "pytorch" under torchrun (mmengine launchers).
    """
    cfg = load_config(config, work_dir, cfg_options, data_root=data_root, init_checkpoint=init_checkpoint,
                      init=init, launcher=launcher)
    check_trains(cfg, config)
    if resume and init is None:  # the resumed run's weights come from its checkpoint: keep that run's label
        cfg.run_record["init"] = recorded_init(work_dir if resume is True else Path(resume).parent) \
            or cfg.run_record["init"]
    pretrained = pretrained_path(cfg)
    if pretrained and not Path(resolve_weights(pretrained)).is_file():  # timm:, hf:, URLs: fetched (cached) here
        raise SegmentationError(f"{pretrained}: no such checkpoint file (the initial weights, model.pretrained of "
                                f"{config}; pass --checkpoint, or model.pretrained=None for a random init)")
    if pretrained:
        read_state_dict(pretrained)  # a payload or a torn file is refused here, before anything is written
    if resume not in (True, False) and not (Path(resume).is_file() and is_whole(Path(resume))):
        why = "torn (incomplete file)" if Path(resume).is_file() else "no such checkpoint file"
        raise SegmentationError(f"--resume {resume}: {why}")
    work_dir = prepare_run_dir(work_dir, command="segment train", resume=bool(resume),
                               inputs=[config, data_root, pretrained])
    if resume is True:
        resume, notes = resume_checkpoint(work_dir)
        for note in notes:
            print_log(f"resume: {note}", logger="current", level=logging.WARNING)
    if resume:
        cfg.resume, cfg.load_from = True, str(resume)
    use_safe_checkpoint_hook(cfg)
    cfg.custom_hooks = [*cfg.get("custom_hooks", []), dict(type="FiniteLossHook")]
    with mmseg_build_notices_off():
        runner = Runner.from_cfg(cfg)  # sets up the process group: is_main_process() is right from here
    check_data(cfg, DATALOADERS)
    with finished_run_kept(work_dir, enabled=bool(resume) and is_main_process()), \
            run_lifecycle(work_dir, task="segmentation", enabled=is_main_process(), **cfg.run_record) as record:
        cost = measure_cost(runner)
        runner.train()
        record.metrics = _metrics(runner.test())
        last = work_dir / "last_checkpoint"  # written by mmengine's CheckpointHook
        record.fields["checkpoint"] = last.read_text().strip() if last.is_file() else None
        record.fields["cost"] = _cost_record(cost, runner, cfg)
    return record.metrics


@framework_patches()
def test(config: str | Path, checkpoint: str | Path, work_dir: str | Path, cfg_options: dict | None = None, *,
         init: str | None = None, data_root: str | Path | None = None, launcher: str = "none") -> dict[str, float]:
    """Evaluate a trained segmentor checkpoint of this config; returns mIoU / mAcc / aAcc.

    The checkpoint must match the config's model key for key and shape for shape (mmengine would load a
    mismatched one with warnings only). ``work_dir`` must not hold a finished run (test into a new folder).
    """
    cfg = load_config(config, work_dir, cfg_options, data_root=data_root, init=init, launcher=launcher)
    if not Path(checkpoint).is_file():
        raise SegmentationError(f"{checkpoint}: no such checkpoint file")
    record_file = Path(work_dir) / RECORD_NAME
    finished = record_file.is_file() and read_run_record(record_file)["status"] == "finished"
    if finished and not Path(work_dir).is_symlink():
        raise SegmentationError(f"output folder {work_dir} holds a finished run ({record_file}); test into another "
                                "folder (--out)")
    work_dir = prepare_run_dir(work_dir, command="segment test", inputs=[config, data_root, checkpoint])
    cfg.load_from, cfg.resume = None, False
    with mmseg_build_notices_off():
        runner = Runner.from_cfg(cfg)
    load_segmentor_weights(checkpoint, runner.model, config)
    check_data(cfg, ("test_dataloader",))
    with run_lifecycle(work_dir, task="segmentation", enabled=is_main_process(), checkpoint=str(checkpoint),
                       **cfg.run_record) as record:
        cost = measure_cost(runner)
        record.metrics = _metrics(runner.test())
        record.fields["cost"] = _cost_record(cost, runner, cfg)
    return record.metrics


def check_trains(cfg: Config, config: str | Path) -> None:
    """Refuse a schedule of no iterations (``train_cfg.max_iters=0``): the run would test its initial weights
    and record them as trained."""
    train_cfg = cfg.get("train_cfg") or {}
    for key in ("max_iters", "max_epochs"):
        if key in train_cfg and not train_cfg[key] > 0:
            raise SegmentationError(f"train_cfg.{key} = {train_cfg[key]!r} in {config} (with overrides): must be "
                                    "positive, the run would train no iteration")


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training when the loss becomes inf or NaN: the run then ends "failed" with the reason, not
    "finished" with the mIoU of a diverged model."""

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        loss = (outputs or {}).get("loss")  # this rank's, a tensor in mmengine's log_vars
        if loss is None:
            return
        loss = torch.as_tensor(loss).detach().clone()
        if get_world_size() > 1:  # a NaN on any rank stops every rank at the same iteration
            all_reduce(loss)
        value = loss.item()
        if not math.isfinite(value):
            raise LossDiverged(f"loss is {value} at iteration {runner.iter + 1}; stopping (a learning rate "
                               "too high for this batch and model? lower optim_wrapper.optimizer.lr)")


def measure_cost(runner: Runner) -> RunCost:
    """A ``RunCost`` the runner fills as it trains and tests (``segmentation.cost.CostHook``)."""
    cost = RunCost(devices=get_world_size())
    runner.register_hook(CostHook(cost))
    return cost


def _cost_record(cost: RunCost, runner: Runner, cfg: Config) -> dict:
    if is_main_process():
        cost.fields.update(model_cost(runner.model, cfg.model.get("test_cfg", {})))
    return cost.as_record()


def check_data(cfg: Config, loaders) -> None:
    """Build the datasets of ``loaders`` (folder checks) and check every image and label map of those that can
    (``ADEFormatDataset.check_files``), so that bad data fails before the run, naming the file."""
    init_default_scope(cfg.get("default_scope", "mmseg"))
    checked = []
    for name in loaders:
        dataset_cfg = cfg.get(name, {}).get("dataset")
        if dataset_cfg is None or dataset_cfg in checked:
            continue
        checked.append(dataset_cfg)
        dataset = DATASETS.build(dataset_cfg)
        while not hasattr(dataset, "check_files") and hasattr(dataset, "dataset"):  # RepeatDataset & co.
            dataset = dataset.dataset
        if hasattr(dataset, "check_files"):
            dataset.check_files()


def _metrics(results: dict) -> dict[str, float]:
    missing = [m for m in METRICS if m not in results]
    if missing:
        raise SegmentationError(f"the evaluator returned {sorted(results)}, not {list(METRICS)}: the config's "
                                "test_evaluator must be IoUMetric with iou_metrics=['mIoU']")
    return {m: float(results[m]) for m in METRICS}
