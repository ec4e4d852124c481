"""A stand-in for ``mmcv.ops`` when mmcv has no compiled ops (mmcv-lite), so that mmseg's modules import.

mmseg imports a few names from ``mmcv.ops`` at import time (``point_sample``, ``sigmoid_focal_loss``) and a
few more for optional heads; mmcv-lite ships the Python sources of ``mmcv/ops`` but not the ``mmcv._ext``
library they load, so ``import mmcv.ops`` fails and takes ``mmseg.datasets`` and ``mmseg.models`` down with it.
None of the compiled ops is needed by UperNet.

``installed()`` (a context manager) puts, when ``mmcv._ext`` is missing, a package ``mmcv.ops`` into
``sys.modules`` whose path is mmcv's own ``ops`` folder (its ``__init__``, which loads ``_ext``, is skipped), and
on leaving puts back what ``sys.modules`` and ``mmcv`` held under ``mmcv.ops`` before. Inside it:

- ``point_sample`` is mmcv's own pure-torch function (``mmcv/ops/point_sample.py``: bilinear
  ``grid_sample`` on coordinates in [0, 1], ``align_corners=False``), used by mmseg's point heads and SAN;
- every other name mmseg imports from ``mmcv.ops`` (``sigmoid_focal_loss``, ``CrissCrossAttention``,
  ``PSAMask``, ``DeformConv2d``, ``ModulatedDeformConv2d``), the ``MultiScaleDeformableAttention`` that
  ``mmcv.cnn`` imports from ``mmcv.ops.multi_scale_deform_attn``, and any other name asked for raise
  ``CompiledOpMissing`` naming the op and saying that full mmcv is needed, when called or built.

mmseg modules imported inside keep what they imported; importing more of mmseg needs the stand-in again.
``segmentation.framework_patches()`` enters it for every run; with full mmcv (``mmcv._ext`` present) it does
nothing. ``install()`` puts it in place for the rest of the process, for scripts that drive mmseg themselves
(e.g. mmseg's own ``tools/train.py`` with these configs on mmcv-lite).
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

# Names that mmseg 1.2 imports from mmcv.ops (grep "from mmcv.ops import" in mmseg), besides point_sample.
COMPILED_FUNCTIONS = ("sigmoid_focal_loss",)
COMPILED_MODULES = ("CrissCrossAttention", "PSAMask", "DeformConv2d", "ModulatedDeformConv2d")
# Submodules of mmcv.ops that mmcv itself imports from when mmseg's models are imported: mmcv.cnn imports
# MultiScaleDeformableAttention for backward compatibility, and warns when it cannot.
COMPILED_SUBMODULES = {"multi_scale_deform_attn": ("MultiScaleDeformableAttention",)}


class CompiledOpMissing(ModuleNotFoundError):
    """An op of ``mmcv.ops`` that needs mmcv's compiled extension, used where only mmcv-lite is installed.

    A ``ModuleNotFoundError`` (for ``mmcv._ext``), so code that already falls back when mmcv-lite lacks an
    op (``try: from mmcv.ops import X / except ModuleNotFoundError``) keeps doing so.
    """

    def __init__(self, op: str):
        super().__init__(f"mmcv.ops.{op} is a compiled op, but this environment has mmcv-lite (no mmcv._ext); "
                         f"install full mmcv to use it (e.g. `mim install \"mmcv>=2.0.0,<2.2.0\"`)",
                         name="mmcv._ext")


def _compiled_function(op: str):
    def missing(*args, **kwargs):
        raise CompiledOpMissing(op)
    missing.__name__ = missing.__qualname__ = op
    return missing


def _compiled_module(op: str) -> type:
    import torch.nn as nn

    def __init__(self, *args, **kwargs):
        raise CompiledOpMissing(op)
    return type(op, (nn.Module,), {"__init__": __init__, "__module__": "mmcv.ops"})


def _module_getattr(name: str):
    if name.startswith("__"):  # probes such as __file__ or __wrapped__ must stay AttributeErrors
        raise AttributeError(f"module 'mmcv.ops' has no attribute {name!r}")
    raise CompiledOpMissing(name)


def has_compiled_ops() -> bool:
    """Whether mmcv's compiled extension is installed (full mmcv), as mmengine's ``mmcv_full_available``."""
    return importlib.util.find_spec("mmcv._ext") is not None


def is_installed() -> bool:
    return getattr(sys.modules.get("mmcv.ops"), "__mmcv_ops_stub__", False)


def install(compiled_ops: bool | None = None) -> bool:
    """Put the stand-in at ``mmcv.ops`` for the rest of the process unless mmcv has compiled ops; returns whether
    the stand-in is in place. ``installed()`` is the same for a block.

    ``compiled_ops`` overrides the detection (``has_compiled_ops()``), for tests.
    """
    if compiled_ops is None:
        compiled_ops = has_compiled_ops()
    if compiled_ops:
        return False
    if is_installed():
        return True
    import mmcv

    ops_dir = Path(mmcv.__file__).parent / "ops"
    ops = _package("mmcv.ops", [str(ops_dir)])
    ops.__getattr__ = _module_getattr
    for op in COMPILED_FUNCTIONS:
        setattr(ops, op, _compiled_function(op))
    for op in COMPILED_MODULES:
        setattr(ops, op, _compiled_module(op))
    sys.modules["mmcv.ops"] = mmcv.ops = ops
    for name, classes in COMPILED_SUBMODULES.items():
        submodule = _package(f"mmcv.ops.{name}", None)
        for op in classes:
            setattr(submodule, op, _compiled_module(op))
        sys.modules[submodule.__name__] = submodule
        setattr(ops, name, submodule)
    # mmcv's own pure-torch file, imported as the submodule it is (it needs nothing but torch).
    ops.point_sample = importlib.import_module("mmcv.ops.point_sample").point_sample
    return True


@contextmanager
def installed(compiled_ops: bool | None = None) -> Iterator[bool]:
    """The stand-in at ``mmcv.ops`` inside the block (``install``); afterwards ``sys.modules`` and ``mmcv`` hold
    under ``mmcv.ops`` what they held before. Yields whether the stand-in is in place."""
    import mmcv

    before = {name: module for name, module in sys.modules.items() if _in_ops(name)}
    attribute = mmcv.__dict__.get("ops", _ABSENT)
    try:
        yield install(compiled_ops)
    finally:
        if is_installed() and sys.modules["mmcv.ops"] is not before.get("mmcv.ops"):  # it came in here: take it out
            for name in [name for name in sys.modules if _in_ops(name)]:
                del sys.modules[name]
            sys.modules.update(before)
            if attribute is _ABSENT:
                mmcv.__dict__.pop("ops", None)
            else:
                mmcv.ops = attribute


_ABSENT = object()


def _in_ops(name: str) -> bool:
    return name == "mmcv.ops" or name.startswith("mmcv.ops.")


def _package(name: str, path: list[str] | None):
    spec = importlib.machinery.ModuleSpec(name, loader=None, is_package=path is not None)
    if path is not None:
        spec.submodule_search_locations = path
    module = importlib.util.module_from_spec(spec)
    module.__doc__ = f"{name} stand-in for mmcv-lite, see segmentation.mmcv_ops_stub"
    module.__mmcv_ops_stub__ = True
    return module
