"""Image files as every task reads them: one header check, one RGB reader, one input expansion.

- ``image_info``: mode and size from the header alone; the displayed size applies the EXIF orientation, as
  detectron2's ``read_image`` and OpenCV (so mmcv) apply it when they decode. 16-bit and float images are refused:
  8-bit readers clip them to white (PIL, detectron2) or shift them down to 8 bits (OpenCV), so training and
  prediction would see other pixels than the user.
- ``read_rgb``: HxWx3 uint8 RGB, EXIF orientation applied; gray, palette and CMYK images are converted, an alpha
  channel is dropped (as detectron2's and mmcv's loaders drop it, so a prediction sees what training saw).
- ``as_rgb``: what the predictors take: a path (read by ``read_rgb``) or an HxWx3 uint8 array, RGB by default
  (PIL, torchvision, timm, transformers) or BGR (``format="BGR"``: OpenCV's ``cv2.imread``).
- ``expand_inputs``: files, folders (their images, sorted) and glob patterns, each image once.

``max_pixels`` (``MAX_PIXELS`` for the predict commands) refuses an image before it is decoded: the predictors
return full-resolution outputs (a mask per detected instance, a score map per class) whose memory grows with the
image's pixels, so a 81-megapixel photo would ask for tens of GB.
"""
from __future__ import annotations

import glob
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image, ImageOps

from .errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MAX_PIXELS = 50_000_000  # above 8160x6120 (50 MP phone sensors); the predict commands' --max-pixels raises it
FORMATS = ("RGB", "BGR")

EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")  # PIL modes of 16/32-bit single-channel files


class ImageError(UserError):
    """An image file or array that cannot be used as given; the message names the file and the problem."""


@dataclass(frozen=True)
class ImageInfo:
    path: str
    mode: str
    stored_size: tuple[int, int]  # (width, height) as stored in the file
    orientation: int              # EXIF orientation, 1 when the file has none

    @property
    def transposed(self) -> bool:
        """True when the EXIF orientation swaps width and height."""
        return self.orientation in _TRANSPOSING_ORIENTATIONS

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as displayed: after the EXIF orientation."""
        width, height = self.stored_size
        return (height, width) if self.transposed else (width, height)


def image_info(path: str | Path, max_pixels: int | None = None) -> ImageInfo:
    """The header of an image file; one ``ImageError`` naming it for a file that cannot be opened, a 16-bit or
    float image, or (``max_pixels``) one with more pixels than that."""
    try:
        with warnings.catch_warnings():
            if max_pixels is not None:  # the limit below decides, not PIL's warning
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                mode, (width, height) = image.mode, image.size
                too_large = max_pixels is not None and width * height > max_pixels
                orientation = 1 if too_large else _orientation(image)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:  # PIL's errors for a bad file
        raise ImageError(f"image {path}: cannot be read ({type(exc).__name__}: {exc})") from None
    if too_large:
        raise ImageError(f"image {path}: {width}x{height} is {width * height / 1e6:.1f} megapixels, more than the "
                         f"limit of {max_pixels:,} pixels (--max-pixels); downscale it or raise the limit")
    info = ImageInfo(str(path), mode, (width, height), orientation)
    if info.mode in _HIGH_DEPTH_MODES:
        raise ImageError(f"image {path}: {info.mode} pixels (16-bit or float); images are read as 8-bit, convert "
                         "it to 8-bit (scaled to its value range) first")
    return info


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation, from the header: PIL decodes a whole PNG to look for EXIF after the pixels, so a PNG
    counts only the EXIF before them (where writers put it)."""
    if image.format == "PNG" and "exif" not in image.info:
        return 1
    return image.getexif().get(EXIF_ORIENTATION, 1)


def read_rgb(path: str | Path, max_pixels: int | None = None) -> np.ndarray:
    """The image of ``path`` as displayed (EXIF orientation applied), HxWx3 uint8 RGB, after ``image_info``."""
    image_info(path, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # image_info has applied the limit
            with Image.open(path) as image:
                return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    except (OSError, SyntaxError, ValueError) as exc:  # a truncated or corrupt file fails only when decoded
        raise ImageError(f"image {path}: cannot be read ({type(exc).__name__}: {exc})") from None


def as_rgb(image: str | Path | np.ndarray, format: str = "RGB", max_pixels: int | None = None) -> np.ndarray:
    """An image file (``read_rgb``) or an HxWx3 uint8 array in ``format`` order, as an HxWx3 uint8 RGB array."""
    if format not in FORMATS:
        raise ImageError(f"format={format!r}: an array's channel order is 'RGB' or 'BGR'")
    if isinstance(image, (str, Path)):
        return read_rgb(image, max_pixels)
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        described = (f"an array of shape {image.shape} and dtype {image.dtype}" if isinstance(image, np.ndarray)
                     else f"a {type(image).__name__}")
        raise ImageError(f"a predictor takes an image file or an HxWx3 uint8 {format} array, got {described}")
    return np.ascontiguousarray(image[:, :, ::-1]) if format == "BGR" else image


def expand_inputs(inputs: Iterable[str | Path], option: str = "--input") -> list[Path]:
    """Image files of ``inputs``: files, folders (their images, sorted, not recursive) and glob patterns (``**``
    recursive), each once, in order. One ``ImageError`` for an input that names no image."""
    files: dict[Path, None] = {}  # ordered, each once
    for item in map(str, inputs):
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(item, recursive=True)
                           if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise ImageError(f"{option} {item}: no such file, or no image files ({', '.join(IMAGE_SUFFIXES)}) in "
                             "that folder or matching that pattern")
        files.update(dict.fromkeys(found))
    return list(files)
