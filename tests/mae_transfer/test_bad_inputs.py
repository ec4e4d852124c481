"""Bad input to every command, one row per case: the command line, the fragment its single error line must hold,
and (for runs) what the run folder holds afterwards. Each case ends in exactly one line
``mae-transfer COMMAND: error: ...`` on stderr and exit code 2, never a traceback. A refusal before the run
starts writes no run record; a run that starts and then diverges ends with a "failed" record naming the reason,
in strict JSON."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from runlib.run_record import RECORD_NAME
from mae_transfer.cli import main as cli
from tests.conftest import CONFIGS
from tests.detection.conftest import TINY as DETECT_TINY
from tests.segmentation.conftest import TINY as SEGMENT_TINY

DETECT = CONFIGS / "detection" / "demo_tiny.py"
SEGMENT = CONFIGS / "segmentation" / "demo_tiny.py"
PRETRAIN = CONFIGS / "pretrain" / "demo_tiny.py"
# The pretraining demo cut to two steps of 8 images, on the main process.
PRETRAIN_TINY = ["epochs=1", "warmup_epochs=0", "batch_size=8", "num_workers=0", "max_steps=2", "tensorboard=False"]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
AS_ROOT = pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                             reason="root writes into read-only folders")


class World:
    """The paths a command line of the table may use: generated data, configs, a pretraining checkpoint, and
    bad files made for the cases (a config that does not parse, a 16-bit image, a plain file, ...)."""

    def __init__(self, root: Path, data: dict, checkpoint: Path):
        self.root, self.data, self.checkpoint = root, data, checkpoint

    def out(self, name: str) -> Path:
        """A fresh output path under this test's folder."""
        return self.root / name

    def detect(self, *extra: str, out: str = "run") -> list[str]:
        data = self.data
        return ["detect", "train", "--config-file", str(DETECT), "--out", str(self.out(out)),
                "--train-json", str(data["coco_train_json"]), "--train-images", str(data["coco_train_images"]),
                "--val-json", str(data["coco_val_json"]), "--val-images", str(data["coco_val_images"]),
                *DETECT_TINY, *extra]

    def segment(self, *options: str, out: str = "run", data_root: Path | None = None) -> list[str]:
        merged = {k: str(v).replace(" ", "") for k, v in SEGMENT_TINY.items()}
        merged.update(option.split("=", 1) for option in options)
        return ["segment", "train", str(SEGMENT), "--out", str(self.out(out)),
                "--data-root", str(data_root or self.data["ade_root"]),
                "--cfg-options", *[f"{k}={v}" for k, v in merged.items()]]

    def pretrain(self, *extra: str, out: str = "run", config: Path = PRETRAIN) -> list[str]:
        return ["pretrain", "--config", str(config), "--out", str(self.out(out)),
                f"data_path={self.data['pretrain']}", *PRETRAIN_TINY, *extra]

    def bad_config(self) -> Path:
        path = self.root / "bad_config.py"
        path.write_text("model = dict(\n    depth=4,\nwidth = 3\n")
        return path

    def a_file(self) -> Path:
        """A plain file, to put an output folder under (the file system refuses it, as a read-only disk)."""
        path = self.root / "a_file"
        path.write_text("")
        return path

    def folder(self) -> Path:
        path = self.root / "a_folder"
        path.mkdir(exist_ok=True)
        return path

    def ade_with_16_bit_image(self) -> tuple[Path, Path]:
        root = Path(shutil.copytree(self.data["ade_root"], self.root / "ade"))
        image = sorted((root / "images" / "training").iterdir())[1]
        Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(
            image, format="PNG")  # PIL opens by content: a 16-bit PNG under the .jpg name
        return root, image

    def non_utf8_folder(self) -> Path:
        path = Path(os.fsdecode(bytes(self.root) + b"/images\xff"))
        shutil.copytree(self.data["pretrain"], path)
        return path

    def read_only_folder(self) -> Path:
        path = self.root / "read_only"
        path.mkdir()
        path.chmod(0o555)
        return path


@dataclass
class Case:
    id: str
    argv: Callable[[World], list[str]]
    error: str | Callable[[World], str]                # a fragment of the one error line
    record: dict | None = None                         # expected fields of OUT/run_record.json; None: none written
    out: str = "run"
    marks: list = field(default_factory=list)


CASES = [
    # --- run records: a run that would train nothing is refused before it starts
    Case("detect max_iter=0", lambda w: w.detect("train.max_iter=0"),
         "train.max_iter = 0 in", None),
    Case("detect max_iter=-5", lambda w: w.detect("train.max_iter=-5"),
         "train.max_iter = -5 in", None),
    Case("segment max_iters=0", lambda w: w.segment("train_cfg.max_iters=0"),
         "train_cfg.max_iters = 0 in", None),
    Case("pretrain max_steps=0", lambda w: w.pretrain("max_steps=0"), "max_steps = 0: must be positive", None),
    # --- a diverging loss ends the run "failed" with the reason
    Case("detect NaN loss", lambda w: w.detect("optimizer.lr=1e30"), "lower optimizer.lr",
         {"status": "failed", "error": "LossDiverged"}),
    Case("segment NaN loss", lambda w: w.segment("optim_wrapper.optimizer.lr=1e30"), "lower optim_wrapper",
         {"status": "failed", "error": "LossDiverged: loss is nan"}),
    Case("pretrain NaN loss", lambda w: w.pretrain("lr=1e30"), "loss is nan",
         {"status": "failed", "error": "LossDiverged"}),
    # --- data
    Case("segment 16-bit image", lambda w: w.segment(data_root=w.ade_with_16_bit_image()[0]),
         "I;16 pixels (16-bit or float); images are read as 8-bit", None),
    Case("pretrain non-UTF-8 data_path", lambda w: w.pretrain(f"data_path={w.non_utf8_folder()}"),
         "data_path = ", None),
    # --- output folders the file system refuses
    Case("pretrain read-only folder", lambda w: w.pretrain(out=str(w.read_only_folder() / "run")),
         "Permission denied", None, marks=[AS_ROOT]),
    Case("detect train read-only folder", lambda w: w.detect(out=str(w.read_only_folder() / "run")),
         "Permission denied", None, marks=[AS_ROOT]),
    Case("pretrain out under a file", lambda w: w.pretrain(out=str(w.a_file() / "run")), "Not a directory", None),
    Case("detect train out under a file", lambda w: w.detect(out=str(w.a_file() / "run")), "Not a directory",
         None),
    Case("segment train out under a file", lambda w: w.segment(out=str(w.a_file() / "run")), "Not a directory",
         None),
    # --- --out naming an existing folder where a file is written
    Case("export --out folder", lambda w: ["export", str(w.checkpoint), "--out", str(w.folder())],
         "a_folder: is a folder; give a file name"),
    Case("visualize --out folder", lambda w: ["visualize", str(w.checkpoint), "--images", str(w.data["pretrain"]),
                                              "--num", "1", "--out", str(w.folder())],
         "a_folder: is a folder; give a file name"),
    Case("plot --out folder", lambda w: ["plot", str(w.checkpoint.parents[1]), "--out", str(w.folder())],
         "a_folder: is a folder; give a file name"),
    Case("compare --csv folder", lambda w: ["compare", str(w.checkpoint.parents[1]), "--csv", str(w.folder())],
         "a_folder: is a folder; give a file name"),
    Case("visualize --num 0", lambda w: ["visualize", str(w.checkpoint), "--images", str(w.data["pretrain"]),
                                         "--num", "0", "--out", str(w.out("v.png"))], "--num 0: must be at least 1"),
    # --- a CUDA device on a machine without one
    Case("detect predict --device cuda", lambda w: ["detect", "predict", "--config-file", str(DETECT), "--weights",
                                                    str(w.checkpoint), "--input", str(w.data["coco_val_images"]),
                                                    "--out", str(w.out("pred")), "--device", "cuda"],
         "--device='cuda' but no CUDA device", marks=[NO_GPU]),
    Case("segment predict --device cuda", lambda w: ["segment", "predict", str(SEGMENT), str(w.checkpoint),
                                                     "--input", str(w.data["coco_val_images"]),
                                                     "--out", str(w.out("pred")), "--device", "cuda"],
         "--device='cuda' but no CUDA device", marks=[NO_GPU]),
    Case("pretrain device=cuda", lambda w: w.pretrain("device=cuda"), "device='cuda' but no CUDA device", None,
         marks=[NO_GPU]),
    Case("detect train.device=cuda", lambda w: w.detect("train.device=cuda"), "no CUDA device", None,
         marks=[NO_GPU]),
    # --- a .py config that does not parse: file and line
    Case("detect train config syntax", lambda w: ["detect", "train", "--config-file", str(w.bad_config()),
                                                  "--out", str(w.out("run"))],
         lambda w: f"{w.root / 'bad_config.py'}, line 1: syntax error in the config file", None),
    Case("detect predict config syntax", lambda w: ["detect", "predict", "--config-file", str(w.bad_config()),
                                                    "--weights", str(w.checkpoint), "--input",
                                                    str(w.data["coco_val_images"]), "--out", str(w.out("pred"))],
         lambda w: f"{w.root / 'bad_config.py'}, line 1: syntax error in the config file"),
    Case("segment train config syntax", lambda w: ["segment", "train", str(w.bad_config()), "--out",
                                                   str(w.out("run"))],
         lambda w: f"{w.root / 'bad_config.py'}, line 1: syntax error in the config file", None),
    Case("pretrain config syntax", lambda w: w.pretrain(config=w.bad_config()),
         lambda w: f"{w.root / 'bad_config.py'}, line 1: syntax error in the config file", None),
]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, synthetic_data) -> Path:
    """The final checkpoint of a two-step pretraining run (for export, visualize, plot, compare)."""
    out = tmp_path_factory.mktemp("pretrained") / "run"
    argv = ["pretrain", "--config", str(PRETRAIN), "--out", str(out), f"data_path={synthetic_data['pretrain']}",
            *PRETRAIN_TINY]
    assert cli(argv) == 0
    return out / "checkpoints" / "step_00000002.pth"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_bad_input_is_one_error_line_and_exit_code_2(case, tmp_path, synthetic_data, pretrained, capsys):
    world = World(tmp_path, synthetic_data, pretrained)
    argv = case.argv(world)
    capsys.readouterr()
    code = cli(argv)
    err = capsys.readouterr().err
    command = argv[0] if argv[0] not in ("segment",) else f"segment {argv[1]}"
    lines = [line for line in err.splitlines() if line.startswith(f"mae-transfer {command}: error: ")]
    expected = case.error(world) if callable(case.error) else case.error
    assert code == 2, err[-2000:]
    assert len(lines) == 1 and expected in lines[0], err[-2000:]
    assert "Traceback" not in err
    record_file = Path(argv[argv.index("--out") + 1]) / RECORD_NAME if "--out" in argv else None
    if case.record is None:
        assert record_file is None or not record_file.exists()
    else:
        text = record_file.read_text()
        record = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {record_file}"))
        assert record["status"] == case.record["status"]
        assert case.record["error"] in record["error"]
