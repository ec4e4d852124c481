"""A trained detector's predictions on image files: detection.Predictor (LazyConfig and yacs) and
``mae-transfer detect predict`` (one overlay per image, COCO results with RLE masks). The detectors here are
randomly initialised and saved by the tests; a score threshold of 0 keeps every detection."""
import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.modeling import build_model
from PIL import Image

import detection
from runlib import UserError
from runlib.images import ImageError
from detection.cli import main as detect
from detection.data import DetectionInputError
from detection.predict import predict_files
from detection.yacs_backbone import add_vit_config
from tests.runlib.test_images import png_header
from tests.detection.conftest import CONFIGS, DEMO

YACS = CONFIGS / "yacs_mask_rcnn_vit_b.yaml"
# The yacs ViT-B made tiny; a 128-px square pad and the recipe's rule that the test resize stays inside it.
YACS_TINY = ["MODEL.VIT.EMBED_DIM=32", "MODEL.VIT.DEPTH=2", "MODEL.VIT.NUM_HEADS=2",
             "MODEL.VIT.WINDOW_BLOCK_INDEXES=[0]", "MODEL.VIT.IMG_SIZE=128", "MODEL.VIT.WINDOW_SIZE=4",
             "MODEL.VIT.SQUARE_PAD=128", "MODEL.VIT.DROP_PATH_RATE=0.0", "INPUT.MIN_SIZE_TEST=128", "INPUT.MAX_SIZE_TEST=128",
             "MODEL.ROI_HEADS.SCORE_THRESH_TEST=0.0"]


@pytest.fixture(scope="module")
def lazy_detector(tmp_path_factory, tiny) -> Path:
    """A randomly initialised tiny detector of demo_tiny.py, saved as detectron2's checkpointer saves one."""
    torch.manual_seed(0)
    model = instantiate(LazyConfig.apply_overrides(LazyConfig.load(str(DEMO)), list(tiny)).model)
    path = tmp_path_factory.mktemp("detector") / "model_final.pth"
    torch.save({"model": model.state_dict(), "iteration": 0}, path)
    return path


@pytest.fixture(scope="module")
def yacs_detector(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    cfg = get_cfg()
    add_vit_config(cfg)
    cfg.merge_from_file(str(YACS))
    cfg.merge_from_list([part for override in YACS_TINY for part in override.split("=", 1)])
    cfg.MODEL.DEVICE = "cpu"
    path = tmp_path_factory.mktemp("detector") / "yacs_model_final.pth"
    torch.save({"model": build_model(cfg).state_dict()}, path)
    return path


def test_predict_writes_an_overlay_per_image_and_coco_results(lazy_detector, coco, tiny, tmp_path, capsys):
    images = sorted(Path(coco["val_images"]).iterdir())
    out = tmp_path / "predictions"
    code = detect(["predict", "--config-file", str(DEMO), "--weights", str(lazy_detector), "--device", "cpu",
                   "--categories", str(coco["val_json"]), "--out", str(out),
                   "--input", str(images[0].parent), str(images[0].parent / "*.png"), *tiny])
    assert code == 0 and "predict finished" in capsys.readouterr().out
    for image in images:  # each input once, though named by the folder and the glob
        with Image.open(image) as original, Image.open(out / f"{image.stem}.png") as overlay:
            assert overlay.size == original.size and overlay.mode == "RGB"
    categories = {c["id"]: c["name"] for c in json.loads(Path(coco["val_json"]).read_text())["categories"]}
    results = json.loads((out / "coco_instances_results.json").read_text())
    assert {r["file_name"] for r in results} == {str(p) for p in images}
    for result in results:
        with Image.open(result["file_name"]) as image:
            height, width = image.size[::-1]
        assert images[result["image_id"] - 1] == Path(result["file_name"])
        assert categories[result["category_id"]] == result["category_name"]
        mask = mask_util.decode(result["segmentation"])
        assert mask.shape == (height, width) and mask.dtype == np.uint8
        assert len(result["bbox"]) == 4 and 0 <= result["score"] <= 1


def test_predictor_takes_a_path_an_rgb_array_a_bgr_array_or_a_list(lazy_detector, coco, tiny, tmp_path):
    predictor = detection.Predictor(DEMO, lazy_detector, tiny, device="cpu")
    path = sorted(Path(coco["val_images"]).iterdir())[0]
    rgb = np.asarray(Image.open(path).convert("RGB"))
    from_path = predictor(path)
    assert len(from_path) > 0 and from_path.image_size == rgb.shape[:2]
    for same in (predictor(rgb), predictor(np.ascontiguousarray(rgb[:, :, ::-1]), format="BGR"),
                 *predictor([str(path), rgb])):
        torch.testing.assert_close(same.pred_boxes.tensor, from_path.pred_boxes.tensor)
        torch.testing.assert_close(same.scores, from_path.scores)
    with pytest.raises(ImageError, match=r"HxWx3 uint8 RGB array, got an array of shape \(8, 8\)"):
        predictor(np.zeros((8, 8), dtype=np.uint8))

    rotated = tmp_path / "rotated.jpg"  # stored turned a quarter left; EXIF says to turn it back
    exif = Image.Exif()
    exif[0x0112] = 6
    upright = np.ascontiguousarray(rgb[:, :40])
    Image.fromarray(np.rot90(upright)).save(rotated, exif=exif, quality=100)
    assert predictor(rotated).image_size == upright.shape[:2]  # the image as displayed, not as stored


def test_categories_json_gives_each_input_its_own_ground_truth_id(lazy_detector, coco, tiny, tmp_path, capsys):
    images = sorted(Path(coco["val_images"]).iterdir())
    ids = {image["file_name"]: image["id"] for image in json.loads(Path(coco["val_json"]).read_text())["images"]}
    out = tmp_path / "predictions"
    code = detect(["predict", "--config-file", str(DEMO), "--weights", str(lazy_detector), "--device", "cpu",
                   "--categories", str(coco["val_json"]), "--out", str(out),
                   "--input", *map(str, reversed(images)), *tiny])  # input order is not the json's order
    assert code == 0
    assert "detect predict" in capsys.readouterr().err  # the progress bar
    results = json.loads((out / "coco_instances_results.json").read_text())
    assert {r["file_name"] for r in results} == {str(p) for p in images}
    assert all(r["image_id"] == ids[Path(r["file_name"]).name] for r in results)

    stranger = tmp_path / "stranger.png"
    Image.open(images[0]).save(stranger)
    code = detect(["predict", "--config-file", str(DEMO), "--weights", str(lazy_detector), "--device", "cpu",
                   "--categories", str(coco["val_json"]), "--out", str(tmp_path / "again"),
                   "--input", str(images[0]), str(stranger), *tiny])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"mae-transfer detect: error: --input {stranger}: is not among its images")
    assert not (tmp_path / "again").exists()  # refused before anything was written


def test_an_image_over_the_pixel_limit_is_refused_before_anything_is_written(lazy_detector, coco, tiny, tmp_path,
                                                                             capsys):
    huge = png_header(tmp_path / "huge.png", 11000, 7400)
    image = sorted(Path(coco["val_images"]).iterdir())[0]
    out = tmp_path / "predictions"
    code = detect(["predict", "--config-file", str(DEMO), "--weights", str(lazy_detector), "--device", "cpu",
                   "--out", str(out), "--input", str(image), str(huge), *tiny])
    assert code == 2 and not out.exists()
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"mae-transfer detect: error: image {huge}: 11000x7400 is 81.4 megapixels, more than the limit of "
        "50,000,000 pixels (--max-pixels); downscale it or raise the limit")


def wide_image() -> np.ndarray:
    """40 x 200 px: the test resize (shortest edge 128, longest at most 128) makes it 26 x 128."""
    return np.random.default_rng(0).integers(0, 255, (40, 200, 3), dtype=np.uint8)


def test_a_wide_image_through_the_yacs_predictor_is_not_cropped(yacs_detector):
    predictor = detection.Predictor(YACS, yacs_detector, YACS_TINY, device="cpu")
    seen = []
    predictor.model.backbone.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    instances = predictor(wide_image())
    assert seen == [(1, 3, 32, 128)]  # all 128 columns of the resized image reach the backbone
    assert instances.image_size == (40, 200)
    assert instances.pred_boxes.tensor[:, 2].max() > 0.75 * 200  # detections reach the image's right quarter


def test_an_input_larger_than_the_square_pad_is_an_error_not_a_crop(yacs_detector):
    # as detectron2's yacs defaults (longest edge 1333) exceed ViTDet's 1024 square
    predictor = detection.Predictor(YACS, yacs_detector, [*YACS_TINY, "INPUT.MAX_SIZE_TEST=256"], device="cpu")
    with pytest.raises(DetectionInputError, match=r"an input of 64x256 px .* larger than the backbone's square pad "
                                                  r"of 128x128 .*would be cropped"):
        predictor(wide_image())


def test_predict_refuses_inputs_that_match_nothing(lazy_detector, tiny, tmp_path):
    predictor = detection.Predictor(DEMO, lazy_detector, tiny, device="cpu")
    with pytest.raises(UserError, match=f"--input {tmp_path}/\\*.jpg: no such file, or no image files"):
        predict_files(predictor, [str(tmp_path / "*.jpg")], tmp_path / "out")
