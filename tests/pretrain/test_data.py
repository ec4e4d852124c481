"""Image folders: flat or ImageFolder, unreadable files skipped and counted, clear errors, seeded samples."""
import logging

import pytest
import torch
from PIL import Image

from pretrain.data import (DataError, ImageFiles, ResumableSampler, list_classified_images, list_images,
                           pretrain_transform)


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
