"""Segmentation checkpoints: every path that reads one (init, test, resume, mmengine's loader) refuses code in the
file without running it; what training writes is plain data, written whole; resume skips torn files."""
import os
import subprocess
import sys

import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner import CheckpointLoader

import segmentation
from backbone import CheckpointError, read_checkpoint
from runlib import USER_ERROR_EXIT, read_run_record
from segmentation.checkpoints import from_plain, resume_checkpoint, to_plain
from segmentation.cli import main as segment


def test_mmengines_loader_refuses_a_payload(write_payload, tmp_path):
    marker = write_payload(tmp_path / "iter_1.pth", lambda p: {"state_dict": {}, "meta": p})
    refused = r"iter_1.pth: refused, it would run code on loading: .*GLOBAL \w+\.system"  # os.system
    with pytest.raises(CheckpointError, match=refused), segmentation.framework_patches():  # what every run is inside
        CheckpointLoader.load_checkpoint(str(tmp_path / "iter_1.pth"))  # load_from, resume, init_model, inferencer
    assert not marker.exists()


def test_test_and_init_refuse_a_payload_before_the_run(write_payload, demo_config, ade_root, tiny_options, tmp_path,
                                                        capsys, cli_options):
    bad = tmp_path / "model.pth"
    marker = write_payload(bad, lambda p: {"state_dict": {"x": torch.zeros(1)}, "meta": p})
    rc = segment(["test", str(demo_config), str(bad), "--out", str(tmp_path / "test"), "--data-root", str(ade_root),
                  *cli_options(tiny_options)])
    assert rc == USER_ERROR_EXIT
    assert f"error: {bad}: refused, it would run code on loading" in capsys.readouterr().err
    rc = segment(["train", str(demo_config), "--checkpoint", str(bad), "--out", str(tmp_path / "train"),
                  "--data-root", str(ade_root), *cli_options(tiny_options)])
    assert rc == USER_ERROR_EXIT
    assert f"error: {bad}: refused, it would run code on loading" in capsys.readouterr().err
    assert not marker.exists()
    assert not (tmp_path / "test" / "run_record.json").exists() and not (tmp_path / "train").exists()


def test_resume_refuses_a_payload(write_payload, copy_run, demo_config, ade_root, longer_options, capsys, cli_options):
    work = copy_run()
    marker = write_payload(work / "iter_2.pth", lambda p: {"state_dict": {}, "meta": {"iter": 2}, "message_hub": p})
    rc = segment(["train", str(demo_config), "--out", str(work), "--resume", "--data-root", str(ade_root),
                  *cli_options(longer_options)])
    assert rc == USER_ERROR_EXIT
    assert "iter_2.pth: refused, it would run code on loading" in capsys.readouterr().err
    assert not marker.exists()


def test_training_writes_plain_data_that_restores_the_message_hub(trained_run):
    saved = read_checkpoint(trained_run / "iter_2.pth")  # weights_only, nothing allowed beyond plain data
    hub = MessageHub(f"restored-{id(saved)}")
    hub.load_state_dict(from_plain(saved["message_hub"]))
    loss = hub.get_scalar("train/loss")
    assert isinstance(loss, HistoryBuffer) and len(loss.data[0]) == 2  # iterations 1 and 2

    buffer = HistoryBuffer([1.0, 2.5], [1, 2], max_length=7)
    plain = to_plain({"log_scalars": {"loss": buffer}, "eta": buffer.data[0].sum()})
    restored = from_plain(plain)["log_scalars"]["loss"]
    assert [b.tolist() for b in restored.data] == [[1.0, 2.5], [1, 2]] and restored.max_length == 7
    assert plain["eta"] == 3.5 and type(plain["eta"]) is float


def test_resume_skips_torn_checkpoints_and_an_empty_pointer(copy_run, demo_config):
    work = copy_run()
    whole = work / "iter_2.pth"
    torn = work / "iter_4.pth"
    torn.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # a write cut short (no atomic_write)
    (work / "last_checkpoint").write_text(str(torn))
    leftover = work / ".iter_6.pth.abc123.tmp"
    leftover.write_bytes(b"half")
    assert resume_checkpoint(work) == (whole, [f"removed {leftover}, left by a write that was killed",
                                               f"skipped {torn}: torn (incomplete file)"])
    assert not leftover.exists()
    (work / "last_checkpoint").write_text("")
    path, notes = resume_checkpoint(work)
    assert path == whole and notes[0] == f"{work / 'last_checkpoint'} is empty; looking for the newest whole checkpoint"

    with pytest.raises(segmentation.SegmentationError, match=rf"--resume {torn}: torn \(incomplete file\)"):
        segmentation.train(demo_config, work, resume=torn)  # a file given by name is not skipped

    whole.write_bytes(whole.read_bytes()[:1000])
    with pytest.raises(segmentation.SegmentationError, match=r"--resume: no whole checkpoint to resume in .* "
                                                            r"\(iter_4.pth torn \(incomplete file\); iter_2.pth torn"):
        resume_checkpoint(work)


def test_a_copied_run_folder_resumes_from_its_own_checkpoint(copy_run, trained_run):
    """An absolute path in last_checkpoint (mmengine writes them) names the file in the folder being resumed."""
    work = copy_run()
    (work / "last_checkpoint").write_text(str(trained_run / "iter_2.pth"))
    assert resume_checkpoint(work) == (work / "iter_2.pth", [])
    assert (trained_run / "last_checkpoint").read_text() == "iter_2.pth"  # what training writes: relative


KILLED_WRITE = """
import ast, os, signal, sys
import segmentation
from runlib import atomic_write
from segmentation import checkpoints

def put(self, data, filepath):  # the real atomic write, killed (SIGKILL) halfway through iter_4.pth
    def write_half_then_die(tmp):
        with open(tmp, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    killed = str(filepath).endswith("iter_4.pth")
    atomic_write(filepath, write_half_then_die if killed else lambda tmp: tmp.write_bytes(data))

checkpoints.AtomicLocalBackend.put = put
config, work, root, options = sys.argv[1:]
segmentation.train(config, work, ast.literal_eval(options), data_root=root, resume=True)
"""


def test_kill_during_a_checkpoint_write_keeps_the_previous_one(copy_run, demo_config, ade_root, longer_options,
                                                              pytestconfig, logged_iterations):
    work = copy_run()
    options = longer_options
    env = {**os.environ, "PYTHONPATH": str(pytestconfig.rootpath), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", KILLED_WRITE, str(demo_config), str(work), str(ade_root),
                             repr(options)], env=env, capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not (work / "iter_4.pth").exists() and len(list(work.glob(".iter_4.pth.*.tmp"))) == 1
    assert (work / "last_checkpoint").read_text() == str(work / "iter_2.pth")
    read_checkpoint(work / "iter_2.pth")  # the previous checkpoint is whole

    segmentation.train(demo_config, work, options, data_root=ade_root, resume=True)
    assert not list(work.glob(".*.tmp"))
    assert read_run_record(work)["status"] == "finished" and read_checkpoint(work / "iter_4.pth")["meta"]["iter"] == 4
    assert logged_iterations(work)[-2:] == [3, 4]

