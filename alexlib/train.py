"""Training: one epoch driver (:class:`Trainer`) and its two uses for a reader.

- :func:`fit`, for a chapter's small experiment: a model, a training set, a few epochs, a
  :class:`History` of per-epoch numbers::

      history = fit(model, train, val, epochs=2, lr=0.01, batch_size=32, device="cpu", seed=0)
      history[-1]["val_err"]     # top-1 error in percent after the last epoch

- :func:`train_run`, the paper's recipe as a resumable run with checkpoints, a metrics file and
  provenance (``python -m alexlib train``)::

      settings = RunSettings.for_scale("full", dataset="imagenette", variant="paper")
      summary = train_run(settings, out="runs/paper-s0")

(Figure 1's runs are the third use: :mod:`alexlib.experiments.figure1`.) Batches come from
:class:`alexlib.augment.GPULoader` with the training set's :class:`~alexlib.augment.DatasetStats`,
which own the input convention (the paper's mean image at 0-255, or per-channel
standardisation). The trained model carries those statistics (``model.input_stats``) and so does
a checkpoint, so :func:`alexlib.evaluate.predict` scores a net on the preprocessing it was
trained with. Imports: engine, augment, data, model, fast, config, recipe. Paper: section 5.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from . import recipe
from ._io import atomic_save, atomic_write_text, provenance, results_dir
from .augment import INPUTS, DatasetStats, GPULoader, dataset_stats
from .config import DATASET_DEFAULTS, preset, resolve_device
from .data import load
from .engine import (
    PRECISIONS,
    Diverged,
    evaluate,
    grad_scaler,
    precision_for,
    sgd_paper,
    train_one_epoch,
)
from .errors import SettingsError, TrainingError, UnknownSettingError
from .fast import for_device, uses_channels_last
from .model import build, check_input_size, expected_inputs, options

__all__ = [
    "History",
    "Trainer",
    "fit",
    "RunSettings",
    "TRAIN_FLAGS",
    "train_run",
    "read_metrics",
    "load_checkpoint",
    "model_from_checkpoint",
    "paper_sgd_step",
    "stored_runs",
    "read_stored",
    "describe_stored",
    "machine_name",
    "run_arithmetic",
]


# ==============================================================================================
# fit: a chapter's small experiment


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
        width = {k: max(len(k), 7) for k in keys}  # narrow enough for 88 columns
        lines = ["  ".join(f"{k:>{width[k]}}" for k in keys)]
        for row in self:
            cells = (
                f"{row[k]:>{width[k]}.4g}" if isinstance(row[k], float) else f"{row[k]:>{width[k]}}"
                for k in keys
            )
            lines.append("  ".join(cells))
        return "\n".join(lines)


def _check_split(data, what: str) -> None:
    if not hasattr(data, "images") or not hasattr(data, "labels"):
        raise TypeError(
            f"{what} needs .images and .labels (e.g. alexlib.data.load(...)); "
            f"got {type(data).__name__}"
        )
    images = data.images
    if (
        not isinstance(images, torch.Tensor)
        or images.dtype != torch.uint8
        or images.dim() != 4
        or images.shape[1] != 3
    ):
        got = (
            f"{images.dtype} {tuple(images.shape)}"
            if isinstance(images, torch.Tensor)
            else type(images).__name__
        )
        raise TypeError(
            f"{what}.images must be a uint8 tensor (N, 3, H, W) as alexlib.data.load "
            f"returns; got {got}"
        )
    if data.labels.dtype != torch.int64 or data.labels.shape != (images.shape[0],):
        raise TypeError(
            f"{what}.labels must be int64 of shape ({images.shape[0]},); "
            f"got {data.labels.dtype} {tuple(data.labels.shape)}"
        )
    if images.shape[0] == 0:
        raise ValueError(f"{what} is empty")


def _num_classes(model: nn.Module, labels: torch.Tensor) -> int:
    last = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return last[-1].out_features if last else int(labels.max()) + 1


# ==============================================================================================
# The one epoch driver. Every training in the book runs through Trainer.run: a chapter's quick
# experiment (fit), the paper's resumable run and each data-parallel rank of it (train_run), and
# Figure 1's runs (alexlib.experiments.figure1). What differs between them is what an epoch's row
# measures (score), what a loss that became NaN means (diverged), whether a run may end early
# (stop) and what it prints (log): four small methods a use overrides.


class Trainer:
    """Runs epochs of :func:`alexlib.engine.train_one_epoch` over ``batches`` with ``optimizer``,
    scores each one, steps the learning-rate ``schedule`` (None: constant), and keeps the run's
    whole state in one checkpoint format (``checkpoint``: a file written atomically after an epoch,
    at most one every ``save_every_s`` seconds and always after the last; :meth:`restore` puts a
    run back where one left it, so that it ends with the numbers of an uninterrupted run).

    ``history``: the rows so far (a run resumed, or Figure 1's epoch 0). ``arithmetic``: the
    steps' autocast (:func:`alexlib.engine.precision_for`), ``scaler`` its gradient scaler.
    ``step_model``: what the step calls (the model compiled or DDP-wrapped). ``rank``/``world``:
    this process in a data-parallel run; each draws its dropout masks from a seed of its own per
    epoch, and only rank 0 saves and logs. ``check_every``: steps between the checks for a
    non-finite loss (each one a host sync)."""

    ks: tuple[int, ...] = (1, 5)  # the top-k errors counted on the training batches

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        batches,
        *,
        seed: int = 0,
        schedule: _Schedule | None = None,
        arithmetic: str = "fp32",
        scaler: torch.amp.GradScaler | None = None,
        step_model: nn.Module | None = None,
        channels_last: bool = False,
        check_every: int = 20,
        checkpoint: Path | None = None,
        save_every_s: float = 0.0,
        history: list[dict] | None = None,
        rank: int = 0,
        world: int = 1,
        progress: bool = False,
    ):
        self.model, self.optimizer, self.batches = model, optimizer, batches
        self.seed, self.schedule = seed, schedule
        self.arithmetic, self.scaler = arithmetic, scaler
        self.step_model = step_model or model
        self.channels_last, self.check_every = channels_last, check_every
        self.checkpoint, self.save_every_s = checkpoint, save_every_s
        self.history = history if history is not None else []
        self.rank, self.world, self.progress = rank, world, progress
        self.saved_epoch = self.epoch

    @property
    def epoch(self) -> int:
        """The last finished epoch (0 before the first)."""
        return self.history[-1]["epoch"] if self.history else 0

    def run(self, last: int) -> list[dict]:
        """Train up to epoch ``last`` (from the one after :attr:`epoch`); returns the history."""
        saved_at = time.monotonic()
        while self.epoch < last and not self.stop():
            epoch = self.epoch + 1
            started = time.perf_counter()
            row = self.score(epoch, self.train_epoch(epoch, last))
            row["seconds"] = time.perf_counter() - started
            self.history.append(row)
            if self.schedule is not None:
                self.schedule.step(epoch, row.get("val_top1_err"))
            due = epoch == last or time.monotonic() - saved_at >= self.save_every_s
            if self.checkpoint is not None and self.rank == 0 and due:
                self.save()
                saved_at, self.saved_epoch = time.monotonic(), epoch
            if self.rank == 0:
                self.log(row)
        return self.history

    def train_epoch(self, epoch: int, last: int) -> dict:
        """One pass over the batches at the schedule's rate: the engine's numbers for it."""
        if self.schedule is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.schedule.lr
        if self.world > 1:
            # the ranks draw the same global batch and keep their shares; dropout comes from
            # torch's generator, which the seed left equal everywhere: without a seed per rank the
            # i-th image of every share would get the same mask (and a resumed run, whose
            # checkpoint holds rank 0's random state, would not be exact on the other ranks)
            torch.manual_seed(_dropout_seed(self.seed, epoch, self.rank))
        try:
            return train_one_epoch(
                self.model,
                _shard(self.batches, self.rank, self.world, self.channels_last),
                self.optimizer,
                ks=self.ks,
                amp=self.arithmetic,
                scaler=self.scaler,
                step_model=self.step_model,
                check_every=self.check_every,
                progress=self.progress,
                desc=f"epoch {epoch}/{last}",
                total=len(self.batches),
                world=self.world,
            )
        except Diverged as exc:
            return self.diverged(exc, epoch)

    def score(self, epoch: int, trained: dict) -> dict:
        """The epoch's row from what training measured (a use adds its evaluation passes)."""
        return {"epoch": epoch, "train_loss": trained["loss"], "train_err": trained["top1_err"]}

    def diverged(self, exc: Diverged, epoch: int) -> dict:
        """A loss that became NaN or infinite: stop, saying so (or return the epoch's numbers)."""
        raise TrainingError(f"the training loss became {exc.loss} in epoch {epoch}") from None

    def stop(self) -> bool:
        """Whether the run is over before its last epoch."""
        return False

    def log(self, row: dict) -> None:
        """Print or write the epoch's row (rank 0 only)."""

    def state_dict(self) -> dict:
        """What a checkpoint holds to go on: the weights, the velocities, the schedule, the
        random states (torch's and the batch order's), the rows so far, the gradient scaler."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict() if self.schedule is not None else None,
            "rng": _rng_state(self.batches.generator),
            "history": self.history,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
        }

    def restore(self, state: dict) -> None:
        """Put the run back where the checkpoint ``state`` left it."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["schedule"])
        _set_rng_state(state["rng"], self.batches.generator)
        self.history = list(state["history"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.saved_epoch = self.epoch

    def save(self, **extra) -> None:
        """The checkpoint (with ``extra`` entries), atomically over the previous one."""
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        atomic_save({**extra, **self.state_dict()}, self.checkpoint)


class _Quick(Trainer):
    """:func:`fit`'s epochs: the training error as counted on the batches, then the optional
    passes over the whole training set (dropout off) and over ``val``; a bar over the epochs."""

    ks = (1,)

    def __init__(self, *args, train_views, val_views, bar, lr: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.train_views, self.val_views, self.bar, self.lr = train_views, val_views, bar, lr

    def score(self, epoch: int, trained: dict) -> dict:
        row = super().score(epoch, trained)
        if self.train_views is not None:
            row["train_eval_err"] = evaluate(self.model, self.train_views)["top1_err"]
        if self.val_views is not None:
            rates = evaluate(self.model, self.val_views)
            row["val_err"], row["val_top5_err"] = rates["top1_err"], rates["top5_err"]
        return row

    def diverged(self, exc: Diverged, epoch: int) -> dict:
        raise FloatingPointError(
            f"the loss became {exc.loss} in epoch {epoch}; lr={self.lr} is "
            "probably too high for this model"
        ) from None

    def log(self, row: dict) -> None:
        self.bar.update(1)
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k.endswith(("loss", "err"))})


def fit(
    model: nn.Module,
    train,
    val,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    momentum: float = recipe.MOMENTUM,
    weight_decay: float = recipe.WEIGHT_DECAY,
    device: str | torch.device = "auto",
    seed: int = 0,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = True,
    inputs: str = "standardise",
    stats: DatasetStats | None = None,
    eval_train: bool = False,
) -> History:
    """Train ``model`` on ``train`` for ``epochs`` epochs with SGD
    (:func:`alexlib.engine.sgd_paper`), measuring ``val`` after each epoch, and return the
    :class:`History`.

    ``train``/``val``: ``.images`` (N, 3, H, W) uint8 and ``.labels`` (N,) int64 (``val`` may be
    None). The whole image is the input (no crop). ``inputs``: the input convention (default:
    per-channel standardisation, what PyTorch's default initialisation expects; ``"mean-image"``
    for the paper's), computed from ``train`` unless ``stats`` are given; the model keeps them as
    ``model.input_stats``. ``augment``: an optional function of each uint8 batch (B, 3, H, W) on
    the device returning a uint8 batch of the same shape, applied before the normalisation. Loss:
    cross-entropy (the paper's multinomial logistic regression); constant learning rate.
    ``seed`` fixes the shuffling and the dropout masks: two runs with the same seed and initial
    weights give identical histories on the CPU. ``eval_train``: also measure the training set's
    top-1 error in eval mode after each epoch (dropout off), the fair comparison with ``val_err``
    when studying over-fitting. Paper: section 5.
    """
    _check_split(train, "train")
    if val is not None:
        _check_split(val, "val")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    num_classes = _num_classes(model, train.labels)
    if int(train.labels.max()) >= num_classes:
        raise ValueError(
            f"train has label {int(train.labels.max())} but the model has {num_classes} outputs; "
            f"build the model with num_classes={int(train.labels.max()) + 1} (or more)"
        )
    device = resolve_device(device)
    size = train.images.shape[-1]
    stats = stats if stats is not None else dataset_stats(train.images, size=size, inputs=inputs)
    model.to(device)
    model.input_stats = stats
    optimizer = sgd_paper(model, lr=lr, momentum=momentum, weight_decay=weight_decay)
    torch.manual_seed(seed)  # dropout masks
    batches = GPULoader(
        train.images,
        train.labels,
        stats,
        batch_size=batch_size,
        crop=size,
        device=device,
        seed=seed,
        drop_last=False,
        flip=False,
        alpha_std=0.0,
        transform=augment,
    )

    def scoring(data) -> GPULoader:  # the whole images in order, made once and reused each epoch
        return GPULoader(
            data.images, data.labels, stats, batch_size=256, crop=size, train=False, device=device
        )

    with tqdm(total=epochs, desc="epochs", unit="epoch", disable=not progress) as bar:
        quick = _Quick(
            model,
            optimizer,
            batches,
            seed=seed,
            check_every=1,
            history=History(),
            train_views=scoring(train) if eval_train else None,
            val_views=scoring(val) if val is not None else None,
            bar=bar,
            lr=lr,
        )
        return quick.run(epochs)


# ==============================================================================================
# The paper's recipe at full size: a resumable training run with checkpoints and a metrics file.
#
#     settings = RunSettings(dataset="imagenette", variant="paper", epochs=90)
#     summary = train_run(settings, out="runs/paper-s0")      # or: python -m alexlib train ...
#
# Paper: section 5 (details of learning) and section 4.1 (the input pipeline it trains on).

_SCHEDULES = ("plateau", "fixed", "constant")

#: The run settings that ``python -m alexlib train`` takes as flags with a value: ``--image-size``
#: for ``image_size`` (``data_root`` is ``--root``). The command line reads them into
#: :class:`RunSettings`; :func:`alexlib.parallel.train_command` writes them out.
TRAIN_FLAGS = (
    "epochs",
    "batch_size",
    "lr",
    "seed",
    "schedule",
    "train_per_class",
    "val_per_class",
    "device",
    "data_root",
    "dropout",
    "image_size",
    "crop",
    "checkpoint_minutes",
    "inputs",
    "precision",
)


@dataclass
class RunSettings:
    """Everything that defines a training run; stored in ``settings.json`` and in every checkpoint.

    Defaults are the paper's: the ``paper`` net, batch 128, SGD momentum 0.9, weight decay 5e-4 on
    the weights, lr 0.01 divided by 10 when the validation error stops improving (at most three
    times), 256x256 images, random 224 crops, reflections and PCA colour noise, about 90 epochs.
    ``image_size``, ``crop`` and ``pca_colour`` left as None take the dataset's defaults
    (:data:`alexlib.config.DATASET_DEFAULTS`: CIFAR-10 is 32 pixels, cropped to 24 as in the 2012
    code's CIFAR-10 nets); ``inputs`` left as None takes the variant's input convention
    (:func:`alexlib.model.expected_inputs`).
    """

    dataset: str = "imagenette"
    variant: str = "paper"
    epochs: int = recipe.EPOCHS
    batch_size: int = recipe.BATCH_SIZE
    lr: float = recipe.LR
    momentum: float = recipe.MOMENTUM
    weight_decay: float = recipe.WEIGHT_DECAY
    schedule: str = "plateau"  # "plateau" (the paper), "fixed" (the code's drops), or "constant"
    plateau_patience: int = 4  # epochs without a new best validation error before lr /= 10
    max_lr_drops: int = recipe.MAX_LR_DROPS
    # the 2012 code's drops, as fractions of the run (its epochs 25, 51 and 79 of 90)
    fixed_drops: tuple[float, ...] = tuple(e / 90 for e in recipe.CODE_LR_DROP_EPOCHS)
    seed: int = 0
    train_per_class: int | None = None
    val_per_class: int | None = None
    image_size: int | None = (
        None  # images are rescaled and centre-cropped to this (Paper: section 2)
    )
    crop: int | None = None  # training patches and test views (Paper: section 4.1)
    flip: bool = True
    pca_colour: bool | None = None
    inputs: str | None = (
        None  # "mean-image" (the paper's) or "standardise"; see alexlib.augment.INPUTS
    )
    dropout: float | None = None  # None: the variant's own (0.5 in fc6/fc7 for the ImageNet nets)
    data_root: str | None = None
    device: str = "auto"
    amp: bool = True  # autocast on CUDA in ``precision`` (False: fp32); ignored on the CPU
    # "auto": bf16 on GPUs with bf16 units (compute capability 8.0+), fp16 with a gradient scaler
    # below (a T4), fp32 off CUDA; or "bf16", "fp16", "fp32" (alexlib.engine.choose_precision).
    # The arithmetic a run used is recorded in its settings.json ("arithmetic")
    precision: str = "auto"
    channels_last: bool = True
    compile: bool = False
    # alexlib.fast.speed_up: equal, faster layers (same parameters, same state dict)
    fast: bool = True
    # 0: a checkpoint after every epoch. More: at most one every this many minutes, and always after
    # the last epoch; a crash then loses at most that much work (a fast GPU finishes an Imagenette
    # epoch in well under a second, while the 61M-parameter checkpoint with its momentum is about
    # 0.5 GB to write)
    checkpoint_minutes: float = 0.0
    chance_epochs: int = 3  # report a run whose loss sits at ln(classes) for this many epochs

    def __post_init__(self):
        options(self.variant)  # an unknown variant is a SettingsError naming the known ones
        if self.schedule not in _SCHEDULES:
            raise SettingsError(
                f"schedule must be one of {', '.join(_SCHEDULES)}; got {self.schedule!r}"
            )
        defaults = DATASET_DEFAULTS.get(self.dataset, DATASET_DEFAULTS["*"])
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.inputs is None:
            self.inputs = expected_inputs(self.variant)
        if self.precision not in PRECISIONS:
            raise SettingsError(
                f"precision must be one of {', '.join(PRECISIONS)}; got {self.precision!r}"
            )
        if self.inputs not in INPUTS:
            raise SettingsError(f"inputs must be one of {', '.join(INPUTS)}; got {self.inputs!r}")
        for name in ("epochs", "batch_size", "image_size", "crop"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SettingsError(f"{name} must be a positive whole number, got {value!r}")
        if self.crop > self.image_size:
            raise SettingsError(
                f"crop ({self.crop}) cannot be larger than image_size ({self.image_size})"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise SettingsError(f"lr must be a positive number, got {self.lr!r}")
        if not (
            isinstance(self.checkpoint_minutes, (int, float))
            and 0 <= self.checkpoint_minutes < math.inf
        ):
            raise SettingsError(
                f"checkpoint_minutes must be a number >= 0 (0: after every epoch), "
                f"got {self.checkpoint_minutes!r}"
            )
        self.fixed_drops = tuple(self.fixed_drops)

    def load_split(self, split: str, *, root: str | None = None, progress: bool = False):
        """This run's ``split`` ("train" or "val") of its dataset, decoded at ``image_size``, its
        class-balanced subset (``train_per_class``/``val_per_class``, drawn with ``seed``).
        ``root``: the data root (default: the run's own ``data_root``)."""
        per_class = self.train_per_class if split == "train" else self.val_per_class
        return load(
            self.dataset,
            split,
            root=root or self.data_root,
            size=self.image_size,
            per_class=per_class,
            seed=self.seed,
            progress=progress,
        )

    @classmethod
    def for_scale(cls, scale: str, **overrides) -> RunSettings:
        """The ``train`` preset of ``scale`` (:data:`alexlib.config.PRESETS`; smoke: 20 images per
        class, 2 epochs, batch 32) with ``overrides`` (None values are left out)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise UnknownSettingError(
                f"unknown run setting(s) {unknown}; the settings are: {sorted(known)}"
            )
        return cls(
            **{**preset("train", scale), **{k: v for k, v in overrides.items() if v is not None}}
        )


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`train_run` (``weights_only=True``: no code is
    unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainingError(f"{path} is not a readable checkpoint ({exc})") from None


def model_from_checkpoint(checkpoint: dict):
    """Rebuild a checkpoint's trained network (CPU, eval mode): ``(model, settings, stats)``, where
    ``stats`` is the training set's mean image and colour PCA, and the input convention, that its
    inputs must be prepared with (the model also carries them as ``model.input_stats``)."""
    settings = RunSettings(**checkpoint["settings"])
    model = build(
        settings.variant, num_classes=checkpoint["num_classes"], **_model_options(settings)
    )
    model.load_state_dict(checkpoint["model"])
    stats = DatasetStats.from_state_dict(checkpoint["stats"])
    model.input_stats = stats
    return model.eval(), settings, stats


def _model_options(settings: RunSettings) -> dict:
    kw = {} if settings.dropout is None else {"dropout": settings.dropout}
    if "input_size" in options(settings.variant):  # a net whose fc layer is sized to its input
        kw["input_size"] = settings.crop
    return kw


class _Schedule:
    """The learning rate per epoch: the paper's divide-by-10-on-plateau, the code's fixed drops, or
    constant."""

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
        self.lr = s.lr / recipe.LR_DIVISOR**self.drops

    def state_dict(self) -> dict:
        return {
            "lr": self.lr,
            "best": self.best,
            "bad_epochs": self.bad_epochs,
            "drops": self.drops,
        }

    def load_state_dict(self, state: dict) -> None:
        self.lr, self.best, self.bad_epochs, self.drops = (
            state["lr"],
            state["best"],
            state["bad_epochs"],
            state["drops"],
        )


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


def _dropout_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of process ``rank``'s dropout masks in ``epoch`` of a data-parallel run: different
    for every (seed, epoch, rank), the same on every machine and Python version (a hash, not
    ``hash()``)."""
    digest = hashlib.sha256(f"alexlib dropout {seed} {epoch} {rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little")  # 64 bits, what torch.manual_seed takes


def _dist() -> tuple[int, int]:
    """(rank, world size) when launched by torchrun with an initialised process group, else (0,
    1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _oom_message(settings: RunSettings, device: torch.device) -> str:
    total = (
        torch.cuda.get_device_properties(device).total_memory / 2**30
        if device.type == "cuda"
        else 0
    )
    smaller = max(1, settings.batch_size // 2)
    return (
        f"out of memory at batch size {settings.batch_size} on {device} ({total:.0f} GiB). Try "
        f"--batch-size {smaller} (the paper used 128; scale lr with it if you change it), or leave "
        "out --compile. The last checkpoint is kept; --resume continues from it."
    )


# more epochs, or the same run on other hardware (where another arithmetic may be the fast one)
_RESUMABLE_CHANGES = {
    "epochs",
    "device",
    "precision",
    "compile",
    "fast",
    "checkpoint_minutes",
    "data_root",
}


def _check_resume(saved: RunSettings, settings: RunSettings) -> None:
    changed = {
        k: (v, getattr(settings, k))
        for k, v in dataclasses.asdict(saved).items()
        if getattr(settings, k) != v
    }
    # a change outside _RESUMABLE_CHANGES makes a different run
    if set(changed) - _RESUMABLE_CHANGES:
        raise TrainingError(
            f"--resume with different settings {changed} (saved, given); "
            "resume with the run's own settings, or start a new --out folder."
        )


def _shard(batches, rank: int, world: int, channels_last: bool):
    """Each rank's share of every global batch (every rank draws the same global batch), in the
    memory format the net trains in."""
    for x, y in batches:
        if world > 1:
            x, y = x[rank::world], y[rank::world]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, y


class _PaperRun(Trainer):
    """:func:`train_run`'s epochs: each scored on the validation set's centre crops, written as a
    line of ``metrics.jsonl``, and checkpointed with the run's settings and input statistics."""

    def __init__(
        self,
        *args,
        settings: RunSettings,
        out: Path,
        val_batches,
        stats,
        classes,
        device: torch.device,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.settings, self.out, self.val_batches = settings, out, val_batches
        self.stats, self.classes, self.device = stats, classes, device

    def train_epoch(self, epoch: int, last: int) -> dict:
        try:
            return super().train_epoch(epoch, last)
        except torch.OutOfMemoryError:
            raise TrainingError(_oom_message(self.settings, self.device)) from None

    def score(self, epoch: int, trained: dict) -> dict:
        scored = evaluate(self.model, self.val_batches, amp=self.arithmetic)
        row = {
            "epoch": epoch,
            "lr": self.schedule.lr,
            "train_loss": trained["loss"],
            "train_top1_err": trained["top1_err"],
            "train_top5_err": trained["top5_err"],
            "val_loss": scored["loss"],
            "val_top1_err": scored["top1_err"],
            "val_top5_err": scored["top5_err"],
            "images_per_s": trained["images_per_s"],
        }
        _warn_at_chance(self.settings, len(self.classes), self.history + [row], self.rank)
        return row

    def diverged(self, exc: Diverged, epoch: int) -> dict:
        s = self.settings
        raise TrainingError(
            f"the training loss became {exc.loss} in epoch {epoch}, by step {exc.step}. The "
            f"last good checkpoint (epoch {self.saved_epoch}) is kept in {self.out}. Try a lower "
            f"learning rate (--lr {s.lr / 10:g}), check that inputs are mean-subtracted "
            "pixels as the paper's init expects, and keep the paper's biases (1 in conv2, "
            "conv4, conv5, fc6, fc7)."
        ) from None

    def save(self) -> None:
        super().save(
            settings=dataclasses.asdict(self.settings),
            epoch=self.epoch,
            num_classes=len(self.classes),
            classes=self.classes,
            stats=self.stats.state_dict(),
        )

    def log(self, row: dict) -> None:
        """The epoch's line in ``metrics.jsonl`` (on --resume the file is cut back to the
        checkpoint's epochs), and one printed line."""
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.progress:
            tqdm.write(
                f"epoch {row['epoch']:3d}  loss {row['train_loss']:.3f}  train err "
                f"{row['train_top1_err']:.1f}%  val err {row['val_top1_err']:.1f}% / "
                f"{row['val_top5_err']:.1f}%  lr {row['lr']:.0e}  {row['images_per_s']:.0f} img/s"
            )


def train_run(
    settings: RunSettings,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    progress: bool = True,
    data=None,
    until: int | None = None,
) -> dict:
    """Train with ``settings``, writing into the folder ``out``:

    - ``settings.json``: the settings and the run's provenance (machine, versions, commit, date);
    - ``metrics.jsonl``: one JSON object per epoch, appended as soon as the epoch ends: train loss,
      train top-1/top-5 error (on the augmented batches, dropout on), val loss and top-1/top-5 error
      (centre crop), lr, images/s, wall time;
    - ``checkpoint.pt``: model, optimiser, schedule, random-number states, metrics and the input
      statistics after the last finished epoch, written atomically. ``resume=True`` continues from
      it and ends with the same numbers as a run that was never interrupted (same seed, same
      device; on CUDA up to the rounding of kernels that are not deterministic, such as the
      reference LRN's backward, unless ``torch.use_deterministic_algorithms`` is on).

    A loss that becomes NaN or infinite stops the run (:class:`TrainingError`) with the last good
    checkpoint kept; a loss that stays at ln(classes) (chance) is reported with what to check.
    ``data``: optional ``(train, val)`` ``ImageTensors`` already decoded at ``image_size`` (else
    loaded from ``settings.dataset``). ``until``: stop after this epoch, a part of the run that a
    later ``resume=True`` call goes on from (the ledger trains in such chunks; the schedule and
    ``settings.json`` keep the run's whole length). Returns the last epoch's metrics with
    ``"out"`` added.
    Under ``torchrun`` each process trains its share of every batch (:mod:`alexlib.parallel`).

    The epochs are :class:`Trainer`'s (chapter 8 writes the same loop out and checks it against
    this one)::

        for epoch in ...:
            row = train_one_epoch(...) + evaluate(...)    # Trainer.train_epoch, _PaperRun.score
            schedule.step(epoch, val error)               # the paper's lr drops
            checkpoint, metrics line                      # _PaperRun.save, .log

    Paper: section 5.
    """
    out = Path(out)
    rank, world = _dist()
    checkpoint = _open_run(settings, out, resume)
    run = _start(settings, out, data, rank=rank, world=world, progress=progress and rank == 0)
    if checkpoint is not None:
        run.restore(checkpoint)
    _wrap(run)
    if rank == 0:
        _write_settings(run)
    history = run.run(settings.epochs if until is None else min(until, settings.epochs))
    return {**(history[-1] if history else {}), "out": str(out)}


def _open_run(settings: RunSettings, out: Path, resume: bool) -> dict | None:
    """The checkpoint to resume from (None for a new run), after checking that ``out`` holds
    what ``resume`` says and that the settings can go on from it."""
    ckpt_path, metrics_path = out / "checkpoint.pt", out / "metrics.jsonl"
    if ckpt_path.exists() and not resume:
        raise TrainingError(
            f"{out} already holds a run (checkpoint.pt). Pass --resume to continue it, "
            "or choose another --out folder; nothing was overwritten."
        )
    if resume and not ckpt_path.exists() and metrics_path.exists():
        raise TrainingError(f"{out} has metrics but no checkpoint.pt to resume from.")
    checkpoint = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    if checkpoint is not None:
        _check_resume(RunSettings(**checkpoint["settings"]), settings)
    check_input_size(settings.variant, settings.crop, **_model_options(settings))
    return checkpoint


def _start(
    settings: RunSettings, out: Path, data, *, rank: int, world: int, progress: bool
) -> _PaperRun:
    """The data, the net (seeded, the paper's init), its update, schedule and batches."""
    device = resolve_device(settings.device)
    if data is None:
        train, val = (settings.load_split(s, progress=progress) for s in ("train", "val"))
    else:
        train, val = data
    stats = dataset_stats(train, size=settings.image_size, inputs=settings.inputs)

    torch.manual_seed(settings.seed)
    model = build(settings.variant, num_classes=len(train.classes), **_model_options(settings))
    # channels-last memory and the fast layer forms on either device (same parameters, same state
    # dict); on the CPU the one fast form that pays is the banded LRN (benchmarks/bench_cpu.py)
    for_device(model, device, channels_last=settings.channels_last, fast=settings.fast)
    model.input_stats = stats
    optimizer = sgd_paper(
        model, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
    )
    loader = GPULoader(
        train,
        stats=stats,
        batch_size=settings.batch_size,
        crop=settings.crop,
        train=True,
        device=device,
        seed=settings.seed,
        flip=settings.flip,
        alpha_std=recipe.PCA_STD if settings.pca_colour else 0.0,
    )
    if len(loader) == 0:
        raise TrainingError(
            f"{len(train)} training images make no full batch of {settings.batch_size}: use "
            f"--batch-size {max(1, len(train) // 2)} or fewer, or more images per class."
        )
    # the arithmetic of every step: autocast in bf16 or fp16 (with a gradient scaler), or fp32
    arithmetic = precision_for(device, settings.precision if settings.amp else False)
    return _PaperRun(
        model,
        optimizer,
        loader,
        seed=settings.seed,
        schedule=_Schedule(settings),
        arithmetic=arithmetic,
        scaler=grad_scaler(arithmetic, device),
        channels_last=uses_channels_last(device, settings.channels_last),
        checkpoint=out / "checkpoint.pt",
        save_every_s=60 * settings.checkpoint_minutes,
        rank=rank,
        world=world,
        progress=progress,
        settings=settings,
        out=out,
        val_batches=GPULoader(
            val, stats=stats, batch_size=256, crop=settings.crop, train=False, device=device
        ),
        stats=stats,
        classes=list(train.classes),
        device=device,
    )


def _wrap(run: _PaperRun) -> None:
    """What the step calls: the net wrapped for data parallelism (which starts every process from
    rank 0's weights) and compiled, as the settings ask."""
    if run.world > 1:
        ids = [run.device.index] if run.device.type == "cuda" else None
        run.step_model = nn.parallel.DistributedDataParallel(run.model, device_ids=ids)
    if run.settings.compile:
        run.step_model = torch.compile(run.step_model)


def _write_settings(run: _PaperRun) -> None:
    """``settings.json`` (settings, provenance, arithmetic), and ``metrics.jsonl`` cut back to the
    finished epochs: a crash between an epoch's line and its checkpoint leaves a line too many."""
    run.out.mkdir(parents=True, exist_ok=True)
    meta = {
        "settings": dataclasses.asdict(run.settings),
        "provenance": provenance(),
        "world_size": run.world,
        "train_images": len(run.batches.images),
        "val_images": len(run.val_batches.images),
        "classes": run.classes,
        "arithmetic": run.arithmetic,
    }
    atomic_write_text(run.out / "settings.json", json.dumps(meta, indent=1))
    lines = "".join(json.dumps(r) + "\n" for r in run.history)
    atomic_write_text(run.out / "metrics.jsonl", lines)


def _warn_at_chance(s: RunSettings, classes: int, history: list[dict], rank: int) -> None:
    """Mark the last row (and warn once per epoch) when the training loss has sat at
    ln(classes), chance, for the last ``chance_epochs`` epochs."""
    chance = math.log(classes)
    recent = [h["train_loss"] for h in history[-s.chance_epochs :]]
    if len(recent) < s.chance_epochs or any(abs(v - chance) >= 0.02 * chance for v in recent):
        return
    history[-1]["warning"] = "stuck at chance"
    if rank == 0:
        warnings.warn(
            f"the training loss has stayed at ln({classes}) = {chance:.3f} (chance) "
            f"for {s.chance_epochs} epochs: the net is not learning yet. Check the "
            "initialisation against the input scale (the paper's N(0, 0.01) weights "
            "expect mean-subtracted pixels in [-128, 128], not [0, 1]), try a smaller lr, "
            "and the biases (the paper: 1 in conv2, 4, 5, fc6, fc7; Caffe used 0.1). Deep "
            "AlexNets can sit at chance for an epoch or two before they start.",
            stacklevel=4,
        )


def read_metrics(out: str | os.PathLike) -> list[dict]:
    """The per-epoch metrics of a run folder (``metrics.jsonl``)."""
    path = Path(out) / "metrics.jsonl"
    if not path.is_file():
        raise TrainingError(f"{out} has no metrics.jsonl: not a training run folder")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def paper_sgd_step(
    w: torch.Tensor,
    v: torch.Tensor,
    grad: torch.Tensor,
    *,
    lr: float,
    momentum: float = recipe.MOMENTUM,
    weight_decay: float = recipe.WEIGHT_DECAY,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of the update rule exactly as the paper prints it (Paper: section 5)::

        v <- 0.9 v - 0.0005 lr w - lr grad
        w <- w + v

    Returns the new ``(w, v)``. ``torch.optim.SGD`` with the same momentum and weight decay takes
    the same steps while lr is constant (its velocity is the paper's divided by -lr); see
    :func:`alexlib.engine.sgd_paper`.
    """
    v = momentum * v - weight_decay * lr * w - lr * grad
    return w + v, v


def machine_name(provenance: dict) -> str:
    """The machine of a run's ``provenance``: a GPU by its name, a CPU by its model, cores, threads
    and, where recorded, whether it has bf16 instructions (``"AMD EPYC (2 cores, 2 threads, no
    bf16)"``): CPUs of one name differ by several times in speed on that alone."""
    machine = str(provenance.get("device", "?"))
    if machine.startswith("cpu"):
        threads = machine[3:].strip(" ()")  # "cpu (2 threads)" -> "2 threads"
        threads = "1 thread" if threads == "1 threads" else threads  # runs stored before 2026-12
        threads = f", {threads}" if threads else ""
        bf16 = {True: ", bf16", False: ", no bf16"}.get(provenance.get("cpu_bf16"), "")
        machine = (
            f"{provenance.get('cpu', 'CPU')} ({provenance.get('cores', '?')} cores{threads}{bf16})"
        )
    return machine


def run_arithmetic(run: dict) -> str | None:
    """The arithmetic a stored run (:func:`read_stored`) trained in: its record, or fp32 for a CPU
    run that has none (all were made before a CPU run could train in bf16, 2026-12-05); None for
    a GPU run without one."""
    if run.get("arithmetic"):
        return run["arithmetic"]
    return "fp32" if str(run["provenance"].get("device", "")).startswith("cpu") else None


def describe_stored(run: dict) -> str:
    """Two lines naming a stored run (a :func:`stored_runs` dict) and where it was made: the GPU,
    or the CPU model with its cores and threads; torch; commit; date; then epochs, training time
    and seed."""
    p, s = run["provenance"], run["settings"]
    return (
        f"{run['name']}: {machine_name(p)}, torch {p.get('torch', '?')},\n  "
        f"commit {str(p.get('commit', '?'))[:12]}, {str(p.get('date', '?'))[:10]}; "
        f"{len(run['metrics'])} epochs, {run['wall_s'] / 60:.0f} min of training, "
        f"seed {s.get('seed', '?')}"
    )


def read_stored(folder: str | os.PathLike) -> dict | None:
    """One stored run folder (``settings.json`` and ``metrics.jsonl``) as a dict with ``name``,
    ``folder``, ``settings``, ``provenance`` (machine, commit, date), ``metrics`` (per epoch),
    ``wall_s``, ``train_images`` and ``arithmetic`` (None where the run predates its record); None
    for a folder that is not a run. The one reader of stored runs: :func:`stored_runs`, the
    figures' readers and the ledger's add their own files to it."""
    folder = Path(folder)
    if not (folder / "settings.json").is_file() or not (folder / "metrics.jsonl").is_file():
        return None
    meta = json.loads((folder / "settings.json").read_text())
    metrics = read_metrics(folder)
    return {
        "name": folder.name,
        "folder": folder,
        "settings": meta.get("settings", {}),
        "provenance": meta.get("provenance", {}),
        "metrics": metrics,
        "wall_s": sum(m.get("seconds", 0.0) for m in metrics),
        "train_images": meta.get("train_images"),
        # train_run records it beside the settings; Figure 1's resident runs, among them
        "arithmetic": meta.get("arithmetic") or meta.get("settings", {}).get("arithmetic"),
    }


def stored_runs(kind: str, prefix: str = "", base: Path | None = None) -> list[dict]:
    """The runs committed under ``results/<kind>/`` (or under ``base``) whose folder names start
    with ``prefix``, each read by :func:`read_stored`, in name order. Empty when there are none
    (or no ``results/`` folder)."""
    base = Path(base) if base is not None else results_dir() / kind
    if not base.is_dir():
        return []
    folders = sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith(prefix))
    return [run for run in map(read_stored, folders) if run is not None]
