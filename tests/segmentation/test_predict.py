"""Using a trained segmentor: ``segment predict`` writes an overlay and a palette label PNG per image, ``Predictor``
gives mmseg's SegDataSample, and mmseg's own inferencer works once ``segmentation`` is imported."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from backbone import read_checkpoint
from runlib import USER_ERROR_EXIT
from runlib.images import read_rgb
from mae_transfer.synthetic import SEMANTIC_CLASSES
from segmentation import Predictor
from segmentation.cli import main as segment
from tests.runlib.test_images import READER_KINDS, png_header, reader_sample


def test_predict_writes_an_overlay_and_a_label_map_per_image(trained_run, demo_config, ade_root, tiny_options,
                                                              tmp_path, capsys, cli_options):
    folder = ade_root / "images" / "validation"
    extra = ade_root / "images" / "training" / "ADE_train_00000001.jpg"
    out = tmp_path / "predictions"
    rc = segment(["predict", str(demo_config), str(trained_run / "iter_2.pth"), "--input", str(folder / "*.jpg"),
                  str(extra), "--out", str(out), "--device", "cpu", *cli_options(tiny_options)])
    assert rc == 0
    images = sorted(folder.glob("*.jpg")) + [extra]
    captured = capsys.readouterr()
    assert f"{len(images)} images" in captured.out and "segment predict" in captured.err  # and a progress bar

    meta = read_checkpoint(trained_run / "iter_2.pth")["meta"]["dataset_meta"]  # what the run trained with
    classes, palette = meta["classes"], meta["palette"]
    for image in images:
        original = np.asarray(Image.open(image).convert("RGB"))
        overlay = Image.open(out / "vis" / f"{image.stem}.png")
        assert overlay.mode == "RGB" and overlay.size == (original.shape[1], original.shape[0])
        assert not np.array_equal(np.asarray(overlay), original)  # the prediction is drawn over the image
        label = Image.open(out / "pred" / f"{image.stem}.png")
        assert label.mode == "P" and label.size == overlay.size
        assert set(np.unique(np.asarray(label)).tolist()) <= set(range(len(classes)))
        assert np.array_equal(np.reshape(label.getpalette()[:3 * len(classes)], (-1, 3)), palette)


def test_label_offset_writes_the_ade_format_convention(trained_run, demo_config, ade_root, tiny_options, tmp_path,
                                                      cli_options):
    image = sorted((ade_root / "images" / "validation").glob("*.jpg"))[0]
    labels = {}
    for offset in (0, 1):
        out = tmp_path / f"offset_{offset}"
        assert segment(["predict", str(demo_config), str(trained_run / "iter_2.pth"), "--input", str(image),
                        "--out", str(out), "--device", "cpu", "--label-offset", str(offset),
                        *cli_options(tiny_options)]) == 0
        labels[offset] = Image.open(out / "pred" / f"{image.stem}.png")
    np.testing.assert_array_equal(np.asarray(labels[1]), np.asarray(labels[0]) + 1)  # class k written as k + 1
    assert labels[1].getpalette()[:3] == [0, 0, 0]  # 0 (ignore in ADE-format labels) is never written
    assert labels[1].getpalette()[3:9] == labels[0].getpalette()[:6]  # each class keeps its colour


def test_an_image_over_the_pixel_limit_is_refused_before_the_model_is_built(trained_run, demo_config, ade_root,
                                                                            tmp_path, capsys):
    huge = png_header(tmp_path / "huge.png", 11000, 7400)
    out = tmp_path / "predictions"
    assert segment(["predict", str(demo_config), str(trained_run / "iter_2.pth"), "--input", str(huge),
                    "--out", str(out)]) == USER_ERROR_EXIT
    assert capsys.readouterr().err.strip() == (
        f"mae-transfer segment predict: error: image {huge}: 11000x7400 is 81.4 megapixels, more than the limit of "
        "50,000,000 pixels (--max-pixels); downscale it or raise the limit")
    assert not out.exists()


def test_predictor_takes_a_path_an_rgb_array_a_bgr_array_or_a_list(trained_run, demo_config, ade_root, tiny_options,
                                                                   tmp_path):
    predictor = Predictor(demo_config, trained_run / "iter_2.pth", device="cpu", cfg_options=tiny_options)
    image = sorted((ade_root / "images" / "validation").glob("*.jpg"))[0]
    rgb = np.asarray(Image.open(image).convert("RGB"))
    from_path = predictor(image)
    assert from_path.pred_sem_seg.data.shape == (1, 64, 64)
    for same in (predictor(rgb), predictor(np.ascontiguousarray(rgb[..., ::-1]), format="BGR"),
                 *predictor([str(image), rgb])):
        torch.testing.assert_close(same.seg_logits.data, from_path.seg_logits.data)
    swapped = predictor(np.ascontiguousarray(rgb[..., ::-1]))  # a BGR array taken as RGB: other scores
    assert not torch.allclose(swapped.seg_logits.data, from_path.seg_logits.data)

    rotated = tmp_path / "rotated.jpg"  # stored turned a quarter left; EXIF says to turn it back
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.rot90(rgb[:, :40])).save(rotated, exif=exif, quality=100)
    assert predictor(rotated).pred_sem_seg.data.shape == (1, 64, 40)  # as displayed, not as stored (40x64)

    trained = read_checkpoint(trained_run / "iter_2.pth")
    assert predictor.classes == list(trained["meta"]["dataset_meta"]["classes"])

    bare = tmp_path / "weights_only.pth"  # no meta: classes and palette come from the config's test set
    torch.save(trained["state_dict"], bare)
    from_config = Predictor(demo_config, bare, device="cpu", cfg_options=tiny_options)
    assert from_config.classes == list(SEMANTIC_CLASSES) and len(from_config.palette) == len(SEMANTIC_CLASSES)
    torch.testing.assert_close(from_config(image).seg_logits.data, from_path.seg_logits.data)


def test_predict_refuses_bad_inputs_and_symlinked_outputs(trained_run, demo_config, ade_root, tmp_path, capsys):
    checkpoint = str(trained_run / "iter_2.pth")
    image = str(sorted((ade_root / "images" / "validation").glob("*.jpg"))[0])
    missing = tmp_path / "missing.jpg"
    assert segment(["predict", str(demo_config), checkpoint, "--input", str(missing), "--out",
                    str(tmp_path / "out")]) == USER_ERROR_EXIT
    assert capsys.readouterr().err.strip() == (f"mae-transfer segment predict: error: --input {missing}: no such "
                                               "file, or no image files (.jpg, .jpeg, .png, .bmp, .tif, .tiff, .webp) "
                                               "in that folder or matching that pattern")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "vis").symlink_to(tmp_path, target_is_directory=True)
    assert segment(["predict", str(demo_config), checkpoint, "--input", image, "--out",
                    str(tmp_path / "out")]) == USER_ERROR_EXIT
    assert "vis is a symlink" in capsys.readouterr().err


INFERENCER = """
import ast
import sys
import importlib.util

import segmentation
from pretrain.config import read_mmengine_config

if importlib.util.find_spec("mmcv._ext") is None:  # mmcv-lite: mmseg.apis imports mmcv.ops, which needs the stand-in
    try:
        from mmseg.apis import MMSegInferencer
        sys.exit("mmseg.apis imported outside framework_patches() with mmcv-lite")
    except ModuleNotFoundError as exc:
        assert "mmcv._ext" in str(exc), exc
with segmentation.framework_patches():
    from mmseg.apis import MMSegInferencer

    config, checkpoint, image, options = sys.argv[1:]
    cfg = read_mmengine_config(config)
    cfg.merge_from_dict(ast.literal_eval(options))
    inferencer = MMSegInferencer(model=cfg, weights=checkpoint, device="cpu")
    print("prediction shape", inferencer(image)["predictions"].shape)
"""


def test_mmseg_inferencer_works_inside_framework_patches(trained_run, demo_config, ade_root, tiny_options,
                                                             pytestconfig):
    image = sorted((ade_root / "images" / "validation").glob("*.jpg"))[0]
    env = {**os.environ, "PYTHONPATH": str(pytestconfig.rootpath), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", INFERENCER, str(demo_config), str(trained_run / "iter_2.pth"),
                             str(image), repr(tiny_options)], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "prediction shape (64, 64)" in result.stdout


@pytest.mark.parametrize("bad", ["config", "checkpoint"])
def test_predictor_names_a_missing_file(bad, trained_run, demo_config, tmp_path):
    from segmentation import SegmentationError

    paths = {"config": demo_config, "checkpoint": trained_run / "iter_2.pth", bad: tmp_path / f"no_{bad}.py"}
    with pytest.raises(SegmentationError, match=f"no_{bad}.py: no such {bad} file"):
        Predictor(paths["config"], paths["checkpoint"])


@pytest.mark.parametrize("kind", READER_KINDS)
def test_the_shared_reader_gives_mmcvs_pixels(tmp_path, kind):
    """Predictions read images with runlib.images.read_rgb; training reads them with mmcv (LoadImageFromFile)."""
    import mmcv

    path = reader_sample(tmp_path, kind)
    decoded = mmcv.imfrombytes(path.read_bytes(), flag="color", channel_order="rgb", backend="cv2")
    np.testing.assert_array_equal(read_rgb(path), decoded)
