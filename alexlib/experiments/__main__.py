"""``python -m alexlib.experiments figure1|figure3|figure4``: one figure's runs at a scale.

Every laptop-scale result at once, in the order the book needs them: ``python -m alexlib laptop``
(:mod:`alexlib.tools.laptop`).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from .._io import results_dir, write_json
from ..config import SCALES, preset
from ..data import load
from ..evaluate import predict, topk_errors
from ..train import read_metrics
from .figure1 import REGIMES, backfill_activations, format_figure1, run_figure1, summarise_figure1
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


def figure3_net(variant: str, scale: str, seed: int, tag: str, runs_dir: Path, data_root) -> Path:
    """One Figure 3 net: trained (or resumed) in ``runs_dir``, its kernels and curves stored under
    ``results/figure3``, and for the paper net its validation predictions (centre crop and ten
    views: ``val_probs.pt``, ``views.json``), which the evaluation chapter reads."""
    stored = results_dir() / "figure3" / f"{tag}-{variant}-s{seed}"
    if (stored / "conv1.pt").is_file() and (
        variant != "paper" or (stored / "views.json").is_file()
    ):
        print(f"figure3 {variant} seed {seed}: stored before ({stored})")
        return stored
    trained = train_for_kernels(
        variant,
        scale,
        seed,
        out=runs_dir / f"figure3-{tag}-{variant}-s{seed}",
        data_root=data_root,
        progress=True,
    )
    folder = save_figure3(variant, seed, trained, tag=tag)
    if variant == "paper":
        split = tower_split(*trained["conv1"].chunk(2, dim=0))
        print(
            f"paper seed {seed}: tower means {split['mean']}, separation {split['separation']:.3f}"
        )
        settings = trained["settings"]
        val = settings.load_split("val", progress=False)
        probs = {
            v: predict(trained["model"], val.images, trained["stats"], views=v, crop=settings.crop)
            for v in ("center", "ten")
        }
        torch.save({"labels": val.labels.clone(), **probs}, folder / "val_probs.pt")
        views = {v: topk_errors(p, val.labels) for v, p in probs.items()}
        write_json(folder / "views.json", {**views, "val_images": len(val), "classes": val.classes})
    print("stored in", folder)
    return folder


def figure4_result(scale: str, tag: str, runs_dir: Path, data_root) -> Path | None:
    seed = preset("figure3", scale)["seeds"][0]
    if (results_dir() / "figure4" / f"{tag}-s{seed}").is_dir():
        print(f"figure4 seed {seed}: stored before")
        return None
    folder = runs_dir / f"figure3-{tag}-paper-s{seed}"  # reuse figure 3's first paper net
    trained = None
    if (folder / "checkpoint.pt").is_file():
        trained = {"out": str(folder), "metrics": read_metrics(folder)}
    result = run_figure4(scale, seed, trained=trained, data_root=data_root, progress=True)
    print(json.dumps(result["retrieval"], indent=1))
    where = save_figure4(result, tag=tag)
    print("stored in", where)
    return where


if __name__ == "__main__":
    main()
