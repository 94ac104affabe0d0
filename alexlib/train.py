"""A minimal trainer: SGD with momentum over uint8 image tensors, per-epoch metrics.

    >>> from alexlib.train import fit
    >>> history = fit(model, train, val, epochs=2, lr=0.01, batch_size=32, device="cpu", seed=0)
    >>> history[-1]["val_err"]  # top-1 error in percent after the last epoch

``train`` and ``val`` are anything with ``.images`` (N, 3, H, W) uint8 and ``.labels`` (N,) int64,
e.g. ``alexlib.data.load(...)``. Batches are turned into floats on the device, scaled to [0, 1]
and normalised per channel. Paper: section 5 (details of learning).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .config import resolve_device
from .data import atomic_save, atomic_write_text

__all__ = ["History", "fit", "accuracy", "error_rates", "sgd_paper", "channel_stats", "DEMOS", "demo_settings",
           "RunSettings", "TrainingError", "train_run", "read_metrics", "load_checkpoint", "model_from_checkpoint",
           "atomic_save", "provenance", "paper_sgd_step", "stored_runs"]


class History(list):
    """Per-epoch metrics of :func:`fit`: a list of dicts, one per epoch, with keys ``epoch``,
    ``train_loss``, ``train_err`` (top-1 %, counted on the fly while training, dropout on),
    ``val_err``, ``val_top5_err`` (top-1/top-5 %, eval mode), ``seconds`` (wall time of the epoch)
    and, with ``eval_train=True``, ``train_eval_err`` (top-1 % on the training set in eval mode).
    """

    def column(self, key: str) -> list[float]:
        """The values of ``key`` over the epochs, e.g. ``history.column("val_err")``."""
        if self and key not in self[0]:
            raise KeyError(f"History has no {key!r}; it has: {', '.join(self[0])}")
        return [row[key] for row in self]

    def table(self) -> str:
        """The epochs as a small text table."""
        if not self:
            return "(no epochs)"
        keys = list(self[0])
        lines = ["  ".join(f"{k:>14}" for k in keys)]
        for row in self:
            lines.append("  ".join(f"{row[k]:>14.4g}" if isinstance(row[k], float) else f"{row[k]:>14}" for k in keys))
        return "\n".join(lines)


def accuracy(output: torch.Tensor, target: torch.Tensor, topk: Sequence[int] = (1, 5)) -> list[float]:
    """Percent of rows of ``output`` (N, C) whose ``target`` (N,) is among the ``k`` highest scores,
    for each ``k`` in ``topk``. The paper reports errors: ``100 - accuracy``. Paper: section 6.
    """
    if output.dim() != 2 or target.dim() != 1 or output.shape[0] != target.shape[0]:
        raise ValueError(
            f"accuracy() wants output (N, C) and target (N,); got {tuple(output.shape)} and {tuple(target.shape)}"
        )
    if max(topk) > output.shape[1]:
        raise ValueError(f"top-{max(topk)} asked for, but the output has only {output.shape[1]} classes")
    if output.shape[0] == 0:
        raise ValueError("accuracy() of an empty batch is undefined")
    maxk = max(topk)
    _, pred = output.topk(maxk, dim=1)  # (N, maxk), best first
    correct = pred.eq(target[:, None])  # (N, maxk)
    n = output.shape[0]
    return [correct[:, :k].any(dim=1).sum().item() * 100.0 / n for k in topk]


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images (N, 3, H, W) scaled to [0, 1]: two (3,) tensors.

    A simpler stand-in for the paper's per-pixel mean image (section 2)."""
    _check_images(images, "images")
    x = images.to(torch.float64) / 255  # (N, 3, H, W)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return mean.float(), std.float()


def sgd_paper(model: nn.Module, *, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4,
              fused: bool | None = None) -> torch.optim.SGD:
    """SGD with momentum and weight decay on the weights only (biases and norm parameters excluded),
    as the original code does. Paper: section 5,

        v <- 0.9 v - 0.0005 lr w - lr grad(L);   w <- w + v.

    PyTorch keeps v' = -v / lr and updates v' <- 0.9 v' + grad(L) + 0.0005 w; w <- w - lr v', the
    same steps while lr is constant (they differ only in how a change of lr acts on the velocity).

    ``fused``: PyTorch's fused SGD kernel (one launch for every parameter); ``None`` uses it when all
    parameters are on a CUDA device. The same arithmetic either way.
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if fused is None:
        fused = all(p.is_cuda for p in decay + no_decay) and bool(decay + no_decay)
    return torch.optim.SGD([g for g in groups if g["params"]], lr=lr, momentum=momentum, fused=fused or None)


def _check_images(images: torch.Tensor, what: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(f"{what} must be a uint8 tensor (N, 3, H, W) as alexlib.data.load returns; got {got}")


def _check_split(data, what: str) -> None:
    if not hasattr(data, "images") or not hasattr(data, "labels"):
        raise TypeError(f"{what} needs .images and .labels (e.g. alexlib.data.load(...)); got {type(data).__name__}")
    _check_images(data.images, f"{what}.images")
    if data.labels.dtype != torch.int64 or data.labels.shape != (data.images.shape[0],):
        raise TypeError(
            f"{what}.labels must be int64 of shape ({data.images.shape[0]},); "
            f"got {data.labels.dtype} {tuple(data.labels.shape)}"
        )
    if data.images.shape[0] == 0:
        raise ValueError(f"{what} is empty")


def _batches(n: int, batch_size: int, generator: torch.Generator | None) -> Iterable[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def _prepare(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, device: torch.device) -> torch.Tensor:
    # uint8 (B, 3, H, W) -> float (B, 3, H, W): x = (pixel / 255 - mean_c) / std_c
    x = images.to(device, non_blocking=True).float().div_(255)
    return (x - mean.to(device)[:, None, None]) / std.to(device)[:, None, None]


@torch.no_grad()
def error_rates(
    model: nn.Module,
    data,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> dict[str, float]:
    """Top-1 and top-5 error (%) and mean cross-entropy of ``model`` on ``data`` in eval mode
    (one centre view: the images as given). ``mean``/``std``: per-channel, as in :func:`fit`
    (default: ``data``'s own). Returns ``{"top1_err", "top5_err", "loss"}``. Paper: section 6."""
    _check_split(data, "data")
    device = resolve_device(device)
    if mean is None or std is None:
        mean, std = channel_stats(data.images)
    was_training = model.training
    model.eval()
    n = data.images.shape[0]
    correct1 = correct5 = loss_sum = 0.0
    try:
        for idx in _batches(n, batch_size, None):
            x = _prepare(data.images[idx], mean, std, device)
            y = data.labels[idx].to(device)
            out = model(x)  # (B, classes)
            top1, top5 = accuracy(out, y, (1, min(5, out.shape[1])))
            correct1 += top1 * len(idx) / 100
            correct5 += top5 * len(idx) / 100
            loss_sum += F.cross_entropy(out, y, reduction="sum").item()
    finally:
        model.train(was_training)
    return {"top1_err": 100 - 100 * correct1 / n, "top5_err": 100 - 100 * correct5 / n, "loss": loss_sum / n}


def fit(
    model: nn.Module,
    train,
    val,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    device: str | torch.device = "auto",
    seed: int = 0,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
    eval_train: bool = False,
) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs with SGD (:func:`sgd_paper`), measuring
    ``val`` after each epoch, and return the :class:`History`.

    ``train``/``val``: ``.images`` (N, 3, H, W) uint8 and ``.labels`` (N,) int64 (``val`` may be
    None). Each batch is moved to ``device``, passed through ``augment`` if given (a function of a
    uint8 batch (B, 3, H, W) on the device returning a uint8 batch, e.g. random crops and flips;
    its output size is the model's input size), scaled to [0, 1] and normalised with the per-channel
    ``mean``/``std`` (default: the training set's, :func:`channel_stats`). Loss: cross-entropy
    (the paper's multinomial logistic regression). The learning rate is constant (no schedule yet).
    ``seed`` fixes the initial shuffling and dropout masks: two runs with the same seed and the
    same initial weights give identical histories on the CPU.
    ``eval_train``: also measure the training set's top-1 error in eval mode after each epoch
    (dropout off), the fair comparison with ``val_err`` when studying over-fitting.

    Paper: section 5.
    """
    _check_split(train, "train")
    if val is not None:
        _check_split(val, "val")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    num_classes = _num_classes(model, train)
    if int(train.labels.max()) >= num_classes:
        raise ValueError(
            f"train has label {int(train.labels.max())} but the model has {num_classes} outputs; "
            f"build the model with num_classes={int(train.labels.max()) + 1} (or more)"
        )
    device = resolve_device(device)
    if mean is None or std is None:
        mean, std = channel_stats(train.images)
    model.to(device)
    optimizer = sgd_paper(model, lr=lr, momentum=momentum, weight_decay=weight_decay)
    torch.manual_seed(seed)  # dropout masks and any torch-random augmentation
    generator = torch.Generator().manual_seed(seed)  # the order of the training images
    history = History()
    n = train.images.shape[0]
    bar = tqdm(range(1, epochs + 1), desc="epochs", unit="epoch", disable=not progress)
    for epoch in bar:
        start = time.perf_counter()
        model.train()
        loss_sum = wrong = 0.0
        for idx in _batches(n, batch_size, generator):
            images = train.images[idx].to(device)
            if augment is not None:
                images = augment(images)
            x = _prepare(images, mean, std, device)  # (B, 3, H, W) float
            y = train.labels[idx].to(device)  # (B,)
            out = model(x)  # (B, classes)
            loss = F.cross_entropy(out, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the loss became {loss.item()} in epoch {epoch}; lr={lr} is probably too high for this model"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(idx)
            wrong += (out.argmax(dim=1) != y).sum().item()
        row = {"epoch": epoch, "train_loss": loss_sum / n, "train_err": 100.0 * wrong / n}
        if eval_train:
            row["train_eval_err"] = error_rates(model, train, batch_size=256, device=device, mean=mean, std=std)["top1_err"]
        if val is not None:
            rates = error_rates(model, val, batch_size=256, device=device, mean=mean, std=std)
            row["val_err"], row["val_top5_err"] = rates["top1_err"], rates["top5_err"]
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k.endswith(("loss", "err"))})
    return history


def _num_classes(model: nn.Module, train) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if last:
        return last[-1].out_features
    return int(train.labels.max()) + 1


# ----------------------------------------------------------------------------------------------
# Settings of the chapters' small experiments, per scale. Smoke: CPU, about a minute, a small
# balanced real subset; full: a GPU, more data and epochs. (Kept here, not in config.py, because
# they belong to these experiments only.)

DEMOS: dict[str, dict[str, dict]] = {
    # Chapter 2: cifar4 with ReLU vs tanh on CIFAR-10 (Figure 1 in miniature)
    "relu_vs_tanh": {
        "smoke": dict(train_per_class=100, val_per_class=20, epochs=8, batch_size=32, lr=0.01),
        "full": dict(train_per_class=None, val_per_class=None, epochs=30, batch_size=128, lr=0.01),
    },
    # Chapter 6: the paper's fc head alone (alexlib.model.paper_head) on CIFAR-10 pixels,
    # with and without dropout
    "dropout": {
        "smoke": dict(train_per_class=50, val_per_class=50, epochs=25, batch_size=32, lr=0.01, hidden=1024),
        "full": dict(train_per_class=500, val_per_class=None, epochs=100, batch_size=128, lr=0.01, hidden=4096),
    },
}


def demo_settings(name: str, scale: str) -> dict:
    """The settings of the chapter experiment ``name`` (a key of ``DEMOS``) at ``scale``."""
    if name not in DEMOS:
        raise KeyError(f"unknown demo {name!r}; the demos are: {', '.join(DEMOS)}")
    if scale not in DEMOS[name]:
        raise ValueError(f"scale must be one of {sorted(DEMOS[name])}, got {scale!r}")
    return dict(DEMOS[name][scale])


# ==============================================================================================
# The paper's recipe at full size: a resumable training run with checkpoints and a metrics file.
#
#     settings = RunSettings(dataset="imagenette", variant="paper", epochs=90)
#     summary = train_run(settings, out="runs/paper-s0")      # or: python -m alexlib train ...
#
# Paper: section 5 (details of learning) and section 4.1 (the input pipeline it trains on).


@dataclass
class RunSettings:
    """Everything that defines a training run; stored in ``settings.json`` and in every checkpoint.

    Defaults are the paper's: the ``paper`` net, batch 128, SGD momentum 0.9, weight decay 5e-4 on
    the weights, lr 0.01 divided by 10 when the validation error stops improving (at most three
    times), 256x256 images, random 224 crops, reflections and PCA colour noise, about 90 epochs.
    """

    dataset: str = "imagenette"
    variant: str = "paper"
    epochs: int = 90
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "plateau"  # "plateau" (the paper), "fixed" (the code's drops), or "constant"
    plateau_patience: int = 4  # epochs without a new best validation error before lr /= 10
    max_lr_drops: int = 3  # the paper divided the learning rate three times
    fixed_drops: tuple[float, ...] = (25 / 90, 51 / 90, 79 / 90)  # the code's epochs 25, 51, 79 of 90
    seed: int = 0
    train_per_class: int | None = None
    val_per_class: int | None = None
    image_size: int = 256  # images are rescaled and centre-cropped to this (Paper: section 2)
    crop: int = 224  # training patches and test views (Paper: section 4.1)
    flip: bool = True
    pca_colour: bool = True
    dropout: float | None = None  # None: the variant's own (0.5 in fc6/fc7 for the ImageNet nets)
    data_root: str | None = None
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA (ignored on the CPU)
    channels_last: bool = True
    compile: bool = False
    fast: bool = True  # on CUDA, alexlib.fast.speed_up: equal, faster layers (same parameters, same state dict)
    # 0: a checkpoint after every epoch. More: at most one every this many minutes, and always after the
    # last epoch; a crash then loses at most that much work (a fast GPU finishes an Imagenette epoch in
    # well under a second, while the 61M-parameter checkpoint with its momentum is about 0.5 GB to write)
    checkpoint_minutes: float = 0.0
    chance_epochs: int = 3  # report a run whose loss sits at ln(classes) for this many epochs

    def __post_init__(self):
        if self.schedule not in ("plateau", "fixed", "constant"):
            raise ValueError(f"schedule must be 'plateau', 'fixed' or 'constant', got {self.schedule!r}")
        for name in ("epochs", "batch_size", "image_size", "crop"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive whole number, got {value!r}")
        if self.crop > self.image_size:
            raise ValueError(f"crop ({self.crop}) cannot be larger than image_size ({self.image_size})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.checkpoint_minutes, (int, float)) and 0 <= self.checkpoint_minutes < math.inf):
            raise ValueError(f"checkpoint_minutes must be a number >= 0 (0: after every epoch), "
                             f"got {self.checkpoint_minutes!r}")
        self.fixed_drops = tuple(self.fixed_drops)

    @classmethod
    def for_scale(cls, scale: str, **overrides) -> "RunSettings":
        """The ``smoke`` (CPU, a minute: 20 images per class, 2 epochs, batch 32) or ``full`` preset."""
        from .config import get_config

        cfg = get_config(scale)
        preset = dict(epochs=cfg.epochs, batch_size=cfg.batch_size, train_per_class=cfg.train_per_class,
                      val_per_class=cfg.val_per_class)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown run setting(s) {unknown}; the settings are: {sorted(known)}")
        return cls(**{**preset, **{k: v for k, v in overrides.items() if v is not None}})


class TrainingError(RuntimeError):
    """A run that cannot go on (diverged, out of memory, bad settings), with what to try."""


def provenance() -> dict:
    """Where and with what a result was made: machine, device, versions, commit, date."""
    import platform
    import subprocess

    info = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)",
    }
    try:
        repo = Path(__file__).resolve().parents[1]
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            info["commit"] = commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`train_run` (``weights_only=True``: no code is unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"{path} is not a readable checkpoint ({exc})") from None


def model_from_checkpoint(checkpoint: dict):
    """Rebuild a checkpoint's trained network (CPU, eval mode): ``(model, settings, stats)``, where
    ``stats`` is the training set's mean image and colour PCA that its inputs must be prepared with."""
    from .augment import DatasetStats
    from .model import build

    settings = RunSettings(**checkpoint["settings"])
    model = build(settings.variant, num_classes=checkpoint["num_classes"], **_model_options(settings))
    model.load_state_dict(checkpoint["model"])
    s = checkpoint["stats"]
    stats = DatasetStats(s["mean"], s["eigvals"], s["eigvecs"], int(s["n_images"]), "checkpoint")
    return model.eval(), settings, stats


def _model_options(settings: RunSettings) -> dict:
    return {} if settings.dropout is None else {"dropout": settings.dropout}


class _Schedule:
    """The learning rate per epoch: the paper's divide-by-10-on-plateau, the code's fixed drops, or constant."""

    def __init__(self, settings: RunSettings):
        self.s = settings
        self.lr = settings.lr
        self.best = float("inf")
        self.bad_epochs = 0
        self.drops = 0

    def step(self, epoch: int, val_err: float | None) -> None:
        """Called after ``epoch`` (1-based) with its validation error; sets the next epoch's lr."""
        s = self.s
        if s.schedule == "fixed":
            boundaries = [round(f * s.epochs) for f in s.fixed_drops]
            self.drops = sum(epoch >= b for b in boundaries)
        elif s.schedule == "plateau" and val_err is not None:
            if val_err < self.best - 1e-9:
                self.best, self.bad_epochs = val_err, 0
            else:
                self.bad_epochs += 1
                if self.bad_epochs >= s.plateau_patience and self.drops < s.max_lr_drops:
                    self.drops += 1
                    self.bad_epochs = 0
        self.lr = s.lr * 0.1 ** self.drops

    def state_dict(self) -> dict:
        return {"lr": self.lr, "best": self.best, "bad_epochs": self.bad_epochs, "drops": self.drops}

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.best, self.bad_epochs, self.drops = state["lr"], state["best"], state["bad_epochs"], state["drops"]


def _rng_state(loader_generator: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "loader": loader_generator.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, loader_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    loader_generator.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _dist():
    """(rank, world size) when launched by torchrun with an initialised process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _oom_message(settings: RunSettings, device: torch.device) -> str:
    total = torch.cuda.get_device_properties(device).total_memory / 2**30 if device.type == "cuda" else 0
    smaller = max(1, settings.batch_size // 2)
    return (f"out of memory at batch size {settings.batch_size} on {device} ({total:.0f} GiB). Try "
            f"--batch-size {smaller} (the paper used 128; scale lr with it if you change it), or leave out "
            "--compile. The last checkpoint is kept; --resume continues from it.")


def train_run(settings: RunSettings, out: str | os.PathLike, *, resume: bool = False, progress: bool = True,
              data=None) -> dict:
    """Train with ``settings``, writing into the folder ``out``:

    - ``settings.json``: the settings and the run's provenance (machine, versions, commit, date);
    - ``metrics.jsonl``: one JSON object per epoch, appended as soon as the epoch ends: train loss,
      train top-1/top-5 error (on the augmented batches, dropout on), val loss and top-1/top-5 error
      (centre crop), lr, images/s, wall time;
    - ``checkpoint.pt``: model, optimiser, schedule, random-number states and metrics after the last
      finished epoch, written atomically. ``resume=True`` continues from it and ends with the same
      numbers as a run that was never interrupted (same seed, same device).

    A loss that becomes NaN or infinite stops the run (:class:`TrainingError`) with the last good
    checkpoint kept; a loss that stays at ln(classes) (chance) is reported with what to check.
    ``data``: optional ``(train, val)`` ``ImageTensors`` already decoded at ``image_size`` (else
    loaded from ``settings.dataset``). Returns the last epoch's metrics with ``"out"`` added.
    Paper: section 5.
    """
    from .augment import PCA_ALPHA_STD, GPULoader, dataset_stats
    from .data import load
    from .evaluate import predict, topk_errors
    from .model import build

    out = Path(out)
    rank, world = _dist()
    ckpt_path = out / "checkpoint.pt"
    metrics_path = out / "metrics.jsonl"
    if ckpt_path.exists() and not resume:
        raise TrainingError(f"{out} already holds a run (checkpoint.pt). Pass --resume to continue it, "
                            "or choose another --out folder; nothing was overwritten.")
    if resume and not ckpt_path.exists() and metrics_path.exists():
        raise TrainingError(f"{out} has metrics but no checkpoint.pt to resume from.")
    checkpoint = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if checkpoint is not None:
        saved = RunSettings(**checkpoint["settings"])
        if dataclasses.asdict(saved) != dataclasses.asdict(settings):
            changed = {k: (v, getattr(settings, k)) for k, v in dataclasses.asdict(saved).items()
                       if getattr(settings, k) != v}
            # more epochs is the one change that makes sense on resume; anything else is a different run
            if set(changed) - {"epochs", "device", "compile", "fast", "checkpoint_minutes", "data_root"}:
                raise TrainingError(f"--resume with different settings {changed} (saved, given); "
                                    "resume with the run's own settings, or start a new --out folder.")

    device = resolve_device(settings.device)
    if data is None:
        train = load(settings.dataset, "train", root=settings.data_root, size=settings.image_size,
                     per_class=settings.train_per_class, seed=settings.seed, progress=progress and rank == 0)
        val = load(settings.dataset, "val", root=settings.data_root, size=settings.image_size,
                   per_class=settings.val_per_class, seed=settings.seed, progress=progress and rank == 0)
    else:
        train, val = data
    num_classes = len(train.classes)
    stats = dataset_stats(train, size=settings.image_size)

    torch.manual_seed(settings.seed)
    model = build(settings.variant, num_classes=num_classes, **_model_options(settings))
    model.to(device)
    if settings.channels_last and device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    if settings.fast and device.type == "cuda":
        from .fast import speed_up

        speed_up(model, device=device)  # same parameters and state dict; a no-op on the CPU
    optimizer = sgd_paper(model, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    schedule = _Schedule(settings)
    loader = GPULoader(train, stats=stats, batch_size=settings.batch_size, crop=settings.crop, train=True,
                       device=device, seed=settings.seed, flip=settings.flip,
                       alpha_std=PCA_ALPHA_STD if settings.pca_colour else 0.0)
    if len(loader) == 0:
        raise TrainingError(f"{len(train)} training images make no full batch of {settings.batch_size}: use "
                            f"--batch-size {max(1, len(train) // 2)} or fewer, or more images per class.")
    history: list[dict] = []
    start_epoch = 1
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        schedule.load_state_dict(checkpoint["schedule"])
        _set_rng_state(checkpoint["rng"], loader.generator)
        history = list(checkpoint["history"])
        start_epoch = checkpoint["epoch"] + 1
    step_model = model
    if world > 1:
        step_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if settings.compile:
        step_model = torch.compile(step_model)

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        meta = {"settings": dataclasses.asdict(settings), "provenance": provenance(), "world_size": world,
                "train_images": len(train), "val_images": len(val), "classes": list(train.classes)}
        (out / "settings.json").write_text(json.dumps(meta, indent=1))
        # metrics.jsonl holds exactly the finished epochs of the checkpoint: drop lines of an epoch a
        # crash interrupted after its line was written but before its checkpoint was
        atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in history))

    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if settings.amp and device.type == "cuda"
                else contextlib.nullcontext())
    chance = math.log(num_classes)
    last = history[-1] if history else {}
    last_checkpoint, checkpoint_epoch = time.monotonic(), start_epoch - 1
    for epoch in range(start_epoch, settings.epochs + 1):
        for group in optimizer.param_groups:
            group["lr"] = schedule.lr
        model.train()
        started = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        wrong1 = torch.zeros((), device=device)
        wrong5 = torch.zeros((), device=device)
        seen = 0
        steps = len(loader)
        bar = tqdm(loader, total=steps, desc=f"epoch {epoch}/{settings.epochs}", disable=not progress or rank != 0,
                   leave=False)
        for step, (x, y) in enumerate(bar, 1):
            if world > 1:  # every rank draws the same global batch; each trains on its own share
                x, y = x[rank::world], y[rank::world]
            if settings.channels_last and device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            try:
                with autocast:
                    logits = step_model(x)  # (B, classes)
                    loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            except torch.OutOfMemoryError:
                raise TrainingError(_oom_message(settings, device)) from None
            with torch.no_grad():
                loss_sum += loss.detach() * len(y)
                top5 = logits.detach().topk(min(5, num_classes), dim=1).indices
                wrong1 += (top5[:, 0] != y).sum()
                wrong5 += (~(top5 == y[:, None]).any(dim=1)).sum()
            seen += len(y)
            if step % 20 == 0 or step == steps:  # one host sync every 20 steps, not every step
                if not torch.isfinite(loss_sum):
                    raise TrainingError(
                        f"the training loss became {loss_sum.item()} in epoch {epoch}, step {step}. The last good "
                        f"checkpoint (epoch {checkpoint_epoch}) is kept in {out}. Try a lower learning rate "
                        f"(--lr {settings.lr / 10:g}), check that inputs are mean-subtracted pixels as the paper's "
                        "init expects, and keep the paper's biases (1 in conv2, conv4, conv5, fc6, fc7)."
                    )
                if progress and rank == 0:
                    bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}")
        train_seconds = time.perf_counter() - started
        probs = predict(model, val.images, stats, crop=settings.crop, device=device, amp=settings.amp)
        val_err = topk_errors(probs, val.labels)
        val_loss = F.nll_loss(probs.clamp_min(1e-12).log(), val.labels).item()
        row = {
            "epoch": epoch, "lr": schedule.lr,
            "train_loss": loss_sum.item() / seen, "train_top1_err": 100 * wrong1.item() / seen,
            "train_top5_err": 100 * wrong5.item() / seen,
            "val_loss": val_loss, "val_top1_err": val_err["top1_err"], "val_top5_err": val_err["top5_err"],
            "images_per_s": seen * world / train_seconds, "seconds": time.perf_counter() - started,
        }
        history.append(row)
        schedule.step(epoch, row["val_top1_err"])
        recent = [h["train_loss"] for h in history[-settings.chance_epochs:]]
        if len(recent) == settings.chance_epochs and all(abs(v - chance) < 0.02 * chance for v in recent):
            row["warning"] = "stuck at chance"
            if rank == 0:
                warnings.warn(
                    f"the training loss has stayed at ln({num_classes}) = {chance:.3f} (chance) for "
                    f"{settings.chance_epochs} epochs: the net is not learning yet. Check the initialisation "
                    "against the input scale (the paper's N(0, 0.01) weights expect mean-subtracted pixels in "
                    "[-128, 128], not [0, 1]), try a smaller lr, and the biases (the paper: 1 in conv2, 4, 5, fc6, "
                    "fc7; Caffe used 0.1). Deep AlexNets can sit at chance for an epoch or two before they start.",
                    stacklevel=2,
                )
        due = (settings.checkpoint_minutes == 0 or epoch == settings.epochs
               or time.monotonic() - last_checkpoint >= 60 * settings.checkpoint_minutes)
        if rank == 0 and due:
            atomic_save({
                "settings": dataclasses.asdict(settings), "epoch": epoch, "num_classes": num_classes,
                "classes": list(train.classes), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "rng": _rng_state(loader.generator), "history": history,
                "stats": {"mean": stats.mean.cpu(), "eigvals": stats.eigvals.cpu(), "eigvecs": stats.eigvecs.cpu(),
                          "n_images": stats.n_images},
            }, ckpt_path)
            last_checkpoint, checkpoint_epoch = time.monotonic(), epoch
        if rank == 0:
            # a line per epoch; on --resume the file is cut back to the checkpoint's epochs
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            if progress:
                tqdm.write(f"epoch {epoch:3d}  loss {row['train_loss']:.3f}  train err {row['train_top1_err']:.1f}%  "
                           f"val err {row['val_top1_err']:.1f}% / {row['val_top5_err']:.1f}%  lr {row['lr']:.0e}  "
                           f"{row['images_per_s']:.0f} img/s")
        last = row
    return {**last, "out": str(out)}


def read_metrics(out: str | os.PathLike) -> list[dict]:
    """The per-epoch metrics of a run folder (``metrics.jsonl``)."""
    path = Path(out) / "metrics.jsonl"
    if not path.is_file():
        raise TrainingError(f"{out} has no metrics.jsonl: not a training run folder")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def paper_sgd_step(w: torch.Tensor, v: torch.Tensor, grad: torch.Tensor, *, lr: float, momentum: float = 0.9,
                   weight_decay: float = 5e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the update rule exactly as the paper prints it (Paper: section 5)::

        v <- 0.9 v - 0.0005 lr w - lr grad
        w <- w + v

    Returns the new ``(w, v)``. ``torch.optim.SGD`` with the same momentum and weight decay takes the
    same steps while lr is constant (its velocity is the paper's divided by -lr); see :func:`sgd_paper`.
    """
    v = momentum * v - weight_decay * lr * w - lr * grad
    return w + v, v


def stored_runs(kind: str, prefix: str = "") -> list[dict]:
    """Full-scale results committed under ``results/<kind>/``: one dict per run folder whose name
    starts with ``prefix``, with ``name``, ``settings``, ``provenance`` (machine, commit, date),
    ``metrics`` (per epoch) and ``wall_s``. Empty when there are none (or no ``results/`` folder)."""
    from .config import results_dir

    base = results_dir() / kind
    runs = []
    if not base.is_dir():
        return runs
    for folder in sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith(prefix)):
        if not (folder / "settings.json").is_file() or not (folder / "metrics.jsonl").is_file():
            continue
        meta = json.loads((folder / "settings.json").read_text())
        metrics = read_metrics(folder)
        runs.append({"name": folder.name, "settings": meta["settings"], "provenance": meta["provenance"],
                     "metrics": metrics, "wall_s": sum(m["seconds"] for m in metrics)})
    return runs
