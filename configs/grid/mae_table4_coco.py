"""MAE paper Table 4 (COCO Mask R-CNN, APbox / APmask) as a grid: ViT-B and ViT-L from MAE, supervised
ImageNet-1K and random init, with ViTDet's recipes (configs/detection/mask_rcnn_vit_*; ViTDet paper Table 4 and
Table 11 for the baselines; the random-init row is ViTDet's, not in the MAE paper's table).

Resources as published: 64 GPUs (8 nodes x 8), one image per GPU (batch 64; detectron2 projects/ViTDet README),
10 CPUs and 40 GB per GPU as facebookresearch/mae's submitit launchers ask. A run that reaches the time limit is
requeued and resumes from its last checkpoint. The initial weights are the configs' own (the MAE release, timm's
DeiT / DeiT III); ``seeds`` adds runs (the ViTDet README gives a seed-to-seed std of 0.1 AP):

    mae-transfer grid configs/grid/mae_table4_coco.py --out output/table4 --executor slurm --partition PART
"""
resources = dict(nodes=8, gpus_per_node=8, cpus_per_task=10, mem_gb=320, timeout_min=2880)

_inits = ("mae", "supervised", "random")
_seeds = [0]

runs = [dict(name=f"detection/{arch}/{init}", kind="detect", config=f"configs/detection/mask_rcnn_{arch}_{init}.py",
             init=init, seeds=_seeds)
        for arch in ("vit_b", "vit_l") for init in _inits]
