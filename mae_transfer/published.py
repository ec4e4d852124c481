"""Every published number the comparison shows, as data: one row per number, written exactly as its source prints it.

The sources are the tables named in each row (MAE paper arXiv 2111.06377, ViTDet paper arXiv 2203.16527, the
READMEs of detectron2's projects/ViTDet and mmseg's configs/mae); docs/recipes.md §6 shows the same tables.
``PUBLISHED`` flattens the tables below into one ``Published`` per number.
``arch`` and ``init`` use the names run records use (``backbone.VIT_SIZES`` keys; ``mae``, ``supervised``,
``random``, ...), ``metric`` the run-record metric names (``APbox``, ``APmask``, ``mIoU``, ``top1``), so a run
and its published counterpart meet on equal keys. Within one source, the headline number of a setting comes
first (single-scale before multi-scale, 224 px before 448 px).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    text: str       # the number as printed: "51.2", "48.13"
    metric: str
    arch: str
    init: str
    dataset: str    # "COCO", "ADE20K", "ImageNet-1K"
    task: str       # run-record task it compares with
    source: str     # short tag: "ViTDet paper T4"
    note: str = ""  # protocol detail that sets this number apart

    @property
    def value(self) -> float:
        return float(self.text)


ARCHS = ("vit_base", "vit_large", "vit_huge")

# COCO Mask R-CNN, APbox / APmask.
#  init          vit_base       vit_large      vit_huge       source                      note
COCO_MASK_RCNN = [
    ("supervised", "47.9 / 42.9", "49.3 / 43.9", None,          "MAE paper T4",             "FPN over 4 block groups"),
    ("mae",        "50.3 / 44.9", "53.3 / 47.2", None,          "MAE paper T4",             "FPN over 4 block groups"),
    ("supervised", "47.6 / 42.4", "49.6 / 43.8", None,          "ViTDet paper T4",          "no rel-pos"),
    ("random",     "48.1 / 42.6", "50.0 / 44.2", None,          "ViTDet paper T4",          "no rel-pos"),
    ("mae",        "51.2 / 45.5", "54.6 / 48.6", None,          "ViTDet paper T4",          "no rel-pos"),
    ("mae",        "51.6 / 45.9", "55.5 / 49.2", "56.7 / 50.2", "detectron2 ViTDet README", "ViTDet configs (rel-pos)"),
]

# ADE20K UperNet, mIoU.
#  init          vit_base  vit_large  source              note
ADE20K_UPERNET = [
    ("supervised", "47.4",   "49.9",    "MAE paper T5",     ""),
    ("mocov3",     "47.3",   "49.1",    "MAE paper T5",     ""),
    ("beit",       "47.1",   "53.3",    "MAE paper T5",     ""),
    ("mae",        "48.1",   "53.6",    "MAE paper T5",     ""),
    ("mae",        "48.13",  None,      "mmseg MAE config", "single-scale"),
    ("mae",        "48.70",  None,      "mmseg MAE config", "multi-scale"),
]

# ImageNet-1K top-1 of MAE-pretrained encoders: fine-tuning from MAE paper Table 3; linear probe the paper's, as
# facebookresearch/mae FINETUNE.md's "paper (TF/TPU)" row gives them.
#  task        vit_base  vit_large  vit_huge  note
IMAGENET_TOP1 = [
    ("finetune", "83.6",   "85.9",    "86.9",   ""),
    ("finetune", None,     None,      "87.8",   "448 px input"),
    ("linprobe", "68.0",   "75.8",    "76.6",   ""),
]

# Cost and noise figures: numbers a run record does not carry, kept here so every published number has one home.
# MAE paper Table 2 (wall-clock, speed-ups) and Sec. 4.1 (encoder FLOPs); detectron2 projects/ViTDet/README.md
# (memory, train time per image at one image per GPU, seed-to-seed standard deviation on COCO).
#  text     metric                      arch         init   dataset        task          source                      note
COSTS = [
    ("42.4",  "pretrain_hours",           "vit_large", "mae", "ImageNet-1K", "pretrain",   "MAE paper",
     "800 epochs, 128 TPU-v3 cores, encoder with mask tokens"),
    ("15.4",  "pretrain_hours",           "vit_large", "mae", "ImageNet-1K", "pretrain",   "MAE paper",
     "800 epochs, 128 TPU-v3 cores, no mask tokens in the encoder, 8-block decoder"),
    ("11.6",  "pretrain_hours",           "vit_large", "mae", "ImageNet-1K", "pretrain",   "MAE paper",
     "800 epochs, 128 TPU-v3 cores, no mask tokens in the encoder, 1-block decoder"),
    ("2.8",   "pretrain_speedup",         "vit_large", "mae", "ImageNet-1K", "pretrain",   "MAE paper",
     "vs encoder with mask tokens; 8-block decoder"),
    ("3.7",   "pretrain_speedup",         "vit_large", "mae", "ImageNet-1K", "pretrain",   "MAE paper",
     "vs encoder with mask tokens; 1-block decoder"),
    ("3.5",   "pretrain_speedup",         "vit_huge",  "mae", "ImageNet-1K", "pretrain",   "MAE paper",
     "vs encoder with mask tokens; 8-block decoder"),
    ("4.1",   "pretrain_speedup",         "vit_huge",  "mae", "ImageNet-1K", "pretrain",   "MAE paper",
     "vs encoder with mask tokens; 1-block decoder"),
    ("3.3",   "encoder_flops_ratio",      "vit_large", "mae", "ImageNet-1K", "pretrain",   "MAE paper",
     "encoder FLOPs with mask tokens / without"),
    ("10.9",  "train_memory_gb_per_gpu",  "vit_base",  "mae", "COCO",        "detection",  "detectron2 ViTDet README",
     "ViTDet Mask R-CNN, A100"),
    ("0.314", "train_seconds_per_iter",   "vit_base",  "mae", "COCO",        "detection",  "detectron2 ViTDet README",
     "ViTDet Mask R-CNN, A100"),
    ("0.1",   "seed_std_AP",              "vit_base",  "mae", "COCO",        "detection",  "detectron2 ViTDet README",
     "seed-to-seed std of APbox and APmask, about"),
]


def _flatten() -> tuple[Published, ...]:
    rows = []
    for init, *by_arch, source, note in COCO_MASK_RCNN:
        for arch, pair in zip(ARCHS, by_arch):
            if pair is not None:
                box, mask = pair.split(" / ")
                rows += [Published(box, "APbox", arch, init, "COCO", "detection", source, note),
                         Published(mask, "APmask", arch, init, "COCO", "detection", source, note)]
    for init, *by_arch, source, note in ADE20K_UPERNET:
        for arch, text in zip(ARCHS, by_arch):
            if text is not None:
                rows.append(Published(text, "mIoU", arch, init, "ADE20K", "segmentation", source, note))
    for task, *by_arch, note in IMAGENET_TOP1:
        for arch, text in zip(ARCHS, by_arch):
            if text is not None:
                rows.append(Published(text, "top1", arch, "mae", "ImageNet-1K", task, "MAE paper", note))
    rows += [Published(*row) for row in COSTS]
    return tuple(rows)


PUBLISHED = _flatten()

# The source that fills a table's paper columns, first one that has the setting: one protocol for every init
# where possible (ViTDet T4 and MAE T5 cover MAE, supervised and the other inits alike); the rest are listed
# under the table.
PAPER_COLUMN_SOURCES = {
    "detection": ("ViTDet paper T4", "detectron2 ViTDet README", "MAE paper T4"),
    "segmentation": ("MAE paper T5", "mmseg MAE config"),
    "finetune": ("MAE paper",),
    "linprobe": ("MAE paper",),
}

# The data set each task's published numbers were measured on, and how run records name it.
PAPER_DATASETS = {
    "detection": ("COCO", ("coco",)),
    "segmentation": ("ADE20K", ("ade20k", "adechallenge")),
    "finetune": ("ImageNet-1K", ("imagenet", "in1k")),
    "linprobe": ("ImageNet-1K", ("imagenet", "in1k")),
}


def published(task: str, arch: str, init: str, metric: str | None = None) -> list[Published]:
    """All published numbers for one setting, in table order."""
    return [p for p in PUBLISHED if p.task == task and p.arch == arch and p.init == init
            and (metric is None or p.metric == metric)]


def paper_column(task: str, arch: str, init: str) -> dict[str, Published]:
    """The numbers shown in a table's paper columns for one setting: metric -> number, all from one source."""
    for source in PAPER_COLUMN_SOURCES.get(task, ()):
        chosen: dict[str, Published] = {}
        for p in published(task, arch, init):
            if p.source == source:
                chosen.setdefault(p.metric, p)
        if chosen:
            return chosen
    return {}


def paper_dataset(task: str) -> str | None:
    return PAPER_DATASETS.get(task, (None, ()))[0]


def is_paper_dataset(task: str, dataset: str) -> bool:
    """Whether a run's data set is the one the published numbers were measured on (never a generated one)."""
    name = dataset.lower()
    if name.startswith("synthetic"):
        return False
    return any(name.startswith(prefix) for prefix in PAPER_DATASETS.get(task, (None, ()))[1])
