"""MAE paper Table 5 (ADE20K UperNet, mIoU) as a grid: ViT-B and ViT-L from MAE and supervised ImageNet-1K
init, the same schedule for both (configs/segmentation/upernet_*: mmseg's
configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py, 160k iterations).

Resources as published: 8 GPUs x 2 images (batch 16, the config name's 8xb2), 10 CPUs and 40 GB per GPU as
facebookresearch/mae's submitit launchers ask. A run that reaches the time limit is requeued and resumes from its
last checkpoint. The MAE configs read the released encoders from checkpoints/ (their ``model.pretrained``):

    mae-transfer grid configs/grid/mae_table5_ade20k.py --out output/table5 --executor slurm --partition PART
"""
resources = dict(nodes=1, gpus_per_node=8, cpus_per_task=10, mem_gb=320, timeout_min=2880)

_seeds = [0]

runs = [dict(name=f"segmentation/{arch}/{init}", kind="segment",
             config=f"configs/segmentation/upernet_{arch}_{init}_ade20k_512x512_160k.py", init=init, seeds=_seeds)
        for arch in ("vit_b", "vit_l") for init in ("mae", "supervised")]
