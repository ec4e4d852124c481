"""``mae-transfer compare RUN_DIR...``: finished runs side by side, next to the published numbers.

Every run writes a run record (``run_record.json``, see backbone/run_record.py). This reads the records found in or
under the given folders and builds one table per (task, data set): a row per setting (arch, init), ordered by
arch then init (MAE, supervised, random, others by name); its metrics; the difference to the supervised setting of
the same arch; and the published number for the same arch and init (mae_transfer/published.py) with its source.
Runs that are unfinished, failed, unreadable or not selected are listed under the tables with the reason.

Several runs of one setting (the same task, data set, arch and init: typically seeds, each in its own folder) are
one row: the mean ± sample standard deviation and n. A Δ is then taken between means, and marked "within noise"
when it is smaller than twice the pooled standard deviation of the two settings; where either side is a single
run there is no standard deviation and no mark. A setting with one run reads as a plain run row. The CSV keeps
one row per run (with its seed where the record has one).
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import os
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from backbone import VIT_SIZES, UserError, read_run_record, run_command
from backbone.run_record import RECORD_NAME, STATUSES, atomic_write

from .published import PUBLISHED, Published, is_paper_dataset, paper_column, paper_dataset, published

# The metrics each task's table shows, in column order (run-record metric names).
METRICS = {
    "detection": ("APbox", "APmask"),
    "segmentation": ("mIoU", "mAcc", "aAcc"),
    "finetune": ("top1",),
    "linprobe": ("top1",),
    "pretrain": ("loss",),
}
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
    metrics: dict[str, float]
    seed: int | None = None


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
    notes: list[str]

    @property
    def on_paper_dataset(self) -> bool:
        return is_paper_dataset(self.task, self.dataset)

    @property
    def aggregated(self) -> bool:
        """Some setting has more than one run: the table shows n and mean ± std."""
        return any(len(row.runs) > 1 for row in self.rows)

    def header(self) -> list[str]:
        header = ["run", "arch", "init", *(["n"] if self.aggregated else []), *self.metrics]
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
            cells += [_mean_text(means[m], row.std(m), m) if m in means else "" for m in self.metrics]
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
                cells += [f"{run.metrics[m]:.{_decimals(m)}f}" if m in run.metrics else "" for m in self.metrics]
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
    for name, value in wanted.items():
        if value is None:  # run records write a NaN metric (COCO AP without a detection) as null
            return Skipped(folder, f'metric "{name}" is null (no result to compare)')
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return Skipped(folder, f'metric "{name}" is not a number: {value!r}')
        if not math.isfinite(value):  # e.g. COCO AP of a model that made no detection
            return Skipped(folder, f'metric "{name}" is {value} (no result to compare)')
    if not wanted:
        return Skipped(folder, f"finished, but has none of the {task} metrics ({', '.join(METRICS[task])})")
    seed = record.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        return Skipped(folder, f'"seed" is not an integer: {seed!r}')
    return Run(folder, task, record["dataset"], record["arch"], record["init"],
               {m: float(v) for m, v in wanted.items()}, seed)


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
    notes = _fill_deltas(rows, metrics) if task not in NO_DELTA else []
    delta_metrics = [m for m in metrics if any(m in row.deltas for row in rows)]
    for row in rows:
        row.paper = {m: p for m, p in paper_column(task, _key(row.run.arch), _key(row.run.init)).items()
                     if m in metrics}
    paper_metrics = [m for m in metrics if any(m in row.paper for row in rows)]
    notes += _paper_notes(task, dataset, rows, paper_metrics)
    notes += _aggregation_notes(rows, task not in NO_DELTA)
    return Table(task, dataset, metrics, delta_metrics, paper_metrics, rows, notes)


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
    notes = [f"Rows of several runs show mean ± sample std over n runs"
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

def render_markdown(comparison: Comparison) -> str:
    out = [f"Runs under `{comparison.root}`.", ""]
    for table in comparison.tables:
        out += [f"## {table.task} · {table.dataset}", ""]
        out += markdown_table(table.header(), table.cells())
        out += [""] + [f"- {note}" for note in table.notes] + ([""] if table.notes else [])
    if comparison.skipped:
        out += ["## Not in the tables", ""]
        out += markdown_table(["run", "reason"],
                               [[comparison.label(s.path), s.reason] for s in comparison.skipped])
        out.append("")
    return "\n".join(out)


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
    return [(arch, m) for arch in archs for m in table.metrics
            if any(row.run.arch == arch and m in row.metrics for row in table.rows)]


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

def _key(name: str) -> str:
    return name.lower()


def _mean_text(mean: float, std: float | None, metric: str) -> str:
    decimals = _decimals(metric)
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
    arch, init = _key(row.run.arch), _key(row.run.init)
    return (archs.index(arch) if arch in archs else len(archs), arch,
            INIT_ORDER.index(init) if init in INIT_ORDER else len(INIT_ORDER), init, row.label)


def _root(folders: list[Path]) -> Path:
    """The deepest folder holding all of ``folders`` that is not itself one of them (so no label is ".")."""
    resolved = [f.resolve() for f in folders]
    root = Path(os.path.commonpath(resolved))
    return root.parent if root in resolved else root


def _label(path: Path, root: Path) -> str:
    return os.path.relpath(Path(path).resolve(), root)


def _decimals(metric: str) -> int:
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="mae-transfer compare",
        description="Tables of finished runs (their run_record.json run records) next to the published numbers. "
                    "Markdown goes to stdout.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                        help="a run folder, a folder searched recursively for run_record.json, or a run_record.json file")
    parser.add_argument("--dataset", action="append", metavar="NAME",
                        help="only runs on this data set (repeatable); the others are listed as not selected")
    parser.add_argument("--csv", type=Path, metavar="PATH", help="also write the tables' rows as CSV")
    parser.add_argument("--png", type=Path, metavar="PATH", help="also write a grouped bar chart")
    args = parser.parse_args(argv)


    def body():
        comparison = compare_runs(args.run_dirs, datasets=args.dataset)
        if not comparison.tables:
            skipped = "".join(f"\n  {s.path}: {s.reason}" for s in comparison.skipped)
            raise UserError(f"no finished run with metrics in {', '.join(args.run_dirs)}{skipped}")
        print(render_markdown(comparison))
        if args.csv:
            print(f"wrote {write_csv(comparison, args.csv)}", file=sys.stderr)
        if args.png:
            print(f"wrote {write_png(comparison, args.png)}", file=sys.stderr)
    return run_command("compare", body)
