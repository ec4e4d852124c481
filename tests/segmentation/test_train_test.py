"""UperNet end to end on CPU on the generated ADE20K-format set: train from an MAE file, resume, test (API and
CLI), run records; and input that is refused before a run starts, leaving the output folder as it was."""
import shutil
import pytest
from PIL import Image

import segmentation
from backbone import read_checkpoint
from runlib import USER_ERROR_EXIT, read_run_record, write_run_record
from segmentation import SegmentationError
from segmentation.cli import main as segment
from segmentation.config import load_config

def test_train_resume_test(trained_run, copy_run, demo_config, ade_root, longer_options, tmp_path, capsys,
                           cli_options, logged_iterations):
    record = read_run_record(trained_run)
    assert (record["status"], record["task"], record["init"]) == ("finished", "segmentation", "mae")
    assert (record["dataset"], record["arch"]) == ("synthetic_ade", "vit_w64_d4")
    assert set(record["metrics"]) == {"mIoU", "mAcc", "aAcc"} and all(0 <= v <= 100 for v in record["metrics"].values())
    assert logged_iterations(trained_run) == [1, 2]
    assert set(read_checkpoint(trained_run / "iter_2.pth")) >= {"state_dict", "optimizer", "message_hub", "meta"}

    work = copy_run()
    resumed = segmentation.train(demo_config, work, longer_options, data_root=ade_root, resume=True)
    assert logged_iterations(work) == [1, 2, 3, 4]  # continued from iteration 2, not restarted
    record = read_run_record(work)
    assert record["init"] == "mae"  # the resumed run's label, though --init and --checkpoint were not given
    assert record["checkpoint"] == "iter_4.pth" == (work / "last_checkpoint").read_text()  # relative to the folder

    # the CLI's test of the final checkpoint finds what training reported for it
    test_dir = tmp_path / "test"
    rc = segment(["test", str(demo_config), str(work / "iter_4.pth"), "--out", str(test_dir),
                  "--data-root", str(ade_root), "--init", "mae", *cli_options(longer_options)])
    assert rc == 0
    assert f"mIoU {resumed['mIoU']:.2f}" in capsys.readouterr().out
    record = read_run_record(test_dir)
    assert record["status"] == "finished" and record["metrics"] == resumed and record["init"] == "mae"


def test_checkpoint_of_another_architecture_is_refused_before_the_run(trained_run, demo_config, ade_root,
                                                                      tiny_options, tmp_path):
    wider = {**tiny_options, "model.backbone.embed_dim": 32, "model.neck.embed_dim": 32,
             "model.decode_head.in_channels": [32] * 4, "model.auxiliary_head.in_channels": 32}
    with pytest.raises(SegmentationError, match=r"iter_2.pth: not a checkpoint of the model in .*demo_tiny.py .*"
                                                r"keys of another shape \(e.g. backbone.pos_embed"):
        segmentation.test(demo_config, trained_run / "iter_2.pth", tmp_path / "wrong", wider, data_root=ade_root)
    assert not (tmp_path / "wrong" / "run_record.json").exists()


def test_bad_data_fails_before_the_run_and_keeps_the_record(demo_config, ade_root, tiny_options, tmp_path, capsys,
                                                            cli_options):
    root = shutil.copytree(ade_root, tmp_path / "ADEChallengeData2016")
    label = sorted((root / "annotations" / "training").glob("*.png"))[3]
    Image.new("L", (64, 64), 99).save(label)  # every pixel class 99 of 12
    work = tmp_path / "run"
    write_run_record(work, task="segmentation", status="failed", dataset="synthetic_ade", arch="vit_w64_d4",
                     init="random", error="an earlier run")
    before = (work / "run_record.json").read_bytes()
    rc = segment(["train", str(demo_config), "--out", str(work), "--data-root", str(root), *cli_options(tiny_options)])
    assert rc == USER_ERROR_EXIT
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"mae-transfer segment train: error: {label}: label values [99] are outside the 12 classes "
                       "(allowed: 1..12, and 0 or 255 to ignore)")
    assert (work / "run_record.json").read_bytes() == before
    assert not list(work.glob("iter_*.pth"))


def test_a_finished_run_is_not_overwritten(copy_run, demo_config, ade_root, tiny_options, tmp_path, capsys,
                                           cli_options):
    work = copy_run()
    before = {p.name: p.read_bytes() for p in work.iterdir() if p.is_file()}
    train = ["train", str(demo_config), "--data-root", str(ade_root), *cli_options(tiny_options)]
    assert segment([*train, "--out", str(work)]) == USER_ERROR_EXIT
    assert "holds a finished run" in capsys.readouterr().err
    assert segment(["test", str(demo_config), str(work / "iter_2.pth"), "--out", str(work), "--data-root",
                    str(ade_root), *cli_options(tiny_options)]) == USER_ERROR_EXIT
    assert "test into another folder" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in work.iterdir() if p.is_file()} == before

    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert segment([*train, "--out", str(link)]) == USER_ERROR_EXIT
    assert "is a symlink" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere").exists()


def test_overrides_must_name_keys_of_the_config(demo_config, tmp_path, capsys):
    rc = segment(["train", str(demo_config), "--out", str(tmp_path / "run"), "--cfg-options", "max_iters=5"])
    assert rc == USER_ERROR_EXIT
    assert capsys.readouterr().err.strip() == (
        f"mae-transfer segment train: error: override max_iters=5: max_iters is a variable of {demo_config}, used "
        "only while the file is read; setting it now changes nothing (did you mean train_cfg.max_iters?)")
    assert not (tmp_path / "run").exists()
    with pytest.raises(SegmentationError, match=r"override train_cfg.max_iter=5: .* has no key 'train_cfg.max_iter' "
                                                r"\(did you mean train_cfg.max_iters\?\); "
                                                r"write \+train_cfg.max_iter=\.\.\. to add a new key"):
        load_config(demo_config, tmp_path, {"train_cfg.max_iter": 5})
    with pytest.raises(SegmentationError, match=r"train_cfg.max_iters='abc': train_cfg.max_iters is an int in "
                                                r".* \(now 300\), not a str"):
        load_config(demo_config, tmp_path, {"train_cfg.max_iters": "abc"})
    with pytest.raises(SegmentationError, match=r"model.neck.rescales=4: model.neck.rescales is a list in "
                                                r".*, not an int"):
        load_config(demo_config, tmp_path, {"model.neck.rescales": 4})
    with pytest.raises(SegmentationError, match=r"\+train_cfg.max_iters=5: train_cfg.max_iters is already in"):
        load_config(demo_config, tmp_path, {"+train_cfg.max_iters": 5})
    cfg = load_config(demo_config, tmp_path, {"+model.backbone.init_values": 1.0, "train_cfg.max_iters": 5,
                                              "optim_wrapper.optimizer.lr": 1, "model.pretrained": None,
                                              "train_dataloader.dataset.pipeline.3.crop_size": (64, 64)})
    assert cfg.model.backbone.init_values == 1.0 and cfg.train_cfg.max_iters == 5
    assert cfg.train_dataloader.dataset.pipeline[3].crop_size == (64, 64)


def test_launcher_without_gpus_is_a_clear_error(demo_config, tmp_path, ade_root, tiny_options, monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(SegmentationError, match="--launcher pytorch needs GPUs"):
        segmentation.train(demo_config, tmp_path / "ddp", tiny_options, data_root=ade_root, launcher="pytorch")


def scheduled_lrs(cfg, base_lr: float = 1e-3) -> list[float]:
    """The lr of each iteration of ``cfg.train_cfg.max_iters`` under the config's param_scheduler (mmengine's
    schedulers stepping an optimizer), and the lr after the last one."""
    import torch
    from mmengine.optim import OptimWrapper
    from mmengine.registry import PARAM_SCHEDULERS

    optimizer = OptimWrapper(torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr))
    schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer)) for s in cfg.param_scheduler]
    lrs = []
    for _ in range(cfg.train_cfg.max_iters + 1):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no gradients, no change: what mmengine's schedulers expect before they step
        for scheduler in schedulers:
            scheduler.step()
    return lrs


def test_a_shorter_run_keeps_the_schedule_at_the_same_fractions(demo_config, tmp_path):
    """demo_tiny.py: 5 % warm-up, then poly decay to 0 at 300 iterations; at 20 iterations the same shape."""
    cfg = load_config(demo_config, tmp_path, {"train_cfg.max_iters": 20})
    assert [(s.begin, s.end) for s in cfg.param_scheduler] == [(0, 2), (1, 20)]
    lrs = scheduled_lrs(cfg)
    assert max(lrs) == pytest.approx(1e-3) and lrs[-1] == pytest.approx(0, abs=1e-9)
    # schedulers given with the length are taken as given
    cfg = load_config(demo_config, tmp_path, {"train_cfg.max_iters": 20, "param_scheduler.1.end": 300})
    assert [(s.begin, s.end) for s in cfg.param_scheduler] == [(0, 15), (15, 300)]
