"""The experiments behind the paper's figures 1, 3 and 4, at smoke scale (CPU, small real subsets)
and at full scale (a GPU; results stored under ``results/figure1|figure3|figure4`` with provenance).

    from alexlib.experiments import run_figure1, summarise_figure1
    runs = run_figure1("smoke")                       # ReLU vs tanh on CIFAR-10, lr search + seeds
    summary = summarise_figure1(runs)                 # epochs to 25% training error and their ratio

    scores = colour_selectivity(kernels)        # (K,) in [0, 1]: 0 grey, 1 purely colour-opponent
    split = tower_split(*conv1_towers(model))   # do the two towers differ in colour? (Figure 3)

    idx, dist = nearest_neighbours(queries, database, k=6)   # Euclidean retrieval (Figure 4)

A laptop-scale run on a CPU, or a full run on a GPU machine (each writes its results folder, and
continues where it stopped when started again)::

    python -m alexlib figure 1 --scale laptop
    python -m alexlib figure 1 --scale full
    python -m alexlib figure 3 --scale full
    python -m alexlib figure 4 --scale full

Paper: section 3.1 (Figure 1), section 6.1 (Figures 3 and 4).
"""

from __future__ import annotations

from .figure1 import (
    REGIMES,
    activation_stats,
    backfill_activations,
    best_lr,
    describe_figure1,
    epochs_to_reach,
    format_figure1,
    run_figure1,
    save_figure1,
    stored_figure1,
    summarise_figure1,
    train_resident,
)
from .figure3 import (
    SPLIT_SEPARATION,
    TORCHVISION_ALEXNET,
    bimodality_coefficient,
    colour_selectivity,
    figure3_net,
    format_tower_splits,
    pretrained_conv1,
    save_figure3,
    stored_figure3,
    tower_split,
    train_for_kernels,
)
from .figure4 import (
    BinaryAutoencoder,
    binary_codes,
    class_precision,
    figure4_result,
    format_retrieval,
    hamming_neighbours,
    nearest_neighbours,
    neighbour_recall,
    run_figure4,
    save_figure4,
    shown_images,
    stored_figure4,
    train_autoencoder,
)

__all__ = [
    "REGIMES",
    "activation_stats",
    "backfill_activations",
    "train_resident",
    "epochs_to_reach",
    "best_lr",
    "run_figure1",
    "summarise_figure1",
    "save_figure1",
    "stored_figure1",
    "format_figure1",
    "describe_figure1",
    "SPLIT_SEPARATION",
    "colour_selectivity",
    "figure3_net",
    "bimodality_coefficient",
    "tower_split",
    "format_tower_splits",
    "train_for_kernels",
    "TORCHVISION_ALEXNET",
    "pretrained_conv1",
    "save_figure3",
    "stored_figure3",
    "nearest_neighbours",
    "BinaryAutoencoder",
    "train_autoencoder",
    "binary_codes",
    "hamming_neighbours",
    "neighbour_recall",
    "class_precision",
    "figure4_result",
    "run_figure4",
    "format_retrieval",
    "save_figure4",
    "shown_images",
    "stored_figure4",
]
