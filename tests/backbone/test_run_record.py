import json

import pytest
import torch

from backbone import atomic_torch_save, read_run_record, write_run_record
from backbone.run_record import atomic_write


def test_write_then_read_round_trip(tmp_path):
    path = write_run_record(tmp_path / "run", task="detection", status="finished", dataset="coco_2017_val",
                            arch="vit_base", init="mae", metrics={"APbox": 51.2, "APmask": 45.5}, iterations=10)
    record = read_run_record(path.parent)
    assert record["metrics"] == {"APbox": 51.2, "APmask": 45.5}
    assert record["iterations"] == 10 and record["status"] == "finished"


def test_bad_fields_are_refused(tmp_path):
    with pytest.raises(ValueError, match="task must be one of"):
        write_run_record(tmp_path, task="pose", status="finished", dataset="d", arch="a", init="mae")
    with pytest.raises(ValueError, match="status must be one of"):
        write_run_record(tmp_path, task="detection", status="done", dataset="d", arch="a", init="mae")


def test_reading_something_else_names_the_file(tmp_path):
    (tmp_path / "run_record.json").write_text(json.dumps({"mIoU": 3}))
    with pytest.raises(ValueError, match="not a run record") as error:
        read_run_record(tmp_path)
    assert str(tmp_path) in str(error.value)
    with pytest.raises(ValueError, match="no run record"):
        read_run_record(tmp_path / "absent")


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "ckpt.pth"
    atomic_torch_save({"step": 1}, path)

    def fail_halfway(tmp):
        tmp.write_bytes(b"half a checkpoint")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, fail_halfway)
    assert torch.load(path) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]
