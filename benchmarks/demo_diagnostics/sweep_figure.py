"""Draws figures/transfer_sweep.png from the numbers of README.md section 6 (each one run's logged result).

    PYTHONPATH=. python -m benchmarks.demo_diagnostics.sweep_figure
"""
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
# UperNet, 64-channel heads: mIoU and the mean IoU of the 6 object classes at 200 / 400 / 600 iterations
SEGMENTATION = {  # (lr, init): (mIoU at 200, 400, 600), (object-class IoUs at 600)
    ("1e-3", "mae"): ((22.43, 28.41, 36.93), (0.0, 3.73, 0.0, 0.0, 14.0, 0.0)),
    ("1e-3", "random"): ((22.96, 32.35, 35.97), (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)),
    ("3e-3", "mae"): ((23.02, 29.37, 34.47), (0.0, 8.39, 1.48, 0.0, 15.92, 0.0)),
    ("3e-3", "random"): ((18.99, 28.32, 34.32), (0.65, 0.0, 5.02, 0.0, 11.31, 0.0)),
}
# Mask R-CNN, 32 RoIs per image, 600 iterations: (APbox, APmask)
DETECTION = {
    "MAE init,\nMAE recipe": (10.72, 6.98),
    "MAE init,\nno layer decay": (15.46, 13.74),
    "MAE init,\nrandom's recipe": (20.53, 14.47),
    "random init,\nrandom's recipe": (20.71, 20.03),
}


def main() -> None:
    fig, (a, b, c) = plt.subplots(1, 3, figsize=(15, 4.2))
    for (lr, init), (miou, objects) in SEGMENTATION.items():
        a.plot((200, 400, 600), miou, marker="o", linestyle="-" if init == "mae" else "--",
               color="C0" if lr == "1e-3" else "C1", label=f"{init}, lr {lr}")
    a.set(title="UperNet: mIoU over iterations", xlabel="iteration", ylabel="mIoU")
    a.legend()
    labels = [f"{init}\nlr {lr}" for lr, init in SEGMENTATION]
    b.bar(labels, [sum(o) / 6 for _, o in SEGMENTATION.values()], color=["C0", "C0", "C1", "C1"])
    b.set(title="UperNet: mean IoU of the 6 object classes at 600", ylabel="IoU")
    x = range(len(DETECTION))
    b_box = [v[0] for v in DETECTION.values()]
    b_mask = [v[1] for v in DETECTION.values()]
    c.bar([i - 0.2 for i in x], b_box, width=0.4, label="APbox")
    c.bar([i + 0.2 for i in x], b_mask, width=0.4, label="APmask")
    c.set_xticks(list(x), list(DETECTION), fontsize=8)
    c.set(title="Mask R-CNN at 600 iterations: init and recipe", ylabel="AP")
    c.legend()
    fig.suptitle("Demo-scale transfer runs, seed 0 (benchmarks/demo_diagnostics/README.md section 6)")
    fig.tight_layout()
    out = HERE / "figures" / "transfer_sweep.png"
    fig.savefig(out, dpi=90)
    print(out)


if __name__ == "__main__":
    main()
