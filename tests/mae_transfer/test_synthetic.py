"""The generated data world: formats readable by the real consumers, consistent, deterministic."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runlib.output_dir import write_marker
from mae_transfer import synthetic
from mae_transfer.synthetic import (SEMANTIC_CLASSES, SEMANTIC_PALETTE, STUFF_CLASSES, THING_CLASSES,
                                    SyntheticSpec, generate)

TINY = SyntheticSpec(seed=5, image_size=48, num_pretrain=3, num_classify_train=2, num_classify_val=1,
                     classify_image_size=32, num_coco_train=3, num_coco_val=2, num_ade_train=2,
                     num_ade_val=3, max_objects=3)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _ade_pairs(ade_root: Path):
    for split in ("training", "validation"):
        for image in sorted((ade_root / "images" / split).glob("*.jpg")):
            yield image, ade_root / "annotations" / split / f"{image.stem}.png"


def test_classes_and_manifest(synthetic_data):
    assert SEMANTIC_CLASSES == THING_CLASSES + STUFF_CLASSES
    assert len(SEMANTIC_PALETTE) == len(SEMANTIC_CLASSES) and len(set(SEMANTIC_CLASSES)) == len(SEMANTIC_CLASSES)
    manifest = json.loads(synthetic_data["manifest"].read_text())
    assert manifest["semantic_classes"] == list(SEMANTIC_CLASSES)
    assert manifest["thing_classes"] == list(THING_CLASSES)
    assert len(list(synthetic_data["pretrain"].rglob("*.png"))) == manifest["counts"]["pretrain"]
    assert all((synthetic_data["manifest"].parent / rel).exists() for rel in manifest["paths"].values())


def test_coco_annotations_match_their_masks(synthetic_data):
    from pycocotools.coco import COCO

    for split in ("train", "val"):
        coco = COCO(str(synthetic_data[f"coco_{split}_json"]))
        assert [(c["id"], c["name"]) for c in coco.loadCats(coco.getCatIds())] == list(
            enumerate(THING_CLASSES, start=1))
        assert coco.getAnnIds(), "a scene always holds at least one object"
        raw = json.loads(synthetic_data[f"coco_{split}_json"].read_text())
        assert len(coco.anns) == len(raw["annotations"]), "annotation ids must be unique"
        for info in coco.loadImgs(coco.getImgIds()):
            with Image.open(synthetic_data[f"coco_{split}_images"] / info["file_name"]) as image:
                assert image.size == (info["width"], info["height"]) and image.mode == "RGB"
            masks = [coco.annToMask(a) for a in coco.loadAnns(coco.getAnnIds(imgIds=info["id"]))]
            assert np.all(sum(masks) <= 1), "objects must not overlap"
        for ann in coco.loadAnns(coco.getAnnIds()):
            mask = coco.annToMask(ann)
            ys, xs = np.nonzero(mask)
            assert len(xs) == ann["area"] > 0 and ann["iscrowd"] == 0
            x, y, w, h = ann["bbox"]
            extent = (xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min())
            assert np.allclose((x, y, w, h), extent, atol=1)
            assert isinstance(ann["segmentation"], list) and len(ann["segmentation"][0]) >= 6


def test_ade_labels_are_valid_and_agree_with_coco(synthetic_data):
    from pycocotools.coco import COCO

    ade = synthetic_data["ade_root"]
    pairs = list(_ade_pairs(ade))
    assert pairs
    seen = set()
    for image_path, label_path in pairs:
        with Image.open(image_path) as image, Image.open(label_path) as label:
            assert image.size == label.size and label.mode == "L"
            values = np.unique(np.asarray(label))
        assert values.max() <= len(SEMANTIC_CLASSES)
        seen.update(values.tolist())
    assert 0 in seen, "mixed border pixels are labelled ignore"
    assert seen & set(range(1, len(THING_CLASSES) + 1)), "things are labelled"
    assert seen & set(range(len(THING_CLASSES) + 1, len(SEMANTIC_CLASSES) + 1)), "stuff is labelled"

    # ADE split image i is the same scene as COCO split image i.
    for split, ade_split in (("train", "training"), ("val", "validation")):
        coco = COCO(str(synthetic_data[f"coco_{split}_json"]))
        stems = sorted(p.stem for p in (ade / "annotations" / ade_split).glob("*.png"))
        for image_id, stem in zip(sorted(coco.getImgIds()), stems):
            label = np.asarray(Image.open(ade / "annotations" / ade_split / f"{stem}.png"))
            jpg = np.asarray(Image.open(ade / "images" / ade_split / f"{stem}.jpg"), np.float32)
            png = np.asarray(Image.open(synthetic_data[f"coco_{split}_images"] /
                                        coco.loadImgs(image_id)[0]["file_name"]), np.float32)
            assert np.abs(jpg - png).mean() < 8, "same scene, up to JPEG loss"
            things = np.zeros_like(label)
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
                mask = coco.annToMask(ann).astype(bool)
                assert set(np.unique(label[mask])) <= {0, ann["category_id"]}
                assert (label[mask] == ann["category_id"]).mean() > 0.5
                things[mask] = ann["category_id"]
            is_thing = (label >= 1) & (label <= len(THING_CLASSES))
            assert np.array_equal(label[is_thing], things[is_thing])


def test_mmseg_ade20k_dataset_reads_the_output(synthetic_data):
    segmentation = pytest.importorskip("segmentation")
    from mmengine.registry import init_default_scope

    with segmentation.framework_patches():  # mmcv-lite lacks mmcv.ops, which mmseg.datasets imports
        from mmseg.datasets import ADE20KDataset

    class SyntheticADE(ADE20KDataset):
        # Stock ADE20KDataset refuses metainfo classes that are not among its 150 (label_map
        # check), so the class list must replace METAINFO itself.
        METAINFO = dict(classes=SEMANTIC_CLASSES, palette=[list(c) for c in SEMANTIC_PALETTE])

    init_default_scope("mmseg")
    dataset = SyntheticADE(
        data_root=str(synthetic_data["ade_root"]),
        data_prefix=dict(img_path="images/training", seg_map_path="annotations/training"),
        reduce_zero_label=True,
        # LoadAnnotations takes reduce_zero_label from the dataset (passing it again only warns).
        pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")])
    manifest = json.loads(synthetic_data["manifest"].read_text())
    assert len(dataset) == manifest["counts"]["ade_training"]
    assert dataset.metainfo["classes"] == SEMANTIC_CLASSES
    sample = dataset[0]
    gt = sample["gt_seg_map"]
    assert gt.shape == sample["img"].shape[:2]
    assert set(np.unique(gt).tolist()) <= set(range(len(SEMANTIC_CLASSES))) | {255}
    raw = np.asarray(Image.open(sample["seg_map_path"])).astype(int)
    assert np.array_equal(gt, np.where(raw == 0, 255, raw - 1)), "PNG label k is mmseg class k-1"


def test_imagefolder_reads_the_classification_set(synthetic_data):
    from torchvision.datasets import ImageFolder

    manifest = json.loads(synthetic_data["manifest"].read_text())
    for split in ("train", "val"):
        folder = ImageFolder(str(synthetic_data[f"classify_{split}"]))
        assert sorted(folder.classes) == sorted(THING_CLASSES)
        assert len(folder) == manifest["counts"][f"classify_{split}"]
        image, target = folder[len(folder) - 1]
        size = manifest["spec"]["classify_image_size"]
        assert image.size == (size, size) and folder.classes[target] == sorted(THING_CLASSES)[-1]


def test_pretraining_set_is_a_balanced_labelled_imagefolder(synthetic_data):
    """MAE reads only the images (pretrain.data.list_images), the supervised baseline the same images with labels."""
    from torchvision.datasets import ImageFolder

    from pretrain.data import list_images

    manifest = json.loads(synthetic_data["manifest"].read_text())
    folder = ImageFolder(str(synthetic_data["pretrain"]))
    assert sorted(folder.classes) == sorted(THING_CLASSES)
    counts = np.bincount(folder.targets, minlength=len(THING_CLASSES))
    assert counts.sum() == manifest["counts"]["pretrain"] and counts.max() - counts.min() <= 1
    assert sorted(map(str, list_images(synthetic_data["pretrain"]))) == sorted(p for p, _ in folder.samples)
    assert folder[0][0].size == (manifest["spec"]["image_size"],) * 2


def test_classification_training_set_may_be_empty(tmp_path):
    paths = generate(tmp_path / "data", dataclasses.replace(TINY, num_classify_train=0))
    assert json.loads(paths["manifest"].read_text())["counts"]["classify_train"] == 0
    assert len(list(paths["classify_val"].rglob("*.png"))) == TINY.num_classify_val * len(THING_CLASSES)


def test_test_split_is_a_draw_of_its_own_and_leaves_the_other_splits_unchanged(tmp_path):
    from pycocotools.coco import COCO

    without = generate(tmp_path / "without", TINY)["manifest"].parent
    paths = generate(tmp_path / "with", dataclasses.replace(TINY, num_coco_test=2, num_ade_test=3))
    root = paths["manifest"].parent
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["counts"]["coco_test_images"] == 2 and manifest["counts"]["ade_test"] == 3
    assert len(COCO(str(paths["coco_test_json"])).getImgIds()) == 2
    assert len(list((root / "ade/ADEChallengeData2016/annotations/test").glob("*.png"))) == 3
    hashes, before = _hashes(root), _hashes(without)
    # every file of the generation without a test split is byte for byte the same (the manifest aside)
    assert {k: h for k, h in hashes.items() if k in before and k != "manifest.json"} == \
        {k: h for k, h in before.items() if k != "manifest.json"}
    test_images = {h for k, h in hashes.items() if k.startswith("coco/test/")}
    val_images = {h for k, h in hashes.items() if k.startswith("coco/val/")}
    assert len(test_images) == 2 and not test_images & val_images  # other scenes than val's
    # a folder made without a test split is the same generation for a spec that asks for none
    assert "num_coco_test" not in json.loads((without / "manifest.json").read_text())["spec"]
    assert generate(without, TINY)["manifest"].parent == without and "coco_test_json" not in generate(without, TINY)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    first = generate(tmp_path / "a", TINY)["manifest"].parent
    again = generate(tmp_path / "b", TINY)["manifest"].parent
    other = generate(tmp_path / "c", dataclasses.replace(TINY, seed=6))["manifest"].parent
    assert _hashes(first) == _hashes(again)
    differs = {k for k, h in _hashes(other).items() if _hashes(first).get(k) != h}
    assert {k for k in differs if k.endswith((".png", ".jpg"))}, "a new seed must change the images"
    assert not list(tmp_path.glob(".*")), "no temporary folder is left behind"


def test_pretraining_images_drawn_in_several_processes_are_the_same(tmp_path):
    spec = dataclasses.replace(TINY, image_size=32, num_pretrain=512)  # 256 images a process at least
    one = generate(tmp_path / "one", spec)["manifest"].parent
    two = generate(tmp_path / "two", spec, workers=2)["manifest"].parent
    assert len(list((two / "pretrain").rglob("*.png"))) == 512 and _hashes(one) == _hashes(two)


def test_finished_folder_is_reused_and_foreign_folder_refused(tmp_path):
    paths = generate(tmp_path / "data", TINY)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*")}
    assert generate(tmp_path / "data", TINY) == paths
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "data").rglob("*")} == stamps

    with pytest.raises(ValueError, match="different synthetic generation"):
        generate(tmp_path / "data", dataclasses.replace(TINY, seed=7))
    generate(tmp_path / "data", dataclasses.replace(TINY, seed=7), overwrite=True)
    assert json.loads(paths["manifest"].read_text())["seed"] == 7

    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(ValueError, match="foreign"):
            generate(tmp_path / "foreign", TINY, overwrite=overwrite)
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "keep me"


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    def crash(root, spec, *workers):
        (root / "pretrain").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(synthetic, "_write_all", crash)
    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path / "data", TINY)
    assert list(tmp_path.iterdir()) == []


def test_a_partial_folder_is_deleted_only_when_a_killed_generation_left_it(tmp_path):
    foreign = tmp_path / ".data.partial"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match=r"\.data\.partial exists and is not a leftover"):
        generate(tmp_path / "data", TINY)
    assert (foreign / "notes.txt").read_text() == "keep me" and not (tmp_path / "data").exists()

    leftover = tmp_path / ".other.partial"  # what a kill -9 in the middle of writing leaves
    (leftover / "pretrain").mkdir(parents=True)
    write_marker(leftover, synthetic.COMMAND)
    paths = generate(tmp_path / "other", TINY)
    assert not leftover.exists() and paths["manifest"].is_file()


@pytest.mark.parametrize("field, value", [("image_size", 16), ("num_coco_val", 0), ("max_objects", -1),
                                          ("seed", -3), ("num_pretrain", 2.5)])
def test_bad_spec_is_refused_by_name(field, value):
    with pytest.raises(ValueError, match=f"{field}.*{value}"):
        dataclasses.replace(TINY, **{field: value})


def test_command_line(tmp_path, capsys):
    synthetic.main([str(tmp_path / "cli"), "--seed", "5", "--image-size", "48", "--num-pretrain", "3",
                    "--num-classify-train", "2", "--num-classify-val", "1", "--classify-image-size", "32",
                    "--num-coco-train", "3", "--num-coco-val", "2", "--num-ade-train", "2",
                    "--num-ade-val", "3", "--max-objects", "3"])
    assert "coco_train_json" in capsys.readouterr().out
    assert _hashes(tmp_path / "cli") == _hashes(generate(tmp_path / "api", TINY)["manifest"].parent)
    with pytest.raises(SystemExit):
        synthetic.main([str(tmp_path / "bad"), "--image-size", "8"])
