"""The project's own small dataset world: one seeded scene generator, four datasets.

No data set can be downloaded, so pretraining, the supervised baseline, detection and
segmentation all run on scenes made here: textured objects of ``THING_CLASSES`` (told apart
by shape *and* colour/texture family, with jitter so neither alone is enough) on
backgrounds split into regions of ``STUFF_CLASSES`` (recoloured scikit-image texture
photos, photo clutter and procedural noise/gradients). Objects never overlap, so a COCO
polygon is exactly the visible mask.

Layout of ``generate(OUT)``::

    OUT/pretrain/<thing class>/000000.png ...            one centred object per image (the IN-1K analogue)
    OUT/classify/{train,val}/<thing class>/0000.png ...  one centred object per image
    OUT/coco/{train,val,test}/000001.png ...             instance segmentation images
    OUT/coco/annotations/instances_{train,val,test}.json
    OUT/ade/ADEChallengeData2016/images/{training,validation,test}/ADE_{train,val,test}_00000001.jpg
    OUT/ade/ADEChallengeData2016/annotations/{training,validation,test}/ADE_..._00000001.png
    OUT/manifest.json

The ``test`` scene split (``num_coco_test`` / ``num_ade_test``, none by default) is a draw of its own, separate from
``val``, with labels: a recipe chosen on ``val`` is reported on it (``mae-transfer grid --recipe-search``).

The pretraining set is object-centric and labelled, as ImageNet is: MAE reads its images only (the official
code reads ImageNet through ``ImageFolder`` and drops the labels), the supervised baseline trains on the same
images with their labels. Image i shows class ``THING_CLASSES[i % 6]``, so the classes are balanced. The
``classify`` folders are a separate draw of the same kind (``classify/val`` is the held-out set; the
``classify/train`` count may be 0).

ADE ``training``/``validation``/``test`` image i is the same scene as COCO ``train``/``val``/``test`` image i
(for i below both counts), like COCO-Stuff: thing pixels of label k lie inside COCO masks of
category k. Label PNGs: 0 = ignore, k = ``SEMANTIC_CLASSES[k-1]``; things come first, so a
thing's semantic label equals its COCO category id. Only genuinely mixed pixels are 0:
those on an object's anti-aliased border that neither object nor background covers by 3/4.
"""
from __future__ import annotations

import argparse
import colorsys
import json
import multiprocessing
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, fields
from functools import lru_cache, partial
from pathlib import Path

import cv2
import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from runlib import UserError, run_command
from runlib import command_line as grammar
from runlib.output_dir import MARKER, check_output_dir, made_by, write_marker
from skimage import data as skdata

THING_CLASSES: tuple[str, ...] = ("disc", "square", "triangle", "star", "ring", "cross")
STUFF_CLASSES: tuple[str, ...] = ("brick", "grass", "gravel", "sky", "water", "clutter")
SEMANTIC_CLASSES: tuple[str, ...] = THING_CLASSES + STUFF_CLASSES

# Bump when the drawing changes, so old folders are not mistaken for current ones.
FORMAT_VERSION = 2  # 2: the pretraining images are labelled, one centred object each

# Per thing class: base hue (degrees) and preferred surface pattern. Hue jitter (neighbours
# overlap) and a 40 % chance of another pattern make colour and texture suggestive, not decisive.
_THING_LOOK = {"disc": (30, "shaded"), "square": (210, "checker"), "triangle": (120, "stripes"),
               "star": (340, "smooth"), "ring": (280, "speckle"), "cross": (60, "dots")}
_PATTERNS = ("shaded", "checker", "stripes", "smooth", "speckle", "dots")
# Per stuff class: source (skimage photo or procedural), hue, saturation range.
_STUFF_LOOK = {"brick": ("brick", 15, (0.35, 0.7)), "grass": ("grass", 100, (0.3, 0.6)),
               "gravel": ("gravel", 35, (0.0, 0.2)), "sky": ("gradient", 210, (0.2, 0.45)),
               "water": ("ripples", 190, (0.4, 0.7)), "clutter": ("photo", 0, (0.0, 0.0))}
_CLUTTER_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")  # all ship inside skimage
_STREAMS = {"pretrain": 1, "train": 2, "val": 3, "classify_train": 4, "classify_val": 5, "test": 6}


def _hsv(hue: float, sat: float, val: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((hue / 360) % 1, sat, val), np.float32) * 255


SEMANTIC_PALETTE: tuple[tuple[int, int, int], ...] = tuple(
    tuple(int(c) for c in _hsv(h, 0.85, 0.95)) for h, _ in _THING_LOOK.values()) + (
    (150, 60, 40), (60, 140, 50), (140, 130, 115), (150, 190, 235), (30, 110, 140), (90, 90, 90))


@dataclass(frozen=True)
class SyntheticSpec:
    seed: int = 0
    image_size: int = 128
    num_pretrain: int = 256  # in all, balanced over the classes
    num_classify_train: int = 32  # per class (may be 0)
    num_classify_val: int = 8  # per class
    classify_image_size: int = 64
    num_coco_train: int = 64
    num_coco_val: int = 16
    num_ade_train: int = 64
    num_ade_val: int = 16
    max_objects: int = 4
    num_coco_test: int = 0
    num_ade_test: int = 0

    def __post_init__(self):
        minimum = {"seed": 0, "image_size": 32, "classify_image_size": 32, "num_classify_train": 0,
                   "num_coco_test": 0, "num_ade_test": 0}
        for f in fields(self):
            value, lowest = getattr(self, f.name), minimum.get(f.name, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
                raise ValueError(f"SyntheticSpec.{f.name} must be an int >= {lowest}, got {value!r}")


# ----------------------------------------------------------------------------- drawing

@lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray:
    return getattr(skdata, name)().astype(np.float32)


@lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size].astype(np.float32) + 0.5
    yy.flags.writeable = xx.flags.writeable = False
    return yy, xx


def _warped_crop(rng, src: np.ndarray, size: int) -> np.ndarray:
    """A randomly rotated, scaled, positioned window of a photo (reflected at its edges)."""
    angle, scale = rng.uniform(0, 2 * np.pi), rng.uniform(0.7, 1.6)  # source pixels per pixel
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = rng.uniform(0, 1, 2) * (src.shape[1], src.shape[0])
    matrix = np.hstack([rot, (centre - rot @ (size / 2, size / 2))[:, None]]).astype(np.float32)
    return cv2.warpAffine(src, matrix, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)


def _normalised(field: np.ndarray) -> np.ndarray:
    # Contrast-normalise so every source gives the same [0, 1] range to colour.
    return np.clip(0.5 + (field - field.mean()) / (4 * field.std() + 1e-6), 0, 1)


def _fractal_noise(rng, size: int, octaves: int = 4, base: int = 3) -> np.ndarray:
    out = np.zeros((size, size), np.float32)
    for k in range(octaves):
        cells = rng.random((base * 2 ** k + 1,) * 2, dtype=np.float32)
        out += cv2.resize(cells, (size, size), interpolation=cv2.INTER_CUBIC) / 2 ** k
    return _normalised(out)


def _colourise(t: np.ndarray, light: np.ndarray, dark: np.ndarray) -> np.ndarray:
    return dark + t[..., None] * (light - dark)


def _stuff_texture(rng, name: str, size: int) -> np.ndarray:
    source, hue, (sat_lo, sat_hi) = _STUFF_LOOK[name]
    if source == "photo":
        photo = _photo(_CLUTTER_PHOTOS[rng.integers(len(_CLUTTER_PHOTOS))])
        return _warped_crop(rng, photo, size) * rng.uniform(0.7, 1.2)
    yy, xx = _grid(size)
    if source == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        t = (np.cos(angle) * xx + np.sin(angle) * yy) / size + 0.15 * _fractal_noise(rng, size)
    elif source == "ripples":
        t = 0.5 + 0.5 * np.sin(rng.uniform(10, 20) * _fractal_noise(rng, size))
    else:
        t = _warped_crop(rng, _photo(source), size)
    hue, sat = hue + rng.normal(0, 10), rng.uniform(sat_lo, sat_hi)
    val = rng.uniform(0.7, 0.95)
    return _colourise(_normalised(t), _hsv(hue, sat, val), _hsv(hue, sat, val * rng.uniform(0.3, 0.5)))


def _background(rng, size: int) -> tuple[np.ndarray, np.ndarray]:
    """1-3 stuff regions: nearest-seed cells whose borders are bent by low-frequency noise."""
    count = rng.choice(3, p=(0.3, 0.45, 0.25)) + 1
    kinds = rng.choice(len(STUFF_CLASSES), count, replace=False)
    yy, xx = _grid(size)
    seeds = rng.uniform(0, size, (count, 2))
    dist = [np.hypot(xx - sx, yy - sy) + size * 0.4 * _fractal_noise(rng, size, octaves=2)
            for sx, sy in seeds]
    region = np.argmin(dist, axis=0)
    image = np.zeros((size, size, 3), np.float32)
    label = np.zeros((size, size), np.uint8)
    for j, kind in enumerate(kinds):
        inside = region == j
        image[inside] = _stuff_texture(rng, STUFF_CLASSES[kind], size)[inside]
        label[inside] = len(THING_CLASSES) + kind + 1
    return image, label


@lru_cache(maxsize=None)
def _unit_outline(name: str) -> np.ndarray:
    """Vertices (x, y) of a class shape with circumradius 1 around the origin."""
    def polar(radii, degrees):
        rad = np.deg2rad(degrees)
        return np.stack([radii * np.cos(rad), radii * np.sin(rad)], 1)
    circle = np.arange(0, 360, 9.0)
    if name == "disc":
        return polar(1.0, circle)
    if name == "ring":  # keyhole polygon: outer loop, bridge, inner loop reversed -> a hole
        return np.concatenate([polar(1.0, np.append(circle, 0)), polar(0.55, np.append(-circle, 0))])
    if name == "square":
        return polar(1.0, np.arange(45, 360, 90))
    if name == "triangle":
        return polar(1.0, np.arange(-90, 270, 120))
    if name == "star":
        return polar(np.tile([1.0, 0.45], 5), np.arange(-90, 270, 36))
    w = 0.32  # cross: half-width of the arms
    quarter = np.array([[w, 1], [w, w], [1, w]])
    turns = [np.array([[c, s], [-s, c]]) for c, s in ((1, 0), (0, -1), (-1, 0), (0, 1))]
    return np.concatenate([quarter @ turn for turn in turns]) / np.hypot(1, w)


def _place(rng, size: int, count: int, centred: bool) -> list[tuple[float, float, float]]:
    """Non-overlapping circles (cx, cy, r), each fully inside the image; may place fewer."""
    if centred:
        r = rng.uniform(0.25, 0.4) * size
        return [tuple(size / 2 + rng.uniform(-0.05, 0.05, 2) * size) + (r,)]
    placed = []
    for _ in range(count * 30):
        r = rng.uniform(max(0.08 * size, 5.0), 0.2 * size)
        cx, cy = rng.uniform(r + 1, size - r - 1, 2)
        if all(np.hypot(cx - x, cy - y) > r + q + 2 for x, y, q in placed):
            placed.append((cx, cy, r))
            if len(placed) == count:
                break
    return placed


def _object_pattern(rng, style: str, size: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Surface pattern in [0, 1]; u, v are object-frame coordinates in circumradii."""
    period = rng.uniform(0.3, 0.55)
    if style == "shaded":
        return np.clip(1.1 - np.hypot(u + 0.35, v + 0.35) / 1.5, 0, 1)
    if style == "checker":
        return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    if style == "stripes":
        return 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    if style == "smooth":
        return np.clip(0.5 + 0.5 * u, 0, 1)
    if style == "dots":
        return (np.cos(2 * np.pi * u / period) * np.cos(2 * np.pi * v / period) > 0.3).astype(np.float32)
    return _normalised(_warped_crop(rng, _photo("gravel"), size))


def _rasterise(polygon: np.ndarray, size: int, scale: int = 1) -> np.ndarray:
    # pycocotools is the rasteriser, so label PNGs and annToMask agree pixel for pixel.
    rle = mask_utils.frPyObjects([(polygon * scale).ravel().tolist()], size * scale, size * scale)
    return mask_utils.decode(rle)[..., 0]


def _draw_object(rng, image, label, mixed, thing: int, circle) -> dict:
    size = image.shape[0]
    cx, cy, r = circle
    angle, aspect = rng.uniform(0, 2 * np.pi), rng.uniform(0.8, 1.0)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    outline = _unit_outline(THING_CLASSES[thing]) * (r, r * aspect)
    polygon = np.round(outline @ rot.T + (cx, cy), 2)
    mask = _rasterise(polygon, size)
    # Anti-aliasing: blend by the pixel area the shape covers (4x4 supersampling).
    cover = cv2.resize(_rasterise(polygon, size, 4).astype(np.float32), (size, size),
                       interpolation=cv2.INTER_AREA)
    yy, xx = _grid(size)
    u = (np.cos(angle) * (xx - cx) + np.sin(angle) * (yy - cy)) / r
    v = (-np.sin(angle) * (xx - cx) + np.cos(angle) * (yy - cy)) / r
    hue, style = _THING_LOOK[THING_CLASSES[thing]]
    if rng.random() < 0.4:
        style = _PATTERNS[rng.integers(len(_PATTERNS))]
    hue, sat, val = hue + np.clip(rng.normal(0, 30), -60, 60), rng.uniform(0.45, 0.95), rng.uniform(0.7, 1)
    colour = _colourise(_object_pattern(rng, style, size, u, v), _hsv(hue, sat, val),
                        _hsv(hue, sat, val * rng.uniform(0.35, 0.6)))
    image += cover[..., None] * (colour - image)
    label[mask > 0] = thing + 1
    mixed |= (cover > 0.25) & (cover < 0.75)
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"category_id": thing + 1, "segmentation": [polygon.ravel().tolist()],
            "area": int(mask.sum()), "bbox": mask_utils.toBbox(rle).tolist(), "iscrowd": 0}


def _render_scene(rng, size: int, max_objects: int, thing: int | None = None):
    """One scene -> (RGB uint8 image, semantic label uint8, COCO annotations without ids).

    With ``thing`` given: a single centred object of that class (classification images).
    """
    image, label = _background(rng, size)
    mixed = np.zeros_like(label, bool)
    centred, annotations = thing is not None, []
    for circle in _place(rng, size, 1 if centred else rng.integers(1, max_objects + 1), centred):
        kind = thing if centred else int(rng.integers(len(THING_CLASSES)))
        annotations.append(_draw_object(rng, image, label, mixed, kind, circle))
    label[mixed] = 0
    # Uneven lighting and sensor noise, so flat colour statistics are not enough.
    image *= (0.8 + 0.4 * _fractal_noise(rng, size, octaves=1, base=1))[..., None]
    image += rng.normal(0, 3, image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8), label, annotations


# ----------------------------------------------------------------------------- writing

def _rng(spec: SyntheticSpec, stream: str, index: int, thing: int = 0):
    # Every image has its own generator: outputs do not depend on order or on other counts.
    return np.random.default_rng([spec.seed, _STREAMS[stream], thing, index])


def _save(array: np.ndarray, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **({"quality": 90} if path.suffix == ".jpg" else {}))


def _write_classify(root: Path, spec: SyntheticSpec) -> dict:
    counts = {}
    for split, per_class in (("train", spec.num_classify_train), ("val", spec.num_classify_val)):
        for thing, name in enumerate(THING_CLASSES):
            for i in range(per_class):
                rng = _rng(spec, f"classify_{split}", i, thing)
                image, _, _ = _render_scene(rng, spec.classify_image_size, 1, thing=thing)
                _save(image, root / "classify" / split / name / f"{i:04d}.png")
        counts[f"classify_{split}"] = per_class * len(THING_CLASSES)
    return counts


def _write_scenes(root: Path, spec: SyntheticSpec, split: str, num_coco: int, num_ade: int) -> dict:
    ade_split, ade_tag = {"train": ("training", "train"), "val": ("validation", "val"), "test": ("test", "test")}[split]
    ade = root / "ade" / "ADEChallengeData2016"
    images, annotations = [], []
    for i in range(max(num_coco, num_ade)):
        image, label, objects = _render_scene(_rng(spec, split, i), spec.image_size, spec.max_objects)
        if i < num_coco:
            images.append({"id": i + 1, "file_name": f"{i + 1:06d}.png",
                           "height": spec.image_size, "width": spec.image_size})
            annotations += [{"id": len(annotations) + k, "image_id": i + 1, **a}
                            for k, a in enumerate(objects, start=1)]
            _save(image, root / "coco" / split / images[-1]["file_name"])
        if i < num_ade:
            stem = f"ADE_{ade_tag}_{i + 1:08d}"
            _save(image, ade / "images" / ade_split / f"{stem}.jpg")
            _save(label, ade / "annotations" / ade_split / f"{stem}.png")
    categories = [{"id": k + 1, "name": n, "supercategory": "shape"} for k, n in enumerate(THING_CLASSES)]
    coco = {"info": {"description": f"mae_transfer synthetic {split}", "version": FORMAT_VERSION},
            "images": images, "annotations": annotations, "categories": categories}
    json_path = root / "coco" / "annotations" / f"instances_{split}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(coco))
    return {f"coco_{split}_images": num_coco, f"coco_{split}_instances": len(annotations),
            f"ade_{ade_split}": num_ade}


_LAYOUT = {"pretrain": "pretrain", "classify_train": "classify/train", "classify_val": "classify/val",
           "coco_train_images": "coco/train", "coco_val_images": "coco/val",
           "coco_train_json": "coco/annotations/instances_train.json",
           "coco_val_json": "coco/annotations/instances_val.json",
           "ade_root": "ade/ADEChallengeData2016", "manifest": "manifest.json"}
_TEST_LAYOUT = {"coco_test_images": "coco/test", "coco_test_json": "coco/annotations/instances_test.json"}


def _has_test(spec: SyntheticSpec) -> bool:
    return spec.num_coco_test > 0 or spec.num_ade_test > 0


def _layout(spec: SyntheticSpec) -> dict[str, str]:
    return {**_LAYOUT, **(_TEST_LAYOUT if _has_test(spec) else {})}


def _spec_record(spec: SyntheticSpec) -> dict:
    """The spec as the manifest keeps it: without the test counts when there is no test split, so that a folder
    generated without one is the same generation for a spec that asks for none."""
    record = asdict(spec)
    if not _has_test(spec):
        del record["num_coco_test"], record["num_ade_test"]
    return record


def _write_pretrain(root: Path, spec: SyntheticSpec, indices: range) -> None:
    for i in indices:
        thing = i % len(THING_CLASSES)
        image, _, _ = _render_scene(_rng(spec, "pretrain", i, thing), spec.image_size, 1, thing=thing)
        _save(image, root / "pretrain" / THING_CLASSES[thing] / f"{i:06d}.png")


def _write_all(root: Path, spec: SyntheticSpec, workers: int = 1) -> None:
    workers = max(1, min(workers, spec.num_pretrain // 256))  # a process pays off from a few hundred images
    if workers == 1:
        _write_pretrain(root, spec, range(spec.num_pretrain))
    else:  # every image has its own generator, so any split draws the same images
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(partial(_write_pretrain, root, spec),
                          [range(k, spec.num_pretrain, workers) for k in range(workers)]))
    counts = {"pretrain": spec.num_pretrain, **_write_classify(root, spec),
              **_write_scenes(root, spec, "train", spec.num_coco_train, spec.num_ade_train),
              **_write_scenes(root, spec, "val", spec.num_coco_val, spec.num_ade_val)}
    if _has_test(spec):
        counts.update(_write_scenes(root, spec, "test", spec.num_coco_test, spec.num_ade_test))
    manifest = {"format_version": FORMAT_VERSION, "seed": spec.seed, "spec": _spec_record(spec),
                "counts": counts, "thing_classes": THING_CLASSES, "stuff_classes": STUFF_CLASSES,
                "semantic_classes": SEMANTIC_CLASSES, "semantic_palette": SEMANTIC_PALETTE,
                "ignore_label": 0, "paths": _layout(spec)}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1))


COMMAND = "generate-data"  # the output folder's marker (runlib.output_dir): only a folder it marked is replaced


def _read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def generate(out_dir, spec: SyntheticSpec = SyntheticSpec(), *, overwrite: bool = False,
             workers: int = 1) -> dict[str, Path]:
    """Write all four datasets under ``out_dir`` (layout in the module docstring); the pretraining images in
    ``workers`` processes (the same images for any number).

    A folder that already holds this exact generation is reused as is. Anything else
    non-empty raises ``UserError``, unless ``overwrite`` and it is another generation
    (a folder this function marked as its own); a foreign folder is never deleted.
    """
    if not isinstance(spec, SyntheticSpec):
        raise TypeError(f"spec must be a SyntheticSpec, got {type(spec).__name__}")
    out = Path(out_dir).absolute()
    paths = {key: out / rel for key, rel in _layout(spec).items()}
    if check_output_dir(out, COMMAND):  # a foreign folder (one without this command's marker) is refused
        if not made_by(out, COMMAND):
            raise UserError(f"output folder {out} was not written by mae-transfer {COMMAND}; it is never replaced, "
                            "even with overwrite=True")
        manifest = _read_manifest(out)
        if manifest and manifest.get("format_version") == FORMAT_VERSION and manifest.get("spec") == _spec_record(spec):
            return paths
        if not overwrite:
            raise UserError(f"{out} already holds a different synthetic generation; pass overwrite=True "
                            "(--overwrite) to replace it")
    # Build in a hidden sibling and rename at the end: a killed run never looks complete. The sibling carries a
    # marker from its first moment, so that only a folder this function made is ever deleted as a leftover.
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists() or tmp.is_symlink():
        if not made_by(tmp, COMMAND):
            raise UserError(f"{tmp} exists and is not a leftover of an interrupted generation (it has no "
                            f"{MARKER} of {COMMAND}); it is never deleted: move it away")
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write_marker(tmp, COMMAND)
    try:
        _write_all(tmp, spec, workers)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"mae-transfer {COMMAND}",
                                     description="Write the generated data sets (pretrain, classify, COCO, ADE20K) "
                                                 "of one seeded scene generator into --out.",
                                     usage=f"mae-transfer {COMMAND} --out DIR [--overwrite] [--seed N] "
                                           "[--image-size N] [--num-pretrain N] [...]",
                                     epilog=grammar.aliases_line("the folder as positional argument for --out"))
    parser.add_argument("--out", type=Path, metavar="DIR", help="output folder (alias: the positional OUT)")
    grammar.add_positional_alias(parser, "out", "OUT", "--out", type=Path)
    for f in fields(SyntheticSpec):
        parser.add_argument("--" + f.name.replace("_", "-"), type=int, default=f.default, metavar="N",
                            help="(default %(default)s)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a different generation in --out (only a folder this command made)")
    args = parser.parse_args(argv)
    grammar.take_positional(parser, args, "out", "--out")
    start = time.perf_counter()
    try:
        spec = SyntheticSpec(**{f.name: getattr(args, f.name) for f in fields(SyntheticSpec)})
    except ValueError as error:
        parser.error(str(error))

    def body():
        paths = generate(args.out, spec, overwrite=args.overwrite)
        manifest = json.loads(paths["manifest"].read_text())
        print(f"synthetic data in {args.out} ({time.perf_counter() - start:.1f} s, seed {spec.seed})")
        print("  semantic classes: " + ", ".join(f"{k + 1}={n}" for k, n in enumerate(SEMANTIC_CLASSES)))
        for key, count in manifest["counts"].items():
            print(f"  {key:22s} {count}")
        for key, path in paths.items():
            print(f"  {key:22s} {path}")
    return run_command(COMMAND, body)


if __name__ == "__main__":
    sys.exit(main())
