"""Train and test UperNet through mmengine's Runner, and write the run record the compare command reads.

``train`` = Runner.train() (resume optional) followed by Runner.test() of the final weights; ``test`` = a
strict load of a trained checkpoint, then Runner.test(). Both write the run record ``work_dir/run_record.json``
(``backbone.write_run_record``): "running" while working, "finished" with mIoU / mAcc / aAcc (percent, from
mmseg's IoUMetric), or "failed" with the error. Only rank 0 writes it.
"""
from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dist import is_main_process
from mmengine.logging import HistoryBuffer
from mmengine.runner import Runner

from backbone import CheckpointError, write_run_record
from backbone import arch_name as backbone_arch_name

from .dataset import SegDataError

METRICS = ("mIoU", "mAcc", "aAcc")
DATALOADERS = ("train_dataloader", "val_dataloader", "test_dataloader")


class SegmentationError(ValueError):
    """A run that cannot start as asked (config, data root, checkpoint); the message says what and where."""


# Errors that are the user's input, reported as one line by the CLI.
USER_ERRORS = (SegmentationError, SegDataError, CheckpointError)


def own_mmengine_checkpoints():
    """Let torch.load read the checkpoints mmengine writes, for resume and test.

    mmengine 0.10.7 pickles its log buffers (``HistoryBuffer`` with numpy arrays and, through ``getattr``,
    bound methods) and calls ``torch.load`` without ``weights_only``, which torch >= 2.6 turns on: it
    refuses its own checkpoints (open-mmlab/mmengine#1655). Allowing ``getattr`` trusts the file as much as
    ``weights_only=False`` did before torch 2.6, so this is only for checkpoints of your own runs.
    """
    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8,
                                          np.bool_)]
    return torch.serialization.safe_globals([HistoryBuffer, np.core.multiarray._reconstruct,
                                             np.core.multiarray.scalar, np.ndarray, np.dtype, getattr, *dtypes])


def load_config(config: str | Path, work_dir: str | Path, cfg_options: dict | None = None, *,
                data_root: str | Path | None = None, init_checkpoint: str | Path | None = None,
                init: str | None = None, launcher: str = "none") -> Config:
    """The config file with ``cfg_options`` merged, the data root and initial checkpoint set, ready for Runner.

    ``cfg.run_record`` ends up holding the run record's dataset, arch, init and config (see ``init_name``).
    """
    config = Path(config)
    if not config.is_file():
        raise SegmentationError(f"{config}: no such config file")
    if launcher != "none" and not torch.cuda.is_available():
        raise SegmentationError(f"--launcher {launcher} needs GPUs (mmengine's launchers pin one CUDA device per "
                                "process); on CPU run a single process without --launcher")
    cfg = Config.fromfile(str(config))
    declared = _pretrained(cfg)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    if data_root is not None:
        if not Path(data_root).is_dir():
            raise SegmentationError(f"{data_root}: data root does not exist (an ADE20K-format root such as "
                                    "ADEChallengeData2016 with images/ and annotations/)")
        for name in DATALOADERS:
            if cfg.get(name):
                _base_dataset(cfg[name].dataset).data_root = str(data_root)
    if init_checkpoint is not None:
        cfg.model.backbone.pop("pretrained", None)
        cfg.model.pretrained = str(init_checkpoint)
    declared_init = cfg.get("run_record", {}).get("init")
    cfg.run_record = dict(
        dataset=cfg.get("run_record", {}).get("dataset")
        or Path(_base_dataset(cfg.test_dataloader.dataset).get("data_root", "unknown")).name,
        arch=arch_name(cfg.model.backbone),
        init=init or init_name(_pretrained(cfg), declared, declared_init),
        config=str(config), seed=cfg.get("randomness", {}).get("seed", -1))
    cfg.work_dir = str(work_dir)
    cfg.launcher = launcher
    if cfg.get("visualizer"):  # mmengine keeps one visualizer per name per process: a second run in the same
        # process would otherwise write its scalars into the first run's folder
        cfg.visualizer.name = f"{cfg.visualizer.get('name', 'visualizer')}-{uuid.uuid4().hex[:8]}"
    return cfg


def _pretrained(cfg: Config) -> str | None:
    return cfg.model.get("pretrained") or cfg.model.backbone.get("pretrained")


def _base_dataset(dataset_cfg):
    """The innermost dataset of wrappers such as RepeatDataset (where data_root lives)."""
    while "data_root" not in dataset_cfg and "dataset" in dataset_cfg:
        dataset_cfg = dataset_cfg.dataset
    return dataset_cfg


def arch_name(backbone_cfg) -> str:
    """The run record's ``arch`` for the config's ViT (``backbone.arch_name``)."""
    return backbone_arch_name(backbone_cfg.get("embed_dim", 768), backbone_cfg.get("depth", 12))


def init_name(pretrained: str | None, declared: str | None, declared_init: str | None) -> str:
    """What the backbone starts from: "random" without a checkpoint; the config's ``run_record.init``
    ("mae", "supervised") if the checkpoint is the one the config file names; else the checkpoint path."""
    if not pretrained:
        return "random"
    if pretrained == declared and declared_init:
        return declared_init
    return str(pretrained)


def _record(cfg: Config, status: str, **fields) -> None:
    if is_main_process():
        write_run_record(cfg.work_dir, task="segmentation", status=status, **cfg.run_record, **fields)


def _check_checkpoint(path: str | Path, model: torch.nn.Module, config) -> None:
    """Raise one SegmentationError unless ``path`` holds exactly the weights of ``model``."""
    try:
        state = torch.load(path, map_location="cpu")
    except Exception as exc:  # torch/zipfile/pickle raise many types for one cause: a bad file
        raise SegmentationError(f"{path}: cannot be read as a checkpoint: the file is truncated, corrupt or not a "
                                f"PyTorch file ({type(exc).__name__})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise SegmentationError(f"{path}: holds no state dict")
    target = getattr(model, "module", model).state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}
    problems = {
        "missing": [k for k in target if k not in state],
        "unexpected": [k for k in state if k not in target],
        "of another shape": [f"{k} {tuple(v.shape)} vs {tuple(target[k].shape)}" for k, v in state.items()
                             if k in target and hasattr(v, "shape") and v.shape != target[k].shape],
    }
    found = [f"{len(keys)} keys {what} (e.g. {', '.join(keys[:3])})" for what, keys in problems.items() if keys]
    if found:
        raise SegmentationError(f"{path}: not a checkpoint of the model in {config} (a checkpoint of another "
                                f"architecture?): " + "; ".join(found))


def error_message(exc: BaseException) -> str:
    """``Type: message``; for an error re-raised from a DataLoader worker, the original one, not the traceback."""
    message = str(exc)
    if "Original Traceback" in message:  # torch's ExceptionWrapper: the last line is "module.Type: message"
        qualified, _, message = message.rstrip().splitlines()[-1].partition(": ")
        return f"{qualified.rsplit('.', 1)[-1]}: {message}"
    return f"{type(exc).__name__}: {message}"


def _metrics(results: dict) -> dict[str, float]:
    missing = [m for m in METRICS if m not in results]
    if missing:
        raise SegmentationError(f"the evaluator returned {sorted(results)}, not {list(METRICS)}: the config's "
                                "test_evaluator must be IoUMetric with iou_metrics=['mIoU']")
    return {m: float(results[m]) for m in METRICS}


def train(config: str | Path, work_dir: str | Path, cfg_options: dict | None = None, *,
          init_checkpoint: str | Path | None = None, init: str | None = None,
          data_root: str | Path | None = None, resume: bool | str = False,
          launcher: str = "none") -> dict[str, float]:
    """Train the config (optionally resuming), then test the final weights; returns mIoU / mAcc / aAcc.

    Args:
        config: an mmseg config file (e.g. configs/segmentation/upernet_vit_b_mae_ade20k_512x512_160k.py).
        work_dir: checkpoints, logs, the dumped config and the run record.
        cfg_options: mmengine overrides, {"train_cfg.max_iters": 100, ...}.
        init_checkpoint: initial backbone weights (replaces the config's ``model.pretrained``).
        init: the run record's init label ("mae", "supervised", "random"); by default see ``init_name``.
        data_root: the ADE20K-format root for all splits (replaces the config's).
        resume: True resumes from the work dir's latest checkpoint, a path from that checkpoint.
        launcher: "none", or "pytorch" under torchrun (mmengine launchers).
    """
    cfg = load_config(config, work_dir, cfg_options, data_root=data_root, init_checkpoint=init_checkpoint,
                      init=init, launcher=launcher)
    pretrained = _pretrained(cfg)
    if pretrained and not Path(pretrained).is_file():
        raise SegmentationError(f"{pretrained}: no such checkpoint file (the initial weights, model.pretrained of "
                                f"{config}; pass --checkpoint, or model.pretrained=None for a random init)")
    if resume:
        cfg.resume = True
        cfg.load_from = None if resume is True else str(resume)
    try:
        runner = Runner.from_cfg(cfg)
        _record(cfg, "running")
        with own_mmengine_checkpoints() if resume else contextlib.nullcontext():
            runner.train()
        metrics = _metrics(runner.test())
    except BaseException as exc:
        _record(cfg, "failed", error=error_message(exc))
        raise
    last = Path(cfg.work_dir) / "last_checkpoint"  # written by mmengine's CheckpointHook
    _record(cfg, "finished", metrics=metrics,
            checkpoint=last.read_text().strip() if last.is_file() else None)
    return metrics


def test(config: str | Path, checkpoint: str | Path, work_dir: str | Path, cfg_options: dict | None = None, *,
         init: str | None = None, data_root: str | Path | None = None, launcher: str = "none") -> dict[str, float]:
    """Evaluate a trained segmentor checkpoint of this config; returns mIoU / mAcc / aAcc.

    The checkpoint must match the config's model key for key and shape for shape (mmengine would load a
    mismatched one with warnings only).
    """
    cfg = load_config(config, work_dir, cfg_options, data_root=data_root, init=init, launcher=launcher)
    if not Path(checkpoint).is_file():
        raise SegmentationError(f"{checkpoint}: no such checkpoint file")
    cfg.load_from, cfg.resume = None, False
    try:
        runner = Runner.from_cfg(cfg)
        _record(cfg, "running", checkpoint=str(checkpoint))
        with own_mmengine_checkpoints():
            _check_checkpoint(checkpoint, runner.model, config)
            runner.load_checkpoint(str(checkpoint), map_location="cpu", strict=True)
        metrics = _metrics(runner.test())
    except BaseException as exc:
        _record(cfg, "failed", checkpoint=str(checkpoint), error=error_message(exc))
        raise
    _record(cfg, "finished", checkpoint=str(checkpoint), metrics=metrics)
    return metrics
