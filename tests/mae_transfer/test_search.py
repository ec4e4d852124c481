"""``--recipe-search``: the same points for every init, the choice on val, both recipes evaluated on the test split
(fast, on fake run records), and the demo's quick plan with a two-point search end to end (``slow``)."""
import json
from pathlib import Path

import pytest

from runlib import UserError
from runlib.run_record import SCHEMA, atomic_write_json
from mae_transfer import cli, demo, grid, search
from tests.conftest import CONFIGS

QUICK = CONFIGS / "grid" / "demo_quick.py"
INITS = ("mae", "supervised", "random")


def quick_runs(out: Path, seeds: int | None = None) -> dict[str, grid.Run]:
    return {run.name: run for run in grid.load_grid(QUICK, out, seeds=seeds, recipe_search_on=True)}


def test_every_init_gets_the_same_points_per_task_and_nothing_else_changes(tmp_path):
    runs = quick_runs(tmp_path, seeds=2)
    # data, 2 pretrainings, 6 transfer runs; per transfer run and seed 4 points and 2 test evaluations
    assert len(runs) == 3 + 6 * 2 + 6 * 4 * 2 + 6 * 2 * 2
    for task, kind in (("detection", "detect"), ("segmentation", "segment")):
        points = {init: {run.point for run in runs.values() if run.name.startswith(f"search/{task}/{init}/")}
                  for init in INITS}
        assert len(points["mae"]) == 4 and points["mae"] == points["supervised"] == points["random"]
        keys = search.RECIPE_KEYS[kind]
        for init in INITS:
            published = runs[f"{task}/{init}/seed1"]
            for point in points[init]:
                searched = runs[f"search/{task}/{init}/{search.point_label(dict(point))}/seed1"]
                assert searched.overrides == published.overrides + tuple(f"{keys[k]}={v!r}" for k, v in point)
                same = ("kind", "config", "init", "weights", "seed", "after", "args", "resources")
                assert all(getattr(searched, f) == getattr(published, f) for f in same)
    comparison = [run for run in runs.values() if not run.point and run.kind in grid.TRANSFER_KINDS]
    assert len(comparison) == 12  # the comparison table holds the published recipes only


def test_the_test_evaluations_wait_for_their_candidates_and_read_the_test_split(tmp_path):
    runs = quick_runs(tmp_path)
    published, searched = runs["test/detection/mae/published/seed0"], runs["test/detection/mae/searched/seed0"]
    assert published.after == ("detection/mae/seed0",) and published.kind == searched.kind == "detect-test"
    assert set(searched.after) == {n for n in runs if n.startswith("search/detection/mae/")}
    assert [c.point for c in published.candidates] == [()]
    assert len({c.point for c in searched.candidates}) == 4
    assert published.creates == str(tmp_path / "test/detection/mae/published.json")
    assert f"{tmp_path}/data/coco/annotations/instances_test.json" in published.args
    segment = runs["test/segmentation/random/searched/seed0"]
    assert "test_dataloader.dataset.data_prefix.img_path=images/test" in segment.overrides
    # the data stage draws the test split the evaluations read
    data = runs["data"].command
    assert data[data.index("--num-coco-test") + 1] == data[data.index("--num-coco-val") + 1]


def test_a_multi_gpu_grid_evaluates_each_recipe_in_one_process(tmp_path):
    runs = {run.name: run for run in grid.load_grid(CONFIGS / "grid" / "mae_table4_coco.py", tmp_path)}
    trained = runs["detection/vit_b/mae/seed0"]
    path = tmp_path / "table4_search.py"
    path.write_text(f"_base_ = '{CONFIGS / 'grid' / 'mae_table4_coco.py'}'\n"
                    "search = dict(detect=dict(lr=[1e-4], layer_decay=[0.65, 0.75]))\n"
                    "test_split = dict(detect=dict(args=['--val-json', 'test.json', '--val-images', 'test']))\n")
    searched = {run.name: run for run in grid.load_grid(path, tmp_path, recipe_search_on=True)}
    assert searched["search/detection/vit_b/mae/lr0.0001_ld0.65/seed0"].resources == trained.resources
    test = searched["test/detection/vit_b/mae/searched/seed0"]
    assert trained.world_size == 64 and test.world_size == 1 and test.resources.gpus_per_node == 1


def finished(folder: Path, **metrics) -> str:
    atomic_write_json({"schema": SCHEMA, "status": "finished", "task": "x", "metrics": metrics,
                       "checkpoint": "iter_30.pth"},
                      folder / "run_record.json")
    return str(folder)


def test_the_point_of_the_best_validation_mean_over_seeds_is_chosen(tmp_path):
    # seed 0 alone would pick lr 2e-4 (30 > 25); the mean over both seeds picks lr 1e-4 (24 > 20)
    val = {1e-4: (25.0, 23.0), 2e-4: (30.0, 10.0), 3e-4: (24.0, 24.0)}
    candidates = tuple(search.Candidate((("lr", lr), ("layer_decay", 0.75)),
                                        tuple(finished(tmp_path / f"lr{lr}" / f"seed{s}", APbox=v) for s, v in
                                              enumerate(values)), str(tmp_path / f"lr{lr}" / "seed1"))
                       for lr, values in val.items())
    run = grid.Run("test/detection/mae/searched/seed1", "detect-test", tmp_path / "t", config="c.py", init="mae",
                   seed=1, candidates=candidates, creates=str(tmp_path / "searched.json"))
    selection = search.record_selection(run)
    assert selection["lr_layer_decay"] == {"lr": 1e-4, "layer_decay": 0.75}    # 24.0, tied with lr 3e-4: the first
    assert selection["evaluate"] == str(tmp_path / "lr0.0001" / "seed1")          # this seed's run of that point
    assert [v["mean"] for v in selection["validation"]] == [24.0, 20.0, 24.0]
    assert json.loads((tmp_path / "searched.json").read_text()) == selection


def test_a_choice_that_changes_after_it_was_evaluated_is_an_error(tmp_path):
    first = finished(tmp_path / "lr1" / "seed0", APbox=5.0)
    second = finished(tmp_path / "lr2" / "seed0", APbox=4.0)
    run = grid.Run("t", "detect-test", tmp_path / "test" / "searched" / "seed0", config="c.py", seed=0,
                   creates=str(tmp_path / "test" / "searched.json"),
                   candidates=(search.Candidate((("lr", 1.0),), (first,), first),
                               search.Candidate((("lr", 2.0),), (second,), second)))
    assert search.record_selection(run)["lr_layer_decay"] == {"lr": 1.0}
    finished(tmp_path / "lr2" / "seed0", APbox=6.0)
    assert search.record_selection(run)["lr_layer_decay"] == {"lr": 2.0}  # nothing evaluated yet: chosen again
    finished(tmp_path / "test" / "searched" / "seed0", APbox=1.0)
    finished(tmp_path / "lr1" / "seed0", APbox=7.0)
    with pytest.raises(UserError, match="now lr 1, not lr 2 as evaluated in"):
        search.record_selection(run)


def test_a_candidate_without_its_validation_metric_is_an_error(tmp_path):
    folder = tmp_path / "a"
    atomic_write_json({"schema": SCHEMA, "status": "failed", "metrics": {}}, folder / "run_record.json")
    run = grid.Run("t", "segment-test", tmp_path / "t", config="c.py", seed=0,
                   candidates=(search.Candidate((), (str(folder),), str(folder)),))
    with pytest.raises(UserError, match="no finished run with mIoU"):
        search.select(run)


def test_the_chosen_run_is_evaluated_on_the_test_split(tmp_path):
    runs = quick_runs(tmp_path / "out")
    run = runs["test/detection/random/searched/seed0"]
    argv = search.test_command(run, {"evaluate": "/o/search/detection/random/lr0.0002_ld1/seed0"})
    assert argv[:2] == ["detect", "eval"] and argv[-1] == "train.seed=0"
    assert argv[argv.index("--weights") + 1] == "/o/search/detection/random/lr0.0002_ld1/seed0/model_final.pth"
    assert argv[argv.index("--val-json") + 1].endswith("coco/annotations/instances_test.json")
    assert argv[argv.index("--out") + 1] == str(run.folder) and argv[argv.index("--init-label") + 1] == "random"

    segment = runs["test/segmentation/mae/published/seed0"]
    trained = Path(finished(tmp_path / "seg", mIoU=30.0))
    argv = search.test_command(segment, {"evaluate": str(trained)})
    assert argv[:4] == ["segment", "eval", "--config", segment.config]
    assert argv[argv.index("--weights") + 1] == str(trained / "iter_30.pth")
    assert argv[argv.index("--init-label") + 1] == "mae"
    options = [arg for arg in argv if "=" in arg and not arg.startswith("-")]
    assert {"test_dataloader.dataset.data_prefix.img_path=images/test",
            "test_dataloader.dataset.data_prefix.seg_map_path=annotations/test",
            "run_record.dataset=synthetic_ade_test", "randomness.seed=0"} == set(options)


def test_the_published_recipe_is_read_from_its_config():
    assert search.config_recipe("detect", str(CONFIGS / "detection" / "demo_tiny.py")) == {"lr": 1e-4,
                                                                                           "layer_decay": 0.7}
    assert search.config_recipe("detect", str(CONFIGS / "detection" / "demo_tiny_random.py")) == \
        {"lr": pytest.approx(1.6e-4), "layer_decay": 1.0}
    assert search.config_recipe("segment", str(CONFIGS / "segmentation" / "demo_tiny.py")) == {"lr": 1e-3,
                                                                                              "layer_decay": 0.65}


def test_the_report_shows_both_recipes_per_init_with_the_chosen_values(tmp_path):
    runs = []
    for init, (published, searched) in {"mae": (3.0, 6.0), "random": (8.0, 7.0)}.items():
        for recipe, lr, apbox in (("published", 1e-4, published), ("searched", 2e-4, searched)):
            path = tmp_path / f"test/detection/{init}/{recipe}.json"
            validation = [{"point": {}, "mean": 5.0, "runs": 1}] if recipe == "published" else \
                [{"point": {"lr": 1e-4, "layer_decay": 1.0}, "mean": 4.0, "runs": 1},
                 {"point": {"lr": lr, "layer_decay": 1.0}, "mean": 9.0, "runs": 1}]
            atomic_write_json({"recipe": recipe, "task": "detection", "init": init, "metric": "APbox",
                               "lr_layer_decay": {"lr": lr, "layer_decay": 1.0}, "validation": validation}, path)
            folder = tmp_path / f"test/detection/{init}/{recipe}/seed0"
            no_mask = (init, recipe) == ("random", "searched")  # an AP without value: null in the record
            finished(folder, APbox=apbox, APmask=None if no_mask else apbox / 2)
            runs.append(grid.Run(f"test/detection/{init}/{recipe}/seed0", "detect-test", folder, init=init, seed=0,
                                 creates=str(path)))
    text = search.write_report(runs, tmp_path).read_text()
    rows = [line for line in text.splitlines() if line.startswith(("| mae ", "| random "))]
    assert "| mae | published | 0.0001 | 1 | 1 | 5.00 | 3.00 | 1.50 |" in rows
    assert "| mae | searched (lr 0.0002, ld 1) | 0.0002 | 1 | 1 | 9.00 | 6.00 | 3.00 |" in rows
    assert "| random | searched (lr 0.0002, ld 1) | 0.0002 | 1 | 1 | 9.00 | 7.00 | n/a |" in rows
    assert "| init | lr 0.0001, ld 1 | lr 0.0002, ld 1 |" in text  # every init's val at each point


RUN = "runs = [dict(name='a', kind='detect', config='x.py', init='mae', seeds=[0])]\n"
SPLIT = "test_split = dict(detect=dict(args=['--val-json', 't.json', '--val-images', 't']))\n"


@pytest.mark.parametrize("text, message", [
    (SPLIT + "search = dict(detect=dict(lr=[1e-4], momentum=[0.9]))", "search.detect: unknown key 'momentum'"),
    (SPLIT + "search = dict(detect=dict(lr=[]))", "search.detect.lr must be a list of positive numbers"),
    (SPLIT + "search = dict(classify=dict(lr=[1e-4]))", "search: unknown task 'classify'"),
    ("search = dict(detect=dict(lr=[1e-4]))", "search.detect needs test_split"),
    (SPLIT, "--recipe-search needs search"),
])
def test_a_bad_search_space_is_one_line_naming_the_file(tmp_path, capsys, text, message):
    path = tmp_path / "bad.py"
    path.write_text(RUN + text + "\n")
    assert grid.main([str(path), "--out", str(tmp_path / "out"), "--recipe-search", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and len(err.strip().splitlines()) == 1


SMALLEST = CONFIGS.parent / "tests" / "mae_transfer" / "grids" / "demo_quick_search2.py"


@pytest.mark.slow  # 31 runs of the quick plan: several minutes on 2 cores
def test_quick_demo_with_a_two_point_search_reports_both_recipes_on_the_test_split(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(demo.GRIDS, "quick", str(SMALLEST))  # the quick plan, two points per init and task
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--recipe-search", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = (out / "search.md").read_text()
    assert report in printed
    for task, metric in (("detection", "APbox"), ("segmentation", "mIoU")):
        for init in INITS:
            chosen = json.loads((out / f"test/{task}/{init}/searched.json").read_text())
            assert chosen["metric"] == metric and len(chosen["validation"]) == 2
            best = max(chosen["validation"], key=lambda v: v["mean"])
            assert chosen["lr_layer_decay"] == best["point"]
            assert f"| {init} | published |" in report
            assert f"| {init} | searched ({search.point_text(best['point'])}) |" in report
            for recipe in ("published", "searched"):
                record = json.loads((out / f"test/{task}/{init}/{recipe}/seed0/run_record.json").read_text())
                assert record["status"] == "finished" and record["init"] == init
                assert record["dataset"] in ("instances_test", "synthetic_ade_test")
                assert 0.0 <= record["metrics"][metric] <= 100.0
    assert "| detection/mae/seed0 |" in printed and "search/" not in (out / "comparison.md").read_text()
