"""Recipe search for ``mae-transfer grid --recipe-search``: every init gets the same small budget over lr and layer
decay, the best point chosen on the validation split, the chosen and the published recipe reported on a test split.

ViTDet chose its per-init recipes (Table 11) by searching each init's lr, weight decay and layer decay on COCO
val; a table of published recipes alone compares inits under recipes tuned at another scale. A grid file declares
the space per task and the split to report on::

    search = dict(detect=dict(lr=[1e-4, 2e-4], layer_decay=[0.75, 1.0]),
                  segment=dict(lr=[1e-3, 2e-3], layer_decay=[0.65, 0.9]))
    test_split = dict(detect=dict(args=[...]), segment=dict(args=[...], overrides=[...]))

Each transfer run ``NAME`` (``detect`` / ``segment`` with an init) then gets, per point of the product of its
task's lists and per seed, a run ``search/NAME/lrLR_ldLD`` (the run with ``lr`` and ``layer_decay`` overridden,
every other setting its own: weight decay, schedule, data), and two evaluations on the test split per seed:
``test/NAME/published`` (the run itself) and ``test/NAME/searched`` (the point whose validation metric, APbox or
mIoU, has the highest mean over the seeds; the first listed on a tie). Each writes ``test/NAME/RECIPE.json``: the
recipe's lr and layer decay and every point's validation mean. ``search.md`` puts both rows per init side by side.
"""
from __future__ import annotations

import itertools
import json
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

from runlib import UserError, read_run_record
from runlib.run_record import atomic_write_json

# How each framework's config spells the two searched settings.
RECIPE_KEYS = {
    "detect": {"lr": "optimizer.lr", "layer_decay": "optimizer.params.lr_factor_func.decay"},
    "segment": {"lr": "optim_wrapper.optimizer.lr", "layer_decay": "optim_wrapper.paramwise_cfg.layer_decay_rate"},
}
SELECT_BY = {"detect": "APbox", "segment": "mIoU"}   # the validation metric a point is chosen by
TEST_KINDS = {"detect": "detect-test", "segment": "segment-test"}
TASKS = {"detect": "detection", "segment": "segmentation"}
SHORT = {"lr": "lr", "layer_decay": "ld"}
REPORT_NAME = "search.md"


@dataclass(frozen=True)
class Candidate:
    """A recipe a test evaluation may pick: its search point (empty: the run's published recipe), its runs' folders
    (one per seed: the validation mean is over them) and the folder of the run to evaluate (this seed's)."""
    point: tuple[tuple[str, float], ...]
    folders: tuple[str, ...]
    evaluate: str


def point_label(point: Mapping[str, float]) -> str:
    return "_".join(f"{SHORT[key]}{point[key]:g}" for key in SHORT if key in point)


def point_text(point: Mapping[str, float]) -> str:
    """``lr 0.0002, ld 0.75``: lr first, whatever order the point's keys come in (JSON files sort them)."""
    return ", ".join(f"{SHORT[key]} {point[key]:g}" for key in SHORT if key in point)


# ------------------------------------------------------------------------------------------------ expansion
def search_points(path: Path, space: object, kind: str) -> list[dict[str, float]]:
    """The product of one task's lists, in the file's order of keys and values."""
    if not isinstance(space, dict) or not space:
        raise UserError(f"{path}: search.{kind} must be a dict of lists, e.g. dict(lr=[1e-4, 2e-4], "
                        f"layer_decay=[0.75, 1.0]), got {space!r}")
    for key, values in space.items():
        if key not in RECIPE_KEYS[kind]:
            raise UserError(f"{path}: search.{kind}: unknown key {key!r} (known: {', '.join(RECIPE_KEYS[kind])})")
        if (not isinstance(values, (list, tuple)) or not values
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values)):
            raise UserError(f"{path}: search.{kind}.{key} must be a list of positive numbers, got {values!r}")
    keys = list(space)
    return [dict(zip(keys, values)) for values in itertools.product(*(space[k] for k in keys))]


def search_runs(path: Path, cfg: Mapping, runs: list, out: Path, fill: Callable[[object], object]) -> list:
    """The search runs and the test evaluations of a grid's transfer runs (``runs``: the grid's own, expanded);
    ``fill`` puts ``{out}`` and the params into the test split's strings."""
    space, test_split = cfg.get("search"), cfg.get("test_split")
    if not isinstance(space, dict) or not space:
        raise UserError(f"{path}: --recipe-search needs search = dict(detect=dict(lr=[...], layer_decay=[...]), "
                        "segment=...) in the grid file")
    for kind in space:
        if kind not in RECIPE_KEYS:
            raise UserError(f"{path}: search: unknown task {kind!r} (known: {', '.join(RECIPE_KEYS)})")
        if not isinstance(test_split, dict) or not isinstance(test_split.get(kind), dict):
            raise UserError(f"{path}: search.{kind} needs test_split = dict({kind}=dict(args=[...], "
                            "overrides=[...])): the split the chosen recipe is reported on")
    entries: dict[str, list] = {}  # a transfer entry's name -> its runs, one per seed
    for run in runs:
        if run.kind in space and run.init:
            entries.setdefault(_entry_name(run), []).append(run)
    added = []
    for entry, seed_runs in entries.items():
        kind = seed_runs[0].kind
        by_point = [(point, [_searched(run, entry, point, out) for run in seed_runs])
                    for point in search_points(path, space[kind], kind)]
        split = {key: tuple(fill(test_split[kind].get(key, []))) for key in ("args", "overrides")}
        added += [run for _, searched in by_point for run in searched]
        added += _test_evaluations(entry, seed_runs, by_point, out, split)
    return added


def _test_evaluations(entry: str, seed_runs: list, by_point: list, out: Path, split: dict) -> list:
    """Per seed, the published run's and the chosen point's evaluation on the test split (``split``: its args and
    overrides); the chosen one waits for every point's runs (the choice is on the mean over seeds)."""
    trained = seed_runs[0].resources  # an evaluation is one process on at most one GPU, whatever training took
    one_process = replace(trained, nodes=1, gpus_per_node=min(1, trained.gpus_per_node))
    kind = TEST_KINDS[seed_runs[0].kind]
    evaluations = []
    for index, run in enumerate(seed_runs):
        published = Candidate((), (str(run.folder),), str(run.folder))
        searched = tuple(Candidate(tuple(point.items()), tuple(str(r.folder) for r in point_runs),
                                   str(point_runs[index].folder)) for point, point_runs in by_point)
        after = {"published": (run.name,), "searched": tuple(r.name for _, rs in by_point for r in rs)}
        for recipe, candidates in (("published", (published,)), ("searched", searched)):
            name = f"test/{entry}/{recipe}" + _seed_suffix(run, entry)
            evaluations.append(replace(run, name=name, folder=out / name, kind=kind, weights=None,
                                       after=after[recipe], export=None, resources=one_process,
                                       creates=str(out / f"test/{entry}/{recipe}.json"), candidates=candidates,
                                       **split))
    return evaluations


def _entry_name(run) -> str:
    return run.name.removesuffix(f"/seed{run.seed}") if run.seed is not None else run.name


def _seed_suffix(run, entry: str) -> str:
    return run.name[len(entry):]


def _searched(run, entry: str, point: dict[str, float], out: Path):
    name = f"search/{entry}/{point_label(point)}" + _seed_suffix(run, entry)
    keys = RECIPE_KEYS[run.kind]
    return replace(run, name=name, folder=out / name, point=tuple(point.items()),
                   overrides=run.overrides + tuple(f"{keys[key]}={value!r}" for key, value in point.items()))


# ------------------------------------------------------------------------------------------------ selection
def task_of(run) -> str:
    """``detect`` or ``segment``: the task a test evaluation's candidates were trained for."""
    return next(kind for kind, test in TEST_KINDS.items() if test == run.kind)


def validation_mean(folders: tuple[str, ...], metric: str) -> float:
    values = []
    for folder in folders:
        record = read_run_record(folder)
        value = record.get("metrics", {}).get(metric)
        if record.get("status") != "finished" or not isinstance(value, (int, float)):
            raise UserError(f"{folder}: no finished run with {metric} to choose a recipe by")
        values.append(float(value))
    return statistics.fmean(values)


def select(run) -> dict:
    """The recipe a test evaluation reports: the candidate of the highest validation mean, with what it was chosen
    from. The published recipe's lr and layer decay are its config's."""
    task = task_of(run)
    metric = SELECT_BY[task]
    scored = [(candidate, validation_mean(candidate.folders, metric)) for candidate in run.candidates]
    best, _ = max(scored, key=lambda pair: pair[1])  # max keeps the first of equal values
    published = not best.point
    return {"recipe": "published" if published else "searched", "task": TASKS[task], "init": run.init,
            "metric": metric, "lr_layer_decay": config_recipe(task, run.config) if published else dict(best.point),
            "evaluate": best.evaluate, "seeds": len(best.folders),
            "validation": [{"point": dict(c.point), "mean": mean, "runs": len(c.folders)} for c, mean in scored]}


def record_selection(run) -> dict:
    """Choose (``select``) and write the choice to ``run.creates``. A choice that differs from one already
    evaluated there (the seeds changed, and with them the means) is an error: the seeds' test rows would mix
    two recipes."""
    selection, path = select(run), Path(run.creates)
    before = json.loads(path.read_text())["lr_layer_decay"] if path.is_file() else None
    evaluated = [record for record in path.with_suffix("").rglob("run_record.json")
                 if read_run_record(record).get("status") == "finished"]
    if before is not None and before != selection["lr_layer_decay"] and evaluated:
        raise UserError(f"{path}: the recipe chosen on val is now {point_text(selection['lr_layer_decay'])}, "
                        f"not {point_text(before)} as evaluated in {evaluated[0].parent}; the seeds changed the "
                        "choice: run the search into another --out")
    atomic_write_json(selection, path)
    return selection


def config_recipe(task: str, config: str) -> dict[str, float]:
    """lr and layer decay as a transfer config sets them."""
    if task == "detect":
        from detection.recipe import lr_and_layer_decay  # detectron2 loads only where a detection config is read
        return lr_and_layer_decay(config)
    from pretrain.config import read_mmengine_config
    wrapper = read_mmengine_config(Path(config)).optim_wrapper
    return {"lr": float(wrapper.optimizer.lr), "layer_decay": float(wrapper.paramwise_cfg.layer_decay_rate)}


def test_command(run, selection: dict) -> list[str]:
    """The ``mae-transfer`` arguments that evaluate the selected run on the test split."""
    target = Path(selection["evaluate"])
    if run.kind == TEST_KINDS["detect"]:
        task, weights, seed_key = "detect", target / "model_final.pth", "train.seed"
    else:
        task, weights, seed_key = "segment", target / read_run_record(target)["checkpoint"], "randomness.seed"
    argv = [task, "eval", "--config", run.config, "--weights", str(weights), "--out", str(run.folder), *run.args]
    argv += ["--init-label", run.init] if run.init else []
    return argv + list(run.overrides) + ([f"{seed_key}={run.seed}"] if run.seed is not None else [])


# ------------------------------------------------------------------------------------------------ the report
TEST_METRICS = {"detection": ("APbox", "APmask"), "segmentation": ("mIoU", "mAcc", "aAcc")}


def write_report(runs: list, out: Path) -> Path | None:
    """``out/search.md``: per task, a row per init and recipe (published, searched) with the recipe's lr and layer
    decay, its validation mean and its test-split metrics (mean ± std over seeds); then each init's validation
    mean at every point of the search."""
    from mae_transfer.compare import markdown_table

    groups: dict[str, list] = {}
    for run in runs:
        if run.kind in TEST_KINDS.values():
            groups.setdefault(run.creates, []).append(run)
    if not groups:
        return None
    selections = [(json.loads(Path(path).read_text()), members) for path, members in groups.items()]
    lines = ["# Recipe search: published and searched recipes on the test split", ""]
    for task in dict.fromkeys(s["task"] for s, _ in selections):
        chosen = [(s, members) for s, members in selections if s["task"] == task]
        metric, tests = chosen[0][0]["metric"], TEST_METRICS[task]
        header = ["init", "recipe", "lr", "layer decay", "n", f"val {metric}", *(f"test {m}" for m in tests)]
        body = [_report_row(selection, members, tests) for selection, members in chosen]
        lines += [f"## {task}: chosen on val by {metric}, reported on test", ""] + markdown_table(header, body) + [""]
        searched = [s for s, _ in chosen if s["validation"] and s["validation"][0]["point"]]
        if searched:
            points = [point_text(v["point"]) for v in searched[0]["validation"]]
            lines += [f"val {metric} at every point (mean over seeds; the same points for every init):", ""]
            lines += markdown_table(["init", *points], [[s["init"], *(f"{v['mean']:.2f}" for v in s["validation"])]
                                                        for s in searched]) + [""]
    path = out / REPORT_NAME
    path.write_text("\n".join(lines))
    return path


def _report_row(selection: dict, members: list, tests: tuple[str, ...]) -> list[str]:
    """init, recipe, lr, layer decay, n, the validation mean it was chosen by, the test metrics over the seeds."""
    values = {m: [read_run_record(r.folder)["metrics"].get(m) for r in members] for m in tests}
    chosen = selection["lr_layer_decay"]
    val = next(v["mean"] for v in selection["validation"] if not v["point"] or v["point"] == chosen)
    recipe = "published" if selection["recipe"] == "published" else f"searched ({point_text(chosen)})"
    return ([selection["init"], recipe, f"{chosen['lr']:g}", f"{chosen['layer_decay']:g}", str(len(members)),
             f"{val:.2f}"] + [_test_text(v, m) for m, v in values.items()])


def _test_text(values: list, metric: str) -> str:
    """mean ± std over the seeds; ``n/a`` where a seed has no value (an evaluation without such objects)."""
    from mae_transfer.compare import _mean_text

    if not all(isinstance(v, (int, float)) for v in values):
        return "n/a"
    return _mean_text(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, metric)
