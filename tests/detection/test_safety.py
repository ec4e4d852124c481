"""What a run reads and writes is safe: no checkpoint runs code on load, a finished run is not trained over, no
output is written through a symlink, a mistaken override changes nothing, and a run killed while saving a
checkpoint resumes from the previous one with each iteration logged once."""
import json
import os
import subprocess
import sys

import pytest
from detectron2.config import LazyConfig

import detection
from runlib import UserError, prepare_run_dir, write_run_record
from detection import DetectionInputError
from detection.cli import main as detect
from detection.engine import apply_override
from tests.conftest import REPO_ROOT
from tests.detection.conftest import DEMO


def data_args(coco: dict, train: bool = True) -> list[str]:
    splits = ("train", "val") if train else ("val",)
    return [arg for split in splits for arg in (f"--{split}-json", str(coco[f"{split}_json"]),
                                                f"--{split}-images", str(coco[f"{split}_images"]))]


@pytest.mark.parametrize("path", ["init-checkpoint", "eval-weights", "resume"])
def test_a_pickle_payload_is_refused_on_every_loading_path_and_never_runs(path, coco, tiny, tmp_path, capsys,
                                                                          write_payload):
    out = tmp_path / "run"
    payload = tmp_path / "model_final.pkl"
    marker = write_payload(payload, lambda p: {"model": {"backbone.net.pos_embed": p}, "__author__": "x"})
    if path == "init-checkpoint":
        argv = ["train", "--init-checkpoint", str(payload), *data_args(coco)]
    elif path == "eval-weights":
        argv = ["eval", "--weights", str(payload), *data_args(coco, train=False)]
    else:  # a run folder (made by an earlier run) whose last_checkpoint names the payload
        prepare_run_dir(out, command="detect train")
        (out / "last_checkpoint").write_text(payload.name)
        payload = payload.rename(out / payload.name)
        argv = ["train", "--resume", *data_args(coco)]
    code = detect([argv[0], "--config-file", str(DEMO), "--out", str(out), *argv[1:], *tiny])
    # (only the command's lines: detectron2's cached console loggers may complain about an earlier test's
    # closed capture stream)
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mae-transfer")]
    assert code == 2 and line.startswith("mae-transfer detect: error: ")
    assert f"{payload}: refused, it would run code on loading" in line
    assert not marker.exists()


def finished_record(out) -> bytes:
    write_run_record(out, task="detection", status="finished", dataset="synthetic_coco_val", arch="vit_w32_d2",
                     init="mae", metrics={"APbox": 12.5, "APmask": 10.0})
    return (out / "run_record.json").read_bytes()


def test_a_finished_run_is_not_trained_over_without_resume_nor_evaluated_into(coco, tiny, tmp_path):
    before = finished_record(tmp_path)
    with pytest.raises(UserError, match=f"output folder {tmp_path} holds a finished run .*--resume"):
        detection.train(DEMO, tmp_path, list(tiny), **coco)
    with pytest.raises(DetectionInputError, match=f"output folder {tmp_path} holds a finished training run"):
        detection.evaluate(DEMO, tmp_path, tmp_path / "model_final.pth", list(tiny), val_json=coco["val_json"],
                           val_images=coco["val_images"])
    assert (tmp_path / "run_record.json").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_record.json"]


@pytest.mark.parametrize("override, message", [
    ("train.max_iter=abc", "train.max_iter is an int in .*demo_tiny.py \\(now 3\\), not a str"),
    ("model.backbone.net.depth=abc", "model.backbone.net.depth is an int .*, not a str"),
    ("train.max_iter=2.5", "train.max_iter is an int .*, not a float"),
    ("train.amp.enabled=3", "train.amp.enabled is a bool .*, not an int"),
    ("model.backbone.net.window_block_indexes=3", "model.backbone.net.window_block_indexes is a list .*, not an int"),
    ("train.max_iters=10", ".*demo_tiny.py has no key 'train.max_iters'"),
])
def test_a_mistaken_override_is_refused_before_anything_is_written(override, message, coco, tiny, tmp_path):
    before = finished_record(tmp_path)
    with pytest.raises(DetectionInputError, match=f"^override {override}: {message}") as error:
        detection.train(DEMO, tmp_path, [*tiny, override], resume=True, **coco)
    assert "\n" not in str(error.value)
    assert (tmp_path / "run_record.json").read_bytes() == before  # the finished run's record as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_record.json"]


def test_overrides_of_a_compatible_type_are_taken():
    cfg = LazyConfig.load(str(DEMO))
    for override in ("optimizer.lr=1", "train.max_iter=7", "dataloader.test.dataset.names=[a,b]",
                     "model.backbone.net.window_block_indexes=[1]", "train.amp.enabled=true", "+train.note=x"):
        apply_override(cfg, override, str(DEMO))
    assert (cfg.optimizer.lr, cfg.train.max_iter, list(cfg.dataloader.test.dataset.names)) == (1, 7, ["a", "b"])
    net, amp = cfg.model.backbone.net, cfg.train.amp
    assert (list(net.window_block_indexes), amp.enabled, cfg.train.note) == ([1], True, "x")


@pytest.mark.parametrize("name", ["log.txt", "metrics.json", "config.yaml", "inference"])
def test_no_output_is_written_through_a_symlink_planted_in_the_run_folder(name, coco, tiny, tmp_path):
    out, elsewhere = tmp_path / "run", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (elsewhere / "victim.txt").write_text("keep")
    (out / name).symlink_to(elsewhere if name == "inference" else elsewhere / "victim.txt")
    with pytest.raises(UserError, match=f"{out / name} is a symlink .*outputs are never written through"):
        detection.train(DEMO, out, list(tiny), **coco)
    assert [p.name for p in elsewhere.iterdir()] == ["victim.txt"] and (elsewhere / "victim.txt").read_text() == "keep"
    assert not (out / "run_record.json").exists()


# Run in a subprocess: train with torch.save patched to write a few bytes of the second checkpoint and then kill
# its own process (SIGKILL, as kill -9): the kill lands in the middle of a checkpoint write, every time.
_KILLED_WHILE_SAVING = """
import os, signal, sys, json
import torch
import detection
saves = []
real_save = torch.save
def torn_save(obj, f, *args, **kwargs):
    saves.append(str(f))
    if len(saves) == 2:
        with open(f, "wb") as fh:
            fh.write(b"PK\\x03\\x04 a torn zip")
            fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)
torch.save = torn_save
config, out, overrides, coco = json.loads(sys.argv[1])
detection.train(config, out, overrides, **coco)
"""


def test_killed_while_saving_a_checkpoint_resumes_from_the_previous_one(coco, tiny, tmp_path):
    out = tmp_path / "run"
    overrides = [*tiny, "train.max_iter=5", "train.checkpointer.period=2", "train.log_period=1"]
    args = json.dumps([str(DEMO), str(out), overrides, {k: str(v) for k, v in coco.items()}])
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
    killed = subprocess.run([sys.executable, "-c", _KILLED_WHILE_SAVING, args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    (torn,) = [p.name for p in out.glob(".model_0000003.pth.*.tmp")]  # killed inside the write of iteration 3
    assert (out / "last_checkpoint").read_text() == "model_0000001.pth"
    assert [row["iteration"] for row in metrics_rows(out)] == [0, 1, 2]  # logged before the kill

    detection.train(DEMO, out, overrides, resume=True, **coco)
    log = (out / "log.txt").read_text()
    assert f"removed 1 temporary files a killed run left: {torn}" in log
    assert "resuming from" in log and "model_0000001.pth at iteration 2" in log
    assert not list(out.glob(".*.tmp"))
    assert [row["iteration"] for row in metrics_rows(out)] == [0, 1, 2, 3, 4]  # iteration 2 not twice
    assert json.loads((out / "run_record.json").read_text())["status"] == "finished"


def metrics_rows(out) -> list[dict]:
    """detectron2's per-iteration training events (metrics.json lines with a loss)."""
    rows = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    return [row for row in rows if "total_loss" in row]
