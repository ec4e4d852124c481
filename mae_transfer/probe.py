"""What a frozen demo encoder knows: k-NN and linear-probe accuracy on the generated classification set, and a
linear probe of its patch features for the semantic classes of the ADE20K-format scenes.

    python -m mae_transfer.probe --data output/demo/data \
        --encoder mae=output/demo/pretrain/mae_encoder.pth --encoder supervised=output/demo/supervised/supervised_vit.pth \
        --encoder random=random [--encoder mae@276=/path/to/an_export.pth ...] [--json out.json]

Every encoder is loaded into ``backbone.ViT`` exactly as the dense backbones are built (the demo_tiny encoder:
192 wide, 4 blocks, patch 16, 128 px, global attention; ``random`` is that model's own initialisation, seed 0)
through ``backbone.load_pretrained``, so the features probed are the ones Mask R-CNN and UperNet start from:
block outputs, no cls token, no final norm.

- image level (the classify folders, one centred object per image): the patch tokens of the last block averaged,
  standardised with the training set's statistics; k-NN (k = 20, cosine, votes weighted exp(sim / 0.07), as
  DINO's evaluation) and a linear probe (multinomial logistic regression, full batch, L-BFGS), top-1 %;
- patch level (the ADE scenes): each 16 px patch labelled with its majority semantic class (patches whose
  majority covers less than half the patch are left out), the four blocks' outputs concatenated (UperNet's
  input), a linear probe trained on the training scenes; recall per class on the validation scenes, averaged
  over the thing (object) classes and over the stuff (background) classes;
- the root-mean-square of each block's output on the held-out images: the scale the dense heads receive.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from backbone import ViT, load_pretrained

MEAN, STD = np.array((0.485, 0.456, 0.406)), np.array((0.229, 0.224, 0.225))
DEMO_ENCODER = dict(img_size=128, patch_size=16, embed_dim=192, depth=4, num_heads=3, pretrain_img_size=128,
                    out_indices=(0, 1, 2, 3))


def build_encoder(path: str, seed: int = 0) -> ViT:
    torch.manual_seed(seed)
    model = ViT(**DEMO_ENCODER)
    if path != "random":
        report = load_pretrained(model, path, log=False)
        if report.missing or report.unexpected:
            sys.exit(f"{path}: not a demo encoder (missing {report.missing[:3]}, unexpected {report.unexpected[:3]})")
    return model.eval()


def _image(path: Path) -> torch.Tensor:
    with Image.open(path) as img:
        array = (np.asarray(img.convert("RGB"), np.float32) / 255 - MEAN) / STD
    return torch.from_numpy(array.astype(np.float32)).permute(2, 0, 1)


@torch.no_grad()
def block_features(model: ViT, files: list[Path], batch: int = 64) -> list[torch.Tensor]:
    """Per block, (N, C, h, w) outputs for the images."""
    out = [[] for _ in model.out_indices]
    for i in range(0, len(files), batch):
        for k, feat in enumerate(model(torch.stack([_image(f) for f in files[i:i + batch]]))):
            out[k].append(feat)
    return [torch.cat(o) for o in out]


def classify_files(root: Path) -> tuple[list[Path], torch.Tensor]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    pairs = [(f, k) for k, c in enumerate(classes) for f in sorted((root / c).glob("*.png"))]
    return [f for f, _ in pairs], torch.tensor([k for _, k in pairs])


def standardise(train: torch.Tensor, val: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(0), train.std(0) + 1e-6
    return (train - mean) / std, (val - mean) / std


def knn_top1(train: torch.Tensor, train_y: torch.Tensor, val: torch.Tensor, val_y: torch.Tensor,
             k: int = 20, temperature: float = 0.07) -> float:
    sim = F.normalize(val, dim=1) @ F.normalize(train, dim=1).T
    top, idx = sim.topk(min(k, len(train)), dim=1)
    votes = torch.zeros(len(val), int(train_y.max()) + 1).scatter_add_(1, train_y[idx], (top / temperature).exp())
    return 100.0 * (votes.argmax(1) == val_y).float().mean().item()


def linear_probe(train: torch.Tensor, train_y: torch.Tensor, val: torch.Tensor, steps: int = 200,
                 weight_decay: float = 1e-4) -> torch.Tensor:
    """Predicted classes of ``val`` from a logistic regression fitted on ``train`` (full batch, L-BFGS)."""
    torch.manual_seed(0)
    head = torch.nn.Linear(train.shape[1], int(train_y.max()) + 1)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=steps, history_size=20,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(head(train), train_y) + weight_decay * head.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return head(val).argmax(1)


def patch_labels(label_files: list[Path], patch: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """(N*h*w,) majority semantic class per patch (0-based), and whether that majority covers half the patch."""
    labels, keep = [], []
    for f in label_files:
        lab = np.asarray(Image.open(f))
        h, w = lab.shape[0] // patch, lab.shape[1] // patch
        blocks = lab[:h * patch, :w * patch].reshape(h, patch, w, patch).transpose(0, 2, 1, 3).reshape(h * w, -1)
        counts = np.stack([(blocks == c).sum(1) for c in range(1, int(lab.max(initial=0)) + 2)], 1)
        labels.append(counts.argmax(1))
        keep.append(counts.max(1) >= patch * patch / 2)
    return torch.from_numpy(np.concatenate(labels)), torch.from_numpy(np.concatenate(keep))


def patch_probe(model: ViT, ade_root: Path, num_things: int, num_classes: int) -> dict[str, float]:
    split_data = {}
    for split in ("training", "validation"):
        images = sorted((ade_root / "images" / split).glob("*.jpg"))
        labels = [ade_root / "annotations" / split / f"{f.stem}.png" for f in images]
        feats = torch.cat(block_features(model, images), 1)  # (N, 4C, h, w)
        feats = feats.permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
        y, keep = patch_labels(labels)
        split_data[split] = (feats[keep], y[keep])
    (train, train_y), (val, val_y) = split_data["training"], split_data["validation"]
    train, val = standardise(train, val)
    pred = linear_probe(train, train_y, val, steps=100)
    recall = {c: (pred[val_y == c] == c).float().mean().item() * 100 for c in range(num_classes) if (val_y == c).any()}
    things = [r for c, r in recall.items() if c < num_things]
    stuff = [r for c, r in recall.items() if c >= num_things]
    return {"patch_thing_recall": float(np.mean(things)), "patch_stuff_recall": float(np.mean(stuff)),
            "patch_accuracy": 100.0 * (pred == val_y).float().mean().item(), "train_patches": len(train_y)}


def probe(path: str, data: Path) -> dict[str, float]:
    from mae_transfer.synthetic import SEMANTIC_CLASSES, THING_CLASSES

    model = build_encoder(path)
    train_files, train_y = classify_files(data / "classify" / "train")
    val_files, val_y = classify_files(data / "classify" / "val")
    train = block_features(model, train_files)[-1].mean((2, 3))
    val_blocks = block_features(model, val_files)
    val = val_blocks[-1].mean((2, 3))
    # the scale of what the dense heads receive (they normalise it: LN in ViTDet's pyramid, BN in UperNet's)
    rms = [round(block.pow(2).mean().sqrt().item(), 3) for block in val_blocks]
    train, val = standardise(train, val)
    result = {"knn_top1": knn_top1(train, train_y, val, val_y),
              "linear_top1": 100.0 * (linear_probe(train, train_y, val) == val_y).float().mean().item()}
    result["block_rms"] = rms
    result.update(patch_probe(model, data / "ade" / "ADEChallengeData2016", len(THING_CLASSES), len(SEMANTIC_CLASSES)))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="a mae_transfer.synthetic generation")
    parser.add_argument("--encoder", action="append", required=True, metavar="NAME=PATH",
                        help="an encoder file (or 'random'); repeat for several")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = {}
    print("| encoder | k-NN top-1 | linear top-1 | patch recall, things | patch recall, stuff | patch acc. | "
          "RMS of blocks 1-4 |")
    print("|---|---|---|---|---|---|---|")
    for spec in args.encoder:
        name, _, path = spec.partition("=")
        rows[name] = probe(path, args.data)
        r = rows[name]
        print(f"| {name} | {r['knn_top1']:.1f} | {r['linear_top1']:.1f} | {r['patch_thing_recall']:.1f} | "
              f"{r['patch_stuff_recall']:.1f} | {r['patch_accuracy']:.1f} | "
              f"{' '.join(map(str, r['block_rms']))} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
