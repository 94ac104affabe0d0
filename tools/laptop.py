"""Every laptop-scale result the book shows, in the order the book misses them most: Figure 1's
ratios at the first-guess rates (both regimes' first seed, then the further seeds); the Imagenette
net of chapters 8, 9, 11 and 12 with Figure 4; the ledger's CIFAR-10 ablations seed by seed; then
Figure 1's learning-rate search and Figure 3's further seeds. The stored runs add up to about 18
hours of training on 2 CPU cores, much of it with two runs sharing them.

    python -m tools.laptop [--root DATA] [--runs runs]     # or: make laptop

Every step is resumable: run the same command again after an interruption and finished work is
read back, unfinished work continued from its last epoch.
"""

from __future__ import annotations

import sys
from pathlib import Path

from alexlib._io import results_dir
from alexlib.config import preset
from alexlib.engine import cpu_has_bf16
from alexlib.experiments import (
    figure3_net,
    figure4_result,
    format_figure1,
    run_figure1,
    summarise_figure1,
)
from alexlib.ledger import ABLATIONS, LAPTOP_6B, finished_runs, run_ledger
from alexlib.train import machine_name, run_arithmetic, stored_runs

from . import Parser, run_command

__all__ = ["laptop", "laptop_plan", "main"]


def _stored(runs: list[dict], planned: int) -> str:
    """``runs``' measured training time and machines, against the ``planned`` number of runs."""
    if not runs:
        return f"{planned} runs, none stored yet (not measured on this machine either)"
    minutes = sum(r["wall_s"] for r in runs) / 60
    machines = ", ".join(sorted({machine_name(r["provenance"]) for r in runs}))
    left = max(planned - len(runs), 0)
    todo = (
        f"; {left} of {planned} still to run"
        if left
        else f"; all {planned} planned stored: read back, not retrained"
    )
    said = sorted({a for a in map(run_arithmetic, runs) if a})  # as chapter cost tables say it
    lacks = (
        ": this CPU has no bf16 instructions, so it trains them in fp32 and takes longer "
        "(benchmarks/bench_cpu.py measures by how much)"
        if "bf16" in said and not cpu_has_bf16()
        else ""
    )
    return (
        f"{len(runs)} run{'s' * (len(runs) != 1)} stored, {minutes:.0f} min of training in all "
        f"({minutes / len(runs):.0f} min a run) on {machines}"
        f"{', in ' + ' and '.join(said) if said else ''}{lacks}{todo}"
    )


def laptop_plan() -> list[str]:
    """What ``laptop`` will do, step by step, with the training time each step's stored runs took
    and the machine that took it (read from their provenance, never typed)."""
    fig1 = stored_runs("figure1", "laptop-")
    firsts = preset("figure1", "laptop")["lrs"]
    at_first = [
        r
        for r in fig1
        if r["settings"]["lr"] == firsts[r["settings"]["regime"]][r["settings"]["activation"]][0]
    ]
    search = [r for r in fig1 if r not in at_first]
    seeds = len(preset("figure1", "laptop")["seeds"])
    ledger = finished_runs(None, "laptop")
    ledger_runs = [r for by_seed in ledger.values() for r in by_seed.values()]
    ledger_planned = len(ABLATIONS) * preset("ledger", "laptop")["seeds"]
    f3 = stored_runs("figure3", "laptop-paper-")
    f4 = stored_runs("figure4", "laptop-")
    f3_seeds = len(preset("figure3", "laptop")["seeds"])
    six_b = finished_runs(results_dir() / LAPTOP_6B, "laptop")
    six_b_runs = [r for by_seed in six_b.values() for r in by_seed.values()]
    six_b_planned = 2 * preset("ledger-laptop-6b", "laptop")["seeds"]
    return [
        f"1. Figure 1 at the first-guess rates, both regimes: {_stored(at_first, 4 * seeds)}",
        f"2. the Imagenette net (chapters 8, 9, 11, 12): {_stored(f3[:1], 1)}",
        "3. Figure 4 from that net (no training of its own): "
        + ("stored: read back" if f4 else "to compute once the net is stored"),
        f"4. the ledger's CIFAR-10 ablations, seed by seed: {_stored(ledger_runs, ledger_planned)}",
        f"5. Figure 1's learning-rate search: {_stored(search, 8)}",
        f"6. Figure 3's further seeds: {_stored(f3[1:], f3_seeds - 1)}",
        "7. claim 6b at a constant rate, base and no-dropout, until each levels off: "
        + _stored(six_b_runs, six_b_planned),
    ]


def laptop(runs_dir: Path = Path("runs"), data_root=None) -> None:
    """Every laptop-scale result, most missed first (see the module's docstring); resumable. It
    prints its plan first, with the measured time of each step's stored runs."""
    print("The laptop-scale results, in order (times: the stored runs' own):", flush=True)
    for line in laptop_plan():
        print("  " + line, flush=True)
    store = results_dir() / "figure1"

    def figure1(search: bool, first_seeds: int | None = None) -> None:
        for regime in ("paper", "today"):
            runs = run_figure1(
                "laptop",
                regime=regime,
                data_root=data_root,
                store=store,
                state_dir=runs_dir / "figure1",
                search=search,
                first_seeds=first_seeds,
            )
            print(f"\n{regime} regime:\n" + format_figure1(summarise_figure1(runs)), flush=True)

    figure1(search=False, first_seeds=1)  # both regimes' first seed
    figure1(search=False)
    seeds = preset("figure3", "laptop")["seeds"]
    figure3_net("paper", "laptop", seeds[0], "laptop", runs_dir, data_root)
    figure4_result("laptop", "laptop", runs_dir, data_root)
    for job in run_ledger("laptop", data_root=data_root, device="cpu"):
        print(f"ledger {job['ablation']} seed {job['seed']}: {job['status']}", flush=True)
    figure1(search=True)
    for seed in seeds[1:]:
        figure3_net("paper", "laptop", seed, "laptop", runs_dir, data_root)
    six_b = run_ledger(
        "laptop",
        experiment="ledger-laptop-6b",
        only=["base", "no-dropout"],
        data_root=data_root,
        device="cpu",
    )
    for job in six_b:
        print(f"ledger 6b {job['ablation']} seed {job['seed']}: {job['status']}", flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.laptop [--root DATA] [--runs runs]``: :func:`laptop`."""
    p = Parser(
        prog="python -m tools.laptop",
        description="every laptop-scale result the book shows (about 18 h on 2 cores; resumable)",
    )
    p.add_argument(
        "--root", help="data root (default: $ALEXLIB_DATA, else the per-user cache folder)"
    )
    p.add_argument(
        "--runs", default="runs", help="folder for the runs' checkpoints (default runs/)"
    )

    def run(args) -> int:
        laptop(Path(args.runs), data_root=args.root)
        return 0

    return run_command(p, run, argv)


if __name__ == "__main__":
    sys.exit(main())
