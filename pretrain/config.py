"""Run configurations: typed dataclasses filled from the Python files in ``configs/pretrain/``.

Config files are read by mmengine's ``Config`` (as mmseg reads its own): plain assignments (``blr = 1.5e-4``) on
top of the ``_base_`` file they name (``_base_ = "mae_pretrain.py"``, relative to the file). The recipe numbers
have no defaults here: they come from the files, whose sources docs/recipes.md gives (MAE paper Tables 8-10).
``key=value`` overrides from the command line are read and checked as every task's (``runlib.overrides``:
values as mmengine's ``--cfg-options`` reads them, the text as is for string fields, no new keys), merged with
``Config.merge_from_dict``, then keyword arguments. Every value is checked against its field's type and rules:
a bad one is a single ``ConfigError`` naming the key, the value and the rule, before anything runs.
"""
from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Mapping

from runlib import UserError, config_syntax_named
from runlib import overrides as override_syntax
from runlib.safe_yaml import yaml_error

from .models_mae import decoder_kwargs, encoder_kwargs

PRECISIONS = ("auto", "bf16", "fp16", "fp32")


class ConfigError(UserError):
    """A config file or value that cannot be used; the message names the key and the value."""


@dataclass(kw_only=True)
class TrainConfig:
    """Fields shared by pretraining, linear probing and fine-tuning."""
    # data: an image folder (ImageFolder tree or flat)
    data_path: str = ""
    dataset: str = ""                    # name in the run record (default: the data folder's name)
    input_size: int
    num_workers: int = 4
    # encoder: a name from models_mae.ENCODERS (sizes: backbone.VIT_SIZES); the four shape fields override it when set
    model: str
    patch_size: int | None = None
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    # schedule: per-step cosine after a linear warm-up; lr = blr * batch_size / 256 unless lr is set
    batch_size: int                      # effective batch of one optimizer step, over all devices
    batch_per_device: int | None = None  # default batch_size / world size; smaller means gradient accumulation
    epochs: int
    warmup_epochs: float
    blr: float
    lr: float | None = None
    min_lr: float = 0.0
    weight_decay: float
    # run control
    seed: int = 0
    precision: str = "auto"              # auto: bf16 autocast on GPU, fp32 on CPU
    compile: bool = False                # torch.compile the model
    device: str = "auto"                 # auto: cuda:LOCAL_RANK when available, else cpu
    checkpoint_every: int = 500          # optimizer steps between checkpoints (one is always written at the end)
    keep_checkpoints: int = 2
    log_every: int = 1                   # optimizer steps between log lines
    max_steps: int | None = None         # stop early after this many optimizer steps (time-boxed runs)
    tensorboard: bool = True

    @property
    def dataset_name(self) -> str:
        return self.dataset or Path(self.data_path).name

    @property
    def effective_lr(self) -> float:
        return self.lr if self.lr is not None else self.blr * self.batch_size / 256

    def encoder_kwargs(self) -> dict:
        return encoder_kwargs(self.model, patch_size=self.patch_size, embed_dim=self.embed_dim,
                              depth=self.depth, num_heads=self.num_heads)

    def problems(self) -> list[str]:
        """Every rule a value breaks, as 'key = value: rule'."""
        out = []

        def check(ok: bool, key: str, rule: str):
            if not ok:
                out.append(f"{key} = {getattr(self, key)!r}: {rule}")

        try:
            enc = self.encoder_kwargs()
        except ValueError as exc:
            out.append(f"model = {self.model!r}: {exc}")
        else:
            for key in ("patch_size", "embed_dim", "depth", "num_heads"):
                check(enc[key] > 0, key, "must be positive")
            if enc["patch_size"] > 0:
                check(self.input_size % enc["patch_size"] == 0, "input_size",
                      f"must be a multiple of the patch size {enc['patch_size']}")
            if enc["num_heads"] > 0:
                check(enc["embed_dim"] % enc["num_heads"] == 0, "embed_dim",
                      f"must be divisible by num_heads {enc['num_heads']}")
            check(enc["embed_dim"] % 4 == 0, "embed_dim", "must be divisible by 4 (2-D sin-cos embedding)")
        for key in ("data_path", "val_path"):
            check(_is_text(getattr(self, key, "")), key, "not UTF-8 text (logs and the run record are UTF-8); "
                  "rename the folder or link it under a UTF-8 name")
        check(self.input_size > 0, "input_size", "must be positive")
        check(self.batch_size > 0, "batch_size", "must be positive")
        check(self.batch_per_device is None or 0 < self.batch_per_device <= self.batch_size, "batch_per_device",
              "must be in [1, batch_size]")
        check(self.epochs > 0, "epochs", "must be positive")
        check(0 <= self.warmup_epochs <= self.epochs, "warmup_epochs", "must be in [0, epochs]")
        check(self.blr > 0, "blr", "must be positive")
        check(self.lr is None or self.lr > 0, "lr", "must be positive")
        check(self.min_lr >= 0, "min_lr", "must be >= 0")
        check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        check(self.num_workers >= 0, "num_workers", "must be >= 0")
        check(self.precision in PRECISIONS, "precision", f"must be one of {PRECISIONS}")
        check(self.checkpoint_every > 0, "checkpoint_every", "must be positive")
        check(self.keep_checkpoints > 0, "keep_checkpoints", "must be positive")
        check(self.log_every > 0, "log_every", "must be positive")
        check(self.max_steps is None or self.max_steps > 0, "max_steps", "must be positive")
        return out


@dataclass(kw_only=True)
class PretrainConfig(TrainConfig):
    """MAE pretraining (paper Table 8)."""
    mask_ratio: float
    norm_pix_loss: bool
    crop_scale: tuple[float, float]      # RandomResizedCrop area range, bicubic, then horizontal flip
    betas: tuple[float, float]           # AdamW
    decoder_embed_dim: int | None = None  # None: the size's decoder (backbone.VIT_SIZES: 512 wide, 8 blocks, 16 heads)
    decoder_depth: int | None = None
    decoder_num_heads: int | None = None
    # input pipeline: decode the folder once into OUT/decoded/ (uint8 memory map) and augment a batch at a time
    # in torch (pretrain/data.py, DecodedImages); False decodes and augments each image with PIL when it is used
    decode_once: bool = True
    # long side larger images are stored downscaled to; None: 2 x input_size, so that even a whole-image crop of a
    # 4:3 image keeps 1.5x the input's pixels per side before it is resized to the input
    decode_max_side: int | None = None
    # where a batch's crops, flips and normalisation are computed from the decoded images: "device" keeps every
    # decoded image on the training device and augments there (DeviceImages; for GPUs, where host-side crops would
    # hold back a small model); "host" in the data loader; "auto": "device" on a GPU, "host" on CPU
    augment_on: str = "auto"

    @property
    def stored_max_side(self) -> int:
        return self.decode_max_side or 2 * self.input_size

    def model_kwargs(self) -> dict:
        """Constructor keywords for ``build_mae(self.model, ...)``."""
        kwargs = dict(img_size=self.input_size, norm_pix_loss=self.norm_pix_loss, patch_size=self.patch_size,
                      embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads,
                      decoder_embed_dim=self.decoder_embed_dim, decoder_depth=self.decoder_depth,
                      decoder_num_heads=self.decoder_num_heads)
        return {k: v for k, v in kwargs.items() if v is not None}

    def problems(self) -> list[str]:
        out = super().problems()
        if not self.model.startswith("mae_"):
            out.append(f"model = {self.model!r}: pretraining needs an MAE model name such as 'mae_vit_base_patch16'")
        if not 0 < self.mask_ratio < 1:
            out.append(f"mask_ratio = {self.mask_ratio!r}: must be in (0, 1) (the loss is over masked patches)")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            out.append(f"crop_scale = {self.crop_scale!r}: must satisfy 0 < min <= max <= 1")
        out += _beta_problems(self.betas)
        if self.augment_on not in ("auto", "host", "device"):
            out.append(f"augment_on = {self.augment_on!r}: must be one of 'auto', 'host', 'device'")
        elif self.augment_on == "device" and not self.decode_once:
            out.append("augment_on = 'device': needs decode_once = True (the decoded images are what is moved)")
        if self.decode_max_side is not None and self.decode_max_side < self.input_size:
            out.append(f"decode_max_side = {self.decode_max_side!r}: must be at least input_size = {self.input_size} "
                       "(smaller would make every crop an upsampling)")
        try:
            dim, depth, heads = decoder_kwargs(self.model, decoder_embed_dim=self.decoder_embed_dim, decoder_depth=
                                               self.decoder_depth, decoder_num_heads=self.decoder_num_heads).values()
        except ValueError:  # an unknown model, named above
            return out
        if min(dim, heads, depth) <= 0 or dim % heads or dim % 4:
            out.append(f"decoder_embed_dim = {dim}, decoder_depth = {depth}, decoder_num_heads = {heads}: need "
                       "positive values and a width divisible by the heads and by 4")
        return out


@dataclass(kw_only=True)
class ClassifyConfig(TrainConfig):
    """Supervised training on an ImageFolder classification set, evaluated on ``val_path`` every epoch."""
    val_path: str = ""
    checkpoint: str | None = None        # encoder weights to start from (None: random init)

    def problems(self) -> list[str]:
        out = super().problems()
        if self.model.startswith("mae_"):
            out.append(f"model = {self.model!r}: name the encoder, e.g. {self.model.removeprefix('mae_')!r}")
        return out


@dataclass(kw_only=True)
class LinprobeConfig(ClassifyConfig):
    """Linear probe (paper Table 10): frozen encoder, BatchNorm without affine, linear head, LARS."""
    momentum: float

    def problems(self) -> list[str]:
        out = super().problems()
        if not 0 <= self.momentum < 1:
            out.append(f"momentum = {self.momentum!r}: must be in [0, 1)")
        return out


@dataclass(kw_only=True)
class FinetuneConfig(ClassifyConfig):
    """End-to-end fine-tuning (paper Table 9); with ``checkpoint = None`` the supervised-from-scratch baseline."""
    betas: tuple[float, float]
    layer_decay: float
    drop_path: float
    global_pool: bool                    # average the patch tokens (else the cls token)
    rand_aug: str                        # timm auto_augment string; "" for none
    mixup: float
    cutmix: float
    smoothing: float
    reprob: float = 0.0                  # random erasing probability

    def problems(self) -> list[str]:
        out = super().problems() + _beta_problems(self.betas)
        for key, lo, hi in (("layer_decay", 0, 1), ("drop_path", 0, 1), ("smoothing", 0, 1), ("reprob", 0, 1)):
            value = getattr(self, key)
            if not lo <= value <= hi or (key == "layer_decay" and value == 0):
                out.append(f"{key} = {value!r}: must be in {'(0, 1]' if key == 'layer_decay' else '[0, 1]'}")
        for key in ("mixup", "cutmix"):
            if getattr(self, key) < 0:
                out.append(f"{key} = {getattr(self, key)!r}: must be >= 0")
        return out


def _beta_problems(betas) -> list[str]:
    return [] if all(0 <= b < 1 for b in betas) else [f"betas = {betas!r}: each must be in [0, 1)"]


KINDS: dict[str, type[TrainConfig]] = {
    "pretrain": PretrainConfig, "linprobe": LinprobeConfig, "finetune": FinetuneConfig}


@cache
def _install_safe_yaml() -> None:
    """Make mmengine read YAML with PyYAML's safe loader: its own handler uses the full loader, under which a
    tag such as ``!!python/object/apply`` runs code. Installed for the process, so that ``_base_`` files and
    every other YAML mmengine reads are data too."""
    import yaml
    from mmengine.fileio import register_handler
    from mmengine.fileio.handlers import YamlHandler

    @register_handler(["yaml", "yml"])
    class SafeYamlHandler(YamlHandler):
        def load_from_fileobj(self, file, **kwargs):
            return yaml.load(file, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def read_mmengine_config(path: str | Path):
    """mmengine's ``Config.fromfile`` with YAML read as data: a ``.yaml`` config (or ``_base_`` file) holding a
    tag that would build Python objects is one ``UserError`` naming the file. A ``.py`` config is Python and
    runs as code, as in mmengine."""
    import yaml
    from mmengine.config import Config

    _install_safe_yaml()
    try:
        with warnings.catch_warnings():
            # mmengine finds `mmseg::` base files through pkg_resources, re-imported on each lookup; setuptools
            # deprecates it (UserWarning) and it works with the pinned setuptools<81
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            return Config.fromfile(str(path))
    except yaml.YAMLError as exc:  # in the file or in one of its _base_ files (read from temporary copies)
        raise yaml_error(path, exc) from None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The values a config file assigns, its ``_base_`` files' values first (mmengine's ``Config.fromfile``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    with config_syntax_named(path, ConfigError):
        try:
            return read_mmengine_config(path).to_dict()
        except SyntaxError:
            raise
        except UserError as exc:
            raise ConfigError(str(exc)) from None
        except Exception as exc:  # mmengine re-raises name and import errors of the file under many types
            reason = " ".join(str(exc).split())
            raise ConfigError(f"{path}: cannot be run as a config file ({type(exc).__name__}: {reason})") from None


def parse_overrides(cls: type[TrainConfig], items: Iterable[str], base: Mapping[str, Any] = {},
                    config: str | Path | None = None) -> dict[str, Any]:
    """``["epochs=10", "data_path=/data"]`` -> ``{"epochs": 10, "data_path": "/data"}``, read and checked as
    every task's overrides are (``runlib.overrides``) against ``base`` (the config file's values) and the
    fields' defaults; a string field takes the text as written. A dataclass takes no new (``+key``) keys."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}

    def lookup(key: str) -> Any:
        if key not in fields:
            return override_syntax.MISSING
        return base[key] if key in base else _default(fields[key])

    checked = override_syntax.parse_overrides(
        items, config or f"a {cls.__name__}", lookup, known_keys=lambda: sorted(fields), can_add=False,
        takes_text=lambda key, _: str in _type_options(hints[key]), fits=lambda key, value, _: _fits(value, hints[key]),
        error=ConfigError)
    return {override.key: override.value for override in checked}


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` goes into a field of type ``hint`` (the field's type, not the config file's value, decides:
    ``warmup_epochs = 4`` in a file still takes ``warmup_epochs=0.6``)."""
    try:
        _typed("", value, hint, "")
    except ConfigError:
        return False
    return True


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    return None if field.default_factory is dataclasses.MISSING else field.default_factory()


def load_config(kind: str, path: str | Path | None = None, overrides: Mapping[str, Any] | Iterable[str] = (),
                **values) -> TrainConfig:
    """Build and check a config of ``kind`` ('pretrain', 'linprobe', 'finetune') from a config file, then
    ``overrides`` (a mapping, or ``key=value`` strings), then keyword arguments."""
    if kind not in KINDS:
        raise ConfigError(f"unknown config kind {kind!r}; choose one of {sorted(KINDS)}")
    return _merged(KINDS[kind], read_config_file(path) if path is not None else {}, overrides, values, path)


def _merged(cls: type[TrainConfig], base: Mapping[str, Any], overrides: Mapping[str, Any] | Iterable[str],
            values: Mapping[str, Any], path: str | Path | None = None) -> TrainConfig:
    from mmengine.config import Config

    source = f"{path}: " if path is not None else ""
    config = Config(dict(base))
    config.merge_from_dict(dict(overrides) if isinstance(overrides, Mapping)
                          else parse_overrides(cls, overrides, base, path))
    config.merge_from_dict(dict(values))
    return make_config(cls, config.to_dict(), source)


def make_config(cls: type[TrainConfig], values: Mapping[str, Any], source: str = "") -> TrainConfig:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}unknown key(s) {unknown} for a {cls.__name__}; known keys: {sorted(fields)}")
    missing = sorted(name for name, f in fields.items() if name not in values
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ConfigError(f"{source}missing key(s) {missing} for a {cls.__name__} "
                          "(start from a file in configs/pretrain/)")
    converted = {key: _typed(key, value, hints[key], source) for key, value in values.items()}
    config = cls(**converted)
    problems = config.problems()
    if problems:
        raise ConfigError(f"{source}invalid config value{'s' if len(problems) > 1 else ''}: " + "; ".join(problems))
    return config


def _is_text(path: str) -> bool:
    """Whether a path is text: a file name not valid in the locale's encoding reaches Python with surrogates."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _type_options(hint: Any) -> tuple:
    """The types a field takes: ``int | None`` -> (int, NoneType)."""
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


def _typed(key: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` as the field's type (an int where a float goes, a list where a pair goes), or a ConfigError."""
    options = _type_options(hint)
    if value is None and type(None) in options:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and number and isinstance(value, int):
            return value
        if option is float and number:
            return float(value)
        if option is str and isinstance(value, (str, Path)):
            return str(value)
        if typing.get_origin(option) is tuple and isinstance(value, (tuple, list)) and \
                len(value) == len(typing.get_args(option)) and \
                all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return tuple(float(v) for v in value)
    raise ConfigError(f"{source}{key} = {value!r}: expected {_type_name(hint)}")


def _type_name(hint: Any) -> str:
    return str(hint).replace("typing.", "").replace("<class '", "").replace("'>", "")


def config_dict(config: TrainConfig) -> dict[str, Any]:
    """The config as plain values (for checkpoints, logs and run records)."""
    return dataclasses.asdict(config)


def as_config(kind: str, config: TrainConfig | str | Path, overrides: Mapping[str, Any] | Iterable[str] = (),
              **values) -> TrainConfig:
    """A checked config of ``kind`` from a config object or file, with overrides, then ``values``, applied."""
    if isinstance(config, TrainConfig):
        if not isinstance(config, KINDS.get(kind, ())):
            raise ConfigError(f"a {kind} run needs a {KINDS[kind].__name__}, got a {type(config).__name__}")
        return _merged(type(config), config_dict(config), overrides, values)
    return load_config(kind, config, overrides, **values)
