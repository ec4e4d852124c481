"""UperNet on this project's ViT in mmsegmentation: the MAE paper's ADE20K protocol for every init.

The only package that imports mmseg / mmcv / mmengine. Importing it registers, in mmseg's registries:

- ``PlainViT`` (``MODELS``): ``backbone.ViT`` as a multi-level backbone, global attention, zero-initialised
  relative position, initial weights through ``backbone.load_pretrained`` (plain_vit.py);
- ``ViTLayerDecayOptimizerConstructor`` (``OPTIM_WRAPPER_CONSTRUCTORS``): layer-wise lr decay from
  ``backbone.param_groups`` (optim_constructor.py);
- ``ADEFormatDataset`` (``DATASETS``) and ``CheckSegSample`` (``TRANSFORMS``): the ADE20K layout with any
  class list, and one clear ``SegDataError`` for bad input (dataset.py);
- ``SafeCheckpointHook`` (``HOOKS``): checkpoints written whole and as plain data (checkpoints.py).

Importing it changes nothing else. What a run needs from mmcv and mmengine beyond their registries is put in
place by the run and taken back when it returns, through ``framework_patches()`` (frameworks.py), a context
manager that ``train``, ``test``, ``predict`` and ``Predictor`` enter:

- with mmcv-lite (no compiled ops), a pure-torch stand-in at ``mmcv.ops``, which mmseg's datasets, models and
  ``mmseg.apis`` import (mmcv_ops_stub.py); with full mmcv, nothing;
- mmengine's loader of local checkpoint files (``load_from``, resume, ``init_model``, mmseg's inferencer) reading
  through ``backbone.read_checkpoint``: no code in a file runs (checkpoints.py).

Code that drives mmseg itself (``mmseg.apis``, ``MMSegInferencer``, models built through ``mmseg.registry``)
enters it too: ``with segmentation.framework_patches(): ...``. The configs name this package in
``custom_imports`` for the registrations; see configs/segmentation/.

Python API, each run writing the run record ``work_dir/run_record.json`` (``runlib.run_lifecycle``, task
"segmentation", metrics mIoU / mAcc / aAcc in percent; "running", then "finished" or "failed"):

    train(config, work_dir, cfg_options=None, *, init_checkpoint=None, init=None, data_root=None,
          resume=False, launcher="none") -> {"mIoU": ..., "mAcc": ..., "aAcc": ...}
    test(config, checkpoint, work_dir, cfg_options=None, *, init=None, data_root=None,
         launcher="none") -> {"mIoU": ..., "mAcc": ..., "aAcc": ...}
    Predictor(config, checkpoint, device=None, cfg_options=None, max_pixels=MAX_PIXELS)(image, format="RGB")
        -> mmseg SegDataSample (a list for a list); image: a path, an RGB array, a BGR array with format="BGR"
    predict(config, checkpoint, inputs, out_dir, *, label_offset=0, ...) -> [(overlay PNG, label PNG), ...]

``init_checkpoint`` replaces the config's ``model.pretrained`` (None keeps it; ``cfg_options={"model.pretrained":
None}`` gives a random init), ``init`` labels the run ("mae", "supervised", "random"), ``data_root`` replaces the
ADE20K-format root of every split, ``resume`` is True (newest whole checkpoint in work_dir) or a checkpoint path.
``cfg_options`` keys must be in the config ("+key" adds one). Bad input raises a ``runlib.UserError``
(``SegmentationError``, ``SegDataError``, ``backbone.CheckpointError``), each one line.

Command line: ``mae-transfer segment train|test|predict`` (cli.py).
"""
from .checkpoints import SafeCheckpointHook
from .config import SegmentationError
from .dataset import ADEFormatDataset, CheckSegSample, SegDataError
from .frameworks import framework_patches
from .optim_constructor import ViTLayerDecayOptimizerConstructor
from .plain_vit import PlainViT
from .predict import Predictor, predict
from .run import test, train

__all__ = [
    "PlainViT", "ViTLayerDecayOptimizerConstructor", "ADEFormatDataset", "CheckSegSample", "SafeCheckpointHook",
    "SegDataError", "SegmentationError", "train", "test", "Predictor", "predict", "framework_patches",
]
