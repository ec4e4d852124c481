"""Pretraining runs on CPU: the loss falls, a killed run resumes exactly, two gloo processes equal one."""
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runlib import UserError, read_run_record
from pretrain import ConfigError, load_config, train_mae
from pretrain.engine import cosine_lr
from tests.conftest import CONFIGS, REPO_ROOT


# Subprocess that dies by SIGKILL in the middle of writing the checkpoint of step KILL_AT: the temporary file
# is half written, the rename never happens. Nothing in the process gets to clean up.
KILLER = """
import os, signal, sys, torch
KILL_AT = int(sys.argv[1])
real_save = torch.save
def save_then_die(obj, f, *args, **kwargs):
    real_save(obj, f, *args, **kwargs)
    if isinstance(obj, dict) and obj.get("step") == KILL_AT:
        os.truncate(f, os.path.getsize(f) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
torch.save = save_then_die
from pretrain.cli import pretrain
sys.exit(pretrain(sys.argv[2:]))
"""


def losses(run: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    steps = [line["step"] for line in lines if "loss" in line]
    assert len(steps) == len(set(steps)), "a step is logged twice"
    return {line["step"]: line["loss"] for line in lines if "loss" in line}


def weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, weights_only=True)["model"]


def test_cosine_schedule_with_linear_warmup():
    assert cosine_lr(0, 100, 10, 1.0) == 0.0
    assert cosine_lr(5, 100, 10, 1.0) == pytest.approx(0.5)
    assert cosine_lr(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert cosine_lr(55, 100, 10, 1.0, min_lr=0.1) == pytest.approx(0.55)
    assert cosine_lr(100, 100, 10, 1.0) == pytest.approx(0.0)


def test_short_cpu_run_lowers_the_loss_and_writes_its_records(image_folder, tmp_path, tiny_model):
    cfg = load_config("pretrain", CONFIGS / "pretrain" / "mae_pretrain.py", data_path=str(image_folder),
                      batch_size=8, epochs=8, warmup_epochs=1, blr=3e-2, num_workers=0, checkpoint_every=20,
                      **tiny_model)
    out = tmp_path / "run"
    final = train_mae(cfg, out)
    curve = list(losses(out).values())
    assert len(curve) == 48  # 48 images / batch 8 = 6 steps per epoch, 8 epochs
    first, last = sum(curve[:5]) / 5, sum(curve[-5:]) / 5
    assert last < 0.9 * first, f"loss went from {first:.3f} to {last:.3f}"

    assert final == out / "checkpoints" / "step_00000048.pth"
    assert sorted(p.name for p in final.parent.iterdir()) == ["step_00000040.pth", "step_00000048.pth"]
    ckpt = torch.load(final, weights_only=True)
    assert {"model", "optimizer", "scaler", "step", "rng", "config"} <= set(ckpt) and ckpt["step"] == 48
    # AdamW as the recipe says: betas (0.9, 0.95), decay 0.05 on matrices only, lr = blr * 8 / 256 peak
    groups = ckpt["optimizer"]["param_groups"]
    assert {g["weight_decay"] for g in groups} == {0.0, 0.05} and groups[0]["betas"] == (0.9, 0.95)
    record = read_run_record(out)
    assert (record["task"], record["status"], record["arch"]) == ("pretrain", "finished", "mae_vit_tiny_patch16")
    assert record["metrics"]["loss"] == pytest.approx(sum(curve[-6:]) / 6)  # the last epoch's mean
    cost = record["cost"]                                                   # what the run cost (runlib/cost.py)
    assert cost["params"] > 0 and cost["train_mem_kind"] == "cpu_rss_peak" and cost["train_mem_gb"] > 0
    assert cost["devices"] == 1 and cost["device_hours"] > 0
    assert any(p.name.startswith("events.out.tfevents") for p in (out / "tb").iterdir())

    with pytest.raises(UserError, match="already holds checkpoints"):
        train_mae(cfg, out)  # nothing is overwritten without --resume
    finished = (out / "run_record.json").read_text()
    with pytest.raises(ConfigError, match="batch_size = 8 is not a multiple of batch_per_device"):
        train_mae(cfg, out, resume=True, overrides=["batch_per_device=3"])
    assert (out / "run_record.json").read_text() == finished  # a bad value is refused before the record changes


def test_killed_and_resumed_run_reproduces_the_uninterrupted_loss_curve(image_folder, tmp_path, tiny_model,
                                                                        write_config):
    config = write_config(tmp_path / "tiny.py", "mae_pretrain.py", data_path=str(image_folder), batch_size=8,
                          epochs=2, warmup_epochs=1, blr=3e-2, num_workers=0, checkpoint_every=4,
                          tensorboard=False, **tiny_model)
    uninterrupted = train_mae(config, tmp_path / "full")  # 12 steps; checkpoints at 4, 8, 12

    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLER, "8", "--config", str(config), "--out", str(killed)],
                          cwd=REPO_ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -9, proc.stderr[-2000:]
    folder = killed / "checkpoints"
    assert [p.name for p in folder.glob("step_*.pth")] == ["step_00000004.pth"]  # the torn step-8 file is hidden
    assert len(list(folder.glob(".*.tmp"))) == 1
    assert max(losses(killed)) == 8  # the killed run had logged up to step 8

    resumed = train_mae(config, killed, resume=True)  # continues from step 4, mid-epoch
    assert not list(folder.glob(".*.tmp"))
    full_curve, resumed_curve = losses(tmp_path / "full"), losses(killed)
    assert sorted(resumed_curve) == list(range(1, 13))
    for step, loss in full_curve.items():
        assert abs(resumed_curve[step] - loss) <= 1e-6, f"step {step}: {resumed_curve[step]} != {loss}"
    a, b = weights(uninterrupted), weights(resumed)
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


def test_data_loader_workers_do_not_change_the_run(image_folder, tmp_path, tiny_model):
    """Crops, flips and masks are drawn per (seed, epoch, index), not from a worker's random stream."""
    curves = []
    for workers in (0, 2):
        cfg = load_config("pretrain", CONFIGS / "pretrain" / "mae_pretrain.py", data_path=str(image_folder),
                          batch_size=8, epochs=2, warmup_epochs=1, blr=3e-2, num_workers=workers,
                          tensorboard=False, **tiny_model)
        train_mae(cfg, tmp_path / f"workers{workers}")
        curves.append(losses(tmp_path / f"workers{workers}"))
    assert curves[0] == curves[1]


def test_two_gloo_processes_give_the_weights_of_one_process_with_the_same_global_batch(
        image_folder, tmp_path, tiny_model, write_config):
    """Tolerance. The gradients differ only by float32 summation order, but AdamW divides by sqrt(v) + 1e-8, so a
    weight whose gradient is ~1e-8 moves by a visibly different amount. After 6 steps at peak lr 9.4e-4 we require:
    losses equal to 1e-5 relative, every weight within 1e-4 (a tenth of one AdamW step), and fewer than 1 % of
    the weights off by more than 1e-6 (measured: max 2.4e-5, 0.1 % above 1e-6)."""
    config = write_config(tmp_path / "tiny.py", "mae_pretrain.py", data_path=str(image_folder), batch_size=8,
                          epochs=1, warmup_epochs=0, blr=3e-2, num_workers=0, tensorboard=False, **tiny_model)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "pretrain.train", "--config", str(config), "--out", str(tmp_path / "two")],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = train_mae(config, tmp_path / "one")                                       # batch 8 on one process
    accumulated = train_mae(config, tmp_path / "accum", overrides=["batch_per_device=4"])  # 2 x 4, accumulated
    two = tmp_path / "two" / "checkpoints" / "step_00000006.pth"                       # 4 per process x 2
    assert torch.load(two, weights_only=True)["world_size"] == 2

    reference = losses(tmp_path / "one")
    for run in ("two", "accum"):
        assert losses(tmp_path / run).keys() == reference.keys()
        for step, loss in losses(tmp_path / run).items():
            assert loss == pytest.approx(reference[step], rel=1e-5)
    w1 = weights(one)
    for other in (two, accumulated):
        w = weights(other)
        diff = torch.cat([(w1[k] - w[k]).abs().flatten() for k in w1])
        assert diff.max() < 1e-4, f"{other}: weights differ by up to {diff.max()}"
        assert (diff > 1e-6).float().mean() < 0.01


def test_unreadable_images_are_skipped_and_counted_in_a_run(image_folder, tmp_path, tiny_model, caplog):
    data = tmp_path / "data"
    shutil.copytree(image_folder, data)
    (data / "005.png").write_bytes(b"not a png at all")
    cfg = load_config("pretrain", CONFIGS / "pretrain" / "mae_pretrain.py", data_path=str(data), batch_size=48,
                      epochs=1, warmup_epochs=0, num_workers=0, tensorboard=False, **tiny_model)
    with caplog.at_level(logging.WARNING):
        train_mae(cfg, tmp_path / "run")
    assert "skipping unreadable image" in caplog.text and "005.png" in caplog.text
    assert "1 unreadable image(s) skipped" in caplog.text


def test_a_diverging_run_stops_in_one_line_with_a_failed_run_record(image_folder, tmp_path, tiny_model, write_config,
                                                                     capsys):
    from pretrain.cli import pretrain
    config = write_config(tmp_path / "tiny.py", "mae_pretrain.py", data_path=str(image_folder), batch_size=8,
                          epochs=1, warmup_epochs=0, lr=1e30, num_workers=0, tensorboard=False, **tiny_model)
    assert pretrain(["--config", str(config), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err  # the progress bar writes to stderr too
    errors = [line for line in err.splitlines() if line.startswith("mae-transfer pretrain: error: ")]
    assert len(errors) == 1 and re.search(r"error: loss is (nan|inf) at step \d+; stopping", errors[0])
    assert "Traceback" not in err
    record = read_run_record(tmp_path / "run")
    assert record["status"] == "failed" and "loss is" in record["error"]


def test_missing_data_folder_is_one_clear_error_from_the_command_line(tmp_path, capsys):
    from pretrain.cli import pretrain
    code = pretrain(["--config", str(CONFIGS / "pretrain" / "demo_tiny.py"), "--out", str(tmp_path / "run"),
                     f"data_path={tmp_path / 'nowhere'}"])
    assert code == 2
    assert "does not exist" in capsys.readouterr().err
    code = pretrain(["--config", str(CONFIGS / "pretrain" / "demo_tiny.py"), "--out", str(tmp_path / "run"),
                     "mask_ratio=1.2"])
    assert code == 2 and "mask_ratio = 1.2" in capsys.readouterr().err
