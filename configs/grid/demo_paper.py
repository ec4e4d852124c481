"""The demo's paper plan as a grid (``mae-transfer demo --plan paper``: the demo reads its sizes from here): the
runs of demo_quick.py in the paper's proportions, pretraining on 10x more images than each transfer set, 3 seeds.

    mae-transfer grid configs/grid/demo_paper.py --out output/grid-paper --executor local
"""
_base_ = "demo_quick.py"

seeds = 3
params = dict(
    num_pretrain=2048, num_classify_val=20, num_scenes_train=192, num_scenes_val=48, num_scenes_test=48,
    mae_epochs=24, mae_warmup=2.4, supervised_epochs=6, supervised_warmup=0.6,
    detection_iters=400, detection_steps="[356, 385]", segmentation_iters=600, segmentation_warmup=30,
)
