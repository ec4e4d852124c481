"""MAE pretraining, export, reconstructions and classification transfer (recipes: docs/recipes.md §1-2).

Python API (the command line ``mae-transfer pretrain | export | visualize | linprobe | finetune`` wraps it):

    MaskedAutoencoderViT(img_size=224, patch_size=16, in_chans=3, embed_dim=1024, depth=24, num_heads=16,
                         decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16, mlp_ratio=4.,
                         norm_layer=partial(nn.LayerNorm, eps=1e-6), norm_pix_loss=False)
        .forward(imgs, mask_ratio=0.75, noise=None) -> (loss, pred [N, L, p*p*3], mask [N, L])
    build_mae(name, **overrides); mae_vit_{tiny,small,base,large}_patch16(**kw); mae_vit_huge_patch14(**kw)
    get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token=False) -> np.ndarray

    load_config(kind, path=None, overrides=(), **values) -> PretrainConfig | LinprobeConfig | FinetuneConfig
        kind: "pretrain" | "linprobe" | "finetune"; path: a file in configs/pretrain/ (read by mmengine's
        Config); a bad value raises one ConfigError (a runlib.UserError) naming the key and the value.
    train_mae(config, out_dir, *, resume=None, overrides=()) -> Path            final training checkpoint
    export_encoder(checkpoint, out_path, format="mae", num_heads=None) -> Path
        format "mae": {'model': encoder}, the MAE release format; "timm": a bare state dict (timm.create_model
        with pretrained_cfg_overlay=dict(file=...)); "hf": a folder for transformers' ViTMAEModel
    visualize(checkpoint, images, out_path, *, mask_ratio=0.75, seed=0, num_images=4,
              model_name=None, input_size=None, norm_pix_loss=None) -> Path                   PNG figure
    linear_probe(config, out_dir, *, checkpoint=None, resume=None, overrides=(), init_label=None) -> ClassifyResult
    finetune(config, out_dir, *, checkpoint=None, resume=None, overrides=(), init_label=None) -> ClassifyResult
        ClassifyResult: top1, top1_best (percent), history (per epoch), checkpoint (final training checkpoint,
        whose 'model' is a timm ViT state dict that backbone.load_pretrained takes). finetune without a
        checkpoint trains from random init: the supervised baseline. The run record's init is init_label,
        else derived from the checkpoint (runlib.run_record.init_label).

``config`` is a config object or a config file; ``overrides`` a mapping or ``key=value`` strings; ``resume``
True for the newest checkpoint in ``out_dir`` or a checkpoint path. Each run writes ``out_dir/checkpoints/``,
``log.jsonl``, ``tb/`` and the run record ``run_record.json`` (runlib.run_lifecycle).
"""
from __future__ import annotations

import importlib

_EXPORTS = {  # name -> module; imported on first use, so ``python -m pretrain.train`` stays clean and light
    "ClassifyResult": "classify", "finetune": "classify", "linear_probe": "classify",
    "ConfigError": "config", "FinetuneConfig": "config", "LinprobeConfig": "config", "PretrainConfig": "config",
    "load_config": "config", "DataError": "data", "export_encoder": "export",
    "MAE_MODELS": "models_mae", "MaskedAutoencoderViT": "models_mae", "build_mae": "models_mae",
    "mae_vit_tiny_patch16": "models_mae", "mae_vit_small_patch16": "models_mae",
    "mae_vit_base_patch16": "models_mae", "mae_vit_large_patch16": "models_mae",
    "mae_vit_huge_patch14": "models_mae", "get_2d_sincos_pos_embed": "pos_embed", "train_mae": "train",
    "visualize": "reconstruction",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
