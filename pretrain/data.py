"""Image folders, transforms and the data order, built so that a run can stop anywhere and resume exactly.

Every sample's randomness (crop, flip, RandAugment, and for MAE the masking noise) is drawn from a
generator seeded by (seed, epoch, index): the same image gets the same crop and mask whatever the number
of processes, workers or restarts. The order of the samples is torch's ``DistributedSampler`` (seeded by
epoch), started part-way through an epoch on resume.
"""
from __future__ import annotations

import logging
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from backbone import UserError

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EVAL_CROP_PCT = 224 / 256  # resize to size / crop_pct, then centre-crop (official evaluation)


class DataError(UserError):
    """An image folder that cannot be used, with the folder and the problem in the message."""


def _folder(root: str | Path) -> Path:
    if not str(root).strip():  # Path("") would silently mean the current folder
        raise DataError("no data folder given: set data_path (and val_path for classification)")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data folder {str(root)!r} does not exist or is not a folder")
    return root


def list_images(root: str | Path) -> list[Path]:
    """Every image file under ``root`` (a flat folder or an ImageFolder tree), sorted."""
    root = _folder(root)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMG_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"data folder {root} holds no images (looked for {', '.join(IMG_EXTENSIONS)})")
    return files


def list_classified_images(root: str | Path, classes: Sequence[str] | None = None) -> tuple[list[tuple[Path, int]], list[str]]:
    """(path, class index) pairs of an ImageFolder tree ``root/<class>/<image>``, and the class names.

    With ``classes`` (e.g. the training set's), the folder must have exactly those class folders.
    """
    root = _folder(root)
    try:
        found, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as exc:
        raise DataError(f"data folder {root} is not an ImageFolder tree <class>/<image> with images: {exc}") from None
    if classes is not None and list(classes) != found:
        raise DataError(f"data folder {root} has classes {found}, expected the training classes {list(classes)}")
    return [(Path(p), y) for p, y in samples], found


@contextmanager
def seeded_rng(seed: int):
    """Seed torch (CPU), numpy and Python's ``random`` for the block, and put their states back afterwards."""
    states = torch.random.get_rng_state(), np.random.get_state(), random.getstate()
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)
    try:
        yield
    finally:
        torch.random.set_rng_state(states[0])
        np.random.set_state(states[1])
        random.setstate(states[2])


def sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class ImageFiles(Dataset):
    """Images (with optional labels), transformed under a per-(seed, epoch, index) random state.

    Items are dicts: ``image`` (the transformed tensor), ``label`` (-1 when unlabelled), ``skipped`` (files
    that failed to decode and were replaced by the next readable one) and, when ``noise_tokens`` > 0,
    ``noise``: uniform masking noise of that length, as ``MaskedAutoencoderViT.forward`` takes it.
    """

    def __init__(self, files: Sequence[Path], transform: Callable, labels: Sequence[int] | None = None,
                 seed: int = 0, noise_tokens: int = 0):
        self.files = [Path(f) for f in files]
        self.labels = list(labels) if labels is not None else [-1] * len(self.files)
        self.transform = transform
        self.seed = seed
        self.noise_tokens = noise_tokens
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Call before creating the epoch's DataLoader iterator (workers get a copy of the dataset then)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, index: int) -> tuple[Image.Image, int, int]:
        for skipped in range(len(self.files)):
            i = (index + skipped) % len(self.files)
            try:
                with Image.open(self.files[i]) as img:
                    return img.convert("RGB"), i, skipped
            except Exception as exc:  # PIL raises many types for one cause: an unreadable file
                logger.warning("skipping unreadable image %s (%s: %s)", self.files[i], type(exc).__name__, exc)
        raise DataError(f"none of the {len(self.files)} images could be decoded (first: {self.files[0]})")

    def __getitem__(self, index: int) -> dict:
        img, used, skipped = self._read(index)
        with seeded_rng(sample_seed(self.seed, self.epoch, index)):
            item = {"image": self.transform(img), "label": self.labels[used], "skipped": skipped}
            if self.noise_tokens:
                item["noise"] = torch.rand(self.noise_tokens)
        return item


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` (shuffled per epoch, whole-batch trimmed) that can start ``start`` samples into
    this rank's share of an epoch."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.start = 0

    def set_position(self, epoch: int, start: int) -> None:
        self.set_epoch(epoch)
        self.start = start

    def __iter__(self):
        return iter(list(super().__iter__())[self.start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


def shard(n: int, rank: int, world_size: int) -> list[int]:
    """Evaluation indices of one rank: every sample exactly once over all ranks (no padding)."""
    return list(range(rank, n, world_size))


def _normalize() -> list:
    return [transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def pretrain_transform(input_size: int, crop_scale: tuple[float, float]) -> Callable:
    """MAE pretraining augmentation: RandomResizedCrop (bicubic) and a horizontal flip."""
    return transforms.Compose([
        transforms.RandomResizedCrop(input_size, scale=crop_scale, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.RandomHorizontalFlip(), *_normalize()])


def eval_transform(input_size: int) -> Callable:
    """Resize the short side to ``input_size / 0.875`` (bicubic) and centre-crop, as the official evaluation."""
    return transforms.Compose([
        transforms.Resize(int(input_size / EVAL_CROP_PCT), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(input_size), *_normalize()])


def finetune_transform(input_size: int, rand_aug: str, reprob: float) -> Callable:
    """timm's training transform as MAE fine-tuning uses it: RandomResizedCrop, flip, RandAugment, erasing."""
    from timm.data import create_transform
    from timm.data.auto_augment import RandAugment, posterize
    transform = create_transform(input_size=input_size, is_training=True, auto_augment=rand_aug or None,
                                 color_jitter=None, interpolation="bicubic", re_prob=reprob, re_mode="pixel",
                                 re_count=1, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    # At magnitude 10 timm posterizes to 0 bits, which Pillow >= 10 rejects; older Pillow made the image black.
    for step in transform.transforms:
        if isinstance(step, RandAugment):
            for op in step.ops:
                if op.aug_fn is posterize:
                    op.aug_fn = _posterize
    return transform


def _posterize(img: Image.Image, bits_to_keep: int, **kwargs) -> Image.Image:
    from timm.data.auto_augment import posterize
    return img.point(lambda _: 0) if bits_to_keep <= 0 else posterize(img, bits_to_keep, **kwargs)
