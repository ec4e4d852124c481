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
- an unreadable image or label file, a label map whose size differs from its image's, label values outside
  the classes: when the sample is loaded (``CheckSegSample`` runs right after ``LoadAnnotations``; the
  dataset inserts it, so mmseg's ADE20K pipelines are used unchanged).
"""
from __future__ import annotations

import os

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.datasets import ADE20KDataset, BaseSegDataset
from mmseg.datasets.transforms import LoadAnnotations
from mmseg.registry import DATASETS, TRANSFORMS

LAYOUT = "images/{training,validation}/*.jpg and annotations/{training,validation}/*.png"


class SegDataError(ValueError):
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
        present = np.flatnonzero(np.bincount(label.ravel(), minlength=256))
        bad = present[(present >= self.num_classes) & (present != self.ignore_index)]
        if bad.size:
            reduced = results.get("reduce_zero_label", False)
            file_values = (bad + 1) if reduced else bad  # the values as written in the PNG
            allowed = f"0 (ignore) and 1..{self.num_classes}" if reduced else \
                f"0..{self.num_classes - 1} and {self.ignore_index} (ignore)"
            raise SegDataError(f"{label_path}: label values {file_values.tolist()} are outside the "
                               f"{self.num_classes} classes (allowed: {allowed})")
        return results


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

    def prepare_data(self, idx: int):
        try:
            return super().prepare_data(idx)
        except SegDataError:
            raise
        except Exception as exc:  # decoders raise many types; name the sample's files with the cause
            info = self.get_data_info(idx)
            raise SegDataError(f"{info['img_path']} (label map {info.get('seg_map_path')}): cannot be loaded: "
                               f"{type(exc).__name__}: {exc}") from exc
