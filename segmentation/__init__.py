"""UperNet on this project's ViT in mmsegmentation: the MAE paper's ADE20K protocol for every init.

The only package that imports mmseg / mmcv / mmengine. Importing it registers, in mmseg's registries:

- ``PlainViT`` (``MODELS``): ``backbone.ViT`` as a multi-level backbone, global attention, zero-initialised
  relative position, initial weights through ``backbone.load_pretrained`` (plain_vit.py);
- ``ViTLayerDecayOptimizerConstructor`` (``OPTIM_WRAPPER_CONSTRUCTORS``): layer-wise lr decay from
  ``backbone.param_groups`` (optim_constructor.py);
- ``ADEFormatDataset`` (``DATASETS``) and ``CheckSegSample`` (``TRANSFORMS``): the ADE20K layout with any
  class list, and one clear ``SegDataError`` for bad input (dataset.py);
- ``SafeCheckpointHook`` (``HOOKS``) and mmengine's loader of local checkpoint files replaced by
  ``backbone.read_checkpoint``: checkpoints are read without running code and written whole (checkpoints.py).

It first installs ``mmcv_ops_stub`` (a pure-torch ``mmcv.ops`` where mmcv-lite has no compiled ops). Configs
load it with ``custom_imports = dict(imports=['segmentation.mmcv_ops_stub', 'segmentation'])``; see
configs/segmentation/. With mmcv-lite, import ``segmentation`` before ``mmseg.apis`` or any other mmseg module
(they import ``mmcv.ops``); see predict.py.

Python API, each run writing the run record ``work_dir/run_record.json`` (``backbone.run_lifecycle``, task
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
from . import mmcv_ops_stub  # noqa: F401  (before anything imports mmseg.models)
from .checkpoints import SafeCheckpointHook
from .config import SegmentationError
from .dataset import ADEFormatDataset, CheckSegSample, SegDataError
from .optim_constructor import ViTLayerDecayOptimizerConstructor
from .plain_vit import PlainViT
from .predict import Predictor, predict
from .run import test, train

__all__ = [
    "PlainViT", "ViTLayerDecayOptimizerConstructor", "ADEFormatDataset", "CheckSegSample", "SafeCheckpointHook",
    "SegDataError", "SegmentationError", "train", "test", "Predictor", "predict",
]
