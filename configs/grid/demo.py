"""The demo's default plan as a grid (``make demo``: the demo reads its sizes from here): the runs of demo_quick.py,
larger and longer, one seed.

    mae-transfer grid configs/grid/demo.py --out output/grid-demo --executor local
"""
_base_ = "demo_quick.py"

seeds = 1
params = dict(
    num_pretrain=768, num_classify_val=10, num_scenes_train=96, num_scenes_val=24, num_scenes_test=24,
    mae_epochs=24, mae_warmup=2.4, supervised_epochs=8, supervised_warmup=0.8,
    detection_iters=300, detection_steps="[267, 289]", segmentation_iters=400, segmentation_warmup=20,
)
