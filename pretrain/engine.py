"""The training loop that pretraining, linear probing and fine-tuning share.

A ``Job`` says what is trained (model, parameter groups, optimizer, data, loss, per-epoch evaluation);
``fit`` does the rest the same way for all three: DistributedDataParallel under torchrun, gradient
accumulation up to the effective batch, per-step cosine learning rate after a linear warm-up, autocast,
atomic checkpoints that hold everything needed to continue bit-for-bit (model, optimizer, scaler, step, the
RNG states of every rank, history, config), and logs (progress bar, TensorBoard, ``log.jsonl``, run record).

The data order is a function of (seed, step) and every sample's randomness of (seed, epoch, index)
(see ``data.py``), so a run killed at any step and resumed takes the same steps as one never stopped.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import re
import sys
import time
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from backbone import CheckpointError, read_checkpoint
from runlib import (LossDiverged, UserError, atomic_torch_save, finished_run_kept, keep_log_before, prepare_run_dir,
    remove_torn, require_device, run_lifecycle)
from runlib.cost import RunCost, count_params

from .config import ConfigError, TrainConfig, config_dict
from .data import DataError, ImageFiles, PretrainBatches, ResumableSampler

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LOG_NAME = "log.jsonl"
_CHECKPOINT = re.compile(r"^step_(\d+)\.pth$")


# ---------------------------------------------------------------------------------------------- runtime
@dataclass
class Runtime:
    """Where this process runs: rank, world size, device and autocast type."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    amp_dtype: torch.dtype | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)


@contextmanager
def runtime(config: TrainConfig) -> Iterator[Runtime]:
    """The process's place in a torchrun job (RANK / WORLD_SIZE / LOCAL_RANK), with the process group
    initialised (NCCL on GPUs, gloo on CPU) for the block when this call started it."""
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    rank, local_rank = int(os.environ.get("RANK", 0)), int(os.environ.get("LOCAL_RANK", 0))
    if config.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        require_device(config.device, "device")
        device = torch.device(config.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    amp = {"auto": torch.bfloat16 if device.type == "cuda" else None, "bf16": torch.bfloat16,
           "fp16": torch.float16, "fp32": None}[config.precision]
    started = world_size > 1 and not dist.is_initialized()
    if started:
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    try:
        yield Runtime(rank=rank, world_size=world_size, local_rank=local_rank, device=device, amp_dtype=amp)
    finally:
        if started:
            dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def rng_state() -> dict:
    """This process's RNG states as plain values (loadable with ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.random.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [kind, keys.tolist(), pos, has_gauss, gauss], "python": random.getstate()}


def set_rng_state(state: dict) -> None:
    torch.random.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(state["python"])


def _gather(obj: Any, rt: Runtime) -> list:
    if not rt.distributed:
        return [obj]
    out = [None] * rt.world_size
    dist.all_gather_object(out, obj)
    return out


# ---------------------------------------------------------------------------------------------- schedule
def cosine_lr(step: int, total_steps: int, warmup_steps: int, lr: float, min_lr: float = 0.0) -> float:
    """Linear warm-up from 0 over ``warmup_steps``, then half a cosine from ``lr`` down to ``min_lr``."""
    if step < warmup_steps:
        return lr * step / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + (lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def split_batch(config: TrainConfig, world_size: int) -> tuple[int, int]:
    """(batch per device, accumulation steps) that make ``config.batch_size`` images per optimizer step."""
    per_device = config.batch_per_device or config.batch_size // world_size
    if per_device < 1 or config.batch_size % (per_device * world_size):
        raise ConfigError(f"batch_size = {config.batch_size} is not a multiple of batch_per_device x world size "
                         f"= {per_device} x {world_size}; change batch_size or batch_per_device")
    return per_device, config.batch_size // (per_device * world_size)


# ---------------------------------------------------------------------------------------------- checkpoints
class Checkpoints:
    """``out/checkpoints/step_<N>.pth``, written atomically (a kill leaves the previous files intact and at
    most a hidden temporary file, removed at the next start), the newest ``keep`` kept."""

    def __init__(self, folder: Path, keep: int = 2):
        self.folder, self.keep = Path(folder), keep

    def all(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.folder.iterdir() if (m := _CHECKPOINT.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        files = self.all()
        return files[-1] if files else None

    def save(self, state: dict, step: int) -> Path:
        path = atomic_torch_save(state, self.folder / f"step_{step:08d}.pth")
        for old in self.all()[:-self.keep]:
            old.unlink(missing_ok=True)
        return path


def resume_path(out_dir: Path, resume: bool | str | Path | None) -> Path | None:
    """The checkpoint to continue from: ``True``/"latest" picks the newest in ``out_dir`` (none: start fresh),
    a path names one. Without resume, an ``out_dir`` that already holds checkpoints is an error, so nothing is
    overwritten by accident."""
    ckpts = Checkpoints(out_dir / CHECKPOINT_DIR)
    if resume in (None, False):
        if ckpts.latest() is not None:
            raise UserError(f"{out_dir} already holds checkpoints (latest {ckpts.latest().name}); "
                            "resume with --resume, or choose another output folder")
        return None
    if resume is True or resume == "latest":
        latest = ckpts.latest()
        if latest is None:
            logger.info("no checkpoint in %s: starting from scratch", ckpts.folder)
        return latest
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(f"--resume {path}: no such checkpoint file")
    return path


# ---------------------------------------------------------------------------------------------- logs
class RunLog:
    """Progress bar, ``log.jsonl`` (one JSON object per logged step or evaluation) and TensorBoard scalars,
    written by rank 0 only. On resume, lines past the resumed step are dropped (they belong to the lost part
    of the killed run) and TensorBoard purges them the same way."""

    def __init__(self, out_dir: Path, enabled: bool, start_step: int, total_steps: int, tensorboard: bool):
        self.enabled = enabled
        self.path = out_dir / LOG_NAME
        self.writer = self.bar = None
        if not enabled:
            return
        keep_log_before(self.path, "step", start_step + 1)  # steps are counted from 1
        self.file = self.path.open("a")
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(out_dir / "tb"), purge_step=start_step + 1 if start_step else None)
        from tqdm import tqdm
        self.bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True,
                        file=sys.stderr, mininterval=1.0)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            prefix = "train" if "loss" in record else "eval"
            for key, value in record.items():
                if key not in ("step", "epoch"):
                    self.writer.add_scalar(f"{prefix}/{key}", value, record["step"])

    def progress(self, steps: int, **postfix) -> None:
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)
            self.bar.update(steps)

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.bar.close()
            if self.writer is not None:
                self.writer.close()


# ---------------------------------------------------------------------------------------------- the loop
@dataclass
class Job:
    """What one training run trains; ``fit`` supplies the rest."""
    task: str                                           # run-record task: pretrain | linprobe | finetune
    model: nn.Module
    param_groups: list[dict]                            # each may carry an "lr_scale"
    make_optimizer: Callable[[list[dict]], torch.optim.Optimizer]
    train_set: ImageFiles | PretrainBatches             # one that batches itself has a collate_fn
    loss: Callable[[nn.Module, dict], torch.Tensor]     # (model, batch on device) -> scalar loss
    evaluate: Callable[[nn.Module, Runtime], dict[str, float]] | None = None  # after each epoch
    final_metrics: Callable[[float, list[dict]], dict[str, float]] = lambda loss, history: {"loss": loss}
    dataset: str = ""
    arch: str = ""
    init: str = "random"


@dataclass
class FitResult:
    checkpoint: Path                 # the final training checkpoint
    metrics: dict[str, float]        # what the run record holds
    history: list[dict]              # per-epoch evaluations
    steps: int                       # optimizer steps done


@dataclass
class _Schedule:
    """How the epochs divide into optimizer steps for this run's data and world size."""
    per_device: int                  # images per forward pass
    accum: int                       # forward passes per optimizer step
    steps_per_epoch: int
    total_steps: int                 # of the whole schedule (the cosine spans these)
    stop: int                        # where this run stops (max_steps may cut it short)
    warmup_steps: int


def _schedule(job: Job, config: TrainConfig, rt: Runtime) -> _Schedule:
    per_device, accum = split_batch(config, rt.world_size)
    steps_per_epoch = len(job.train_set) // config.batch_size
    if steps_per_epoch == 0:
        raise DataError(f"{config.data_path}: {len(job.train_set)} images, fewer than one batch of "
                        f"batch_size = {config.batch_size}")
    total_steps = config.epochs * steps_per_epoch
    return _Schedule(per_device, accum, steps_per_epoch, total_steps, min(total_steps, config.max_steps or total_steps),
                     round(config.warmup_epochs * steps_per_epoch))


def run_inputs(config: TrainConfig, config_file: str | Path | None) -> list:
    """What a run reads from the user's files (its output folder may not be or contain any of them)."""
    return [config_file, config.data_path, getattr(config, "val_path", None), getattr(config, "checkpoint", None)]


def fit(job: Job, config: TrainConfig, rt: Runtime, out_dir: str | Path,
        resume: bool | str | Path | None = None, config_file: str | Path | None = None) -> FitResult:
    """Train ``job`` as ``config`` says, writing checkpoints and logs under ``out_dir``; see the module doc.

    ``resume``: None/False starts fresh (refusing a folder with checkpoints), True/"latest" continues from
    the newest checkpoint if any, a path from that file. Everything the user can get wrong (batch split, data
    size, output folder, the checkpoint file) is checked before the run record is touched."""
    out_dir = Path(out_dir)
    ckpts = Checkpoints(out_dir / CHECKPOINT_DIR, keep=config.keep_checkpoints)
    start_from = resume_path(out_dir, resume)
    schedule = _schedule(job, config, rt)
    resumed = (start_from, read_checkpoint(start_from)) if start_from is not None else None
    if rt.is_main:
        prepare_run_dir(out_dir, command=job.task, resume=bool(resume), inputs=run_inputs(config, config_file))
        ckpts.folder.mkdir(parents=True, exist_ok=True)
        remove_torn(ckpts.folder)
    with finished_run_kept(out_dir, enabled=rt.is_main and bool(resume)), \
            run_lifecycle(out_dir, task=job.task, dataset=job.dataset, arch=job.arch, init=job.init,
                          enabled=rt.is_main, config=str(config_file) if config_file else None) as record:
        cost = RunCost(devices=rt.world_size)  # parameters, peak memory and device-hours (runlib/cost.py)
        cost.training_started(rt.device)
        with ExitStack() as cleanup:  # the logs close also when training fails: no error glued to the progress bar
            result = _fit(job, config, rt, out_dir, ckpts, schedule, resumed, cleanup)
        cost.training_ended([])
        record.metrics = result.metrics
        record.fields.update(checkpoint=str(result.checkpoint), steps=result.steps,
                             cost=dict(cost.as_record(), params=count_params(job.model)))
    return result


def _fit(job: Job, config: TrainConfig, rt: Runtime, out_dir: Path, ckpts: Checkpoints, schedule: _Schedule,
         resumed: tuple[Path, Any] | None, cleanup: ExitStack) -> FitResult:
    """The training loop; ``resumed`` is (checkpoint file, what it holds) when continuing a run."""
    per_device, accum, steps_per_epoch = schedule.per_device, schedule.accum, schedule.steps_per_epoch
    total_steps, stop, warmup_steps = schedule.total_steps, schedule.stop, schedule.warmup_steps
    base_lr = config.effective_lr

    model = job.model.to(rt.device)
    ddp = DistributedDataParallel(model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None) \
        if rt.distributed else None
    forward_model = ddp or model
    if config.compile:
        forward_model = torch.compile(forward_model)
    optimizer = job.make_optimizer(job.param_groups)
    scaler = torch.amp.GradScaler(rt.device.type, enabled=rt.amp_dtype == torch.float16)

    state = {"step": 0, "history": [], "epoch_loss": [0.0, 0], "skipped": 0}
    if resumed is not None:
        state = _restore(*resumed, model, optimizer, scaler, rt, config)
    else:
        seed_everything(config.seed + rt.rank)
    start = state["step"]

    sampler = ResumableSampler(job.train_set, rt.world_size, rt.rank, seed=config.seed)
    log = RunLog(out_dir, rt.is_main, start, stop, config.tensorboard)
    cleanup.callback(log.close)
    if rt.is_main:
        logger.info("%s: %d images, %d steps/epoch of %d images (%d per device x %d devices x %d accumulation), "
                    "lr %.3g, steps %d -> %d of %d", job.task, len(job.train_set), steps_per_epoch,
                    config.batch_size, per_device, rt.world_size, accum, base_lr, start, stop, total_steps)
    batches, checkpoint = None, ckpts.latest()
    last_log_time, last_log_step = time.perf_counter(), start
    model.train()
    for step in range(start, stop):
        epoch, position = divmod(step, steps_per_epoch)
        if batches is None or position == 0:
            job.train_set.set_epoch(epoch)
            sampler.set_position(epoch, position * accum * per_device)
            batches = iter(DataLoader(job.train_set, batch_size=per_device, sampler=sampler, drop_last=True,
                                      num_workers=config.num_workers, pin_memory=rt.device.type == "cuda",
                                      collate_fn=getattr(job.train_set, "collate_fn", None)))
        if position == 0:
            state["epoch_loss"] = [0.0, 0]
        lr = cosine_lr(step, total_steps, warmup_steps, base_lr, config.min_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        loss_value = _train_step(job, forward_model, ddp, batches, accum, optimizer, scaler, rt, state)
        if not math.isfinite(loss_value):
            raise LossDiverged(f"loss is {loss_value} at step {step + 1}; stopping (a learning rate too high for "
                               "this batch and model? lower blr or lr)")
        state["step"] = step + 1
        state["epoch_loss"][0] += loss_value
        state["epoch_loss"][1] += 1

        if (step + 1) % config.log_every == 0 or step + 1 == stop:
            now = time.perf_counter()
            images_per_s = (step + 1 - last_log_step) * config.batch_size / (now - last_log_time)
            log.write({"step": step + 1, "epoch": round((step + 1) / steps_per_epoch, 4), "loss": loss_value,
                       "lr": lr, "images_per_s": round(images_per_s, 2)})
            log.progress(step + 1 - last_log_step, loss=loss_value, lr=lr, img_s=images_per_s)
            last_log_time, last_log_step = now, step + 1

        epoch_end = (step + 1) % steps_per_epoch == 0
        if job.evaluate is not None and (epoch_end or step + 1 == stop):
            metrics = job.evaluate(model, rt)
            model.train()
            entry = {"step": step + 1, "epoch": round((step + 1) / steps_per_epoch, 4), **metrics}
            state["history"].append(entry)
            log.write(entry)
            if rt.is_main:
                logger.info("epoch %s: %s", entry["epoch"], ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
        if epoch_end and state["skipped"] and rt.is_main:
            logger.warning("%d unreadable image(s) skipped so far (each replaced by the next readable file)",
                           state["skipped"])
        if (step + 1) % config.checkpoint_every == 0 or step + 1 == stop:
            checkpoint = _save(ckpts, model, optimizer, scaler, state, rt, config, job.task)
    epoch_loss = state["epoch_loss"][0] / max(1, state["epoch_loss"][1])
    return FitResult(checkpoint=checkpoint, metrics=job.final_metrics(epoch_loss, state["history"]),
                     history=state["history"], steps=state["step"])


def _train_step(job: Job, forward_model: nn.Module, ddp: DistributedDataParallel | None, batches: Iterator[dict],
                accum: int, optimizer, scaler, rt: Runtime, state: dict) -> float:
    """One optimizer step over ``accum`` micro-batches (gradients synchronised on the last one only); returns
    the loss averaged over micro-batches and ranks."""
    loss_sum = torch.zeros((), device=rt.device)
    for i in range(accum):
        batch = next(batches)
        state["skipped"] += int(batch["skipped"].sum())
        batch = {k: v.to(rt.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
        with ddp.no_sync() if ddp is not None and i < accum - 1 else nullcontext():
            with rt.autocast():
                loss = job.loss(forward_model, batch)
            scaler.scale(loss / accum).backward()
        loss_sum += loss.detach().float()
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    if rt.distributed:
        dist.all_reduce(loss_sum)
    return loss_sum.item() / accum / rt.world_size


def _save(ckpts: Checkpoints, model, optimizer, scaler, state, rt: Runtime, config, task) -> Path:
    rng = _gather(rng_state(), rt)  # every rank takes part; rank 0 writes
    path = ckpts.folder / f"step_{state['step']:08d}.pth"
    if rt.is_main:
        path = ckpts.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                           "scaler": scaler.state_dict(), "rng": rng, "world_size": rt.world_size,
                           "config": config_dict(config), "task": task, **state}, state["step"])
    if rt.distributed:
        dist.barrier()
    return path


def _restore(path: Path, ckpt: dict, model, optimizer, scaler, rt: Runtime, config) -> dict:
    try:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    except (KeyError, TypeError, RuntimeError, ValueError) as exc:
        raise CheckpointError(f"{path}: does not fit this run's model or optimizer (written for another config?): "
                         f"{str(exc).splitlines()[0]}") from None
    scaler.load_state_dict(ckpt["scaler"])
    changed = {k: (v, getattr(config, k)) for k, v in ckpt.get("config", {}).items()
               if hasattr(config, k) and _plain(getattr(config, k)) != _plain(v)}
    if changed and rt.is_main:
        logger.warning("resuming %s with changed config values (was, now): %s", path, changed)
    if ckpt.get("world_size") == rt.world_size:
        set_rng_state(ckpt["rng"][rt.rank])
    else:
        logger.warning("%s was written by %s processes, this run has %d: random streams are reseeded",
                       path, ckpt.get("world_size"), rt.world_size)
        seed_everything(config.seed + rt.rank + 7919 * ckpt["step"])
    if rt.is_main:
        logger.info("resumed from %s at step %d", path, ckpt["step"])
    return {k: ckpt[k] for k in ("step", "history", "epoch_loss", "skipped")}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value
