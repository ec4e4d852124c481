"""Bad inputs that must neither run code nor lose a file: YAML configs with a code-running tag, and every way an
output folder could replace, delete or write through what the user made. Each case runs the command as a user
would (``mae-transfer ...``) and checks that it ends in one ``mae-transfer COMMAND: error: ...`` line with exit
code 2, that the payload did not run, and that the user's files are byte for byte as they were. Every refusal
comes before training starts, so the table runs in seconds."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runlib import write_run_record
from runlib.output_dir import MARKER, finished_run_kept, made_by, prepare_run_dir, write_marker
from mae_transfer.cli import main as mae_transfer
from tests.conftest import CONFIGS

DETECTION_DEMO = CONFIGS / "detection" / "demo_tiny.py"
SEGMENTATION_DEMO = CONFIGS / "segmentation" / "demo_tiny.py"
PRETRAIN_DEMO = CONFIGS / "pretrain" / "demo_tiny.py"


def snapshot(*roots: Path) -> dict[str, bytes | str]:
    """Every file (bytes) and symlink (target) under ``roots``."""
    found = {}
    for root in roots:
        for path in [root, *root.rglob("*")] if root.is_dir() and not root.is_symlink() else [root]:
            if path.is_symlink():
                found[str(path)] = "-> " + os.readlink(path)
            elif path.is_file():
                found[str(path)] = path.read_bytes()
    return found


def refused(argv: list[str], capsys, command: str) -> str:
    """Run ``mae-transfer ARGV``; assert exit code 2 and one error line, the last one; return that line."""
    code = mae_transfer(argv)
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.startswith("mae-transfer")]
    assert code == 2, err[-20:]
    assert len(lines) == 1 and err[-1] == lines[0], err[-20:]
    assert lines[0].startswith(f"mae-transfer {command}: error: ")
    return lines[0]


# ---------------------------------------------------------------------------------------- YAML never runs code
def payload_yaml(tmp_path: Path, key: str, name: str = "evil.yaml", extra: str = "") -> tuple[Path, Path]:
    marker = tmp_path / "M"
    config = tmp_path / name
    config.write_text(f'{extra}{key}: !!python/object/apply:os.system ["touch {marker}"]\n')
    return config, marker


YAML_CASES = {
    "detect predict (yacs)": lambda c, t: ["detect", "predict", "--config-file", str(c), "--weights",
                                           str(t / "w.pth"), "--input", str(t / "img.png"), "--out", str(t / "p")],
    "detect train (LazyConfig yaml)": lambda c, t: ["detect", "train", "--config-file", str(c), "--out", str(t / "r")],
    "segment train": lambda c, t: ["segment", "train", str(c), "--out", str(t / "r")],
    "pretrain": lambda c, t: ["pretrain", "--config", str(c), "--out", str(t / "r")],
}
YAML_COMMANDS = {"detect predict (yacs)": "detect", "detect train (LazyConfig yaml)": "detect",
                 "segment train": "segment train", "pretrain": "pretrain"}


@pytest.mark.parametrize("case", YAML_CASES)
def test_a_yaml_config_with_a_code_tag_is_refused_and_never_runs(case, tmp_path, capsys):
    key = "OUTPUT_DIR" if "yacs" in case else "work_dir"
    config, marker = payload_yaml(tmp_path, key)
    Image = pytest.importorskip("PIL.Image")
    Image.new("RGB", (8, 8)).save(tmp_path / "img.png")
    line = refused(YAML_CASES[case](config, tmp_path), capsys, YAML_COMMANDS[case])
    assert str(config) in line and "python/object/apply" in line
    assert not marker.exists()


@pytest.mark.parametrize("command", ["detect predict", "segment train"])
def test_a_base_file_with_a_code_tag_is_refused_as_well(command, tmp_path, capsys):
    """yacs's ``_BASE_`` and mmengine's ``_base_``: the included file is read by the same safe loader."""
    base, marker = payload_yaml(tmp_path, "OUTPUT_DIR" if command == "detect predict" else "work_dir", "base.yaml")
    config = tmp_path / "leaf.yaml"
    config.write_text(f"_BASE_: {base.name}\n" if command == "detect predict" else f"_base_: [{base.name}]\n")
    argv = (["detect", "predict", "--config-file", str(config), "--weights", "w.pth", "--input", str(config),
             "--out", str(tmp_path / "p")] if command == "detect predict"
            else ["segment", "train", str(config), "--out", str(tmp_path / "r")])
    line = refused(argv, capsys, command.split()[0] if command == "detect predict" else command)
    assert "python/object/apply" in line
    assert not marker.exists()


# ---------------------------------------------------------------------------------- no path loses a user's file
def user_files(folder: Path, names=("config.yaml", "metrics.json", "model_final.pth")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(f"the user's own {name}\n".encode())
    return folder


def test_pretrain_never_deletes_or_follows_what_it_did_not_make_in_decoded(tmp_path):
    from pretrain.data import DecodedImages, list_images

    Image = pytest.importorskip("PIL.Image")
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        Image.new("RGB", (16, 16), (i * 100, 0, 0)).save(images / f"{i}.png")
    root = tmp_path / "decoded"
    old = DecodedImages.open(list_images(images), root, 16).folder  # a cache of an older state of the folder
    user = user_files(root / "notes", ("keep.txt",))
    elsewhere = user_files(tmp_path / "elsewhere", ("keep.txt",))
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(user, elsewhere)
    (images / "2.png").write_bytes((images / "0.png").read_bytes())  # the folder changed: a new cache
    new = DecodedImages.open(list_images(images), root, 16).folder
    assert new != old and not old.exists()  # the stale cache it made is gone
    assert snapshot(user, elsewhere) == before and (root / "linked").is_symlink()


@pytest.mark.parametrize("name", ["checkpoints", "tb", "decoded"])
def test_pretrain_refuses_a_symlinked_subfolder_of_its_run(name, tmp_path, capsys):
    out, elsewhere = tmp_path / "run", user_files(tmp_path / "elsewhere", ("keep.txt",))
    prepare_run_dir(out, command="pretrain")
    (out / name).symlink_to(elsewhere, target_is_directory=True)
    before = snapshot(elsewhere)
    line = refused(["pretrain", "--config", str(PRETRAIN_DEMO), "--out", str(out), f"data_path={tmp_path}"],
                   capsys, "pretrain")
    assert f"{out / name} is a symlink" in line
    assert snapshot(elsewhere) == before


def test_generate_data_overwrite_replaces_only_its_own_folder(tmp_path, capsys):
    folder = user_files(tmp_path / "mine", ("manifest.json", "thesis.tex"))
    before = snapshot(folder)
    line = refused(["generate-data", str(folder), "--overwrite"], capsys, "generate-data")
    assert "did not write" in line and snapshot(folder) == before


def test_demo_fresh_empties_only_its_own_folder(tmp_path, capsys):
    folder = user_files(tmp_path / "mine", ("plan.json", "thesis.tex"))
    before = snapshot(folder)
    line = refused(["demo", "--out", str(folder), "--fresh"], capsys, "demo")
    assert "did not write" in line and snapshot(folder) == before


@pytest.mark.parametrize("command", ["detect", "segment"])
def test_predict_never_writes_over_its_input_images(command, tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("a.png", "b.jpg"):
        Image.new("RGB", (16, 16), (200, 10, 10)).save(photos / name)
    before = snapshot(photos)
    argv = (["detect", "predict", "--config-file", str(DETECTION_DEMO), "--weights", str(tmp_path / "w.pth")]
            if command == "detect" else ["segment", "predict", str(SEGMENTATION_DEMO), str(tmp_path / "w.pth")])
    line = refused([*argv, "--input", str(photos), "--out", str(photos)], capsys,
                   "detect" if command == "detect" else "segment predict")
    assert f"--out {photos} contains the input" in line or f"--out {photos} is the input" in line
    assert snapshot(photos) == before


def test_export_never_replaces_its_checkpoint_through_dot_dot(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ck.pth").write_bytes(b"the training checkpoint")
    line = refused(["export", "ck.pth", "--out", "nosuchdir/../ck.pth"], capsys, "export")
    assert "--out nosuchdir/../ck.pth is the input ck.pth" in line
    assert (tmp_path / "ck.pth").read_bytes() == b"the training checkpoint"
    assert not (tmp_path / "nosuchdir").exists()


def seg_config(folder: Path) -> Path:
    config = folder / "my_seg.py"
    config.write_text(f"_base_ = {str(SEGMENTATION_DEMO)!r}\n")
    return config


def test_segment_train_never_writes_over_the_users_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = seg_config(tmp_path)
    before = snapshot(tmp_path)
    line = refused(["segment", "train", "my_seg.py", "--out", "."], capsys, "segment train")
    assert "--out . contains the input my_seg.py" in line
    assert snapshot(tmp_path) == before and config.is_file()


def test_segment_train_never_writes_through_a_symlinked_config_dump(tmp_path, capsys):
    config, out = seg_config(tmp_path), tmp_path / "run"
    prepare_run_dir(out, command="segment train")
    victim = user_files(tmp_path / "elsewhere", ("victim.py",))
    (out / config.name).symlink_to(victim / "victim.py")  # where mmengine dumps the config it ran
    before = snapshot(victim)
    line = refused(["segment", "train", str(config), "--out", str(out)], capsys, "segment train")
    assert f"{out / config.name} is a symlink" in line
    assert snapshot(victim) == before


@pytest.mark.parametrize("command", ["detect train", "segment train", "pretrain"])
def test_training_never_goes_into_a_folder_of_the_users_own_files(command, tmp_path, capsys, synthetic_data):
    folder = user_files(tmp_path / "mine")
    before = snapshot(folder)
    argv = {"detect train": ["detect", "train", "--config-file", str(DETECTION_DEMO), "--out", str(folder),
                             "--train-json", str(synthetic_data["coco_train_json"]),
                             "--train-images", str(synthetic_data["coco_train_images"]),
                             "--val-json", str(synthetic_data["coco_val_json"]),
                             "--val-images", str(synthetic_data["coco_val_images"])],
            "segment train": ["segment", "train", str(SEGMENTATION_DEMO), "--out", str(folder), "--data-root",
                              str(synthetic_data["ade_root"])],
            "pretrain": ["pretrain", "--config", str(PRETRAIN_DEMO), "--out", str(folder),
                         f"data_path={synthetic_data['pretrain']}"]}[command]
    line = refused(argv, capsys, "detect" if command == "detect train" else command)
    assert f"output folder {folder} holds files that mae-transfer {command} did not write" in line
    assert snapshot(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "metrics.json", "model_final.pth"]


def test_a_failed_resume_leaves_a_finished_run_as_it_was(tmp_path, capsys, synthetic_data, write_payload):
    """A finished detection run whose newest checkpoint is refused on loading: the resume fails inside the run,
    and the finished run's record and metrics.json are put back byte for byte."""
    out = tmp_path / "run"
    prepare_run_dir(out, command="detect train")
    write_run_record(out, task="detection", status="finished", dataset="synthetic_coco_val", arch="vit_w32_d2",
                     init="mae", metrics={"APbox": 12.5, "APmask": 10.0})
    (out / "metrics.json").write_text("".join(json.dumps({"iteration": i, "bbox/AP": 12.5}) + "\n"
                                              for i in range(3)))
    marker = write_payload(out / "model_final.pkl",
                           lambda p: {"model": {"backbone.net.pos_embed": p}, "__author__": "x"})
    (out / "last_checkpoint").write_text("model_final.pkl")
    before = snapshot(out)
    tiny = ["model.backbone.net.embed_dim=32", "model.backbone.net.depth=2", "model.backbone.net.num_heads=2",
            "model.backbone.net.window_block_indexes=[0]", "dataloader.train.total_batch_size=2",
            "dataloader.train.num_workers=0", "dataloader.test.num_workers=0", "train.max_iter=3"]
    line = refused(["detect", "train", "--config-file", str(DETECTION_DEMO), "--out", str(out), "--resume",
                    "--train-json", str(synthetic_data["coco_train_json"]),
                    "--train-images", str(synthetic_data["coco_train_images"]),
                    "--val-json", str(synthetic_data["coco_val_json"]),
                    "--val-images", str(synthetic_data["coco_val_images"]), *tiny], capsys, "detect")
    assert "refused, it would run code on loading" in line
    after = snapshot(out)
    for name in ("run_record.json", "metrics.json", "model_final.pkl", "last_checkpoint"):
        assert after[str(out / name)] == before[str(out / name)], name
    assert not marker.exists()


# ------------------------------------------------------------------------------------------- the policy itself
def test_a_folder_is_recognised_by_its_markers_content_not_its_name(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / MARKER).write_text("not json")
    assert not made_by(folder, "demo")
    write_marker(folder, "demo")
    assert made_by(folder, "demo") and not made_by(folder, "pretrain")
    (tmp_path / "link").symlink_to(folder, target_is_directory=True)
    assert not made_by(tmp_path / "link", "demo")


def test_finished_run_kept_restores_only_a_finished_run(tmp_path):
    write_run_record(tmp_path, task="detection", status="finished", dataset="d", arch="a", init="mae")
    before = snapshot(tmp_path)
    with pytest.raises(RuntimeError), finished_run_kept(tmp_path):
        write_run_record(tmp_path, task="detection", status="failed", dataset="d", arch="a", init="mae")
        raise RuntimeError("diverged")
    assert snapshot(tmp_path) == before
    with finished_run_kept(tmp_path):  # a resume that succeeds keeps what it wrote
        write_run_record(tmp_path, task="detection", status="finished", dataset="d2", arch="a", init="mae")
    assert json.loads((tmp_path / "run_record.json").read_text())["dataset"] == "d2"
