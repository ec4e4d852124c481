"""The project's own model zoo: small encoders this project pretrained, shipped in ``zoo/`` at the repository root,
named ``zoo:NAME`` wherever weights are taken (``resolve_weights``).

``zoo/index.json`` lists each entry as ``{"NAME": {"file": "NAME.pth", "sha256": "...", "card": "NAME.md", ...}}``;
the card beside the file says how it was made (command, data, scale, hardware, time, probe accuracy). A file whose
sha256 differs from the index is refused, as torch.hub refuses a download whose hash prefix does not match.
``$MAE_TRANSFER_ZOO`` names another zoo folder (as ``$TORCH_HOME`` moves torch.hub's cache).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .checkpoint_file import CheckpointError

ZOO_PREFIX = "zoo:"
ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"
INDEX_NAME = "index.json"


def default_zoo() -> Path:
    return Path(os.environ.get("MAE_TRANSFER_ZOO") or ZOO_DIR)


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_index(zoo_dir: str | Path | None = None) -> dict[str, dict]:
    """The zoo's entries by name (default: ``default_zoo()``); an empty zoo when it has no index yet."""
    path = Path(zoo_dir or default_zoo()) / INDEX_NAME
    if not path.is_file():
        return {}
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a zoo index ({exc})") from None
    if not isinstance(index, dict) or not all(isinstance(e, dict) and "file" in e for e in index.values()):
        raise CheckpointError(f"{path}: not a zoo index (each entry needs a \"file\")")
    return index


def zoo_file(reference: str, zoo_dir: str | Path | None = None) -> str:
    """The checked local file of ``zoo:NAME``."""
    name, zoo_dir = reference[len(ZOO_PREFIX):], Path(zoo_dir or default_zoo())
    index = read_index(zoo_dir)
    if name not in index:
        known = ", ".join(ZOO_PREFIX + n for n in sorted(index)) or "none yet"
        raise CheckpointError(f"{reference}: no such zoo entry (the zoo in {zoo_dir} has {known})")
    entry = index[name]
    path = Path(zoo_dir) / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"{reference}: {path} is missing (listed in {Path(zoo_dir) / INDEX_NAME})")
    if entry.get("sha256") and sha256_of(path) != entry["sha256"]:
        raise CheckpointError(f"{reference}: {path} does not match its sha256 in {Path(zoo_dir) / INDEX_NAME} "
                              "(changed or truncated)")
    return str(path)
