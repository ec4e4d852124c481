"""detectron2 and fvcore without the notices they print about their own code: imported here with their import-time
notices left out (every module of this package that imports detectron2 imports this one first), and
``run_notices_off()`` around a run's or a predictor's model calls.

Left out, each by its exact message:

- ``torch.jit.script`` is deprecated (FutureWarning, torch 2.x): detectron2 (structures, layers, box regression)
  and fvcore (``fvcore.nn``'s focal loss) script helpers with it when imported (``runlib.cost``);
- ``pkg_resources`` is deprecated (UserWarning, setuptools): ``detectron2.model_zoo``, which the LazyConfigs
  import, imports it; it works with the setuptools<81 that pyproject.toml pins;
- ``torch.meshgrid`` will require ``indexing`` (UserWarning, once per process): detectron2's anchor generator
  calls it without, meaning the "ij" indexing it relies on;
- ``is_fx_tracing`` will return true for torch.export too (a log line of torch.fx, once per process): detectron2's
  ROI pooler asks it, and no run here traces with torch.fx or torch.export;
- the ``warn`` method is deprecated (DeprecationWarning, Python's ``logging``): detectron2's ``COCOEvaluator``
  logs "No predictions from the model!" with ``Logger.warn``; the log record itself is kept;
- a NumPy array that is not writable (UserWarning from torch, once per process): detectron2 makes RLE masks into
  tensors from read-only arrays and never writes them (left out by ``data.CheckedMapper``).
"""
from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from typing import Iterator

from runlib.cost import JIT_SCRIPT_DEPRECATED

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=JIT_SCRIPT_DEPRECATED, category=FutureWarning)
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
    import detectron2.data  # noqa: F401
    import detectron2.engine  # noqa: F401
    import detectron2.model_zoo  # noqa: F401
    import detectron2.modeling  # noqa: F401
    import detectron2.utils.analysis  # noqa: F401

READ_ONLY_ARRAY = "The given NumPy array is not writable"
MESHGRID_INDEXING = r"torch\.meshgrid: in an upcoming release, it will be required to pass the indexing argument"
LOGGER_WARN_DEPRECATED = "The 'warn' method is deprecated, use 'warning' instead"
FX_TRACING_LOG, FX_TRACING_NOTICE = "torch.fx._symbolic_trace", "is_fx_tracing will return true for both"


class _Without(logging.Filter):
    """Drops the log records whose message starts with ``start``."""

    def __init__(self, start: str):
        super().__init__()
        self.start = start

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.start)


@contextmanager
def run_notices_off() -> Iterator[None]:
    """The meshgrid, ``Logger.warn`` and ``is_fx_tracing`` notices (module docstring) left out inside the block; every other warning
    and log record as before."""
    fx_log, without = logging.getLogger(FX_TRACING_LOG), _Without(FX_TRACING_NOTICE)
    fx_log.addFilter(without)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=MESHGRID_INDEXING, category=UserWarning)
            warnings.filterwarnings("ignore", message=LOGGER_WARN_DEPRECATED, category=DeprecationWarning)
            yield
    finally:
        fx_log.removeFilter(without)
