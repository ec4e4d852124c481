"""Weights by name: a reference to pretrained weights -> a local file, through the download caches of timm,
huggingface_hub and torch.hub (nothing is cached twice; a file timm or transformers fetched before is reused).

References ``resolve_weights`` understands:

- ``timm:NAME``: the pretrained weights of a timm model name, e.g. ``timm:vit_base_patch16_224.mae`` (the official
  MAE ViT-B) or ``timm:deit_base_patch16_224.fb_in1k`` (supervised ImageNet-1K). As ``timm.create_model(NAME,
  pretrained=True)`` it takes the name's Hugging Face repo (``model.safetensors``, else ``pytorch_model.bin``), or
  its URL when it has no repo;
- ``hf:ORG/REPO[/FILE]`` (also ``hf-hub:``, timm's spelling): a file of a Hugging Face Hub model repo, by default
  ``model.safetensors``, else ``pytorch_model.bin`` (e.g. ``hf:facebook/vit-mae-base``);
- ``http://`` / ``https://`` URLs: downloaded once into torch.hub's cache (``$TORCH_HOME/hub/checkpoints``), the
  cache timm's URL weights use too;
- ``detectron2://PATH`` (the detection configs' default initial weights): as detectron2's ``Detectron2Handler``
  resolves it (``detectron2/utils/file_io.py``): ``https://dl.fbaipublicfiles.com/detectron2/PATH``, cached where
  detectron2's ``PathManager`` caches it (``$FVCORE_CACHE``, default ``~/.torch/iopath_cache``, then the URL's
  path), so a file detectron2 fetched before is reused;
- ``zoo:NAME``: an encoder of this project's own zoo (``zoo/`` at the repository root, ``backbone/zoo.py``), e.g.
  ``zoo:demo-mae``, checked against its sha256;
- ``file://`` URLs and plain paths: the file itself; a folder saved by transformers' ``save_pretrained``, timm's
  ``save_for_hf`` or ``mae-transfer export --format hf|timm``: its ``model.safetensors``, else ``pytorch_model.bin``.

Without a network (or with ``HF_HUB_OFFLINE=1``) a file not yet cached is one ``CheckpointError`` naming the URL to
fetch and the path to save it at. For the Hugging Face Hub one request without retries (``HUB_PROBE_TIMEOUT``
seconds at most) tells whether the Hub answers before anything is downloaded, so an offline machine gets that
error at once, not after huggingface_hub's retries with back-off.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import torch

from .checkpoint_file import CheckpointError
from .zoo import ZOO_PREFIX, zoo_file

HF_PREFIXES = ("hf:", "hf-hub:")
TIMM_PREFIX = "timm:"
DETECTRON2_PREFIX = "detectron2://"
DETECTRON2_URL = "https://dl.fbaipublicfiles.com/detectron2/"  # detectron2's Detectron2Handler.S3_DETECTRON2_PREFIX
HF_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")  # the names transformers and timm look for, in order
HUB_PROBE_TIMEOUT = 1.5  # seconds for the one request that tells whether the Hugging Face Hub answers
_SCHEMES = (TIMM_PREFIX, *HF_PREFIXES, DETECTRON2_PREFIX, ZOO_PREFIX, "http://", "https://", "file://")


def is_reference(path: str | Path) -> bool:
    """True for a weights reference that is not a plain path (``timm:``, ``hf:``, ``hf-hub:``, ``detectron2://``,
    ``zoo:``, a URL).
    (``Path`` keeps ``timm:`` / ``hf:`` intact but turns ``https://`` into ``https:/``: pass URLs as strings.)"""
    return str(path).startswith(_SCHEMES)


def resolve_weights(reference: str | Path) -> str:
    """The local file of a weights reference (see the module doc), downloading it into its cache if needed.

    Plain paths come back unchanged (whether the file exists is for the reader to say), a model folder as its
    weights file.
    """
    if not is_reference(reference):
        return _folder_weights(Path(reference)) if Path(reference).is_dir() else str(reference)
    reference = str(reference)
    if reference.startswith(TIMM_PREFIX):
        return _timm_file(reference)
    if reference.startswith(ZOO_PREFIX):
        return zoo_file(reference)
    if reference.startswith(HF_PREFIXES):
        repo, filename = _split_hf(reference)
        return _hf_file(reference, repo, (filename,) if filename else HF_WEIGHT_FILES)
    if reference.startswith("file://"):
        return unquote(urlparse(reference).path)
    if reference.startswith(DETECTRON2_PREFIX):
        return _detectron2_file(reference)
    return _url_file(reference, reference)


def _detectron2_file(reference: str) -> str:
    """A ``detectron2://`` file where detectron2's ``PathManager`` caches it (iopath's ``HTTPURLHandler``)."""
    url = DETECTRON2_URL + reference[len(DETECTRON2_PREFIX):].split("?")[0]  # ?matching_heuristics=True: a flag
    cache = Path(os.path.expanduser(os.getenv("FVCORE_CACHE", "~/.torch/iopath_cache")))
    return _url_file(reference, url, cache / urlparse(url).path.lstrip("/"))


def _folder_weights(folder: Path) -> str:
    """The weights file of a saved model folder, by the names transformers and timm save it under."""
    for name in HF_WEIGHT_FILES:
        if (folder / name).is_file():
            return str(folder / name)
    raise CheckpointError(f"{folder}: a folder without {' or '.join(HF_WEIGHT_FILES)}; give a checkpoint file or a "
                          "saved Hugging Face / timm model folder")


def _split_hf(reference: str) -> tuple[str, str | None]:
    """``hf:org/repo/sub/file.bin`` -> ("org/repo", "sub/file.bin"); ``hf:org/repo`` -> ("org/repo", None)."""
    parts = reference.split(":", 1)[1].strip("/").split("/")
    if len(parts) < 2 or not all(parts[:2]):
        raise CheckpointError(f"{reference}: a Hugging Face reference is hf:ORG/REPO or hf:ORG/REPO/FILE")
    return "/".join(parts[:2]), "/".join(parts[2:]) or None


def _hf_cache() -> Path:
    from huggingface_hub import constants
    return Path(constants.HF_HUB_CACHE)


def _hf_file(reference: str, repo: str, filenames: tuple[str, ...]) -> str:
    """The first of ``filenames`` in the model repo, from the Hugging Face cache or downloaded into it."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_download, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    for filename in filenames:  # a cached file is used without asking the hub (also offline)
        cached = try_to_load_from_cache(repo, filename, cache_dir=_hf_cache())
        if isinstance(cached, str):
            return cached
    for filename in filenames:
        try:
            if constants.HF_HUB_OFFLINE:
                raise ConnectionError("HF_HUB_OFFLINE is set")
            get_hf_file_metadata(hf_hub_url(repo, filename), timeout=HUB_PROBE_TIMEOUT)  # one request, no retries
            return hf_hub_download(repo, filename, cache_dir=_hf_cache())
        except EntryNotFoundError:  # the repo has no such file: try the next name
            continue
        except HfHubHTTPError as exc:  # no such repo, no access, ...
            raise CheckpointError(f"{reference}: cannot be downloaded from the Hugging Face Hub "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
        except Exception as exc:  # offline, or the hub cannot be reached (httpx, socket, timeout errors)
            reason = ("HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE
                      else f"the Hugging Face Hub cannot be reached: {type(exc).__name__}: {exc}")
            raise _not_cached(reference, hf_hub_url(repo, filename),
                              _hf_cache() / f"models--{repo.replace('/', '--')}" / "snapshots" / "main" / filename,
                              reason, alternatives=filenames[1:]) from None
    raise CheckpointError(f"{reference}: the Hugging Face repo {repo} has none of {list(filenames)}; name the "
                          f"file: hf:{repo}/FILE")


def _timm_file(reference: str) -> str:
    """The weights file of a timm pretrained name, from its Hugging Face repo or its URL (as timm loads them)."""
    from timm.models import get_pretrained_cfg, is_model

    name = reference[len(TIMM_PREFIX):]
    cfg = get_pretrained_cfg(name)
    if cfg is None or not (cfg.hf_hub_id or cfg.url or cfg.file):
        known = "a timm model without pretrained weights" if is_model(name.split(".")[0]) else "not a timm model name"
        raise CheckpointError(f"{reference}: {known}; timm.list_pretrained('{name.split('.')[0]}*') lists the "
                              "names with weights, e.g. timm:vit_base_patch16_224.mae")
    if cfg.file:
        return str(cfg.file)
    if cfg.hf_hub_id:
        files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else HF_WEIGHT_FILES
        return _hf_file(reference, cfg.hf_hub_id, files)
    return _url_file(reference, cfg.url)


def _url_file(reference: str, url: str, target: Path | None = None) -> str:
    """``url`` downloaded once into ``target``, by default torch.hub's checkpoint cache (where timm caches URL
    weights too)."""
    target = target or Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if target.is_file():
        return str(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(target), progress=False)  # writes a temporary file, then renames
    except Exception as exc:  # urllib raises many types for one cause: the file cannot be fetched
        raise _not_cached(reference, url, target, f"{type(exc).__name__}: {exc}") from None
    return str(target)


def _not_cached(reference: str, url: str, target: Path, reason: str, alternatives=()) -> CheckpointError:
    other = f" (or {', '.join(alternatives)} in the same folder if the repo has no {target.name})" if alternatives else ""
    reason = reason.splitlines()[0] if reason else "no network"
    return CheckpointError(f"{reference}: not in the local cache and cannot be downloaded ({reason}); fetch {url} "
                           f"and save it as {target}{other}, or pass the local file's path instead")
