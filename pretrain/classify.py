"""Classification transfer of an encoder: linear probe (paper Table 10) and end-to-end fine-tuning (Table 9).

Both train timm's ``VisionTransformer`` (the official MAE fine-tuning model, with the same parameter names as
the MAE encoder) on an ImageFolder tree and report top-1 on the validation folder after every epoch. Weights
load through ``backbone.load_pretrained``; a checkpoint written here loads back into ``backbone.ViT`` the same
way. ``finetune`` from random init (``checkpoint = None``) is the supervised-from-scratch baseline.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
import torch.distributed as dist
import torch.nn as nn
from timm.data import Mixup
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from timm.models.vision_transformer import VisionTransformer
from timm.optim import Lars
from torch.utils.data import DataLoader

from backbone import CheckpointError, load_pretrained, param_groups
from runlib.run_record import init_label as derived_init_label
from runlib.run_record import no_weights

from .config import ClassifyConfig, ConfigError, FinetuneConfig, LinprobeConfig, as_config
from .data import ImageFiles, eval_transform, finetune_transform, list_classified_images, pretrain_transform, shard
from .engine import Job, Runtime, fit, runtime, seed_everything, split_batch

logger = logging.getLogger(__name__)


@dataclass
class ClassifyResult:
    top1: float                  # top-1 (%) on the validation folder after the last epoch
    top1_best: float             # best epoch
    history: list[dict]          # {"step", "epoch", "top1"} per evaluation
    checkpoint: Path             # final training checkpoint; its "model" entry is a timm state dict


def build_classifier(cfg: ClassifyConfig, num_classes: int, global_pool: bool, drop_path: float) -> VisionTransformer:
    return VisionTransformer(img_size=cfg.input_size, num_classes=num_classes, drop_path_rate=drop_path,
                             global_pool="avg" if global_pool else "token", **cfg.encoder_kwargs())


def load_encoder(model: nn.Module, checkpoint: str | Path) -> None:
    """Load encoder weights; everything but the new head (and fc_norm) must come from the file."""
    report = load_pretrained(model, checkpoint, log=False)
    new = [k for k in report.missing if k.startswith(("head.", "fc_norm."))]
    missing = [k for k in report.missing if k not in new]
    if missing or report.unexpected:
        raise CheckpointError(f"{checkpoint}: not a complete encoder for this model: missing {missing[:5]}, "
                              f"unexpected {report.unexpected[:5]}")
    logger.info("encoder from %s: loaded %d tensors%s; ignored %s; new: %s", checkpoint, len(report.loaded),
                "".join(f", resized {k} {v}" for k, v in report.resized.items()), sorted(report.ignored) or "none",
                ", ".join(new))


def _datasets(cfg: ClassifyConfig, train_transform) -> tuple[ImageFiles, ImageFiles, int]:
    train, classes = list_classified_images(cfg.data_path)
    val, _ = list_classified_images(cfg.val_path, classes)
    train_set = ImageFiles([p for p, _ in train], train_transform, labels=[y for _, y in train], seed=cfg.seed)
    val_set = ImageFiles([p for p, _ in val], eval_transform(cfg.input_size), labels=[y for _, y in val],
                         seed=cfg.seed)
    return train_set, val_set, len(classes)


def _evaluator(val_set: ImageFiles, cfg: ClassifyConfig):
    def evaluate(model: nn.Module, rt: Runtime) -> dict[str, float]:
        model.eval()
        per_device, _ = split_batch(cfg, rt.world_size)
        loader = DataLoader(val_set, batch_size=per_device, sampler=shard(len(val_set), rt.rank, rt.world_size),
                            num_workers=cfg.num_workers)
        counts = torch.zeros(2, device=rt.device)  # correct, seen
        with torch.no_grad(), rt.autocast():
            for batch in loader:
                logits = model(batch["image"].to(rt.device))
                counts[0] += (logits.argmax(-1).cpu() == batch["label"]).sum().item()
                counts[1] += len(logits)
        if rt.distributed:
            dist.all_reduce(counts)
        return {"top1": 100.0 * counts[0].item() / counts[1].item()}
    return evaluate


def _top1_metrics(loss: float, history: list[dict]) -> dict[str, float]:
    return {"top1": history[-1]["top1"], "top1_best": max(h["top1"] for h in history)}


def _run(kind: str, config, out_dir, checkpoint, resume, overrides, build, init_label) -> ClassifyResult:
    values = {} if checkpoint is None else {"checkpoint": None if no_weights(checkpoint) else str(checkpoint)}
    cfg = as_config(kind, config, overrides, **values)
    with runtime(cfg) as rt:
        seed_everything(cfg.seed)
        job = build(cfg, rt)
        job.init = init_label or derived_init_label(cfg.checkpoint)  # the run record's init
        config_file = None if isinstance(config, ClassifyConfig) else config
        result = fit(job, cfg, rt, out_dir, resume, config_file)
    return ClassifyResult(top1=result.metrics["top1"], top1_best=result.metrics["top1_best"],
                          history=result.history, checkpoint=result.checkpoint)


def _linprobe_job(cfg: LinprobeConfig, rt: Runtime) -> Job:
    if not cfg.checkpoint:
        raise ConfigError("checkpoint = None: a linear probe needs encoder weights (checkpoint=PATH)")
    # official linear-probe augmentation: RandomResizedCrop at torchvision's default scale, bicubic, and a flip
    train_set, val_set, num_classes = _datasets(cfg, pretrain_transform(cfg.input_size, (0.08, 1.0)))
    model = build_classifier(cfg, num_classes, global_pool=False, drop_path=0.0)  # the cls token feature
    load_encoder(model, cfg.checkpoint)
    model.requires_grad_(False)
    nn.init.trunc_normal_(model.head.weight, std=0.01)
    model.head = nn.Sequential(nn.BatchNorm1d(model.head.in_features, affine=False, eps=1e-6), model.head)
    model.head.requires_grad_(True)
    # LARS adapts the weight's step to its norm; biases take plain SGD steps without decay (official LARS)
    groups = [{"params": [model.head[1].weight], "weight_decay": cfg.weight_decay, "always_adapt": True},
              {"params": [model.head[1].bias], "weight_decay": 0.0}]
    criterion = nn.CrossEntropyLoss()
    return Job(task="linprobe", model=model, param_groups=groups,
               make_optimizer=lambda g: Lars(g, lr=cfg.effective_lr, momentum=cfg.momentum),
               train_set=train_set, loss=lambda m, b: criterion(m(b["image"]), b["label"]),
               evaluate=_evaluator(val_set, cfg), final_metrics=_top1_metrics,
               dataset=cfg.dataset_name, arch=cfg.model)


def _finetune_job(cfg: FinetuneConfig, rt: Runtime) -> Job:
    train_set, val_set, num_classes = _datasets(cfg, finetune_transform(cfg.input_size, cfg.rand_aug, cfg.reprob))
    model = build_classifier(cfg, num_classes, global_pool=cfg.global_pool, drop_path=cfg.drop_path)
    if cfg.checkpoint:
        load_encoder(model, cfg.checkpoint)
        nn.init.trunc_normal_(model.head.weight, std=2e-5)  # as the official main_finetune.py
    groups = param_groups(model.named_parameters(), cfg.weight_decay, cfg.layer_decay, len(model.blocks))
    mixup = None
    if cfg.mixup > 0 or cfg.cutmix > 0:
        per_device, _ = split_batch(cfg, rt.world_size)
        if per_device % 2:
            raise ConfigError(f"batch_per_device = {per_device}: mixup/cutmix need an even batch per device")
        mixup = Mixup(mixup_alpha=cfg.mixup, cutmix_alpha=cfg.cutmix, label_smoothing=cfg.smoothing,
                      num_classes=num_classes)
        criterion = SoftTargetCrossEntropy()
    elif cfg.smoothing > 0:
        criterion = LabelSmoothingCrossEntropy(cfg.smoothing)
    else:
        criterion = nn.CrossEntropyLoss()

    def loss(model, batch):
        images, labels = batch["image"], batch["label"]
        if mixup is not None:
            images, labels = mixup(images, labels)
        return criterion(model(images), labels)

    return Job(task="finetune", model=model, param_groups=groups,
               make_optimizer=lambda g: torch.optim.AdamW(g, lr=cfg.effective_lr, betas=cfg.betas, fused=True),
               train_set=train_set, loss=loss, evaluate=_evaluator(val_set, cfg), final_metrics=_top1_metrics,
               dataset=cfg.dataset_name, arch=cfg.model)


def linear_probe(config: LinprobeConfig | str | Path, out_dir: str | Path, *, checkpoint: str | Path | None = None,
                 resume: bool | str | Path | None = None, overrides: Mapping[str, Any] | Iterable[str] = (),
                 init_label: str | None = None) -> ClassifyResult:
    """Linear probe of the encoder in ``checkpoint`` (an export, an official release file, or any ViT file
    ``backbone.load_pretrained`` reads). Run record: task "linprobe", metrics top1 / top1_best, init
    ``init_label`` or derived from the checkpoint (``runlib.run_record.init_label``)."""
    return _run("linprobe", config, out_dir, checkpoint, resume, overrides, _linprobe_job, init_label)


def finetune(config: FinetuneConfig | str | Path, out_dir: str | Path, *, checkpoint: str | Path | None = None,
             resume: bool | str | Path | None = None, overrides: Mapping[str, Any] | Iterable[str] = (),
             init_label: str | None = None) -> ClassifyResult:
    """End-to-end fine-tuning from ``checkpoint``, or from random init when there is none (the supervised
    baseline). The returned checkpoint's ``model`` is a timm ViT state dict that ``backbone.load_pretrained``
    takes. Run record: task "finetune", metrics top1 / top1_best, init as for ``linear_probe``."""
    return _run("finetune", config, out_dir, checkpoint, resume, overrides, _finetune_job, init_label)
