"""``mae-transfer compare`` on hand-made run records: values, deltas, paper columns, what is left out, CSV, PNG."""
from __future__ import annotations

import csv
import json

import pytest

from runlib import write_run_record
from mae_transfer import cli
from mae_transfer.compare import compare_runs, main, render_markdown
from mae_transfer.published import PUBLISHED, paper_column


def det(root, name, arch, init, box, mask, dataset="coco_2017_val"):
    write_run_record(root / name, task="detection", status="finished", dataset=dataset, arch=arch, init=init,
                     metrics={"APbox": box, "APmask": mask})


def table(comparison, task, dataset):
    (found,) = [t for t in comparison.tables if (t.task, t.dataset) == (task, dataset)]
    return found


def by_run(t):
    """run label -> {column: cell}"""
    return {cells[0]: dict(zip(t.header(), cells)) for cells in t.cells()}


def markdown_tables(text):
    """Each markdown table in ``text`` under its "## task · dataset" heading: (header, rows), "–" read as empty."""
    tables, heading, lines = {}, None, text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("## "):
            heading = line[3:]
        elif line.startswith("| ") and (i == 0 or not lines[i - 1].startswith("|")):
            block = [line]
            for following in lines[i + 1:]:
                if not following.startswith("|"):
                    break
                block.append(following)
            split = [[c.strip() for c in row.strip("|").split(" | ")] for row in block]
            tables[heading] = (split[0], [[("" if c == "–" else c) for c in row] for row in split[2:]])
    return tables


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    # Written out of order: the table must sort them.
    det(root, "l_mae", "vit_large", "mae", 54.9, 48.7)
    det(root, "b_ckpt", "vit_base", "my_mae_800ep.pth", 50.0, 44.0)
    det(root, "b_rand", "vit_base", "random", 48.2, 42.5)
    det(root, "b_mae", "vit_base", "mae", 51.43, 45.61)
    det(root, "h_mae", "vit_huge", "mae", 56.5, 50.1)
    det(root, "b_sup", "vit_base", "supervised", 47.5, 42.25)
    write_run_record(root / "seg_mae", task="segmentation", status="finished", dataset="synthetic_ade",
                     arch="vit_base", init="mae", metrics={"mIoU": 20.5, "mAcc": 30.25})
    write_run_record(root / "seg_sup", task="segmentation", status="finished", dataset="synthetic_ade",
                     arch="vit_base", init="supervised", metrics={"mIoU": 18.0, "mAcc": 29.0})
    write_run_record(root / "pre", task="pretrain", status="finished", dataset="synthetic_pretrain",
                     arch="vit_tiny", init="random", metrics={"loss": 0.612345})
    write_run_record(root / "wip", task="detection", status="running", dataset="coco_2017_val",
                     arch="vit_base", init="mae")
    write_run_record(root / "oom", task="detection", status="failed", dataset="coco_2017_val",
                     arch="vit_large", init="mae", error="Traceback (most recent call last):\n  RuntimeError: out of memory")
    (root / "d2log").mkdir()
    (root / "d2log" / "run_record.json").write_text('{"iteration": 19}\n{"iteration": 39}\n')  # JSON lines, not a record
    (root / "other").mkdir()
    (root / "other" / "run_record.json").write_text(json.dumps({"accuracy": 1.0}))
    return root


def test_values_order_and_deltas(runs):
    coco = table(compare_runs([runs]), "detection", "coco_2017_val")
    labels = [cells[0] for cells in coco.cells()]
    assert labels == ["b_mae", "b_sup", "b_rand", "b_ckpt", "l_mae", "h_mae"]
    rows = by_run(coco)
    assert rows["b_mae"]["APbox"] == "51.43" and rows["b_sup"]["APmask"] == "42.25"
    assert rows["b_mae"]["Δ APbox vs supervised"] == f"{51.43 - 47.5:+.2f}"
    assert rows["b_rand"]["Δ APmask vs supervised"] == f"{42.5 - 42.25:+.2f}"
    assert rows["b_ckpt"]["Δ APbox vs supervised"] == f"{50.0 - 47.5:+.2f}"
    assert rows["b_sup"]["Δ APbox vs supervised"] == ""   # the reference row itself
    assert rows["l_mae"]["Δ APbox vs supervised"] == ""   # no supervised ViT-L run
    assert any("vit_large: no supervised run" in note for note in coco.notes)


def test_paper_columns_on_coco(runs):
    coco = table(compare_runs([runs]), "detection", "coco_2017_val")
    rows = by_run(coco)
    # ViTDet paper T4 (docs/recipes.md §6) fills the paper columns wherever it has the setting ...
    assert (rows["b_mae"]["paper APbox"], rows["b_mae"]["paper APmask"]) == ("51.2", "45.5")
    assert (rows["b_sup"]["paper APbox"], rows["b_sup"]["paper APmask"]) == ("47.6", "42.4")
    assert (rows["b_rand"]["paper APbox"], rows["b_rand"]["paper APmask"]) == ("48.1", "42.6")
    assert rows["b_mae"]["paper source"].startswith("ViTDet paper T4")
    # ... the detectron2 README is the only one with ViT-H; a private checkpoint has no published number.
    assert (rows["h_mae"]["paper APbox"], rows["h_mae"]["paper source"]) == ("56.7", "detectron2 ViTDet README, "
                                                                                   "ViTDet configs (rel-pos)")
    assert rows["b_ckpt"]["paper APbox"] == rows["b_ckpt"]["paper source"] == ""
    # The other published numbers for a shown setting are listed, and the noise level on COCO is given.
    notes = "\n".join(coco.notes)
    assert "APbox 50.3, APmask 44.9 (MAE paper T4" in notes and "APbox 51.6, APmask 45.9" in notes
    assert "about 0.1 AP" in notes


def test_generated_dataset_labels_paper_column(runs):
    seg = table(compare_runs([runs]), "segmentation", "synthetic_ade")
    header = seg.header()
    assert "paper mIoU (ADE20K, not this dataset)" in header and "paper mIoU" not in header
    rows = by_run(seg)
    assert rows["seg_mae"]["paper mIoU (ADE20K, not this dataset)"] == "48.1"   # MAE paper T5
    assert rows["seg_sup"]["paper mIoU (ADE20K, not this dataset)"] == "47.4"
    assert rows["seg_mae"]["Δ mIoU vs supervised"] == f"{20.5 - 18.0:+.2f}"
    assert "aAcc" not in header                                              # no run has it
    assert any("`synthetic_ade` is not ADE20K" in note for note in seg.notes)


def test_pretrain_table_has_loss_only(runs):
    pre = table(compare_runs([runs]), "pretrain", "synthetic_pretrain")
    assert pre.header() == ["run", "arch", "init", "loss"]
    assert pre.cells() == [["pre", "vit_tiny", "random", "0.6123"]]


def test_left_out_runs_are_listed_with_reason(runs, tmp_path):
    (tmp_path / "empty").mkdir()
    comparison = compare_runs([runs, tmp_path / "empty", tmp_path / "typo"])
    reasons = {comparison.label(s.path): s.reason for s in comparison.skipped}
    assert reasons["runs/wip"].startswith('unfinished: status "running"')
    assert reasons["runs/oom"] == "failed: Traceback (most recent call last): RuntimeError: out of memory"
    assert reasons["runs/d2log"].startswith("not valid JSON")
    assert reasons["runs/other"].startswith("not a run record")
    assert reasons["empty"] == "no run_record.json in or under this folder"
    assert reasons["typo"] == "no such file or folder"
    assert len(comparison.skipped) == 6
    shown = {cells[0] for t in comparison.tables for cells in t.cells()}
    assert shown.isdisjoint({"runs/wip", "runs/oom", "wip", "oom"})
    text = render_markdown(comparison)
    assert "## Not in the tables" in text and "out of memory" in text


def test_records_without_fields_or_metrics_are_left_out(tmp_path):
    write_run_record(tmp_path / "nometrics", task="segmentation", status="finished", dataset="ade20k",
                     arch="vit_base", init="mae", metrics={"loss": 0.3})
    write_run_record(tmp_path / "noarch", task="detection", status="finished", dataset="coco", arch="",
                     init="mae", metrics={"APbox": 1.0})
    record = json.loads((tmp_path / "nometrics" / "run_record.json").read_text())
    (tmp_path / "badvalue").mkdir()
    (tmp_path / "badvalue" / "run_record.json").write_text(json.dumps(dict(record, metrics={"mIoU": "high"})))
    (tmp_path / "badtask").mkdir()
    (tmp_path / "badtask" / "run_record.json").write_text(json.dumps(dict(record, task="tracking")))
    comparison = compare_runs([tmp_path])
    assert comparison.tables == []
    reasons = {s.path.name: s.reason for s in comparison.skipped}
    assert reasons == {
        "nometrics": "finished, but has none of the segmentation metrics (mIoU, mAcc, aAcc)",
        "noarch": 'run_record.json has no "arch"',
        "badvalue": "metric \"mIoU\" is not a number: 'high'",
        "badtask": 'task "tracking" has no table (known: detection, segmentation, finetune, linprobe, pretrain)',
    }


def seg(root, name, init, miou, seed=None, arch="vit_tiny_d4", **metrics):
    write_run_record(root / name, task="segmentation", status="finished", dataset="synthetic_ade", arch=arch,
                     init=init, metrics={"mIoU": miou, **metrics}, **({} if seed is None else {"seed": seed}))


@pytest.fixture
def seeded(tmp_path):
    """Three MAE seeds, two supervised seeds and one random run of one arch, each run in its own folder."""
    root = tmp_path / "demo" / "segmentation"
    for seed, miou in enumerate((30.0, 31.0, 32.0)):
        seg(root, f"mae/seed{seed}", "mae", miou, seed, mAcc=40.0 + seed)
    for seed, miou in enumerate((28.0, 29.0)):
        seg(root, f"supervised/seed{seed}", "supervised", miou, seed, mAcc=39.0)
    seg(root, "random/seed0", "random", 25.0, 0, mAcc=35.0)
    return tmp_path / "demo"


def test_runs_of_one_setting_are_one_row_with_mean_std_and_n(seeded):
    t = table(compare_runs([seeded]), "segmentation", "synthetic_ade")
    assert t.header()[:6] == ["run", "arch", "init", "n", "mIoU", "mAcc"]
    rows = by_run(t)
    assert list(rows) == ["mae", "supervised", "random/seed0"]      # labels relative to demo/segmentation
    mae, sup, rand = rows.values()
    assert (mae["n"], mae["mIoU"], mae["mAcc"]) == ("3", "31.00 ± 1.00", "41.00 ± 1.00")  # sample std (n - 1)
    assert (sup["n"], sup["mIoU"], sup["mAcc"]) == ("2", f"28.50 ± {0.5 ** 0.5:.2f}", "39.00 ± 0.00")
    assert (rand["n"], rand["mIoU"]) == ("1", "25.00")                                 # a single run: no std
    notes = "\n".join(t.notes)
    assert "vit_tiny_d4 mae: 3 runs (mae/seed0, mae/seed1, mae/seed2; seeds 0, 1, 2)" in notes


def test_deltas_are_between_means_and_marked_within_noise_below_two_pooled_stds(seeded):
    rows = by_run(table(compare_runs([seeded]), "segmentation", "synthetic_ade"))
    mae, sup, rand = rows.values()
    # mIoU: Δ = 31 - 28.5 = 2.5; pooled std = sqrt((2 * 1 + 1 * 0.5) / 3) = 0.913; 2.5 > 1.83: a difference
    assert mae["Δ mIoU vs supervised"] == "+2.50"
    # mAcc: Δ = 41 - 39 = 2; pooled std = sqrt((2 * 1 + 1 * 0) / 3) = 0.816 ... 2 > 1.63: a difference too
    assert mae["Δ mAcc vs supervised"] == "+2.00"
    assert sup["Δ mIoU vs supervised"] == ""
    assert rand["Δ mIoU vs supervised"] == f"{25.0 - 28.5:+.2f}"                      # one run: no noise mark
    seg(seeded / "segmentation", "mae/seed3", "mae", 26.0, 3, mAcc=36.0)               # a wide MAE spread now
    rows = by_run(table(compare_runs([seeded]), "segmentation", "synthetic_ade"))
    mae = rows["mae"]
    # mIoU runs 30, 31, 32, 26: mean 29.75, var 6.917; pooled = sqrt((3 * 6.917 + 0.5) / 4) = 2.305; Δ 1.25 < 4.61
    assert mae["mIoU"] == "29.75 ± 2.63" and mae["Δ mIoU vs supervised"] == "+1.25 (within noise)"


def test_noise_mark_follows_the_pooled_std(tmp_path):
    """The boundary: |Δ| just under 2 pooled std is noise, just over is not."""
    for name, supervised in (("under", (10.0, 12.0)), ("over", (10.0, 12.0))):
        root = tmp_path / name
        seg(root, "sup_a", "supervised", supervised[0])
        seg(root, "sup_b", "supervised", supervised[1])
        # both sides std sqrt(2), pooled sqrt(2) = 1.414: noise below 2.828
        shift = 2.8 if name == "under" else 2.9
        seg(root, "mae_a", "mae", 10.0 + shift)
        seg(root, "mae_b", "mae", 12.0 + shift)
        rows = by_run(table(compare_runs([root]), "segmentation", "synthetic_ade"))
        mark = rows["mae_a, mae_b"]["Δ mIoU vs supervised"]
        assert mark == f"+{shift:.2f}" + (" (within noise)" if name == "under" else "")


def test_single_runs_look_as_before(runs):
    coco = table(compare_runs([runs]), "detection", "coco_2017_val")
    assert "n" not in coco.header() and not any("mean ± sample std" in note for note in coco.notes)
    assert all("±" not in cell for cells in coco.cells() for cell in cells)


def test_csv_keeps_one_row_per_run_with_its_seed(seeded, tmp_path, capsys):
    out_csv, out_png = tmp_path / "table.csv", tmp_path / "chart.png"
    assert main([str(seeded), "--csv", str(out_csv), "--png", str(out_png)]) == 0
    printed = markdown_tables(capsys.readouterr().out)
    assert len(printed["segmentation · synthetic_ade"][1]) == 3                        # three settings shown
    with out_csv.open(newline="") as f:
        rows = {row["run"]: row for row in csv.DictReader(f)}
    assert len(rows) == 6 and "n" not in next(iter(rows.values()))
    mae1 = rows["mae/seed1"]
    assert (mae1["seed"], mae1["mIoU"], mae1["mAcc"]) == ("1", "31.00", "41.00")
    assert mae1["Δ mIoU vs supervised"] == f"{31.0 - 28.5:+.2f}"                       # the run against the mean
    assert rows["supervised/seed0"]["Δ mIoU vs supervised"] == ""
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_seed_column_appears_only_with_seeds(runs, tmp_path):
    main([str(runs), "--csv", str(tmp_path / "table.csv")])
    assert "seed" not in (tmp_path / "table.csv").read_text().splitlines()[0].split(",")


def test_a_group_label_never_names_a_folder_holding_other_runs(tmp_path):
    for seed in range(2):
        seg(tmp_path / "segmentation", f"mae_s{seed}", "mae", 30.0 + seed, seed)
        seg(tmp_path / "segmentation", f"supervised_s{seed}", "supervised", 28.0 + seed, seed)
    rows = by_run(table(compare_runs([tmp_path]), "segmentation", "synthetic_ade"))
    assert list(rows) == ["mae_s0, mae_s1", "supervised_s0, supervised_s1"]


def test_a_seed_that_is_not_an_integer_is_listed(tmp_path):
    seg(tmp_path, "bad", "mae", 30.0, seed="zero")
    comparison = compare_runs([tmp_path])
    assert not comparison.tables and comparison.skipped[0].reason == "\"seed\" is not an integer: 'zero'"


def test_dataset_selection_lists_the_rest(runs):
    comparison = compare_runs([runs], datasets=["coco_2017_val"])
    assert {(t.task, t.dataset) for t in comparison.tables} == {("detection", "coco_2017_val")}
    reasons = {comparison.label(s.path): s.reason for s in comparison.skipped}
    assert reasons["seg_mae"] == 'dataset "synthetic_ade" not selected (--dataset coco_2017_val)'


def test_search_is_recursive_deduplicated_and_stable(runs):
    once = compare_runs([runs])
    twice = compare_runs([runs / "b_mae", runs, runs / "b_sup" / ".." / "b_mae" / "run_record.json"])
    assert render_markdown(once) == render_markdown(twice)


def test_cli_csv_equals_printed_tables_and_png(runs, tmp_path, capsys):
    out_csv, out_png = tmp_path / "out" / "table.csv", tmp_path / "out" / "chart.png"
    assert cli.main(["compare", str(runs), "--csv", str(out_csv), "--png", str(out_png)]) == 0
    printed = markdown_tables(capsys.readouterr().out)
    with out_csv.open(newline="") as f:
        csv_rows = list(csv.DictReader(f))
    from_csv: dict[str, list[list[str]]] = {}
    for heading, (header, _) in printed.items():
        if heading == "Not in the tables":
            continue
        task, dataset = heading.split(" · ")
        mine = [row for row in csv_rows if (row["task"], row["dataset"]) == (task, dataset)]
        from_csv[heading] = [[row[h] for h in header] for row in mine]
        assert all(value == "" for row in mine for h, value in row.items() if h not in {"task", "dataset", *header})
    assert {h: rows for h, (_, rows) in printed.items() if h in from_csv} == from_csv
    assert sum(map(len, from_csv.values())) == len(csv_rows) == 6 + 2 + 1
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out_png.stat().st_size > 10_000


def test_nothing_usable_is_one_clear_error(tmp_path, capsys):
    write_run_record(tmp_path / "wip", task="detection", status="running", dataset="coco", arch="vit_base",
                     init="mae")
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mae-transfer compare: error: no finished run with metrics in {tmp_path}")
    assert "unfinished" in err


def test_published_table_picks_one_source_per_setting():
    assert {p.text for p in PUBLISHED if p.source == "mmseg MAE config"} == {"48.13", "48.70"}
    column = paper_column("segmentation", "vit_base", "mae")
    assert {m: p.text for m, p in column.items()} == {"mIoU": "48.1"}
    column = paper_column("detection", "vit_large", "supervised")
    assert {m: (p.text, p.source) for m, p in column.items()} == {"APbox": ("49.6", "ViTDet paper T4"),
                                                                  "APmask": ("43.8", "ViTDet paper T4")}
    assert {m: p.text for m, p in paper_column("finetune", "vit_huge", "mae").items()} == {"top1": "86.9"}
    assert paper_column("detection", "vit_tiny", "mae") == {}


def test_a_nan_metric_is_listed_not_tabled(tmp_path):
    write_run_record(tmp_path / "nan", task="detection", status="finished", dataset="coco_2017_val",
                     arch="vit_base", init="mae", metrics={"APbox": float("nan"), "APmask": float("nan")})
    comparison = compare_runs([tmp_path])
    assert not comparison.tables
    assert 'metric "APbox" is null (no result to compare)' == comparison.skipped[0].reason  # strict JSON: null


@pytest.fixture
def demo_like(tmp_path):
    """Three inits x two archs x two seeds of detection and segmentation on the paper data sets, with costs."""
    root = tmp_path / "grid"
    for arch, shift in (("vit_base", 0.0), ("vit_large", 3.0)):
        for init, box in (("random", 48.0), ("mae", 50.0), ("supervised", 47.0)):
            for seed in (0, 1):
                run = f"{arch}/{init}/seed{seed}"
                write_run_record(root / "det" / run, task="detection", status="finished", dataset="coco_2017_val",
                                 arch=arch, init=init, seed=seed,
                                 metrics={"APbox": box + shift + seed, "APmask": box + shift - 5, "APbox_50": 70.0},
                                 cost={"params": 111e6, "flops": 8.0e11, "train_mem_gb": 10.9,
                                       "train_mem_kind": "cuda_max_allocated", "train_s_per_iter": 0.314})
                write_run_record(root / "seg" / run, task="segmentation", status="finished", dataset="ade20k",
                                 arch=arch, init=init, seed=seed, metrics={"mIoU": box + shift - 2, "mAcc": 60.0})
    return root


def test_paper_layout_is_a_row_per_init_and_a_column_group_per_arch(demo_like, capsys):
    assert main([str(demo_like), "--layout", "paper"]) == 0
    printed = markdown_tables(capsys.readouterr().out)
    header, rows = printed["detection · coco_2017_val"]
    assert header == ["init", "vit_base APbox", "vit_base APmask", "vit_base paper APbox", "vit_base paper APmask",
                      "vit_large APbox", "vit_large APmask", "vit_large paper APbox", "vit_large paper APmask",
                      "paper source"]
    assert [row[0] for row in rows] == ["mae", "supervised", "random"]
    mae = dict(zip(header, rows[0]))
    assert mae["vit_base APbox"] == f"50.50 ± {0.5 ** 0.5:.2f}" and mae["vit_large APmask"] == "48.00 ± 0.00"
    assert (mae["vit_base paper APbox"], mae["vit_large paper APbox"]) == ("51.2", "54.6")   # ViTDet paper T4
    assert mae["paper source"] == "ViTDet paper T4, no rel-pos"
    header, rows = printed["segmentation · ade20k"]
    assert header == ["init", "vit_base mIoU", "vit_base paper mIoU", "vit_large mIoU", "vit_large paper mIoU",
                      "paper source"]
    assert dict(zip(header, rows[1]))["vit_large paper mIoU"] == "49.9"                        # MAE paper T5


def test_long_layout_shows_cost_columns_and_leaves_out_those_no_run_has(demo_like, capsys):
    assert main([str(demo_like)]) == 0
    printed = markdown_tables(capsys.readouterr().out)
    header, rows = printed["detection · coco_2017_val"]
    assert header[4:10] == ["APbox", "APmask", "APbox_50", "params (M)", "GFLOPs", "train s/iter"]
    assert "train mem (GB)" in header and "train RSS peak (GB)" not in header and "APmask_50" not in header
    assert "Δ APbox_50 vs supervised" not in header                       # a Δ for the headline metrics only
    row = dict(zip(header, rows[0]))
    assert (row["params (M)"], row["GFLOPs"], row["train mem (GB)"]) == ("111 ± 0", "800 ± 0", "10.9 ± 0.0")
    header, _ = printed["segmentation · ade20k"]
    assert not {"params (M)", "GFLOPs", "aAcc"} & set(header)


def test_latex_typesets_groups_pm_minus_and_escapes(demo_like, tmp_path):
    seg(tmp_path / "noisy", "a_sup", "supervised", 30.0, arch="vit_base")
    seg(tmp_path / "noisy", "b_sup", "supervised", 32.0, arch="vit_base")
    seg(tmp_path / "noisy", "a_mae", "mae", 29.0, arch="vit_base")
    seg(tmp_path / "noisy", "b_mae", "mae", 31.5, arch="vit_base")
    seg(tmp_path / "noisy", "rand_100%", "random", 20.0, arch="vit_base")
    long_tex, paper_tex = tmp_path / "long.tex", tmp_path / "paper.tex"
    assert main([str(tmp_path / "noisy"), "--latex", str(long_tex)]) == 0
    latex = long_tex.read_text()
    assert r"\begin{tabular}{lccccccc}" in latex and r"\toprule" in latex and r"\bottomrule" in latex
    assert r"rand\_100\% & ViT-B & random" in latex
    assert r"$30.25 \pm 1.77$" in latex                                   # mean ± sample std of 29 and 31.5
    assert r"$-0.75^{\dagger}$" in latex and "dagger marks a Δ (within noise)" in latex
    assert r"$\Delta$ mIoU vs supervised" in latex and "$-11.00$" in latex
    assert main([str(demo_like), "--layout", "paper", "--latex", str(paper_tex)]) == 0
    paper = paper_tex.read_text()
    assert r" & \multicolumn{4}{c}{ViT-B} & \multicolumn{4}{c}{ViT-L} &  \\" in paper
    assert r"\cmidrule(lr){2-5} \cmidrule(lr){6-9}" in paper
    assert r"init & AP\textsuperscript{box} & AP\textsuperscript{mask} & paper AP\textsuperscript{box}" in paper
    assert r"MAE & $50.50 \pm 0.71$" in paper


def test_a_breakdown_without_its_ap_is_listed_and_a_nan_breakdown_is_an_empty_cell(tmp_path):
    write_run_record(tmp_path / "only50", task="detection", status="finished", dataset="coco_2017_val",
                     arch="vit_base", init="mae", metrics={"APbox_50": 70.0})
    write_run_record(tmp_path / "nolarge", task="detection", status="finished", dataset="coco_2017_val",
                     arch="vit_base", init="mae", metrics={"APbox": 50.0, "APbox_l": float("nan")})
    comparison = compare_runs([tmp_path])
    assert [(s.path.name, s.reason) for s in comparison.skipped] == [
        ("only50", "finished, but has none of the detection metrics (APbox, APmask)")]
    coco = table(comparison, "detection", "coco_2017_val")
    assert coco.metrics == ["APbox"] and coco.cells()[0][3] == "50.00"


def test_out_writes_every_format_under_its_default_name_and_a_given_path_wins(runs, tmp_path, capsys):
    chosen = tmp_path / "mine.csv"
    assert main([str(runs), "--out", str(tmp_path / "tables"), "--csv", str(chosen)]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == [
        "comparison.md", "comparison.png", "comparison.tex"]
    assert (tmp_path / "tables" / "comparison.md").read_text().strip() == printed.strip()
    assert chosen.read_text().count("\n") > 1
