"""``python -m alexlib.experiments figure1|figure3|figure4``: one figure's runs at a scale."""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

from .._io import results_dir
from ..config import SCALES, preset
from ..train import read_metrics
from .figure1 import REGIMES, format_figure1, run_figure1, summarise_figure1
from .figure3 import save_figure3, tower_split, train_for_kernels
from .figure4 import run_figure4, save_figure4

# ==============================================================================================
# Full-scale runs from a terminal


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m alexlib.experiments figure1|figure3|figure4 [--scale full] [--tag T]``: run one
    figure's experiment and store it under ``results/`` with provenance."""
    parser = argparse.ArgumentParser(prog="python -m alexlib.experiments", description=main.__doc__)
    parser.add_argument("figure", choices=["figure1", "figure3", "figure4"])
    parser.add_argument("--scale", default="full", choices=SCALES)
    parser.add_argument(
        "--regime",
        default=None,
        choices=sorted(REGIMES),
        help="figure1: the regime to run (default: both)",
    )
    parser.add_argument("--tag", default=None, help="results folder prefix (default: the scale)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument(
        "--runs", default=None, help="folder for the training runs' checkpoints (default: runs/)"
    )
    args = parser.parse_args(argv)
    tag = args.tag or args.scale
    started = time.perf_counter()
    runs_dir = Path(args.runs or "runs")
    if args.figure == "figure1":
        store = results_dir() / "figure1"
        regimes = [args.regime] if args.regime else ["paper", "today"]
        # every regime's ratio at its first-guess rates first, then every regime's search
        for search in (False, True):
            for regime in regimes:
                runs = run_figure1(
                    args.scale,
                    regime=regime,
                    data_root=args.data_root,
                    store=store,
                    state_dir=runs_dir / "figure1",
                    search=search,
                )
                print(f"\n{regime} regime:\n" + format_figure1(summarise_figure1(runs)))
        print("stored in", store)
    elif args.figure == "figure3":
        s = preset("figure3", args.scale)
        jobs = [("paper", seed) for seed in s["seeds"]] + [
            (v, s["seeds"][0]) for v in s["variants"]
        ]
        for variant, seed in jobs:
            trained = train_for_kernels(
                variant,
                args.scale,
                seed,
                out=runs_dir / f"figure3-{tag}-{variant}-s{seed}",
                data_root=args.data_root,
                progress=True,
            )
            if variant == "paper":
                split = tower_split(*trained["conv1"].chunk(2, dim=0))
                print(
                    f"paper seed {seed}: tower means {split['mean']}, separation "
                    f"{split['separation']:.3f}"
                )
            print("stored in", save_figure3(variant, seed, trained, tag=tag))
    else:
        seed = preset("figure3", args.scale)["seeds"][0]
        folder = (
            runs_dir / f"figure3-{tag}-paper-s{seed}"
        )  # reuse figure 3's first paper net when it is there
        trained = None
        if (folder / "checkpoint.pt").is_file():
            trained = {"out": str(folder), "metrics": read_metrics(folder)}
        result = run_figure4(
            args.scale, seed, trained=trained, data_root=args.data_root, progress=True
        )
        print(json.dumps(result["retrieval"], indent=1))
        print("stored in", save_figure4(result, tag=tag))
    print(f"{args.figure} at {args.scale} scale: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
