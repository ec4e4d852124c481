"""Export the encoder of a pretraining checkpoint for other code: the official MAE release format, timm, or
Hugging Face transformers.

- ``mae`` (default): ``{'model': state_dict}`` with exactly the keys of ``mae_pretrain_vit_*.pth`` (the MAE repo's
  README): cls_token, pos_embed, patch_embed.proj.*, blocks.N.*, norm.*. ``backbone.load_pretrained`` and the
  official fine-tuning code read it.
- ``timm``: the same tensors as a bare state dict. To a folder (an ``--out`` without a weights suffix): timm's own
  layout, ``model.safetensors`` and timm's ``config.json`` (architecture, its arguments for this encoder's shape,
  and the preprocessing of timm's ``vit_base_patch16_224.mae``), as ``timm.models.save_for_hf`` writes them, for
  ``timm.create_model('local-dir:FOLDER', pretrained=True)`` or an upload to the Hub (``hf-hub:ORG/REPO``). To a
  file (``.pth``, ``.bin``, ``.safetensors``): the weights alone, for ``timm.create_model('vit_base_patch16_224',
  pretrained=True, pretrained_cfg_overlay=dict(file=PATH), num_classes=0)``. The export prints the call.
- ``hf``: a folder with ``config.json`` and ``model.safetensors`` in the layout of the Hub's ViTMAE releases, and
  the ``preprocessor_config.json`` of their ``ViTImageProcessor`` (resize to the encoder's size, bicubic, ImageNet
  mean and std), for ``transformers.ViTMAEModel.from_pretrained(FOLDER)`` and ``AutoImageProcessor``.

Beside the export, ``NAME.json`` records the label of the weights (``mae`` from a pretraining run's checkpoint)
when the source's run folder or its own export record tells it, so that runs starting from the export record the
same ``init`` (``runlib.run_record.init_label``). The decoder, the mask token and the training state stay behind. The checkpoint may be ours, the MAE repo's, an
official ``*_full.pth``, a Hugging Face ViTMAE file or a weights reference (``timm:``, ``hf:``, a URL).
"""
from __future__ import annotations

import argparse
import json
import logging
import re
from pathlib import Path
from typing import Callable

import torch

from backbone import VIT_SIZES, CheckpointError, read_state_dict, resolve_weights, size_of_width
from runlib import atomic_torch_save
from backbone.layouts import timm_to_hf
from runlib.run_record import atomic_write, write_export_record

logger = logging.getLogger(__name__)

FORMATS = ("mae", "timm", "hf")
WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")  # an --out with one of these is a file, else a folder
MAE_TIMM_NAME = "vit_base_patch16_224.mae"  # timm's name of the MAE release: its preprocessing is the exports'
ENCODER_KEY = re.compile(r"^(cls_token|pos_embed|patch_embed\.proj\.(weight|bias)|blocks\.\d+\..+|norm\.(weight|bias))$")
_REQUIRED = ("cls_token", "pos_embed", "patch_embed.proj.weight", "norm.weight")


def encoder_state_dict(state: dict[str, torch.Tensor], source: str | Path = "checkpoint") -> dict[str, torch.Tensor]:
    """The encoder tensors of an MAE state dict (ours, the MAE repo's, or an official ``*_full.pth``)."""
    encoder = {k: v for k, v in state.items() if ENCODER_KEY.match(k)}
    absent = [k for k in _REQUIRED if k not in encoder]
    if absent or not any(k.startswith("blocks.") for k in encoder):
        raise CheckpointError(f"{source}: not an MAE encoder checkpoint (missing {absent or ['blocks.*']})")
    return encoder


def encoder_shape(encoder: dict[str, torch.Tensor]) -> dict[str, int]:
    """Width, depth, patch, image size, channels and MLP width of an encoder state dict."""
    width, channels, patch, _ = encoder["patch_embed.proj.weight"].shape
    tokens = encoder["pos_embed"].shape[1] - 1  # the official layout has a cls row
    depth = 1 + max(int(k.split(".")[1]) for k in encoder if k.startswith("blocks."))
    return dict(width=width, depth=depth, patch=patch, img_size=int(round(tokens ** 0.5)) * patch,
                channels=channels, mlp=encoder["blocks.0.mlp.fc1.weight"].shape[0])


def training_config(checkpoint: str | Path) -> dict:
    """What a checkpoint file says about the model beyond its tensors: our training config, the MAE repo's
    ``args``, or a Hugging Face ``config.json`` next to the file. Empty when it says nothing."""
    path = Path(resolve_weights(checkpoint))
    hf_config = path.with_name("config.json")
    if path.suffix == ".safetensors" or path.name == "pytorch_model.bin":
        if hf_config.is_file():
            hf = json.loads(hf_config.read_text())
            return {"num_heads": hf.get("num_attention_heads"), "mask_ratio": hf.get("mask_ratio"),
                    "norm_pix_loss": hf.get("norm_pix_loss")}
        return {}
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # read_state_dict has named the problem already, or the file holds no config
        return {}
    if isinstance(raw, dict) and isinstance(raw.get("config"), dict):
        return raw["config"]
    if isinstance(raw, dict) and isinstance(raw.get("args"), argparse.Namespace):
        return vars(raw["args"])
    return {}


def num_heads_of(encoder: dict[str, torch.Tensor], config: dict, num_heads: int | None = None) -> int | None:
    """Attention heads (not stored in the tensors): given, from the training config, else from the preset of
    the encoder's width (ViT-B 12, ViT-L 16, ...); None when nothing says."""
    if num_heads:
        return num_heads
    if config.get("num_heads"):
        return int(config["num_heads"])
    size = size_of_width(encoder["patch_embed.proj.weight"].shape[0])
    return VIT_SIZES[size].heads if size else None


def timm_create_args(encoder: dict[str, torch.Tensor], num_heads: int | None) -> tuple[str, dict]:
    """(timm model name, keyword overrides) of a timm ViT with this encoder's shape."""
    shape = encoder_shape(encoder)
    size = size_of_width(shape["width"])
    preset = VIT_SIZES[size or "vit_base"]
    name = f"{size or 'vit_base'}_patch{preset.mae_patch}_224"
    kwargs = {}
    if shape["patch"] != preset.mae_patch:
        kwargs["patch_size"] = shape["patch"]
    if shape["img_size"] != 224:
        kwargs["img_size"] = shape["img_size"]
    if size is None:
        kwargs["embed_dim"] = shape["width"]
    if shape["depth"] != preset.depth or size is None:
        kwargs["depth"] = shape["depth"]
    if num_heads and (size is None or num_heads != preset.heads):
        kwargs["num_heads"] = num_heads
    if shape["mlp"] != 4 * shape["width"]:
        kwargs["mlp_ratio"] = shape["mlp"] / shape["width"]
    return name, kwargs


def hf_vitmae_config(encoder: dict[str, torch.Tensor], num_heads: int, config: dict) -> dict:
    """``config.json`` of a ``ViTMAEModel`` with this encoder (decoder fields: the training config's, else the
    official decoder of ``backbone.VIT_SIZES``); layer-norm eps 1e-6 and exact GELU as the MAE encoder."""
    shape = encoder_shape(encoder)
    default = VIT_SIZES[size_of_width(shape["width"]) or "vit_base"]
    decoder_width = config.get("decoder_embed_dim") or default.decoder_width
    return {
        "architectures": ["ViTMAEModel"], "model_type": "vit_mae",
        "hidden_size": shape["width"], "num_hidden_layers": shape["depth"], "num_attention_heads": num_heads,
        "intermediate_size": shape["mlp"], "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0, "initializer_range": 0.02, "layer_norm_eps": 1e-6,
        "image_size": shape["img_size"], "patch_size": shape["patch"], "num_channels": shape["channels"],
        "qkv_bias": "blocks.0.attn.qkv.bias" in encoder,
        "decoder_hidden_size": decoder_width,
        "decoder_num_hidden_layers": config.get("decoder_depth") or default.decoder_depth,
        "decoder_num_attention_heads": config.get("decoder_num_heads") or default.decoder_heads,
        "decoder_intermediate_size": 4 * decoder_width,
        "mask_ratio": config.get("mask_ratio") or 0.75,
        "norm_pix_loss": bool(config.get("norm_pix_loss", True)),
    }


def _save_safetensors(state: dict[str, torch.Tensor], path: Path) -> Path:
    from safetensors.torch import save_file
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))


def timm_config(encoder: dict[str, torch.Tensor], num_heads: int | None) -> Callable[[Path], None]:
    """A writer of timm's ``config.json`` for this encoder: timm's ``save_config_for_hf`` on the model that
    ``timm_create_args`` names (built on the meta device: no memory, no weights), with the preprocessing of timm's
    MAE release (``MAE_TIMM_NAME``)."""
    import timm
    from timm.models import get_pretrained_cfg
    from timm.models._hub import save_config_for_hf

    name, kwargs = timm_create_args(encoder, num_heads)
    mae = get_pretrained_cfg(MAE_TIMM_NAME)
    overlay = dict(tag=None, hf_hub_id=None, url=None, license=None, mean=mae.mean, std=mae.std,
                   crop_pct=mae.crop_pct, interpolation=mae.interpolation)
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=0, pretrained_cfg_overlay=overlay, **kwargs)
    return lambda path: save_config_for_hf(model, str(path))


def hf_preprocessor_config(encoder: dict[str, torch.Tensor]) -> dict:
    """``preprocessor_config.json`` of the Hub's ViTMAE releases (``ViTImageProcessor``): resize to the encoder's
    image size with PIL's bicubic (3), scale to [0, 1], normalise with ImageNet's mean and std (MAE's)."""
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    size = encoder_shape(encoder)["img_size"]
    return {"image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": size, "width": size},
            "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
            "image_mean": list(IMAGENET_DEFAULT_MEAN), "image_std": list(IMAGENET_DEFAULT_STD)}


def _write_json(obj: dict, path: Path) -> Path:
    text = json.dumps(obj, indent=2) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def _known_heads(checkpoint: str | Path, encoder: dict[str, torch.Tensor], config: dict, num_heads: int | None) -> int:
    heads = num_heads_of(encoder, config, num_heads)
    if heads is None:
        raise CheckpointError(f"{checkpoint}: the number of attention heads is not stored with a "
                              f"{encoder['pos_embed'].shape[-1]}-wide encoder; give it (--num-heads N)")
    return heads


def export_encoder(checkpoint: str | Path, out_path: str | Path, format: str = "mae",
                   num_heads: int | None = None) -> Path:
    """Write the encoder of ``checkpoint`` to ``out_path`` in ``format`` and return it: a file, or a folder for
    ``hf`` and for ``timm`` when ``out_path`` has no weights suffix (``WEIGHT_SUFFIXES``). ``num_heads`` is needed
    for the folders only when neither the checkpoint nor the width tells it."""
    if format not in FORMATS:
        raise CheckpointError(f"export format {format!r}: choose one of {', '.join(FORMATS)}")
    state = read_state_dict(checkpoint)
    encoder = encoder_state_dict(state, checkpoint)
    out_path = Path(out_path)
    if format == "mae":
        path = atomic_torch_save({"model": encoder}, out_path)
    elif format == "timm" and out_path.suffix in WEIGHT_SUFFIXES:
        path = (_save_safetensors(encoder, out_path) if out_path.suffix == ".safetensors"
                else atomic_torch_save(encoder, out_path))
        name, kwargs = timm_create_args(encoder, num_heads_of(encoder, training_config(checkpoint), num_heads))
        extra = "".join(f", {k}={v!r}" for k, v in kwargs.items())
        logger.info("load it with timm.create_model(%r, pretrained=True, pretrained_cfg_overlay=dict(file=%r), "
                    "num_classes=0%s)", name, str(path), extra)
    elif format == "timm":
        write_config = timm_config(encoder, _known_heads(checkpoint, encoder, training_config(checkpoint), num_heads))
        out_path.mkdir(parents=True, exist_ok=True)
        _save_safetensors(encoder, out_path / "model.safetensors")
        atomic_write(out_path / "config.json", write_config)
        path = out_path
        logger.info("load it with timm.create_model('local-dir:%s', pretrained=True)", path)
    else:
        config = training_config(checkpoint)
        heads = _known_heads(checkpoint, encoder, config, num_heads)
        out_path.mkdir(parents=True, exist_ok=True)
        _save_safetensors(timm_to_hf(encoder), out_path / "model.safetensors")
        _write_json(hf_vitmae_config(encoder, heads, config), out_path / "config.json")
        _write_json(hf_preprocessor_config(encoder), out_path / "preprocessor_config.json")
        path = out_path
    write_export_record(checkpoint, path, format)  # a run starting from the export records the source's label
    logger.info("exported %d encoder tensors from %s to %s as %s (left out %d others: decoder, mask token, head)",
                len(encoder), checkpoint, path, format, len(state) - len(encoder))
    return path
