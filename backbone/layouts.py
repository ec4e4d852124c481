"""Checkpoint layouts of other codebases, converted to and from the timm / official MAE key names.

- Hugging Face ``ViTMAEForPreTraining`` / ``ViTMAEModel`` (and ``ViTModel`` / ``ViTForImageClassification``):
  ``vit.embeddings.patch_embeddings.projection`` -> ``patch_embed.proj``, separate ``query`` / ``key`` / ``value``
  -> one fused ``attn.qkv`` (q, k, v stacked, as timm's ``Attention`` splits it), the decoder to the official
  ``decoder_*`` names. Read are the layout of the Hub releases (e.g. ``facebook/vit-mae-base``: ``vit.encoder.layer.N
  .attention.attention.query``), the one transformers 5 uses in memory (``vit.layers.N.attention.q_proj``) and the
  decoder spelling transformers 5 writes (``decoder.decoder_encoder.layer.N``). Written is the Hub release layout.
  Both keep HF's stored sin-cos position embedding as it is, so outputs are the same on either side.
- LayerScale (DeiT III, ``blocks.N.ls1.gamma``): folded into the preceding projection (``attn.proj``, ``mlp.fc2``),
  exactly: ``x + gamma * (W h + b) = x + (gamma W) h + gamma b``; the blocks here have no LayerScale.
"""
from __future__ import annotations

import re

import torch

from .checkpoint_file import CheckpointError

_HF_PATCH_EMBED = re.compile(r"^(vit\.)?embeddings\.patch_embeddings\.projection\.weight$")
_HF_RENAMES = [  # applied in order to each key after a leading "vit." is dropped
    (r"^embeddings\.cls_token$", "cls_token"),
    (r"^embeddings\.position_embeddings$", "pos_embed"),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^(?:encoder\.layer|layers)\.(\d+)\.", r"blocks.\1."),
    (r"^decoder\.decoder_(?:layers|encoder\.layer)\.(\d+)\.", r"decoder_blocks.\1."),
    (r"^decoder\.", ""),  # decoder_embed, mask_token, decoder_pos_embed, decoder_norm, decoder_pred
    (r"^layernorm\.", "norm."),
    (r"^classifier\.", "head."),
    (r"\.layernorm_before\.", ".norm1."),
    (r"\.layernorm_after\.", ".norm2."),
    (r"\.attention\.(?:output\.dense|o_proj)\.", ".attn.proj."),  # before ".output.dense" (the MLP's)
    (r"\.intermediate\.dense\.", ".mlp.fc1."),
    (r"\.output\.dense\.", ".mlp.fc2."),
    (r"\.attention\.(?:attention\.)?(query|key|value)\.", r".attn.\1."),
    (r"\.attention\.([qkv])_proj\.", r".attn.\1."),
]
_QKV_PART = re.compile(r"^(.*\.attn)\.(q|k|v|query|key|value)\.(weight|bias)$")


def is_hf_layout(state: dict) -> bool:
    """True for a Hugging Face ViT / ViTMAE state dict (its patch embedding key is the tell)."""
    return any(_HF_PATCH_EMBED.match(k) for k in state)


def hf_to_timm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Hugging Face ViTMAE / ViT state dict under the official MAE / timm names (``pooler.*`` stays as it is)."""
    renamed: dict[str, torch.Tensor] = {}
    parts: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        new = key.removeprefix("vit.")
        for pattern, replacement in _HF_RENAMES:
            new = re.sub(pattern, replacement, new)
        if match := _QKV_PART.match(new):
            prefix, which, kind = match.groups()
            parts.setdefault(f"{prefix}.qkv.{kind}", {})[which[0]] = value
        else:
            renamed[new] = value
    for key, qkv in parts.items():
        if set(qkv) != {"q", "k", "v"}:
            raise ValueError(f"{key}: the checkpoint has only {sorted(qkv)} of query, key and value")
        renamed[key] = torch.cat([qkv["q"], qkv["k"], qkv["v"]])
    return renamed


def timm_to_hf(state: dict[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Encoder tensors under official MAE / timm names -> the Hub release layout of ``ViTMAEModel`` (``prefix``
    "" ) or of the encoder inside ``ViTMAEForPreTraining`` (``prefix`` "vit.")."""
    names = {"cls_token": "embeddings.cls_token", "pos_embed": "embeddings.position_embeddings",
             "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
             "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
             "norm.weight": "layernorm.weight", "norm.bias": "layernorm.bias"}
    block_parts = {"norm1": "layernorm_before", "norm2": "layernorm_after", "attn.proj": "attention.output.dense",
                   "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense"}
    out = {}
    for key, value in state.items():
        if key in names:
            out[prefix + names[key]] = value
            continue
        match = re.match(r"^blocks\.(\d+)\.(.+)\.(weight|bias)$", key)
        if not match:
            raise ValueError(f"{key}: not an encoder key of the MAE / timm ViT layout")
        layer, part, kind = match.groups()
        base = f"{prefix}encoder.layer.{layer}."
        if part == "attn.qkv":
            for name, chunk in zip(("query", "key", "value"), value.chunk(3)):
                out[f"{base}attention.attention.{name}.{kind}"] = chunk.contiguous()
        elif part in block_parts:
            out[f"{base}{block_parts[part]}.{kind}"] = value
        else:
            raise ValueError(f"{key}: a block part Hugging Face's ViTMAE has no place for")
    return out


def fold_layer_scale(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """LayerScale gammas (``blocks.N.ls1.gamma`` after attention, ``ls2`` after the MLP) multiplied into the
    projection before them, so the blocks compute the same without LayerScale."""
    gammas = {k: v for k, v in state.items() if re.match(r"^blocks\.\d+\.ls[12]\.gamma$", k)}
    if not gammas:
        return state
    out = {k: v for k, v in state.items() if k not in gammas}
    for key, gamma in gammas.items():
        block, which = ".".join(key.split(".")[:2]), key.split(".")[2]
        proj = f"{block}.{'attn.proj' if which == 'ls1' else 'mlp.fc2'}"
        out[f"{proj}.weight"] = state[f"{proj}.weight"] * gamma[:, None]
        out[f"{proj}.bias"] = state[f"{proj}.bias"] * gamma
    return out


def to_timm_layout(state: dict[str, torch.Tensor], source: object = "checkpoint") -> dict[str, torch.Tensor]:
    """Any layout above -> the official MAE / timm names; a state dict already in them comes back unchanged.
    A layout that cannot be converted is one ``CheckpointError`` naming ``source``."""
    try:
        if is_hf_layout(state):
            state = hf_to_timm(state)
        return fold_layer_scale(state)
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{source}: {exc}") from None
