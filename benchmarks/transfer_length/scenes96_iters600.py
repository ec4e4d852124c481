"""The demo's 96 labelled scenes for 600 iterations of 4 images (25 epochs): the longer run without fewer scenes,
from the zoo's encoders (benchmarks/transfer_length.py)."""
_base_ = "../../configs/grid/demo.py"

params = dict(
    detection_iters=600, detection_steps="[534, 578]", segmentation_iters=600, segmentation_warmup=30,
)
