"""``mae-transfer grid``: grid files, SLURM parameters and torchrun's variables (fast), then small grids end to end
locally and on a real one-node SLURM cluster (``scripts/slurm_local.sh``; ``slow``)."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runlib import read_run_record
from runlib.overrides import is_override
from mae_transfer import grid
from tests.conftest import CONFIGS, REPO_ROOT

GRIDS = Path(__file__).parent / "grids"
TINY = GRIDS / "tiny.py"


def run_grid(capsys, *args) -> tuple[int, str, str]:
    code = grid.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_prints_table4_runs_resources_and_nothing_else(tmp_path, capsys):
    out = tmp_path / "table4"
    code, text, _ = run_grid(capsys, CONFIGS / "grid" / "mae_table4_coco.py", "--out", out, "--dry-run",
                             "--executor", "slurm", "--partition", "learnlab")
    assert code == 0 and not out.exists()
    lines = text.splitlines()
    assert lines[0] == "6 runs, slurm executor"
    for arch in ("vit_b", "vit_l"):
        for init in ("mae", "supervised", "random"):
            row = next(line.split() for line in lines if line.startswith(f"detection/{arch}/{init}/seed0 "))
            # run, command, config, init, seed, nodes x GPUs, CPUs/proc, mem GB, hours, partition
            assert row[1:5] == ["detect", f"mask_rcnn_{arch}_{init}.py", init, "0"]
            assert row[5:8] == ["8", "x", "8"] and row[-1] == "learnlab"


def test_dry_run_shows_dependencies_and_command_line_resources(tmp_path, capsys):
    code, text, _ = run_grid(capsys, CONFIGS / "grid" / "demo_quick.py", "--out", tmp_path / "q", "--dry-run",
                             "--timeout-min", "30")
    header, *rows = text.splitlines()[1:]
    rows = {line.split()[0]: line for line in rows}
    assert code == 0 and len(rows) == 9
    assert rows["detection/mae/seed0"].endswith("  data, pretrain/mae")
    assert rows["segmentation/random/seed0"].endswith("  data")
    hours = header.index("hours")
    assert all(row[hours:].split()[0] == "0.5" for row in rows.values())  # --timeout-min 30 over the file's 60


@pytest.mark.parametrize("plan", ["quick", "default", "paper"])
def test_demo_grids_keep_the_configs_fractions(plan):
    """Each plan's grid file sets only sizes and lengths: warm-ups and lr steps at the configs' fractions."""
    from mae_transfer import demo
    params = demo.read_plan(plan)["params"]
    runs = {run.name: run for run in grid.load_grid(demo.plan_file(plan), Path("/o"))}
    data = runs["data"].command
    for option, key in (("--num-pretrain", "num_pretrain"), ("--num-coco-train", "num_scenes_train"),
                        ("--num-ade-val", "num_scenes_val"), ("--num-coco-test", "num_scenes_test"),
                        ("--num-ade-test", "num_scenes_test")):
        assert int(data[data.index(option) + 1]) == params[key], option
    for name, config, kind, epochs in (("pretrain/mae", "demo_tiny.py", "pretrain", params["mae_epochs"]),
                                       ("pretrain/supervised", "demo_tiny_finetune.py", "finetune",
                                        params["supervised_epochs"])):
        schedule = demo._epochs(CONFIGS / "pretrain" / config, kind, epochs)
        assert {f"epochs={schedule['epochs']}", f"warmup_epochs={schedule['warmup_epochs']:g}"} <= \
            set(runs[name].overrides)
    for init, config in demo.DETECTION_CONFIGS.items():
        run = runs[f"detection/{init}/seed0"]
        assert Path(run.config) == CONFIGS / "detection" / config
        assert grid.commands(run, resume=False)[0][-5:] == demo._detection_overrides(
            CONFIGS / "detection" / config, params["detection_iters"], 0)
    options = demo._segmentation_options(CONFIGS / "segmentation" / "demo_tiny.py", params["segmentation_iters"], 0)
    warmup, poly = options.pop("param_scheduler")
    options.update({"param_scheduler.0.end": warmup["end"], "param_scheduler.1.begin": poly["begin"],
                    "param_scheduler.1.end": poly["end"]})
    argv = grid.commands(runs["segmentation/mae/seed0"], resume=False)[0]
    given = dict(item.split("=", 1) for item in argv if is_override(item))  # trailing KEY=VALUE
    assert given == {key: str(value) for key, value in options.items()}


@pytest.mark.parametrize("text, message", [
    ("runs = [dict(name='a', kind='detect', config='x.py', colour=1)]", "runs[0]: unknown key 'colour'"),
    ("runs = [dict(name='a', kind='train', config='x.py')]", "run 'a': kind must be one of"),
    ("runs = [dict(name='a', kind='detect', config='x.py', after=['b'])]", "run 'a': after 'b' names no run"),
    ("resources = dict(gpus=8)\nruns = [dict(name='a', kind='detect', config='x.py')]",
     "resources: unknown key 'gpus'"),
    ("params = dict(iters=4)\nruns = [dict(name='a', kind='detect', config='x.py', overrides=['m={iter}'])]",
     "run 'a': {iter} in 'm={iter}' is neither {out} nor a key of params"),
])
def test_bad_grid_file_is_one_line_naming_file_and_key(tmp_path, capsys, text, message):
    path = tmp_path / "bad.py"
    path.write_text(text)
    code, _, err = run_grid(capsys, path, "--out", tmp_path / "out")
    assert code == 2 and message in err and str(path) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_folder_the_grid_did_not_make_or_of_another_grid_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_grid(capsys, TINY, "--out", tmp_path)
    assert code == 2 and "holds files the grid did not make" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    grid.claim(tmp_path / "other", GRIDS / "pretrain_only.py")
    code, _, err = run_grid(capsys, TINY, "--out", tmp_path / "other")
    assert code == 2 and "holds the runs of another grid" in err


def table4_run(name: str) -> grid.Run:
    runs = grid.load_grid(CONFIGS / "grid" / "mae_table4_coco.py", Path("/out"))
    return next(run for run in runs if run.name == name)


def test_slurm_parameters_from_the_grid_file_with_afterok_dependencies(tmp_path):
    detect = table4_run("detection/vit_b/mae/seed0")
    params = grid.SlurmExecutor(tmp_path).parameters(detect, ["17", "18"])
    # detectron2's launch starts the 8 processes of a node itself: one task per node with all their CPUs
    assert params["nodes"] == 8 and params["tasks_per_node"] == 1 and params["gpus_per_node"] == 8
    assert params["cpus_per_task"] == 80 and params["mem_gb"] == 320 and params["timeout_min"] == 2880
    assert params["slurm_additional_parameters"] == {"dependency": "afterok:17:18"}
    segment = grid.load_grid(CONFIGS / "grid" / "mae_table5_ade20k.py", Path("/out"))[0]
    params = grid.SlurmExecutor(tmp_path).parameters(segment, [])
    assert params["tasks_per_node"] == 8 and params["cpus_per_task"] == 10  # one task (rank) per GPU
    assert "slurm_additional_parameters" not in params


SLURM_TASK = {"SLURM_JOB_ID": "4242", "SLURM_PROCID": "11", "SLURM_LOCALID": "3", "SLURM_NODEID": "1",
              "SLURM_JOB_NODELIST": "gpu[07-08,12],cpu1"}


def test_torchrun_variables_from_a_slurm_task():
    segment = grid.load_grid(CONFIGS / "grid" / "mae_table5_ade20k.py", Path("/out"))[0]
    env = grid.distributed_env(segment, SLURM_TASK)
    assert {k: env[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "MASTER_ADDR")} \
        == {"RANK": "11", "LOCAL_RANK": "3", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "8", "NODE_RANK": "1",
            "MASTER_ADDR": "gpu07"}
    assert env["MASTER_PORT"] == grid.distributed_env(segment, dict(SLURM_TASK, SLURM_PROCID="0"))["MASTER_PORT"]
    assert env["MASTER_PORT"] != grid.distributed_env(segment, dict(SLURM_TASK, SLURM_JOB_ID="4243"))["MASTER_PORT"]
    assert [grid.first_host(n) for n in ("node1", "a[3-5]", "a[09,11]", "b1,c[2-3]")] == ["node1", "a3", "a09", "b1"]


def test_multi_node_commands_use_each_framework_launcher():
    env = grid.distributed_env(table4_run("detection/vit_l/random/seed0"), SLURM_TASK)
    argv = grid.commands(table4_run("detection/vit_l/random/seed0"), resume=True, dist=env)[0]
    assert argv[:2] == ["detect", "train"] and "--resume" in argv and argv[-1] == "train.seed=0"
    assert " ".join(argv).count(f"--num-gpus 8 --num-machines 8 --machine-rank 1 --dist-url tcp://gpu07:"
                                f"{env['MASTER_PORT']}") == 1
    segment = grid.load_grid(CONFIGS / "grid" / "mae_table5_ade20k.py", Path("/out"))[0]
    argv = grid.commands(segment, resume=False)[0]
    assert "--launcher" in argv and argv[argv.index("--launcher") + 1] == "pytorch" and "--resume" not in argv
    assert argv[-1] == "randomness.seed=0"


def test_requeue_after_preemption_or_timeout_resumes():
    job = grid.GridJob(table4_run("detection/vit_b/mae/seed0"), resume=False)
    again = job.checkpoint()
    assert again.function.resume is True and again.function.run == job.run
    assert "--resume" in grid.commands(again.function.run, again.function.resume, SLURM_TASK | {
        "NODE_RANK": "0", "MASTER_ADDR": "gpu07", "MASTER_PORT": "1"})[0]


@pytest.mark.slow  # two jobs of about 20 s each (start-up) on a loaded machine
def test_a_failing_run_is_one_line_naming_it_and_its_log_then_resubmitted(tmp_path, capsys):
    path = tmp_path / "fails.py"
    path.write_text("runs = [dict(name='data', kind='command', creates='{out}/data/manifest.json', "
                    "command=['generate-data', '{out}/data', '--num-pretrain', '0'])]")
    out = tmp_path / "out"
    code, text, err = run_grid(capsys, path, "--out", out, "--executor", "local")
    job = json.loads((out / grid.STATE_NAME).read_text())["jobs"]["data"]["job_id"]
    log = out / "jobs" / "data" / f"{job}_0_log.out"
    assert code == 2 and err.startswith("mae-transfer grid: error: data failed: ") and err.endswith(f" (log: {log})\n")
    assert "num_pretrain must be an int >= 1" in err and "num_pretrain must be an int >= 1" in log.read_text()
    code, text, err = run_grid(capsys, path, "--out", out, "--executor", "local")
    assert code == 2 and "data: submitted" in text  # a failed run is submitted again
    assert json.loads((out / grid.STATE_NAME).read_text())["jobs"]["data"]["job_id"] != job


SUBMITIT_LOG = """submitit INFO (2026-12-02 15:10:00,000) - Starting with JobEnvironment(job_id=1)
[12/02 15:10:02 detection.engine]: evaluating configs/detection/demo_tiny.py -> out/test
mae-transfer detect: error: val.json: image 3 is missing
submitit ERROR (2026-12-02 15:10:03,000) - Submitted job triggered an exception
Traceback (most recent call last):
  File "mae_transfer/grid.py", line 289, in __call__
    raise RuntimeError(f"mae-transfer {' '.join(argv[:2])} exited with code {code}")
RuntimeError: mae-transfer detect eval exited with code 2
"""


def test_a_job_that_failed_without_a_run_record_is_named_with_the_error_its_log_ends_with(tmp_path):
    log = tmp_path / "1_0_log.out"
    log.write_text(SUBMITIT_LOG)
    assert grid.log_error(log) == "val.json: image 3 is missing"  # the command's own line, not the wrapper's
    log.write_text(SUBMITIT_LOG.replace("mae-transfer detect: error: val.json: image 3 is missing\n", "")
                   .replace("RuntimeError: mae-transfer detect eval exited with code 2",
                            "runlib.errors.UserError: out/detection/mae/seed0: no finished run with APbox"))
    assert grid.log_error(log) == "UserError: out/detection/mae/seed0: no finished run with APbox"
    log.write_text(SUBMITIT_LOG.splitlines()[0] + "\n")  # killed without a word
    assert grid.log_error(log) is None and grid.log_error(tmp_path / "absent.out") is None
    progress = grid.Progress(tmp_path, {"jobs": {}}, grid.LocalExecutor(tmp_path))
    run = grid.Run("test/detection/mae/published/seed0", "detect-test", tmp_path / "never_made")
    (tmp_path / "jobs" / run.name).mkdir(parents=True)
    (tmp_path / "jobs" / run.name / "7_0_log.out").write_text(SUBMITIT_LOG)
    assert progress.failure(run, "7") == (f"{run.name} failed: val.json: image 3 is missing "
                                          f"(log: {tmp_path / 'jobs' / run.name / '7_0_log.out'})")


def test_a_local_job_is_alive_until_its_controller_ends_and_a_taken_process_id_is_not_a_job(tmp_path):
    import submitit

    executor = grid.LocalExecutor(tmp_path)
    job = submitit.LocalExecutor(folder=tmp_path / "jobs").submit(time.sleep, 2)
    executor.jobs[job.job_id] = job  # as Executor.submit keeps it
    assert executor.alive(job.job_id)
    assert grid.controller_running(job.job_id)  # what a later grid process sees through /proc
    job.result()
    deadline = time.monotonic() + 30
    while executor.alive(job.job_id) and time.monotonic() < deadline:  # the controller ends after its task
        time.sleep(0.1)
    assert not executor.alive(job.job_id) and job.job_id not in executor.jobs
    assert not grid.controller_running(job.job_id)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not grid.controller_running(str(other.pid))  # a live process, but not a submitit controller
    finally:
        other.kill()
        other.wait()
    assert not grid.controller_running(str(other.pid)) and not grid.controller_running("not-a-pid")


def fake_squeue(tmp_path: Path, monkeypatch, *replies: tuple[int, str, str]) -> Path:
    """A ``squeue`` on PATH giving ``replies`` (exit code, stdout, stderr) in turn, the last one from then on;
    returns the file that counts its calls."""
    calls = tmp_path / "squeue_calls"
    calls.write_text("")
    lines = [f'n=$(wc -c < "{calls}"); printf x >> "{calls}"']
    for index, (code, out, err) in enumerate(replies):
        test = "true" if index == len(replies) - 1 else f'[ "$n" -eq {index} ]'
        lines.append(f"if {test}; then printf '{out}'; printf '{err}' >&2; exit {code}; fi")
    script = tmp_path / "bin" / "squeue"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n" + "\n".join(lines) + "\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(grid, "SQUEUE_RETRY_S", 0.0)
    return calls


TIMED_OUT = (1, "", "slurm_load_jobs error: Socket timed out on send/recv operation\n")


def test_squeue_failing_for_a_while_is_asked_again_not_read_as_the_job_ending(tmp_path, monkeypatch):
    calls = fake_squeue(tmp_path, monkeypatch, TIMED_OUT, TIMED_OUT, (0, "RUNNING\n", ""))
    assert grid.SlurmExecutor(tmp_path).alive("17") and len(calls.read_text()) == 3


def test_a_job_squeue_no_longer_knows_or_shows_ended_has_ended(tmp_path, monkeypatch):
    fake_squeue(tmp_path, monkeypatch, (1, "", "slurm_load_jobs error: Invalid job id specified\n"))
    assert not grid.SlurmExecutor(tmp_path).alive("17")
    (tmp_path / "bin" / "squeue").unlink()
    (tmp_path / "bin").rmdir()
    fake_squeue(tmp_path, monkeypatch, (0, "COMPLETED\n", ""))
    assert not grid.SlurmExecutor(tmp_path).alive("17")


def test_squeue_that_keeps_failing_is_one_error_naming_its_message(tmp_path, monkeypatch):
    calls = fake_squeue(tmp_path, monkeypatch, TIMED_OUT)
    with pytest.raises(grid.UserError, match=r"squeue -j 17 failed 5 times in a row: slurm_load_jobs error: "
                                             r"Socket timed out on send/recv operation; the jobs go on"):
        grid.SlurmExecutor(tmp_path).alive("17")
    assert len(calls.read_text()) == grid.SQUEUE_TRIES


def check_finished_grid(out: Path, executor: str) -> None:
    state = json.loads((out / grid.STATE_NAME).read_text())
    for name in ("pretrain/mae", "detection/mae/seed0", "segmentation/random/seed0"):
        record = read_run_record(out / name)
        assert record["status"] == "finished" and record["executor"] == executor
        assert record["job_id"] == state["jobs"][name]["job_id"]
    table = (out / "comparison.md").read_text()
    assert "detection/mae/seed0" in table and "segmentation/random/seed0" in table
    assert (out / "comparison.csv").is_file() and (out / "comparison.png").is_file()


@pytest.mark.slow
def test_local_executor_runs_the_grid_then_submits_nothing(tmp_path, capsys):
    out = tmp_path / "grid"
    code, text, err = run_grid(capsys, TINY, "--out", out, "--executor", "local", "--jobs", "2")
    assert code == 0, err
    check_finished_grid(out, "local")
    code, text, err = run_grid(capsys, TINY, "--out", out, "--executor", "local")
    assert code == 0 and ": submitted" not in text and "4 runs, 0 submitted" in text


def slurm_cluster() -> None:
    """The one-node cluster of scripts/slurm_local.sh (started here when it is not running)."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("the SLURM tests start a one-node cluster with scripts/slurm_local.sh, which needs root and "
                    "apt-get (Debian's slurm-wlm and munge)")
    result = subprocess.run(["bash", str(REPO_ROOT / "scripts" / "slurm_local.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_slurm_executor_runs_the_grid_as_slurm_jobs_then_submits_nothing(tmp_path, capsys):
    slurm_cluster()
    out = tmp_path / "grid"
    code, text, err = run_grid(capsys, TINY, "--out", out, "--executor", "slurm")
    assert code == 0, err
    check_finished_grid(out, "slurm")
    code, text, err = run_grid(capsys, TINY, "--out", out, "--executor", "slurm")
    assert code == 0 and ": submitted" not in text and "4 runs, 0 submitted" in text


@pytest.mark.slow
def test_a_slurm_job_cancelled_mid_way_is_resubmitted_and_resumes(tmp_path):
    slurm_cluster()
    out = tmp_path / "grid"
    command = [sys.executable, "-m", "mae_transfer.cli", "grid", str(GRIDS / "pretrain_only.py"), "--out", str(out),
               "--executor", "slurm"]
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    launcher = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
    checkpoints = out / "pretrain" / "mae" / "checkpoints"
    while not any(checkpoints.glob("step_*.pth")):
        assert launcher.poll() is None, launcher.stdout.read()
        time.sleep(0.2)
    first = json.loads((out / grid.STATE_NAME).read_text())["jobs"]["pretrain/mae"]["job_id"]
    subprocess.run(["scancel", first], check=True)  # SIGTERM (which submitit lets pass), SIGKILL 10 s later
    text = launcher.communicate()[0]
    assert launcher.returncode == 2 and "pretrain/mae failed" in text
    assert read_run_record(out / "pretrain" / "mae")["status"] == "running"  # killed: no chance to say more

    again = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "pretrain/mae: submitted to resume" in again.stdout and "data: finished (not resubmitted)" in again.stdout
    second = json.loads((out / grid.STATE_NAME).read_text())["jobs"]["pretrain/mae"]["job_id"]
    record = read_run_record(out / "pretrain" / "mae")
    assert second != first and record["status"] == "finished" and record["job_id"] == second
    log = (out / "jobs" / "pretrain" / "mae" / f"{second}_0_log.out").read_text()
    resumed_at = int(log.split(" steps ")[1].split(" -> ")[0])
    assert 0 < resumed_at < 300


class FakeSlurm(grid.Executor):
    """Jobs that finish at once (writing what their run ``creates``), and a queue given by the test."""
    name = "slurm"

    def __init__(self, out, queued=()):
        super().__init__(out)
        self.queued, self.submitted, self.cancelled = set(queued), [], []

    def submit(self, run, resume, after_jobs):
        self.submitted.append((run.name, after_jobs))
        Path(run.creates).write_text("done")
        return str(10 + len(self.submitted))

    def alive(self, job_id):
        return job_id in self.queued

    def cancel(self, job_id):
        self.cancelled.append(job_id)
        self.queued.discard(job_id)


def test_a_queued_job_waiting_on_a_failed_run_is_cancelled_and_submitted_again(tmp_path, capsys):
    path = tmp_path / "two.py"
    path.write_text("runs = [dict(name='a', kind='command', command=['x'], creates='{out}/a.txt'),\n"
                    "        dict(name='b', kind='command', command=['x'], creates='{out}/b.txt', after=['a']),\n"
                    "        dict(name='c', kind='command', command=['x'], creates='{out}/c.txt')]")
    out = tmp_path / "out"
    runs = grid.load_grid(path, out)
    state = grid.claim(out, path)
    (out / "c.txt").write_text("done")  # finished earlier: not submitted again
    # a's job 1 failed (gone from the queue, nothing written); b's job 2 still waits for it (afterok)
    state["jobs"] = {"a": {"executor": "slurm", "job_id": "1"}, "b": {"executor": "slurm", "job_id": "2"}}
    executor = FakeSlurm(out, queued={"2"})
    progress = grid.launch(runs, out, state, executor, poll_s=0)
    assert executor.cancelled == ["2"] and executor.submitted == [("a", []), ("b", ["11"])]
    assert progress.done == {"a", "b", "c"} and not progress.failed
    assert json.loads((out / grid.STATE_NAME).read_text())["jobs"]["b"]["job_id"] == "12"
