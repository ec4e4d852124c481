"""``framework_patches()``: importing segmentation changes nothing in mmcv or mmengine beyond registry entries;
each run puts the mmcv.ops stand-in and the strict checkpoint loader in place and takes them back afterwards."""
import os
import subprocess
import sys

import pytest
from mmengine.runner import CheckpointLoader

import segmentation
from segmentation import mmcv_ops_stub
from segmentation.checkpoints import load_from_strict_reader

FRESH_IMPORT = """
import sys
import mmcv
from mmengine.runner import CheckpointLoader

def state():
    return (dict(CheckpointLoader._schemes), sys.modules.get("mmcv.ops"), hasattr(mmcv, "ops"),
            sorted(name for name in sys.modules if name.startswith("mmcv.ops")))

before = state()
import segmentation
assert state() == before, (before, state())
with segmentation.framework_patches():
    from mmseg.apis import init_model  # needs mmcv.ops with mmcv-lite
    assert segmentation.mmcv_ops_stub.is_installed()
    assert CheckpointLoader._schemes[""] is segmentation.checkpoints.load_from_strict_reader
assert state() == before, (before, state())
print("unchanged")
"""


def test_importing_segmentation_changes_no_global_state(pytestconfig):
    env = {**os.environ, "PYTHONPATH": str(pytestconfig.rootpath), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", FRESH_IMPORT], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "unchanged"


class Stop(Exception):
    """Raised by a stand-in for the first framework call of a run, to look at the state there."""


@pytest.fixture
def seen_inside():
    """``seen_inside(*args)`` records whether the stand-in and the strict loader are in place, then raises Stop."""
    seen = []

    def record(*args, **kwargs):
        seen.append((mmcv_ops_stub.is_installed(), CheckpointLoader._schemes[""] is load_from_strict_reader))
        raise Stop
    record.seen = seen
    return record


def outside() -> tuple:
    return sys.modules.get("mmcv.ops"), CheckpointLoader._schemes[""]


def test_train_and_test_run_inside_the_patches(monkeypatch, seen_inside, demo_config, ade_root, mae_file,
                                               tiny_options, tmp_path):
    monkeypatch.setattr(segmentation.run.Runner, "from_cfg", seen_inside)
    before = outside()
    assert before[1] is not load_from_strict_reader
    with pytest.raises(Stop):
        segmentation.train(demo_config, tmp_path / "train", tiny_options, init_checkpoint=mae_file, data_root=ade_root)
    with pytest.raises(Stop):
        segmentation.test(demo_config, mae_file, tmp_path / "test", tiny_options, data_root=ade_root)
    assert seen_inside.seen == [(True, True), (True, True)]
    assert outside() == before


def test_predict_and_predictor_run_inside_the_patches(monkeypatch, seen_inside, demo_config, ade_root, mae_file,
                                                      tiny_options, tmp_path):
    monkeypatch.setattr(sys.modules["segmentation.predict"], "load_segmentor_weights", seen_inside)
    image = sorted((ade_root / "images" / "validation").glob("*.jpg"))[0]
    before = outside()
    with pytest.raises(Stop):
        segmentation.predict(demo_config, mae_file, [image], tmp_path / "out", cfg_options=tiny_options)
    with pytest.raises(Stop):
        segmentation.Predictor(demo_config, mae_file, cfg_options=tiny_options)
    assert seen_inside.seen == [(True, True), (True, True)]
    assert outside() == before
