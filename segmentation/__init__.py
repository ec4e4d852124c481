"""UperNet on this project's ViT in mmsegmentation: the MAE paper's ADE20K protocol for every init.

The only package that imports mmseg / mmcv / mmengine. Importing it registers, in mmseg's registries:

- ``PlainViT`` (``MODELS``): ``backbone.ViT`` as a multi-level backbone, global attention, zero-initialised
  relative position, initial weights through ``backbone.load_pretrained`` (plain_vit.py);
- ``ViTLayerDecayOptimizerConstructor`` (``OPTIM_WRAPPER_CONSTRUCTORS``): layer-wise lr decay from
  ``backbone.param_groups`` (optim_constructor.py);
- ``ADEFormatDataset`` (``DATASETS``) and ``CheckSegSample`` (``TRANSFORMS``): the ADE20K layout with any
  class list, and one clear ``SegDataError`` for bad input (dataset.py).

It first installs ``mmcv_ops_stub`` (a pure-torch ``mmcv.ops`` where mmcv-lite has no compiled ops). Configs
load it with ``custom_imports = dict(imports=['segmentation.mmcv_ops_stub', 'segmentation'])``; see
configs/segmentation/.

Python API (run.py), each writing the run record ``work_dir/run_record.json`` (``backbone.write_run_record``,
task "segmentation", metrics mIoU / mAcc / aAcc in percent; "running", then "finished" or "failed"):

    train(config, work_dir, cfg_options=None, *, init_checkpoint=None, init=None, data_root=None,
          resume=False, launcher="none") -> {"mIoU": ..., "mAcc": ..., "aAcc": ...}
    test(config, checkpoint, work_dir, cfg_options=None, *, init=None, data_root=None,
         launcher="none") -> {"mIoU": ..., "mAcc": ..., "aAcc": ...}

``init_checkpoint`` replaces the config's ``model.pretrained`` (None keeps it; ``cfg_options={"model.pretrained":
None}`` gives a random init), ``init`` labels the run ("mae", "supervised", "random"), ``data_root`` replaces the
ADE20K-format root of every split, ``resume`` is True (latest checkpoint in work_dir) or a checkpoint path.
Bad input raises ``SegmentationError``, ``SegDataError`` or ``backbone.CheckpointError``, each one line.

Command line: ``mae-transfer segment train|test`` (cli.py).
"""
from . import mmcv_ops_stub  # noqa: F401  (before anything imports mmseg.models)
from .dataset import ADEFormatDataset, CheckSegSample, SegDataError
from .optim_constructor import ViTLayerDecayOptimizerConstructor
from .plain_vit import PlainViT
from .run import SegmentationError, test, train

__all__ = [
    "PlainViT", "ViTLayerDecayOptimizerConstructor", "ADEFormatDataset", "CheckSegSample",
    "SegDataError", "SegmentationError", "train", "test",
]
