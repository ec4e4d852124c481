"""The detectron2 side of a run's cost (``runlib.cost``): FLOPs through detectron2's ``FlopCountAnalysis`` (the
counter of its ``tools/analyze_model.py``), model time through ``inference_on_dataset``'s callbacks, iteration
times from the trainer's event storage (``IterationTimer``'s ``time``)."""
from __future__ import annotations

from . import frameworks  # noqa: F401, I001  (first: detectron2 without its import-time notices)

from detectron2.utils.analysis import FlopCountAnalysis
from torch.nn.parallel import DistributedDataParallel

from runlib.cost import InferenceTimer, count_flops, parameter_counts, shape_text


def model_cost(model, inputs: list[dict]) -> dict:
    """Parameters of the detector and of its ViT, and the FLOPs of one forward on ``inputs`` (a test batch)."""
    model = model.module if isinstance(model, DistributedDataParallel) else model
    vit = getattr(model.backbone, "net", model.backbone)
    return {**parameter_counts(model, vit), "flops": count_flops(FlopCountAnalysis(model, inputs), model),
            "flops_input": f"{len(inputs)}x{shape_text(inputs[0]['image'])}"}


def timing_callbacks(timer: InferenceTimer) -> dict:
    """``inference_on_dataset(..., callbacks=)`` that time each model call as its "pure compute time" does."""
    return {"on_start": timer.begin, "before_inference": timer.start, "after_inference": timer.stop}


def iteration_times(trainer) -> list[float]:
    """Seconds per training iteration as ``hooks.IterationTimer`` logged them (after its warm-up)."""
    storage = trainer.storage
    return [value for value, _ in storage.history("time").values()] if "time" in storage.histories() else []
