"""Transfer length between the demo's and the paper's proportion: 48 labelled scenes, 600 iterations of 4 images
(50 epochs), from the zoo's encoders (benchmarks/transfer_length.py)."""
_base_ = "../../configs/grid/demo.py"

params = dict(
    num_scenes_train=48, detection_iters=600, detection_steps="[534, 578]", segmentation_iters=600,
    segmentation_warmup=30,
)
