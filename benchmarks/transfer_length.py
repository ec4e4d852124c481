"""Does fine-tuning on fewer labelled scenes for more epochs change the order of the inits?

The paper fine-tunes Mask R-CNN for about 100 epochs of COCO; the demo's default plan runs 300 iterations of 4
images on 96 scenes (12.5 epochs). Each regime here is a grid file in benchmarks/transfer_length/ (the default
plan's grid with other scene counts and lengths), run from the zoo's released encoders like ``make demo``; the
script prints each regime's comparison table. Results: benchmarks/transfer_length.md.

    python -m benchmarks.transfer_length --out output/transfer-length [--jobs 2] [REGIME ...]
"""
from __future__ import annotations

import argparse
from pathlib import Path

from mae_transfer import grid
from mae_transfer.demo import from_zoo

REGIMES = Path(__file__).resolve().parent / "transfer_length"


def run_regime(grid_file: Path, out: Path, jobs: int) -> Path | None:
    runs = from_zoo(grid.load_grid(grid_file, out, seeds=1))
    return grid.execute(runs, out, grid_file, grid.LocalExecutor(out), jobs=jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="one folder per regime below it")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one torch thread each")
    parser.add_argument("regimes", nargs="*", help="grid file names in benchmarks/transfer_length/ (default: all)")
    args = parser.parse_args()
    names = args.regimes or sorted(path.stem for path in REGIMES.glob("*.py"))
    for name in names:
        table = run_regime(REGIMES / f"{Path(name).stem}.py", args.out / Path(name).stem, args.jobs)
        print(f"\n## {name}\n\n{table.read_text() if table else '(no transfer runs)'}", flush=True)


if __name__ == "__main__":
    main()
