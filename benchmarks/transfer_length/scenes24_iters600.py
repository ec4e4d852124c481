"""Transfer length in the paper's proportion: 24 labelled scenes, 600 iterations of 4 images (100 epochs, as the
paper fine-tunes COCO for about 100 epochs), from the zoo's encoders (benchmarks/transfer_length.py)."""
_base_ = "../../configs/grid/demo.py"

params = dict(
    num_scenes_train=24, detection_iters=600, detection_steps="[534, 578]", segmentation_iters=600,
    segmentation_warmup=30,
)
