import errno
import json
import os
import stat

import pytest
import torch

from runlib import (USER_ERROR_EXIT, UserError, atomic_torch_save, atomic_write, atomic_write_json, keep_log_before,
    prepare_run_dir, read_run_record, remove_torn, run_command, run_lifecycle, write_run_record)


def test_write_then_read_round_trip(tmp_path):
    path = write_run_record(tmp_path / "run", task="detection", status="finished", dataset="coco_2017_val",
                            arch="vit_base", init="mae", metrics={"APbox": 51.2, "APmask": 45.5}, iterations=10)
    record = read_run_record(path.parent)
    assert record["metrics"] == {"APbox": 51.2, "APmask": 45.5}
    assert record["iterations"] == 10 and record["status"] == "finished"


def test_records_are_strict_json_with_null_for_nan(tmp_path):
    path = write_run_record(tmp_path, task="detection", status="finished", dataset="d", arch="a", init="mae",
                            metrics={"APbox": float("nan"), "APmask": 1.5},
                            results={"bbox": {"APl": float("nan"), "AP": float("inf"), "per": [float("-inf"), 2.0]}})
    strict = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert strict["metrics"] == {"APbox": None, "APmask": 1.5}
    assert strict["results"] == {"bbox": {"APl": None, "AP": None, "per": [None, 2.0]}}


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


def test_written_files_get_the_default_mode_not_mkstemps_0600(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_write_json({"a": 1}, tmp_path / "x.json")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_atomic_write_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "out" / "run_record.json"
    link.parent.mkdir()
    link.symlink_to(victim)
    atomic_write_json({"a": 1}, link)
    assert victim.read_text() == "precious"
    assert not link.is_symlink() and json.loads(link.read_text()) == {"a": 1}


def test_remove_torn_deletes_only_temporary_files(tmp_path):
    (tmp_path / ".model.pth.abc.tmp").write_bytes(b"torn")
    (tmp_path / "model.pth").write_bytes(b"whole")
    assert [p.name for p in remove_torn(tmp_path)] == [".model.pth.abc.tmp"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]


def test_reading_a_fifo_is_an_error_not_a_hang(tmp_path):
    os.mkfifo(tmp_path / "run_record.json")
    with pytest.raises(UserError, match="not a regular file"):
        read_run_record(tmp_path)


def _record_of(folder):
    return read_run_record(folder)


def test_lifecycle_records_running_then_finished_with_metrics(tmp_path):
    with run_lifecycle(tmp_path, task="detection", dataset="d", arch="vit_base", init="mae", config="c.py") as rec:
        assert _record_of(tmp_path)["status"] == "running"
        rec.metrics = {"APbox": 1.5}
        rec.write("running", iteration=3)
        assert _record_of(tmp_path)["iteration"] == 3
    record = _record_of(tmp_path)
    assert record["status"] == "finished" and record["metrics"] == {"APbox": 1.5}
    assert record["config"] == "c.py" and record["iteration"] == 3


def test_lifecycle_records_failure_and_reraises(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with run_lifecycle(tmp_path, task="pretrain", dataset="d", arch="a", init="random"):
            raise RuntimeError("boom")
    record = _record_of(tmp_path)
    assert record["status"] == "failed" and record["error"] == "RuntimeError: boom"


def test_lifecycle_of_a_non_main_rank_writes_nothing(tmp_path):
    with run_lifecycle(tmp_path / "run", task="pretrain", dataset="d", arch="a", init="random", enabled=False):
        pass
    assert not (tmp_path / "run").exists()


def test_prepare_run_dir_refuses_a_symlink_and_a_finished_run(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with pytest.raises(UserError, match="symlink"):
        prepare_run_dir(tmp_path / "link", command="detect train")
    write_run_record(real, task="detection", status="finished", dataset="d", arch="a", init="mae")
    before = (real / "run_record.json").read_text()
    with pytest.raises(UserError, match="holds a finished run.*--resume"):
        prepare_run_dir(real, command="detect train")
    assert (real / "run_record.json").read_text() == before
    assert prepare_run_dir(real, command="detect train", resume=True) == real
    assert prepare_run_dir(tmp_path / "new" / "run", command="detect train").is_dir()


def test_run_command_reports_user_errors_in_one_line_with_exit_2(capsys):
    def bad():
        raise UserError("config.py: key 'x' = 3: must be a string")
    assert run_command("pretrain", bad) == USER_ERROR_EXIT == 2
    assert capsys.readouterr().err == "mae-transfer pretrain: error: config.py: key 'x' = 3: must be a string\n"
    assert run_command("pretrain", lambda: None) == 0
    with pytest.raises(KeyError):  # a bug keeps its traceback
        run_command("pretrain", lambda: {}["x"])


def test_run_command_reports_file_system_errors_with_the_path(tmp_path, capsys, monkeypatch):
    def write_into_read_only():
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "out" / "run_record.json"))

    assert run_command("pretrain", write_into_read_only) == USER_ERROR_EXIT
    assert capsys.readouterr().err == f"mae-transfer pretrain: error: {tmp_path}/out/run_record.json: Permission denied\n"
    (tmp_path / "folder").mkdir()
    assert run_command("export", lambda: atomic_write(tmp_path / "folder", lambda tmp: tmp.write_text(""))) == 2
    assert capsys.readouterr().err == f"mae-transfer export: error: {tmp_path}/folder: is a folder; give a file name\n"

    def read_only(*args, **kwargs):  # what mkstemp meets in a read-only folder (root would not, so it is simulated)
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / ".run_record.json.x.tmp"))

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    assert run_command("detect", lambda: write_run_record(tmp_path, task="detection", status="running", dataset="d",
                                                          arch="a", init="mae")) == 2
    assert capsys.readouterr().err == f"mae-transfer detect: error: {tmp_path}/run_record.json: Permission denied\n"
    with pytest.raises(OSError):  # an OSError about no path the user gave keeps its traceback
        run_command("pretrain", lambda: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))


def test_record_names_its_executor_and_slurm_job(tmp_path, monkeypatch):
    from runlib.run_record import executor_fields
    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SUBMITIT_LOCAL_JOB_ID"):
        monkeypatch.delenv(name, raising=False)
    write_run_record(tmp_path, task="detection", status="finished", dataset="d", arch="a", init="mae")
    assert {k: read_run_record(tmp_path)[k] for k in ("executor", "job_id")} == {"executor": "local", "job_id": None}
    monkeypatch.setenv("SLURM_JOB_ID", "41")
    write_run_record(tmp_path, task="detection", status="finished", dataset="d", arch="a", init="mae")
    assert read_run_record(tmp_path)["job_id"] == "41" and read_run_record(tmp_path)["executor"] == "slurm"
    array = {"SLURM_JOB_ID": "43", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "3"}
    assert executor_fields(array) == {"executor": "slurm", "job_id": "40_3"}


def test_a_resumed_log_keeps_the_steps_before_the_resumed_one_and_drops_a_torn_line(tmp_path):
    log = tmp_path / "log.jsonl"
    rows = [{"step": s, "loss": 1.0 / s} for s in (1, 2, 3, 4)]
    log.write_text("".join(json.dumps(row) + "\n" for row in rows) + '{"step": 5, "lo')  # killed mid-line
    keep_log_before(log, "step", 3)
    assert [json.loads(line) for line in log.read_text().splitlines()] == rows[:2]
    keep_log_before(log, "step", 0)  # a fresh run
    assert log.read_text() == ""


def test_metrics_text_writes_a_metric_without_value_as_n_a():
    from runlib.run_record import metrics_text

    text = metrics_text({"APbox": 12.345, "APbox_l": None, "mIoU": float("nan")})
    assert text == "APbox 12.35  APbox_l n/a  mIoU n/a"
    assert metrics_text({"mIoU": 30, "mAcc": 41.5}, ", ") == "mIoU 30.00, mAcc 41.50"
