"""Use a trained detector: ``Predictor`` (Python) and ``mae-transfer detect predict`` (overlays + COCO results).

``Predictor`` follows detectron2's ``DefaultPredictor``: the config's own test resize, the model in eval mode,
one image in, detectron2's ``Instances`` out (in the original image's coordinates). The differences: a
LazyConfig (``configs/detection/*.py``) or a yacs config (``*.yaml``), weights read by the strict reader
(``detection.weights``: no code runs on load), and images as RGB (a file path or an HxWx3 uint8 array in RGB
order, as PIL and matplotlib give them; ``DefaultPredictor`` takes OpenCV's BGR).

    import detection
    predictor = detection.Predictor("configs/detection/mask_rcnn_vit_b_mae.py", "runs/det/model_final.pth")
    instances = predictor("street.jpg")        # or predictor(rgb_array)
    print(instances.pred_boxes, instances.scores, [predictor.class_names[c] for c in instances.pred_classes])

``predict_files`` writes, for each input image, an overlay drawn by detectron2's ``Visualizer`` (same name,
``.jpg`` kept for JPEG inputs, else ``.png``) and one ``coco_instances_results.json``: COCO results (boxes
``[x, y, w, h]``, RLE masks, scores, category ids of the categories' json) with each result's
``category_name`` and ``file_name``.
"""
from __future__ import annotations

import glob
import json
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

from backbone import atomic_write, prepare_run_dir
from backbone.safe_yaml import load_yaml, yaml_error

from .data import DetectionInputError, read_image
from .engine import apply_override, load_lazy_config
from .weights import load_initial_weights

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
RESULTS_NAME = "coco_instances_results.json"  # COCOEvaluator's name for the same format


class Predictor:
    """A trained detector on single RGB images, with the config's test resize.

    Args:
        config_file: a LazyConfig ``.py`` (``configs/detection/*.py``) or a yacs ``.yaml``
            (``configs/detection/yacs_mask_rcnn_vit_b.yaml``).
        weights: the detector (``model_final.pth``, a ViTDet model-zoo ``.pkl``), read without running code.
        overrides: ``key=value`` strings: LazyConfig keys (``model.roi_heads.box_predictor.test_score_thresh=0.5``)
            or yacs keys (``MODEL.ROI_HEADS.SCORE_THRESH_TEST=0.5``).
        device: "cuda", "cpu", ...; default CUDA when available.
        categories: a COCO json (or its ``categories`` list) naming the classes; default: the config's test set
            (COCO's 80 for the recipes), else ``class 0``, ``class 1``, ... with the class index as id.

    Attributes: ``model``, ``class_names``, ``category_ids`` (the json's id of each class index),
    ``augmentations`` (the test resize), ``input_format`` (what the model expects; RGB for every config here).
    """

    def __init__(self, config_file: str | Path, weights: str | Path, overrides: Sequence[str] = (),
                 device: str | None = None, categories: str | Path | list[dict] | None = None):
        config_file = str(config_file)
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

    def __call__(self, image: str | Path | np.ndarray) -> Instances:
        """Instances (``pred_boxes``, ``scores``, ``pred_classes``, ``pred_masks``) of one image, on the CPU, in
        the coordinates of the image as given: a file path or an HxWx3 uint8 RGB array."""
        rgb = read_image(str(image), "RGB") if isinstance(image, (str, Path)) else _checked_array(image)
        pixels = rgb[:, :, ::-1] if self.input_format == "BGR" else rgb
        height, width = pixels.shape[:2]
        aug_input = T.AugInput(np.ascontiguousarray(pixels))
        self.augmentations(aug_input)
        tensor = torch.as_tensor(aug_input.image.astype("float32").transpose(2, 0, 1)).to(self.device)
        with torch.no_grad():
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


def _checked_array(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        described = (f"an array of shape {image.shape} and dtype {image.dtype}" if isinstance(image, np.ndarray)
                     else f"a {type(image).__name__}")
        raise DetectionInputError(f"Predictor takes an image file or an HxWx3 uint8 RGB array, got {described}")
    return image


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Image files of ``inputs``: files, folders (their images, sorted) and glob patterns, each once."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(item, recursive=True)
                           if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DetectionInputError(f"--input {item}: no such file, or no image files ({', '.join(IMAGE_SUFFIXES)}) "
                                      "in that folder or matching that pattern")
        files += [p for p in found if p not in files]
    return files


def overlay_name(path: Path) -> str:
    return path.stem + (".jpg" if path.suffix.lower() in (".jpg", ".jpeg") else ".png")


def predict_files(predictor: Predictor, inputs: Iterable[str], out_dir: str | Path) -> list[dict]:
    """Predict every image of ``inputs`` (see ``expand_inputs``); write an overlay per image and
    ``out_dir/coco_instances_results.json``; returns the results (COCO format, ``image_id`` = input number
    from 1, plus ``category_name`` and ``file_name``)."""
    files = expand_inputs(inputs)
    names: dict[str, Path] = {}
    for path in files:
        other = names.setdefault(overlay_name(path), path)
        if other != path:
            raise DetectionInputError(f"--input {other} and {path} would both write the overlay "
                                      f"{overlay_name(path)}: predict them into separate folders")
    out_dir = prepare_run_dir(out_dir, command="detect predict", resume=True, inputs=[*inputs, *files])
    results = []
    for image_id, path in enumerate(files, start=1):
        rgb = read_image(str(path), "RGB")
        instances = predictor(rgb)
        overlay = Visualizer(rgb, metadata=predictor.metadata).draw_instance_predictions(instances).get_image()
        image_format = "JPEG" if overlay_name(path).endswith(".jpg") else "PNG"
        atomic_write(out_dir / overlay_name(path), lambda tmp: Image.fromarray(overlay).save(tmp, format=image_format))
        for result in instances_to_coco_json(instances, image_id):
            index = result["category_id"]
            results.append(dict(result, category_id=predictor.category_ids[index],
                                category_name=predictor.class_names[index], file_name=str(path)))
    atomic_write(out_dir / RESULTS_NAME, lambda tmp: tmp.write_text(json.dumps(results)))
    return results
