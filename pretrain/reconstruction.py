"""Reconstruction figure in the paper's style (its Figures 2-4): for each image, the original | the masked
input | the reconstruction | the reconstruction with the visible patches pasted back."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from PIL import Image
from torchvision import transforms

from backbone import CheckpointError, read_checkpoint, read_state_dict, resolve_weights
from runlib import atomic_write
from runlib.images import read_rgb

from .config import ConfigError, PretrainConfig, make_config
from .data import IMAGENET_MEAN, IMAGENET_STD, list_images
from .models_mae import MaskedAutoencoderViT, build_mae


def load_mae(checkpoint: str | Path, model_name: str | None = None, input_size: int | None = None,
             norm_pix_loss: bool | None = None) -> tuple[MaskedAutoencoderViT, str]:
    """An MAE with its decoder from one of our training checkpoints (the model is rebuilt from the config it
    holds) or from an official ``*_full.pth`` (name the model; 224 px and norm-pix unless told otherwise).
    Returns the model in eval mode and its name. ``checkpoint`` may be a weights reference (``zoo:``, ``hf:``, ...)."""
    checkpoint = Path(resolve_weights(checkpoint))
    raw = read_checkpoint(checkpoint)
    if isinstance(raw, dict) and isinstance(raw.get("config"), dict) and "model" in raw:
        cfg = make_config(PretrainConfig, raw["config"], f"{checkpoint} config: ")
        model_name, state = cfg.model, raw["model"]
        model = build_mae(model_name, **cfg.model_kwargs())
    else:
        if model_name is None:
            raise CheckpointError(f"{checkpoint}: holds no training config; name the model (e.g. mae_vit_large_patch16)")
        state = read_state_dict(checkpoint)  # reads the file again, for the unwrapping rules of every format
        model = build_mae(model_name, img_size=input_size or 224,
                          norm_pix_loss=True if norm_pix_loss is None else norm_pix_loss)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes that do not fit
        raise CheckpointError(f"{checkpoint}: does not fit {model_name}: {str(exc).splitlines()[1].strip()}") from None
    if missing or unexpected:
        raise CheckpointError(f"{checkpoint}: does not fit {model_name} with its decoder (an encoder-only export? "
                              f"use a pretraining checkpoint or an official *_full.pth); missing {missing[:4]}, "
                              f"unexpected {unexpected[:4]}")
    return model.eval(), model_name


def _to_display(x: torch.Tensor) -> torch.Tensor:
    """Normalised [N, 3, H, W] -> [N, H, W, 3] in [0, 1]."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x * std + mean).clamp(0, 1).permute(0, 2, 3, 1)


@torch.no_grad()
def reconstruct(model: MaskedAutoencoderViT, images: torch.Tensor, mask_ratio: float = 0.75, seed: int = 0
                ) -> dict[str, torch.Tensor]:
    """The four panels (normalised [N, 3, H, W]) for images [N, 3, H, W]; the mask is drawn from ``seed``."""
    noise = torch.rand(images.shape[0], model.num_patches, generator=torch.Generator().manual_seed(seed))
    _, pred, mask = model(images, mask_ratio, noise=noise)  # [N, L, p*p*3], [N, L]
    if model.norm_pix_loss:  # the prediction is in per-patch normalised units: undo with the true patch's stats
        target = model.patchify(images)
        pred = pred * (target.var(dim=-1, keepdim=True) + 1.e-6) ** .5 + target.mean(dim=-1, keepdim=True)
    reconstruction = model.unpatchify(pred)
    removed = model.unpatchify(mask.unsqueeze(-1).expand(-1, -1, pred.shape[-1]))  # 1 on removed pixels
    return {"original": images, "masked": images * (1 - removed), "reconstruction": reconstruction,
            "pasted": images * (1 - removed) + reconstruction * removed}


def visualize(checkpoint: str | Path, images: Sequence[str | Path] | str | Path, out_path: str | Path, *,
              mask_ratio: float = 0.75, seed: int = 0, num_images: int = 4, model_name: str | None = None,
              input_size: int | None = None, norm_pix_loss: bool | None = None) -> Path:
    """Write the PNG grid for ``images`` (paths, or a folder whose first ``num_images`` are taken)."""
    if not 0 <= mask_ratio < 1:
        raise ConfigError(f"mask_ratio = {mask_ratio}: must be in [0, 1)")
    model, model_name = load_mae(checkpoint, model_name, input_size, norm_pix_loss)
    if isinstance(images, (str, Path)):
        images = list_images(images)[:num_images]
    size = model.patch_embed.img_size[0]
    prepare = transforms.Compose([
        transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(size),
        transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    batch = torch.stack([prepare(Image.fromarray(read_rgb(p))) for p in images])  # as displayed (EXIF)
    panels = {k: _to_display(v) for k, v in reconstruct(model, batch, mask_ratio, seed).items()}

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    titles = ["original", f"masked {mask_ratio:.0%}", "reconstruction", "reconstruction + visible"]
    fig, axes = plt.subplots(len(images), 4, figsize=(4 * 2.4, len(images) * 2.4 + 0.9), squeeze=False)
    for row, path in enumerate(images):
        for col, key in enumerate(("original", "masked", "reconstruction", "pasted")):
            ax = axes[row][col]
            ax.imshow(panels[key][row].numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=10)
        axes[row][0].set_ylabel(Path(path).name, fontsize=7)
    fig.suptitle(f"{Path(checkpoint).name}: {model_name}, {size}px, mask ratio {mask_ratio}, seed {seed}", fontsize=10)
    if model.norm_pix_loss:
        fig.text(0.5, 0.01, "norm-pix model: each predicted patch is de-normalised with the mean and variance of "
                 "the original patch's pixels\n(information the model does not see for masked patches), then "
                 "ImageNet normalisation is undone", ha="center", fontsize=7)
    fig.tight_layout(rect=(0, 0.05 if model.norm_pix_loss else 0, 1, 0.97))
    path = atomic_write(out_path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path
