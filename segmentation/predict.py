"""Use a trained segmentor: ``Predictor`` for Python, ``predict`` for ``mae-transfer segment predict``.

Both are mmseg's own inference (``mmseg.apis.init_model`` / ``inference_model``, the config's test pipeline and
``test_cfg``, e.g. sliding windows) and visualizer (``SegLocalVisualizer``); what differs is that the weights
are read by ``backbone.read_checkpoint`` and must match the config's model exactly (mmengine's loader would run
code from the file and load a mismatched checkpoint with warnings only), and that the class names and palette
are the ones the model was trained with (saved in the checkpoint by the training run).

With mmcv-lite (no compiled ops), ``segmentation`` must be imported before any ``mmseg`` module other than the
top-level package (``mmseg.apis``, ``mmseg.datasets``, ...): it installs the stand-in for ``mmcv.ops`` they
import. ``from segmentation import Predictor`` does so; ``from mmseg.apis import MMSegInferencer`` first fails
with ``No module named 'mmcv._ext'``, and works once ``segmentation`` is imported (the configs'
``custom_imports`` import it too, but only once a config is read, which is too late for that import).
"""
from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

from backbone import atomic_write, prepare_run_dir

from .checkpoints import load_segmentor_weights
from .config import SegmentationError, apply_overrides, read_mmengine_config

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class Predictor:
    """A trained segmentor: ``Predictor(config, checkpoint)(image)`` is mmseg's ``SegDataSample`` whose
    ``pred_sem_seg.data`` (1, H, W) holds class indices into ``predictor.classes``.

    Args:
        config: the segmentation config the checkpoint was trained with.
        checkpoint: a segmentor checkpoint of that config (``iter_N.pth``).
        device: "cpu", "cuda", "cuda:1", ...; the first GPU if there is one, else the CPU, by default.
        cfg_options: overrides of config keys, as for training (e.g. the test pipeline's scale).
    """

    def __init__(self, config: str | Path, checkpoint: str | Path, device: str | None = None,
                 cfg_options: dict | None = None):
        from mmseg.apis import init_model

        config = Path(config)
        if not config.is_file():
            raise SegmentationError(f"{config}: no such config file")
        if not Path(checkpoint).is_file():
            raise SegmentationError(f"{checkpoint}: no such checkpoint file")
        cfg = read_mmengine_config(config)
        apply_overrides(cfg, cfg_options or {}, config)
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

    def __call__(self, image: str | Path | np.ndarray):
        """An image file, or an (H, W, 3) uint8 array in BGR order (mmcv's, as ``cv2.imread`` gives)."""
        from mmseg.apis import inference_model

        return inference_model(self.model, str(image) if isinstance(image, Path) else image)


def _dataset_meta(cfg: Config, meta: dict) -> dict:
    """Classes and palette: those the checkpoint was trained with, else those of the config's test set."""
    saved = meta.get("dataset_meta") or {}
    if saved.get("classes") and saved.get("palette"):
        return {"classes": list(saved["classes"]), "palette": [list(c) for c in saved["palette"]]}
    from mmseg.registry import DATASETS

    init_default_scope(cfg.get("default_scope", "mmseg"))
    dataset = DATASETS.build({**cfg.test_dataloader.dataset, "lazy_init": True})  # reads no file
    return {"classes": list(dataset.metainfo["classes"]), "palette": [list(c) for c in dataset.metainfo["palette"]]}


def image_files(inputs: list[str | Path]) -> list[Path]:
    """Image files named directly or found (non-recursively) in named folders, in order; one
    ``SegmentationError`` for a missing path, a folder without images, or two images of one name."""
    files = []
    for path in map(Path, inputs):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise SegmentationError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)})")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise SegmentationError(f"{path}: no such image file or folder")
    by_stem: dict[str, Path] = {}
    for path in files:
        if path.stem in by_stem and by_stem[path.stem] != path:
            raise SegmentationError(f"{by_stem[path.stem]} and {path} would write the same outputs ({path.stem}.png); "
                                    "predict them into different folders")
        by_stem[path.stem] = path
    return list(by_stem.values())


def _read_rgb(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except Exception as exc:  # decoders raise many types; name the file with the cause
        raise SegmentationError(f"{path}: cannot be read as an image ({type(exc).__name__}: {exc})") from None


def _save_png(image: Image.Image, path: Path) -> None:
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def label_image(labels: np.ndarray, palette: list[list[int]]) -> Image.Image:
    """A palette PNG image: pixel value k is class k, drawn in the dataset's colour for it."""
    if len(palette) > 256:
        raise SegmentationError(f"{len(palette)} classes do not fit a palette PNG (256 colours at most)")
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette([channel for color in palette for channel in color])
    return image


def predict(config: str | Path, checkpoint: str | Path, inputs: list[str | Path], out_dir: str | Path, *,
            device: str | None = None, cfg_options: dict | None = None, opacity: float = 0.5,
            with_labels: bool = True) -> list[tuple[Path, Path]]:
    """Segment every image of ``inputs`` (files or folders); write ``out_dir/vis/NAME.png`` (mmseg's overlay of
    the prediction on the image) and ``out_dir/pred/NAME.png`` (the class index of every pixel, with the
    dataset's palette). Returns the (overlay, label map) pairs."""
    from mmseg.visualization import SegLocalVisualizer

    images = image_files(inputs)
    out_dir = prepare_run_dir(out_dir, command="segment predict", resume=True,
                              inputs=[config, checkpoint, *inputs, *images])
    rgb = {path: _read_rgb(path) for path in images}  # every input readable before the model is built
    predictor = Predictor(config, checkpoint, device=device, cfg_options=cfg_options)
    visualizer = SegLocalVisualizer(name=f"predict-{uuid.uuid4().hex[:8]}", alpha=opacity)
    visualizer.dataset_meta = dict(classes=predictor.classes, palette=predictor.palette)
    written = []
    for path in images:
        sample = predictor(rgb[path][..., ::-1].copy())  # mmseg's pipelines take BGR arrays
        visualizer.add_datasample(path.stem, rgb[path], sample, draw_gt=False, show=False, with_labels=with_labels)
        overlay, labels = out_dir / "vis" / f"{path.stem}.png", out_dir / "pred" / f"{path.stem}.png"
        _save_png(Image.fromarray(visualizer.get_image()), overlay)
        _save_png(label_image(sample.pred_sem_seg.data[0].cpu().numpy(), predictor.palette), labels)
        written.append((overlay, labels))
    return written
