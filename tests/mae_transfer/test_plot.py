"""mae-transfer plot: loss and metrics of any runs from each framework's own log, one PNG."""
import json
from pathlib import Path

import pytest
from PIL import Image

from mae_transfer.cli import main as cli
from mae_transfer.plot import PlotError, find_runs, plot_runs, read_curves
from tests.conftest import CONFIGS


def write_lines(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def pretrain_run(root: Path) -> Path:
    """log.jsonl as pretrain/engine.py writes it: a row per logged step, evaluation rows (classification) apart."""
    write_lines(root / "log.jsonl", [{"step": s, "epoch": s / 4, "loss": 1.0 / s, "lr": 1e-4, "images_per_s": 40.0}
                                     for s in (1, 2, 3, 4)] + [{"step": 4, "epoch": 1.0, "top1": 25.0}])
    return root


def detectron2_run(root: Path) -> Path:
    """metrics.json as detectron2's JSONWriter writes it: training rows, then the evaluation row."""
    write_lines(root / "metrics.json", [
        {"iteration": 19, "total_loss": 2.6, "loss_cls": 0.9, "lr": 1e-4, "time": 5.9},
        {"iteration": 39, "total_loss": 1.9, "loss_cls": 0.7, "lr": 1e-4, "time": 5.6},
        {"iteration": 40, "bbox/AP": 1.5, "bbox/AP50": 4.0, "segm/AP": float("nan")}])
    return root


def mmengine_run(root: Path) -> Path:
    """Two sessions (a run and its resume) of mmengine's vis_data/scalars.json; the resume logs step 20 again."""
    write_lines(root / "20261129_100000" / "vis_data" / "scalars.json", [
        {"lr": 1e-4, "data_time": 0.1, "loss": 3.0, "decode.loss_ce": 2.0, "time": 1.0, "iter": 10, "memory": 1,
         "step": 10},
        {"lr": 1e-4, "loss": 2.5, "iter": 20, "step": 20},
        {"aAcc": 50.0, "mIoU": 10.0, "mAcc": 20.0, "data_time": 0.1, "time": 0.2, "step": 20}])
    write_lines(root / "20261129_110000" / "vis_data" / "scalars.json", [
        {"lr": 1e-4, "loss": 2.4, "iter": 20, "step": 20},
        {"lr": 1e-4, "loss": 2.0, "iter": 30, "step": 30},
        {"aAcc": 60.0, "mIoU": 15.0, "mAcc": 25.0, "step": 30}])
    return root


def test_each_framework_log_gives_loss_and_headline_metrics(tmp_path):
    ours = read_curves(pretrain_run(tmp_path / "pretrain"))
    assert ours.loss == ([1, 2, 3, 4], [1.0, 0.5, 1 / 3, 0.25]) and ours.metrics == {"top1": ([4], [25.0])}

    det = read_curves(detectron2_run(tmp_path / "det"))
    assert det.loss == ([19, 39], [2.6, 1.9]) and det.metrics["bbox/AP"] == ([40], [1.5])
    assert det.metrics["segm/AP"][0] == [40]  # NaN (no detections) is kept: a gap in the plot, not a zero

    seg = read_curves(mmengine_run(tmp_path / "seg"))
    assert seg.loss == ([10, 20, 30], [3.0, 2.4, 2.0])  # the resumed session's step 20 replaces the first's
    assert seg.metrics["mIoU"] == ([20, 30], [10.0, 15.0]) and set(seg.metrics) == {"mIoU", "mAcc", "aAcc"}


def test_plot_writes_one_png_for_runs_named_directly_or_by_a_parent_folder(tmp_path, capsys):
    root = tmp_path / "output"
    runs = [pretrain_run(root / "pretrain"), detectron2_run(root / "detection" / "mae"),
            mmengine_run(root / "segmentation" / "mae")]
    (root / "data").mkdir()  # a folder without logs is passed over
    assert find_runs([root]) == sorted(runs)
    assert find_runs([runs[1], runs[0]]) == [runs[1], runs[0]]
    out = plot_runs([root], tmp_path / "curves.png")
    with Image.open(out) as image:  # loss + top1 + bbox/AP + segm/AP + mIoU + mAcc + aAcc: 7 panels, 3 rows
        assert image.format == "PNG" and image.size == (1650, 1140)
    assert cli(["plot", str(runs[0]), "--out", str(tmp_path / "one.png")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / 'one.png'}"
    with Image.open(tmp_path / "one.png") as image:  # loss + top1
        assert image.size == (1100, 380)


def test_a_folder_without_logs_is_one_error(tmp_path, capsys):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(PlotError, match="no training log in it or below it"):
        plot_runs([tmp_path / "empty"], tmp_path / "x.png")
    assert cli(["plot", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"mae-transfer plot: error: {tmp_path / 'missing'}: no such folder"]
    assert not (tmp_path / "x.png").exists()
    broken = write_lines(tmp_path / "broken" / "log.jsonl", [{"step": 1, "loss": 1.0}])
    broken.write_text("{oops\n" + broken.read_text())
    with pytest.raises(PlotError, match=r"log.jsonl: line 1 is not JSON"):
        read_curves(broken.parent)


def test_plot_reads_a_real_pretraining_log(tmp_path, real_pretrain_run):
    """The log.jsonl the pretraining engine writes (not a hand-written one) gives a loss per step."""
    curves = read_curves(real_pretrain_run)
    assert curves.loss[0] == list(range(1, len(curves.loss[0]) + 1)) and all(v > 0 for v in curves.loss[1])
    assert plot_runs([real_pretrain_run], tmp_path / "c.png").is_file()


@pytest.fixture
def real_pretrain_run(synthetic_data, tmp_path):
    """A real 2-step pretraining run of a tiny MAE on the generated images."""
    import torch

    from pretrain import load_config, train_mae
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cfg = load_config("pretrain", CONFIGS / "pretrain/mae_pretrain.py", data_path=synthetic_data["pretrain"],
                      batch_size=16, epochs=1, warmup_epochs=0, num_workers=0, tensorboard=False, log_every=1,
                      model="mae_vit_tiny_patch16", input_size=32, patch_size=8, embed_dim=32, depth=1,
                      num_heads=2, decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=2)
    train_mae(cfg, tmp_path / "run")
    torch.set_num_threads(threads)
    return tmp_path / "run"
