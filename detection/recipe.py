"""Building blocks the LazyConfigs in ``configs/detection/`` share: the COCO step schedule and layer decay; and a
config's schedule fitted to another number of iterations.

Both are LazyCall-friendly: configs keep every number visible and overridable as ``key=value``.
"""
from __future__ import annotations

from . import frameworks  # noqa: F401, I001  (detectron2 imported without its import-time notices)

from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

import backbone

# ViTDet's 100-epoch COCO schedule at batch 64: 184,375 iterations x 64 images = 100 x 118,000 images,
# lr x0.1 at 88.9 % and x0.01 at 96.3 % of training
# (detectron2 projects/ViTDet/configs/COCO/mask_rcnn_vitdet_b_100ep.py).
ITERS_100_EPOCHS = 184_375
MILESTONES_100_EPOCHS = (163_889, 177_546)


def step_schedule(max_iter: int, milestones: Sequence[int], warmup_iters: int = 250,
                  warmup_factor: float = 0.001):
    """LazyCall of ViTDet's lr multiplier: linear warm-up from ``warmup_factor`` over ``warmup_iters``
    iterations, then x1, x0.1, x0.01 split at ``milestones`` (all in iterations of a ``max_iter`` run)."""
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01], milestones=list(milestones),
                                             num_updates=max_iter),
        warmup_length=warmup_iters / max_iter,
        warmup_factor=warmup_factor,
    )


def lsj_schedule(epochs: int) -> tuple[int, object]:
    """``(max_iter, lr_multiplier)`` of a COCO run of ``epochs`` epochs at batch 64.

    The 100-epoch numbers are scaled as detectron2's own 50/75/200/400-epoch configs scale them
    (``n * epochs // 100``), so 75 epochs gives exactly ``mask_rcnn_vitdet_h_75ep``'s 138,281 iterations and
    milestones. Warm-up stays 250 iterations (detectron2's 75-epoch file shrinks it to 188 by keeping the
    100-epoch fraction; the 100-epoch files of detectron2 projects/ViTDet set 250).
    """
    max_iter = ITERS_100_EPOCHS * epochs // 100
    return max_iter, step_schedule(max_iter, [m * epochs // 100 for m in MILESTONES_100_EPOCHS])


def layer_decay(decay: float, depth: int) -> Callable[[str], float]:
    """detectron2's ``lr_factor_func`` for layer-wise lr decay: ``backbone.lr_scale`` for a ViT of ``depth``
    blocks. It equals detectron2's ``get_vit_lr_decay_rate(name, decay, depth)`` for every parameter of a
    ViTDet Mask R-CNN (embeddings ``decay^(depth+1)``, ``blocks.i`` ``decay^(depth-i)``, the rest 1)."""
    return partial(backbone.lr_scale, decay=decay, depth=depth)


def schedule_overrides(config: str | Path, max_iter: int) -> list[str]:
    """``key=value`` overrides that run the LazyConfig ``config`` for ``max_iter`` iterations with its lr steps at
    the same fractions of the run (its warm-up is a fraction already)."""
    schedule = LazyConfig.load(str(config)).lr_multiplier.scheduler
    milestones = [round(m * max_iter / schedule.num_updates) for m in schedule.milestones]
    return [f"train.max_iter={max_iter}", f"lr_multiplier.scheduler.num_updates={max_iter}",
            f"lr_multiplier.scheduler.milestones={milestones}"]


def lr_and_layer_decay(config: str | Path) -> dict[str, float]:
    """The base lr and the layer decay the LazyConfig ``config`` sets (ViTDet Table 11's two per-init numbers)."""
    optimizer = LazyConfig.load(str(config)).optimizer
    return {"lr": float(optimizer.lr), "layer_decay": float(optimizer.params.lr_factor_func.decay)}
