"""benchmarks/gpu.py --smoke: every section of the GPU benchmark runs its real code path on CPU at tiny sizes."""
import json
import os
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_gpu_benchmark_smoke_runs_every_section(tmp_path):
    out = tmp_path / "smoke.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu", "--smoke", "--out", str(out)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads(out.read_text())
    assert results["smoke"] and results["device"] == "cpu"

    attention = results["attention"]["grids"]["8"]
    for impl in ("sdpa", "chunked", "explicit", "timm mask"):
        assert attention[impl]["fwd_bwd_ms"] > 0, attention[impl]
    assert "skipped" in attention["flex"]  # no FlexAttention backward on CPU
    for variant in ("ours sdpa", "ours chunked", "ours explicit", "detectron2"):
        backbone = results["backbone"]["results"]["128"][variant]
        assert backbone["fwd_bwd_ms"] > 0 and backbone["max_abs_diff_vs_sdpa"] < 1e-4, backbone
    for variant in ("ours", "official", "ours w/ [M]"):
        mae = results["mae"]["results"][variant]
        assert mae["images_per_s"] > 0 and mae["tflop_per_step"] > 0, mae
    for variant in ("ours", "detectron2"):
        assert results["detection"]["results"][variant]["step_s"] > 0, results["detection"]
    assert results["upernet"]["step_s"] > 0, results["upernet"]
    assert "visible-only speed-up" in proc.stdout
    assert "MAE mae_vit_base_patch16" in proc.stdout and "UperNet" in proc.stdout  # the printed table
