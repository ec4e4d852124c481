"""The mmengine side of a run's cost (``runlib.cost``): a hook that measures training (peak memory, the
iteration times mmengine's ``IterTimerHook`` logs) and the test loop's model time, and the FLOPs of one forward at
the config's test crop through fvcore's counter (mmseg's ``tools/analysis_tools/get_flops.py`` counts the same
forward with mmengine's port of it)."""
from __future__ import annotations

import warnings

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from runlib.cost import JIT_SCRIPT_DEPRECATED, RunCost, count_flops, parameter_counts, shape_text

with warnings.catch_warnings():  # fvcore.nn scripts its focal loss with torch.jit.script on import (see runlib.cost)
    warnings.filterwarnings("ignore", message=JIT_SCRIPT_DEPRECATED, category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis


class CostHook(Hook):
    """Fills a ``RunCost`` as the runner trains and tests. Each test iteration is timed from after its batch is
    loaded (this hook's ``before_test_iter`` runs last) to after the metric and the other hooks have taken its
    result (mmengine calls no hook between the model and the metric); the first test iterations are left out as
    warm-up (``InferenceTimer``)."""

    priority = "VERY_LOW"

    def __init__(self, cost: RunCost):
        self.cost = cost

    def before_train(self, runner) -> None:
        self.cost.training_started(next(runner.model.parameters()).device)

    def after_train(self, runner) -> None:
        scalars = runner.message_hub.log_scalars
        times = scalars["train/time"].data[0] if "train/time" in scalars else []
        self.cost.training_ended([float(t) for t in times])

    def before_test_epoch(self, runner) -> None:
        self.cost.inference.begin()

    def before_test_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.cost.inference.start()

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.cost.inference.stop(len(outputs) if outputs is not None else 1)


def model_cost(model, test_cfg) -> dict:
    """Parameters of the segmentor and of its ViT, and the FLOPs of one forward (``mode="tensor"``: backbone, neck
    and decode head, as mmseg's get_flops) of one image at the test crop (slide inference) or the model's input size."""
    model = model.module if is_model_wrapper(model) else model
    size = test_cfg.get("crop_size") or model.data_preprocessor.size
    if size is None:
        return parameter_counts(model, model.backbone)
    image = torch.zeros(1, 3, *size, device=next(model.parameters()).device)
    return {**parameter_counts(model, model.backbone), "flops": count_flops(FlopCountAnalysis(model, image), model),
            "flops_input": shape_text(image)}
