"""The experiments behind the paper's figures 1, 3 and 4, at smoke scale (CPU, small real subsets)
and at full scale (a GPU; results stored under ``results/figure1|figure3|figure4`` with provenance).

    from alexlib.experiments import run_figure1, summarise_figure1
    runs = run_figure1("smoke")                       # ReLU vs tanh on CIFAR-10, lr search + seeds
    summary = summarise_figure1(runs)                 # epochs to 25% training error and their ratio

    scores = colour_selectivity(kernels)              # (K,) in [0, 1]: 0 grey, 1 purely colour-opponent
    split = tower_split(*conv1_towers(model))         # do the two towers differ in colour? (Figure 3)

    idx, dist = nearest_neighbours(queries, database, k=6)   # batched Euclidean retrieval (Figure 4)

A full run from a terminal on a GPU machine (each writes its results folder)::

    python -m alexlib.experiments figure1 --scale full
    python -m alexlib.experiments figure3 --scale full
    python -m alexlib.experiments figure4 --scale full

Paper: section 3.1 (Figure 1), section 6.1 (Figures 3 and 4).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import tempfile
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .config import resolve_device, results_dir
from .data import load
from .model import build, get_layer
from .train import RunSettings, channel_stats, provenance, read_metrics, train_run

__all__ = [
    "FIGURE1", "FIGURE3", "FIGURE4", "train_resident", "epochs_to_reach", "best_lr", "run_figure1",
    "summarise_figure1", "format_figure1", "save_figure1", "stored_figure1", "format_tower_splits",
    "colour_selectivity", "bimodality_coefficient", "tower_split", "train_for_kernels", "pretrained_conv1",
    "save_figure3", "stored_figure3",
    "nearest_neighbours", "BinaryAutoencoder", "train_autoencoder", "binary_codes", "hamming_neighbours", "neighbour_recall",
    "class_precision", "run_figure4", "format_retrieval", "figure4_figures", "save_figure4", "stored_figure4",
]


# ==============================================================================================
# Figure 1: ReLU vs tanh on CIFAR-10 (Paper: section 3.1)
#
# Settings per scale. "lrs": the learning rates tried for each activation (the paper used, for each
# net, the rate that made it fastest); seeds[0] is the seed of that search, and its runs at the chosen
# rates double as the first seed's runs. "thresholds": training errors (%) at which the epochs are
# counted: 25% is the paper's; at smoke scale a higher level stands in when 25% is not reached.

FIGURE1: dict[str, dict] = {
    "smoke": dict(train_per_class=20, epochs=8, batch_size=20, momentum=0.9, seeds=(0, 1),
                  lrs={"relu": (0.01, 0.03), "tanh": (0.01, 0.03)}, thresholds=(25.0, 70.0)),
    "full": dict(train_per_class=None, epochs=60, batch_size=128, momentum=0.9, seeds=(0, 1, 2, 3, 4),
                 lrs={"relu": (0.003, 0.01, 0.03, 0.1), "tanh": (0.003, 0.01, 0.03, 0.1)}, thresholds=(25.0, 50.0)),
}


def _preset(table: dict[str, dict], scale: str, overrides: dict) -> dict:
    if scale not in table:
        raise ValueError(f"scale must be one of {sorted(table)}, got {scale!r}")
    preset = dict(table[scale])
    unknown = sorted(set(overrides) - set(preset))
    if unknown:
        raise TypeError(f"unknown setting(s) {unknown}; the settings are: {sorted(preset)}")
    preset.update(overrides)
    return preset


@torch.no_grad()
def _error_pass(model: nn.Module, x_all: torch.Tensor, y_all: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                batch_size: int = 1024) -> tuple[float, float]:
    """Top-1 error (%) and mean loss of ``model`` in eval mode over resident uint8 images."""
    model.eval()
    wrong = torch.zeros((), device=x_all.device)
    loss = torch.zeros((), device=x_all.device)
    for start in range(0, len(x_all), batch_size):
        x = (x_all[start:start + batch_size].float() / 255 - mean) / std  # (B, 3, 32, 32)
        y = y_all[start:start + batch_size]
        out = model(x)  # (B, classes)
        wrong += (out.argmax(dim=1) != y).sum()
        loss += F.cross_entropy(out, y, reduction="sum")
    model.train()
    n = len(x_all)
    return 100.0 * wrong.item() / n, loss.item() / n


def train_resident(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, epochs: int, lr: float,
                   batch_size: int, momentum: float = 0.9, seed: int = 0, device="auto") -> list[dict]:
    """Train ``model`` with plain SGD + momentum (no weight decay, no dropout, no augmentation: the
    paper's "no regularisation" for Figure 1) on ``images`` (N, 3, H, W) uint8 and ``labels`` (N,),
    both kept on ``device`` for the whole run: a batch is an index into the resident tensor.

    Inputs are scaled to [0, 1] and normalised with the training set's per-channel mean and std.
    Returns one dict per epoch, epoch 0 being the untrained net:

    - ``train_err``: top-1 training error (%) over the whole training set in a separate pass in
      eval mode after the epoch (the definition used for "epochs to reach 25%");
    - ``batch_err``: the error counted on the epoch's batches while the weights were still moving;
    - ``train_loss`` (eval pass), ``seconds`` (wall time of the epoch, pass included), and
      ``diverged`` (True once the loss became NaN or infinite; training stops there).

    Paper: section 3.1, Figure 1.
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(f"images must be uint8 (N, 3, H, W); got {images.dtype} {tuple(images.shape)}")
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    device = resolve_device(device)
    mean, std = channel_stats(images)
    mean, std = mean.to(device)[:, None, None], std.to(device)[:, None, None]  # (3, 1, 1)
    x_all = images.to(device)  # (N, 3, H, W) uint8, resident for the whole run
    y_all = labels.to(device)
    model.to(device).train()
    # fused: one kernel for the whole update on CUDA (same arithmetic)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=0.0,
                                fused=True if device.type == "cuda" else None)
    generator = torch.Generator().manual_seed(seed)
    n = len(x_all)
    err, loss = _error_pass(model, x_all, y_all, mean, std)
    history = [{"epoch": 0, "train_err": err, "batch_err": float("nan"), "train_loss": loss, "seconds": 0.0,
                "diverged": False}]
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(device)
        wrong = torch.zeros((), device=device)
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            x = (x_all[idx].float() / 255 - mean) / std  # (B, 3, H, W)
            y = y_all[idx]
            out = model(x)  # (B, classes)
            batch_loss = F.cross_entropy(out, y)
            optimizer.zero_grad(set_to_none=True)
            batch_loss.backward()
            optimizer.step()
            wrong += (out.detach().argmax(dim=1) != y).sum()
        err, loss = _error_pass(model, x_all, y_all, mean, std)
        diverged = not math.isfinite(loss)
        history.append({"epoch": epoch, "train_err": err, "batch_err": 100.0 * wrong.item() / n, "train_loss": loss,
                        "seconds": time.perf_counter() - started, "diverged": diverged})
        if diverged:
            break
    return history


def epochs_to_reach(errors: Sequence[float], threshold: float) -> float | None:
    """The (fractional) number of epochs after which a training-error curve first reaches
    ``threshold`` (%): ``errors[e]`` is the error after epoch ``e`` (``errors[0]``: before training).
    Between the last epoch above and the first at or below the threshold the curve is interpolated
    linearly. ``None`` if the curve never gets there. Paper: Figure 1 ("epochs to 25% error").

    >>> epochs_to_reach([90, 60, 40, 20], 25.0)   # 40 -> 20 crosses 25 three quarters of the way
    2.75
    """
    values = [float(v) for v in errors]
    if not values:
        raise ValueError("epochs_to_reach() needs at least one error value")
    if values[0] <= threshold:
        return 0.0
    for e in range(1, len(values)):
        if not math.isfinite(values[e]):  # a diverged run: the curve ends here
            return None
        if values[e] <= threshold:
            before, after = values[e - 1], values[e]
            return e - 1 + (before - threshold) / (before - after)
    return None


def best_lr(runs: list[dict], activation: str, threshold: float) -> float:
    """The learning rate whose search run (``role == "search"``) with ``activation`` reached
    ``threshold`` in the fewest epochs; if none reached it, the one with the lowest final training
    error. Diverged runs are never chosen."""
    candidates = [r for r in runs if r["role"] == "search" and r["activation"] == activation
                  and not r["history"][-1]["diverged"]]
    if not candidates:
        raise ValueError(f"no search run of {activation!r} finished without diverging; try smaller learning rates")

    def key(run):
        reached = epochs_to_reach([h["train_err"] for h in run["history"]], threshold)
        return (math.inf if reached is None else reached, run["history"][-1]["train_err"])

    return min(candidates, key=key)["lr"]


def run_figure1(scale: str = "smoke", *, data=None, data_root=None, download: bool = False, device="auto",
                progress: bool = True, **overrides) -> list[dict]:
    """Figure 1's experiment: for each activation, one run per learning rate in ``lrs`` at the first
    seed (the search), then the chosen rate at every further seed. Each run trains a fresh ``cifar4``
    net with :func:`train_resident`. ``data``: CIFAR-10 training ``ImageTensors`` to use instead of
    loading ``train_per_class`` images per class. Returns a list of runs: dicts with ``activation``,
    ``lr``, ``seed``, ``role`` ("search" or "seed") and ``history``. Paper: section 3.1.
    """
    s = _preset(FIGURE1, scale, overrides)
    if data is None:
        data = load("cifar10", "train", root=data_root, per_class=s["train_per_class"], seed=s["seeds"][0],
                    download=download, progress=progress)
    runs: list[dict] = []

    def one(activation: str, lr: float, seed: int, role: str) -> dict:
        torch.manual_seed(seed)
        model = build("cifar4", num_classes=len(data.classes), activation=activation)
        history = train_resident(model, data.images, data.labels, epochs=s["epochs"], lr=lr,
                                 batch_size=s["batch_size"], momentum=s["momentum"], seed=seed, device=device)
        run = {"activation": activation, "lr": lr, "seed": seed, "role": role, "history": history}
        if progress:
            last = history[-1]
            print(f"{activation:4s} lr {lr:<6g} seed {seed}: training error {last['train_err']:5.1f}% after "
                  f"{last['epoch']} epochs{' (diverged)' if last['diverged'] else ''}")
        return run

    for activation, lrs in s["lrs"].items():
        for lr in lrs:
            runs.append(one(activation, lr, s["seeds"][0], "search"))
    for activation in s["lrs"]:
        lr = best_lr(runs, activation, s["thresholds"][0])
        for seed in s["seeds"][1:]:
            runs.append(one(activation, lr, seed, "seed"))
    for run in runs:
        run["settings"] = {**{k: v for k, v in s.items() if k != "lrs"}, "scale": scale, "images": len(data)}
    return runs


def summarise_figure1(runs: list[dict], thresholds: Sequence[float] | None = None) -> dict:
    """Figure 1's numbers from the runs of :func:`run_figure1`: the chosen learning rate per
    activation, and for each threshold and seed the epochs each net needed and their ratio
    (tanh epochs / ReLU epochs; the paper: about six at 25%). Returns
    ``{"lr": {act: lr}, "curves": {act: {seed: errors}}, "by_threshold": {t: {"relu": [...],
    "tanh": [...], "ratio": [...], "seeds": [...]}}}``; ``None`` where a net never got there."""
    thresholds = tuple(thresholds or runs[0]["settings"]["thresholds"])
    activations = sorted({r["activation"] for r in runs}, key=["relu", "tanh"].index)
    chosen = {a: best_lr(runs, a, thresholds[0]) for a in activations}
    curves: dict[str, dict[int, list[float]]] = {a: {} for a in activations}
    for r in runs:
        if r["lr"] == chosen[r["activation"]]:
            curves[r["activation"]][r["seed"]] = [h["train_err"] for h in r["history"]]
    seeds = sorted(set.intersection(*(set(c) for c in curves.values())))
    by_threshold = {}
    for t in thresholds:
        row = {"seeds": seeds, "relu": [], "tanh": [], "ratio": []}
        for seed in seeds:
            e = {a: epochs_to_reach(curves[a][seed], t) for a in ("relu", "tanh")}
            row["relu"].append(e["relu"])
            row["tanh"].append(e["tanh"])
            # ratio = epochs(tanh) / epochs(ReLU): how many times faster ReLU gets there
            row["ratio"].append(e["tanh"] / e["relu"] if e["relu"] and e["tanh"] is not None else None)
        by_threshold[t] = row
    return {"lr": chosen, "curves": curves, "by_threshold": by_threshold}


def save_figure1(runs: list[dict], base: Path | None = None, tag: str = "full") -> Path:
    """Store each run as ``<base>/<tag>-<activation>-lr<lr>-s<seed>/`` with ``settings.json``
    (settings and provenance) and ``metrics.jsonl`` (one line per epoch), the layout
    ``alexlib.train.stored_runs("figure1", tag)`` reads. ``base`` defaults to ``results/figure1``."""
    base = Path(base) if base is not None else results_dir() / "figure1"
    where = provenance()
    for r in runs:
        folder = base / f"{tag}-{r['activation']}-lr{r['lr']:g}-s{r['seed']}"
        folder.mkdir(parents=True, exist_ok=True)
        settings = {**r["settings"], "activation": r["activation"], "lr": r["lr"], "seed": r["seed"], "role": r["role"]}
        (folder / "settings.json").write_text(json.dumps({"settings": settings, "provenance": where}, indent=1))
        (folder / "metrics.jsonl").write_text("".join(json.dumps(h) + "\n" for h in r["history"]))
    return base


def stored_figure1(tag: str = "full") -> tuple[list[dict], dict | None]:
    """The runs stored by :func:`save_figure1` under ``results/figure1`` (``[]`` if none) and the
    provenance of the first (``None`` if none), in :func:`run_figure1`'s format."""
    from .train import stored_runs

    stored = stored_runs("figure1", f"{tag}-")
    runs = [{"activation": s["settings"]["activation"], "lr": s["settings"]["lr"], "seed": s["settings"]["seed"],
             "role": s["settings"]["role"], "history": s["metrics"], "settings": s["settings"]} for s in stored]
    return runs, (stored[0]["provenance"] if stored else None)


def format_figure1(summary: dict) -> str:
    """:func:`summarise_figure1` as a text table: per threshold and seed, the epochs each net needed
    and the ratio tanh / ReLU, then the ratio's mean and range over the seeds where both got there."""
    lines = [f"learning rates chosen: " + ", ".join(f"{a} {lr:g}" for a, lr in summary["lr"].items())]
    fmt = lambda v: "not reached" if v is None else f"{v:.2f}"
    for t, row in summary["by_threshold"].items():
        lines.append(f"\nepochs to {t:g}% training error")
        lines.append(f"{'seed':>6} {'ReLU':>12} {'tanh':>12} {'tanh / ReLU':>12}")
        for seed, r, h, q in zip(row["seeds"], row["relu"], row["tanh"], row["ratio"]):
            lines.append(f"{seed:>6} {fmt(r):>12} {fmt(h):>12} {'-' if q is None else f'{q:.2f}':>12}")
        ratios = [q for q in row["ratio"] if q is not None]
        if ratios:
            mean = sum(ratios) / len(ratios)
            lines.append(f"ratio over {len(ratios)} of {len(row['seeds'])} seeds: mean {mean:.2f}, "
                         f"range {min(ratios):.2f} to {max(ratios):.2f}")
        else:
            lines.append("no seed where both nets reached this level: no ratio")
    return "\n".join(lines)


# ==============================================================================================
# Figure 3: the learned conv1 kernels and their colour (Paper: section 6.1)

FIGURE3: dict[str, dict] = {
    # smoke: one epoch over 10 images per class at the paper's 224 crop: a few dozen SGD steps
    "smoke": dict(dataset="imagenette", epochs=1, batch_size=32, train_per_class=10, val_per_class=2, seeds=(0, 1),
                  variants=("half", "onegpu2014")),
    "full": dict(dataset="imagenette", epochs=90, batch_size=128, train_per_class=None, val_per_class=None,
                 seeds=(0, 1, 2, 3, 4), variants=("half", "onegpu2014")),
}

# A kernel's two towers are said to split as the paper reports when nearly every kernel of one tower
# is more colour-selective than nearly every kernel of the other: separation (below) of at least 0.9.
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
        raise ValueError(f"colour_selectivity() wants RGB kernels (K, 3, h, w); got {tuple(kernels.shape)}")
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
    g = (m3 / m2 ** 1.5) * math.sqrt(n * (n - 1)) / (n - 2)  # skewness G1
    k = ((n + 1) * (m4 / m2 ** 2 - 3) + 6) * (n - 1) / ((n - 2) * (n - 3))  # excess kurtosis G2
    return float((g ** 2 + 1) / (k + 3 * (n - 1) ** 2 / ((n - 2) * (n - 3))))


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
    return {"scores": (a, b), "mean": (a.mean().item(), b.mean().item()), "auc": auc, "separation": separation,
            "colourful_tower": 2 if auc >= 0.5 else 1,
            "bimodality": (bimodality_coefficient(a), bimodality_coefficient(b), bimodality_coefficient(torch.cat([a, b]))),
            "agrees": separation >= SPLIT_SEPARATION}


def format_tower_splits(splits: dict[str, dict]) -> str:
    """A text table of :func:`tower_split` results, one row per run (label -> split), and how many
    runs show the paper's split (separation >= ``SPLIT_SEPARATION``)."""
    lines = [f"{'run':>12} {'mean GPU 1':>11} {'mean GPU 2':>11} {'AUC':>6} {'separation':>11} "
             f"{'BC GPU 1':>9} {'BC GPU 2':>9} {'BC all':>7}  split as in the paper?"]
    for label, sp in splits.items():
        b1, b2, ball = sp["bimodality"]
        lines.append(f"{label:>12} {sp['mean'][0]:>11.3f} {sp['mean'][1]:>11.3f} {sp['auc']:>6.3f} "
                     f"{sp['separation']:>11.3f} {b1:>9.3f} {b2:>9.3f} {ball:>7.3f}  "
                     f"{'yes' if sp['agrees'] else 'no'}")
    agree = sum(sp["agrees"] for sp in splits.values())
    lines.append(f"{agree} of {len(splits)} runs split into a colour-agnostic and a colour-specific tower "
                 f"(separation >= {SPLIT_SEPARATION})")
    return "\n".join(lines)


def train_for_kernels(variant: str, scale: str = "smoke", seed: int = 0, *, out: str | Path | None = None,
                      data=None, data_root=None, device="auto", progress: bool = False, **overrides) -> dict:
    """Train ``variant`` on Imagenette with the paper's recipe (:func:`alexlib.train.train_run`)
    at ``scale`` (``FIGURE3``) and return ``{"conv1": (K, 3, 11, 11) kernels, "metrics": per-epoch
    metrics, "settings": RunSettings, "model": the trained net (CPU, eval mode), "stats": its input
    statistics, "out": run folder or None}``. ``out``: the run folder, kept (checkpoint, settings,
    metrics); by default a temporary folder that is deleted afterwards (a paper checkpoint is about
    0.5 GB). ``data``: optional ``(train, val)`` already decoded at 256. Paper: section 6.1.
    """
    s = _preset(FIGURE3, scale, {k: v for k, v in overrides.items() if k in FIGURE3[scale]})
    extra = {k: v for k, v in overrides.items() if k not in FIGURE3[scale]}
    settings = RunSettings(dataset=s["dataset"], variant=variant, epochs=s["epochs"], batch_size=s["batch_size"],
                           train_per_class=s["train_per_class"], val_per_class=s["val_per_class"], seed=seed,
                           data_root=data_root, device=device, **extra)
    from .train import load_checkpoint, model_from_checkpoint

    keep = out is not None
    out = Path(out) if keep else Path(tempfile.mkdtemp(prefix=f"alexlib-{variant}-s{seed}-"))
    try:
        if (out / "checkpoint.pt").exists():  # a finished run in that folder is reused, an unfinished one resumed
            train_run(settings, out, resume=True, progress=progress, data=data)
        else:
            train_run(settings, out, progress=progress, data=data)
        model, _, stats = model_from_checkpoint(load_checkpoint(out / "checkpoint.pt"))
        metrics = read_metrics(out)
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)
    return {"conv1": get_layer(model, "conv1").weight.detach().clone(), "metrics": metrics, "settings": settings,
            "model": model, "stats": stats, "out": str(out) if keep else None}


TORCHVISION_ALEXNET = "alexnet-owt-7be5be79.pth"  # the file torchvision's IMAGENET1K_V1 weights are saved as


def pretrained_conv1(download: bool = False) -> torch.Tensor | None:
    """torchvision's ImageNet-trained ``alexnet`` conv1 kernels (64, 3, 11, 11), read from torch
    hub's cache (``torch.hub.get_dir()/checkpoints``). ``None`` if the file is not there, unless
    ``download=True``, which lets torchvision fetch it (about 233 MB, needs a network)."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_ALEXNET
    if not path.is_file():
        if not download:
            return None
        from torchvision.models import AlexNet_Weights

        AlexNet_Weights.IMAGENET1K_V1.get_state_dict(progress=False)  # saves it into the hub cache
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state["features.0.weight"].clone()


def save_figure3(variant: str, seed: int, trained: dict, base: Path | None = None, tag: str = "full") -> Path:
    """Store one run's conv1 kernels (``conv1.pt``, small) with its ``settings.json`` (settings and
    provenance) and ``metrics.jsonl`` under ``<base>/<tag>-<variant>-s<seed>/`` (``base``:
    ``results/figure3``). ``trained`` must come from a kept run folder (``out=`` given); its large
    checkpoint stays there, not in ``results/``."""
    if not trained.get("out"):
        raise ValueError("save_figure3() needs a run trained with out=<folder> (its settings.json and metrics.jsonl)")
    base = Path(base) if base is not None else results_dir() / "figure3"
    folder = base / f"{tag}-{variant}-s{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(trained["out"]) / "settings.json", folder / "settings.json")
    shutil.copy(Path(trained["out"]) / "metrics.jsonl", folder / "metrics.jsonl")
    torch.save(trained["conv1"].cpu(), folder / "conv1.pt")
    return folder


def stored_figure3(tag: str = "full") -> list[dict]:
    """The stored runs of :func:`save_figure3`: ``stored_runs`` dicts with ``conv1`` (the kernels),
    ``variant`` and ``seed`` added. Empty when none are stored."""
    from .train import stored_runs

    runs = []
    for run in stored_runs("figure3", f"{tag}-"):
        path = results_dir() / "figure3" / run["name"] / "conv1.pt"
        if path.is_file():
            runs.append({**run, "conv1": torch.load(path, weights_only=True), "variant": run["settings"]["variant"],
                         "seed": run["settings"]["seed"]})
    return runs


# ==============================================================================================
# Figure 4: what the network learned: top-5 and nearest neighbours in fc7 (Paper: section 6.1)

FIGURE4: dict[str, dict] = {
    "smoke": dict(dataset="imagenette", epochs=1, batch_size=32, train_per_class=10, val_per_class=4,
                  bits=(16, 32), ae_epochs=60, k=6),
    "full": dict(dataset="imagenette", epochs=90, batch_size=128, train_per_class=None, val_per_class=None,
                 bits=(32, 64, 128, 256), ae_epochs=60, k=6),
}


def _check_search(queries: torch.Tensor, database: torch.Tensor, k: int, width: str) -> None:
    """Queries (Q, width) and database (N, width) of one width, and 1 <= k <= N, or a clear error."""
    if queries.dim() != 2 or database.dim() != 2 or queries.shape[1] != database.shape[1]:
        raise ValueError(f"want queries (Q, {width}) and database (N, {width}) with the same {width}; got "
                         f"{tuple(queries.shape)} and {tuple(database.shape)}")
    if not 1 <= k <= len(database):
        raise ValueError(f"k must be between 1 and the database size {len(database)}, got {k}")


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, database: torch.Tensor, k: int, *, device="auto",
                       chunk: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` rows of ``database`` (N, D) nearest to each row of ``queries`` (Q, D) in Euclidean
    distance, computed on ``device`` as batched matrix products, ``chunk`` database rows at a time
    (each chunk is converted to float32 there, so a uint8 pixel database stays small in memory).
    Returns ``(indices (Q, k) int64, distances (Q, k) float32)`` on the CPU, nearest first.
    Paper: section 6.1, Figure 4 (right).
    """
    _check_search(queries, database, k, "D")
    device = resolve_device(device)
    q = queries.to(device).float()  # (Q, D)
    q_sq = q.pow(2).sum(dim=1, keepdim=True)  # (Q, 1)
    best_d = torch.full((len(q), 0), float("inf"), device=device)
    best_i = torch.zeros((len(q), 0), dtype=torch.long, device=device)
    for start in range(0, len(database), chunk):
        d = database[start:start + chunk].to(device).float()  # (C, D)
        # |q - d|^2 = |q|^2 - 2 q.d + |d|^2, for every (query, row) pair at once
        dist = (q_sq - 2 * q @ d.T + d.pow(2).sum(dim=1)[None, :]).clamp_min_(0)  # (Q, C)
        idx = torch.arange(start, start + len(d), device=device).expand(len(q), -1)  # (Q, C)
        all_d, all_i = torch.cat([best_d, dist], dim=1), torch.cat([best_i, idx], dim=1)
        best_d, pos = all_d.topk(min(k, all_d.shape[1]), dim=1, largest=False)  # (Q, k), sorted
        best_i = all_i.gather(1, pos)
    return best_i.cpu(), best_d.sqrt().cpu()


class BinaryAutoencoder(nn.Module):
    """An auto-encoder that squeezes a feature vector (D,) through ``bits`` binary units:
    encoder D -> hidden -> bits (a sign), decoder bits -> hidden -> D.

    While training, the code is 0/1 in the forward pass and the sigmoid's gradient flows through in
    the backward pass (a straight-through estimator), so the decoder learns from the very codes
    that retrieval will use. Paper: section 6.1 (the suggested binary codes for retrieval).
    """

    def __init__(self, dim: int = 4096, bits: int = 128, hidden: int = 1024):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, bits))
        self.decoder = nn.Sequential(nn.Linear(bits, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The binary code (N, bits) as a bool tensor: bit = (encoder output > 0)."""
        return self.encoder(x) > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        soft = torch.sigmoid(self.encoder(x))  # (N, bits) in (0, 1)
        # forward: hard 0/1 bits; backward: the sigmoid's gradient (straight through)
        hard = (soft > 0.5).float()
        code = hard + soft - soft.detach()  # (N, bits)
        return self.decoder(code)  # (N, D)


def train_autoencoder(feats: torch.Tensor, bits: int, *, epochs: int = 60, lr: float = 1e-3, batch_size: int = 256,
                      hidden: int = 1024, seed: int = 0, device="auto") -> tuple[BinaryAutoencoder, dict]:
    """Fit a :class:`BinaryAutoencoder` to ``feats`` (N, D) (e.g. fc7 vectors) with Adam, minimising
    the mean squared reconstruction error of the features centred on their mean and scaled to unit
    mean norm (so the code spends its bits on what tells images apart, not on what they share).
    Returns the model (on the CPU, eval mode) and ``{"mean" (D,), "scale", "loss"}``: pass both to
    :func:`binary_codes`."""
    device = resolve_device(device)
    torch.manual_seed(seed)
    x_all = feats.to(device).float()
    mean = x_all.mean(dim=0)  # (D,)
    x_all = x_all - mean
    scale = 1.0 / x_all.norm(dim=1).mean().clamp_min(1e-12).item()
    x_all = x_all * scale
    model = BinaryAutoencoder(x_all.shape[1], bits, hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    loss_sum = 0.0
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=generator).to(device)
        loss_sum = 0.0
        for start in range(0, len(x_all), batch_size):
            x = x_all[order[start:start + batch_size]]  # (B, D)
            loss = F.mse_loss(model(x), x)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(x)
    return model.cpu().eval(), {"mean": mean.cpu(), "scale": scale, "loss": loss_sum / len(x_all)}


@torch.no_grad()
def binary_codes(model: BinaryAutoencoder, info: dict, feats: torch.Tensor) -> torch.Tensor:
    """The binary codes (N, bits) bool of ``feats`` (N, D) under a model from :func:`train_autoencoder`
    (``info``: its centring and scale)."""
    return model.code((feats.float() - info["mean"]) * info["scale"])


@torch.no_grad()
def hamming_neighbours(query_codes: torch.Tensor, database_codes: torch.Tensor, k: int, *,
                       device="auto") -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` database codes nearest to each query code in Hamming distance (the number of bits
    that differ), ties broken by database order. Codes: bool or 0/1 (Q, bits) and (N, bits).
    Returns ``(indices (Q, k), distances (Q, k))`` on the CPU."""
    _check_search(query_codes, database_codes, k, "bits")
    device = resolve_device(device)
    q = query_codes.to(device).float()  # (Q, bits)
    d = database_codes.to(device).float()  # (N, bits)
    # hamming(q, d) = q.(1 - d) + (1 - q).d: the bits set in one code and not the other
    dist = q @ (1 - d).T + (1 - q) @ d.T  # (Q, N), whole numbers
    order = dist.argsort(dim=1, stable=True)[:, :k]  # (Q, k)
    return order.cpu(), dist.gather(1, order).round().long().cpu()


def neighbour_recall(found: torch.Tensor, true: torch.Tensor) -> float:
    """The mean share of the true neighbours (Q, k) that ``found`` (Q, k') retrieved."""
    hits = (found[:, :, None] == true[:, None, :]).any(dim=1).float()  # (Q, k)
    return hits.mean().item()


def class_precision(neighbours: torch.Tensor, query_labels: torch.Tensor, database_labels: torch.Tensor) -> float:
    """The share of retrieved neighbours (Q, k) whose class is the query's (precision at k)."""
    return (database_labels[neighbours] == query_labels[:, None]).float().mean().item()


def _picked(n: int, count: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count].sort().values


def run_figure4(scale: str = "smoke", seed: int = 0, *, trained: dict | None = None, data=None, data_root=None,
                device="auto", progress: bool = False, **overrides) -> dict:
    """Figure 4's experiment on Imagenette: train the ``paper`` net (or take ``trained``, a result of
    :func:`train_for_kernels`), then

    - ``top5``: for eight validation images, the five most probable classes and their probabilities;
    - ``neighbours``: for five validation queries, the six training images nearest in fc7 (the
      4096-d output of the ReLU after fc7, centre view) and in raw pixels (the 224 centre crop);
    - ``retrieval``: over all validation images as queries, the same-class precision at k of
      pixel, fc7 and binary-code neighbours, and the share of the fc7 neighbours the codes recover.

    Returns plain lists and numbers (JSON-ready) plus ``"val"``/``"train"`` (the data) for drawing.
    Paper: section 6.1, Figure 4.
    """
    from .augment import center_crop
    from .evaluate import features, predict
    from .train import load_checkpoint, model_from_checkpoint

    s = _preset(FIGURE4, scale, overrides)
    device = resolve_device(device)
    if data is None:
        train = load(s["dataset"], "train", root=data_root, size=256, per_class=s["train_per_class"], seed=seed,
                     progress=progress)
        val = load(s["dataset"], "val", root=data_root, size=256, per_class=s["val_per_class"], seed=seed,
                   progress=progress)
    else:
        train, val = data
    if trained is None:
        trained = train_for_kernels("paper", scale, seed, data=(train, val), data_root=data_root, device=str(device),
                                    progress=progress, epochs=s["epochs"], batch_size=s["batch_size"],
                                    train_per_class=s["train_per_class"], val_per_class=s["val_per_class"])
    if "model" in trained:
        model, stats = trained["model"], trained["stats"]
    else:  # a kept run folder, e.g. figure 3's full-scale paper net
        model, _, stats = model_from_checkpoint(load_checkpoint(Path(trained["out"]) / "checkpoint.pt"))
    model.to(device)
    stats = stats.to(device)

    shown = _picked(len(val), 8, seed)
    probs = predict(model, val.images[shown], stats, device=device)  # (8, C)
    top_p, top_c = probs.topk(min(5, probs.shape[1]), dim=1)

    fc7 = get_layer(model, "relu7")
    f_train = features(model, train.images, stats, fc7, device=device)  # (N, 4096)
    f_val = features(model, val.images, stats, fc7, device=device)  # (M, 4096)
    k = s["k"]
    queries = _picked(len(val), 5, seed + 1)
    nn_fc7, _ = nearest_neighbours(f_val, f_train, k, device=device)  # (M, k)
    pixels_train = center_crop(train.images).flatten(1)  # (N, 3*224*224) uint8
    pixels_val = center_crop(val.images).flatten(1)
    nn_pix, _ = nearest_neighbours(pixels_val, pixels_train, k, device=device)

    retrieval = {"pixels": {"precision": class_precision(nn_pix, val.labels, train.labels)},
                 "fc7": {"precision": class_precision(nn_fc7, val.labels, train.labels)}}
    for bits in s["bits"]:
        ae, info = train_autoencoder(f_train, bits, epochs=s["ae_epochs"], seed=seed, device=device)
        codes_train = binary_codes(ae, info, f_train)  # (N, bits) bool
        codes_val = binary_codes(ae, info, f_val)
        nn_code, _ = hamming_neighbours(codes_val, codes_train, k, device=device)
        retrieval[f"{bits}-bit codes"] = {"precision": class_precision(nn_code, val.labels, train.labels),
                                          "fc7_recall": neighbour_recall(nn_code, nn_fc7), "ae_loss": info["loss"],
                                          "code_bytes": bits // 8}
    return {
        "top5": {"images": shown.tolist(), "classes": top_c.tolist(), "probs": top_p.tolist(),
                 "labels": val.labels[shown].tolist()},
        "neighbours": {"queries": queries.tolist(), "fc7": nn_fc7[queries].tolist(), "pixels": nn_pix[queries].tolist()},
        "retrieval": retrieval, "k": k, "classes": list(train.classes), "train_images": len(train),
        "val_images": len(val), "metrics": trained["metrics"], "settings": {**s, "scale": scale, "seed": seed},
        "val": val, "train": train,
    }


def format_retrieval(retrieval: dict, k: int) -> str:
    """:func:`run_figure4`'s retrieval scores as a text table."""
    lines = [f"{'space':>16} {'bytes/image':>12} {f'same class @{k}':>15} {f'fc7 neighbours found':>21}"]
    for space, r in retrieval.items():
        size = {"pixels": 3 * 224 * 224, "fc7": 4096 * 4}.get(space, r.get("code_bytes"))
        recall = f"{100 * r['fc7_recall']:.1f}%" if "fc7_recall" in r else "-"
        lines.append(f"{space:>16} {size:>12,} {100 * r['precision']:>14.1f}% {recall:>21}")
    return "\n".join(lines)


def figure4_figures(result: dict, train, val, title: str = ""):
    """The two halves of Figure 4 drawn from :func:`run_figure4`'s (or a stored) result and the data
    it indexes: ``(top-5 figure, neighbours figure)``."""
    from .augment import center_crop
    from .figures import neighbour_rows, top5_bars

    t = result["top5"]
    left = top5_bars(center_crop(val.images[t["images"]]), t["classes"], t["probs"], t["labels"], result["classes"],
                     title=f"top-5 predictions{title}")
    n = result["neighbours"]
    spaces = {"fc7": torch.tensor(n["fc7"]), "pixels": torch.tensor(n["pixels"])}
    right = neighbour_rows(center_crop(val.images[n["queries"]]),
                           {space: center_crop(train.images[idx.flatten()]).unflatten(0, idx.shape)
                            for space, idx in spaces.items()},
                           title=f"nearest training images{title}")
    return left, right


def save_figure4(result: dict, base: Path | None = None, tag: str = "full") -> Path:
    """Store :func:`run_figure4`'s numbers (``figure4.json``: indices into the deterministic data
    splits, probabilities, retrieval scores) with ``settings.json`` (settings and provenance) and
    ``metrics.jsonl`` (training) under ``<base>/<tag>-s<seed>/`` (``base``: ``results/figure4``)."""
    base = Path(base) if base is not None else results_dir() / "figure4"
    folder = base / f"{tag}-s{result['settings']['seed']}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps({"settings": result["settings"], "provenance": provenance()},
                                                     indent=1))
    (folder / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in result["metrics"]))
    keep = {k: v for k, v in result.items() if k not in ("val", "train", "metrics")}
    (folder / "figure4.json").write_text(json.dumps(keep, indent=1))
    return folder


def stored_figure4(tag: str = "full") -> list[dict]:
    """The stored results of :func:`save_figure4` (``stored_runs`` dicts with ``figure4`` added)."""
    from .train import stored_runs

    runs = []
    for run in stored_runs("figure4", f"{tag}-"):
        path = results_dir() / "figure4" / run["name"] / "figure4.json"
        if path.is_file():
            runs.append({**run, "figure4": json.loads(path.read_text())})
    return runs


# ==============================================================================================
# Full-scale runs from a terminal


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m alexlib.experiments figure1|figure3|figure4 [--scale full] [--tag T]``: run one
    figure's experiment and store it under ``results/`` with provenance."""
    parser = argparse.ArgumentParser(prog="python -m alexlib.experiments", description=main.__doc__)
    parser.add_argument("figure", choices=["figure1", "figure3", "figure4"])
    parser.add_argument("--scale", default="full", choices=["smoke", "full"])
    parser.add_argument("--tag", default=None, help="results folder prefix (default: the scale)")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--runs", default=None, help="folder for the training runs' checkpoints (default: runs/)")
    args = parser.parse_args(argv)
    tag = args.tag or args.scale
    started = time.perf_counter()
    runs_dir = Path(args.runs or "runs")
    if args.figure == "figure1":
        runs = run_figure1(args.scale, data_root=args.data_root)
        print(json.dumps(summarise_figure1(runs)["by_threshold"], indent=1, default=str))
        print("stored in", save_figure1(runs, tag=tag))
    elif args.figure == "figure3":
        s = FIGURE3[args.scale]
        jobs = [("paper", seed) for seed in s["seeds"]] + [(v, s["seeds"][0]) for v in s["variants"]]
        for variant, seed in jobs:
            trained = train_for_kernels(variant, args.scale, seed, out=runs_dir / f"figure3-{tag}-{variant}-s{seed}",
                                        data_root=args.data_root, progress=True)
            if variant == "paper":
                split = tower_split(*trained["conv1"].chunk(2, dim=0))
                print(f"paper seed {seed}: tower means {split['mean']}, separation {split['separation']:.3f}")
            print("stored in", save_figure3(variant, seed, trained, tag=tag))
    else:
        seed = FIGURE3[args.scale]["seeds"][0]
        folder = runs_dir / f"figure3-{tag}-paper-s{seed}"  # reuse figure 3's first paper net when it is there
        trained = None
        if (folder / "checkpoint.pt").is_file():
            trained = {"out": str(folder), "metrics": read_metrics(folder)}
        result = run_figure4(args.scale, seed, trained=trained, data_root=args.data_root, progress=True)
        print(json.dumps(result["retrieval"], indent=1))
        print("stored in", save_figure4(result, tag=tag))
    print(f"{args.figure} at {args.scale} scale: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
