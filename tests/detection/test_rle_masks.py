"""COCO masks in every form train and evaluate: RLE (compressed, as SAM and CVAT export it) and uncompressed RLE (as
COCO's crowd annotations) next to polygons. detectron2's stock mapper reads polygons only, so a training set with RLE
is read as bitmasks. The run's record stays true on resume: the init label of the run it continues, the iterations
trained, strict JSON; a torn newest checkpoint is passed over."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_util

import detection
from runlib import read_run_record
from detection.data import has_rle_masks, register_coco_json

from tests.detection.conftest import DEMO


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths of the column-major mask, starting with a run of zeros."""
    flat = mask.flatten(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + counts}


def to_rle(json_file: Path, out: Path) -> Path:
    """The COCO json with every polygon mask as compressed RLE, and its first one as uncompressed RLE."""
    data = json.loads(Path(json_file).read_text())
    sizes = {image["id"]: (image["height"], image["width"]) for image in data["images"]}
    for i, annotation in enumerate(data["annotations"]):
        height, width = sizes[annotation["image_id"]]
        rle = mask_util.merge(mask_util.frPyObjects(annotation["segmentation"], height, width))
        if i == 0:
            annotation["segmentation"] = uncompressed_rle(mask_util.decode(rle))
            assert mask_util.decode(mask_util.frPyObjects(annotation["segmentation"], height, width)).sum() \
                == mask_util.area(rle)
        else:
            annotation["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
    out.write_text(json.dumps(data))
    return out


@pytest.fixture(scope="module")
def rle_coco(coco, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("rle")
    return dict(coco, train_json=to_rle(coco["train_json"], folder / "rle_train.json"),
                val_json=to_rle(coco["val_json"], folder / "rle_val.json"))


@pytest.fixture(scope="module")
def rle_run(tmp_path_factory, tiny, mae_file, rle_coco) -> Path:
    """3 iterations on the RLE set from an MAE file, then evaluation on the RLE val set."""
    out = tmp_path_factory.mktemp("detect_rle") / "run"
    detection.train(DEMO, out, list(tiny), init_checkpoint=mae_file, init="mae", **rle_coco)
    return out


def test_rle_masks_train_and_evaluate(rle_run, tiny):
    record = read_run_record(rle_run)
    assert record["status"] == "finished" and {"APbox", "APmask"} <= set(record["metrics"])
    assert "instance_mask_format: bitmask" in (rle_run / "config.yaml").read_text()
    assert record["iteration"] == record["max_iter"] == 3  # iterations trained, not one past them


def test_run_record_is_strict_json(rle_run):
    """detectron2 reports AP of an empty size range as NaN: the record holds null there."""
    text = (rle_run / "run_record.json").read_text()
    record = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the run record"))
    assert None in record["results"]["bbox"].values()  # the 64 px set has no large objects: APl is null


def test_the_mask_format_follows_the_data(coco, rle_coco):
    polygons = register_coco_json(coco["train_json"], coco["train_images"], "polygon_set")
    rle = register_coco_json(rle_coco["train_json"], rle_coco["train_images"], "rle_set")
    assert not has_rle_masks(polygons) and has_rle_masks(rle) and has_rle_masks([polygons, rle])


def test_resume_keeps_the_init_label_and_passes_over_a_torn_checkpoint(rle_run, rle_coco, tiny, tmp_path):
    copy = Path(shutil.copytree(rle_run, tmp_path / "copy"))
    final = copy / "model_final.pth"
    final.write_bytes(final.read_bytes()[: final.stat().st_size // 2])  # cut short, as by a kill or a full disk
    detection.train(DEMO, copy, [*tiny, "train.max_iter=4"], resume=True, **rle_coco)  # no --init
    log = (copy / "log.txt").read_text()
    assert f"skipped {final}: torn" in log
    assert f"resuming from {copy / 'model_0000001.pth'} at iteration 2" in log
    record = read_run_record(copy)
    assert (record["status"], record["init"], record["iteration"]) == ("finished", "mae", 4)
