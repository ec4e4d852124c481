"""The one command grammar (runlib/command_line.py) of pretrain, finetune, linprobe, detect and segment: what -h
shows, the frameworks' spellings as aliases, trailing KEY=VALUE overrides reaching the config, the init label, and
overrides checked one way for the three config systems (runlib/overrides.py); the other commands' --out, --weights
and --input with their positional spellings as aliases."""
from pathlib import Path

import pytest
from mmengine.config import DictAction

from detection import cli as detect_cli
from detection.engine import apply_override, load_lazy_config
from mae_transfer.cli import main as cli
from pretrain import cli as pretrain_cli
from pretrain.config import load_config as load_pretrain_config
from runlib import UserError
from runlib.overrides import parse_value
from runlib.run_record import init_label
from segmentation import cli as segment_cli
from segmentation.config import load_config as load_segmentation_config
from tests.conftest import CONFIGS

DETECT = str(CONFIGS / "detection" / "demo_tiny.py")
SEGMENT = str(CONFIGS / "segmentation" / "demo_tiny.py")
FINETUNE = str(CONFIGS / "pretrain" / "demo_tiny_finetune.py")

TRAIN = ("--config", "--out", "--init", "--init-label", "--resume", "KEY=VALUE")
EVAL = ("--config", "--weights", "--out", "KEY=VALUE")
PREDICT = ("--config", "--weights", "--input", "--out", "KEY=VALUE")


@pytest.mark.parametrize("command, shown", [
    ("pretrain", ("--config", "--out", "--resume", "KEY=VALUE")),
    ("finetune", TRAIN), ("linprobe", TRAIN),
    ("detect train", TRAIN), ("detect eval", EVAL), ("detect predict", PREDICT),
    ("segment train", TRAIN), ("segment eval", EVAL), ("segment test", EVAL), ("segment predict", PREDICT),
])
def test_help_shows_the_one_grammar(command, shown, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli([*command.split(), "-h"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    usage = text.split("\n\n")[0]
    assert all(option in usage for option in shown), (usage, shown)
    assert "alias" in text and "--config-file" in text  # the frameworks' spellings are documented as aliases


def _pretrain(argv: list[str]) -> dict:
    return vars(pretrain_cli._parse(pretrain_cli._training_parser("finetune", "", init=True), argv))


def _same(parse, old: list[str], new: list[str]) -> None:
    assert parse(old) == parse(new)


@pytest.mark.parametrize("old, new", [
    (["--config-file", FINETUNE, "--output-dir", "o", "--checkpoint", "w.pth", "epochs=2"],
     ["--config", FINETUNE, "--out", "o", "--init", "w.pth", "epochs=2"]),
    ([FINETUNE, "--work-dir", "o", "--init-checkpoint", "w.pth", "--cfg-options", "epochs=2", "blr=0.1"],
     ["--config", FINETUNE, "--out", "o", "--init", "w.pth", "epochs=2", "blr=0.1"]),
])
def test_pretrain_old_spellings_parse_as_the_new(old, new):
    _same(_pretrain, old, new)


@pytest.mark.parametrize("old, new", [
    (["train", "--config-file", DETECT, "--output-dir", "o", "--init-checkpoint", "w.pth", "--init", "mae",
      "train.max_iter=7"],
     ["train", "--config", DETECT, "--out", "o", "--init", "w.pth", "--init-label", "mae", "train.max_iter=7"]),
    (["train", "--config-file", DETECT, "--init", "supervised"],      # a label, the config's weights
     ["train", "--config", DETECT, "--init-label", "supervised"]),
    (["eval", "--config-file", DETECT, "--checkpoint", "w.pth", "--init", "mae", "--out", "o", "a.b=1"],
     ["eval", "--config", DETECT, "--weights", "w.pth", "--init-label", "mae", "--out", "o", "a.b=1"]),
    (["predict", DETECT, "w.pth", "--input", "a.jpg", "a.b=1", "--output-dir", "o"],
     ["predict", "--config", DETECT, "--weights", "w.pth", "--input", "a.jpg", "--out", "o", "a.b=1"]),
])
def test_detect_old_spellings_parse_as_the_new(old, new):
    _same(lambda argv: vars(detect_cli.parse(argv)), old, new)


@pytest.mark.parametrize("old, new", [
    (["train", SEGMENT, "--work-dir", "o", "--checkpoint", "w.pth", "--init", "mae", "--cfg-options", "a.b=1",
      "c=2", "--resume"],
     ["train", "--config", SEGMENT, "--out", "o", "--init", "w.pth", "--init-label", "mae", "--resume", "a.b=1",
      "c=2"]),
    (["train", SEGMENT, "--resume", "o/iter_4.pth"],
     ["train", "--config", SEGMENT, "--resume-from", "o/iter_4.pth"]),
    (["test", SEGMENT, "w.pth", "--work-dir", "o", "--init", "mae", "--cfg-options", "a.b=1"],
     ["eval", "--config", SEGMENT, "--weights", "w.pth", "--out", "o", "--init-label", "mae", "a.b=1"]),
    (["predict", SEGMENT, "w.pth", "--input", "a.jpg", "--out", "o", "--cfg-options", "a.b=1"],
     ["predict", "--config", SEGMENT, "--weights", "w.pth", "--input", "a.jpg", "a.b=1", "--out", "o"]),
])
def test_segment_old_spellings_parse_as_the_new(old, new):
    def parse(argv):
        args = vars(segment_cli.parse(argv))
        args.pop("resume_from", None)  # --resume-from sets resume
        return args
    _same(parse, old, new)


def test_segment_eval_is_segment_test():
    argv = ["--config", SEGMENT, "--weights", "w.pth", "--out", "o", "a.b=1"]
    assert vars(segment_cli.parse(["eval", *argv])) == vars(segment_cli.parse(["test", *argv]))
    assert segment_cli.parse(["test", *argv]).command == "eval"


def test_initial_weights_and_label_given_twice_or_missing_config_are_argument_errors(capsys):
    with pytest.raises(SystemExit):
        detect_cli.parse(["train", "--config", DETECT, "--init", "a.pth", "--init-checkpoint", "b.pth"])
    assert "give the initial weights once" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        segment_cli.parse(["eval", "--config", SEGMENT])
    assert "required: --weights" in capsys.readouterr().err


def test_trailing_overrides_reach_the_detection_config():
    args = detect_cli.parse(["train", "--config", DETECT, "--out", "o", "train.max_iter=7", "--cfg-options",
                             "optimizer.lr=0.5", "dataloader.test.dataset.names=[a,b]"])
    cfg = load_lazy_config(args.config)
    for override in args.overrides:  # as engine.load_config applies them
        apply_override(cfg, override, args.config)
    assert (cfg.train.max_iter, cfg.optimizer.lr, list(cfg.dataloader.test.dataset.names)) == (7, 0.5, ["a", "b"])


def test_trailing_overrides_init_and_label_reach_the_segmentation_config(tmp_path):
    args = segment_cli.parse(["train", "--config", SEGMENT, "--out", str(tmp_path), "--init", "zoo:demo-mae",
                              "train_cfg.max_iters=7", "+model.backbone.init_values=1.0", "--cfg-options",
                              "optim_wrapper.optimizer.lr=1"])
    cfg = load_segmentation_config(args.config, args.out, args.overrides, init_checkpoint=args.init,
                                   init=args.init_label)
    assert (cfg.train_cfg.max_iters, cfg.model.backbone.init_values, cfg.optim_wrapper.optimizer.lr) == (7, 1.0, 1)
    assert (cfg.model.pretrained, cfg.run_record["init"]) == ("zoo:demo-mae", "mae")
    args = segment_cli.parse(["train", "--config", SEGMENT, "--init", "random"])
    cfg = load_segmentation_config(args.config, tmp_path, args.overrides, init_checkpoint=args.init)
    assert (cfg.model.pretrained, cfg.run_record["init"]) == (None, "random")


def test_trailing_overrides_reach_the_classification_config():
    args = _pretrain(["--config", FINETUNE, "--out", "o", "epochs=3", "--cfg-options", "data_path=a,b"])
    cfg = load_pretrain_config("finetune", args["config"], args["overrides"])
    assert (cfg.epochs, cfg.data_path) == (3, "a,b")  # a string field keeps its text


def _unknown_key_errors(tmp_path) -> dict[str, tuple[Exception, str]]:
    errors = {}
    for system, config, attempt in (
            ("pretrain", FINETUNE, lambda: load_pretrain_config("finetune", FINETUNE, ["epochz=3"])),
            ("detection", DETECT, lambda: apply_override(load_lazy_config(DETECT), "train.max_iterz=3", DETECT)),
            ("segmentation", SEGMENT, lambda: load_segmentation_config(SEGMENT, tmp_path, ["train_cfg.max_iterz=3"]))):
        with pytest.raises(UserError) as error:
            attempt()
        errors[system] = (error.value, config)
    return errors


def test_an_unknown_override_key_is_one_error_naming_key_and_config_for_every_config_system(tmp_path):
    for system, (error, config) in _unknown_key_errors(tmp_path).items():
        message = str(error)
        key = {"pretrain": "epochz", "detection": "train.max_iterz", "segmentation": "train_cfg.max_iterz"}[system]
        assert f"has no key '{key}'" in message and config in message and "\n" not in message, (system, message)
        assert message.startswith(f"override {key}=3: "), (system, message)


def test_a_value_of_another_kind_is_refused_alike_for_every_config_system(tmp_path):
    attempts = {
        "pretrain": lambda: load_pretrain_config("finetune", FINETUNE, ["epochs=ten"]),
        "detection": lambda: apply_override(load_lazy_config(DETECT), "train.max_iter=ten", DETECT),
        "segmentation": lambda: load_segmentation_config(SEGMENT, tmp_path, ["train_cfg.max_iters=ten"]),
    }
    for system, attempt in attempts.items():
        with pytest.raises(UserError, match=r"=ten: \S+ is an int in .* \(now \d+\), not a str"):
            attempt()


@pytest.mark.parametrize("text", ["1", "-2", "1e-4", "true", "FALSE", "None", "a,b", "[1,(2,3),[a,b]]", "(1, 2)",
                                  "'q'", "/a/b.pth", "[]", "x"])
def test_values_are_read_as_mmengine_reads_cfg_options(text):
    assert parse_value(text) == DictAction._parse_iterable(text)


@pytest.mark.parametrize("weights, config_label, label", [
    (None, "supervised", "random"), ("random", None, "random"), ("none", "mae", "random"),
    ("zoo:demo-mae", None, "mae"), ("zoo:demo-supervised", "mae", "supervised"),
    ("out/pretrain/mae/encoder.pth", None, "mae"), ("hf:facebook/vit-mae-base", None, "mae"),
    ("detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_base.pth", None, "mae"),
    ("timm:deit_base_patch16_224.fb_in1k", "supervised", "supervised"),
    ("timm:deit_base_patch16_224.fb_in1k", None, "timm:deit_base_patch16_224.fb_in1k"),
    ("/data/encoder.pth", None, "/data/encoder.pth"),
])
def test_the_init_label_is_derived_from_the_weights(weights, config_label, label):
    assert init_label(weights, config_label) == label


def test_grid_commands_speak_the_one_grammar():
    from mae_transfer import grid

    runs = {run.name: run for run in grid.load_grid(CONFIGS / "grid" / "demo_quick.py", Path("/out"))}
    for name in ("detection/mae/seed0", "segmentation/supervised/seed0"):
        argv = grid.commands(runs[name], resume=True)[0]
        assert argv[1:3] == ["train", "--config"] and "--init-label" in argv and "--resume" in argv
        assert not {"--config-file", "--cfg-options", "--checkpoint", "--init-checkpoint"} & set(argv)
        parse = detect_cli.parse if argv[0] == "detect" else segment_cli.parse
        args = parse(argv[1:])
        assert (args.init, args.init_label) == (runs[name].weights, runs[name].init)
        assert args.overrides == [item for item in argv if "=" in item and not item.startswith("-")]


@pytest.mark.parametrize("command, shown", [
    ("generate-data", ("--out",)), ("export", ("--weights", "--out")), ("visualize", ("--weights", "--input", "--out")),
    ("compare", ("--out",)), ("plot", ("--out",)), ("zoo publish", ("--out",)), ("grid", ("--out",)),
    ("demo", ("--out",)),
])
def test_the_other_commands_speak_the_grammar_where_it_applies(command, shown, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli([*command.split(), "-h"])
    assert exit_.value.code == 0
    usage = capsys.readouterr().out.split("\n\n")[0]
    assert usage.startswith(f"usage: mae-transfer {command}")
    assert all(option in usage for option in shown), (usage, shown)


def _calls(monkeypatch, target: str, result=None) -> list:
    """Replace ``target`` (module:function) by a recorder of its arguments."""
    module, function = target.split(":")
    calls = []
    monkeypatch.setattr(f"{module}.{function}", lambda *args, **kwargs: calls.append((args, kwargs)) or result)
    return calls


@pytest.mark.parametrize("old, new", [
    (["export", "w.pth", "--out", "e.pth"], ["export", "--weights", "w.pth", "--out", "e.pth"]),
    (["export", "--checkpoint", "w.pth", "--out", "e.pth", "--format", "hf"],
     ["export", "--out", "e.pth", "--weights", "w.pth", "--format", "hf"]),
])
def test_export_old_spellings_run_as_the_new(old, new, monkeypatch):
    calls = _calls(monkeypatch, "pretrain.export:export_encoder", "e.pth")
    assert cli(old) == 0 and cli(new) == 0
    assert calls[0] == calls[1] and calls[0][0][0] == "w.pth"


def test_visualize_old_spellings_run_as_the_new(monkeypatch):
    calls = _calls(monkeypatch, "pretrain.reconstruction:visualize", "r.png")
    assert cli(["visualize", "w.pth", "--images", "a.png", "b.png", "--out", "r.png"]) == 0
    assert cli(["visualize", "--weights", "w.pth", "--input", "a.png", "b.png", "--out", "r.png"]) == 0
    assert calls[0] == calls[1] and calls[0][0][:2] == ("w.pth", ["a.png", "b.png"])


def test_generate_data_and_zoo_publish_old_spellings_run_as_the_new(monkeypatch, tmp_path):
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"counts": {}}')
    generated = _calls(monkeypatch, "mae_transfer.synthetic:generate", {"manifest": manifest})
    assert cli(["generate-data", "data", "--seed", "3"]) == 0
    assert cli(["generate-data", "--out", "data", "--seed", "3"]) == 0
    assert generated[0] == generated[1] and generated[0][0][0] == Path("data")
    published = _calls(monkeypatch, "mae_transfer.zoo:publish", {})
    assert cli(["zoo", "publish", "build", "--zoo", "z"]) == 0 and cli(["zoo", "publish", "build", "--out", "z"]) == 0
    assert published[0] == published[1] == (((Path("build"), Path("z")), {}))


def test_an_option_and_its_positional_alias_given_differently_is_one_argument_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli(["export", "a.pth", "--weights", "b.pth", "--out", "e.pth"])
    assert exit_.value.code == 2 and "give it once" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli(["generate-data"])
    assert "required: --out" in capsys.readouterr().err
