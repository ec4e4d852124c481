"""YAML config files read as data: PyYAML's safe loader only.

detectron2's yacs loader falls back to ``yaml.unsafe_load`` and mmengine reads YAML with PyYAML's full loader;
with either, a tag such as ``!!python/object/apply:os.system`` in a config file runs code. This project reads
every ``.yaml`` config with ``yaml.safe_load`` (plain mappings, lists, strings and numbers) and refuses a
file with such a tag, naming it. A ``.py`` config is Python by design (detectron2's LazyConfig, mmengine's
Config) and runs as code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import UserError

YAML_SUFFIXES = (".yaml", ".yml")


def is_yaml(path: str | Path) -> bool:
    return str(path).lower().endswith(YAML_SUFFIXES)


def yaml_error(path: str | Path, exc: yaml.YAMLError) -> UserError:
    """One line naming the file for what PyYAML's safe loader refused: a tag that would run code, or bad syntax."""
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1})" if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if isinstance(exc, yaml.constructor.ConstructorError) and "tag" in problem:
        return UserError(f"{path}: {problem}{where}; YAML configs are data, a tag that builds Python objects or "
                         "runs code is refused (a .py config is the way to write code)")
    return UserError(f"{path}: not valid YAML: {problem}{where}")


def load_yaml(path: str | Path) -> Any:
    """The contents of a YAML file, read with ``yaml.safe_load``; one ``UserError`` naming the file otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise yaml_error(path, exc) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
