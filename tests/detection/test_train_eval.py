"""Mask R-CNN end to end on CPU on the generated COCO-format set: train from an MAE-format file, evaluate the
saved detector through the CLI, resume; the AP figures are pycocotools' own on the saved predictions."""
import json
import math
from pathlib import Path

import pytest
import torch
from detectron2.structures import Boxes, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import detection
from runlib import read_run_record
from detection.cli import main as detect
from detection.engine import RunOptions, coco_metrics, do_test, load_config
from detection.frameworks import run_notices_off

from tests.detection.conftest import DEMO
COCO_STATS = ("AP", "AP50", "AP75", "APs", "APm", "APl")  # COCOeval.stats[:6] under detectron2's names


def pycocotools_stats(gt_json: Path, predictions: Path, iou_type: str) -> dict[str, float]:
    gt = COCO(str(gt_json))
    evaluator = COCOeval(gt, gt.loadRes(str(predictions)), iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    # pycocotools writes -1 where no object falls in an area range; detectron2 reports that as NaN.
    return {name: 100 * value if value >= 0 else math.nan for name, value in zip(COCO_STATS, evaluator.stats)}


def trained_iterations(out: Path) -> list[int]:
    """Iterations with a training loss in detectron2's event log (metrics.json)."""
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    return [row["iteration"] for row in rows if "total_loss" in row]


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny, mae_file, coco):
    """3 iterations from an official-format MAE file, then evaluation on the generated val set."""
    out = tmp_path_factory.mktemp("detect") / "run"
    metrics = detection.train(DEMO, out, list(tiny), init_checkpoint=mae_file, init="mae",
                              dataset_name="synthetic_coco", **coco)
    return out, metrics


def test_train_writes_a_finished_run_record_with_ap(run, coco):
    out, metrics = run
    record = read_run_record(out)
    assert (record["task"], record["status"], record["init"], record["arch"]) == (
        "detection", "finished", "mae", "vit_w32_d2")
    assert record["dataset"] == "synthetic_coco_val"
    assert {"APbox", "APmask", "APbox_50", "APmask_50"} <= set(metrics) and record["metrics"] == pytest.approx(metrics)
    assert all(0 <= value <= 100 for value in metrics.values())
    assert (out / "model_final.pth").is_file() and (out / "config.yaml").is_file()
    assert max(trained_iterations(out)) == 2  # detectron2's event log: iterations 0..2
    log = (out / "log.txt").read_text()
    assert log.count(f"backbone.net: loaded") == 1 and "UNEXPECTED" not in log


class NoisyOracle(torch.nn.Module):
    """A "detector" that returns each image's ground truth with shifted boxes, shuffled scores, one missed object
    and one false positive: predictions whose AP is neither 0 nor 100."""

    def __init__(self, gt_json: Path):
        super().__init__()
        self.gt = COCO(str(gt_json))
        self.generator = torch.Generator().manual_seed(0)

    def forward(self, inputs):
        outputs = []
        for item in inputs:
            anns = self.gt.loadAnns(self.gt.getAnnIds(imgIds=item["image_id"]))[1:]  # miss the first object
            boxes = torch.tensor([a["bbox"] for a in anns], dtype=torch.float32).reshape(-1, 4)
            boxes[:, 2:] += boxes[:, :2]
            boxes += torch.randint(-3, 4, boxes.shape, generator=self.generator)
            masks = torch.stack([torch.from_numpy(self.gt.annToMask(a)).bool() for a in anns]
                                + [torch.zeros(item["height"], item["width"], dtype=torch.bool)])
            masks[-1, :8, :8] = True
            instances = Instances((item["height"], item["width"]))
            instances.pred_boxes = Boxes(torch.cat([boxes, torch.tensor([[0.0, 0.0, 8.0, 8.0]])]))
            instances.pred_masks = masks
            instances.pred_classes = torch.tensor([a["category_id"] - 1 for a in anns] + [0])
            instances.scores = torch.rand(len(anns) + 1, generator=self.generator)
            outputs.append({"instances": instances})
        return outputs


def test_coco_evaluator_agrees_with_pycocotools_on_the_saved_predictions(coco, tiny, tmp_path):
    options = RunOptions(str(DEMO), list(tiny), str(tmp_path), **{k: str(v) for k, v in coco.items()})
    results = do_test(load_config(options), NoisyOracle(coco["val_json"]))
    predictions = tmp_path / "inference" / "coco_instances_results.json"
    for iou_type in ("bbox", "segm"):
        direct = pycocotools_stats(coco["val_json"], predictions, iou_type)
        assert 0 < direct["AP"] < 100
        assert {k: results[iou_type][k] for k in COCO_STATS} == pytest.approx(direct, abs=1e-9, nan_ok=True)
    suffixes = {"AP": "", "AP50": "_50", "AP75": "_75", "APs": "_s", "APm": "_m", "APl": "_l"}
    assert coco_metrics(results) == {f"AP{name}{suffixes[stat]}": results[task][stat]
                                     for task, name in (("bbox", "box"), ("segm", "mask")) for stat in COCO_STATS
                                     if not math.isnan(results[task][stat])}


NOTHING_DETECTED = "model.roi_heads.box_predictor.test_score_thresh=1.01"  # no score reaches it: no detection


def empty_detection_stats(gt_json: Path, iou_type: str) -> dict[str, float]:
    """pycocotools' figures for a detection set with nothing in it (COCO.loadRes refuses an empty list)."""
    gt = COCO(str(gt_json))
    nothing = COCO()
    nothing.dataset = {"images": gt.dataset["images"], "categories": gt.dataset["categories"], "annotations": []}
    nothing.createIndex()
    evaluator = COCOeval(gt, nothing, iou_type)
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return {name: 100 * value if value >= 0 else math.nan for name, value in zip(COCO_STATS, evaluator.stats)}


def test_a_detector_that_detects_nothing_scores_cocos_zero_not_nan(coco, tiny, tmp_path):
    options = RunOptions(str(DEMO), [*tiny, NOTHING_DETECTED], str(tmp_path), **{k: str(v) for k, v in coco.items()})
    from detectron2.config import instantiate  # after detection's imports: detectron2 without its notices

    cfg = load_config(options)
    with run_notices_off():
        results = do_test(cfg, instantiate(cfg.model))
    assert json.loads((tmp_path / "inference" / "coco_instances_results.json").read_text()) == []
    for iou_type in ("bbox", "segm"):  # detectron2 alone: NaN for bbox, and no segm at all
        expected = empty_detection_stats(coco["val_json"], iou_type)
        assert expected["AP"] == 0.0
        assert {k: results[iou_type][k] for k in COCO_STATS} == pytest.approx(expected, nan_ok=True)
    metrics = coco_metrics(results)
    assert metrics["APbox"] == 0.0 and metrics["APmask"] == 0.0


def test_eval_of_a_detector_that_detects_nothing_records_and_prints_ap_0(run, coco, tiny, tmp_path, capsys):
    out, _ = run
    code = detect(["eval", "--config", str(DEMO), "--weights", str(out / "model_final.pth"), "--out", str(tmp_path),
                   "--val-json", str(coco["val_json"]), "--val-images", str(coco["val_images"]), *tiny,
                   NOTHING_DETECTED])
    record = read_run_record(tmp_path)
    assert code == 0 and record["status"] == "finished"
    assert record["metrics"]["APbox"] == 0.0 and record["metrics"]["APmask"] == 0.0
    assert "eval finished: APbox 0.00" in capsys.readouterr().out


def test_the_run_evaluated_its_own_saved_predictions(run, coco):
    out, metrics = run
    predictions = out / "inference" / "coco_instances_results.json"
    assert json.loads(predictions.read_text())  # a barely trained model still predicts (score threshold 0)
    assert metrics["APbox"] == pytest.approx(pycocotools_stats(coco["val_json"], predictions, "bbox")["AP"])
    assert metrics["APmask"] == pytest.approx(pycocotools_stats(coco["val_json"], predictions, "segm")["AP"])


def test_eval_command_reproduces_the_final_evaluation(run, coco, tiny, tmp_path):
    out, metrics = run
    code = detect(["eval", "--config-file", str(DEMO), "--weights", str(out / "model_final.pth"),
                   "--output-dir", str(tmp_path), "--val-json", str(coco["val_json"]),
                   "--val-images", str(coco["val_images"]), *tiny])
    assert code == 0
    record = read_run_record(tmp_path)
    assert record["status"] == "finished" and record["metrics"] == pytest.approx(metrics)


def test_resume_continues_from_the_last_checkpoint(run, coco, tiny):
    out, _ = run
    detection.train(DEMO, out, [*tiny, "train.max_iter=5"], init="mae", resume=True, **coco)
    assert "at iteration 3" in (out / "log.txt").read_text()
    assert max(trained_iterations(out)) == 4
    assert read_run_record(out)["status"] == "finished"
