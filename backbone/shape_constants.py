"""Index tensors that depend on shapes only, built once per shape on the device that uses them.

timm's and detectron2's ``get_rel_pos`` build their gather index with ``torch.arange`` on the host and index a
device table with it: on a GPU every such index is a host-to-device copy, and PyTorch synchronises the stream
after a blocking copy, so the host cannot queue kernels ahead of the device. A ViT-B with relative position does
that 24 times in a forward pass and 24 in the backward (the saved host index is copied again), and rebuilds
each index from a handful of small kernels every time. Here each index is made once, on the right device, and
reused.
"""
from __future__ import annotations

import functools

import torch


def shape_constant(build):
    """Cache ``build(*shape_args, device, ...)`` per arguments (all hashable: ints, ``torch.device``,
    ``torch.dtype``). The tensors are made outside inference mode, so that a model first run under
    ``torch.inference_mode()`` can still save them for backward when it trains afterwards. Under
    ``torch.compile`` the builder is traced into the graph instead (no graph break, no cache)."""
    @functools.lru_cache(maxsize=64)
    def cached(*args):
        with torch.inference_mode(False):
            return build(*args)

    @functools.wraps(build)
    def shape_constant_of(*args):
        if torch.compiler.is_compiling():  # traced into the graph, built on the device there: nothing to cache
            return build(*args)
        return cached(*args)
    return shape_constant_of
