"""Mask R-CNN with this project's ViT in detectron2: the ViTDet recipe (ViTDet paper, arXiv 2203.16527, and
detectron2's projects/ViTDet configs). The only package that imports detectron2; ``import detection`` itself does
not (the names below load their module on first use).

Python API::

    detection.train(config, out_dir, overrides=(), *, init_checkpoint=None, init=None, train_json=None,
                    train_images=None, val_json=None, val_images=None, dataset_name=None, resume=False)
        -> {"APbox": float, "APmask": float}
    detection.evaluate(config, out_dir, weights, overrides=(), *, init=None, val_json=None, val_images=None,
                       dataset_name=None) -> {"APbox": float, "APmask": float}
    detection.Predictor(config_file, weights, overrides=(), device=None, categories=None, max_pixels=MAX_PIXELS)
        predictor("image.jpg"), predictor(rgb_uint8_array), predictor(bgr_array, format="BGR")
        -> detectron2 Instances (a list of them for a list of images)

``config`` is a LazyConfig (``configs/detection/*.py``), ``overrides`` are ``key=value`` strings,
``init_checkpoint`` a pretrained ViT (official MAE file, timm file, our export) or a whole detector,
``init`` the run record's name for it (default: the config's ``train.init``, else the path, else "random"),
``*_json`` / ``*_images`` a COCO-format instances json and its image folder used instead of the config's
datasets, registered as ``{dataset_name}_train`` / ``_val`` (default: the json file names; the run record's
``dataset`` is the evaluation set's name). Both run in this process and write ``out_dir/run_record.json``
(``runlib.run_lifecycle``: status "running", then "finished" with the metrics or "failed" with the error).
Bad input raises ``DetectionInputError`` or ``backbone.CheckpointError`` (both ``runlib.UserError``) with the
file, key or value in the message; config, data and output-folder mistakes are raised before anything is written.
``Predictor`` (``predict``) runs a trained detector on images (paths, RGB arrays, BGR arrays with
``format="BGR"``: the convention of ``segmentation.Predictor``) with the config's test resize.

Modules: ``vitdet`` (``ViTDetBackbone``: the pyramid as a detectron2 ``Backbone``), ``yacs_backbone``
(``MODEL.BACKBONE.NAME: build_vitdet_backbone``, ``add_vit_config``, ``build_optimizer``), ``recipe`` (step
schedules, layer decay for configs), ``data`` (COCO-format datasets and their checks), ``weights`` (initial
weights and detector checkpoints), ``engine`` (the train / eval loop), ``predict`` (``Predictor``, overlays and
COCO results of image files), ``cli`` (``mae-transfer detect``).
"""
from __future__ import annotations

import importlib

_LAZY = {"train": "engine", "evaluate": "engine", "RunOptions": "engine", "ViTDetBackbone": "vitdet",
         "DetectionInputError": "data", "register_coco_json": "data", "add_vit_config": "yacs_backbone",
         "Predictor": "predict"}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'detection' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
