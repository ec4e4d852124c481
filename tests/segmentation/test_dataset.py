"""ADEFormatDataset on the generated set: any class list, and one clear SegDataError for each kind of bad input."""
import shutil

import numpy as np
import pytest
from mmengine.registry import init_default_scope
from mmseg.registry import DATASETS
from PIL import Image

import segmentation
from segmentation import SegDataError, SegmentationError


@pytest.fixture
def ade_copy(ade_root, tmp_path):
    """A copy of the generated ADE20K-format root that a test may damage."""
    return shutil.copytree(ade_root, tmp_path / "ADEChallengeData2016")


@pytest.fixture
def build_dataset(tiny_config):
    def build(data_root, split="train"):
        init_default_scope("mmseg")
        dataset_cfg = tiny_config()[f"{split}_dataloader"].dataset
        return DATASETS.build(dict(dataset_cfg, data_root=str(data_root)))
    return build


def first_sample(root, split="training"):
    image = sorted((root / "images" / split).glob("*.jpg"))[0]
    return image, root / "annotations" / split / f"{image.stem}.png"


def test_class_list_of_the_generated_set(build_dataset, ade_root, synthetic_data):
    import json

    classes = json.loads(synthetic_data["manifest"].read_text())["semantic_classes"]
    dataset = build_dataset(ade_root)
    assert list(dataset.metainfo["classes"]) == classes and len(dataset.metainfo["palette"]) == len(classes)
    assert len(dataset) == len(list((ade_root / "images" / "training").glob("*.jpg")))
    label = dataset[0]["data_samples"].gt_sem_seg.data
    values = set(label.unique().tolist())
    assert values and values <= set(range(len(classes))) | {255}  # reduce_zero_label: 0 -> 255, k -> k - 1


def test_ade20k_classes_by_default(ade_root):
    init_default_scope("mmseg")
    dataset = DATASETS.build(dict(type="ADEFormatDataset", data_root=str(ade_root),
                                  data_prefix=dict(img_path="images/training", seg_map_path="annotations/training")))
    assert len(dataset.metainfo["classes"]) == 150 and dataset.metainfo["classes"][0] == "wall"


def test_the_dataset_alone_sets_reduce_zero_label(ade_root, recwarn):
    """mmseg's ADE20K pipelines repeat reduce_zero_label on LoadAnnotations, which mmseg deprecates with a warning;
    the dataset's value is the one used, and a pipeline that contradicts it is refused."""
    init_default_scope("mmseg")
    prefix = dict(img_path="images/training", seg_map_path="annotations/training")

    def build(reduce_zero_label, in_pipeline):
        return DATASETS.build(dict(type="ADEFormatDataset", data_root=str(ade_root), data_prefix=prefix,
                                   reduce_zero_label=reduce_zero_label, pipeline=[
                                       dict(type="LoadImageFromFile"),
                                       dict(type="LoadAnnotations", reduce_zero_label=in_pipeline)]))
    for reduce_zero_label in (True, False):
        loaded = build(reduce_zero_label, reduce_zero_label)[0]
        assert loaded["reduce_zero_label"] is reduce_zero_label
        raw = np.array(Image.open(loaded["seg_map_path"]))
        assert np.array_equal(loaded["gt_seg_map"], np.where(raw == 0, 255, raw - 1) if reduce_zero_label else raw)
    assert not [w for w in recwarn if "reduce_zero_label" in str(w.message)]
    with pytest.raises(SegDataError, match=r"LoadAnnotations\(reduce_zero_label=False\) in a pipeline of a dataset "
                                           r"with reduce_zero_label=True: set it on the dataset only"):
        build(True, False)


def test_missing_data_root(build_dataset, demo_config, tiny_options, tmp_path):
    missing = tmp_path / "no_such_root"
    with pytest.raises(SegDataError, match=f"{missing}/images/training: no such image folder"):
        build_dataset(missing)
    with pytest.raises(SegmentationError, match=f"{missing}: data root does not exist"):
        segmentation.train(demo_config, tmp_path / "run", tiny_options, data_root=missing)


def test_image_without_label_map(build_dataset, ade_copy):
    _, label = first_sample(ade_copy)
    label.unlink()
    with pytest.raises(SegDataError, match=f"1 of 8 images have no label map, e.g. no {label}"):
        build_dataset(ade_copy)


def test_label_values_outside_the_classes(build_dataset, ade_copy):
    _, label = first_sample(ade_copy)
    values = np.array(Image.open(label))
    values[:4, :4] = 13  # 12 classes: 1..12 (0 = ignore)
    values[-1, -1] = 40
    Image.fromarray(values).save(label)
    message = rf"{label}: label values \[13, 40\] are outside the 12 classes \(allowed: 1..12, and 0 or 255 to ignore\)"
    dataset = build_dataset(ade_copy)
    with pytest.raises(SegDataError, match=message):
        dataset.check_files()  # the whole set, before a run
    with pytest.raises(SegDataError, match=message):
        dataset[0]  # the sample, when it is loaded


def test_image_and_label_sizes_differ(build_dataset, ade_copy):
    image, label = first_sample(ade_copy, "validation")
    Image.open(label).resize((32, 48), Image.NEAREST).save(label)
    dataset = build_dataset(ade_copy, split="val")
    for check in (dataset.check_files, lambda: dataset[0]):
        with pytest.raises(SegDataError, match=f"{image} is 64x64 \\(HxW\\) but its label map {label} is 48x32"):
            check()


@pytest.mark.parametrize("broken", ["image", "label"])
def test_unreadable_files(build_dataset, ade_copy, broken):
    image, label = first_sample(ade_copy)
    (image if broken == "image" else label).write_bytes(b"not an image")
    dataset = build_dataset(ade_copy)
    for check in (dataset.check_files, lambda: dataset[0]):
        with pytest.raises(SegDataError, match=f"{image} \\(label map {label}\\): cannot be (loaded|read)"):
            check()


def test_a_16_bit_image_is_refused_naming_it(build_dataset, ade_copy):
    """mmcv decodes a 16-bit image to 8 bits: the model would train on other values than the file holds."""
    image, label = first_sample(ade_copy)
    height, width = np.asarray(Image.open(label)).shape
    Image.fromarray(np.full((height, width), 40000, np.uint16)).save(image, format="PNG")  # under its .jpg name
    with pytest.raises(SegDataError, match=f"{image} \\(label map {label}\\): I;16 pixels \\(16-bit or float\\)"):
        build_dataset(ade_copy).check_files()
