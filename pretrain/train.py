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

from .config import PretrainConfig, as_config
from .data import ImageFiles, list_images, pretrain_transform
from .engine import Job, fit, runtime, seed_everything
from .models_mae import build_mae


def train_mae(config: PretrainConfig | str | Path, out_dir: str | Path, *, resume: bool | str | Path | None = None,
              overrides: Mapping[str, Any] | Iterable[str] = ()) -> Path:
    """Pretrain an MAE; returns the final training checkpoint (``out_dir/checkpoints/step_N.pth``).

    ``config``: a ``PretrainConfig`` or a config file; ``overrides``: ``{"epochs": 10}`` or ``["epochs=10"]``;
    ``resume``: True continues from the newest checkpoint in ``out_dir``, a path from that file.
    Writes ``log.jsonl``, ``tb/`` and the run record ``run_record.json`` (task "pretrain", metric "loss").
    """
    cfg = as_config("pretrain", config, overrides)
    with runtime(cfg) as rt:
        seed_everything(cfg.seed)  # the same initial weights on every rank
        model = build_mae(cfg.model, **cfg.model_kwargs())
        train_set = ImageFiles(list_images(cfg.data_path), pretrain_transform(cfg.input_size, cfg.crop_scale),
                               seed=cfg.seed, noise_tokens=model.num_patches)

        def loss(model, batch):
            return model(batch["image"], cfg.mask_ratio, noise=batch["noise"])[0]

        job = Job(task="pretrain", model=model,
                  param_groups=param_groups_weight_decay(model, cfg.weight_decay),  # no decay on 1-D params
                  make_optimizer=lambda groups: torch.optim.AdamW(groups, lr=cfg.effective_lr, betas=cfg.betas, fused=True),
                  train_set=train_set, loss=loss, dataset=cfg.dataset_name, arch=cfg.model)
        config_file = None if isinstance(config, PretrainConfig) else config
        return fit(job, cfg, rt, out_dir, resume, config_file).checkpoint


if __name__ == "__main__":
    from .cli import pretrain
    sys.exit(pretrain(sys.argv[1:]))
