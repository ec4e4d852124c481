"""``mae-transfer compare`` on real runs: a 10-iteration Mask R-CNN and UperNet training on generated data record
their cost, and the table (markdown and LaTeX) shows it with the COCO breakdown. About a minute on 2 cores: slow."""
from __future__ import annotations

import re

import pytest

import detection
import segmentation
from runlib import read_run_record
from mae_transfer.compare import main

from tests.detection.conftest import DEMO as DETECTION_DEMO, TINY as DETECTION_TINY
from tests.segmentation.conftest import TINY as SEGMENTATION_TINY

ITERATIONS = 10
COST_KEYS = {"params", "params_backbone", "flops", "flops_input", "train_s_per_iter", "train_mem_gb",
             "train_mem_kind", "infer_s_per_image", "device_hours", "devices"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, synthetic_data, pytestconfig):
    root = tmp_path_factory.mktemp("compare") / "runs"
    detection.train(DETECTION_DEMO, root / "det", [*DETECTION_TINY, f"train.max_iter={ITERATIONS}"], init="random",
                    dataset_name="synthetic_coco", train_json=synthetic_data["coco_train_json"],
                    train_images=synthetic_data["coco_train_images"], val_json=synthetic_data["coco_val_json"],
                    val_images=synthetic_data["coco_val_images"])
    longer = {"train_cfg.max_iters": ITERATIONS, "train_cfg.val_interval": ITERATIONS,
              "param_scheduler.1.end": ITERATIONS, "default_hooks.checkpoint.interval": ITERATIONS}
    segmentation.train(pytestconfig.rootpath / "configs" / "segmentation" / "demo_tiny.py", root / "seg",
                       {**SEGMENTATION_TINY, **longer}, init="random", data_root=synthetic_data["ade_root"])
    return root


@pytest.mark.slow
def test_every_run_records_its_cost(runs):
    for name in ("det", "seg"):
        cost = read_run_record(runs / name)["cost"]
        assert set(cost) == COST_KEYS, name
        assert 0 < cost["params_backbone"] < cost["params"] and cost["flops"] > 0
        assert cost["train_s_per_iter"] > 0 and cost["infer_s_per_image"] > 0 and cost["device_hours"] > 0
        assert (cost["devices"], cost["train_mem_kind"]) == (1, "cpu_rss_peak") and cost["train_mem_gb"] > 0
    assert read_run_record(runs / "det")["cost"]["flops_input"].startswith("1x3x")
    assert read_run_record(runs / "seg")["cost"]["flops_input"] == "1x3x64x64"   # the tiny config's test crop


def header(text: str, title: str) -> list[str]:
    lines = text.splitlines()
    return [c.strip() for c in lines[lines.index(f"## {title}") + 2].strip("|").split(" | ")]


@pytest.mark.slow
def test_compare_prints_breakdown_and_costs_and_writes_latex(runs, tmp_path, capsys):
    tex, md = tmp_path / "t.tex", tmp_path / "t.md"
    assert main([str(runs), "--latex", str(tex), "--md", str(md)]) == 0
    out = capsys.readouterr().out
    assert md.read_text() == out
    det = read_run_record(runs / "det")
    det_columns = header(out, "detection · synthetic_coco_val")
    breakdown = [m for m in det["metrics"] if "_" in m]
    assert {"APbox_50", "APbox_75"} <= set(breakdown) and set(breakdown) <= set(det_columns)
    costs = ["params (M)", "ViT params (M)", "GFLOPs", "train s/iter", "train RSS peak (GB)", "inference s/im",
             "device-hours"]
    assert set(costs) <= set(det_columns)
    assert {"mIoU", "mAcc", "aAcc", *costs} <= set(header(out, "segmentation · synthetic_ade"))
    row = dict(zip(det_columns, out.splitlines()[out.splitlines().index("## detection · synthetic_coco_val") + 4]
                   .strip("|").split(" | ")))
    assert float(row["GFLOPs"]) == pytest.approx(det["cost"]["flops"] / 1e9, rel=5e-3)   # 3 significant digits

    latex = tex.read_text()
    assert latex.count(r"\begin{tabular}") == 2 and latex.count(r"\bottomrule") == 2
    for line in [line for line in latex.splitlines() if line.startswith("run & ")]:
        assert all(c.replace("(", "").split()[0] in line for c in ("GFLOPs", "train s/iter", "inference s/im"))
        assert r"AP\textsuperscript{box}\textsubscript{50}" in line or "mIoU" in line
    assert re.search(r"vit\\_w32\\_d2 & random & \$[0-9.]+\$", latex)                  # escaped text, math numbers
