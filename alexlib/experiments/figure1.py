"""Figure 1: ReLU against tanh on CIFAR-10 (Paper: section 3.1)."""

from __future__ import annotations

import json
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .. import recipe
from .._io import atomic_write_text, provenance, results_dir, write_json
from ..augment import GPULoader, dataset_stats
from ..config import preset, resolve_device
from ..data import load
from ..engine import Diverged, evaluate, precision_for, sgd_paper
from ..errors import SettingsError
from ..model import build
from ..train import Trainer, stored_runs

# The settings per scale are the registry's "figure1" presets (alexlib.config.PRESETS).

# The two regimes Figure 1 is measured in: what the inputs are and how the weights start.
#   "paper": the 2012 code's: 0-255 pixels minus the mean image, weights ~ N(0, 0.01) (conv1's
#            N(0, 0.0001)), zero biases (layers-18pct.cfg; alexlib.model.cuda_convnet_init_);
#   "today": per-channel standardised inputs and PyTorch's default initialisation.
REGIMES: dict[str, dict] = {
    "paper": dict(inputs="mean-image", init="code"),
    "today": dict(inputs="standardise", init=False),
}


class _Resident(Trainer):
    """Figure 1's epochs: each scored by a pass over the whole training set in eval mode, ended
    early once that error reaches ``stop_at`` or the loss diverged (which is a result here, not an
    error)."""

    ks = (1,)

    def __init__(self, *args, whole, stop_at: float | None, **kwargs):
        super().__init__(*args, **kwargs)
        self.whole, self.stop_at = whole, stop_at

    def score(self, epoch: int, trained: dict) -> dict:
        scored = evaluate(self.model, self.whole, ks=(1,))
        return {
            "epoch": epoch,
            "train_err": scored["top1_err"],
            "batch_err": trained["top1_err"],
            "train_loss": scored["loss"],
            "diverged": not math.isfinite(scored["loss"]) or trained.get("diverged", False),
        }

    def diverged(self, exc: Diverged, epoch: int) -> dict:
        return {"loss": exc.loss, "top1_err": float("nan"), "diverged": True}

    def stop(self) -> bool:
        last = self.history[-1]
        return last["diverged"] or (self.stop_at is not None and last["train_err"] <= self.stop_at)


def train_resident(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    momentum: float = recipe.MOMENTUM,
    seed: int = 0,
    device="auto",
    inputs: str = "standardise",
    channels_last: bool = True,
    stop_at: float | None = None,
    max_epochs: int | None = None,
    state: str | Path | None = None,
    precision: str = "fp32",
) -> list[dict]:
    """Train ``model`` with plain SGD + momentum (no weight decay, no dropout, no augmentation: the
    paper's "no regularisation" for Figure 1) on ``images`` (N, 3, H, W) uint8 and ``labels`` (N,),
    both kept on ``device`` for the whole run (:class:`alexlib.augment.GPULoader`, whole images),
    with the library's one epoch driver, :class:`alexlib.train.Trainer`.

    ``inputs``: the input convention (:data:`alexlib.augment.INPUTS`): per-channel standardisation
    (the default, for PyTorch's default initialisation) or the paper's 0-255 pixels minus the mean
    image. ``channels_last``: batches and weights in channels-last memory (measured faster on a
    CPU: ``benchmarks/bench_cpu.py``). ``stop_at``: stop after the first epoch whose training error
    is at or below this level (%) (what Figure 1 measures is the epoch count to get there);
    ``max_epochs``: stop after this many epochs even if ``epochs`` is larger (a search run that can
    no longer win). ``state``: a file to keep the run's state in after every epoch (the Trainer's
    checkpoint: weights, momentum, random states, the curve so far); a run started again with the
    same file continues after the last finished epoch, with the numbers an uninterrupted run gives.
    ``precision``: the training steps' arithmetic (:func:`alexlib.engine.choose_precision`; the
    eval passes stay fp32).
    Returns one dict per epoch, epoch 0 being the untrained net:

    - ``train_err``: top-1 training error (%) over the whole training set in a separate pass in
      eval mode after the epoch (the definition used for "epochs to reach 25%");
    - ``batch_err``: the error counted on the epoch's batches while the weights were still moving;
    - ``train_loss`` (eval pass), ``seconds`` (wall time of the epoch, pass included), and
      ``diverged`` (True once the loss became NaN or infinite; training stops there).

    Paper: section 3.1, Figure 1.
    """
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(
            f"images must be uint8 (N, 3, H, W); got {images.dtype} {tuple(images.shape)}"
        )
    if labels.shape != (len(images),):
        raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    device = resolve_device(device)
    precision = precision_for(device, precision)  # once, not in every step's autocast
    size = images.shape[-1]
    stats = dataset_stats(images, size=size, inputs=inputs)
    model.to(device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    model.input_stats = stats
    optimizer = sgd_paper(model, lr=lr, momentum=momentum, weight_decay=0.0)
    batches = GPULoader(
        images,
        labels,
        stats,
        batch_size=batch_size,
        crop=size,
        device=device,
        seed=seed,
        drop_last=False,
        flip=False,
        alpha_std=0.0,
        channels_last=channels_last,
    )
    resident = _Resident(
        model,
        optimizer,
        batches,
        seed=seed,
        arithmetic=precision,
        check_every=len(batches),
        checkpoint=Path(state) if state is not None else None,
        stop_at=stop_at,
        whole=GPULoader(
            images,
            labels,
            stats,
            batch_size=1024,
            crop=size,
            train=False,
            device=device,
            channels_last=channels_last,
        ),
    )
    if resident.checkpoint is not None and resident.checkpoint.is_file():
        resident.restore(torch.load(resident.checkpoint, weights_only=True))
    else:  # epoch 0: the untrained net
        resident.history = [{**resident.score(0, {"top1_err": float("nan")}), "seconds": 0.0}]
    return resident.run(min(epochs, max_epochs) if max_epochs is not None else epochs)


def epochs_to_reach(errors: Sequence[float], threshold: float) -> float | None:
    """The (fractional) number of epochs after which a training-error curve first reaches
    ``threshold`` (%): ``errors[e]`` is the error after epoch ``e`` (``errors[0]``: before
    training). Between the last epoch above and the first at or below the threshold the curve is
    interpolated linearly. ``None`` if the curve never gets there. Paper: Figure 1 ("epochs to 25%
    error").

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
    candidates = [
        r
        for r in runs
        if r["role"] == "search"
        and r["activation"] == activation
        and not r["history"][-1]["diverged"]
    ]
    if not candidates:
        raise ValueError(
            f"no search run of {activation!r} finished without diverging; try smaller learning "
            f"rates"
        )

    def key(run):
        reached = epochs_to_reach([h["train_err"] for h in run["history"]], threshold)
        return (math.inf if reached is None else reached, run["history"][-1]["train_err"])

    return min(candidates, key=key)["lr"]


@dataclass
class _Sweep:
    """The runs of one :func:`run_figure1` call: how each is trained, stored and read back."""

    s: dict  # the preset
    regime: str
    tag: str  # "<scale>-<regime>": the runs' names and folder
    data: object  # CIFAR-10 training ImageTensors
    settings: dict  # what each stored run records
    device: object
    precision: str
    store: Path | None
    state_dir: Path | None
    progress: bool
    done: dict[tuple, dict] = field(default_factory=dict)  # stored runs by (act, lr, seed, role)

    def one(self, activation: str, lr: float, seed: int, role: str, max_epochs=None) -> dict:
        """One run, trained (or read back when stored), stored as soon as it ends."""
        key = (activation, lr, seed, role)
        run = self.done.get(key) or self.train(activation, lr, seed, role, max_epochs)
        if self.progress:
            last = run["history"][-1]
            print(
                f"{self.regime} {activation:4s} lr {lr:<7g} seed {seed}: training error "
                f"{last['train_err']:5.1f}% after {last['epoch']} "
                f"epochs{' (diverged)' if last['diverged'] else ''}",
                flush=True,
            )
        return run

    def all(self, lrs: dict, seeds: list, threshold: float, *, search: bool, first_seeds) -> list:
        """Every run, in :func:`run_figure1`'s order. The first rate of each activation (the best
        guess) at every seed first, so that the ratio and its spread exist early; then the rest of
        the search, which confirms that guess or replaces it (then the further seeds are run again
        at the rate it chose)."""
        one = self.one
        first = {a: one(a, rates[0], seeds[0], "search") for a, rates in lrs.items()}
        runs = list(first.values())
        now = seeds if first_seeds is None else seeds[:first_seeds]
        runs += [one(a, rates[0], seed, "seed") for a, rates in lrs.items() for seed in now[1:]]
        if not search or first_seeds is not None:
            return runs
        for activation, rates in lrs.items():
            fastest = _epochs_used(first[activation], threshold)
            for lr in rates[1:]:
                run = one(activation, lr, seeds[0], "search", max_epochs=fastest)
                runs.append(run)
                used = _epochs_used(run, threshold)
                if used is not None:
                    fastest = used if fastest is None else min(fastest, used)
        for activation, rates in lrs.items():
            lr = best_lr(runs, activation, threshold)
            if lr != rates[0]:
                runs += [one(activation, lr, seed, "seed") for seed in seeds[1:]]
        return runs

    def train(self, activation: str, lr: float, seed: int, role: str, max_epochs) -> dict:
        s, data, regime = self.s, self.data, self.regime
        torch.manual_seed(seed)
        model = build(
            "cifar4",
            num_classes=len(data.classes),
            activation=activation,
            init=REGIMES[regime]["init"],
        )
        name = _run_name(self.tag, activation, lr, seed)
        history = train_resident(
            model,
            data.images,
            data.labels,
            epochs=s["epochs"],
            lr=lr,
            batch_size=s["batch_size"],
            momentum=s["momentum"],
            seed=seed,
            device=self.device,
            inputs=REGIMES[regime]["inputs"],
            stop_at=s["thresholds"][0],
            max_epochs=max_epochs,
            state=None if self.store is None else self.state_dir / name / "state.pt",
            precision=self.precision,
        )
        run = {
            "activation": activation,
            "lr": lr,
            "seed": seed,
            "role": role,
            "history": history,
            # the epochs' seconds, summed over every session the run took (as the ledger
            # counts them); this process's share alone undercounts a resumed run
            "settings": {**self.settings, "wall_s": round(sum(h["seconds"] for h in history), 1)},
            "activations": _activations_of(
                activation, regime, seed, model, data, getattr(model, "input_stats", None)
            ),
        }
        if self.store is not None:
            save_figure1([run], base=self.store, tag=self.tag)
        return run


def run_figure1(
    scale: str = "smoke",
    *,
    regime: str = "today",
    data=None,
    data_root=None,
    download: bool | None = None,
    device="auto",
    progress: bool = True,
    store: str | Path | None = None,
    state_dir: str | Path | None = None,
    search: bool = True,
    first_seeds: int | None = None,
    only: tuple[str, int] | None = None,
    precision: str | None = None,
    **overrides,
) -> list[dict]:
    """Figure 1's experiment in one ``regime`` (:data:`REGIMES`): for each activation, one run per
    learning rate in ``lrs[regime]`` at the first seed (the search), and the chosen rate at every
    further seed. Each run trains a fresh ``cifar4`` net with :func:`train_resident` and stops
    once its training error reaches the first of ``thresholds`` (or after ``epochs``).

    Order: the first rate of each activation (the best guess) at every seed, then the rest of the
    rates at the first seed, then, if one of them was faster, the further seeds again at that rate.
    A search run stops as soon as it has trained as many epochs as the fastest run so far without
    getting there, since it can no longer be chosen. ``search=False`` stops after the first part;
    ``first_seeds=n`` also runs only the first ``n`` seeds of it (the settings stay the same, so a
    later call with every seed reads these runs back). ``only=(activation, seed)``: that one run
    at the activation's first rate (what several processes sharing one GPU each take; they store
    into the same ``store``, and a later call reads every run back). ``precision``: the training
    steps' arithmetic (default: the preset's, ``"bf16"`` at laptop scale, else ``"fp32"``;
    :func:`alexlib.engine.precision_for` says what a device makes of it), recorded as
    ``arithmetic`` in each run's settings.

    ``data``: CIFAR-10 training ``ImageTensors`` to use instead of loading ``train_per_class``
    images per class. ``store``: a folder (such as ``results/figure1``) where each run is written
    as it finishes (:func:`save_figure1`); a run already stored there is read back instead of
    trained again, so an interrupted experiment continues where it stopped. ``state_dir``: where
    runs in progress keep their per-epoch state (default: ``runs/figure1`` next to ``store``).
    Returns a list of runs: dicts with ``activation``, ``lr``, ``seed``, ``role`` ("search" or
    "seed"), ``history`` and ``settings``. Paper: section 3.1.
    """
    s = preset("figure1", scale, **overrides)
    precision = precision or s.get("precision", "fp32")
    if regime not in REGIMES:
        raise SettingsError(f"regime must be one of {', '.join(REGIMES)}; got {regime!r}")
    if regime not in s["lrs"]:
        raise SettingsError(
            f"the {scale} preset of figure1 has no learning rates for the {regime!r} regime; "
            f"it has: {', '.join(s['lrs'])}"
        )
    lrs = s["lrs"][regime]
    tag = f"{scale}-{regime}"
    threshold = s["thresholds"][0]
    if store is not None:
        store = Path(store)
        state_dir = Path(state_dir) if state_dir is not None else Path("runs") / "figure1"
    if data is None:
        data = load(
            "cifar10",
            "train",
            root=data_root,
            per_class=s["train_per_class"],
            seed=s["seeds"][0],
            download=download,
            progress=progress,
        )
    settings = {
        **{k: v for k, v in s.items() if k != "lrs"},
        "scale": scale,
        "regime": regime,
        **REGIMES[regime],
        "images": len(data),
        "arithmetic": precision_for(resolve_device(device), precision),
    }
    sweep = _Sweep(s, regime, tag, data, settings, device, precision, store, state_dir, progress)
    if store is not None:
        for r in stored_figure1(tag, base=store)[0]:
            sweep.done[(r["activation"], r["lr"], r["seed"], r["role"])] = r
    if only is not None:
        activation, seed = only
        if activation not in lrs or seed not in s["seeds"]:
            raise SettingsError(
                f"only=({activation!r}, {seed!r}): the {scale} preset has the activations "
                f"{', '.join(lrs)} and the seeds {s['seeds']}"
            )
        role = "search" if seed == s["seeds"][0] else "seed"
        return [sweep.one(activation, lrs[activation][0], seed, role)]
    return sweep.all(lrs, s["seeds"], threshold, search=search, first_seeds=first_seeds)


def summarise_figure1(runs: list[dict], thresholds: Sequence[float] | None = None) -> dict:
    """Figure 1's numbers from the runs of :func:`run_figure1`: the chosen learning rate per
    activation, and for each threshold and seed the epochs each net needed and their ratio
    (tanh epochs / ReLU epochs; the paper: about six at 25%). Returns
    ``{"lr": {act: lr}, "curves": {act: {seed: errors}}, "by_threshold": {t: {"relu": [...],
    "tanh": [...], "ratio": [...], "above": [...], "seeds": [...]}}}``; ``None`` where a net never
    got there. ``above``: where ReLU got there and tanh did not, the ratio's lower bound (the epochs
    tanh trained without getting there over ReLU's epochs); else ``None``."""
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
        row = {"seeds": seeds, "relu": [], "tanh": [], "ratio": [], "above": []}
        for seed in seeds:
            e = {a: epochs_to_reach(curves[a][seed], t) for a in ("relu", "tanh")}
            row["relu"].append(e["relu"])
            row["tanh"].append(e["tanh"])
            # ratio = epochs(tanh) / epochs(ReLU): how many times faster ReLU gets there
            row["ratio"].append(
                e["tanh"] / e["relu"] if e["relu"] and e["tanh"] is not None else None
            )
            trained = len(curves["tanh"][seed]) - 1
            row["above"].append(
                trained / e["relu"] if e["relu"] and e["tanh"] is None and trained else None
            )
        by_threshold[t] = row
    return {"lr": chosen, "curves": curves, "by_threshold": by_threshold}


def _epochs_used(run: dict, threshold: float) -> int | None:
    """The epochs a run trained to reach ``threshold`` (None if it did not, or diverged)."""
    last = run["history"][-1]
    if last["diverged"] or last["train_err"] > threshold:
        return None
    return last["epoch"]


def _run_name(tag: str, activation: str, lr: float, seed: int) -> str:
    return f"{tag}-{activation}-lr{lr:g}-s{seed}"


def save_figure1(runs: list[dict], base: Path | None = None, tag: str = "full") -> Path:
    """Store each run as ``<base>/<tag>-<activation>-lr<lr>-s<seed>/`` with ``settings.json``
    (settings and provenance) and ``metrics.jsonl`` (one line per epoch), the layout
    ``alexlib.train.stored_runs("figure1", tag)`` reads. ``base`` defaults to
    ``results/figure1``."""
    base = Path(base) if base is not None else results_dir() / "figure1"
    where = provenance()
    for r in runs:
        folder = base / _run_name(tag, r["activation"], r["lr"], r["seed"])
        folder.mkdir(parents=True, exist_ok=True)
        settings = {
            **r["settings"],
            "activation": r["activation"],
            "lr": r["lr"],
            "seed": r["seed"],
            "role": r["role"],
        }
        write_json(folder / "settings.json", {"settings": settings, "provenance": where})
        atomic_write_text(
            folder / "metrics.jsonl", "".join(json.dumps(h) + "\n" for h in r["history"])
        )
        if r.get("activations"):
            write_json(folder / "activations.json", {**r["activations"], "provenance": where})
    return base


def stored_figure1(tag: str = "full", base: Path | None = None) -> tuple[list[dict], dict | None]:
    """The runs stored by :func:`save_figure1` under ``base`` (default ``results/figure1``) whose
    folder names start with ``tag`` (``"laptop-paper"``, or ``"laptop"`` for both regimes), ``[]``
    if none, and the provenance of the first (``None`` if none), in :func:`run_figure1`'s format."""
    stored = stored_runs("figure1", f"{tag}-", base=base)
    runs = [
        {
            "activation": s["settings"]["activation"],
            "lr": s["settings"]["lr"],
            "seed": s["settings"]["seed"],
            "role": s["settings"]["role"],
            "history": s["metrics"],
            "settings": s["settings"],
            "provenance": s["provenance"],
            "activations": _read_json(base, s["name"], "activations.json"),
        }
        for s in stored
    ]
    return runs, (stored[0]["provenance"] if stored else None)


def format_figure1(summary: dict) -> str:
    """:func:`summarise_figure1` as a text table: per threshold and seed, the epochs each net needed
    and the ratio tanh / ReLU, then the ratio's mean and range over the seeds where both got
    there."""
    lines = [
        "learning rates chosen: " + ", ".join(f"{a} {lr:g}" for a, lr in summary["lr"].items())
    ]
    fmt = lambda v: "not reached" if v is None else f"{v:.2f}"
    for t, row in summary["by_threshold"].items():
        lines.append(f"\nepochs to {t:g}% training error")
        lines.append(f"{'seed':>6} {'ReLU':>12} {'tanh':>12} {'tanh / ReLU':>12}")
        above = row.get("above", [None] * len(row["seeds"]))
        for seed, r, h, q, lo in zip(row["seeds"], row["relu"], row["tanh"], row["ratio"], above):
            shown = f"{q:.2f}" if q is not None else f"> {lo:.2f}" if lo is not None else "-"
            lines.append(f"{seed:>6} {fmt(r):>12} {fmt(h):>12} {shown:>12}")
        ratios = [q for q in row["ratio"] if q is not None]
        bounds = [lo for lo in above if lo is not None]
        if ratios:
            mean = sum(ratios) / len(ratios)
            lines.append(
                f"ratio over {len(ratios)} of {len(row['seeds'])} seeds: mean {mean:.2f}, "
                f"range {min(ratios):.2f} to {max(ratios):.2f}"
            )
        elif not bounds:
            lines.append("no seed where both nets reached this level: no ratio")
        if bounds:
            lines.append(
                f"in {len(bounds)} seed(s) tanh did not get there in the epochs it trained: "
                f"the ratio is above {min(bounds):.2f} there"
            )
    return "\n".join(lines)


def _read_json(base: Path | None, name: str, file: str) -> dict | None:
    path = (Path(base) if base is not None else results_dir() / "figure1") / name / file
    return json.loads(path.read_text()) if path.is_file() else None


# the training images activation_stats looks at: a fixed random 2,000 of the training set
_ACTIVATION_IMAGES = 2000


def _activations_of(activation: str, regime: str, seed: int, model: nn.Module, data, stats) -> dict:
    """:func:`activation_stats` of the untrained net (rebuilt from its seed) and of ``model``."""
    if stats is None:
        inputs = REGIMES[regime]["inputs"]
        stats = dataset_stats(data.images, size=data.images.shape[-1], inputs=inputs)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(data.images), generator=g)[:_ACTIVATION_IMAGES]
    images = data.images[idx]
    torch.manual_seed(seed)
    untrained = build(
        "cifar4", num_classes=len(data.classes), activation=activation, init=REGIMES[regime]["init"]
    ).to(next(model.parameters()).device)
    return {
        "images": len(images),
        "init": activation_stats(untrained, images, stats),
        "end": activation_stats(model, images, stats),
    }


def backfill_activations(
    scale: str, regime: str, store: str | Path, state_dir: str | Path, data
) -> int:
    """Add ``activations.json`` to every stored run of ``scale`` and ``regime`` under ``store``
    that lacks one, from the weights its last epoch left in ``state_dir`` (runs stored before
    :func:`run_figure1` measured it). Returns how many it added."""
    tag = f"{scale}-{regime}"
    added = 0
    stats = dataset_stats(data.images, size=data.images.shape[-1], inputs=REGIMES[regime]["inputs"])
    for r in stored_figure1(tag, base=Path(store))[0]:
        name = _run_name(tag, r["activation"], r["lr"], r["seed"])
        state = Path(state_dir) / name / "state.pt"
        if r["activations"] or not state.is_file():
            continue
        model = build(
            "cifar4",
            num_classes=len(data.classes),
            activation=r["activation"],
            init=REGIMES[regime]["init"],
        )
        model.load_state_dict(torch.load(state, weights_only=True)["model"])
        found = _activations_of(r["activation"], regime, r["seed"], model, data, stats)
        write_json(
            Path(store) / name / "activations.json",
            {**found, "provenance": provenance(), "from": "the state after the last epoch"},
        )
        added += 1
    return added


def describe_figure1(runs: list[dict], where: dict | None, lrs: dict | None = None) -> str:
    """Where stored Figure 1 runs come from, in one paragraph wrapped at 88 columns: scale and
    regime, images, how many runs and their wall time, the machine (CPU model and cores, or
    GPU), torch, commit and date, and which rates of the search have run (``lrs``: the preset's
    rates for this regime, to say which are still to come). Every commit the runs were made at
    is listed."""
    if not runs:
        return "no runs stored"
    s = runs[0]["settings"]
    walls = [sum(h["seconds"] for h in r["history"]) for r in runs]
    where = where or {}
    commits = sorted({str(r.get("provenance", where).get("commit", "?")) for r in runs})
    machine = where.get("device", "?")
    if str(machine).startswith("cpu"):
        machine = f"{where.get('cpu', 'CPU')}, {where.get('cores', '?')} cores"
    tried = {}
    for r in runs:
        if r["role"] == "search":
            tried.setdefault(r["activation"], set()).add(r["lr"])
    search = []
    for activation in sorted(tried, key=["relu", "tanh"].index):
        text = f"{activation} " + ", ".join(f"{lr:g}" for lr in sorted(tried[activation]))
        todo = [lr for lr in (lrs or {}).get(activation, ()) if lr not in tried[activation]]
        if todo:
            text += f" (still to run: {', '.join(f'{lr:g}' for lr in todo)})"
        search.append(text)
    hours, minutes = divmod(round(sum(walls) / 60), 60)
    text = (
        f"{s.get('scale', '?')} scale, {s.get('regime', '?')} regime "
        f"({s.get('inputs', '?')} inputs): {s.get('images', 0):,} CIFAR-10 training images, "
        f"{len(runs)} runs, {hours} h {minutes:02d} min of training in all "
        f"({min(walls) / 60:.0f}-{max(walls) / 60:.0f} min a run); {machine}, "
        f"torch {where.get('torch', '?')}, "
        f"commit {', '.join(c[:7] for c in commits)}, "
        f"{str(where.get('date', '?'))[:10]}. Rates tried: {'; '.join(search)}."
    )
    return textwrap.fill(text, width=88)  # the book's code and output boxes hold 88 columns


@torch.no_grad()
def activation_stats(model: nn.Module, images: torch.Tensor, stats=None) -> list[dict]:
    """What each activation of a ``cifar4`` net sees on ``images`` (uint8, whole 32x32 images,
    prepared with ``stats`` or the model's ``input_stats``): per layer, the standard deviation of
    its input (the pre-activation) and the share of units in the flat part of the unit, where the
    gradient (nearly) vanishes: ``|tanh| > 0.9`` (slope below 0.19), or ReLU's zero side. Figure
    1's nets start in one regime and move to another as their weights grow; this shows where.
    """
    stats = stats if stats is not None else model.input_stats
    device = next(model.parameters()).device
    acts = [m for m in model.features if isinstance(m, (nn.ReLU, nn.Tanh))]
    seen: list[dict] = [{"n": 0, "sq": 0.0, "flat": 0} for _ in acts]

    def hook(i):
        def record(module, inputs):
            z = inputs[0].float()
            seen[i]["n"] += z.numel()
            seen[i]["sq"] += float(z.square().sum())
            flat = z.tanh().abs() > 0.9 if isinstance(module, nn.Tanh) else z <= 0
            seen[i]["flat"] += int(flat.sum())

        return record

    handles = [a.register_forward_pre_hook(hook(i)) for i, a in enumerate(acts)]
    was = model.training
    model.eval()
    try:
        size = images.shape[-1]
        batches = GPULoader(
            images,
            torch.zeros(len(images), dtype=torch.long),
            stats,
            batch_size=500,
            crop=size,
            train=False,
            device=device,
        )
        for x, _ in batches:
            model(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return [
        {
            "layer": f"conv{i + 1}",
            "activation": "tanh" if isinstance(a, nn.Tanh) else "relu",
            "input_std": math.sqrt(s["sq"] / s["n"]),
            "flat_share": s["flat"] / s["n"],
        }
        for i, (a, s) in enumerate(zip(acts, seen))
    ]
