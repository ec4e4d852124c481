"""``mae-transfer compare RUN_DIR...``: finished runs side by side, next to the published numbers.

Every run writes a run record (``run_record.json``, see runlib/run_record.py). This reads the records found in or
under the given folders and builds one table per (task, data set): a row per setting (arch, init), ordered by
arch then init (MAE, supervised, random, others by name); its metrics (detection: APbox, APmask and COCO's AP50,
AP75, APs, APm, APl of each as ``APbox_50`` ... ``APmask_l``; segmentation: mIoU, mAcc, aAcc); what the run cost
(the record's ``"cost"``, measured by the run itself, runlib/cost.py: parameters, GFLOPs of one forward, train
s/iter, peak train memory, inference s/image, device-hours); the difference to the supervised setting of the same
arch (headline metrics); and the published number for the same arch and init (mae_transfer/published.py) with its
source. A column no run has is left out. Runs that are unfinished, failed, unreadable or not selected are listed
under the tables with the reason.

Several runs of one setting (the same task, data set, arch and init: typically seeds, each in its own folder) are
one row: the mean ± sample standard deviation and n. A Δ is then taken between means, and marked "within noise"
when it is smaller than twice the pooled standard deviation of the two settings; where either side is a single
run there is no standard deviation and no mark. A setting with one run reads as a plain run row. The CSV keeps
one row per run (with its seed where the record has one).

Layouts: ``long`` (the above) and ``paper``, the MAE paper's Tables 4 and 5: a row per init, a column group per
arch with the headline metrics (APbox and APmask; mIoU) and the published numbers, the sources last. Both print as
markdown and write as LaTeX (``--latex``: one booktabs ``tabular`` per table, numbers in math mode with ``\\pm``
and true minus signs, column groups as ``\\multicolumn`` over ``\\cmidrule``, text escaped, the notes as comments).

The tables are built here, not with pandas or tabulate. The work is grouping runs into settings, mean ± std,
pooled-std noise marks, Δ to a baseline and the published column with its notes; neither library does that part,
and what they would take over is the rendering (about 60 lines here for markdown and LaTeX). pandas'
``Styler.to_latex`` does column groups, but pandas is no dependency of this project and the environment does not
have it; tabulate is installed (through fvcore and detectron2; 0.1 s to import, measured with ``python -X
importtime``), but its ``latex_booktabs`` format has no column groups and escapes either every cell or none, while
these cells mix math and text.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import os
import re
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from backbone import VIT_SIZES
from runlib import UserError, read_run_record, run_command
from runlib.run_record import RECORD_NAME, STATUSES, atomic_write

from .published import PUBLISHED, Published, is_paper_dataset, paper_column, paper_dataset, published

COCO_BREAKDOWN = ("_50", "_75", "_s", "_m", "_l")   # AP50, AP75, APs, APm, APl (detection/engine.py)
# The metrics each task's table shows, in column order (run-record metric names).
METRICS = {
    "detection": ("APbox", "APmask", *(f"APbox{b}" for b in COCO_BREAKDOWN), *(f"APmask{b}" for b in COCO_BREAKDOWN)),
    "segmentation": ("mIoU", "mAcc", "aAcc"),
    "finetune": ("top1",),
    "linprobe": ("top1",),
    "pretrain": ("loss",),
}
# The metrics of the paper layout (MAE paper Tables 4 and 5: APbox and APmask; mIoU); every metric where a task
# is not listed.
HEADLINE = {"detection": ("APbox", "APmask"), "segmentation": ("mIoU",)}
# The metrics with a Δ column, and that a run must have as a number (a NaN AP means no result; a NaN APl, no large
# object in the data): every metric where a task is not listed.
MAIN = {"detection": ("APbox", "APmask")}
# What a run cost (the run record's "cost", runlib/cost.py): record key, column, factor to the column's unit.
# Peak memory is a column of its own per kind: CUDA max allocated and a CPU process's RSS are not comparable.
COSTS = (
    ("params", "params (M)", 1e-6),
    ("params_backbone", "ViT params (M)", 1e-6),
    ("flops", "GFLOPs", 1e-9),
    ("train_s_per_iter", "train s/iter", 1.0),
    ("train_mem_gb", "train mem (GB)", 1.0),
    ("infer_s_per_image", "inference s/im", 1.0),
    ("device_hours", "device-hours", 1.0),
)
MEMORY_COLUMNS = {"cuda_max_allocated": "train mem (GB)", "cpu_rss_peak": "train RSS peak (GB)"}
COST_COLUMNS = tuple(dict.fromkeys(
    c for key, column, _ in COSTS for c in (MEMORY_COLUMNS.values() if key == "train_mem_gb" else (column,))))
COST_DIGITS = 3                         # significant digits of a cost cell
LAYOUTS = ("long", "paper")
BASELINE = "supervised"                 # deltas are taken against this init
INIT_ORDER = ("mae", BASELINE, "random")
NO_DELTA = ("pretrain",)                # a pretraining loss has no supervised counterpart
REQUIRED = ("task", "status", "dataset", "arch", "init")
MISSING = "–"                           # how an empty cell reads in markdown (empty in CSV)
NOISE_MARK = " (within noise)"          # after a Δ smaller than NOISE_STDS pooled standard deviations
NOISE_STDS = 2.0
DECIMALS = {"loss": 4}                  # printed decimals where 2 would hide the differences


@dataclass(frozen=True)
class Run:
    folder: Path
    task: str
    dataset: str
    arch: str
    init: str
    metrics: dict[str, float]             # the task's metrics, then the cost columns (COST_COLUMNS), in their units
    seed: int | None = None
    flops_input: str | None = None        # the input shape FLOPs were counted at


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass
class Row:
    """One setting (task, dataset, arch, init) of a table: a single run, or several (seeds) aggregated."""
    runs: list[Run]
    label: str                                                  # run folder(s), relative to the comparison root
    run_labels: list[str] = field(default_factory=list)         # each run's folder, in the order of ``runs``
    deltas: dict[str, float] = field(default_factory=dict)      # metric -> mean minus the supervised mean
    baseline: dict[str, float] = field(default_factory=dict)    # metric -> the supervised mean Δ is taken from
    within_noise: dict[str, bool] = field(default_factory=dict)  # metric -> |Δ| < 2 pooled std (both sides n > 1)
    paper: dict[str, Published] = field(default_factory=dict)   # metric -> published number, one source

    @property
    def run(self) -> Run:
        """The first run: task, dataset, arch and init are the same for all."""
        return self.runs[0]

    def values(self, metric: str) -> list[float]:
        return [run.metrics[metric] for run in self.runs if metric in run.metrics]

    @property
    def metrics(self) -> dict[str, float]:
        """Metric -> mean over the runs that have it."""
        means = {}
        for metric in dict.fromkeys(m for run in self.runs for m in run.metrics):
            means[metric] = statistics.fmean(self.values(metric))
        return means

    def std(self, metric: str) -> float | None:
        """Sample standard deviation over the runs (None for a single run)."""
        values = self.values(metric)
        return statistics.stdev(values) if len(values) > 1 else None


@dataclass
class Table:
    task: str
    dataset: str
    metrics: list[str]
    delta_metrics: list[str]     # metrics with a Δ column: some row has a supervised run to differ from
    paper_metrics: list[str]     # metrics with a paper column: some row has a published number
    rows: list[Row]
    costs: list[str] = field(default_factory=list)   # cost columns some run has (COST_COLUMNS)
    # Notes under the table: why a Δ is missing; the published numbers; which runs a row holds; how costs were measured
    delta_notes: list[str] = field(default_factory=list)
    paper_notes: list[str] = field(default_factory=list)
    run_notes: list[str] = field(default_factory=list)
    cost_notes: list[str] = field(default_factory=list)

    @property
    def notes(self) -> list[str]:
        return self.delta_notes + self.paper_notes + self.run_notes + self.cost_notes

    @property
    def on_paper_dataset(self) -> bool:
        return is_paper_dataset(self.task, self.dataset)

    @property
    def aggregated(self) -> bool:
        """Some setting has more than one run: the table shows n and mean ± std."""
        return any(len(row.runs) > 1 for row in self.rows)

    def header(self) -> list[str]:
        header = ["run", "arch", "init", *(["n"] if self.aggregated else []), *self.metrics, *self.costs]
        header += [f"Δ {m} vs {BASELINE}" for m in self.delta_metrics]
        if self.paper_metrics:
            where = "" if self.on_paper_dataset else f" ({paper_dataset(self.task)}, not this dataset)"
            header += [f"paper {m}{where}" for m in self.paper_metrics] + ["paper source"]
        return header

    def cells(self) -> list[list[str]]:
        """The table body as text, one list per setting; "" where there is no value."""
        body = []
        for row in self.rows:
            cells = [row.label, row.run.arch, row.run.init] + ([str(len(row.runs))] if self.aggregated else [])
            means = row.metrics
            cells += [_mean_text(means[m], row.std(m), m) if m in means else "" for m in self.metrics + self.costs]
            cells += [_delta_text(row, m) for m in self.delta_metrics]
            body.append(cells + self._paper_cells(row))
        return body

    def run_header(self, seeds: bool) -> list[str]:
        """The columns of one row per run: ``header`` without n, with a seed column when ``seeds``."""
        header = [h for h in self.header() if h != "n"]
        return header[:3] + ["seed"] + header[3:] if seeds else header

    def run_cells(self, seeds: bool) -> list[list[str]]:
        """One row per run: its own values, and its difference to the supervised mean."""
        body = []
        for row in self.rows:
            for run, label in zip(row.runs, row.run_labels):
                cells = [label, run.arch, run.init] + ([_seed_text(run.seed)] if seeds else [])
                cells += [f"{run.metrics[m]:.{_decimals(m, run.metrics[m])}f}" if m in run.metrics else ""
                          for m in self.metrics + self.costs]
                cells += [f"{run.metrics[m] - row.baseline[m]:+.{_decimals(m)}f}"
                          if m in row.deltas and m in run.metrics else "" for m in self.delta_metrics]
                body.append(cells + self._paper_cells(row))
        return body

    def _paper_cells(self, row: Row) -> list[str]:
        if not self.paper_metrics:
            return []
        cells = [row.paper[m].text if m in row.paper else "" for m in self.paper_metrics]
        return cells + [_source(next(iter(row.paper.values()))) if row.paper else ""]


@dataclass
class Comparison:
    root: Path              # run labels are folders relative to this
    tables: list[Table]
    skipped: list[Skipped]

    def label(self, path: Path) -> str:
        return _label(path, self.root)


# ---------------------------------------------------------------------------------------------- reading runs

def find_records(paths: Iterable[str | Path]) -> tuple[list[Path], list[Skipped]]:
    """The run-record files in or under ``paths`` (sorted per argument, each once), and arguments that hold none."""
    found: dict[Path, Path] = {}
    missing = []
    for path in map(Path, paths):
        if not path.exists():
            missing.append(Skipped(path, "no such file or folder"))
        elif path.is_file():
            found.setdefault(path.resolve(), path)
        else:
            records = sorted(path.rglob(RECORD_NAME))
            if not records:
                missing.append(Skipped(path, f"no {RECORD_NAME} in or under this folder"))
            for record in records:
                found.setdefault(record.resolve(), record)
    return list(found.values()), missing


def load_run(record_path: Path) -> Run | Skipped:
    """One finished run with the metrics of its task, or the reason it cannot be one."""
    folder = record_path.parent
    try:
        record = read_run_record(record_path)
    except ValueError as exc:
        return Skipped(folder, str(exc).removeprefix(f"{record_path}: "))
    for key in REQUIRED:
        if not isinstance(record.get(key), str) or not record[key]:
            return Skipped(folder, f'{RECORD_NAME} has no "{key}"')
    task, status = record["task"], record["status"]
    if status == "running":
        return Skipped(folder, f"unfinished: status \"running\" (last update {record.get('updated', 'unknown')})")
    if status == "failed":
        return Skipped(folder, f"failed: {_one_line(record.get('error') or 'no error recorded')}")
    if status not in STATUSES:
        return Skipped(folder, f'status "{status}" is not one of {", ".join(STATUSES)}')
    if task not in METRICS:
        return Skipped(folder, f'task "{task}" has no table (known: {", ".join(METRICS)})')
    metrics = record.get("metrics")
    if not isinstance(metrics, dict):
        return Skipped(folder, f'"metrics" is not a mapping: {metrics!r}')
    wanted = {m: metrics[m] for m in METRICS[task] if m in metrics}
    for name, value in list(wanted.items()):
        missing = value is None or (isinstance(value, float) and not math.isfinite(value))  # strict JSON: null
        if missing and name not in _main(task):
            del wanted[name]  # e.g. APl where the data has no large object: an empty cell
        elif missing:  # e.g. COCO AP of a model that made no detection
            return Skipped(folder, f'metric "{name}" is {"null" if value is None else value} (no result to compare)')
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            return Skipped(folder, f'metric "{name}" is not a number: {value!r}')
    if not any(m in wanted for m in _main(task)):
        return Skipped(folder, f"finished, but has none of the {task} metrics ({', '.join(_main(task))})")
    seed = record.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        return Skipped(folder, f'"seed" is not an integer: {seed!r}')
    cost = record.get("cost") if isinstance(record.get("cost"), dict) else {}
    return Run(folder, task, record["dataset"], record["arch"], record["init"],
               {**{m: float(v) for m, v in wanted.items()}, **cost_columns(cost)}, seed,
               cost.get("flops_input") if isinstance(cost.get("flops_input"), str) else None)


def cost_columns(cost: dict) -> dict[str, float]:
    """A run record's ``"cost"`` as COST_COLUMNS values in their units; a value that is not a finite number, or
    memory of an unknown kind, is left out (an empty cell)."""
    columns = {}
    for key, column, factor in COSTS:
        value = cost.get(key)
        if key == "train_mem_gb":
            column = MEMORY_COLUMNS.get(cost.get("train_mem_kind"))
        if column and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            columns[column] = value * factor
    return columns


def compare_runs(paths: Sequence[str | Path], datasets: Sequence[str] | None = None) -> Comparison:
    """Tables of the finished runs in or under ``paths`` (only ``datasets`` when given), and what was left out."""
    records, skipped = find_records(paths)
    runs = []
    for loaded in map(load_run, records):
        if isinstance(loaded, Skipped):
            skipped.append(loaded)
        elif datasets and loaded.dataset not in datasets:
            skipped.append(Skipped(loaded.folder, f'dataset "{loaded.dataset}" not selected '
                                                  f'(--dataset {", ".join(datasets)})'))
        else:
            runs.append(loaded)
    root = _root([r.folder for r in runs] + [s.path for s in skipped] or [Path.cwd()])
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.task, run.dataset), []).append(run)
    order = sorted(groups, key=lambda key: (list(METRICS).index(key[0]), key[1]))
    labels = {run.folder: _label(run.folder, root) for run in runs}
    tables = [build_table(task, dataset, groups[task, dataset], labels) for task, dataset in order]
    skipped.sort(key=lambda s: str(s.path.resolve()))
    return Comparison(root, tables, skipped)


# ---------------------------------------------------------------------------------------------- one table

def build_table(task: str, dataset: str, runs: list[Run], labels: dict[Path, str]) -> Table:
    """One table; ``labels``: every run folder of the comparison -> its label (group labels must not clash)."""
    settings: dict[tuple[str, str], list[Run]] = {}
    for run in sorted(runs, key=lambda r: labels[r.folder]):
        settings.setdefault((run.arch, run.init), []).append(run)
    rows = []
    for same in settings.values():
        run_labels = [labels[run.folder] for run in same]
        others = [label for folder, label in labels.items() if folder not in {run.folder for run in same}]
        rows.append(Row(same, _group_label(run_labels, others), run_labels))
    rows.sort(key=_row_order)
    metrics = [m for m in METRICS[task] if any(m in run.metrics for run in runs)]
    costs = [c for c in COST_COLUMNS if any(c in run.metrics for run in runs)]
    delta_notes = _fill_deltas(rows, [m for m in metrics if m in _main(task)]) if task not in NO_DELTA else []
    delta_metrics = [m for m in metrics if any(m in row.deltas for row in rows)]
    for row in rows:
        row.paper = {m: p for m, p in paper_column(task, _key(row.run.arch), _key(row.run.init)).items()
                     if m in metrics}
    paper_metrics = [m for m in metrics if any(m in row.paper for row in rows)]
    return Table(task, dataset, metrics, delta_metrics, paper_metrics, rows, costs, delta_notes,
                 _paper_notes(task, dataset, rows, paper_metrics), _aggregation_notes(rows, task not in NO_DELTA),
                 _cost_notes(runs, costs))


def _fill_deltas(rows: list[Row], metrics: list[str]) -> list[str]:
    """Set each row's difference to the one supervised setting of its arch (means), and whether it is within
    noise; say why where there is no supervised setting to take."""
    notes = []
    for arch in dict.fromkeys(row.run.arch for row in rows):
        same_arch = [row for row in rows if row.run.arch == arch]
        baselines = [row for row in same_arch if _key(row.run.init) == BASELINE]
        if len(baselines) > 1:
            notes.append(f"{arch}: {len(baselines)} {BASELINE} runs ({', '.join(r.label for r in baselines)}), "
                         f"so no Δ for {arch}; pass one of them to get it.")
            continue
        if not baselines:
            notes.append(f"{arch}: no {BASELINE} run, so no Δ for {arch}.")
            continue
        baseline = baselines[0]
        base = baseline.metrics
        for row in same_arch:
            if row is baseline:
                continue
            means = row.metrics
            row.deltas = {m: means[m] - base[m] for m in metrics if m in means and m in base}
            row.baseline = {m: base[m] for m in row.deltas}
            for m, delta in row.deltas.items():
                pooled = _pooled_std(row.values(m), baseline.values(m))
                if pooled is not None:
                    row.within_noise[m] = abs(delta) < NOISE_STDS * pooled
    return notes


def _pooled_std(a: list[float], b: list[float]) -> float | None:
    """sqrt(((n_a - 1) s_a² + (n_b - 1) s_b²) / (n_a + n_b - 2)); None when either side has a single value."""
    if len(a) < 2 or len(b) < 2:
        return None
    return math.sqrt(((len(a) - 1) * statistics.variance(a) + (len(b) - 1) * statistics.variance(b))
                     / (len(a) + len(b) - 2))


def _aggregation_notes(rows: list[Row], with_deltas: bool) -> list[str]:
    """Which runs each aggregated row holds, and how its cells read."""
    grouped = [row for row in rows if len(row.runs) > 1]
    if not grouped:
        return []
    notes = ["Cells of several runs show mean ± sample std over n runs"
             + (f"; Δ is between means, and \"{NOISE_MARK.strip()}\" marks |Δ| < {NOISE_STDS:g} × the pooled "
                f"std of the two settings. A side with one run has no std, so its Δ has no noise mark."
                if with_deltas else ".")]
    for row in grouped:
        seeds = [run.seed for run in row.runs]
        seed_text = f"; seeds {', '.join(_seed_text(s) or '?' for s in seeds)}" if any(s is not None for s in seeds) else ""
        notes.append(f"{row.run.arch} {row.run.init}: {len(row.runs)} runs ({', '.join(row.run_labels)}{seed_text}).")
        repeated = [s for s, n in Counter(s for s in seeds if s is not None).items() if n > 1]
        if repeated:
            notes.append(f"{row.run.arch} {row.run.init}: seed {', '.join(map(str, repeated))} appears more than "
                         "once: these are repeats, not independent seeds.")
    return notes


def _cost_notes(runs: list[Run], costs: list[str]) -> list[str]:
    """How the cost columns were measured (runlib/cost.py)."""
    notes = []
    if "GFLOPs" in costs:
        inputs = ", ".join(sorted({run.flops_input for run in runs if run.flops_input})) or "the test input"
        notes.append(f"GFLOPs: one forward at {inputs}, fvcore's count (a fused multiply-add is one FLOP; "
                     "element-wise operators are not counted), as detectron2's tools/analyze_model.py.")
    if {"train s/iter", "inference s/im"} & set(costs):
        notes.append("train s/iter: mean training iteration as the framework's timer logs it, after its warm-up "
                     "iterations; inference s/im: model time per image over the evaluation, after up to 5 warm-up "
                     "calls; device-hours: wall-clock time of the whole run × devices.")
    if MEMORY_COLUMNS["cpu_rss_peak"] in costs:
        notes.append(f"{MEMORY_COLUMNS['cpu_rss_peak']}: peak resident memory of the CPU process while training "
                     "(all it holds, not only tensors); not comparable with CUDA max allocated memory.")
    return notes


def _paper_notes(task: str, dataset: str, rows: list[Row], paper_metrics: list[str]) -> list[str]:
    """What the paper columns are, and every other published number for the settings in the table."""
    notes = []
    if paper_metrics and not is_paper_dataset(task, dataset):
        notes.append(f"`{dataset}` is not {paper_dataset(task)}: the paper columns are the published "
                     f"{paper_dataset(task)} numbers, shown for reference only; this run does not reproduce them.")
    for arch, init in dict.fromkeys((_key(row.run.arch), _key(row.run.init)) for row in rows):
        shown = {p for row in rows if (_key(row.run.arch), _key(row.run.init)) == (arch, init)
                 for p in row.paper.values()}
        others: dict[tuple[str, str], list[Published]] = {}
        for p in published(task, arch, init):
            if p not in shown and p.metric in paper_metrics:
                others.setdefault((p.source, p.note), []).append(p)
        if others:
            listed = "; ".join(", ".join(f"{p.metric} {p.text}" for p in ps) + f" ({_source(ps[0])})"
                               for ps in others.values())
            notes.append(f"Also published for {arch} {init}: {listed}.")
    if task == "detection" and is_paper_dataset(task, dataset):
        std = next(p for p in PUBLISHED if p.metric == "seed_std_AP")
        notes.append(f"Seed-to-seed std on COCO is about {std.text} AP ({std.source}): "
                     f"differences of that size are noise.")
    return notes


# ---------------------------------------------------------------------------------------------- output

@dataclass
class Grid:
    """One table as text, in either layout: the column groups over ``columns`` (label and width; "" for no group),
    the body (one list of cells per row, "" for no value) and the notes under it."""
    title: str
    groups: list[tuple[str, int]]
    columns: list[str]
    body: list[list[str]]
    notes: list[str]

    def flat_columns(self) -> list[str]:
        """Each column's header with its group's label before it (markdown and CSV have one header row)."""
        labels = [label for label, width in self.groups for _ in range(width)]
        return [f"{label} {column}" if label else column for label, column in zip(labels, self.columns)]


def long_grid(table: Table) -> Grid:
    """A row per setting (arch, init): metrics, costs, Δ and the published numbers."""
    header = table.header()
    return Grid(f"{table.task} · {table.dataset}", [("", len(header))], header, table.cells(), table.notes)


def paper_grid(table: Table) -> Grid:
    """The MAE paper's Tables 4 and 5: a row per init, a column group per arch holding the headline metrics
    (mean ± std over seeds) and the published numbers, then the sources of those."""
    metrics = [m for m in _headline(table.task) if m in table.metrics]
    archs = list(dict.fromkeys(row.run.arch for row in table.rows))
    inits = sorted(dict.fromkeys(row.run.init for row in table.rows), key=_init_order)
    cell = {(row.run.arch, row.run.init): row for row in table.rows}
    where = "" if table.on_paper_dataset else f" ({paper_dataset(table.task)})"
    groups, columns = [("", 1)], ["init"]
    paper_by_arch = {}
    for arch in archs:
        paper_by_arch[arch] = [m for m in metrics if any(m in row.paper for row in table.rows if row.run.arch == arch)]
        arch_columns = metrics + [f"paper {m}{where}" for m in paper_by_arch[arch]]
        groups.append((arch, len(arch_columns)))
        columns += arch_columns
    sourced = any(row.paper for row in table.rows)
    if sourced:
        groups.append(("", 1))
        columns.append("paper source")
    body = []
    for init in inits:
        cells, sources = [init], []
        for arch in archs:
            row = cell.get((arch, init))
            means = row.metrics if row else {}
            cells += [_mean_text(means[m], row.std(m), m) if m in means else "" for m in metrics]
            cells += [row.paper[m].text if row and m in row.paper else "" for m in paper_by_arch[arch]]
            if row and row.paper:
                sources.append(_source(next(iter(row.paper.values()))))
        body.append(cells + (["; ".join(dict.fromkeys(sources))] if sourced else []))
    notes = table.paper_notes + _aggregation_notes(table.rows, with_deltas=False)
    return Grid(f"{table.task} · {table.dataset}", groups, columns, body, notes)


def grids(comparison: Comparison, layout: str = "long") -> list[Grid]:
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    return [(paper_grid if layout == "paper" else long_grid)(table) for table in comparison.tables]


def render_markdown(comparison: Comparison, layout: str = "long") -> str:
    out = [f"Runs under `{comparison.root}`.", ""]
    for grid in grids(comparison, layout):
        out += [f"## {grid.title}", ""]
        out += markdown_table(grid.flat_columns(), grid.body)
        out += [""] + [f"- {note}" for note in grid.notes] + ([""] if grid.notes else [])
    if comparison.skipped:
        out += ["## Not in the tables", ""]
        out += markdown_table(["run", "reason"],
                               [[comparison.label(s.path), s.reason] for s in comparison.skipped])
        out.append("")
    return "\n".join(out)


def write_markdown(comparison: Comparison, path: str | Path, layout: str = "long") -> Path:
    text = render_markdown(comparison, layout) + "\n"  # as printed
    return atomic_write(path, lambda tmp: tmp.write_text(text))


# ---------------------------------------------------------------------------------------------- LaTeX

LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
LATEX_NAMES = {"vit_base": "ViT-B", "vit_large": "ViT-L", "vit_huge": "ViT-H", "mae": "MAE"}
_NUMBER = r"[+-]?\d+(?:\.\d+)?"
_NUMBER_CELL = re.compile(rf"({_NUMBER})(?: ± ({_NUMBER}))?({re.escape(NOISE_MARK)})?")
_AP_NAME = re.compile(r"AP(box|mask)(?:_(50|75|s|m|l))?")


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(c, c) for c in text)


def latex_cell(text: str) -> str:
    """A cell: numbers in math mode (a true minus sign, ``\\pm``; a Δ within noise marked with a dagger, explained
    in the notes under the table), known names as papers print them, other text escaped."""
    number = _NUMBER_CELL.fullmatch(text)
    if not number:
        return LATEX_NAMES.get(text) or latex_escape(text)
    mean, std, noise = number.groups()
    return f"${mean}" + (rf" \pm {std}" if std else "") + (r"^{\dagger}" if noise else "") + "$"


def latex_header(text: str) -> str:
    """A column header: AP\\textsuperscript{box}\\textsubscript{50} for APbox_50, $\\Delta$ for Δ, the rest escaped."""
    parts = re.split(r"(Δ|AP(?:box|mask)(?:_(?:50|75|s|m|l))?)", text)
    out = []
    for part in parts:
        ap = _AP_NAME.fullmatch(part)
        if part == "Δ":
            out.append(r"$\Delta$")
        elif ap:
            task, sub = ap.groups()
            out.append(rf"AP\textsuperscript{{{task}}}" + (rf"\textsubscript{{{sub.upper() if sub.isalpha() else sub}}}"
                                                           if sub else ""))
        else:
            out.append(latex_escape(part))
    return "".join(out)


def latex_tabular(grid: Grid) -> list[str]:
    """One booktabs ``tabular`` (needs ``\\usepackage{booktabs}``): a row of column groups with rules under them
    where the layout has groups, then the columns, the body, and the notes as comments."""
    lines = [f"% {grid.title}", rf"\begin{{tabular}}{{l{'c' * (len(grid.columns) - 1)}}}", r"\toprule"]
    if any(label for label, _ in grid.groups):
        cells, rules, start = [], [], 1
        for label, width in grid.groups:
            if label:
                cells.append(rf"\multicolumn{{{width}}}{{c}}{{{latex_cell(label)}}}")
                rules.append(rf"\cmidrule(lr){{{start}-{start + width - 1}}}")
            else:
                cells += [""] * width
            start += width
        lines += [" & ".join(cells) + r" \\", " ".join(rules)]
    lines += [" & ".join(map(latex_header, grid.columns)) + r" \\", r"\midrule"]
    lines += [" & ".join(map(latex_cell, cells)) + r" \\" for cells in grid.body]
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = grid.notes + ([f"A dagger marks a Δ{NOISE_MARK}."] if any(NOISE_MARK in c for r in grid.body for c in r)
                          else [])
    return lines + [f"% {line}" for note in notes for line in note.splitlines()]


def render_latex(comparison: Comparison, layout: str = "long") -> str:
    blocks = ["\n".join(latex_tabular(grid)) for grid in grids(comparison, layout)]
    return "% mae-transfer compare: one booktabs tabular per task and data set (\\usepackage{booktabs})\n\n" \
        + "\n\n".join(blocks) + "\n"


def write_latex(comparison: Comparison, path: str | Path, layout: str = "long") -> Path:
    text = render_latex(comparison, layout)
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def csv_rows(comparison: Comparison) -> tuple[list[str], list[dict[str, str]]]:
    """All tables as one CSV, one row per run: task and dataset, then each table's own columns (empty where a
    table has none); a seed column when some run record has a seed."""
    seeds = any(run.seed is not None for table in comparison.tables for row in table.rows for run in row.runs)
    columns = ["task", "dataset"]
    rows = []
    for table in comparison.tables:
        header = table.run_header(seeds)
        columns += [h for h in header if h not in columns]
        rows += [dict(task=table.task, dataset=table.dataset, **dict(zip(header, cells)))
                 for cells in table.run_cells(seeds)]
    return columns, rows


def write_csv(comparison: Comparison, path: str | Path) -> Path:
    columns, rows = csv_rows(comparison)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, lambda tmp: tmp.write_text(text.getvalue()))


INIT_COLORS = {"mae": "tab:red", "supervised": "tab:blue", "random": "tab:gray"}
OTHER_COLORS = ("tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def write_png(comparison: Comparison, path: str | Path) -> Path:
    """A grouped bar chart: one panel per table, a group per (arch, metric), a bar per setting: its mean, with the
    sample standard deviation as an error bar where the setting has several runs.

    The published number is drawn as a black tick over its bar, on the paper's own data set only: next to
    numbers from generated data it would be a comparison that does not exist.
    """
    from matplotlib.figure import Figure  # the Agg canvas, without pyplot's global state

    tables = comparison.tables
    if not tables:
        raise ValueError(f"{path}: nothing to plot, the comparison has no finished runs")
    widest = max(len(_bar_groups(t)) for t in tables)
    fig = Figure(figsize=(max(6.0, 1.4 * widest + 2.5), 3.4 * len(tables)), layout="constrained")
    for ax, table in zip(fig.subplots(len(tables), 1, squeeze=False)[:, 0], tables):
        groups, series = _bar_groups(table), _bar_series(table)
        width = 0.8 / len(series)
        others = iter(OTHER_COLORS * len(series))
        colors = {name: INIT_COLORS.get(_key(rows[0].run.init)) or next(others) for name, rows in series.items()}
        seen_colors: Counter = Counter()
        paper_label = "published"
        for i, (name, rows) in enumerate(series.items()):
            xs, heights, errors, labels, published_at = [], [], [], [], []
            for g, (arch, metric) in enumerate(groups):
                row = next((r for r in rows if r.run.arch == arch and metric in r.metrics), None)
                if row is None:
                    continue
                x = g - 0.4 + width * (i + 0.5)
                xs.append(x)
                heights.append(row.metrics[metric])
                errors.append(row.std(metric) or 0.0)
                labels.append(f"{heights[-1]:.{_decimals(metric) - 1}f}"
                              + (f" (n={len(row.values(metric))})" if len(row.values(metric)) > 1 else ""))
                if table.on_paper_dataset and metric in row.paper:
                    published_at.append((x, row.paper[metric].value))
            hatch = "//" if seen_colors[colors[name]] else None  # a repeated init: same colour, hatched
            seen_colors[colors[name]] += 1
            bars = ax.bar(xs, heights, width, label=name, color=colors[name], hatch=hatch, edgecolor="white",
                          yerr=errors if any(errors) else None, capsize=3, error_kw={"lw": 1})
            ax.bar_label(bars, labels, fontsize=7)
            for x, value in published_at:
                ax.plot([x - width / 2, x + width / 2], [value, value], color="black", lw=2, label=paper_label)
                paper_label = "_nolegend_"
        ax.set_xticks(range(len(groups)), [f"{arch}\n{metric}" for arch, metric in groups])
        title = f"{table.task} · {table.dataset}"
        if table.aggregated:
            title += " (mean ± sample std over n runs)"
        if table.paper_metrics and not table.on_paper_dataset:
            title += f"\n(not {paper_dataset(table.task)}: published numbers not drawn)"
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))


def _bar_groups(table: Table) -> list[tuple[str, str]]:
    archs = dict.fromkeys(row.run.arch for row in table.rows)
    return [(arch, m) for arch in archs for m in table.metrics if m in _main(table.task)  # not the AP breakdown
            and any(row.run.arch == arch and m in row.metrics for row in table.rows)]


def _bar_series(table: Table) -> dict[str, list[Row]]:
    """Rows by legend entry: the init, or init and label where one arch has that init more than once (inits
    that differ in case only)."""
    repeats = Counter((row.run.arch, row.run.init) for row in table.rows)
    series: dict[str, list[Row]] = {}
    for row in table.rows:
        name = row.run.init if repeats[row.run.arch, row.run.init] == 1 else f"{row.run.init} ({row.label})"
        series.setdefault(name, []).append(row)
    return series


# ---------------------------------------------------------------------------------------------- helpers

def _main(task: str) -> tuple[str, ...]:
    return MAIN.get(task, METRICS[task])


def _headline(task: str) -> tuple[str, ...]:
    return HEADLINE.get(task, METRICS[task])


def _key(name: str) -> str:
    return name.lower()


def _mean_text(mean: float, std: float | None, metric: str) -> str:
    decimals = _decimals(metric, mean)
    return f"{mean:.{decimals}f}" if std is None else f"{mean:.{decimals}f} ± {std:.{decimals}f}"


def _delta_text(row: Row, metric: str) -> str:
    if metric not in row.deltas:
        return ""
    return f"{row.deltas[metric]:+.{_decimals(metric)}f}" + (NOISE_MARK if row.within_noise.get(metric) else "")


def _seed_text(seed: int | None) -> str:
    return "" if seed is None else str(seed)


def _group_label(labels: list[str], others: list[str]) -> str:
    """A setting's runs by their folders: the one folder, the folder holding all of them (when it holds no other
    run of the comparison), or the list."""
    if len(labels) == 1:
        return labels[0]
    common = os.path.commonpath(labels)
    if common not in ("", ".") and not any(o == common or o.startswith(common + os.sep) for o in others):
        return common
    return ", ".join(labels)


def _row_order(row: Row) -> tuple:
    archs = list(VIT_SIZES)
    arch = _key(row.run.arch)
    return (archs.index(arch) if arch in archs else len(archs), arch, *_init_order(row.run.init), row.label)


def _init_order(init: str) -> tuple:
    """MAE, supervised, random, then the others by name."""
    key = _key(init)
    return (INIT_ORDER.index(key) if key in INIT_ORDER else len(INIT_ORDER), key)


def _root(folders: list[Path]) -> Path:
    """The deepest folder holding all of ``folders`` that is not itself one of them (so no label is ".")."""
    resolved = [f.resolve() for f in folders]
    root = Path(os.path.commonpath(resolved))
    return root.parent if root in resolved else root


def _label(path: Path, root: Path) -> str:
    return os.path.relpath(Path(path).resolve(), root)


def _decimals(metric: str, value: float = 0.0) -> int:
    """Decimals of a metric; of a cost, as many as give its value COST_DIGITS significant digits."""
    if metric in COST_COLUMNS:
        return max(0, COST_DIGITS - 1 - math.floor(math.log10(abs(value)))) if value else COST_DIGITS - 1
    return DECIMALS.get(metric, 2)


def _source(p: Published) -> str:
    return f"{p.source}, {p.note}" if p.note else p.source


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    """Lines of a markdown table (an empty cell reads as ``MISSING``); the benchmarks print theirs with it too."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") or MISSING for c in cells) + " |"
    return [line(header), "|" + "|".join("---" for _ in header) + "|"] + [line(cells) for cells in body]


OUT_NAME = "comparison"  # compare --out DIR writes DIR/comparison.{md,tex,csv,png}
OUT_SUFFIXES = {"md": "md", "latex": "tex", "csv": "csv", "png": "png"}  # option -> file suffix


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mae-transfer compare",
        usage="mae-transfer compare RUN_DIR [RUN_DIR ...] [--out DIR] [--dataset NAME] [--layout long|paper] "
              "[--md PATH] [--latex PATH] [--csv PATH] [--png PATH]",
        description="Tables of finished runs (their run_record.json run records) next to the published numbers. "
                    "Markdown goes to stdout.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="a run folder, a folder searched recursively for run_record.json, or a run_record.json file")
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="also write " + ", ".join(f"{OUT_NAME}.{ext}" for ext in OUT_SUFFIXES.values())
                             + " into DIR (a --md, --latex, --csv or --png path replaces its file)")
    parser.add_argument("--dataset", action="append", metavar="NAME",
                        help="only runs on this data set (repeatable); the others are listed as not selected")
    parser.add_argument("--layout", choices=LAYOUTS, default="long",
                        help="long: a row per setting (arch, init) with every metric, cost, Δ and published number "
                             "(default); paper: the MAE paper's Tables 4/5, a row per init and a column group per arch")
    parser.add_argument("--md", type=Path, metavar="PATH", help="also write the markdown printed to a file")
    parser.add_argument("--latex", type=Path, metavar="PATH",
                        help="also write the tables as LaTeX (booktabs tabulars, in the --layout)")
    parser.add_argument("--csv", type=Path, metavar="PATH", help="also write the tables' rows as CSV (a row per run)")
    parser.add_argument("--png", type=Path, metavar="PATH", help="also write a grouped bar chart")
    args = parser.parse_args(argv)
    for option, suffix in OUT_SUFFIXES.items():  # --out DIR: every format, under its default name
        if args.out is not None and getattr(args, option) is None:
            setattr(args, option, args.out / f"{OUT_NAME}.{suffix}")

    def body():
        comparison = compare_runs(args.run_dirs, datasets=args.dataset)
        if not comparison.tables:
            skipped = "".join(f"\n  {s.path}: {s.reason}" for s in comparison.skipped)
            raise UserError(f"no finished run with metrics in {', '.join(args.run_dirs)}{skipped}")
        print(render_markdown(comparison, args.layout))
        if args.md:
            print(f"wrote {write_markdown(comparison, args.md, args.layout)}", file=sys.stderr)
        if args.latex:
            print(f"wrote {write_latex(comparison, args.latex, args.layout)}", file=sys.stderr)
        if args.csv:
            print(f"wrote {write_csv(comparison, args.csv)}", file=sys.stderr)
        if args.png:
            print(f"wrote {write_png(comparison, args.png)}", file=sys.stderr)
    return run_command("compare", body)
