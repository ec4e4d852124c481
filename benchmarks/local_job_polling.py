"""How often does asking "is this local job still running?" say no while the job runs?

The grid polls each submitit local job as soon as it has submitted it, while the machine is busy with other runs.
This submits small CPU-bound jobs, two at a time, and asks about each at once and then every 0.2 s in both ways,
side by side: through /proc (``grid.controller_running``: the controller's process id, its state and command line)
and through the job's process handle (``grid.LocalExecutor.alive``, what the grid uses for the jobs it submitted).
A "no" before the job has written its result is a false end: the grid would report a running job as failed.
Results: benchmarks/local_job_polling.md.

    python -m benchmarks.local_job_polling --out output/local-job-polling [--seconds 240]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from mae_transfer import grid


def busy(seconds: float) -> int:
    """A job's work: matrix products on one core for ``seconds``."""
    import numpy as np

    end, a = time.monotonic() + seconds, np.random.default_rng(0).random((300, 300))
    while time.monotonic() < end:
        a = a @ a.T
        a /= a.max()
    return 1


def main() -> None:
    import submitit

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the jobs' folders")
    parser.add_argument("--seconds", type=float, default=240.0, help="how long to keep submitting")
    parser.add_argument("--job-seconds", type=float, default=3.0, help="each job's work")
    args = parser.parse_args()
    executor = grid.LocalExecutor(args.out)
    running: dict[str, dict] = {}
    false_ends = {"/proc": 0, "handle": 0}
    submitted, start = 0, time.monotonic()
    while time.monotonic() - start < args.seconds or running:
        while len(running) < 2 and time.monotonic() - start < args.seconds:
            job = submitit.LocalExecutor(folder=args.out / f"job{submitted}").submit(busy, args.job_seconds)
            executor.jobs[job.job_id] = job  # as grid.Executor.submit keeps it
            running[job.job_id] = {"result": job.paths.result_pickle, "/proc": True, "handle": True}
            submitted += 1
        for job_id, seen in list(running.items()):
            for way, ask in (("/proc", grid.controller_running), ("handle", executor.alive)):
                if seen[way] and not ask(job_id):
                    seen[way] = False
                    false_ends[way] += not seen["result"].exists()
            if not seen["/proc"] and not seen["handle"]:
                del running[job_id]
        time.sleep(0.2)
    print(f"{submitted} jobs of {args.job_seconds:g} s, two at a time, for {args.seconds:g} s")
    for way, count in false_ends.items():
        print(f"{way:>7}: {count} false ends ({100 * count / submitted:.1f} % of jobs)")


if __name__ == "__main__":
    main()
