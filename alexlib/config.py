"""Run presets: one config object per chapter run, at ``smoke`` or ``full`` scale.

``smoke`` runs on a laptop CPU in minutes on small, balanced subsets of real images; ``full``
is the paper's schedule and wants a GPU. Numbers from a smoke run are never the paper's.

A chapter's papermill ``parameters`` cell holds literals only; the next cell calls
``get_config(SCALE, **overrides)`` and prints the result.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

SCALES = ("smoke", "full")


@dataclass(frozen=True)
class Config:
    scale: str = "smoke"
    seed: int = 0
    device: str = "auto"  # "auto" picks cuda, then mps, then cpu
    data_root: str | None = None  # None: $ALEXLIB_DATA, then the per-user cache folder
    download: bool = False  # allow torchvision to download a dataset that is not found locally
    dataset: str = "imagenette"
    train_per_class: int | None = None  # None: the whole split
    val_per_class: int | None = None
    image_size: int = 224
    epochs: int = 90
    batch_size: int = 128
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    num_workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))

    @property
    def torch_device(self) -> torch.device:
        return resolve_device(self.device)


_PRESETS: dict[str, dict] = {
    # The paper's schedule (Paper: section 5): batch 128, lr 0.01, about 90 epochs.
    "full": {},
    # CPU minutes on real images: a few balanced images per class, a couple of epochs.
    "smoke": dict(train_per_class=20, val_per_class=10, epochs=2, batch_size=32, num_workers=0),
}


def get_config(scale: str = "smoke", **overrides) -> Config:
    """The preset for ``scale`` ("smoke" or "full") with ``overrides`` applied.

    >>> get_config("smoke", epochs=3).epochs
    3
    """
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(
            f"get_config() got unknown setting(s) {unknown}; the settings are: {sorted(known)}"
        )
    return Config(scale=scale, **{**_PRESETS[scale], **overrides})


def resolve_device(name: "str | torch.device" = "auto") -> torch.device:
    """``"auto"`` -> the best device present (cuda, then mps, then cpu); else ``torch.device(name)``
    (a name like ``"cuda:1"`` or a ``torch.device``)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {name!r} was asked for but torch sees no CUDA GPU "
            f"(torch {torch.__version__}). Use device='auto' or 'cpu'."
        )
    return device


def results_dir() -> Path:
    """The repository's ``results/`` folder (full-scale GPU results with provenance): found next to
    ``_toc.yml`` upwards from the working directory, else next to this package."""
    for base in (Path.cwd().resolve(), Path(__file__).resolve().parent):
        for folder in (base, *base.parents):
            if (folder / "_toc.yml").is_file():
                return folder / "results"
    return Path.cwd() / "results"
