"""What a segmentation run changes in mmcv and mmengine, for the run only, and mmseg's notices it leaves out.

``framework_patches()`` is entered by ``train``, ``test``, ``predict`` and ``Predictor``; code that drives mmseg
itself (``mmseg.apis``, ``MMSegInferencer``, models built through mmseg's registry) enters it around that::

    with segmentation.framework_patches():
        from mmseg.apis import MMSegInferencer
        ...
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from typing import Iterator

from . import mmcv_ops_stub
from .checkpoints import strict_checkpoint_loader

# mmseg's notices while it builds the models and hooks of these configs, each about mmseg's own code or a
# default of the published recipe, none about a value to change: (message, module that warns, why it is left out)
MMSEG_BUILD_NOTICES = (
    (r"``build_loss`` would be deprecated soon", "mmseg.models.builder",
     "mmseg's decode heads build their losses through mmseg's own deprecated builder"),
    (r"Default ``avg_non_ignore`` is False", "mmseg.models.losses.cross_entropy_loss",
     "the recipe's cross-entropy averages over all pixels, as mmseg's MAE config (the default mmseg warns about)"),
    (r"The draw is False", "mmseg.engine.hooks.visualization_hook",
     "mmseg's default_runtime has the prediction drawing hook off (default_hooks.visualization.draw=True turns "
     "it on)"),
)


@contextmanager
def framework_patches() -> Iterator[None]:
    """Inside the block: the ``mmcv.ops`` stand-in where mmcv has no compiled ops (``mmcv_ops_stub``) and mmengine's
    loader of local checkpoint files through ``backbone.read_checkpoint`` (``checkpoints``); afterwards
    ``sys.modules``, ``mmcv.ops`` and mmengine's loader table hold what they held before."""
    with mmcv_ops_stub.installed(), strict_checkpoint_loader():
        yield


@contextmanager
def mmseg_build_notices_off() -> Iterator[None]:
    """``MMSEG_BUILD_NOTICES`` left out inside the block (around building a runner or a model); every other
    warning as before."""
    with warnings.catch_warnings():
        for message, module, _why in MMSEG_BUILD_NOTICES:
            warnings.filterwarnings("ignore", message=message, category=UserWarning, module=module)
        yield
