"""COCO-format datasets for detectron2, checked before training so bad input is one clear error.

The standard COCO names (``coco_2017_train``, ``coco_2017_val``, ...) are detectron2's built-in ones, found in
detectron2's layout under ``$DETECTRON2_DATASETS`` (default ``./datasets``). Any other COCO instances json
with its image folder is registered with ``register_coco_json``.

``check_datasets`` makes each dataset's loader verify what it loads: the json and image folder exist, every
image file is there, every annotation has a mask when the model predicts masks, and the category count is
the model's. detectron2 itself would fail much later, deep in a data-loader worker, or silently skip them.
"""
from __future__ import annotations

import importlib.util
import os
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import pycocotools.mask as mask_util
from detectron2.data import DatasetCatalog, DatasetMapper, MetadataCatalog
from detectron2.data.datasets import register_coco_instances

_LAYOUT_HINT = ("put COCO in detectron2's layout under $DETECTRON2_DATASETS (now {root!r}): "
                "coco/annotations/instances_{{train,val}}2017.json and coco/{{train,val}}2017/, or give a "
                "COCO-format json and image folder (--train-json/--train-images, --val-json/--val-images)")

# Each dataset's loader as registered, before check_datasets wrapped it.
_UNCHECKED_LOADERS: dict[str, Callable[[], list[dict]]] = {}


class DetectionInputError(ValueError):
    """Input that cannot be trained or evaluated on, with the file, key or value in the message."""


class RasterizingDatasetMapper(DatasetMapper):
    """detectron2's ``DatasetMapper`` with polygon masks rasterised (to RLE) before augmentation.

    Cropping polygons (LSJ's ``FixedSizeCrop``) needs ``shapely``; cropping a bitmask does not. Use with
    ``instance_mask_format="bitmask"``. The 28x28 mask targets are then resampled from the rasterised mask
    instead of drawn from the polygon: they differ along object borders (measured: 5 % of target pixels on the
    generated 64-px objects, less on larger ones).
    """

    def __call__(self, dataset_dict: dict) -> dict:
        height, width = dataset_dict["height"], dataset_dict["width"]
        annotations = [dict(a, segmentation=mask_util.merge(mask_util.frPyObjects(a["segmentation"], height, width)))
                       if isinstance(a.get("segmentation"), list) else a
                       for a in dataset_dict.get("annotations", [])]
        return super().__call__(dict(dataset_dict, annotations=annotations))


def register_coco_json(json_file: str | Path, image_root: str | Path, name: str | None = None) -> str:
    """Register a COCO instances json and its image folder; returns the dataset name (default: the json's
    stem). Registering a name again with other files replaces it."""
    json_file, image_root = os.path.abspath(json_file), os.path.abspath(image_root)
    name = name or Path(json_file).stem
    if name in DatasetCatalog.list():
        meta = MetadataCatalog.get(name)
        if (meta.get("json_file"), meta.get("image_root")) == (json_file, image_root):
            return name
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
        _UNCHECKED_LOADERS.pop(name, None)
    register_coco_instances(name, {}, json_file, image_root)
    return name


def check_datasets(names: str | Sequence[str], *, num_classes: int, mask_on: bool) -> None:
    """Check that each dataset's files exist now, and make its loader check what it loads."""
    for name in [names] if isinstance(names, str) else names:
        if name not in DatasetCatalog.list():
            coco = sorted(n for n in DatasetCatalog.list() if n.startswith("coco_20"))
            raise DetectionInputError(f"dataset {name!r} is not registered (detectron2's COCO names: "
                                      f"{', '.join(coco)}; other COCO-format data: give its json and images)")
        meta = MetadataCatalog.get(name)
        json_file, image_root = meta.get("json_file"), meta.get("image_root")
        if json_file is None or image_root is None:
            raise DetectionInputError(f"dataset {name!r} is not a COCO instances dataset (no json_file / image_root)")
        hint = _LAYOUT_HINT.format(root=os.getenv("DETECTRON2_DATASETS", "datasets"))
        if not os.path.isfile(json_file):
            raise DetectionInputError(f"dataset {name!r}: annotation file {json_file} does not exist; {hint}")
        if not os.path.isdir(image_root):
            raise DetectionInputError(f"dataset {name!r}: image folder {image_root} does not exist; {hint}")
        load = _UNCHECKED_LOADERS.setdefault(name, DatasetCatalog[name])
        DatasetCatalog.remove(name)
        DatasetCatalog.register(name, partial(_load_checked, name, load, num_classes, mask_on))


def check_train_mapper(mapper_cfg) -> None:
    """Refuse, before any worker starts, to crop polygon masks where ``shapely`` (fvcore's polygon crop) is missing."""
    crops = any("Crop" in getattr(aug.get("_target_"), "__name__", str(aug.get("_target_")))
                for aug in mapper_cfg.get("augmentations", []))
    polygons = (mapper_cfg.get("use_instance_mask") and mapper_cfg.get("instance_mask_format", "polygon") == "polygon")
    if crops and polygons and importlib.util.find_spec("shapely") is None:
        raise DetectionInputError(
            "the training augmentations crop polygon masks, which needs the 'shapely' package (not installed): "
            "install it, or rasterise masks first with dataloader.train.mapper._target_="
            "detection.data.RasterizingDatasetMapper dataloader.train.mapper.instance_mask_format=bitmask")


def _load_checked(name: str, load: Callable[[], list[dict]], num_classes: int, mask_on: bool) -> list[dict]:
    meta = MetadataCatalog.get(name)
    try:
        dicts = load()
    except (ValueError, KeyError, TypeError, AssertionError) as exc:  # json / pycocotools on a malformed file
        raise DetectionInputError(f"dataset {name!r}: {meta.json_file} is not a valid COCO instances json "
                                  f"({type(exc).__name__}: {exc})") from None
    classes = meta.get("thing_classes", [])
    if len(classes) != num_classes:
        raise DetectionInputError(
            f"dataset {name!r}: {meta.json_file} has {len(classes)} categories but the model is built for "
            f"{num_classes} (model.roi_heads.num_classes); add model.roi_heads.num_classes={len(classes)}")
    missing = [d["file_name"] for d in dicts if not os.path.isfile(d["file_name"])]
    if missing:
        raise DetectionInputError(f"dataset {name!r}: {len(missing)} of {len(dicts)} image files listed in "
                                  f"{meta.json_file} are missing, e.g. {missing[0]}")
    if mask_on:
        maskless = [d["file_name"] for d in dicts for a in d.get("annotations", [])
                    if not a.get("iscrowd", 0) and not a.get("segmentation")]
        if maskless:
            raise DetectionInputError(
                f"dataset {name!r}: {len(maskless)} annotations in {meta.json_file} have no (valid) "
                f"'segmentation', e.g. one on {maskless[0]}; Mask R-CNN needs a mask for every instance")
    return dicts
