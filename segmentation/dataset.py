"""The ADE20K folder layout with any class list, and input checks that name the file at fault.

``ADEFormatDataset`` reads ``ADEChallengeData2016/images/{training,validation}/*.jpg`` with label maps
``annotations/.../*.png`` (0 = ignore, k = class k-1: ``reduce_zero_label``), exactly as mmseg's
``ADE20KDataset``, whose 150 classes are the default. Other class lists (``metainfo=dict(classes=...,
palette=...)``) name the label values 1..C directly; mmseg's datasets instead require new classes to be a
subset of their own.

Bad input is one ``SegDataError`` naming the file and the problem, not an assertion or a CUDA index error
thousands of iterations later:
- a missing data root or image/annotation folder, a folder without images, an image without a label map:
  when the dataset is built;
- an unreadable image or label file, a 16-bit image, a label map whose size differs from its image's, label
  values outside the classes: by ``check_files()`` over the whole set, which ``segmentation.train`` / ``test``
  run before the run starts, and again when a sample is loaded (``CheckSegSample`` runs right after
  ``LoadAnnotations``; the dataset inserts it, so mmseg's ADE20K pipelines are used unchanged).

The dataset's ``reduce_zero_label`` is the one setting: mmseg's ``LoadAnnotations`` takes it from the dataset, and
a ``LoadAnnotations(reduce_zero_label=...)`` in the pipeline (mmseg's ADE20K configs have one) is built without
it when it agrees (mmseg deprecates the argument and warns on it) and is a ``SegDataError`` when it does not.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from mmcv.transforms import BaseTransform
from mmengine.logging import print_log
from PIL import Image
from mmseg.registry import DATASETS, TRANSFORMS

from runlib import UserError
from runlib.images import ImageError, image_info

from . import mmcv_ops_stub

with mmcv_ops_stub.installed():  # mmseg.datasets imports mmseg.utils, which imports mmcv.ops (point_sample)
    from mmseg.datasets import ADE20KDataset, BaseSegDataset
    from mmseg.datasets.transforms import LoadAnnotations

LAYOUT = "images/{training,validation}/*.jpg and annotations/{training,validation}/*.png"


class SegDataError(UserError):
    """A segmentation data set that cannot be used as given; the message names the file and the problem."""


@TRANSFORMS.register_module()
class CheckSegSample(BaseTransform):
    """Fail on a label map that does not fit its image or its classes (after ``LoadAnnotations``).

    Args:
        num_classes: C; labels must be 0..C-1 or ``ignore_index`` after ``reduce_zero_label``.
        ignore_index: the ignored label value (255 in mmseg).
    """

    def __init__(self, num_classes: int, ignore_index: int = 255):
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        label, label_path = results["gt_seg_map"], results.get("seg_map_path")
        image_hw = tuple(results["ori_shape"])  # as read: test pipelines resize the image before this
        if label.ndim != 2:
            raise SegDataError(f"{label_path}: a label map must have one channel, got an array of shape "
                               f"{label.shape}")
        if image_hw != label.shape:
            raise SegDataError(f"{results.get('img_path')} is {image_hw[0]}x{image_hw[1]} (HxW) but its "
                               f"label map {label_path} is {label.shape[0]}x{label.shape[1]}")
        reduced = results.get("reduce_zero_label", False)
        present = label_values(label)
        if reduced:  # LoadAnnotations made file values 0 and 255 the ignore index, and k into k - 1
            present = np.where(present == self.ignore_index, 0, present + 1)
        check_label_values(present, label_path, self.num_classes, self.ignore_index, reduced)
        return results


def label_values(label: np.ndarray) -> np.ndarray:
    """The distinct values of a label map, sorted."""
    return np.flatnonzero(np.bincount(label.ravel())) if label.dtype.kind == "u" else np.unique(label)


def check_label_values(present: np.ndarray, label_path, num_classes: int, ignore_index: int,
                       reduce_zero_label: bool) -> None:
    """One ``SegDataError`` naming the file if the values ``present`` in a label map, as written in its PNG, are
    outside the classes: 1..C and 0 or 255 (ignored) with ``reduce_zero_label``, else 0..C-1 and
    ``ignore_index``."""
    if reduce_zero_label:
        bad = present[(present > num_classes) & (present != 255)]
        allowed = f"1..{num_classes}, and 0 or 255 to ignore"
    else:
        bad = present[(present >= num_classes) & (present != ignore_index)]
        allowed = f"0..{num_classes - 1} and {ignore_index} (ignore)"
    if bad.size:
        raise SegDataError(f"{label_path}: label values {bad.tolist()} are outside the {num_classes} classes "
                           f"(allowed: {allowed})")


def _dataset_decides_zero_label(transform, reduce_zero_label: bool):
    """A pipeline entry, a ``LoadAnnotations`` config without the ``reduce_zero_label`` the dataset holds."""
    if not isinstance(transform, dict) or transform.get("type") not in ("LoadAnnotations", LoadAnnotations) \
            or transform.get("reduce_zero_label") is None:
        return transform
    if transform["reduce_zero_label"] != reduce_zero_label:
        raise SegDataError(f"LoadAnnotations(reduce_zero_label={transform['reduce_zero_label']}) in a pipeline of "
                           f"a dataset with reduce_zero_label={reduce_zero_label}: set it on the dataset only")
    return {k: v for k, v in transform.items() if k != "reduce_zero_label"}


@DATASETS.register_module()
class ADEFormatDataset(BaseSegDataset):
    """ADE20K-layout data: mmseg's ``ADE20KDataset`` with any class list and checked inputs.

    Args:
        metainfo: ``dict(classes=..., palette=...)`` for a set other than ADE20K's 150 classes; label value k
            in the PNGs is ``classes[k - 1]`` (a missing palette is generated).
        **kwargs: as ``BaseSegDataset`` (``data_root``, ``data_prefix``, ``pipeline``, ``test_mode``, ...).
    """

    METAINFO = ADE20KDataset.METAINFO

    def __init__(self, img_suffix: str = ".jpg", seg_map_suffix: str = ".png", reduce_zero_label: bool = True,
                 metainfo: dict | None = None, **kwargs):
        if metainfo and "classes" in metainfo and "palette" not in metainfo:
            metainfo = {**metainfo, "palette": []}  # not ADE's 150 colours
        if "pipeline" in kwargs:
            kwargs["pipeline"] = [_dataset_decides_zero_label(t, reduce_zero_label) for t in kwargs["pipeline"]]
        super().__init__(img_suffix=img_suffix, seg_map_suffix=seg_map_suffix,
                         reduce_zero_label=reduce_zero_label, metainfo=metainfo, **kwargs)
        transforms = self.pipeline.transforms
        loads = [i for i, t in enumerate(transforms) if isinstance(t, LoadAnnotations)]
        if loads:
            transforms.insert(loads[-1] + 1, CheckSegSample(len(self.metainfo["classes"]), self.ignore_index))

    @classmethod
    def get_label_map(cls, new_classes=None) -> None:
        """No remapping: the class list names the label values as they are."""
        return None

    def load_data_list(self) -> list[dict]:
        folders = {"image": self.data_prefix.get("img_path"), "annotation": self.data_prefix.get("seg_map_path")}
        for kind, folder in folders.items():
            if folder and not os.path.isdir(folder):
                raise SegDataError(f"{folder}: no such {kind} folder (data root {self.data_root!r}; an ADE20K-"
                                   f"format root such as ADEChallengeData2016 holds {LAYOUT})")
        data_list = super().load_data_list()
        if not data_list:
            raise SegDataError(f"{folders['image']}: no *{self.img_suffix} images")
        unlabelled = [d["seg_map_path"] for d in data_list if "seg_map_path" in d
                      and not os.path.isfile(d["seg_map_path"])]
        if unlabelled:
            raise SegDataError(f"{len(unlabelled)} of {len(data_list)} images have no label map, e.g. no "
                               f"{unlabelled[0]}")
        return data_list

    def check_files(self, workers: int = 8) -> None:
        """Open every image (its header) and every label map of the set before a run uses them: one
        ``SegDataError`` naming the first file that cannot be read, is 16-bit or float (mmcv's 8-bit decoding
        would change its values), differs in size from its image or has values outside the classes."""
        num_classes = len(self.metainfo["classes"])

        def check(info: dict) -> None:
            image_path, label_path = info["img_path"], info.get("seg_map_path")
            try:
                width, height = image_info(image_path).size  # as mmcv decodes it: EXIF orientation applied
            except ImageError as exc:
                problem = str(exc).removeprefix(f"image {image_path}: ")
                raise SegDataError(f"{image_path} (label map {label_path}): {problem}") from None
            image_hw = (height, width)
            try:
                with Image.open(label_path) as label_image:
                    label = np.asarray(label_image)
            except Exception as exc:  # decoders raise many types; name the file with the cause
                raise SegDataError(f"{image_path} (label map {label_path}): cannot be loaded: "
                                   f"{type(exc).__name__}: {exc}") from None
            if label.ndim != 2:
                raise SegDataError(f"{label_path}: a label map must have one channel, got an array of shape "
                                   f"{label.shape}")
            if label.shape != image_hw:
                raise SegDataError(f"{image_path} is {image_hw[0]}x{image_hw[1]} (HxW) but its label map "
                                   f"{label_path} is {label.shape[0]}x{label.shape[1]}")
            check_label_values(label_values(label), label_path, num_classes, self.ignore_index,
                               self.reduce_zero_label)

        infos = (self.get_data_info(i) for i in range(len(self)))  # data_list is empty once serialised
        samples = [info for info in infos if "seg_map_path" in info]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(check, samples))  # decoding releases the GIL; list() re-raises the first error
        print_log(f"checked {len(samples)} images and label maps in {self.data_prefix.get('seg_map_path')}",
                  logger="current")

    def prepare_data(self, idx: int):
        try:
            return super().prepare_data(idx)
        except SegDataError:
            raise
        except Exception as exc:  # decoders raise many types; name the sample's files with the cause
            info = self.get_data_info(idx)
            raise SegDataError(f"{info['img_path']} (label map {info.get('seg_map_path')}): cannot be loaded: "
                               f"{type(exc).__name__}: {exc}") from exc
