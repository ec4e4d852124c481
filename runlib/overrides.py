"""``KEY=VALUE`` overrides of a config, read and checked the same way for every task (pretrain's dataclass
configs, detectron2's LazyConfigs, mmseg's configs).

- ``key`` is a dotted path into the config (``train.max_iter``, ``model.backbone.drop_path_rate``; a list item by
  its index). A key the config does not have is an error naming the key and the config file: a misspelt key
  would otherwise be added and the run would go on without it. ``+key=value`` adds a new key on purpose
  (detectron2's / Hydra's syntax) where the config system can hold one.
- ``value`` is read as mmengine's ``--cfg-options`` reads it: ``1`` an int, ``1e-4`` a float, ``true`` /
  ``false`` (any case) a bool, ``None`` or ``null`` None, ``a,b`` or ``[a, b]`` a list, ``(a, b)`` a tuple (nested
  brackets allowed), anything else the text. A key whose value is a string takes the text as written (a folder
  named ``1,2`` stays one string) unless it is ``None``, ``null`` or in square brackets (a list of strings).
- The value must be of the config value's kind: a number for a number (an int where a float stands, not a float
  where an int stands), a bool for a bool, a string for a string (or a list of strings: detectron2's dataset
  ``names`` are one name or several), a sequence for a sequence, a mapping for a mapping; ``None`` on either side
  always passes, as does any value where the config holds something else (a class, a function).
"""
from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .errors import UserError

NEW_KEY = "+"
MISSING = object()   # what a lookup returns for a key the config does not have

# A command-line item that is an override rather than a file: a (dotted) key, then "=".
OVERRIDE_ITEM = re.compile(r"^\+?[A-Za-z_][\w.]*=")


@dataclass(frozen=True)
class Override:
    key: str          # dotted, without the "+"
    value: Any        # parsed
    text: str         # as written, "key=value"
    new: bool = False  # "+key=value": a key the config does not have


def is_override(item: str) -> bool:
    """Whether a command-line item is ``key=value`` (and not, say, a file whose name has a "=")."""
    return bool(OVERRIDE_ITEM.match(item)) and not os.path.exists(item)


def parse_value(text: str) -> Any:
    """A value as mmengine's ``--cfg-options`` reads it (see the module docstring), plus ``null`` for None."""
    text = text.strip("'\"").replace(" ", "")
    if text.startswith("(") and text.endswith(")"):
        return tuple(parse_value(item) for item in _split_top_level(text[1:-1]))
    if text.startswith("[") and text.endswith("]"):
        return [parse_value(item) for item in _split_top_level(text[1:-1])]
    if "," in text:
        return [parse_value(item) for item in _split_top_level(text)]
    return _scalar(text)


def _scalar(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return None if text in ("None", "null") else text


def _split_top_level(text: str) -> list[str]:
    """``"1,(2,3),[a,b]"`` -> ``["1", "(2,3)", "[a,b]"]``: commas inside brackets do not split."""
    if text.count("(") != text.count(")") or text.count("[") != text.count("]"):
        raise UserError(f"unbalanced brackets in {text!r}")
    items, depth, start = [], 0, 0
    for index, char in enumerate(text):
        depth += char in "(["
        depth -= char in ")]"
        if char == "," and depth == 0:
            items.append(text[start:index])
            start = index + 1
    if text[start:]:
        items.append(text[start:])
    return items


def same_kind(value: Any, current: Any) -> bool:
    """Whether an override may replace the config's value (the kinds of the module docstring)."""
    if value is None or current is None:
        return True
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(value, bool) and isinstance(current, bool)
    if isinstance(current, int):
        return isinstance(value, int)
    if isinstance(current, float):
        return isinstance(value, (int, float))
    if isinstance(current, str):
        return isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    if isinstance(value, str):
        return not isinstance(current, (Sequence, Mapping))
    for kind in (Sequence, Mapping):
        if isinstance(current, kind):
            return isinstance(value, kind)
    return True


def _kind_name(value: Any) -> str:
    for kind, name in ((bool, "a bool"), (int, "an int"), (float, "a float"), (str, "a str"), (Mapping, "a dict"),
                       (Sequence, "a list")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def parse_overrides(items: Iterable[str] | Mapping[str, Any], config: Any, lookup: Callable[[str], Any], *,
                    known_keys: Callable[[], Iterable[str]] = tuple, can_add: bool = True,
                    takes_text: Callable[[str, Any], bool] | None = None,
                    fits: Callable[[str, Any, Any], bool] | None = None,
                    error: type[UserError] = UserError) -> list[Override]:
    """Read and check ``key=value`` strings (or a mapping ``{key: value}`` of values already read) against a
    config: ``lookup(key)`` is the config's value at the dotted key (``MISSING`` when it has none), ``config``
    names it in errors, ``known_keys`` gives the keys suggested for a misspelt one, ``can_add`` whether
    ``+key=value`` may add a key, ``takes_text(key, current)`` whether a key's value is the text as written
    (default: where the config holds a string), ``fits(key, value, current)`` whether a value may replace the
    config's (default: ``same_kind``; a config whose keys have declared types checks against those). A bad item
    is one ``error`` (a ``UserError``) naming it and the config."""
    takes_text = takes_text or (lambda key, current: isinstance(current, str))
    fits = fits or (lambda key, value, current: same_kind(value, current))
    read = isinstance(items, Mapping)
    checked = []
    for item in (items.items() if read else items):
        name, sep, text = (item[0], "=", item[1]) if read else str(item).partition("=")
        shown = f"{name}={text!r}" if read else str(item)
        new = name.startswith(NEW_KEY)
        key = name.removeprefix(NEW_KEY).strip()
        if not sep or not key:
            raise error(f"override {shown}: expected key=value, e.g. {_example(known_keys)}")
        current = lookup(key)
        if new and not can_add:
            raise error(f"override {shown}: {config} takes no new keys"
                        + ("" if current is MISSING else f"; write {key}=... to change it"))
        if new and current is not MISSING:
            raise error(f"override {shown}: {key} is already in {config}; write {key}=... to change it")
        if not new and current is MISSING:
            raise error(f"override {shown}: {config} has no key {key!r}{suggestion(key, known_keys())}"
                        + (f"; write +{key}=... to add a new key" if can_add else ""))
        try:
            value = text if read or (not new and takes_text(key, current) and not _list_or_none(text)) \
                else parse_value(text)
        except UserError as exc:
            raise error(f"override {shown}: {exc}") from None
        if not new and not fits(key, value, current):
            now = "" if isinstance(current, (Mapping, Sequence)) and not isinstance(current, str) else \
                f" (now {current!r})"
            raise error(f"override {shown}: {key} is {_kind_name(current)} in {config}{now}, not {_kind_name(value)}")
        checked.append(Override(key, value, shown, new))
    return checked


def _list_or_none(text: str) -> bool:
    return text in ("None", "null") or (text.startswith("[") and text.endswith("]"))


def _example(known_keys: Callable[[], Iterable[str]]) -> str:
    keys = list(known_keys())
    return f"{keys[0]}=..." if keys else "name=value"


def suggestion(key: str, known: Iterable[str]) -> str:
    """" (did you mean a.b.c?)": known keys that end in the key's last part, else the closest spelling."""
    known = list(known)
    last = key.rsplit(".", 1)[-1]
    close = [k for k in known if k == last or k.endswith(f".{last}")] \
        or difflib.get_close_matches(key, known, n=1, cutoff=0.8)
    return f" (did you mean {', '.join(close[:3])}?)" if close else ""


def lookup_in(tree: Any, key: str) -> Any:
    """The value at a dotted key of nested mappings and lists (a list item by its index), or ``MISSING``."""
    node = tree
    for part in key.split("."):
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, Sequence) and not isinstance(node, str) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def leaf_keys(node: Any, prefix: str = "") -> list[str]:
    """The dotted keys of a tree's leaves (list items by index where they hold mappings)."""
    if isinstance(node, Mapping):
        items = node.items()
    elif isinstance(node, Sequence) and not isinstance(node, str) and any(isinstance(v, Mapping) for v in node):
        items = ((str(i), v) for i, v in enumerate(node))
    else:
        return [prefix[:-1]] if prefix else []
    return [k for key, value in items for k in leaf_keys(value, f"{prefix}{key}.")]
