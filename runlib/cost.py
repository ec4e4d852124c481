"""What a run costs, measured by the run itself: the run record's ``"cost"`` (``mae-transfer compare`` shows it).

    {"params": 5.4e6, "params_backbone": 1.8e6, "flops": 1.2e9, "flops_input": "1x3x128x128",
     "train_s_per_iter": 0.41, "train_mem_gb": 0.9, "train_mem_kind": "cuda_max_allocated" | "cpu_rss_peak",
     "infer_s_per_image": 0.05, "device_hours": 0.02, "devices": 1}

- ``params``: all parameters of the model; ``params_backbone``: those of the ViT alone.
- ``flops``: one forward of the evaluated model at the config's test input (``flops_input``), counted by fvcore's
  ``FlopCountAnalysis`` as detectron2's ``tools/analyze_model.py`` does: operators of the jit trace, one fused
  multiply-add counted as one FLOP, element-wise operators not counted (the convention of the detectron2 model
  zoo and the ViTDet paper). fvcore has no counter for ``aten::scaled_dot_product_attention``, the fused
  attention timm's blocks and ours call, so ``count_flops`` adds one (Q Kᵀ and the weighted sum of V); without
  it every attention product would be left out.
- ``train_s_per_iter``: mean time of a training iteration as the framework's own iteration timer logs it
  (detectron2's ``IterationTimer``, mmengine's ``IterTimerHook``), the first ``WARMUP_ITERS`` left out as
  detectron2 leaves them out.
- ``train_mem_gb``: peak memory of training. On a GPU, ``torch.cuda.max_memory_allocated`` (what detectron2 logs
  as ``max_mem``); on CPU the process's peak resident set size (``VmHWM``, reset when training starts where Linux
  allows it), which counts everything the process holds, not only tensors: ``train_mem_kind`` says which.
- ``infer_s_per_image``: model time per image over the evaluation, as detectron2's ``inference_on_dataset``
  measures its "pure compute time": each call synchronised on a GPU, data loading left out, the first
  ``min(5, n - 1)`` calls left out as warm-up.
- ``device_hours``: wall-clock time of the whole run (training and evaluation) times the number of devices
  (processes) it ran on.
"""
from __future__ import annotations

import math
import resource
import statistics
import time
import warnings
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import nn

WARMUP_ITERS = 3        # detectron2's IterationTimer default
INFERENCE_WARMUP = 5    # detectron2's inference_on_dataset: min(5, n - 1) calls
GB = 1024 ** 3
CUDA_PEAK, RSS_PEAK = "cuda_max_allocated", "cpu_rss_peak"
# torch deprecates torch.jit.script (FutureWarning) in favour of torch.compile. fvcore and detectron2 script a few
# helpers with it when imported, and tracing a model for FLOPs scripts detectron2's @script_if_tracing functions;
# those work, and only fvcore / detectron2 can change how they are made: the notice is left out where they do it.
JIT_SCRIPT_DEPRECATED = r"`torch\.jit\.script` is deprecated"


def parameter_counts(model: nn.Module, backbone: nn.Module) -> dict[str, int]:
    return {"params": count_params(model), "params_backbone": count_params(backbone)}


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def sdpa_flop_jit(inputs: list, outputs: list) -> int:
    """fvcore handle for ``aten::scaled_dot_product_attention``: q (..., L, E), k (..., S, E), v (..., S, Ev) cost
    L S E multiply-adds for Q Kᵀ and L S Ev for the weighted sum of V, per batch and head."""
    from fvcore.nn.jit_handles import get_shape
    q, k, v = (get_shape(value) for value in inputs[:3])
    *batch, length, dim = q
    return math.prod(batch) * length * k[-2] * (dim + v[-1])


def count_flops(analysis, model: nn.Module) -> int:
    """The total of an fvcore ``FlopCountAnalysis`` (or detectron2's subclass of it) of ``model``, traced in eval
    mode without gradients, with fused attention counted; fvcore's warnings about operators it skips are off
    (element-wise operators are not counted by convention)."""
    analysis.set_op_handle("aten::scaled_dot_product_attention", sdpa_flop_jit)
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=JIT_SCRIPT_DEPRECATED, category=FutureWarning)
            return int(analysis.total())
    finally:
        model.train(training)


def shape_text(tensor: torch.Tensor) -> str:
    """"1x3x128x128": how a record names the input FLOPs were counted at."""
    return "x".join(map(str, tensor.shape))


def seconds_per_iter(iteration_seconds: Sequence[float], warmup: int = WARMUP_ITERS) -> float | None:
    """Mean iteration time, the first ``warmup`` left out when there are more; None without iterations."""
    kept = list(iteration_seconds)[warmup:] or list(iteration_seconds)
    return statistics.fmean(kept) if kept else None


class PeakMemory:
    """Peak memory from ``start()`` to ``read()``: ``train_mem_gb`` and ``train_mem_kind`` (module docstring)."""

    def __init__(self, device: str | torch.device):
        self.cuda = torch.device(device).type == "cuda"

    def start(self) -> None:
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            _reset_rss_peak()

    def read(self) -> dict[str, Any]:
        if self.cuda:
            return {"train_mem_gb": torch.cuda.max_memory_allocated() / GB, "train_mem_kind": CUDA_PEAK}
        return {"train_mem_gb": _rss_peak_bytes() / GB, "train_mem_kind": RSS_PEAK}


def _reset_rss_peak() -> None:
    """Set the process's peak RSS to its current RSS (Linux ``clear_refs`` 5); elsewhere the peak stays the
    process's lifetime peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _rss_peak_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


class InferenceTimer:
    """Model time per image over an evaluation: ``begin()`` as it starts (only the last evaluation of a run is
    reported), ``start()`` before each model call, ``stop(images)`` after it."""

    def __init__(self):
        self.calls: list[tuple[float, int]] = []   # (seconds, images) per call
        self._started = 0.0

    def begin(self) -> None:
        self.calls.clear()

    def start(self) -> None:
        self._started = time.perf_counter()

    def stop(self, images: int = 1) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.calls.append((time.perf_counter() - self._started, images))

    def seconds_per_image(self) -> float | None:
        kept = self.calls[min(INFERENCE_WARMUP, len(self.calls) - 1):]
        images = sum(n for _, n in kept)
        return sum(s for s, _ in kept) / images if images else None


class FirstBatch:
    """A data loader (iterable with a length) that keeps its first batch in ``first``: the input FLOPs are
    counted at."""

    def __init__(self, loader: Iterable):
        self.loader, self.first = loader, None

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        for batch in self.loader:
            if self.first is None:
                self.first = batch
            yield batch


class RunCost:
    """The cost of one run, filled in as it goes; ``as_record()`` is the run record's ``"cost"``. The clock of
    ``device_hours`` starts when this is made."""

    def __init__(self, devices: int = 1):
        self.devices = devices
        self.fields: dict[str, Any] = {}
        self.inference = InferenceTimer()
        self._started = time.perf_counter()

    def training_started(self, device: str | torch.device) -> None:
        self._memory = PeakMemory(device)
        self._memory.start()

    def training_ended(self, iteration_seconds: Sequence[float], warmup: int = WARMUP_ITERS) -> None:
        """Training is over: its peak memory, and its time per iteration from the framework's timer (the first
        ``warmup`` iteration times left out: 0 where the timer left them out already)."""
        self.fields.update(self._memory.read())
        per_iter = seconds_per_iter(iteration_seconds, warmup)
        if per_iter is not None:
            self.fields["train_s_per_iter"] = per_iter

    def as_record(self) -> dict[str, Any]:
        record = dict(self.fields, devices=self.devices,
                      device_hours=(time.perf_counter() - self._started) * self.devices / 3600)
        per_image = self.inference.seconds_per_image()
        if per_image is not None:
            record["infer_s_per_image"] = per_image
        return record
