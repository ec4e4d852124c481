"""Image folders: flat or ImageFolder, unreadable files skipped and counted, clear errors, seeded samples; the
decoded-once pipeline against the per-file PIL one."""
import json
import logging
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import transforms

from pretrain import ConfigError, load_config, train_mae
from pretrain.data import (IMAGENET_STD, RESIZED_CROP_RATIO, DataError, DecodedImages, DeviceImages, ImageFiles,
                           PretrainBatches, ResumableSampler, list_classified_images, list_images,
                           pretrain_transform, resized_crop_box)

from tests.conftest import CONFIGS



def losses(run: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return {line["step"]: line["loss"] for line in lines if "loss" in line}


def test_flat_folders_and_imagefolder_trees_are_both_read(image_folder, classify_folders):
    assert len(list_images(image_folder)) == 48
    train, _ = classify_folders
    assert len(list_images(train)) == 32  # class folders are walked for pretraining
    samples, classes = list_classified_images(train)
    assert classes == ["bluish", "reddish"] and len(samples) == 32 and {y for _, y in samples} == {0, 1}


def test_empty_or_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="no data folder given"):
        list_images("")
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match="holds no images"):
        list_images(tmp_path / "empty")
    with pytest.raises(DataError, match="not an ImageFolder tree"):
        list_classified_images(tmp_path / "empty")


def test_val_folder_must_have_the_training_classes(classify_folders, tmp_path):
    (tmp_path / "other" / "greenish").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "other" / "greenish" / "a.png")
    with pytest.raises(DataError, match="expected the training classes"):
        list_classified_images(tmp_path / "other", ["bluish", "reddish"])


def test_an_unreadable_file_is_skipped_with_a_warning_and_counted(tmp_path, caplog):
    for i in range(3):
        Image.new("RGB", (32, 32), (i * 80, 0, 0)).save(tmp_path / f"{i}.png")
    (tmp_path / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    dataset = ImageFiles(list_images(tmp_path), pretrain_transform(32, (0.2, 1.0)), noise_tokens=16)
    with caplog.at_level(logging.WARNING):
        item = dataset[1]
    assert item["skipped"] == 1 and dataset[0]["skipped"] == 0
    assert "skipping unreadable image" in caplog.text and "1.png" in caplog.text
    assert item["image"].shape == (3, 32, 32) and item["noise"].shape == (16,)


def test_sample_randomness_depends_on_seed_epoch_and_index_only(image_folder):
    dataset = ImageFiles(list_images(image_folder), pretrain_transform(32, (0.2, 1.0)), seed=0, noise_tokens=16)
    first = dataset[5]
    torch.rand(100)  # the global random state does not matter
    again = dataset[5]
    assert torch.equal(first["image"], again["image"]) and torch.equal(first["noise"], again["noise"])
    before = torch.random.get_rng_state()
    dataset[6]
    assert torch.equal(before, torch.random.get_rng_state())  # nor is it changed
    dataset.set_epoch(1)
    assert not torch.equal(dataset[5]["noise"], first["noise"])


def test_resumable_sampler_continues_part_way_through_an_epoch(image_folder):
    dataset = ImageFiles(list_images(image_folder), lambda img: img)
    shares = []
    for rank in range(2):
        sampler = ResumableSampler(dataset, num_replicas=2, rank=rank, seed=0)
        sampler.set_position(epoch=3, start=0)
        whole = list(sampler)
        sampler.set_position(epoch=3, start=10)
        assert list(sampler) == whole[10:] and len(sampler) == len(whole) - 10
        shares.append(whole)
    assert sorted(shares[0] + shares[1]) == list(range(48))  # each image once per epoch over the ranks


# ---------------------------------------------------------------------------------------------- decoded once

def decoded_batches(files, tmp_path, input_size=32, max_side=64, **kwargs) -> PretrainBatches:
    decoded = DecodedImages.open(files, tmp_path / "decoded", max_side)
    return PretrainBatches(decoded, input_size, (0.2, 1.0), **kwargs)


def levels(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """|a - b| of two normalised images in 0..255 pixel levels."""
    return (a - b).abs() * torch.tensor(IMAGENET_STD).view(-1, 1, 1) * 255


def test_crop_boxes_are_torchvisions(tmp_path):
    """Same draws in the same order as RandomResizedCrop.get_params, the fallback centre crop included."""
    for height, width in ((32, 32), (128, 96), (20, 200), (300, 7)):
        for seed in range(40):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                expected = transforms.RandomResizedCrop.get_params(torch.empty(3, height, width), (0.2, 1.0),
                                                                   RESIZED_CROP_RATIO)
            got = resized_crop_box(height, width, (0.2, 1.0), RESIZED_CROP_RATIO, torch.Generator().manual_seed(seed))
            assert got == tuple(expected), (height, width, seed)


def test_decoded_batches_give_each_sample_the_pil_paths_crop_flip_and_mask(image_folder, tmp_path):
    files = list_images(image_folder)
    per_file = ImageFiles(files, pretrain_transform(32, (0.2, 1.0)), seed=3, noise_tokens=16)
    batched = decoded_batches(files, tmp_path, seed=3, noise_tokens=16)
    for epoch in (0, 1):
        per_file.set_epoch(epoch)
        batched.set_epoch(epoch)
        batch = batched.__getitems__(list(range(len(files))))
        assert batch["image"].shape == (48, 3, 32, 32) and batch["noise"].shape == (48, 16)
        for i in range(len(files)):
            item = per_file[i]
            assert torch.equal(item["noise"], batch["noise"][i])
            # torch's antialiased bicubic against PIL's: a level here and there, never a different crop or flip
            diff = levels(item["image"], batch["image"][i])
            assert diff.mean() < 0.1 and diff.max() < 3, f"epoch {epoch} image {i}: {diff.mean()}, {diff.max()}"
    assert batch["label"].tolist() == [-1] * 48 and batch["skipped"].tolist() == [0] * 48


def test_a_sample_depends_on_seed_epoch_and_index_not_on_its_batch(image_folder, tmp_path):
    batched = decoded_batches(list_images(image_folder), tmp_path, noise_tokens=16)
    before = torch.random.get_rng_state()
    alone, among = batched[7], batched.__getitems__([30, 7, 2])
    assert torch.equal(before, torch.random.get_rng_state())  # the global random state is left alone
    assert torch.equal(alone["image"], among["image"][1]) and torch.equal(alone["noise"], among["noise"][1])
    batched.set_epoch(1)
    assert not torch.equal(batched[7]["image"], alone["image"])


def test_larger_images_are_stored_downscaled_and_crops_stay_inside_each_image(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shapes = {"wide.png": (50, 200), "tall.png": (90, 30), "small.png": (24, 40)}  # (height, width)
    for name, (h, w) in shapes.items():
        Image.new("RGB", (w, h), (200, 120, 40)).save(data / name)
    decoded = DecodedImages.open(list_images(data), tmp_path / "decoded", max_side=80)
    assert {f.name: tuple(hw) for f, hw in zip(decoded.files, decoded.sizes)} == \
        {"wide.png": (20, 80), "tall.png": (80, 27), "small.png": (24, 40)}  # long side <= 80, aspect kept
    assert decoded.images.shape == (3, 80, 80, 3)
    batched = PretrainBatches(decoded, 32, (0.2, 1.0))
    for epoch in range(5):  # a crop that reached into the zero padding would bring in black pixels
        batched.set_epoch(epoch)
        image = batched.__getitems__([0, 1, 2])["image"]
        expected = (torch.tensor([200, 120, 40]) / 255 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor(IMAGENET_STD)
        assert torch.allclose(image, expected.view(1, 3, 1, 1).expand_as(image), atol=1e-4)


def test_the_cache_is_reused_and_rebuilt_when_the_folder_changes(image_folder, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for f in list_images(image_folder)[:4]:
        (data / f.name).write_bytes(f.read_bytes())
    first = DecodedImages.open(list_images(data), tmp_path / "decoded", 64)
    written = (first.folder / "images.npy").stat().st_mtime_ns
    again = DecodedImages.open(list_images(data), tmp_path / "decoded", 64)
    assert again.folder == first.folder and (again.folder / "images.npy").stat().st_mtime_ns == written
    Image.new("RGB", (32, 32), (0, 255, 0)).save(data / "000.png")  # one image replaced
    changed = DecodedImages.open(list_images(data), tmp_path / "decoded", 64)
    assert changed.folder != first.folder and not first.folder.exists()
    assert changed.images[0, 5, 5].tolist() == [0, 255, 0]
    assert [p.name for p in (tmp_path / "decoded").iterdir()] == [changed.folder.name]  # nothing half-written left


def test_unreadable_files_are_skipped_with_one_warning_each_and_counted(image_folder, tmp_path, caplog):
    data = tmp_path / "data"
    data.mkdir()
    for f in list_images(image_folder)[:5]:
        (data / f.name).write_bytes(f.read_bytes())
    (data / "001.png").write_bytes(b"not an image")                                      # no header
    whole = (data / "002.png").read_bytes()
    (data / "002.png").write_bytes(whole[: len(whole) // 2])                             # header, half the pixels
    (data / "004.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")                        # wrapping round to 000
    with caplog.at_level(logging.WARNING):
        batched = decoded_batches(list_images(data), tmp_path, noise_tokens=16)
        batch = batched.__getitems__([0, 1, 2, 3, 4])
    warned = [r.getMessage() for r in caplog.records if "skipping unreadable image" in r.getMessage()]
    assert len(warned) == 3 and all(any(name in w for w in warned) for name in ("001.png", "002.png", "004.png"))
    assert batch["skipped"].tolist() == [0, 2, 1, 0, 1]
    assert batched.decoded.source.tolist() == [0, 3, 3, 3, 0]
    with caplog.at_level(logging.WARNING):
        for f in data.iterdir():
            f.write_bytes(b"broken")
        with pytest.raises(DataError, match="none of the 5 images could be decoded"):
            DecodedImages.open(list_images(data), tmp_path / "decoded2", 64)


def test_decode_max_side_below_the_input_size_is_one_clear_error(image_folder):
    with pytest.raises(ConfigError, match="decode_max_side = 16: must be at least input_size = 32"):
        load_config("pretrain", CONFIGS / "pretrain/mae_pretrain.py", data_path=str(image_folder),
                    model="mae_vit_tiny_patch16", input_size=32, patch_size=8, decode_max_side=16)


def test_both_pipelines_train_the_same_run(image_folder, tmp_path, tiny_model):
    """Same crops, flips and masks, pixels a level apart at most: the loss curves agree to a small fraction."""
    curves = {}
    for decode_once in (True, False):
        cfg = load_config("pretrain", CONFIGS / "pretrain/mae_pretrain.py", data_path=str(image_folder),
                          batch_size=8, epochs=1, warmup_epochs=0, blr=3e-2, num_workers=0, tensorboard=False,
                          decode_once=decode_once, **tiny_model)
        out = tmp_path / f"decode_once_{decode_once}"
        train_mae(cfg, out)
        curves[decode_once] = losses(out)
        assert (out / "decoded").is_dir() == decode_once
    assert curves[True].keys() == curves[False].keys()
    for step, loss in curves[True].items():
        assert loss == pytest.approx(curves[False][step], rel=2e-3)


def test_device_augmentation_makes_the_host_paths_crops_from_the_same_draws(image_folder, tmp_path):
    """pixels="device" carries the host path's boxes, flips and noise; DeviceImages resamples them (roi_align
    against antialiased bicubic) to within a few levels on average, never another crop or flip."""
    files = list_images(image_folder)
    host = decoded_batches(files, tmp_path, seed=5, noise_tokens=16)
    device = decoded_batches(files, tmp_path, seed=5, noise_tokens=16, pixels="device")
    on_device = DeviceImages(device.decoded, 32, torch.device("cpu"))
    for epoch in (0, 3):
        host.set_epoch(epoch)
        device.set_epoch(epoch)
        expected, draws = host.__getitems__(list(range(48))), device.__getitems__(list(range(48)))
        assert "image" not in draws and draws["box"].shape == (48, 4) and torch.equal(draws["noise"], expected["noise"])
        made = on_device.augment(draws)
        assert made.shape == expected["image"].shape
        diff = levels(made, expected["image"])
        assert diff.mean() < 4, diff.mean()
        flipped = on_device.augment({**draws, "flip": ~draws["flip"]})
        assert levels(flipped, expected["image"]).mean() > 2 * diff.mean()  # a wrong flip would show


def test_device_augmentation_trains_like_the_host_path(image_folder, tmp_path, tiny_model):
    curves = {}
    for where in ("host", "device"):
        cfg = load_config("pretrain", CONFIGS / "pretrain/mae_pretrain.py", data_path=str(image_folder),
                          batch_size=8, epochs=1, warmup_epochs=0, blr=3e-2, num_workers=0, tensorboard=False,
                          augment_on=where, **tiny_model)
        train_mae(cfg, tmp_path / where)
        curves[where] = losses(tmp_path / where)
    assert curves["host"].keys() == curves["device"].keys()
    for step, loss in curves["host"].items():
        assert loss == pytest.approx(curves["device"][step], rel=0.05)


def test_device_augmentation_needs_decoded_images(image_folder):
    with pytest.raises(ConfigError, match="augment_on = 'device': needs decode_once = True"):
        load_config("pretrain", CONFIGS / "pretrain/mae_pretrain.py", data_path=str(image_folder),
                    model="mae_vit_tiny_patch16", augment_on="device", decode_once=False)
