"""runlib.cost: fused attention counted by fvcore, warm-up left out of the timings, peak memory labelled."""
import math

import pytest
import torch
import torch.nn.functional as F
from fvcore.nn import FlopCountAnalysis

from runlib.cost import (INFERENCE_WARMUP, InferenceTimer, PeakMemory, RunCost, count_flops, parameter_counts,
                           seconds_per_iter)


class Attend(torch.nn.Module):
    def __init__(self, fused: bool):
        super().__init__()
        self.fused = fused

    def forward(self, q, k, v):
        if self.fused:
            return F.scaled_dot_product_attention(q, k, v)
        return (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1) @ v


def test_fused_attention_counts_as_the_two_matmuls_it_replaces():
    q, k, v = torch.randn(2, 3, 10, 8), torch.randn(2, 3, 12, 8), torch.randn(2, 3, 12, 5)
    fused = count_flops(FlopCountAnalysis(Attend(True), (q, k, v)), Attend(True))
    explicit = count_flops(FlopCountAnalysis(Attend(False), (q, k, v)), Attend(False))
    assert fused == explicit == 2 * 3 * 10 * 12 * (8 + 5)   # Q Kᵀ and the weighted sum of V, multiply-adds
    untouched = FlopCountAnalysis(Attend(True), (q, k, v))
    untouched.unsupported_ops_warnings(False)
    assert untouched.total() == 0                          # what fvcore alone would report


def test_counting_leaves_the_model_in_training_mode_and_params_split_the_backbone():
    model = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Dropout(0.5), torch.nn.Linear(6, 2))
    assert count_flops(FlopCountAnalysis(model, torch.randn(3, 4)), model) == 3 * (4 * 6 + 6 * 2)
    assert model.training
    assert parameter_counts(model, model[0]) == {"params": 4 * 6 + 6 + 6 * 2 + 2, "params_backbone": 4 * 6 + 6}


def test_warm_up_is_left_out_of_training_and_inference_times():
    assert seconds_per_iter([9.0, 9.0, 9.0, 1.0, 2.0]) == 1.5
    assert seconds_per_iter([9.0, 1.0], warmup=0) == 5.0
    assert seconds_per_iter([4.0]) == 4.0 and seconds_per_iter([]) is None
    timer = InferenceTimer()
    timer.calls = [(10.0, 1)] * INFERENCE_WARMUP + [(0.5, 2), (1.5, 2)]
    assert timer.seconds_per_image() == 0.5
    timer.calls = [(10.0, 1), (3.0, 1)]                     # two calls: only the first is warm-up
    assert timer.seconds_per_image() == 3.0
    timer.begin()                                            # a new evaluation forgets the last
    assert timer.calls == [] and timer.seconds_per_image() is None


def test_cpu_memory_is_the_rss_peak_and_says_so():
    cost = RunCost(devices=1)
    cost.training_started("cpu")
    held = torch.ones(64, 1024, 1024, dtype=torch.uint8)  # 64 MiB touched while "training"
    cost.training_ended([0.2] * 5)
    record = cost.as_record()
    del held
    assert record["train_mem_kind"] == "cpu_rss_peak" and record["train_mem_gb"] >= 64 / 1024
    assert record["train_s_per_iter"] == pytest.approx(0.2) and record["devices"] == 1 and record["device_hours"] > 0
    assert "infer_s_per_image" not in record                # no evaluation was timed


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_memory_is_cuda_max_allocated():
    memory = PeakMemory("cuda")
    memory.start()
    torch.ones(256, 1024, 1024, dtype=torch.uint8, device="cuda")
    read = memory.read()
    assert read["train_mem_kind"] == "cuda_max_allocated" and read["train_mem_gb"] >= 0.25
