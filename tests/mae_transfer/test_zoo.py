"""The demo zoo: ``zoo:NAME`` references checked against the index, and ``mae-transfer zoo build`` / ``publish`` end
to end on a tiny plan (fp16 files in the MAE release layout, model cards, sha256, frozen probes)."""
import json

import pytest
import torch

from backbone import CheckpointError, ViT, load_pretrained, resolve_weights
from backbone.zoo import read_index, sha256_of
from mae_transfer.synthetic import SyntheticSpec
from mae_transfer.zoo import ZooPlan, build, publish
from runlib.errors import UserError
from mae_transfer.demo import from_zoo, run_demo
from mae_transfer.grid import load_grid
from tests.conftest import CONFIGS
from pretrain import visualize

TINY = ZooPlan("tiny", 24, "demo_tiny.py", "demo_tiny_finetune.py",
               overrides=(("epochs", 1), ("warmup_epochs", 0), ("batch_size", 8), ("num_workers", 0)),
               probe_data=SyntheticSpec(seed=0, image_size=128, num_pretrain=6, num_classify_train=4,
                                        num_classify_val=2, classify_image_size=128, num_coco_train=1,
                                        num_coco_val=1, num_ade_train=4, num_ade_val=2))
DEMO_ENCODER = dict(img_size=128, patch_size=16, embed_dim=192, depth=4, num_heads=3, pretrain_img_size=128)


def write_zoo(folder, name="demo-x", **entry):
    folder.mkdir(exist_ok=True)
    torch.save({"model": {"w": torch.ones(2)}}, folder / f"{name}.pth")
    entry = {"file": f"{name}.pth", "sha256": sha256_of(folder / f"{name}.pth"), **entry}
    (folder / "index.json").write_text(json.dumps({name: entry}))
    return folder / f"{name}.pth"


def test_zoo_names_resolve_to_the_indexed_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MAE_TRANSFER_ZOO", str(tmp_path / "zoo"))
    path = write_zoo(tmp_path / "zoo")
    assert resolve_weights("zoo:demo-x") == str(path)
    with pytest.raises(CheckpointError, match=r"zoo:nope: no such zoo entry .* has zoo:demo-x"):
        resolve_weights("zoo:nope")


def test_a_zoo_file_that_does_not_match_its_sha256_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MAE_TRANSFER_ZOO", str(tmp_path / "zoo"))
    path = write_zoo(tmp_path / "zoo")
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(CheckpointError, match="does not match its sha256"):
        resolve_weights("zoo:demo-x")
    path.unlink()
    with pytest.raises(CheckpointError, match="is missing"):
        resolve_weights("zoo:demo-x")


def test_the_shipped_zoo_index_lists_files_that_match(tmp_path):
    for name, entry in read_index().items():  # every published entry loads by name, checked
        assert resolve_weights(f"zoo:{name}").endswith(entry["file"])


@pytest.mark.slow
def test_build_then_publish_makes_loadable_fp16_encoders_with_cards(tmp_path, monkeypatch):
    out, zoo = tmp_path / "build", tmp_path / "zoo"
    build(out, TINY)
    checkpoint = sorted((out / "mae" / "checkpoints").iterdir())[-1]
    build(out, TINY)  # a finished build is reused, not trained again
    assert sorted((out / "mae" / "checkpoints").iterdir())[-1].stat().st_mtime_ns == checkpoint.stat().st_mtime_ns

    entries = publish(out, zoo)
    assert set(entries) == {"demo-mae", "demo-mae-full", "demo-supervised"}
    index = json.loads((zoo / "index.json").read_text())
    monkeypatch.setenv("MAE_TRANSFER_ZOO", str(zoo))  # seen by the demo's worker processes too
    for name, entry in index.items():
        assert sha256_of(zoo / entry["file"]) == entry["sha256"]
        card = (zoo / entry["card"]).read_text()
        assert entry["sha256"] in card and "images seen" in card and "mae-transfer zoo build" in card
        state = torch.load(zoo / entry["file"], weights_only=True)["model"]
        assert all(v.dtype == torch.float16 for v in state.values() if v.is_floating_point())
    assert index["demo-mae"]["run"]["images_seen"] == 3 * 8  # 24 images, one epoch of batch 8
    assert "knn_top1" in index["demo-mae"]["probe"] and "knn_top1" in index["demo-mae"]["random_probe"]
    assert any(k.startswith("decoder_") for k in torch.load(zoo / "demo-mae-full.pth", weights_only=True)["model"])

    figure = visualize("zoo:demo-mae-full", out / "data" / "pretrain", tmp_path / "recon.png", num_images=2)
    assert figure.stat().st_size > 0  # the full file rebuilds the MAE, decoder included, from its config
    for name in ("demo-mae", "demo-supervised"):  # both load by name into the dense backbone, nothing left over
        report = load_pretrained(ViT(**DEMO_ENCODER), f"zoo:{name}", log=False)
        assert not report.missing and not report.unexpected, (name, report)



def test_the_demo_from_the_zoo_runs_no_pretraining_and_starts_each_init_from_its_zoo_encoder(tmp_path):
    runs = from_zoo(load_grid(CONFIGS / "grid" / "demo_quick.py", tmp_path))
    assert not [run.name for run in runs if run.name.startswith("pretrain/")]
    transfer = {(run.kind, run.init): run for run in runs if run.kind in ("detect", "segment")}
    assert len(transfer) == 6
    for (kind, init), run in transfer.items():
        assert run.weights == {"mae": "zoo:demo-mae", "supervised": "zoo:demo-supervised", "random": None}[init]
        assert run.after == ("data",)


def test_the_demo_from_an_empty_zoo_fails_before_writing_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("MAE_TRANSFER_ZOO", str(tmp_path / "empty-zoo"))
    with pytest.raises(CheckpointError, match="zoo:demo-mae: no such zoo entry"):
        run_demo(tmp_path / "demo", "quick")  # the zoo is the default
    assert not (tmp_path / "demo").exists()


def test_build_refuses_a_folder_it_did_not_make(tmp_path):
    (tmp_path / "mine.txt").write_text("keep")
    with pytest.raises(UserError, match="holds files that mae-transfer zoo build did not write"):
        build(tmp_path, TINY)
    assert (tmp_path / "mine.txt").read_text() == "keep"
