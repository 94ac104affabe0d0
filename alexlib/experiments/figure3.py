"""Figure 3: the learned conv1 kernels and their colour (Paper: section 6.1)."""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import torch
from torchvision.models import AlexNet_Weights

from .._io import results_dir
from ..config import preset
from ..evaluate import store_views
from ..model import get_layer
from ..train import (
    RunSettings,
    load_checkpoint,
    model_from_checkpoint,
    read_metrics,
    stored_runs,
    train_run,
)

# ==============================================================================================
# Figure 3: the learned conv1 kernels and their colour (Paper: section 6.1)

# The settings per scale are the registry's "figure3" presets (alexlib.config.PRESETS).

# A kernel's two towers are said to split as the paper reports when nearly every kernel of one tower
# is more colour-selective than nearly every kernel of the other: separation (below) of at least
# 0.9.
SPLIT_SEPARATION = 0.9


def colour_selectivity(kernels: torch.Tensor) -> torch.Tensor:
    """A colour-selectivity score per kernel: the share of the kernel's energy that lies off the
    grey axis of RGB space. ``kernels`` (K, 3, h, w) -> (K,) in [0, 1].

    Every pixel of a kernel is an RGB vector; split it into its component along (1, 1, 1)/sqrt(3)
    (luminance: the kernel responds to brightness) and the rest (the two colour-opponent
    directions). A kernel with equal weights in R, G and B scores 0; a red-minus-green kernel 1; a
    kernel drawn at random, or one living in a single channel, 2/3. Paper: section 6.1, Figure 3.
    """
    if kernels.dim() != 4 or kernels.shape[1] != 3:
        raise ValueError(
            f"colour_selectivity() wants RGB kernels (K, 3, h, w); got {tuple(kernels.shape)}"
        )
    w = kernels.detach().double()
    # grey component g = mean over R, G, B at each position: the projection on (1, 1, 1)/sqrt(3)
    grey = w.mean(dim=1, keepdim=True).expand_as(w)  # (K, 3, h, w)
    total = w.pow(2).sum(dim=(1, 2, 3))  # (K,)
    # score = |w - g|^2 / |w|^2 (0 for an all-zero kernel)
    colour = (w - grey).pow(2).sum(dim=(1, 2, 3))  # (K,)
    return torch.where(total > 0, colour / total.clamp_min(1e-300), torch.zeros_like(total)).float()


def bimodality_coefficient(values: torch.Tensor) -> float:
    """Sarle's bimodality coefficient (g^2 + 1) / (k + 3 (n-1)^2 / ((n-2)(n-3))) with g the sample
    skewness and k the excess kurtosis (both bias-corrected). Above 5/9 (a uniform distribution's
    value) suggests two modes; a normal distribution gives about 1/3. Needs at least 4 values."""
    x = values.detach().double().flatten()
    n = x.numel()
    if n < 4:
        raise ValueError(f"the bimodality coefficient needs at least 4 values, got {n}")
    d = x - x.mean()
    m2, m3, m4 = d.pow(2).mean(), d.pow(3).mean(), d.pow(4).mean()
    if m2 == 0:
        return float("nan")
    g = (m3 / m2**1.5) * math.sqrt(n * (n - 1)) / (n - 2)  # skewness G1
    k = ((n + 1) * (m4 / m2**2 - 3) + 6) * (n - 1) / ((n - 2) * (n - 3))  # excess kurtosis G2
    return float((g**2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


def tower_split(tower1: torch.Tensor, tower2: torch.Tensor) -> dict:
    """Compare the colour selectivity of two towers' conv1 kernels, each (48, 3, h, w).

    Returns the scores of each tower, their means, ``auc`` (the probability that a kernel drawn from
    tower 2 is more colour-selective than one from tower 1, ties counting half: the Mann-Whitney
    statistic over 48 x 48 pairs), ``separation`` = max(auc, 1 - auc) (which tower is the colourful
    one is an accident of the run: the towers are interchangeable), the bimodality coefficient of
    each tower and of all kernels pooled, and ``agrees`` (separation >= ``SPLIT_SEPARATION``).
    Paper: section 6.1 ("GPU 1 largely colour-agnostic, GPU 2 largely colour-specific").
    """
    a, b = colour_selectivity(tower1), colour_selectivity(tower2)
    # auc = P(score_b > score_a) + P(score_b == score_a) / 2 over all pairs
    diff = b[None, :] - a[:, None]  # (Ka, Kb)
    auc = ((diff > 0).double().mean() + 0.5 * (diff == 0).double().mean()).item()
    separation = max(auc, 1 - auc)
    return {
        "scores": (a, b),
        "mean": (a.mean().item(), b.mean().item()),
        "auc": auc,
        "separation": separation,
        "colourful_tower": 2 if auc >= 0.5 else 1,
        "bimodality": (
            bimodality_coefficient(a),
            bimodality_coefficient(b),
            bimodality_coefficient(torch.cat([a, b])),
        ),
        "agrees": separation >= SPLIT_SEPARATION,
    }


def format_tower_splits(splits: dict[str, dict]) -> str:
    """A text table of :func:`tower_split` results, one row per run (label -> split), and how many
    runs show the paper's split (separation >= ``SPLIT_SEPARATION``)."""
    # 88 columns at most: GPU 1 and GPU 2 are the towers; BC is the bimodality coefficient
    lines = [
        f"{'run':>8} {'mean 1':>7} {'mean 2':>7} {'AUC':>6} {'separation':>10} "
        f"{'BC 1':>6} {'BC 2':>6} {'BC all':>6}  split as in the paper?"
    ]
    for label, sp in splits.items():
        b1, b2, ball = sp["bimodality"]
        lines.append(
            f"{label:>8} {sp['mean'][0]:>7.3f} {sp['mean'][1]:>7.3f} {sp['auc']:>6.3f} "
            f"{sp['separation']:>10.3f} {b1:>6.3f} {b2:>6.3f} {ball:>6.3f}  "
            f"{'yes' if sp['agrees'] else 'no'}"
        )
    agree = sum(sp["agrees"] for sp in splits.values())
    lines.append(
        f"{agree} of {len(splits)} runs split into a colour-agnostic and a colour-specific\n"
        f"tower (separation >= {SPLIT_SEPARATION}); mean 1, mean 2: each tower's mean colour\n"
        "selectivity; BC: bimodality coefficient"
    )
    return "\n".join(lines)


def train_for_kernels(
    variant: str,
    scale: str = "smoke",
    seed: int = 0,
    *,
    out: str | Path | None = None,
    data=None,
    data_root=None,
    device="auto",
    progress: bool = False,
    **overrides,
) -> dict:
    """Train ``variant`` on Imagenette with the paper's recipe (:func:`alexlib.train.train_run`)
    at ``scale`` (the ``figure3`` preset) and return ``{"conv1": (K, 3, 11, 11) kernels, "metrics":
    per-epoch metrics, "settings": RunSettings, "model": the trained net (CPU, eval mode), "stats":
    its input statistics, "out": run folder or None}``. ``out``: the run folder, kept (checkpoint,
    settings, metrics); by default a temporary folder that is deleted afterwards (a paper checkpoint
    is about 0.5 GB). ``data``: optional ``(train, val)`` already decoded at 256. Paper: section
    6.1.
    """
    known = preset("figure3", scale)
    s = preset("figure3", scale, **{k: v for k, v in overrides.items() if k in known})
    extra = {k: v for k, v in overrides.items() if k not in known}
    # every key of the preset but the experiment's own (seeds, variants) is a RunSettings field
    run = {k: v for k, v in s.items() if k not in ("seeds", "variants")}
    settings = RunSettings(
        **run, variant=variant, seed=seed, data_root=data_root, device=device, **extra
    )
    keep = out is not None
    out = Path(out) if keep else Path(tempfile.mkdtemp(prefix=f"alexlib-{variant}-s{seed}-"))
    try:
        if (
            out / "checkpoint.pt"
        ).exists():  # a finished run in that folder is reused, an unfinished one resumed
            train_run(settings, out, resume=True, progress=progress, data=data)
        else:
            train_run(settings, out, progress=progress, data=data)
        model, _, stats = model_from_checkpoint(load_checkpoint(out / "checkpoint.pt"))
        metrics = read_metrics(out)
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)
    return {
        "conv1": get_layer(model, "conv1").weight.detach().clone(),
        "metrics": metrics,
        "settings": settings,
        "model": model,
        "stats": stats,
        "out": str(out) if keep else None,
    }


TORCHVISION_ALEXNET = (
    "alexnet-owt-7be5be79.pth"  # the file torchvision's IMAGENET1K_V1 weights are saved as
)


def pretrained_conv1(download: bool = False) -> torch.Tensor | None:
    """torchvision's ImageNet-trained ``alexnet`` conv1 kernels (64, 3, 11, 11), read from torch
    hub's cache (``torch.hub.get_dir()/checkpoints``). ``None`` if the file is not there, unless
    ``download=True``, which lets torchvision fetch it (about 233 MB, needs a network)."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_ALEXNET
    if not path.is_file():
        if not download:
            return None
        AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=False)  # saves it into the hub cache
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["features.0.weight"].clone()


def save_figure3(
    variant: str, seed: int, trained: dict, base: Path | None = None, tag: str = "full"
) -> Path:
    """Store one run's conv1 kernels (``conv1.pt``, small) with its ``settings.json`` (settings and
    provenance) and ``metrics.jsonl`` under ``<base>/<tag>-<variant>-s<seed>/`` (``base``:
    ``results/figure3``). ``trained`` must come from a kept run folder (``out=`` given); its large
    checkpoint stays there, not in ``results/``."""
    if not trained.get("out"):
        raise ValueError(
            "save_figure3() needs a run trained with out=<folder> (its settings.json and "
            "metrics.jsonl)"
        )
    base = Path(base) if base is not None else results_dir() / "figure3"
    folder = base / f"{tag}-{variant}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(trained["out"]) / "settings.json", folder / "settings.json")
    shutil.copy(Path(trained["out"]) / "metrics.jsonl", folder / "metrics.jsonl")
    torch.save(trained["conv1"].cpu(), folder / "conv1.pt")
    return folder


def stored_figure3(tag: str = "full") -> list[dict]:
    """The stored runs of :func:`save_figure3`: ``stored_runs`` dicts with ``conv1`` (the kernels),
    ``variant`` and ``seed`` added, and for a paper net stored by :func:`figure3_net` ``views``
    (``views.json``: centre and ten-view errors, the class names) and ``val_probs`` (the path of
    ``val_probs.pt``), else None. Empty when none are stored."""
    runs = []
    for run in stored_runs("figure3", f"{tag}-"):
        path = results_dir() / "figure3" / run["name"] / "conv1.pt"
        if path.is_file():
            views = path.parent / "views.json"
            probs = path.parent / "val_probs.pt"
            runs.append(
                {
                    **run,
                    "conv1": torch.load(path, weights_only=True),
                    "variant": run["settings"]["variant"],
                    "seed": run["settings"]["seed"],
                    # a paper net's validation errors with one view and ten, and its outputs
                    "views": json.loads(views.read_text()) if views.is_file() else None,
                    "val_probs": probs if probs.is_file() else None,
                }
            )
    return runs


def figure3_net(
    variant: str, scale: str, seed: int, tag: str, runs_dir: Path, data_root=None
) -> Path:
    """One stored Figure 3 net, trained (or resumed) in
    ``runs_dir/figure3-<tag>-<variant>-s<seed>``. Its kernels and curves are stored under
    ``results/figure3/<tag>-<variant>-s<seed>`` and, for the paper net, its validation predictions
    with the centre crop and ten views (``val_probs.pt``, ``views.json``: what the evaluation
    chapter shows). Read back, not retrained, once stored. ``python -m alexlib
    figure 3 --scale laptop`` runs every seed."""
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
        out=Path(runs_dir) / f"figure3-{tag}-{variant}-s{seed}",
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
        store_views(
            folder, trained["model"], val, trained["stats"], crop=settings.crop, classes=val.classes
        )
    print("stored in", folder)
    return folder
