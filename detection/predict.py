"""Use a trained detector: ``Predictor`` (Python) and ``mae-transfer detect predict`` (overlays + COCO results).

``Predictor`` follows detectron2's ``DefaultPredictor``: the config's own test resize, the model in eval mode,
one image in, detectron2's ``Instances`` out (in the original image's coordinates). The differences: a
LazyConfig (``configs/detection/*.py``) or a yacs config (``*.yaml``), weights read by the strict reader
(``detection.weights``: no code runs on load), and the image convention of ``segmentation.Predictor``: a file
path (EXIF orientation applied), an HxWx3 uint8 array in RGB order (PIL, torchvision, timm, transformers) or, with
``format="BGR"``, in OpenCV's order (``DefaultPredictor`` takes BGR only), or a list of them
(``runlib.images.as_rgb``).

    import detection
    predictor = detection.Predictor("configs/detection/mask_rcnn_vit_b_mae.py", "runs/det/model_final.pth")
    instances = predictor("street.jpg")        # or predictor(rgb_array), predictor(bgr_array, format="BGR")
    print(instances.pred_boxes, instances.scores, [predictor.class_names[c] for c in instances.pred_classes])

``predict_files`` writes, for each input image, an overlay drawn by detectron2's ``Visualizer`` (same name,
``.jpg`` kept for JPEG inputs, else ``.png``) and one ``coco_instances_results.json``: COCO results (boxes
``[x, y, w, h]``, RLE masks, scores, category ids of the categories' json) with each result's
``category_name`` and ``file_name``. Its ``image_id`` is the id of the image of that file name in the
``--categories`` json when that json lists images (so ``COCO.loadRes`` scores each image against its own ground
truth), else the input's number from 1.
"""
from __future__ import annotations

from . import frameworks  # noqa: F401, I001  (first: detectron2 without its import-time notices)

import json
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Sequence

import detectron2.data.transforms as T
import numpy as np
import torch
import yaml
from detectron2.config import get_cfg, instantiate
from detectron2.data import Metadata, MetadataCatalog
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.modeling import build_model
from detectron2.structures import Instances
from detectron2.utils.visualizer import Visualizer
from PIL import Image
from tqdm import tqdm

from runlib import atomic_write, prepare_run_dir
from runlib.images import MAX_PIXELS, as_rgb, expand_inputs, image_info, read_rgb
from runlib.safe_yaml import load_yaml, yaml_error

from .data import DetectionInputError
from .engine import apply_override, load_lazy_config
from .weights import load_initial_weights

RESULTS_NAME = "coco_instances_results.json"  # COCOEvaluator's name for the same format


class Predictor:
    """A trained detector on images, one at a time, with the config's test resize.

    Args:
        config_file: a LazyConfig ``.py`` (``configs/detection/*.py``) or a yacs ``.yaml``
            (``configs/detection/yacs_mask_rcnn_vit_b.yaml``).
        weights: the detector (``model_final.pth``, a ViTDet model-zoo ``.pkl``), read without running code.
        overrides: ``key=value`` strings: LazyConfig keys (``model.roi_heads.box_predictor.test_score_thresh=0.5``)
            or yacs keys (``MODEL.ROI_HEADS.SCORE_THRESH_TEST=0.5``).
        device: "cuda", "cpu", ...; default CUDA when available.
        categories: a COCO json (or its ``categories`` list) naming the classes; default: the config's test set
            (COCO's 80 for the recipes), else ``class 0``, ``class 1``, ... with the class index as id.
        max_pixels: image files with more pixels are refused before decoding (``runlib.images.MAX_PIXELS``).

    Attributes: ``model``, ``class_names``, ``category_ids`` (the json's id of each class index),
    ``augmentations`` (the test resize), ``input_format`` (what the model expects; RGB for every config here).
    """

    def __init__(self, config_file: str | Path, weights: str | Path, overrides: Sequence[str] = (),
                 device: str | None = None, categories: str | Path | list[dict] | None = None,
                 max_pixels: int | None = MAX_PIXELS):
        config_file = str(config_file)
        self.max_pixels = max_pixels
        if not Path(config_file).is_file():
            raise DetectionInputError(f"config file {config_file} does not exist")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if config_file.endswith((".yaml", ".yml")):
            self.model, augmentations, self.input_format, dataset_names = _from_yacs(config_file, overrides,
                                                                                     self.device)
        else:
            self.model, augmentations, self.input_format, dataset_names = _from_lazy(config_file, overrides,
                                                                                     self.device)
        self.augmentations = T.AugmentationList(augmentations)
        self.model.eval()
        load_initial_weights(self.model, str(weights), detector_only=True)
        self.class_names, self.category_ids = _categories(categories, dataset_names,
                                                          self.model.roi_heads.num_classes)

    def __call__(self, image: str | Path | np.ndarray | list, format: str = "RGB") -> Instances | list[Instances]:
        """Instances (``pred_boxes``, ``scores``, ``pred_classes``, ``pred_masks``) on the CPU, in the coordinates of
        the image as given: a file path, an HxWx3 uint8 array in ``format`` order ("RGB" or "BGR"), or a list of
        them (a list of Instances back)."""
        if isinstance(image, list):
            return [self(item, format) for item in image]
        rgb = as_rgb(image, format, self.max_pixels)  # an ImageError names the file or array
        pixels = rgb[:, :, ::-1] if self.input_format == "BGR" else rgb
        height, width = pixels.shape[:2]
        aug_input = T.AugInput(np.ascontiguousarray(pixels))
        self.augmentations(aug_input)
        tensor = torch.as_tensor(aug_input.image.astype("float32").transpose(2, 0, 1)).to(self.device)
        with torch.no_grad(), frameworks.run_notices_off():
            outputs = self.model([{"image": tensor, "height": height, "width": width}])[0]
        return outputs["instances"].to("cpu")

    @property
    def metadata(self) -> Metadata:
        """What detectron2's ``Visualizer`` reads: the class names."""
        return Metadata(thing_classes=list(self.class_names))


def _from_lazy(config_file: str, overrides: Sequence[str], device: str):
    cfg = load_lazy_config(config_file)
    for override in overrides:
        apply_override(cfg, override, config_file)
    model = instantiate(cfg.model).to(device)
    augmentations = [instantiate(aug) for aug in cfg.dataloader.test.mapper.augmentations]
    names = cfg.dataloader.test.dataset.names
    return model, augmentations, cfg.model.input_format, [names] if isinstance(names, str) else list(names)


def _from_yacs(config_file: str, overrides: Sequence[str], device: str):
    from .yacs_backbone import add_vit_config  # registers build_vitdet_backbone

    cfg = get_cfg()
    add_vit_config(cfg)
    pairs = [part for override in overrides for part in override.split("=", 1)]
    load_yaml(config_file)  # data only: refused here, naming the file, if a tag would run code
    try:  # safe for its _BASE_ files too: by default detectron2 falls back to yaml.unsafe_load
        cfg.merge_from_file(config_file, allow_unsafe=False)
        if any("=" not in override for override in overrides):
            raise ValueError(f"overrides are KEY=VALUE, got {[o for o in overrides if '=' not in o]}")
        cfg.merge_from_list(pairs)
    except yaml.YAMLError as exc:  # in one of its _BASE_ files, read the same way
        mark = getattr(exc, "problem_mark", None)
        raise yaml_error(mark.name if mark is not None else config_file, exc) from None
    except (AssertionError, KeyError, ValueError, TypeError) as exc:  # yacs's errors for a bad key or value
        raise DetectionInputError(f"{config_file}: {exc}".splitlines()[0]) from None
    cfg.MODEL.DEVICE = device
    augmentations = [T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)]
    return build_model(cfg), augmentations, cfg.INPUT.FORMAT, list(cfg.DATASETS.TEST)


def _categories(categories, dataset_names: list[str], num_classes: int) -> tuple[list[str], list[int]]:
    """(class names, category ids) by class index: from ``categories``, else the test set's metadata."""
    if categories is not None:
        where = categories if isinstance(categories, (str, Path)) else "categories"
        if isinstance(categories, (str, Path)):
            try:
                categories = json.loads(Path(categories).read_text())["categories"]
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise DetectionInputError(f"{where}: not a COCO json with 'categories' "
                                          f"({type(exc).__name__}: {exc})") from None
        ordered = sorted(categories, key=lambda c: c["id"])  # detectron2's load_coco_json order
        if len(ordered) != num_classes:
            raise DetectionInputError(f"{where}: {len(ordered)} categories but the model predicts {num_classes} "
                                      "classes")
        return [c["name"] for c in ordered], [c["id"] for c in ordered]
    for name in dataset_names:
        meta = MetadataCatalog.get(name)
        names = meta.get("thing_classes")
        if names and len(names) == num_classes:
            to_id = {index: id_ for id_, index in meta.get("thing_dataset_id_to_contiguous_id", {}).items()}
            return list(names), [to_id.get(i, i) for i in range(num_classes)]
    return [f"class {i}" for i in range(num_classes)], list(range(num_classes))


def overlay_name(path: Path) -> str:
    return path.stem + (".jpg" if path.suffix.lower() in (".jpg", ".jpeg") else ".png")


def ground_truth_image_ids(json_file: str | Path, files: Sequence[Path]) -> list[int] | None:
    """The id of each file's image in a COCO json, matched by file name (the json's ``file_name``, which may hold
    sub-folders, must end the file's path); None when the json lists no images. An input that is not in the json,
    or matches two of its images, is one error."""
    try:
        images = json.loads(Path(json_file).read_text()).get("images") or []
        by_name: dict[str, list[tuple[tuple[str, ...], int]]] = {}
        for image in images:
            parts = Path(image["file_name"]).parts
            by_name.setdefault(parts[-1], []).append((parts, image["id"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise DetectionInputError(f"--categories {json_file}: not a COCO json with images "
                                  f"({type(exc).__name__}: {exc})") from None
    if not images:
        return None
    ids = []
    for path in files:
        parts = Path(os.path.abspath(path)).parts  # symlinks kept: the name given is the name matched
        matches = [(len(name), id_) for name, id_ in by_name.get(path.name, []) if parts[-len(name):] == name]
        longest = [id_ for length, id_ in matches if length == max(matches)[0]] if matches else []
        if len(longest) != 1:
            problem = "matches several of its images" if longest else "is not among its images"
            raise DetectionInputError(f"--input {path}: {problem} (--categories {json_file} names {len(images)} "
                                      "images by file_name); its results would be scored against another image's "
                                      "ground truth: predict the json's images, or give a json that lists only "
                                      "categories")
        ids.append(longest[0])
    return ids


def predict_files(predictor: Predictor, inputs: Iterable[str], out_dir: str | Path,
                  ground_truth: str | Path | None = None) -> list[dict]:
    """Predict every image of ``inputs`` (``runlib.images.expand_inputs``); write an overlay per image and
    ``out_dir/coco_instances_results.json``; returns the results (COCO format plus ``category_name`` and
    ``file_name``). ``image_id``: the image's id in the COCO json ``ground_truth`` (matched by file name), or
    the input's number from 1 when there is no json or it lists no images. A progress bar with the time per
    image goes to stderr."""
    files = expand_inputs(inputs)
    for path in files:  # every header before the first output: a bad or too large image is refused now
        image_info(path, predictor.max_pixels)
    names: dict[str, Path] = {}
    for path in files:
        other = names.setdefault(overlay_name(path), path)
        if other != path:
            raise DetectionInputError(f"--input {other} and {path} would both write the overlay "
                                      f"{overlay_name(path)}: predict them into separate folders")
    image_ids = ground_truth_image_ids(ground_truth, files) if ground_truth else None
    if image_ids is None:
        image_ids = range(1, len(files) + 1)
    out_dir = prepare_run_dir(out_dir, command="detect predict", resume=True, inputs=[*inputs, *files])
    results = []
    progress = tqdm(list(zip(files, image_ids)), desc="detect predict", unit="image", file=sys.stderr)
    for path, image_id in progress:
        start = time.perf_counter()
        rgb = read_rgb(path, predictor.max_pixels)
        instances = predictor(rgb)
        overlay = Visualizer(rgb, metadata=predictor.metadata).draw_instance_predictions(instances).get_image()
        image_format = "JPEG" if overlay_name(path).endswith(".jpg") else "PNG"
        atomic_write(out_dir / overlay_name(path), lambda tmp: Image.fromarray(overlay).save(tmp, format=image_format))
        for result in instances_to_coco_json(instances, image_id):
            index = result["category_id"]
            results.append(dict(result, category_id=predictor.category_ids[index],
                                category_name=predictor.class_names[index], file_name=str(path)))
        progress.set_postfix_str(f"{path.name}: {time.perf_counter() - start:.2f} s")
    atomic_write(out_dir / RESULTS_NAME, lambda tmp: tmp.write_text(json.dumps(results)))
    return results
