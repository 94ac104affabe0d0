"""Every laptop-scale result the book shows, in the order the book misses them most: Figure 1's
ratios at the first-guess rates (both regimes' first seed, then the further seeds); the Imagenette
net of chapters 8, 9, 11 and 12 with Figure 4; the ledger's CIFAR-10 ablations seed by seed; then
Figure 1's learning-rate search and Figure 3's further seeds. The stored runs add up to about 18
hours of training on 2 CPU cores, much of it with two runs sharing them.

    python -m alexlib laptop          # or: make laptop

Every step is resumable: run the same command again after an interruption and finished work is
read back, unfinished work continued from its last epoch.
"""

from __future__ import annotations

from pathlib import Path

from .._io import results_dir
from ..config import preset
from ..experiments import (
    figure3_net,
    figure4_result,
    format_figure1,
    run_figure1,
    summarise_figure1,
)
from ..ledger import run_ledger

__all__ = ["laptop"]


def laptop(runs_dir: Path = Path("runs"), data_root=None) -> None:
    """Every laptop-scale result, most missed first (see the module's docstring); resumable."""
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
