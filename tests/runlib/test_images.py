"""runlib.images: one header check, one RGB reader and one input expansion for every task."""
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from runlib.images import ImageError, as_rgb, expand_inputs, image_info, read_rgb


def exif_rotated_jpeg(path: Path, stored_w: int = 48, stored_h: int = 24, orientation: int = 6) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    pixels = np.zeros((stored_h, stored_w, 3), np.uint8)
    pixels[:, : stored_w // 2] = (250, 0, 0)  # left half red, right half black: the rotation shows
    Image.fromarray(pixels).save(path, exif=exif, quality=100)
    return path


READER_KINDS = ("exif", "L", "P", "RGBA")  # what a framework's decoder and read_rgb must read alike


def reader_sample(tmp_path: Path, kind: str) -> Path:
    """An EXIF-rotated JPEG, or a gray / palette / RGBA PNG: ``kind`` of ``READER_KINDS``."""
    if kind == "exif":
        return exif_rotated_jpeg(tmp_path / "portrait.jpg")
    path = tmp_path / f"{kind}.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)).convert(kind).save(path)
    return path


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header says width x height, with no pixel data: what a large photo's header costs to check."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


def test_exif_orientation_is_applied_to_size_and_pixels(tmp_path):
    path = exif_rotated_jpeg(tmp_path / "portrait.jpg")
    info = image_info(path)
    assert info.stored_size == (48, 24) and info.size == (24, 48) and info.orientation == 6
    rgb = read_rgb(path)
    assert rgb.shape == (48, 24, 3) and rgb.dtype == np.uint8
    # orientation 6: displayed = stored turned 90 degrees clockwise, so the stored left half is now on top
    assert rgb[:20, :, 0].mean() > 200 and rgb[28:, :, 0].mean() < 50


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK"])
def test_gray_palette_alpha_and_cmyk_images_become_rgb(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    source = Image.fromarray(rgb).convert(mode)
    path = tmp_path / f"image_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    source.save(path)
    read = read_rgb(path)
    assert read.shape == (12, 16, 3) and read.dtype == np.uint8
    with Image.open(path) as image:
        np.testing.assert_array_equal(read, np.asarray(image.convert("RGB")))  # alpha dropped, as PIL drops it


def test_a_16_bit_image_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "depth.png"
    Image.fromarray(np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 80).save(path)
    for read in (image_info, read_rgb):
        with pytest.raises(ImageError, match=f"image {path}: I;16.* pixels \\(16-bit or float\\).*convert it"):
            read(path)


def test_an_image_over_the_pixel_limit_is_refused_from_its_header(tmp_path):
    path = png_header(tmp_path / "huge.png", 11000, 7400)  # 81 megapixels, 80 bytes on disk
    with pytest.raises(ImageError, match=rf"^image {path}: 11000x7400 is 81.4 megapixels, more than the limit of "
                                         r"50,000,000 pixels \(--max-pixels\)"):
        read_rgb(path, max_pixels=50_000_000)
    assert image_info(path).size == (11000, 7400)  # no limit: the header alone is read, fine


def test_unreadable_file_is_one_error(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"not an image")
    with pytest.raises(ImageError, match=f"image {path}: cannot be read \\(UnidentifiedImageError"):
        read_rgb(path)


def test_as_rgb_takes_a_path_an_rgb_array_or_a_bgr_array(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 255, (10, 14, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    np.testing.assert_array_equal(as_rgb(path), rgb)
    np.testing.assert_array_equal(as_rgb(str(path)), rgb)
    assert as_rgb(rgb) is rgb
    np.testing.assert_array_equal(as_rgb(rgb[:, :, ::-1], format="BGR"), rgb)
    with pytest.raises(ImageError, match=r"HxWx3 uint8 RGB array, got an array of shape \(8, 8\)"):
        as_rgb(np.zeros((8, 8), np.uint8))
    with pytest.raises(ImageError, match="format='bgr'"):
        as_rgb(rgb, format="bgr")


def test_inputs_expand_files_folders_and_globs_each_once(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name in ("b.jpg", "a.png", "notes.txt", "sub/c.jpg"):
        (folder / name).write_bytes(b"")
    found = expand_inputs([folder / "b.jpg", folder, str(folder / "**" / "*.jpg")])
    assert found == [folder / "b.jpg", folder / "a.png", folder / "sub" / "c.jpg"]
    with pytest.raises(ImageError, match=f"--input {tmp_path}/\\*.gif: no such file, or no image files"):
        expand_inputs([str(tmp_path / "*.gif")])
