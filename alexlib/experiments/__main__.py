"""``python -m alexlib.experiments figure1|figure3|figure4``: one figure's runs at a scale.

Every laptop-scale result at once, in the order the book needs them: ``make laptop`` (``python -m
tools.laptop`` from a checkout of the repository: project tooling, not part of this package).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

from .._io import results_dir
from ..config import SCALES, preset
from ..data import load
from .figure1 import REGIMES, backfill_activations, format_figure1, run_figure1, summarise_figure1
from .figure3 import figure3_net
from .figure4 import figure4_result

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
        # every regime's first seed, then its further seeds (at the first-guess rates), then
        # every regime's search
        for first_seeds, search in ((1, False), (None, False), (None, True)):
            for regime in regimes:
                runs = run_figure1(
                    args.scale,
                    regime=regime,
                    data_root=args.data_root,
                    store=store,
                    state_dir=runs_dir / "figure1",
                    search=search,
                    first_seeds=first_seeds,
                )
                print(f"\n{regime} regime:\n" + format_figure1(summarise_figure1(runs)))
        data = load("cifar10", "train", root=args.data_root, progress=False)
        for regime in regimes:
            backfill_activations(args.scale, regime, store, runs_dir / "figure1", data)
        print("stored in", store)
    elif args.figure == "figure3":
        s = preset("figure3", args.scale)
        jobs = [("paper", seed) for seed in s["seeds"]] + [
            (v, s["seeds"][0]) for v in s["variants"]
        ]
        for variant, seed in jobs:
            figure3_net(variant, args.scale, seed, tag, runs_dir, args.data_root)
    else:
        figure4_result(args.scale, tag, runs_dir, args.data_root)
    print(f"{args.figure} at {args.scale} scale: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
