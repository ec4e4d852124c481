#!/usr/bin/env bash
# Build .venv from nothing, idempotently: a second run with nothing changed says so and does nothing.
# Uses only the package registries and the torch wheels on the local disk.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
STAMP=$VENV/.mae-transfer-setup
WANT=$(cat pyproject.toml scripts/setup_venv.sh | sha256sum | cut -d' ' -f1)

check() {  # import each framework in turn so that a failure names the package that broke
    "$VENV/bin/python" -W ignore - <<'PY'
import importlib, sys


def load(mod):
    if mod == "mmseg.models":  # imports mmcv.ops: with mmcv-lite, inside the project's stand-in, as every run does
        with importlib.import_module("segmentation").framework_patches():
            return importlib.import_module(mod)
    return importlib.import_module(mod)


failed = []
for mod in ("torch", "torchvision", "timm", "pycocotools.coco", "detectron2.modeling", "mmengine", "segmentation",
            "mmseg.models", "backbone"):
    try:
        load(mod)
    except Exception as exc:
        failed.append(mod)
        print(f"setup: FAILED to import {mod}: {type(exc).__name__}: {exc}", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && check; then
    echo "setup: $VENV is up to date (nothing to do)"
    exit 0
fi

echo "setup: building $VENV with $($PY --version)"
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip --disable-pip-version-check -q"
$PIP install --upgrade pip wheel
# 1. torch first, on its own: pip takes these exact builds from the machine's disk.
$PIP install torch==2.14.1 torchvision==0.29.1

# 2. detectron2 is not on PyPI under its own name. sal-detectron2==0.7.2 is upstream detectron2
#    (April 2024) as a pure-Python wheel whose file name says cp310 and whose WHEEL file says
#    cp310-cp310-linux_x86_64 (so `wheel tags` refuses it). Its compiled _C ops are absent, which
#    Mask R-CNN does not need. We unpack it, declare it pure Python for any Python 3, and repack.
D2_DIR=.cache/wheels
D2_WHEEL=$D2_DIR/sal_detectron2-0.7.2-py3-none-any.whl
if [ ! -f "$D2_WHEEL" ]; then
    tmp=$(mktemp -d)
    $PIP download --no-deps --only-binary=:all: --python-version 3.10 sal-detectron2==0.7.2 -d "$tmp/dl"
    "$VENV/bin/python" -m wheel unpack -d "$tmp/unpacked" "$tmp"/dl/sal_detectron2-*.whl
    sed -i -e 's/^Tag: .*/Tag: py3-none-any/' -e 's/^Root-Is-Purelib: .*/Root-Is-Purelib: true/' \
        "$tmp"/unpacked/sal_detectron2-0.7.2/sal_detectron2-0.7.2.dist-info/WHEEL
    mkdir -p "$D2_DIR"
    "$VENV/bin/python" -m wheel pack -d "$D2_DIR" "$tmp/unpacked/sal_detectron2-0.7.2"
    rm -rf "$tmp"
fi

# 3. Everything else in one resolver call, so numpy/opencv/detectron2 agree (numpy<2 from detectron2).
$PIP install "$D2_WHEEL" -e ".[test,bench]"

check || { echo "setup: the environment is broken (see above)" >&2; exit 1; }
echo "$WANT" > "$STAMP"
echo "setup: $VENV ready"
