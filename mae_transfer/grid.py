"""``mae-transfer grid``: a paper table as one command, on a SLURM cluster or as local processes.

A grid file (``configs/grid/*.py``, read by mmengine's ``Config`` as the pretraining configs are) is a table:
``resources`` (each run's SLURM request unless the run says otherwise) and ``runs``, one dict per run:

    dict(name="detection/vit_b/mae", kind="detect", config="configs/detection/mask_rcnn_vit_b_mae.py",
         init="mae", weights="{out}/pretrain/mae/encoder.pth", seeds=[0, 1, 2], after=["pretrain/mae"],
         args=[...], overrides=[...], resources=dict(nodes=8, gpus_per_node=8))

``kind`` picks the project's own command: ``detect`` (``mae-transfer detect train``), ``segment`` (``segment
train``), ``pretrain`` and ``finetune`` (then ``export`` of the last checkpoint to ``export`` when given), or
``command`` (any ``mae-transfer`` argument list, finished once the path ``creates`` exists). ``seeds`` makes one
run per seed, named ``NAME/seedN``; ``after`` names the runs whose outputs it needs; ``{out}`` in any string is the
grid's output folder and ``{KEY}`` the value of ``params[KEY]`` (so that a file with ``_base_`` can change the
numbers of its base's runs); each run writes into ``OUT/NAME`` its usual ``run_record.json``. A top-level
``seeds = N`` (or ``--seeds N``) gives every run with seeds the seeds 0..N-1.

Jobs are submitit jobs on both executors, so a run is the same pickled call with the same logs (``OUT/jobs/``)
and the same requeue-with-``--resume`` hook (submitit's ``checkpoint``) on SLURM and here. ``slurm`` submits every
run at once with ``afterok`` dependencies; ``local`` (submitit's ``LocalExecutor``, local processes)
starts a run once the runs it comes after are finished, ``--jobs`` at a time. The job ids are kept in
``OUT/grid_state.json`` (also the grid's mark on the folder), so a second call submits nothing for finished runs,
waits for running ones and resubmits failed ones, which continue from their last checkpoint (``--resume``). Once
every run is finished, ``OUT/comparison.md`` (+ ``.csv``, ``.png``) is written by ``mae-transfer compare``'s code.

``--recipe-search`` adds, for a grid file that declares ``search`` and ``test_split``, the same small search over lr
and layer decay for every init, the choice on the validation split and both recipes evaluated on the test split
(mae_transfer/search.py; ``OUT/search.md``).

Several GPUs and nodes use the frameworks' own start-up inside the allocation, as the MAE and ViTDet submitit
launchers do: one SLURM task per GPU with torchrun's environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``) for pretraining and mmengine, one task per node running detectron2's ``launch``
with the node list's first host as ``--dist-url``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Mapping

from mae_transfer import cli
from runlib import UserError, read_run_record, run_command
from runlib.run_record import atomic_write_json
from mae_transfer import search as recipe_search

SCHEMA = "mae-transfer/grid-v1"
STATE_NAME = "grid_state.json"  # the grid's mark on its output folder: a folder holding another file is refused
JOBS_DIR = "jobs"                # submitit's folder: pickled calls and one log per job
KINDS = ("command", "pretrain", "finetune", "detect", "segment")
TRANSFER_KINDS = ("detect", "segment")
PLACEHOLDER = re.compile(r"\{[A-Za-z_]\w*\}")
RUN_KEYS = ("name", "kind", "config", "init", "weights", "seeds", "seed", "after", "args", "overrides", "export",
            "creates", "command", "resources")
EXECUTORS = ("local", "slurm")


@dataclass(frozen=True)
class Resources:
    """One run's request: ``cpus_per_task`` is per process, one process per GPU (or one when there is none)."""
    nodes: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None
    timeout_min: int = 60
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None



@dataclass(frozen=True)
class Run:
    name: str
    kind: str
    folder: Path                        # OUT/name: the run folder its command writes into
    config: str | None = None
    init: str | None = None
    weights: str | None = None
    seed: int | None = None
    after: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    overrides: tuple[str, ...] = ()
    export: str | None = None
    creates: str | None = None          # command: the path that marks it finished; test evaluation: its selection
    command: tuple[str, ...] = ()
    resources: Resources = field(default_factory=Resources)
    point: tuple[tuple[str, float], ...] = ()   # a recipe-search run: the lr / layer decay it sets
    candidates: tuple[recipe_search.Candidate, ...] = ()  # a test evaluation: the runs it chooses from

    @property
    def world_size(self) -> int:
        return self.resources.nodes * max(1, self.resources.gpus_per_node)

    @property
    def tasks_per_node(self) -> int:
        """detectron2's ``launch`` starts one process per GPU itself; the others get one SLURM task per GPU."""
        return 1 if self.kind in ("detect", "command") else max(1, self.resources.gpus_per_node)


# ----------------------------------------------------------------------------------------------- the grid file
def load_grid(path: str | Path, out: Path, cli_resources: Mapping[str, object] = {},
              seeds: int | None = None, recipe_search_on: bool = False) -> list[Run]:
    """The runs of a grid file, ``{out}`` and ``{KEY}`` of its ``params`` filled in and the command line's resources
    over the file's; ``seeds`` (or the file's) replaces every entry's list of seeds by 0..seeds-1.
    ``recipe_search_on`` adds the file's recipe search and test evaluations (mae_transfer/search.py)."""
    from mmengine.config import Config

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such grid file")
    try:
        cfg = Config.fromfile(str(path)).to_dict()
    except Exception as exc:  # a syntax error or a missing _base_: mmengine's message names the file
        raise UserError(f"{path}: not a grid file ({type(exc).__name__}: {exc})") from None
    if not isinstance(cfg.get("runs"), list) or not cfg["runs"]:
        raise UserError(f"{path}: no runs (a grid file sets runs = [dict(name=..., kind=...), ...])")
    defaults = _resources(path, "resources", cfg.get("resources", {}), Resources())
    params = cfg.get("params", {})
    if not isinstance(params, dict):
        raise UserError(f"{path}: params must be a dict of values for {{NAME}} in the runs' strings, got {params!r}")
    seeds = seeds or cfg.get("seeds")
    runs: list[Run] = []
    for index, entry in enumerate(cfg["runs"]):
        if seeds is not None and isinstance(entry, dict) and "seeds" in entry:
            entry = dict(entry, seeds=list(range(seeds)))
        runs += _expand(path, index, entry, out, params, defaults, cli_resources)
    names = [run.name for run in runs]
    for run in runs:
        if names.count(run.name) > 1:
            raise UserError(f"{path}: two runs are named {run.name!r}")
        unknown = [a for a in run.after if not any(n == a or n.startswith(a + "/seed") for n in names)]
        if unknown:
            raise UserError(f"{path}: run {run.name!r}: after {unknown[0]!r} names no run")
    # "after" may name a run with seeds: it then waits for every seed
    runs = [replace(run, after=tuple(n for a in run.after for n in names if n == a or n.startswith(a + "/seed")))
            for run in runs]
    if recipe_search_on:
        runs += recipe_search.search_runs(path, cfg, runs, out,
                                          lambda value: _fill(path, "test_split", value, params, out))
    return runs


def _resources(path: Path, where: str, values: object, base: Resources,
               cli: Mapping[str, object] = {}) -> Resources:
    if not isinstance(values, dict):
        raise UserError(f"{path}: {where} must be a dict, got {values!r}")
    known = {f.name for f in fields(Resources)}
    for key in values:
        if key not in known:
            raise UserError(f"{path}: {where}: unknown key {key!r} (known: {', '.join(sorted(known))})")
    return replace(base, **{**values, **{k: v for k, v in cli.items() if v is not None}})


def _expand(path: Path, index: int, entry: object, out: Path, params: Mapping[str, object], defaults: Resources,
            cli_resources: Mapping[str, object]) -> list[Run]:
    where = f"runs[{index}]"
    if not isinstance(entry, dict):
        raise UserError(f"{path}: {where} must be a dict, got {entry!r}")
    unknown = [key for key in entry if key not in RUN_KEYS]
    if unknown:
        raise UserError(f"{path}: {where}: unknown key {unknown[0]!r} (known: {', '.join(RUN_KEYS)})")
    if not isinstance(entry.get("name"), str) or not entry["name"] or entry["name"].startswith(("/", ".")):
        raise UserError(f"{path}: {where}: name must be a relative folder name, got {entry.get('name')!r}")
    where = f"run {entry['name']!r}"
    if entry.get("kind") not in KINDS:
        raise UserError(f"{path}: {where}: kind must be one of {', '.join(KINDS)}, got {entry.get('kind')!r}")
    if entry["kind"] != "command" and not entry.get("config"):
        raise UserError(f"{path}: {where}: a {entry['kind']} run needs config")
    if entry["kind"] == "command" and not (entry.get("command") and entry.get("creates")):
        raise UserError(f"{path}: {where}: a command run needs command (mae-transfer arguments) and creates")
    resources = _resources(path, f"{where}: resources", entry.get("resources", {}), defaults, cli_resources)

    def fill(value):
        return _fill(path, where, value, params, out)

    common = {key: fill(entry[key]) for key in ("kind", "config", "init", "weights", "after", "args", "overrides",
                                                 "export", "creates", "command") if entry.get(key) is not None}
    if isinstance(entry.get("after"), str):
        common["after"] = (fill(entry["after"]),)
    if common.get("config"):
        common["config"] = str(_config_path(path, common["config"]))
    seeds = entry.get("seeds")
    if seeds is None:
        return [Run(name=entry["name"], folder=out / entry["name"], seed=entry.get("seed"), resources=resources,
                    **common)]
    return [Run(name=f"{entry['name']}/seed{seed}", folder=out / entry["name"] / f"seed{seed}", seed=seed,
                resources=resources, **common) for seed in seeds]


def _fill(path: Path, where: str, value: object, params: Mapping[str, object], out: Path) -> object:
    """``value`` with ``{out}`` and ``{KEY}`` of ``params`` filled in, in a string or the strings of a list."""
    if isinstance(value, str):
        for key, given in {**params, "out": out}.items():
            value = value.replace("{" + key + "}", str(given))
        unknown = PLACEHOLDER.search(value)
        if unknown:
            raise UserError(f"{path}: {where}: {unknown.group()} in {value!r} is neither {{out}} nor a key of params")
        return value
    if isinstance(value, (list, tuple)):
        return tuple(_fill(path, where, v, params, out) for v in value)
    return value


def _config_path(grid: Path, config: str) -> Path:
    """A relative config path from the current folder, or from the repository the grid file lies in
    (``configs/grid/x.py`` -> ``configs/detection/...``)."""
    for base in (Path.cwd(), grid.resolve().parents[2]):
        if (base / config).exists():
            return (base / config).resolve()
    return Path(config).resolve()


# ------------------------------------------------------------------------------------------ what a run executes
def commands(run: Run, resume: bool, dist: Mapping[str, str] = {}) -> list[list[str]]:
    """The ``mae-transfer`` argument lists of ``run``; ``dist`` is ``distributed_env``'s result."""
    folder = str(run.folder)
    if run.kind == "command":
        return [list(run.command)]
    if run.kind in recipe_search.TEST_KINDS.values():
        return [recipe_search.test_command(run, recipe_search.select(run))]
    argv = [*((run.kind, "train") if run.kind in TRANSFER_KINDS else (run.kind,)), "--config", run.config,
            "--out", folder, *run.args]  # the one command grammar of every task (runlib.command_line)
    argv += ["--init", run.weights] if run.weights else []
    argv += ["--init-label", run.init] if run.init and run.kind != "pretrain" else []
    argv += ["--resume"] if resume else []
    if run.kind == "detect" and run.world_size > 1:
        argv += ["--num-gpus", str(run.resources.gpus_per_node), "--num-machines", str(run.resources.nodes),
                 "--machine-rank", dist["NODE_RANK"],
                 "--dist-url", f"tcp://{dist['MASTER_ADDR']}:{dist['MASTER_PORT']}"]
    if run.kind == "segment" and run.world_size > 1:
        argv += ["--launcher", "pytorch"]
    seed = {"detect": "train.seed", "segment": "randomness.seed"}.get(run.kind, "seed")
    return [argv + list(run.overrides) + ([f"{seed}={run.seed}"] if run.seed is not None else [])]


def distributed_env(run: Run, environ: Mapping[str, str]) -> dict[str, str]:
    """torchrun's variables for this process of a SLURM (or submitit local) job: rank and world from the SLURM
    task, the master the first host of the job's node list, a port from the job id (so that two jobs sharing a
    node do not collide). ``NODE_RANK`` is the machine rank detectron2's ``launch`` takes."""
    if "SLURM_JOB_ID" in environ:
        job, rank, local = environ["SLURM_JOB_ID"], environ.get("SLURM_PROCID", "0"), environ.get("SLURM_LOCALID", "0")
        node, master = environ.get("SLURM_NODEID", "0"), first_host(environ.get("SLURM_JOB_NODELIST", "127.0.0.1"))
    else:
        job = environ.get("SUBMITIT_LOCAL_JOB_ID", "0")
        rank = local = environ.get("SUBMITIT_LOCAL_GLOBALID", "0")
        node, master = "0", "127.0.0.1"
    world = run.resources.nodes * run.tasks_per_node
    return {"RANK": rank, "LOCAL_RANK": local, "WORLD_SIZE": str(world), "LOCAL_WORLD_SIZE": str(run.tasks_per_node),
            "NODE_RANK": node, "MASTER_ADDR": master,
            "MASTER_PORT": str(20000 + int("".join(c for c in job if c.isdigit()) or 0) % 20000)}


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``gpu[03-05,9],cpu1`` -> ``gpu03`` (``scontrol show hostnames``'s
    first line, without a call to it)."""
    head = nodelist.split(",")[0] if "[" not in nodelist.split(",")[0] else nodelist[:nodelist.index("]") + 1]
    if "[" not in head:
        return head
    prefix, ranges = head[:-1].split("[")
    return prefix + ranges.split(",")[0].split("-")[0]


class GridJob:
    """The call a submitit job makes: the run's commands in this process, torchrun's variables set first.
    ``checkpoint`` is submitit's hook on preemption and time-out: the job is requeued with ``--resume``."""

    def __init__(self, run: Run, resume: bool):
        self.run, self.resume = run, resume

    def __call__(self) -> None:
        import torch

        torch.set_num_threads(self.run.resources.cpus_per_task)  # not one per core of a shared node
        if self.run.world_size > 1:
            os.environ.update(distributed_env(self.run, os.environ))
        if self.run.kind in recipe_search.TEST_KINDS.values():
            recipe_search.record_selection(self.run)
        for argv in commands(self.run, self.resume, os.environ):
            code = cli.main(argv)
            if code:
                raise RuntimeError(f"mae-transfer {' '.join(argv[:2])} exited with code {code}")
        if self.run.export and int(os.environ.get("RANK", 0)) == 0:
            export_encoder(self.run)

    def checkpoint(self, *args, **kwargs):
        import submitit
        return submitit.helpers.DelayedSubmission(GridJob(self.run, resume=True))


def export_encoder(run: Run) -> None:
    """The encoder of a pretraining run in the MAE release format (``mae-transfer export``); the whole network of
    a supervised run in the timm file layout (``export`` refuses it: a global-pooling head has no final norm)."""
    checkpoint = last_checkpoint(run.folder)
    if run.kind == "finetune":
        from backbone import read_state_dict
        from runlib import atomic_torch_save
        atomic_torch_save({"model": read_state_dict(checkpoint)}, run.export)
    elif cli.main(["export", str(checkpoint), "--out", run.export]):
        raise RuntimeError(f"mae-transfer export of {checkpoint} failed")


def last_checkpoint(folder: Path) -> Path:
    from pretrain.engine import CHECKPOINT_DIR, Checkpoints
    latest = Checkpoints(folder / CHECKPOINT_DIR).latest()
    if latest is None:
        raise UserError(f"{folder / CHECKPOINT_DIR}: no checkpoint to export")
    return latest


def finished(run: Run) -> bool:
    if run.kind == "command":
        return Path(run.creates).exists()
    try:
        done = read_run_record(run.folder)["status"] == "finished"
    except UserError:
        return False
    return done and (not run.export or Path(run.export).is_file())


def started(run: Run) -> bool:
    return (run.folder / "run_record.json").is_file()


# -------------------------------------------------------------------------------------------- the output folder
def claim(out: Path, grid: Path, owned: bool = False) -> dict:
    """The grid's state in ``out`` (made new), refusing a folder that holds anything the grid did not make unless
    the caller ``owned`` it already (the demo's folder, marked by the demo)."""
    state_path = out / STATE_NAME
    if out.is_symlink():
        raise UserError(f"--out {out} is a symlink; give the real folder")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if state_path.is_file():
        try:
            state = json.loads(state_path.read_text())
        except json.JSONDecodeError as exc:
            raise UserError(f"{state_path}: not valid JSON ({exc})") from None
        if isinstance(state, dict) and state.get("schema") == SCHEMA:
            if state.get("grid") != str(grid.resolve()):
                raise UserError(f"--out {out} holds the runs of another grid ({state.get('grid')}); give another "
                                "--out")
            return state
    if not owned and out.exists() and any(out.iterdir()):
        raise UserError(f"--out {out} holds files the grid did not make (no {STATE_NAME} of schema {SCHEMA}); "
                        "give a new or empty folder")
    out.mkdir(parents=True, exist_ok=True)
    state = {"schema": SCHEMA, "grid": str(grid.resolve()), "jobs": {}}
    atomic_write_json(state, state_path)
    return state


# --------------------------------------------------------------------------------------------------- executors
class Executor:
    """Submits runs as submitit jobs and says whether a job id is still queued or running."""
    name = ""

    def __init__(self, out: Path):
        self.out = out
        self.jobs: dict = {}  # job id -> the submitit job this process submitted

    def submit(self, run: Run, resume: bool, after_jobs: list[str]) -> str:
        import submitit
        folder = self.out / JOBS_DIR / run.name
        executor = (submitit.AutoExecutor(folder=folder, cluster="slurm") if self.name == "slurm"
                    else submitit.LocalExecutor(folder=folder))
        executor.update_parameters(**self.parameters(run, after_jobs))
        job = executor.submit(GridJob(run, resume))
        self.jobs[job.job_id] = job
        return job.job_id

    def parameters(self, run: Run, after_jobs: list[str]) -> dict:
        r = run.resources
        return dict(name=run.name, nodes=r.nodes, tasks_per_node=run.tasks_per_node, gpus_per_node=r.gpus_per_node,
                    cpus_per_task=r.cpus_per_task * (r.gpus_per_node if run.kind == "detect" and r.gpus_per_node
                                                     else 1), timeout_min=r.timeout_min)

    def log(self, run: Run, job_id: str) -> Path:
        from submitit.core.utils import JobPaths
        return JobPaths(self.out / JOBS_DIR / run.name, job_id=job_id, task_id=0).stdout

    def alive(self, job_id: str) -> bool:
        raise NotImplementedError

    def cancel(self, job_id: str) -> None:
        raise NotImplementedError


class LocalExecutor(Executor):
    name = "local"

    def parameters(self, run: Run, after_jobs: list[str]) -> dict:
        params = super().parameters(run, after_jobs)
        return dict(timeout_min=params["timeout_min"], gpus_per_node=params["gpus_per_node"],
                    tasks_per_node=params["tasks_per_node"], stderr_to_stdout=True)

    def alive(self, job_id: str) -> bool:
        """A submitit local job is its controller process, alive while it runs. A job this process submitted is
        asked through its process handle: exact, where /proc is not. Read just after the submission (the grid
        polls at once), /proc can show the new controller between exec's start and its command line being set,
        an empty command line that looks like another program (benchmarks/local_job_polling.md). A job an
        earlier grid process submitted, long started, is asked through /proc (``controller_running``)."""
        job = self.jobs.get(job_id)
        if job is not None:
            if job.done():  # polls, and so collects, our own child
                del self.jobs[job_id]
                return False
            return True
        return controller_running(job_id)

    def cancel(self, job_id: str) -> None:
        if self.alive(job_id):
            os.kill(int(job_id), 15)


def controller_running(job_id: str) -> bool:
    """Whether the process ``job_id`` (not a child of this process: init collects it) is a running submitit
    controller. A process that has ended is gone or a zombie; one whose command line is another program's took
    the id since."""
    try:
        stat = Path(f"/proc/{int(job_id)}/stat").read_text()
        cmdline = Path(f"/proc/{int(job_id)}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return False
    if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
        return False
    return b"submitit" in cmdline


SLURM_ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "BOOT_FAIL")
SQUEUE_UNKNOWN_JOB = "Invalid job id specified"
SQUEUE_TRIES, SQUEUE_RETRY_S = 5, 3.0


class SlurmExecutor(Executor):
    name = "slurm"

    def parameters(self, run: Run, after_jobs: list[str]) -> dict:
        r = run.resources
        params = super().parameters(run, after_jobs)
        params.update(slurm_stderr_to_stdout=True)
        params.update({f"slurm_{key}": getattr(r, key) for key in ("partition", "account", "qos", "constraint")
                       if getattr(r, key)})
        if r.mem_gb:
            params["mem_gb"] = r.mem_gb
        if not r.gpus_per_node:
            params.pop("gpus_per_node")
        if after_jobs:
            params["slurm_additional_parameters"] = {"dependency": "afterok:" + ":".join(after_jobs)}
        return params

    def alive(self, job_id: str) -> bool:
        """Queued or running, as ``squeue`` (not ``sacct``: clusters without accounting have none) says. A job
        squeue no longer knows (its record is kept MinJobAge seconds after the end) has ended; squeue failing
        otherwise (the controller busy or restarting: "Socket timed out") says nothing of the job, so it is asked
        again, and a squeue that keeps failing is one error rather than running jobs reported as failed."""
        for attempt in range(SQUEUE_TRIES):
            result = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True)
            if result.returncode == 0:
                return any(state not in SLURM_ENDED for state in result.stdout.split())
            if SQUEUE_UNKNOWN_JOB in result.stderr:
                return False
            if attempt + 1 < SQUEUE_TRIES:
                time.sleep(SQUEUE_RETRY_S)
        raise UserError(f"squeue -j {job_id} failed {SQUEUE_TRIES} times in a row: "
                        f"{result.stderr.strip() or f'exit code {result.returncode}'}; the jobs go on: run the "
                        "same command again to wait for them")

    def cancel(self, job_id: str) -> None:
        subprocess.run(["scancel", job_id], capture_output=True)


# ------------------------------------------------------------------------------------------------ the launcher
@dataclass
class Progress:
    out: Path
    state: dict
    executor: Executor
    done: set = field(default_factory=set)
    failed: dict = field(default_factory=dict)      # name -> one line
    running: dict = field(default_factory=dict)     # name -> job id
    submitted: int = 0

    def save(self) -> None:
        atomic_write_json(self.state, self.out / STATE_NAME)

    def record(self, run: Run, job_id: str) -> None:
        self.running[run.name] = job_id
        self.state["jobs"][run.name] = {"executor": self.executor.name, "job_id": job_id}
        self.save()

    def failure(self, run: Run, job_id: str | None) -> str:
        """One line: the run, why it failed (its run record's error, else the last error its job's log shows: a
        job can fail before its run has a record, choosing a recipe or preparing the folder), and the log."""
        try:
            error = read_run_record(run.folder).get("error")
        except UserError:
            error = None
        log = self.executor.log(run, job_id) if job_id else None
        error = error or (log_error(log) if log else None)
        return f"{run.name} failed" + (f": {error.splitlines()[0]}" if error else "") + (f" (log: {log})" if log else "")


# the last line of a command's one-line error ("mae-transfer detect: error: ..."), else of a Python traceback
COMMAND_ERROR = re.compile(r"^mae-transfer [\w -]+: error: (?P<message>.+)$")
EXCEPTION = re.compile(r"^(?:[A-Za-z_][\w]*\.)*(?P<message>[A-Za-z_]\w*(?:Error|Exception|Interrupt)\b.*)$")


def log_error(log: Path) -> str | None:
    """The error a job's log ends with: the command's one-line error if it printed one, else the exception of
    the last traceback (module path left out), else None."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for pattern in (COMMAND_ERROR, EXCEPTION):
        found = [match["message"] for match in map(pattern.match, lines) if match]
        if found:
            return found[-1]
    return None


def launch(runs: list[Run], out: Path, state: dict, executor: Executor, jobs: int = 1, poll_s: float = 2.0,
           ) -> Progress:
    """Submit what is not finished, wait for every run, and return how they ended."""
    p = Progress(out, state, executor)
    by_name = {run.name: run for run in runs}
    pending = []
    for run in runs:
        job = state["jobs"].get(run.name, {})
        if finished(run):
            p.done.add(run.name)
            print(f"{run.name}: finished (not resubmitted)", flush=True)
        elif job.get("executor") == executor.name and executor.alive(job["job_id"]):
            p.running[run.name] = job["job_id"]
        else:
            pending.append(run)
    stale = True
    while stale:  # a queued job waiting (afterok) on a run that failed earlier would wait forever: submit it again
        stale = [name for name in p.running if any(a in {r.name for r in pending} for a in by_name[name].after)]
        for name in stale:
            executor.cancel(p.running.pop(name))
            pending.append(by_name[name])
    for name, job_id in p.running.items():
        print(f"{name}: {executor.name} job {job_id} still queued or running: waiting for it", flush=True)
    pending.sort(key=runs.index)
    while pending or p.running:
        for run in list(pending):
            blocked = [a for a in run.after if a in p.failed]
            if blocked:
                pending.remove(run)
                p.failed[run.name] = f"{run.name} not run: {blocked[0]} failed"
                print(p.failed[run.name], flush=True)
                continue
            if not all(a in p.done or (executor.name == "slurm" and a in p.running) for a in run.after):
                continue
            if executor.name == "local" and len(p.running) >= jobs:
                break
            pending.remove(run)
            resume = started(run)
            job_id = executor.submit(run, resume, [p.running[a] for a in run.after if a in p.running])
            p.submitted += 1
            p.record(run, job_id)
            print(f"{run.name}: submitted{' to resume' if resume else ''} ({executor.name} job {job_id}, log: "
                  f"{executor.log(run, job_id)})", flush=True)
        for name, job_id in list(p.running.items()):
            if executor.alive(job_id):
                continue
            del p.running[name]
            run = by_name[name]
            if finished(run):
                p.done.add(name)
                print(f"{name}: finished ({executor.name} job {job_id})", flush=True)
            else:
                p.failed[name] = p.failure(run, job_id)
                print(p.failed[name], flush=True)
                _cancel_dependents(p, by_name, name)
        if pending or p.running:
            time.sleep(poll_s)
    return p


def _cancel_dependents(p: Progress, by_name: dict[str, Run], failed: str) -> None:
    """SLURM: jobs submitted with ``afterok`` on a failed run would wait forever; cancel them, and theirs."""
    for other, job_id in list(p.running.items()):
        if failed in by_name[other].after:
            p.executor.cancel(job_id)
            del p.running[other]
            p.failed[other] = f"{other} not run: {failed} failed"
            print(p.failed[other], flush=True)
            _cancel_dependents(p, by_name, other)


def execute(runs: list[Run], out: Path, grid_file: Path, executor: Executor, jobs: int = 1,
            owned: bool = False) -> Path | None:
    """Run the grid into ``out`` and write its comparison; every run that did not finish is one line of the
    ``UserError``."""
    started_at = time.monotonic()
    progress = launch(runs, out, claim(out, grid_file, owned), executor, jobs=jobs)
    if len(progress.failed) == 1:
        raise UserError(next(iter(progress.failed.values())))
    if progress.failed:  # one line per run
        raise UserError(f"{len(progress.failed)} of {len(runs)} runs did not finish:\n  "
                        + "\n  ".join(progress.failed.values()))
    table = write_comparison([run for run in runs if not run.point], out)  # each init's own recipe
    report = recipe_search.write_report(runs, out)
    print(f"grid finished: {len(runs)} runs, {progress.submitted} submitted, {time.monotonic() - started_at:.0f} s"
          + (f"; table {table}" if table else "") + (f"; recipe search {report}" if report else ""), flush=True)
    return table


def write_comparison(runs: list[Run], out: Path) -> Path | None:
    """``out/comparison.md`` (+ csv, png, and ``comparison.tex`` in the paper's layout) of the transfer runs,
    through ``mae-transfer compare``'s functions."""
    from mae_transfer.compare import compare_runs, write_csv, write_latex, write_markdown, write_png

    folders = [run.folder for run in runs if run.kind in TRANSFER_KINDS]
    if not folders:
        return None
    comparison = compare_runs(folders)
    table = write_markdown(comparison, out / "comparison.md")
    write_latex(comparison, out / "comparison.tex", layout="paper")
    write_csv(comparison, out / "comparison.csv")
    write_png(comparison, out / "comparison.png")
    return table


def dry_run_text(runs: list[Run], executor: str) -> str:
    """A table of the runs: what each runs, its resources and the runs it waits for."""
    header = ["run", "command", "init", "seed", "nodes x GPUs", "CPUs/proc", "mem GB", "hours", "partition", "after"]
    rows = []
    for run in runs:
        r = run.resources
        what = " ".join(commands(run, resume=False)[0][:1]) if run.kind == "command" else \
            f"{run.kind} {Path(run.config).name}"
        rows.append([run.name, what, run.init or "", "" if run.seed is None else str(run.seed),
                     f"{r.nodes} x {r.gpus_per_node}", str(r.cpus_per_task), f"{r.mem_gb:g}" if r.mem_gb else "",
                     f"{r.timeout_min / 60:g}", r.partition or "", ", ".join(run.after)])
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = [f"{len(runs)} runs, {executor} executor"]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header] + rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mae-transfer grid", description=__doc__.split("\n\n")[0],
                                     epilog="example: mae-transfer grid configs/grid/mae_table4_coco.py --out "
                                            "output/table4 --partition learnlab --dry-run")
    parser.add_argument("grid", type=Path, metavar="GRID", help="a grid file, e.g. configs/grid/mae_table4_coco.py")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder: one folder per run, jobs/, "
                                                                "comparison.md")
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="slurm: sbatch through submitit; local: local processes (default)")
    parser.add_argument("--dry-run", action="store_true", help="print the runs, resources and dependencies")
    parser.add_argument("--seeds", type=int, metavar="N",
                        help="runs with seeds: seeds 0..N-1 instead of the grid file's list")
    parser.add_argument("--recipe-search", action="store_true",
                        help="add the grid file's search over lr and layer decay (the same points for every init), "
                             "chosen on val, the chosen and the published recipe evaluated on the test split "
                             "(OUT/search.md)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="local executor: runs at a time (default: the number of cores, %(default)s here)")
    slurm = parser.add_argument_group("SLURM (default: the grid file's resources)")
    for key, kind in (("partition", str), ("account", str), ("qos", str), ("constraint", str), ("nodes", int),
                      ("gpus-per-node", int), ("cpus-per-task", int), ("mem-gb", float), ("timeout-min", int)):
        slurm.add_argument(f"--{key}", type=kind)
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    for option in ("jobs", "seeds"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            _parser().error(f"--{option} must be at least 1, got {getattr(args, option)}")
    cli_resources = {f.name: getattr(args, f.name) for f in fields(Resources)}

    def body():
        out = args.out.resolve()
        runs = load_grid(args.grid, out, cli_resources, seeds=args.seeds, recipe_search_on=args.recipe_search)
        if args.dry_run:
            print(dry_run_text(runs, args.executor))
            return
        if args.executor == "slurm" and subprocess.run(["sinfo", "-h"], capture_output=True).returncode != 0:
            raise UserError("--executor slurm: no SLURM cluster answers here (sinfo failed)")
        execute(runs, out, args.grid, (SlurmExecutor if args.executor == "slurm" else LocalExecutor)(out),
                jobs=args.jobs)
    return run_command("grid", body)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
