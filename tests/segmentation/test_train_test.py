"""UperNet end to end on CPU on the generated ADE20K-format set: train from an MAE file, resume, test (API and
CLI), run records, and failures that are one clear error with a "failed" record."""
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

import segmentation
from backbone import read_run_record
from segmentation import SegmentationError
from segmentation.cli import main as segment

DEMO = Path(__file__).resolve().parents[2] / "configs" / "segmentation" / "demo_tiny.py"
LONGER = {"train_cfg.max_iters": 4, "train_cfg.val_interval": 4, "param_scheduler.1.end": 4,
          "default_hooks.checkpoint.interval": 4}


def logged_iterations(work_dir: Path) -> list[int]:
    """Training iterations in the work dir's mmengine logs (vis_data/scalars.json), in order."""
    rows = [json.loads(line) for log in sorted(work_dir.glob("*/vis_data/scalars.json"))
            for line in log.read_text().splitlines()]
    return [row["iter"] for row in rows if "iter" in row]


def cli_options(options: dict) -> list[str]:
    return ["--cfg-options"] + [f"{k}={str(v).replace(' ', '')}" for k, v in options.items()]


def test_train_resume_test(tmp_path, ade_root, mae_file, tiny_options, capsys):
    work = tmp_path / "mae"
    first = segmentation.train(DEMO, work, tiny_options, init_checkpoint=mae_file, init="mae", data_root=ade_root)
    assert set(first) == {"mIoU", "mAcc", "aAcc"} and all(0 <= v <= 100 for v in first.values())
    record = read_run_record(work)
    assert (record["status"], record["task"], record["init"]) == ("finished", "segmentation", "mae")
    assert (record["dataset"], record["arch"], record["metrics"]) == ("synthetic_ade", "vit_w64_d4", first)
    assert logged_iterations(work) == [1, 2] and (work / "iter_2.pth").is_file()

    resumed = segmentation.train(DEMO, work, {**tiny_options, **LONGER}, init_checkpoint=mae_file, init="mae",
                                 data_root=ade_root, resume=True)
    assert logged_iterations(work) == [1, 2, 3, 4]  # continued from iteration 2, not restarted
    assert read_run_record(work)["checkpoint"] == str(work / "iter_4.pth")

    # the CLI's test of the final checkpoint finds what training reported for it
    test_dir = tmp_path / "test"
    rc = segment(["test", str(DEMO), str(work / "iter_4.pth"), "--work-dir", str(test_dir),
                  "--data-root", str(ade_root), "--init", "mae", *cli_options({**tiny_options, **LONGER})])
    assert rc == 0
    assert f"mIoU {resumed['mIoU']:.2f}" in capsys.readouterr().out
    record = read_run_record(test_dir)
    assert record["status"] == "finished" and record["metrics"] == resumed and record["init"] == "mae"

    # a checkpoint of another architecture: one clear error, and the record says "failed"
    wider = {**tiny_options, "model.backbone.embed_dim": 32, "model.neck.embed_dim": 32,
             "model.decode_head.in_channels": [32] * 4, "model.auxiliary_head.in_channels": 32}
    with pytest.raises(SegmentationError, match=r"iter_4.pth: not a checkpoint of the model in .*demo_tiny.py .*"
                                                r"keys of another shape \(e.g. backbone.pos_embed"):
        segmentation.test(DEMO, work / "iter_4.pth", tmp_path / "wrong", wider, data_root=ade_root)
    assert read_run_record(tmp_path / "wrong")["status"] == "failed"


def test_random_init_and_a_failed_run(tmp_path, ade_root, tiny_options, capsys):
    root = shutil.copytree(ade_root, tmp_path / "ADEChallengeData2016")
    label = sorted((root / "annotations" / "training").glob("*.png"))[3]
    Image.new("L", (64, 64), 99).save(label)  # every pixel class 99 of 12
    rc = segment(["train", str(DEMO), "--work-dir", str(tmp_path / "run"), "--data-root", str(root),
                  *cli_options(tiny_options)])
    assert rc == 1
    assert f"error: SegDataError: {label}: label values [99] are outside the 12 classes" in capsys.readouterr().err
    record = read_run_record(tmp_path / "run")
    assert record["status"] == "failed" and record["init"] == "random" and "SegDataError" in record["error"]


def test_launcher_without_gpus_is_a_clear_error(tmp_path, ade_root, tiny_options, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SegmentationError, match="--launcher pytorch needs GPUs"):
        segmentation.train(DEMO, tmp_path / "ddp", tiny_options, data_root=ade_root, launcher="pytorch")
