"""`mae-transfer demo --quick` end to end: every stage on generated data, then a second run that reuses them."""
import csv

import pytest

from mae_transfer import cli


@pytest.mark.slow
def test_quick_demo_runs_every_stage_and_reuses_them(tmp_path, capsys):
    out = tmp_path / "demo"
    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    first = capsys.readouterr().out

    rows = list(csv.DictReader((out / "comparison.csv").open()))
    transfer = {(r["task"], r["init"]) for r in rows}
    assert transfer == {(task, init) for task in ("detection", "segmentation")
                        for init in ("mae", "supervised", "random")}
    for row in rows:
        metric = row["APbox"] if row["task"] == "detection" else row["mIoU"]
        assert 0.0 <= float(metric) <= 100.0
    for figure in ("comparison.png", "reconstructions.png", "loss_curves.png"):
        assert (out / figure).stat().st_size > 10_000, figure
    assert "| detection/mae |" in first and "| segmentation/random |" in first
    assert (out / "pretrain" / "mae_encoder.pth").is_file()

    assert cli.main(["demo", "--quick", "--out", str(out)]) == 0
    second = capsys.readouterr().out
    assert second.count("reused (finished in an earlier run)") == 8  # all but data, compare and figures
