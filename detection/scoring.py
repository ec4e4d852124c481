"""The COCO figures of an evaluation: detectron2's ``COCOEvaluator`` results as the run record's metrics, and
COCO's own score for a detector that detected nothing.

detectron2 reports every figure of a task as NaN when the model returned no detection at all ("cocoapi does not
handle empty results very well": ``COCO.loadRes`` fails on an empty list) and evaluates only ``bbox`` then, since
it reads the tasks from the predictions. COCO's evaluation (pycocotools ``COCOeval``) of an empty detection set is
well defined: AP 0 for every category and object size the data has, -1 (NaN) where it has none. A model early in
training, or a weak one, detects nothing above the score threshold; its AP is 0, and a recipe search or a table
must be able to compare it.
"""
from __future__ import annotations

from . import frameworks  # noqa: F401, I001  (first: detectron2 without its import-time notices)

import contextlib
import io
import math

from detectron2.evaluation import COCOEvaluator
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

COCO_TASKS = {"bbox": "APbox", "segm": "APmask"}
COCO_BREAKDOWN = {"AP50": "_50", "AP75": "_75", "APs": "_s", "APm": "_m", "APl": "_l"}  # name suffixes as mmdet's


def coco_metrics(results: dict | None) -> dict[str, float]:
    """APbox / APmask and their AP50, AP75, APs, APm, APl as APbox_50 ... APmask_l (percent) of detectron2's
    COCO results. A breakdown that is NaN (no object of that size in the data) is left out."""
    results = results or {}
    metrics = {}
    for task, name in COCO_TASKS.items():
        task_results = results.get(task, {})
        if "AP" in task_results:
            metrics[name] = task_results["AP"]
        metrics.update({name + suffix: task_results[key] for key, suffix in COCO_BREAKDOWN.items()
                        if key in task_results and math.isfinite(task_results[key])})
    return metrics


def predicted_tasks(model, evaluator) -> tuple[str, ...]:
    """The COCO tasks the evaluation scores: the evaluator's own, else boxes, and masks when the model has a
    mask head (detectron2's ``StandardROIHeads.mask_on``)."""
    if getattr(evaluator, "_tasks", None):
        return tuple(evaluator._tasks)
    roi_heads = getattr(getattr(model, "module", model), "roi_heads", None)
    return ("bbox", "segm") if getattr(roi_heads, "mask_on", False) else ("bbox",)


def score_without_detections(evaluator, results: dict, tasks: tuple[str, ...]) -> dict:
    """``results`` with each task of ``tasks`` that detectron2 left out or reported as NaN AP scored by COCOeval
    on an empty detection set over the evaluator's ground truth. Where the data has objects that is AP 0; where
    it has none, NaN as before (the same result detectron2 would give with detections)."""
    unscored = [task for task in tasks if not math.isfinite(results.get(task, {}).get("AP", math.nan))]
    if not unscored or not isinstance(evaluator, COCOEvaluator) or not results:  # results: {} off the main process
        return results
    truth = evaluator._coco_api
    nothing = COCO()
    nothing.dataset = {"images": truth.dataset["images"], "categories": truth.dataset["categories"],
                       "annotations": []}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        nothing.createIndex()
    scored = dict(results)
    for task in unscored:
        coco_eval = COCOeval(truth, nothing, task)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
        scored[task] = evaluator._derive_coco_results(coco_eval, task,
                                                      class_names=evaluator._metadata.get("thing_classes"))
    return scored
