"""MAE pretraining on an image folder (paper Table 8 as shipped in ``configs/pretrain/``).

    mae-transfer pretrain --config configs/pretrain/mae_vit_base.py --out runs/mae_b data_path=/data/train
    torchrun --nproc_per_node 8 -m pretrain.train --config ... --out ...      # many GPUs, many nodes
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from timm.optim import param_groups_weight_decay

from runlib import prepare_run_dir

from .config import PretrainConfig, as_config
from .data import DecodedImages, DeviceImages, ImageFiles, PretrainBatches, list_images, pretrain_transform
from .engine import Job, Runtime, fit, resume_path, run_inputs, runtime, seed_everything
from .models_mae import build_mae

DECODED_DIR = "decoded"   # the decoded images, in the run folder


def train_mae(config: PretrainConfig | str | Path, out_dir: str | Path, *, resume: bool | str | Path | None = None,
              overrides: Mapping[str, Any] | Iterable[str] = ()) -> Path:
    """Pretrain an MAE; returns the final training checkpoint (``out_dir/checkpoints/step_N.pth``).

    ``config``: a ``PretrainConfig`` or a config file; ``overrides``: ``{"epochs": 10}`` or ``["epochs=10"]``;
    ``resume``: True continues from the newest checkpoint in ``out_dir``, a path from that file.
    Writes ``log.jsonl``, ``tb/``, the run record ``run_record.json`` (task "pretrain", metric "loss") and,
    with ``decode_once`` (the default), the decoded images in ``decoded/`` (see ``pretrain_set``).
    """
    cfg = as_config("pretrain", config, overrides)
    with runtime(cfg) as rt:
        seed_everything(cfg.seed)  # the same initial weights on every rank
        model = build_mae(cfg.model, **cfg.model_kwargs())
        if not resume:
            resume_path(Path(out_dir), None)  # refuse a folder with checkpoints before decoding anything
        config_file = None if isinstance(config, PretrainConfig) else config
        if rt.is_main:  # the output folder claimed (or refused) before anything is decoded into it
            prepare_run_dir(out_dir, command="pretrain", resume=bool(resume), inputs=run_inputs(cfg, config_file))
        train_set = pretrain_set(cfg, rt, Path(out_dir), noise_tokens=model.num_patches)
        on_device = DeviceImages(train_set.decoded, cfg.input_size, rt.device) \
            if getattr(train_set, "pixels", None) == "device" else None
        return fit(mae_job(cfg, model, train_set, on_device), cfg, rt, out_dir, resume, config_file).checkpoint


def augment_on(cfg: PretrainConfig, rt: Runtime) -> str:
    """Where the batches' pixels are made: "host" or "device" (``augment_on = "auto"``: the device on GPUs)."""
    if cfg.augment_on == "auto":
        return "device" if rt.device.type == "cuda" and cfg.decode_once else "host"
    return cfg.augment_on


def mae_job(cfg: PretrainConfig, model, train_set, on_device: DeviceImages | None = None) -> Job:
    """What an MAE pretraining run trains: the masked-patch loss under AdamW, decay on matrices only."""
    def loss(model, batch):
        images = on_device.augment(batch) if on_device is not None else batch["image"]
        return model(images, cfg.mask_ratio, noise=batch["noise"])[0]

    return Job(task="pretrain", model=model,
               param_groups=param_groups_weight_decay(model, cfg.weight_decay),  # no decay on 1-D params
               make_optimizer=lambda groups: torch.optim.AdamW(groups, lr=cfg.effective_lr, betas=cfg.betas, fused=True),
               train_set=train_set, loss=loss, dataset=cfg.dataset_name, arch=cfg.model)


def pretrain_set(cfg: PretrainConfig, rt: Runtime, out_dir: Path, noise_tokens: int) -> ImageFiles | PretrainBatches:
    """The training samples: decoded once into ``out_dir/decoded/`` (by the first process of each machine while
    the others wait) and augmented per batch, or with ``decode_once = False`` decoded per sample."""
    files = list_images(cfg.data_path)
    if not cfg.decode_once:
        return ImageFiles(files, pretrain_transform(cfg.input_size, cfg.crop_scale), seed=cfg.seed,
                          noise_tokens=noise_tokens)
    cache = out_dir / DECODED_DIR
    if rt.local_rank == 0:
        decoded = DecodedImages.open(files, cache, cfg.stored_max_side, workers=cfg.num_workers)
    if rt.distributed:
        torch.distributed.barrier()
    if rt.local_rank != 0:
        decoded = DecodedImages.open(files, cache, cfg.stored_max_side)
    return PretrainBatches(decoded, cfg.input_size, cfg.crop_scale, seed=cfg.seed, noise_tokens=noise_tokens,
                           pixels=augment_on(cfg, rt))


if __name__ == "__main__":
    from .cli import pretrain
    sys.exit(pretrain(sys.argv[1:]))
