"""The one registry of settings: every experiment's presets, keyed by experiment and scale.

A scale says how big a run is:

``smoke``
    CPU, minutes, small class-balanced subsets of real images. Shows that the code runs; its
    numbers are never the paper's.
``laptop``
    Real experiments that a 2-core CPU finishes in at most 90 minutes each: the whole CIFAR-10
    training set (32 pixels), all of Imagenette at a reduced resolution. Their stored results
    (``results/``) are what the book shows until GPU results exist.
``full``
    The paper's schedule, on a GPU.

A new scale is one more name in :data:`SCALES` and one more entry in each experiment of
:data:`PRESETS` that supports it; :func:`check_scale` and :func:`preset` are the only checks.

A chapter's papermill ``parameters`` cell holds literals only; the next cell calls
``cfg = get_config(SCALE, seed=SEED, ...)`` (where and how the chapter runs) and then
``cfg.settings("relu_vs_tanh")`` for the settings of the experiment it runs, and prints those.

    >>> preset("relu_vs_tanh", "smoke")["epochs"]
    8
    >>> get_config("smoke", seed=3).settings("ddp", epochs=1)["epochs"]
    1
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from .errors import SettingsError, UnknownSettingError

__all__ = [
    "SCALES",
    "PRESETS",
    "DATASET_DEFAULTS",
    "check_scale",
    "DOWNLOAD_ENV",
    "preset",
    "Config",
    "get_config",
    "resolve_device",
]

SCALES: tuple[str, ...] = ("smoke", "laptop", "full")

# "1": a loader that is not told otherwise fetches a missing dataset (alexlib.data); get_config
# sets it from a chapter's DOWNLOAD so that every loader of the kernel, and the training processes
# it starts, follow the parameter
DOWNLOAD_ENV = "ALEXLIB_DOWNLOAD"

# The arithmetic of the laptop runs: CPU autocast to bf16, which trains the laptop nets 1.9 to 3.3
# times faster than fp32 on a CPU with bf16 instructions (benchmarks/bench_cpu.py) and gives Figure
# 1's ratio within its seed spread (results/figure1-cpu-bf16, chapter 10); a CPU without them
# trains in fp32 (alexlib.engine.precision_for). The ledger's laptop column stays fp32: its stored
# seeds are fp32, and the seeds of one row must share their arithmetic.
_LAPTOP_ARITHMETIC = "bf16"

# The ledger at laptop scale: the "mini" net and the paper's recipe on all of CIFAR-10.
_LEDGER_LAPTOP = dict(
    variant="mini",
    dataset="cifar10",
    epochs=16,
    batch_size=128,
    lr=0.01,
    plateau_patience=3,
    train_per_class=None,
    val_per_class=None,
    pca_colour=True,
    seeds=3,
    chunk_epochs=4,
)
# The same claims trained to the end on a GPU (the ledger's "CIFAR-10, GPU" column): the same net
# and recipe, but 40 epochs with the rate divided by 10 twice at fixed epochs (20 and 30), then 10
# epochs at lr 1e-4. The drops are fixed in advance because CIFAR-10's "val" split is its test set:
# a plateau schedule would choose them by the test error. The laptop runs' validation error was
# still falling at epoch 16 with the rate never dropped; 20 epochs at the first rate go past that.
# Five seeds, ten runs sharing one GPU.
_LEDGER_CIFAR10_GPU = dict(
    _LEDGER_LAPTOP,
    epochs=40,
    schedule="fixed",
    fixed_drops=(0.5, 0.75),
    checkpoint_minutes=1.0,
    seeds=5,
    chunk_epochs=40,
)
# Claim 6b (dropout roughly doubles the iterations needed to converge) on a GPU: the base net and
# the net without dropout at one constant rate for 80 epochs, so that nothing but dropout decides
# when each stops improving (a fixed schedule decides it for both; a plateau schedule would decide
# it by CIFAR-10's test error). The 40-epoch runs were still improving by about a point an epoch at
# epoch 20 at this rate; 80 epochs leave room to see each net level off.
_LEDGER_CIFAR10_GPU_CONSTANT = dict(
    _LEDGER_CIFAR10_GPU, epochs=80, schedule="constant", chunk_epochs=80
)
# Claim 6b at laptop scale, the same way: base and no-dropout at the laptop ledger's constant rate
# until each levels off (ledger.CONVERGED_FOR epochs within a point of its best). Its own runs, so
# they may use the laptop's fast arithmetic (both nets of a seed share it). About 15-25 minutes a
# run in CPU bf16 on a 2-core machine with bf16 instructions, about 90 in fp32 on one without
# (87 s an epoch, 2026-12-06). Five seeds: three could not tell the ratio from 1 (chapter 14).
_LEDGER_LAPTOP_CONSTANT = dict(
    _LEDGER_LAPTOP, epochs=60, schedule="constant", precision=_LAPTOP_ARITHMETIC, seeds=5
)
# Chapter 13: one process against data-parallel processes, a small net on CIFAR-10 where the
# two must agree up to rounding (cifar4: no dropout; whole-image crops; standardised inputs,
# and a rate at which rounding differences are not amplified: at lr 0.02 they grow to 5e-3 of
# the largest weight within three smoke epochs, at 0.01 they stay near 4e-7)
_DDP = dict(
    dataset="cifar10",
    variant="cifar4",
    image_size=32,
    crop=32,
    batch_size=128,
    lr=0.01,
    schedule="constant",
    inputs="standardise",
)
_LEDGER_CIFAR10_GPU_SMOKE = dict(
    _LEDGER_CIFAR10_GPU,
    epochs=2,
    batch_size=32,
    train_per_class=20,
    val_per_class=10,
    checkpoint_minutes=0.0,
    seeds=2,
    chunk_epochs=2,
)

PRESETS: dict[str, dict[str, dict]] = {
    # `python -m alexlib train` and RunSettings.for_scale: the paper's recipe (Paper: section 5)
    # on a subset (smoke) or the whole dataset (full)
    "train": {
        "smoke": dict(epochs=2, batch_size=32, train_per_class=20, val_per_class=10),
        # The Imagenette net behind chapters 8, 9, 11 and 12: the paper's net and recipe on all of
        # Imagenette at 128-pixel crops of 144-pixel images (fc6 sized to the 3x3 maps that
        # leaves), about 3.2 times fewer multiply-adds per image than at 224 (chapter 8 asserts it)
        "laptop": dict(
            epochs=30,
            batch_size=128,
            train_per_class=None,
            val_per_class=None,
            image_size=144,
            crop=128,
            precision=_LAPTOP_ARITHMETIC,
        ),
        "full": dict(epochs=90, batch_size=128, train_per_class=None, val_per_class=None),
    },
    # Chapter 7: the input pipeline's loaders side by side
    "pipeline": {
        "smoke": dict(dataset="imagenette", train_per_class=20, batch_size=32, num_workers=0),
        "laptop": dict(
            dataset="imagenette",
            train_per_class=100,
            batch_size=64,
            num_workers=min(2, os.cpu_count() or 1),
        ),
        "full": dict(
            dataset="imagenette",
            train_per_class=None,
            batch_size=128,
            num_workers=min(4, os.cpu_count() or 1),
        ),
    },
    # Chapter 2: cifar4 with ReLU vs tanh on CIFAR-10 (Figure 1 in miniature)
    "relu_vs_tanh": {
        "smoke": dict(train_per_class=100, val_per_class=20, epochs=8, batch_size=32, lr=0.01),
        "laptop": dict(
            train_per_class=None, val_per_class=None, epochs=10, batch_size=128, lr=0.01
        ),
        "full": dict(train_per_class=None, val_per_class=None, epochs=30, batch_size=128, lr=0.01),
    },
    # Chapter 6: the paper's fc head alone (alexlib.model.paper_head) on CIFAR-10 pixels, with
    # and without dropout
    "dropout": {
        "smoke": dict(
            train_per_class=50, val_per_class=50, epochs=25, batch_size=32, lr=0.01, hidden=1024
        ),
        "laptop": dict(
            train_per_class=500,
            val_per_class=None,
            epochs=40,
            batch_size=128,
            lr=0.01,
            hidden=1024,
        ),
        "full": dict(
            train_per_class=500,
            val_per_class=None,
            epochs=100,
            batch_size=128,
            lr=0.01,
            hidden=4096,
        ),
    },
    # Figure 1 (Paper: section 3.1), measured in two regimes (alexlib.experiments.REGIMES): "paper"
    # (0-255 pixels minus the mean, the 2012 code's small Gaussian init) and "today" (standardised
    # inputs, PyTorch's default init). "lrs": per regime, the rates tried for each activation, in
    # the order tried (the paper used, for each net, the rate that made it fastest); seeds[0] is the
    # seed of that search, and its runs at the chosen rates double as the first seed's runs. A run
    # stops at the first of "thresholds" (training error, %: 25% is the paper's) or after "epochs";
    # a higher level stands in where 25% is not reached.
    "figure1": {
        "smoke": dict(
            train_per_class=20,
            epochs=8,
            batch_size=20,
            momentum=0.9,
            seeds=(0, 1),
            lrs={
                "today": {"relu": (0.01, 0.03), "tanh": (0.01, 0.03)},
                "paper": {"relu": (0.003, 0.01), "tanh": (0.003, 0.01)},
            },
            thresholds=(25.0, 70.0),
        ),
        # All 50,000 training images; about 35 s an epoch on 2 cores (ReLU; tanh costs more). The
        # first rate of each list is the best of a pilot (3 epochs on 10,000 images at 4 rates)
        "laptop": dict(
            train_per_class=None,
            epochs=40,
            batch_size=128,
            momentum=0.9,
            seeds=(0, 1, 2),
            lrs={
                "paper": {"relu": (0.003, 0.001, 0.01), "tanh": (0.01, 0.003, 0.03)},
                "today": {"relu": (0.03, 0.01, 0.06), "tanh": (0.03, 0.01, 0.1)},
            },
            thresholds=(25.0, 50.0),
            precision=_LAPTOP_ARITHMETIC,
        ),
        "full": dict(
            train_per_class=None,
            epochs=60,
            batch_size=128,
            momentum=0.9,
            seeds=(0, 1, 2, 3, 4),
            # the laptop scale's chosen rates first (the same data; the GPU's first sitting runs
            # those at three seeds), then the rest of a wider grid
            lrs={
                "today": {"relu": (0.03, 0.01, 0.1, 0.003), "tanh": (0.03, 0.01, 0.1, 0.003)},
                "paper": {
                    "relu": (0.003, 0.001, 0.01, 0.0003),
                    "tanh": (0.01, 0.003, 0.03, 0.001),
                },
            },
            thresholds=(25.0, 50.0),
        ),
    },
    # Figure 3 (Paper: section 6.1). smoke: one epoch over 10 images per class at the paper's
    # 224 crop: 3 SGD steps (100 images, batches of 32, the last partial one dropped)
    "figure3": {
        "smoke": dict(
            dataset="imagenette",
            epochs=1,
            batch_size=32,
            train_per_class=10,
            val_per_class=2,
            seeds=(0, 1),
            variants=("half", "onegpu2014"),
        ),
        # the laptop Imagenette net (the "train" preset's sizes); its seeds give the colour split
        "laptop": dict(
            dataset="imagenette",
            epochs=30,
            batch_size=128,
            train_per_class=None,
            val_per_class=None,
            seeds=(0, 1, 2),
            variants=(),
            image_size=144,
            crop=128,
            precision=_LAPTOP_ARITHMETIC,
        ),
        "full": dict(
            dataset="imagenette",
            epochs=90,
            batch_size=128,
            train_per_class=None,
            val_per_class=None,
            seeds=(0, 1, 2, 3, 4),
            variants=("half", "onegpu2014"),
        ),
    },
    # Figure 4 (Paper: section 6.1): top-5 predictions, fc7 neighbours, binary codes
    "figure4": {
        "smoke": dict(
            dataset="imagenette",
            epochs=1,
            batch_size=32,
            train_per_class=10,
            val_per_class=4,
            bits=(16, 32),
            ae_epochs=60,
            k=6,
        ),
        "laptop": dict(
            dataset="imagenette",
            epochs=30,
            batch_size=128,
            train_per_class=None,
            val_per_class=None,
            bits=(16, 32, 64),
            ae_epochs=60,
            k=6,
            image_size=144,
            crop=128,
        ),
        "full": dict(
            dataset="imagenette",
            epochs=90,
            batch_size=128,
            train_per_class=None,
            val_per_class=None,
            bits=(32, 64, 128, 256),
            ae_epochs=60,
            k=6,
        ),
    },
    # The paper-claims ledger. full: the paper's recipe on all of Imagenette, 90 epochs, lr / 10
    # on plateaus. laptop: the same claims on all of CIFAR-10 with the "mini" net (the paper's
    # design at 24x24: two towers, LRN, overlapping pools, dropout, PCA colour noise; its own
    # alexlib.model docstring lists what differs). "chunk_epochs": a run trains this many epochs
    # per resume step, so that a time budget can stop the runner between steps (the numbers equal
    # an uninterrupted run's). Every other key is a RunSettings field.
    "ledger": {
        "smoke": dict(
            variant="paper",
            dataset="imagenette",
            epochs=1,
            batch_size=20,
            train_per_class=4,
            val_per_class=2,
            seeds=1,
            chunk_epochs=1,
        ),
        "laptop": _LEDGER_LAPTOP,
        # On a GPU an Imagenette epoch takes about a second: long chunks (each resume step builds
        # and compiles the net again) and a checkpoint (0.5 GB) at most once a minute
        "full": dict(
            variant="paper",
            dataset="imagenette",
            epochs=90,
            batch_size=128,
            train_per_class=None,
            val_per_class=None,
            checkpoint_minutes=1.0,
            seeds=3,
            chunk_epochs=30,
        ),
    },
    "ledger-cifar10-gpu": {"smoke": _LEDGER_CIFAR10_GPU_SMOKE, "full": _LEDGER_CIFAR10_GPU},
    "ledger-laptop-6b": {
        "smoke": dict(_LEDGER_CIFAR10_GPU_SMOKE, schedule="constant"),
        "laptop": _LEDGER_LAPTOP_CONSTANT,
    },
    "ledger-cifar10-gpu-6b": {
        "smoke": dict(_LEDGER_CIFAR10_GPU_SMOKE, schedule="constant"),
        "full": _LEDGER_CIFAR10_GPU_CONSTANT,
    },
    # Chapter 13 (_DDP above)
    "ddp": {
        "smoke": dict(_DDP, batch_size=32, train_per_class=40, val_per_class=10, epochs=3),
        "laptop": dict(_DDP, train_per_class=500, val_per_class=100, epochs=5),
        "full": dict(_DDP, train_per_class=None, val_per_class=None, epochs=20),
    },
}


# A training run's input size and colour noise by dataset ("*": any other), used where a run's
# settings leave them unset (alexlib.train.RunSettings).
#   ImageNet-like sets: the paper's 256x256 images, random 224x224 patches, PCA colour noise
#   (Paper: sections 2 and 4.1).
#   CIFAR-10: its 32x32 images, random 24x24 patches and their reflections, the centre 24x24
#   patch at test time: how the 2012 code (cuda-convnet) trained its CIFAR-10 nets; no colour
#   noise, which that code used for ImageNet only.
DATASET_DEFAULTS: dict[str, dict] = {
    "cifar10": dict(image_size=32, crop=24, pca_colour=False),
    "*": dict(image_size=256, crop=224, pca_colour=True),
}


def check_scale(scale: str) -> str:
    """``scale`` if it is one of :data:`SCALES`, else a :class:`SettingsError` naming them."""
    if scale not in SCALES:
        raise SettingsError(f"scale must be one of {', '.join(SCALES)}; got {scale!r}")
    return scale


def preset(experiment: str, scale: str, **overrides) -> dict:
    """The settings of ``experiment`` at ``scale`` with ``overrides`` applied (a new dict).

    An unknown experiment or scale is a :class:`SettingsError`; an override that the experiment
    does not have is an :class:`UnknownSettingError` listing the ones it has."""
    if experiment not in PRESETS:
        raise SettingsError(
            f"unknown experiment {experiment!r}; the experiments are: {', '.join(PRESETS)}"
        )
    check_scale(scale)
    table = PRESETS[experiment]
    if scale not in table:
        raise SettingsError(f"{experiment} has no {scale!r} preset; it has: {', '.join(table)}")
    settings = dict(table[scale])
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        raise UnknownSettingError(
            f"unknown setting(s) {unknown} for {experiment}; its settings are: {sorted(settings)}"
        )
    settings.update(overrides)
    return settings


@dataclass(frozen=True)
class Config:
    """Where and how a chapter runs: its scale, seed, device and data. The settings of the
    experiment it runs come from :meth:`settings`."""

    scale: str = "smoke"
    seed: int = 0
    device: str = "auto"  # "auto" picks cuda, then mps, then cpu
    data_root: str | None = None  # None: $ALEXLIB_DATA, then the per-user cache folder
    download: bool = False  # allow torchvision to download a dataset that is not found locally

    def __post_init__(self):
        check_scale(self.scale)

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def settings(self, experiment: str, **overrides) -> dict:
        """``preset(experiment, self.scale, **overrides)``."""
        return preset(experiment, self.scale, **overrides)


def get_config(scale: str = "smoke", **overrides) -> Config:
    """The :class:`Config` for ``scale`` with ``overrides`` (``seed``, ``device``, ``data_root``,
    ``download``). A ``download`` given here also becomes the default of every loader in this
    process and the processes it starts (``$ALEXLIB_DOWNLOAD``), so one parameter cell decides.

    >>> get_config("smoke", seed=3).seed
    3
    """
    known = set(Config.__dataclass_fields__)
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UnknownSettingError(
            f"get_config() got unknown setting(s) {unknown}; the settings are: {sorted(known)}"
        )
    config = Config(scale=scale, **overrides)
    if "download" in overrides:
        os.environ[DOWNLOAD_ENV] = "1" if config.download else "0"
    return config


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> the best device present (cuda, then mps, then cpu); else ``torch.device(name)``
    (a name like ``"cuda:1"`` or a ``torch.device``)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise SettingsError(
            f"unknown device {name!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SettingsError(
            f"device {name!r} was asked for but torch sees no CUDA GPU "
            f"(torch {torch.__version__}). Use device='auto' or 'cpu'."
        )
    return device
