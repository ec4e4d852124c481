"""``mae-transfer plot RUN_DIR... --out curves.png``: training loss and evaluation metrics over iterations of any
runs, in one PNG.

Each run is read from its framework's own log: ``log.jsonl`` (pretraining, linear probe, fine-tuning),
detectron2's ``metrics.json`` and mmengine's ``TIMESTAMP/vis_data/scalars.json`` (every session of a resumed run,
in order). A folder that is not a run itself stands for every run below it, so ``mae-transfer plot output/demo``
draws the whole demo.
"""
from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from runlib import UserError, run_command
from runlib.run_record import atomic_write

LOSS_KEYS = ("loss", "total_loss")  # ours and mmengine's, detectron2's
METRIC_KEYS = ("top1", "bbox/AP", "segm/AP", "mIoU", "mAcc", "aAcc")  # the headline metric of each task
Series = tuple[list[float], list[float]]  # (iterations, values)


class PlotError(UserError):
    """A folder without any training log, or nothing to draw."""


@dataclass
class RunCurves:
    run_dir: Path
    loss: Series = field(default_factory=lambda: ([], []))
    metrics: dict[str, Series] = field(default_factory=dict)


def _log_files(run_dir: Path) -> list[tuple[Path, str]]:
    """(log file, iteration key) of the run in ``run_dir``, oldest session first."""
    found = [(run_dir / "log.jsonl", "step"), (run_dir / "metrics.json", "iteration")]
    found += [(p, "step") for p in sorted(run_dir.glob("*/vis_data/scalars.json"))]  # timestamped sessions
    return [(path, key) for path, key in found if path.is_file()]


def find_runs(paths: list[str | Path]) -> list[Path]:
    """The run folders among ``paths``: each path that holds a training log, else every run below it."""
    runs: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            raise PlotError(f"{path}: no such folder")
        if _log_files(path):
            runs.append(path)
            continue
        below = {p.parent for p in path.rglob("log.jsonl")} | {p.parent for p in path.rglob("metrics.json")}
        below |= {p.parents[2] for p in path.rglob("vis_data/scalars.json")}
        below = sorted(r for r in below if _log_files(r))
        if not below:
            raise PlotError(f"{path}: no training log in it or below it (log.jsonl, detectron2's metrics.json or "
                            "mmengine's */vis_data/scalars.json)")
        runs += below
    return runs


def _rows(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            # the last line of a log still being written may be cut short; anything else is a broken file
            if number < len(lines) and line.strip():
                raise PlotError(f"{path}: line {number} is not JSON") from None
    return rows


def read_curves(run_dir: str | Path) -> RunCurves:
    """Training loss and the headline evaluation metrics of one run, over iterations. A step logged again by a
    resumed session replaces the earlier value."""
    run_dir = Path(run_dir)
    by_name: dict[str, dict[float, float]] = {}
    for path, step_key in _log_files(run_dir):
        for row in _rows(path):
            if step_key not in row:
                continue
            loss = next((row[k] for k in LOSS_KEYS if isinstance(row.get(k), (int, float))), None)
            values = {"loss": loss, **{k: row.get(k) for k in METRIC_KEYS}}
            for name, value in values.items():
                if isinstance(value, (int, float)):
                    by_name.setdefault(name, {})[row[step_key]] = value
    series = {name: (sorted(points), [points[s] for s in sorted(points)]) for name, points in by_name.items()}
    return RunCurves(run_dir, series.pop("loss", ([], [])), series)


def _labels(runs: list[Path]) -> list[str]:
    """Each run's path relative to the runs' common folder (the folder name alone for a single run)."""
    if len(runs) == 1:
        return [runs[0].name]
    common = Path(os.path.commonpath([r.resolve() for r in runs]))
    relative = [r.resolve().relative_to(common) for r in runs]
    return [str(rel) if rel.parts else run.name for rel, run in zip(relative, runs)]


def plot_runs(paths: list[str | Path], out: str | Path) -> Path:
    """Draw loss and metrics of every run in ``paths`` (see ``find_runs``) into the PNG ``out``."""
    runs = find_runs(paths)
    curves = [read_curves(r) for r in runs]
    metric_names = [m for m in METRIC_KEYS if any(c.metrics.get(m) for c in curves)]
    if not any(c.loss[0] for c in curves) and not metric_names:
        raise PlotError(f"{', '.join(map(str, runs))}: the logs hold no loss and no metric to draw")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["training loss"] + metric_names
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows), squeeze=False)
    for ax, panel in zip(axes.flat, panels):
        for label, c in zip(_labels(runs), curves):
            steps, values = c.loss if panel == "training loss" else c.metrics.get(panel, ([], []))
            if steps:
                ax.plot(steps, values, label=label, marker=None if panel == "training loss" else "o", markersize=3)
        ax.set(title=panel, xlabel="iteration")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.tight_layout()
    path = atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mae-transfer plot", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR",
                        help="run folders (the --out of pretrain, finetune, linprobe, detect train, segment train), "
                             "or folders with runs below them")
    parser.add_argument("--out", type=Path, default=Path("curves.png"), metavar="PNG",
                        help="output PNG (default %(default)s)")
    args = parser.parse_args(argv)
    return run_command("plot", lambda: print(f"wrote {plot_runs(args.runs, args.out)}"))
