"""Bad input is one clear error that names the problem. A mistake in the config, the data sets or the output folder
is raised before anything is written (an earlier run's record stays as it was); one found while running (an image
that cannot be read) ends the run with a "failed" record."""
import json
import shutil
from pathlib import Path

import pytest
import torch

import detection
from backbone import CheckpointError
from runlib import read_run_record
from runlib.output_dir import MARKER
from detection import DetectionInputError
from detection.cli import main as detect

from tests.detection.conftest import CONFIGS, DEMO


def edited_copy(coco: dict, tmp_path: Path, edit) -> dict:
    """The generated set with its training json edited by ``edit(json_dict)``."""
    data = json.loads(Path(coco["train_json"]).read_text())
    edit(data)
    path = tmp_path / "instances_edited.json"
    path.write_text(json.dumps(data))
    return dict(coco, train_json=path)


def test_missing_json_names_the_file_and_writes_nothing(coco, tiny, tmp_path):
    missing = tmp_path / "nowhere" / "instances_val.json"
    with pytest.raises(DetectionInputError, match=f"annotation file {missing} does not exist"):
        detection.train(DEMO, tmp_path / "run", list(tiny), **dict(coco, val_json=missing))
    assert not (tmp_path / "run").exists()


def test_missing_standard_coco_points_to_detectron2_datasets(tiny, tmp_path):
    with pytest.raises(DetectionInputError, match=r"coco_2017_val.*instances_val2017.json does not exist.*"
                                                  r"DETECTRON2_DATASETS"):
        detection.train(DEMO, tmp_path, list(tiny))


def test_custom_set_needs_json_and_images(coco, tiny, tmp_path):
    with pytest.raises(DetectionInputError, match="needs both --val-json and --val-images"):
        detection.train(DEMO, tmp_path, list(tiny), **dict(coco, val_images=None))


def test_annotations_without_masks(coco, tiny, tmp_path):
    def drop_a_mask(data):
        del data["annotations"][2]["segmentation"]

    with pytest.raises(DetectionInputError, match=r"1 annotations in .*instances_edited.json have no \(valid\) "
                                                  r"'segmentation'.*Mask R-CNN needs a mask"):
        detection.train(DEMO, tmp_path / "run", list(tiny), **edited_copy(coco, tmp_path, drop_a_mask))
    # the folder is made and marked as the run's (runlib.output_dir), nothing else is written in it
    assert [p.name for p in (tmp_path / "run").iterdir()] == [MARKER]


def test_missing_image_files(coco, tiny, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(coco["train_images"], images)
    removed = sorted(images.iterdir())[3]
    removed.unlink()
    with pytest.raises(DetectionInputError, match=f"1 of 8 image files .* are missing, e.g. {removed}"):
        detection.train(DEMO, tmp_path / "run", list(tiny), **dict(coco, train_images=images))


def test_category_count_differs_from_the_config(coco, tiny, tmp_path):
    with pytest.raises(DetectionInputError, match=r"has 6 categories but the model is built for 5 "
                                                  r".*model.roi_heads.num_classes=6"):
        detection.train(DEMO, tmp_path, [*tiny, "model.roi_heads.num_classes=5"], **coco)


def test_malformed_json(coco, tiny, tmp_path):
    broken = tmp_path / "instances_broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(DetectionInputError, match="instances_broken.json is not a valid COCO instances json"):
        detection.train(DEMO, tmp_path / "run", list(tiny), **dict(coco, train_json=broken))


def test_unknown_override_key(coco, tiny, tmp_path):
    with pytest.raises(DetectionInputError, match="has no key 'train.max_iters'"):
        detection.train(DEMO, tmp_path, [*tiny, "train.max_iters=10"], **coco)


def test_config_without_initial_weights(coco, tmp_path):
    with pytest.raises(DetectionInputError, match="no default initial weights.*train.init_checkpoint="):
        detection.train(CONFIGS / "mask_rcnn_vit_b_supervised.py", tmp_path, ["train.init_checkpoint=???"], **coco)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only errors")
def test_gpu_recipe_on_a_cpu_machine(coco, tmp_path):
    config = CONFIGS / "mask_rcnn_vit_b_random.py"
    with pytest.raises(DetectionInputError, match="no CUDA device is available.*train.device=cpu"):
        detection.train(config, tmp_path, [], **coco)
    with pytest.raises(DetectionInputError, match="train.amp.enabled=True needs a CUDA device"):
        detection.train(config, tmp_path, ["train.device=cpu"], **coco)


def test_vit_checkpoint_of_another_size_through_the_cli(coco, tiny, tmp_path, mae_release_state, capsys):
    wider = tmp_path / "mae_pretrain_vit_wider.pth"
    torch.save({"model": mae_release_state(width=48)}, wider)
    code = detect(["train", "--config-file", str(DEMO), "--out", str(tmp_path / "run"),
                   "--init-checkpoint", str(wider), "--train-json", str(coco["train_json"]),
                   "--train-images", str(coco["train_images"]), "--val-json", str(coco["val_json"]),
                   "--val-images", str(coco["val_images"]), *tiny])
    assert code == 2
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mae-transfer")]
    assert line.startswith("mae-transfer detect: error: ") and "width 48 but the model has width 32" in line
    assert read_run_record(tmp_path / "run")["status"] == "failed"


def test_evaluating_a_backbone_file_is_refused(coco, tiny, tmp_path, mae_file):
    with pytest.raises(CheckpointError, match="holds a ViT backbone only, not a trained detector"):
        detection.evaluate(DEMO, tmp_path, mae_file, list(tiny), val_json=coco["val_json"],
                           val_images=coco["val_images"])
