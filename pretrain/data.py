"""Image folders, transforms and the data order, built so that a run can stop anywhere and resume exactly.

Every sample's randomness (crop, flip, RandAugment, and for MAE the masking noise) is drawn from a
generator seeded by (seed, epoch, index): the same image gets the same crop and mask whatever the number
of processes, workers or restarts. The order of the samples is torch's ``DistributedSampler`` (seeded by
epoch), started part-way through an epoch on resume.

Two ways to feed MAE pretraining:

- ``ImageFiles`` + ``pretrain_transform``: each sample decoded from its file and augmented with PIL (also
  what linear probing and fine-tuning use, with timm's RandAugment);
- ``DecodedImages`` + ``PretrainBatches``: the folder decoded once into a uint8 memory map, and the
  RandomResizedCrop, flip and normalisation done a batch at a time in torch. Same crop boxes, flips and
  masking noise as the first for the same (seed, epoch, index); the pixels differ only by resampling (torch's
  antialiased bicubic instead of PIL's) where an image is stored at its own size, which is every image whose
  long side is at most ``max_side`` (larger ones are stored downscaled to it, see ``DecodedImages``).
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset, DistributedSampler
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from runlib import UserError
from runlib.output_dir import made_by, write_marker

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


# ---------------------------------------------------------------------------------------------- decoded once
DECODED_FORMAT = 1          # bump when the stored layout changes: older caches are then rebuilt
CACHE_MARK = "pretrain decoded images"   # runlib.output_dir's marker: a folder carrying it is a cache, deletable
RESIZED_CROP_RATIO = (3 / 4, 4 / 3)   # torchvision RandomResizedCrop's default aspect-ratio range


class DecodedImages:
    """Every image of a file list decoded once into ``folder/images.npy`` (uint8, N x H x W x 3, memory-mapped).

    Storage size: an image whose long side is at most ``max_side`` is stored as it is; a larger one is downscaled
    (PIL bicubic, antialiased, aspect kept) to a long side of ``max_side``. Each image sits in the top-left corner
    of its H x W slot (H, W: the largest stored height and width) and ``sizes`` holds its own (height, width),
    so crops are drawn on the image alone and RandomResizedCrop's scale (a fraction of the image's area) and
    ratio mean what they mean on the file. Downscaling costs detail only where a crop of the stored image is
    smaller than the network input while the same crop of the file was not.

    A file that cannot be decoded gets size (0, 0) and one warning each time the cache is opened; a sample that
    points at it takes the next readable image instead (``source``) and counts the files it passed (``skipped``).

    The cache is keyed by the file list with each file's byte size and modification time, and ``max_side``:
    a changed folder gets a new cache (``open`` removes the other caches under ``root``, recognised by their
    marker; nothing else there is touched). It is written into a temporary folder and renamed into place, so a
    killed run never leaves a partial cache that looks complete.
    """

    def __init__(self, folder: Path, files: Sequence[Path]):
        self.folder = Path(folder)
        self.files = [Path(f) for f in files]
        self.sizes = np.load(self.folder / "sizes.npy")
        self._images = None
        unreadable = json.loads((self.folder / "files.json").read_text())["unreadable"]
        for i, reason in unreadable.items():
            logger.warning("skipping unreadable image %s (%s)", self.files[int(i)], reason)
        readable = np.flatnonzero(self.sizes[:, 0] > 0)
        # source[i]: the first readable image at or after i, wrapping round; skipped[i]: how many it passes over
        self.source = readable[np.searchsorted(readable, np.arange(len(self.files))) % len(readable)]
        self.skipped = (self.source - np.arange(len(self.files))) % len(self.files)

    @property
    def images(self) -> np.ndarray:
        if self._images is None:  # opened lazily, so that a DataLoader worker opens its own map
            self._images = np.load(self.folder / "images.npy", mmap_mode="r").view(np.ndarray)  # plain views
        return self._images

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_images": None}  # workers map the file themselves, never a pickled copy

    def __len__(self) -> int:
        return len(self.files)

    @classmethod
    def open(cls, files: Sequence[Path], root: str | Path, max_side: int, workers: int = 1) -> "DecodedImages":
        """The cache of ``files`` under ``root`` (``root/<key>/``), decoded first if there is none yet."""
        files = [Path(f) for f in files]
        root = Path(root)
        folder = root / _cache_key(files, max_side)
        if not (folder / "sizes.npy").is_file():
            _decode_into(folder, files, max_side, workers)
            for other in root.iterdir():  # caches of an older state of the folder: only those it marked as such
                if other.name != folder.name and made_by(other, CACHE_MARK):
                    shutil.rmtree(other, ignore_errors=True)
        return cls(folder, files)


def _cache_key(files: Sequence[Path], max_side: int) -> str:
    digest = hashlib.sha256(f"{DECODED_FORMAT} {max_side}".encode())
    for f in files:
        stat = f.stat()
        digest.update(f"\n{f.resolve()} {stat.st_size} {stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:20]


def _stored_size(path: Path, max_side: int) -> tuple[int, int] | str:
    """(height, width) the image is stored at, or why its header cannot be read."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except Exception as exc:  # PIL raises many types for one cause: an unreadable file
        return f"{type(exc).__name__}: {exc}"
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(height * scale)), max(1, round(width * scale))


def _decode_into(folder: Path, files: Sequence[Path], max_side: int, workers: int) -> None:
    """Decode ``files`` into a fresh cache folder, written beside it and renamed to ``folder`` at the end."""
    with ThreadPoolExecutor(max(1, workers)) as pool:  # PIL releases the GIL while decoding and resizing
        found = list(pool.map(lambda f: _stored_size(f, max_side), files))
        unreadable = {i: reason for i, reason in enumerate(found) if isinstance(reason, str)}
        sizes = np.array([(0, 0) if i in unreadable else hw for i, hw in enumerate(found)], dtype=np.int64)
        _check_some_readable(files, unreadable)
        shape = (len(files), int(sizes[:, 0].max()), int(sizes[:, 1].max()), 3)
        _check_space(folder.parent, shape)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            logger.info("decoding %d images once into %s (%s uint8, %.1f MiB)", len(files), folder,
                        " x ".join(map(str, shape)), math.prod(shape) / 2**20)
            images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=shape)
            readable = [i for i in range(len(files)) if i not in unreadable]
            for i, error in zip(readable, pool.map(lambda i: _decode(files[i], images[i], sizes[i]), readable)):
                if error:  # header fine, pixels not (e.g. a truncated file)
                    sizes[i], unreadable[i] = 0, error
            images.flush()
            del images
            _check_some_readable(files, unreadable)
            write_marker(tmp, CACHE_MARK)
            np.save(tmp / "sizes.npy", sizes)
            (tmp / "files.json").write_text(json.dumps({"max_side": max_side, "files": [str(f) for f in files],
                                                        "unreadable": dict(sorted(unreadable.items()))}))
            try:
                tmp.rename(folder)
            except OSError:  # another process (another machine's first rank) finished the same cache first
                if not (folder / "sizes.npy").is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _decode(path: Path, slot: np.ndarray, size: np.ndarray) -> str | None:
    """Decode ``path`` at ``size`` (height, width) into the top-left corner of ``slot``; why not, if it fails."""
    height, width = size
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except Exception as exc:  # PIL raises many types for one cause: an unreadable file
        return f"{type(exc).__name__}: {exc}"
    if rgb.size != (width, height):
        rgb = rgb.resize((width, height), Image.BICUBIC)  # antialiased: a downscale, never an upscale
    slot[:height, :width] = np.asarray(rgb)
    return None


def _check_some_readable(files: Sequence[Path], unreadable: dict[int, str]) -> None:
    if len(unreadable) == len(files):
        raise DataError(f"none of the {len(files)} images could be decoded (first: {files[0]}: {unreadable[0]})")


def _check_space(root: Path, shape: tuple[int, ...]) -> None:
    need = math.prod(shape)
    existing = root if root.exists() else next(p for p in root.parents if p.exists())
    free = shutil.disk_usage(existing).free
    if need > free:
        raise DataError(f"decoding the images once needs {need / 2**30:.1f} GiB ({' x '.join(map(str, shape))} "
                        f"uint8) in {root}, which has {free / 2**30:.1f} GiB free; set decode_max_side smaller "
                        "or decode_once=False (decode each image when it is used)")


def resized_crop_box(height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                     generator: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a random crop: ``torchvision.transforms.RandomResizedCrop.get_params``
    with the same draws in the same order, from ``generator`` instead of torch's global random state (setting
    and restoring that state per sample costs more than the crop itself)."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect_ratio = math.exp(torch.empty(1).uniform_(log_ratio[0], log_ratio[1], generator=generator).item())
        w = int(round(math.sqrt(target_area * aspect_ratio)))
        h = int(round(math.sqrt(target_area / aspect_ratio)))
        if 0 < w <= width and 0 < h <= height:
            i = torch.randint(0, height - h + 1, size=(1,), generator=generator).item()
            j = torch.randint(0, width - w + 1, size=(1,), generator=generator).item()
            return i, j, h, w
    in_ratio = width / height  # fallback: a central crop
    if in_ratio < min(ratio):
        w, h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        h, w = height, int(round(height * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


class PretrainBatches(Dataset):
    """MAE pretraining samples from ``DecodedImages``: RandomResizedCrop (bicubic) and a horizontal flip, as
    ``pretrain_transform``, then normalisation, done for a whole batch at once.

    ``__getitems__`` (which torch's DataLoader calls with a batch's indices) returns the batch as one dict:
    ``image`` (B x 3 x S x S, normalised), ``label`` (-1), ``skipped`` (files passed over per sample) and, when
    ``noise_tokens`` > 0, ``noise``; pass ``collate_fn`` to the DataLoader, which then leaves it as it is. Each
    sample draws its crop, flip and noise from its own generator seeded by (seed, epoch, index), in the order
    ``ImageFiles`` with ``pretrain_transform`` draws them, so both give every sample the same box, flip and mask.

    With ``pixels="device"`` the batch carries the draws instead of the pixels: ``source`` (the stored image),
    ``box`` (top, left, height, width) and ``flip``; ``DeviceImages.augment`` makes the pixels where the model runs.
    """

    def __init__(self, decoded: DecodedImages, input_size: int, crop_scale: tuple[float, float], seed: int = 0,
                 noise_tokens: int = 0, pixels: str = "host"):
        if pixels not in ("host", "device"):
            raise ValueError(f"pixels must be 'host' or 'device', got {pixels!r}")
        self.decoded = decoded
        self.input_size = input_size
        self.crop_scale = tuple(crop_scale)
        self.seed = seed
        self.noise_tokens = noise_tokens
        self.pixels = pixels
        self.epoch = 0
        self._source = decoded.source.tolist()                        # Python ints: numpy scalars are slower
        self._sizes = [tuple(hw) for hw in decoded.sizes.tolist()]    # in the per-sample arithmetic
        # (x / 255 - mean) / std as a multiply and an add, each in place (a broadcast addcmul is ~10x slower)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        self._scale, self._shift = 1 / (255 * std), -torch.tensor(IMAGENET_MEAN).view(3, 1, 1) / std

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.decoded)

    def __getitem__(self, index: int) -> dict:
        return {k: v[0] for k, v in self.__getitems__([index]).items()}

    def draws(self, indices: Sequence[int]) -> dict:
        """Per sample: the stored image it reads, its crop box, its flip and its masking noise."""
        boxes = torch.empty(len(indices), 4, dtype=torch.long)
        flips = torch.empty(len(indices), dtype=torch.bool)
        noise = torch.empty(len(indices), self.noise_tokens)
        for k, index in enumerate(indices):
            generator = torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, index))
            used = self._source[index]
            boxes[k] = torch.tensor(resized_crop_box(*self._sizes[used], self.crop_scale, RESIZED_CROP_RATIO,
                                                     generator))
            flips[k] = bool(torch.rand(1, generator=generator) < 0.5)
            if self.noise_tokens:
                torch.rand(self.noise_tokens, generator=generator, out=noise[k])
        out = {"source": torch.as_tensor([self._source[i] for i in indices], dtype=torch.long), "box": boxes,
               "flip": flips, "label": torch.full((len(indices),), -1, dtype=torch.long),
               "skipped": torch.as_tensor(self.decoded.skipped[list(indices)], dtype=torch.long)}
        if self.noise_tokens:
            out["noise"] = noise
        return out

    def __getitems__(self, indices: Sequence[int]) -> dict:
        batch = self.draws(indices)
        if self.pixels == "device":
            return batch
        size, images = self.input_size, self.decoded.images
        out = torch.empty(len(indices), 3, size, size, dtype=torch.uint8)
        for k, (used, (top, left, h, w), flip) in enumerate(zip(batch.pop("source").tolist(), batch.pop("box").tolist(),
                                                               batch.pop("flip").tolist())):
            crop = torch.from_numpy(images[used, top:top + h, left:left + w].copy())  # the map is read-only
            # H x W x 3 seen as 1 x 3 x H x W in channels-last memory: torch's fast uint8 antialiased path
            resized = F.interpolate(crop.permute(2, 0, 1)[None], size=(size, size), mode="bicubic",
                                    antialias=True, align_corners=False)[0]
            out[k] = resized.flip(-1) if flip else resized
        batch["image"] = out.float().mul_(self._scale).add_(self._shift)
        return batch

    @staticmethod
    def collate_fn(batch: dict) -> dict:
        return batch  # already one batch


class DeviceImages:
    """The decoded images held on the training device, and the crops of ``PretrainBatches(pixels="device")`` made
    there: one ``roi_align`` for the whole batch (bilinear, averaging ceil(box / output) samples per output pixel
    in each direction, so a shrinking crop is antialiased as a box filter), flips, normalisation. The boxes, flips
    and noise are the host path's; the pixels differ from its antialiased bicubic by resampling only."""

    def __init__(self, decoded: DecodedImages, input_size: int, device: torch.device):
        stored = decoded.images  # N x H x W x 3 uint8, memory-mapped: copied over a slice at a time
        self.images = torch.empty(stored.shape, dtype=torch.uint8, device=device)
        for start in range(0, len(stored), 1024):
            self.images[start:start + 1024] = torch.from_numpy(np.array(stored[start:start + 1024]))
        self.input_size = input_size
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        self._scale = 1 / (255 * std)
        self._shift = -torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) / std

    def augment(self, batch: dict) -> torch.Tensor:
        """B x 3 x S x S normalised crops of a batch of draws (on this object's device)."""
        from torchvision.ops import roi_align

        images = self.images[batch["source"]].permute(0, 3, 1, 2).float()
        top, left, h, w = batch["box"].to(images.dtype).unbind(1)
        rois = torch.stack([torch.arange(len(images), device=images.device, dtype=images.dtype),
                            left, top, left + w, top + h], 1)
        crops = roi_align(images, rois, output_size=self.input_size, sampling_ratio=-1, aligned=True)
        crops = torch.where(batch["flip"].view(-1, 1, 1, 1), crops.flip(-1), crops)
        return crops.mul_(self._scale).add_(self._shift)


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
