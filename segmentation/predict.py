"""Use a trained segmentor: ``Predictor`` for Python, ``predict`` for ``mae-transfer segment predict``.

Both are mmseg's own inference (``mmseg.apis.init_model`` / ``inference_model``, the config's test pipeline and
``test_cfg``, e.g. sliding windows) and visualizer (``SegLocalVisualizer``); what differs is that the weights
are read by ``backbone.read_checkpoint`` and must match the config's model exactly (mmengine's loader would run
code from the file and load a mismatched checkpoint with warnings only), and that the class names and palette
are the ones the model was trained with (saved in the checkpoint by the training run).

Both run inside ``segmentation.framework_patches()`` (the ``mmcv.ops`` stand-in that ``mmseg.apis`` needs with
mmcv-lite, the strict checkpoint loader), and leave them as they were when they return. mmseg's own
``MMSegInferencer`` works with these configs and checkpoints inside that block.
"""
from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image
from tqdm import tqdm

from runlib import atomic_write, prepare_run_dir
from runlib.images import MAX_PIXELS, as_rgb, expand_inputs, image_info, read_rgb

from .checkpoints import load_segmentor_weights
from .config import SegmentationError, apply_overrides, read_mmengine_config
from .frameworks import framework_patches, mmseg_build_notices_off


class Predictor:
    """A trained segmentor: ``Predictor(config, checkpoint)(image)`` is mmseg's ``SegDataSample`` whose
    ``pred_sem_seg.data`` (1, H, W) holds class indices (0-based) into ``predictor.classes``.

    Images follow ``detection.Predictor``'s convention: a file path (EXIF orientation applied), an HxWx3 uint8
    array in RGB order (PIL, torchvision, timm, transformers) or, with ``format="BGR"``, in OpenCV's order (mmseg's
    own ``inference_model`` takes BGR), or a list of them (a list of samples back).

    Args:
        config: the segmentation config the checkpoint was trained with.
        checkpoint: a segmentor checkpoint of that config (``iter_N.pth``).
        device: "cpu", "cuda", "cuda:1", ...; the first GPU if there is one, else the CPU, by default.
        cfg_options: overrides of config keys, as for training (e.g. the test pipeline's scale).
        max_pixels: image files with more pixels are refused before decoding (``runlib.images.MAX_PIXELS``).
    """

    @framework_patches()
    def __init__(self, config: str | Path, checkpoint: str | Path, device: str | None = None,
                 cfg_options: dict | None = None, max_pixels: int | None = MAX_PIXELS):
        from mmseg.apis import init_model

        self.max_pixels = max_pixels
        config = Path(config)
        if not config.is_file():
            raise SegmentationError(f"{config}: no such config file")
        if not Path(checkpoint).is_file():
            raise SegmentationError(f"{checkpoint}: no such checkpoint file")
        cfg = read_mmengine_config(config)
        apply_overrides(cfg, cfg_options or {}, config)
        with mmseg_build_notices_off():
            self.model = init_model(cfg, checkpoint=None, device="cpu")  # built, weights below
        meta = load_segmentor_weights(checkpoint, self.model, config)
        self.model.dataset_meta = _dataset_meta(cfg, meta)
        self.model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    @property
    def classes(self) -> list[str]:
        return list(self.model.dataset_meta["classes"])

    @property
    def palette(self) -> list[list[int]]:
        return [list(map(int, color)) for color in self.model.dataset_meta["palette"]]

    @framework_patches()
    def __call__(self, image: str | Path | np.ndarray | list, format: str = "RGB"):
        """mmseg's ``SegDataSample`` of an image file or an HxWx3 uint8 array in ``format`` order ("RGB" or
        "BGR"); a list of them for a list."""
        from mmseg.apis import inference_model

        if isinstance(image, list):
            return [self(item, format) for item in image]
        rgb = as_rgb(image, format, self.max_pixels)  # an ImageError names the file or array
        return inference_model(self.model, np.ascontiguousarray(rgb[:, :, ::-1]))  # mmseg's pipelines take BGR


def _dataset_meta(cfg: Config, meta: dict) -> dict:
    """Classes and palette: those the checkpoint was trained with, else those of the config's test set."""
    saved = meta.get("dataset_meta") or {}
    if saved.get("classes") and saved.get("palette"):
        return {"classes": list(saved["classes"]), "palette": [list(c) for c in saved["palette"]]}
    from mmseg.registry import DATASETS

    init_default_scope(cfg.get("default_scope", "mmseg"))
    dataset = DATASETS.build({**cfg.test_dataloader.dataset, "lazy_init": True})  # reads no file
    return {"classes": list(dataset.metainfo["classes"]), "palette": [list(c) for c in dataset.metainfo["palette"]]}


def _save_png(image: Image.Image, path: Path) -> None:
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def label_image(labels: np.ndarray, palette: list[list[int]], offset: int = 0) -> Image.Image:
    """A palette PNG image: pixel value ``k + offset`` is class k, drawn in the dataset's colour for it (values
    below ``offset`` are black and never written)."""
    if len(palette) + offset > 256:
        raise SegmentationError(f"{len(palette)} classes from label value {offset} do not fit a palette PNG (256 "
                                "values at most)")
    image = Image.fromarray((labels + offset).astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0] * offset + [channel for color in palette for channel in color])
    return image


@framework_patches()
def predict(config: str | Path, checkpoint: str | Path, inputs: list[str | Path], out_dir: str | Path, *,
            device: str | None = None, cfg_options: dict | None = None, opacity: float = 0.5,
            with_labels: bool = True, label_offset: int = 0,
            max_pixels: int | None = MAX_PIXELS) -> list[tuple[Path, Path]]:
    """Segment every image of ``inputs`` (files, folders, glob patterns: ``runlib.images.expand_inputs``); write
    ``out_dir/vis/NAME.png`` (mmseg's overlay of the prediction on the image) and ``out_dir/pred/NAME.png`` (a
    palette PNG: value ``k + label_offset`` for class k; ``label_offset=1`` is the ADE20K-format ground truth's
    convention, where 0 means "ignore"). A progress bar with the time per image goes to stderr. Returns the
    (overlay, label map) pairs."""
    from mmseg.visualization import SegLocalVisualizer

    if label_offset < 0:
        raise SegmentationError(f"--label-offset {label_offset}: label values start at 0 or above")
    images = expand_inputs(inputs)
    for path in images:  # every header before the model is built: a bad or too large image is refused now
        image_info(path, max_pixels)
    by_stem: dict[str, Path] = {}
    for path in images:
        other = by_stem.setdefault(path.stem, path)
        if other != path:
            raise SegmentationError(f"{other} and {path} would write the same outputs ({path.stem}.png); "
                                    "predict them into different folders")
    out_dir = prepare_run_dir(out_dir, command="segment predict", resume=True,
                              inputs=[config, checkpoint, *inputs, *images])
    predictor = Predictor(config, checkpoint, device=device, cfg_options=cfg_options, max_pixels=max_pixels)
    visualizer = SegLocalVisualizer(name=f"predict-{uuid.uuid4().hex[:8]}", alpha=opacity)
    visualizer.dataset_meta = dict(classes=predictor.classes, palette=predictor.palette)
    written = []
    progress = tqdm(images, desc="segment predict", unit="image", file=sys.stderr)
    for path in progress:
        start = time.perf_counter()
        rgb = read_rgb(path, max_pixels)
        sample = predictor(rgb)
        visualizer.add_datasample(path.stem, rgb, sample, draw_gt=False, show=False, with_labels=with_labels)
        overlay, labels = out_dir / "vis" / f"{path.stem}.png", out_dir / "pred" / f"{path.stem}.png"
        _save_png(Image.fromarray(visualizer.get_image()), overlay)
        _save_png(label_image(sample.pred_sem_seg.data[0].cpu().numpy(), predictor.palette, label_offset), labels)
        written.append((overlay, labels))
        progress.set_postfix_str(f"{path.name}: {time.perf_counter() - start:.2f} s")
    return written
