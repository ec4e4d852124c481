"""The demo's quick plan with the smallest recipe search that still chooses: two points per init and task (lr
only), for the end-to-end test of ``demo --recipe-search``."""
_base_ = "../../../configs/grid/demo_quick.py"

search = dict(
    detect=dict(lr=[1e-4, 2e-4], layer_decay=[1.0]),
    segment=dict(lr=[1e-3, 2e-3], layer_decay=[0.65]),
)
