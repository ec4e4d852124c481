"""COCO-format datasets for detectron2, checked before training so bad input is one clear error.

The standard COCO names (``coco_2017_train``, ``coco_2017_val``, ...) are detectron2's built-in ones, found in
detectron2's layout under ``$DETECTRON2_DATASETS`` (default ``./datasets``). Any other COCO instances json
with its image folder is registered with ``register_coco_json``.

Masks may be polygons or RLE, compressed or not (what SAM, CVAT and COCO's crowd annotations write); a training
set with RLE masks is read with detectron2's bitmask format (``has_rle_masks``, used by ``detection.engine``).

``check_datasets`` makes each dataset's loader verify what it loads: the json and image folder exist, every
image file is there, every annotation has a mask when the model predicts masks, a training set has usable
annotations and an evaluation set has annotations to score against, and the category count is the model's.
``CheckedMapper`` wraps the config's mapper so that each image is checked as it is read: an unreadable file,
a 16-bit image or a size that disagrees with the json (EXIF rotation included) is one error naming the file.
detectron2 itself would fail much later, deep in a data-loader worker without the file's name, or go on with
wrong data (16-bit PNGs clip to white, a json without annotations evaluates to empty metrics).
"""
from __future__ import annotations

from . import frameworks  # noqa: F401, I001  (first: detectron2 without its import-time notices)

import os
import warnings
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from PIL import Image

from runlib import UserError
from runlib.images import ImageError, image_info

_LAYOUT_HINT = ("put COCO in detectron2's layout under $DETECTRON2_DATASETS (now {root!r}): "
                "coco/annotations/instances_{{train,val}}2017.json and coco/{{train,val}}2017/, or give a "
                "COCO-format json and image folder (--train-json/--train-images, --val-json/--val-images)")

# Each dataset's loader as registered, before check_datasets wrapped it.
_UNCHECKED_LOADERS: dict[str, Callable[[], list[dict]]] = {}
# Dataset dicts loaded (and checked) ahead of the run, handed to the next load of that name once.
_PRELOADED: dict[str, list[dict]] = {}


class DetectionInputError(UserError):
    """Input that cannot be trained or evaluated on, with the file, key or value in the message."""


def check_image_file(path: str, width: int | None = None, height: int | None = None) -> None:
    """Refuse, from the file's header alone (``runlib.images.image_info``), an image detectron2 would misread:
    one it cannot open, a 16-bit or float image (detectron2's ``read_image`` clips it to 255: all white), or one
    whose displayed size (after EXIF rotation, which ``read_image`` applies) is not the json's ``width`` x
    ``height``."""
    try:
        info = image_info(path)
    except ImageError as exc:
        raise DetectionInputError(str(exc)) from None
    if width is not None and height is not None and info.size != (width, height):
        rotated = (f" (stored {info.stored_size[0]}x{info.stored_size[1]}, EXIF orientation {info.orientation} "
                   "rotates it)" if info.transposed else "")
        raise DetectionInputError(f"image {path}: is {info.size[0]}x{info.size[1]} as displayed{rotated} but the "
                                  f"json says {width}x{height}; width/height and annotations must be those of the "
                                  "image as displayed (after EXIF rotation)")


class CheckedMapper:
    """A dataset mapper (detectron2's ``DatasetMapper`` or any other) whose images are checked as they are read:
    ``check_image_file`` before the mapper runs, and a decoding error (a truncated or corrupt file) re-raised
    with the file's name."""

    def __init__(self, mapper: Callable[[dict], dict]):
        self.mapper = mapper

    def __call__(self, dataset_dict: dict) -> dict:
        path = dataset_dict["file_name"]
        check_image_file(path, dataset_dict.get("width"), dataset_dict.get("height"))
        try:
            with warnings.catch_warnings():
                # detectron2 makes RLE masks into tensors from read-only arrays (torch warns, once); nothing writes them
                warnings.filterwarnings("ignore", message=frameworks.READ_ONLY_ARRAY, category=UserWarning)
                return self.mapper(dataset_dict)
        except (OSError, SyntaxError, Image.DecompressionBombError) as exc:  # PIL's errors for a bad file
            raise DetectionInputError(f"image {path}: cannot be read ({type(exc).__name__}: {exc})") from None

    def __repr__(self) -> str:
        return f"CheckedMapper({self.mapper!r})"


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
        _PRELOADED.pop(name, None)
    register_coco_instances(name, {}, json_file, image_root)
    return name


def check_datasets(names: str | Sequence[str], *, num_classes: int, mask_on: bool, training: bool) -> None:
    """Check that each dataset's files exist now, and make its loader check what it loads (``training``: the
    images must have usable annotations; else: the set must have annotations to evaluate against)."""
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
        DatasetCatalog.register(name, partial(_load_checked, name, load, num_classes, mask_on, training))


def preload(names: str | Sequence[str]) -> None:
    """Load (and so check) each dataset now; its next load returns these dicts instead of reading the json again,
    so checking ahead of the run costs no second read of a large json."""
    for name in [names] if isinstance(names, str) else names:
        _PRELOADED[name] = DatasetCatalog.get(name)


def has_rle_masks(names: str | Sequence[str]) -> bool:
    """Whether an annotation of the datasets has an RLE mask (compressed or not; detectron2's loader makes both
    a dict) rather than polygons. A dataset not preloaded is preloaded here."""
    for name in [names] if isinstance(names, str) else names:
        if name not in _PRELOADED:
            preload(name)
        if any(isinstance(a.get("segmentation"), dict) for d in _PRELOADED[name] for a in d.get("annotations", ())):
            return True
    return False


def _load_checked(name: str, load: Callable[[], list[dict]], num_classes: int, mask_on: bool,
                  training: bool) -> list[dict]:
    if name in _PRELOADED:
        return _PRELOADED.pop(name)
    meta = MetadataCatalog.get(name)
    try:
        dicts = load()
    except (ValueError, KeyError, TypeError, AssertionError) as exc:  # json / pycocotools on a malformed file
        raise DetectionInputError(f"dataset {name!r}: {meta.json_file} is not a valid COCO instances json "
                                  f"({type(exc).__name__}: {exc})") from None
    if not dicts:
        raise DetectionInputError(f"dataset {name!r}: {meta.json_file} lists no images")
    classes = meta.get("thing_classes", [])
    if len(classes) != num_classes:
        raise DetectionInputError(
            f"dataset {name!r}: {meta.json_file} has {len(classes)} categories but the model is built for "
            f"{num_classes} (model.roi_heads.num_classes); add model.roi_heads.num_classes={len(classes)}")
    missing = [d["file_name"] for d in dicts if not os.path.isfile(d["file_name"])]
    if missing:
        raise DetectionInputError(f"dataset {name!r}: {len(missing)} of {len(dicts)} image files listed in "
                                  f"{meta.json_file} are missing, e.g. {missing[0]}")
    annotations = [a for d in dicts for a in d.get("annotations", [])]
    if training and not any(not a.get("iscrowd", 0) for a in annotations):
        # detectron2 drops images without non-crowd annotations from training, which would leave nothing
        raise DetectionInputError(f"dataset {name!r}: none of the {len(dicts)} images in {meta.json_file} has a "
                                  "usable (non-crowd) annotation, so there is nothing to train on")
    if not training and not annotations:
        raise DetectionInputError(f"dataset {name!r}: {meta.json_file} has no annotations, so there is nothing "
                                  "to evaluate against (for predictions without scores: mae-transfer detect predict)")
    if mask_on:
        maskless = [d["file_name"] for d in dicts for a in d.get("annotations", [])
                    if not a.get("iscrowd", 0) and not a.get("segmentation")]
        if maskless:
            raise DetectionInputError(
                f"dataset {name!r}: {len(maskless)} annotations in {meta.json_file} have no (valid) "
                f"'segmentation', e.g. one on {maskless[0]}; Mask R-CNN needs a mask for every instance")
    return dicts
