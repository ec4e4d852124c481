"""Images and annotations detectron2 would misread or fail on deep in a worker: one error naming the file or the
set. 16-bit images are refused (detectron2's read_image clips them to white); an EXIF-rotated image must be
described in the json as displayed (detectron2 applies the rotation)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from detectron2.data import DatasetMapper
from PIL import Image

import detection
from runlib import read_run_record
from runlib.images import read_rgb
from runlib.output_dir import MARKER
from detection.cli import main as detect
from detection.data import CheckedMapper, DetectionInputError, check_image_file
from tests.runlib.test_images import READER_KINDS, reader_sample
from tests.detection.conftest import DEMO


def sixteen_bit_png(path: Path, height: int = 24, width: int = 32) -> Path:
    Image.fromarray(np.linspace(0, 65535, height * width).reshape(height, width).astype(np.uint16)).save(path)
    with Image.open(path) as image:
        assert image.mode.startswith("I;16")
    return path


def exif_rotated_jpeg(path: Path, stored_w: int = 48, stored_h: int = 24, orientation: int = 6) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (stored_w, stored_h), (200, 30, 30)).save(path, exif=exif)
    return path


def test_a_16_bit_image_is_refused_naming_the_file(tmp_path):
    path = sixteen_bit_png(tmp_path / "depth.png")
    with pytest.raises(DetectionInputError, match=f"image {path}: I;16.* pixels \\(16-bit or float\\).*convert it"):
        check_image_file(str(path))


def test_an_exif_rotated_image_must_be_described_as_displayed(tmp_path):
    path = str(exif_rotated_jpeg(tmp_path / "portrait.jpg"))
    mapper = CheckedMapper(DatasetMapper(is_train=False, augmentations=[], image_format="RGB"))
    with pytest.raises(DetectionInputError, match=f"image {path}: is 24x48 as displayed \\(stored 48x24, EXIF "
                                                  "orientation 6 rotates it\\) but the json says 48x24"):
        mapper({"file_name": path, "width": 48, "height": 24, "image_id": 1})
    mapped = mapper({"file_name": path, "width": 24, "height": 48, "image_id": 1})
    assert tuple(mapped["image"].shape) == (3, 48, 24)  # detectron2 read it rotated, as the json says


def test_a_size_that_disagrees_with_the_json_names_the_file(tmp_path):
    path = tmp_path / "plain.png"
    Image.new("RGB", (40, 30)).save(path)
    with pytest.raises(DetectionInputError, match=f"image {path}: is 40x30 as displayed but the json says 30x40"):
        check_image_file(str(path), width=30, height=40)


def bad_copy(images: Path, tmp_path: Path, kind: str) -> Path:
    """The image folder with every image truncated to half its bytes or rewritten as a 16-bit PNG."""
    copy = tmp_path / "images"
    shutil.copytree(images, copy)
    for path in sorted(copy.iterdir()):
        if kind == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 2])
        else:
            with Image.open(path) as image:
                width, height = image.size
            sixteen_bit_png(path, height, width)
    return copy


@pytest.mark.parametrize("kind, message", [("truncated", "cannot be read"), ("16-bit", "I;16")])
def test_a_bad_image_stops_training_with_one_line_naming_it(kind, message, coco, tiny, tmp_path, capsys):
    images = bad_copy(Path(coco["train_images"]), tmp_path, kind)
    code = detect(["train", "--config-file", str(DEMO), "--out", str(tmp_path / "run"),
                   "--train-json", str(coco["train_json"]), "--train-images", str(images),
                   "--val-json", str(coco["val_json"]), "--val-images", str(coco["val_images"]), *tiny])
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mae-transfer")]
    assert code == 2 and line.startswith(f"mae-transfer detect: error: image {images}/") and message in line
    record = read_run_record(tmp_path / "run")
    assert record["status"] == "failed" and f"image {images}/" in record["error"]


def edited_json(source: Path, tmp_path: Path, edit, name: str) -> Path:
    data = json.loads(source.read_text())
    edit(data)
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_a_training_set_without_usable_annotations_names_the_set(coco, tiny, tmp_path):
    def all_crowd(data):
        for annotation in data["annotations"]:
            annotation["iscrowd"] = 1

    train_json = edited_json(Path(coco["train_json"]), tmp_path, all_crowd, "instances_crowd.json")
    with pytest.raises(DetectionInputError, match=r"dataset 'instances_crowd': none of the 8 images in "
                                                  r".*instances_crowd.json has a usable \(non-crowd\) annotation"):
        detection.train(DEMO, tmp_path / "run", list(tiny), **dict(coco, train_json=train_json))
    # the folder is made and marked as the run's (runlib.output_dir), nothing else is written in it
    assert [p.name for p in (tmp_path / "run").iterdir()] == [MARKER]


def test_evaluating_on_a_json_without_annotations_is_an_error_not_empty_metrics(coco, tiny, tmp_path, mae_file,
                                                                               capsys):
    val_json = edited_json(Path(coco["val_json"]), tmp_path, lambda data: data.pop("annotations"),
                           "instances_unlabelled.json")
    code = detect(["eval", "--config-file", str(DEMO), "--weights", str(mae_file), "--out", str(tmp_path / "eval"),
                   "--val-json", str(val_json), "--val-images", str(coco["val_images"]), *tiny])
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mae-transfer")]
    assert code == 2 and f"{val_json} has no annotations, so there is nothing to evaluate against" in line
    assert not (tmp_path / "eval" / "run_record.json").exists()  # never "finished"


@pytest.mark.parametrize("kind", READER_KINDS)
def test_the_shared_reader_gives_detectron2s_pixels(tmp_path, kind):
    """Predictions read images with runlib.images.read_rgb; training reads them with detectron2's read_image."""
    from detectron2.data.detection_utils import read_image

    path = reader_sample(tmp_path, kind)
    np.testing.assert_array_equal(read_rgb(path), read_image(str(path), format="RGB"))
