"""Evaluation as the paper reports it: top-1 and top-5 error, one centre view or ten views, averaged
networks, and per-class errors.

    probs = predict(model, val.images, views="ten")   # (N, C) softmax averaged over 10 views
    topk_errors(probs, val.labels)                    # {"top1_err": ..., "top5_err": ...}
    topk_errors(ensemble([p1, p2, p3]), val.labels)   # the paper's averaged CNNs

Images are uint8 ``(N, 3, S, S)`` as :func:`alexlib.augment.preprocess` makes them (S = 256 for the
paper); the network sees mean-subtracted pixel-unit views (:func:`alexlib.augment.eval_batch`).

Paper: section 4.1 (ten test patches, softmax averaged), section 6 (top-1/top-5, averaged CNNs).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from . import recipe
from ._io import provenance, write_json
from .augment import DatasetStats, eval_batch
from .config import resolve_device
from .engine import autocast, probabilities, topk_errors, topk_hits
from .errors import SettingsError
from .fast import for_device

__all__ = [
    "predict",
    "topk_errors",
    "ensemble",
    "per_class_errors",
    "confusion_matrix",
    "features",
    "views_and_ensembles",
    "store_views",
    "input_stats",
]


def input_stats(model: nn.Module, stats: DatasetStats | None = None) -> DatasetStats:
    """The statistics (and input convention) ``model``'s inputs must be prepared with: the ones it
    was trained with (``model.input_stats``, set by :func:`alexlib.train.fit`,
    :func:`alexlib.train.train_run` and :func:`alexlib.train.model_from_checkpoint`), or
    ``stats``. Given both, they must use the same convention: a net is never scored on inputs
    prepared another way than it was trained on."""
    own = getattr(model, "input_stats", None)
    if stats is None and own is None:
        raise SettingsError(
            "this model carries no input statistics (it was not trained by alexlib); "
            "pass the training set's stats=dataset_stats(train, inputs=...)"
        )
    if stats is not None and own is not None and stats.inputs != own.inputs:
        raise SettingsError(
            f"the model was trained on {own.inputs!r} inputs but stats prepare "
            f"{stats.inputs!r} inputs; leave out stats= to use the model's own"
        )
    return stats if stats is not None else own


def _views(
    images: torch.Tensor,
    stats: DatasetStats,
    crop: int,
    views: str,
    batch_size: int,
    device: torch.device,
):
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].to(device, non_blocking=True)
        yield eval_batch(batch, stats, crop, views=views), None  # (B, 3, c, c) or (B, 10, 3, c, c)


@torch.no_grad()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    stats: DatasetStats | None = None,
    *,
    views: str = "center",
    crop: int = recipe.CROP,
    batch_size: int = 256,
    device="auto",
    amp: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Class probabilities ``(N, C)`` (float32, on the CPU) of ``model`` in eval mode.

    ``images``: uint8 ``(N, 3, S, S)``, prepared with the statistics the model was trained with
    (:func:`input_stats`; ``stats`` may be given for a model that carries none).
    ``views="center"``: the central ``crop`` patch; ``views="ten"``: the four corner and the centre
    patches and their reflections, softmax averaged over the ten (Paper: section 4.1).
    ``amp``: bf16 autocast on a CUDA device (ignored elsewhere).
    """
    if views not in ("center", "ten"):
        raise ValueError(f"views must be 'center' or 'ten', got {views!r}")
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(
            f"predict() wants uint8 images (N, 3, S, S); got {images.dtype} {tuple(images.shape)}"
        )
    device = resolve_device(device)
    stats = input_stats(model, stats).to(device)
    batches = _views(images, stats, crop, views, batch_size, device)
    total = -(-len(images) // batch_size)
    out = [
        p.cpu()
        for p, _ in probabilities(
            model, batches, amp=amp, progress=progress, total=total, desc=f"evaluating ({views})"
        )
    ]
    return torch.cat(out)


def ensemble(probabilities: Sequence[torch.Tensor]) -> torch.Tensor:
    """The average of several networks' class probabilities ``[(N, C), ...] -> (N, C)``.

    Paper: section 6 ("averaging the predictions of five similar CNNs").
    """
    if not probabilities:
        raise ValueError("ensemble() needs at least one set of predictions")
    shapes = {tuple(p.shape) for p in probabilities}
    if len(shapes) != 1:
        raise ValueError(
            f"all predictions must have one shape (same images, same classes); got {sorted(shapes)}"
        )
    return torch.stack(list(probabilities)).mean(dim=0)


def confusion_matrix(
    probs: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None
) -> torch.Tensor:
    """``(C, C)`` int64 counts: row = true class, column = predicted (top-1) class."""
    num_classes = num_classes or probs.shape[1]
    pred = probs.argmax(dim=1)
    labels = torch.as_tensor(labels).to(pred.device)
    flat = labels * num_classes + pred
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_errors(probs: torch.Tensor, labels: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Top-``k`` error in percent of each class ``(C,)`` (NaN for a class with no images)."""
    labels = torch.as_tensor(labels).to(probs.device)
    wrong = ~topk_hits(probs, labels, k)
    c = probs.shape[1]
    count = torch.bincount(labels, minlength=c).float()
    errors = torch.bincount(labels, weights=wrong.float(), minlength=c)
    return torch.where(
        count > 0, 100.0 * errors / count.clamp_min(1), torch.full_like(count, float("nan"))
    )


@torch.no_grad()
def features(
    model: nn.Module,
    images: torch.Tensor,
    stats: DatasetStats | None,
    layer: nn.Module,
    *,
    crop: int = recipe.CROP,
    batch_size: int = 256,
    device="auto",
    amp: bool = True,
) -> torch.Tensor:
    """The output of ``layer`` (e.g. the ReLU after fc7: the 4096-d last hidden layer) for the
    centre view of each image: ``(N, D)`` float32 on the CPU. Paper: section 6.1 (Figure 4)."""
    device = resolve_device(device)
    stats = input_stats(model, stats).to(device)
    captured: list[torch.Tensor] = []
    hook = layer.register_forward_hook(
        lambda module, inp, out: captured.append(out.detach().float().flatten(1).cpu())
    )
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            x = eval_batch(images[start : start + batch_size].to(device), stats, crop)
            with autocast(device, amp):
                model(x)
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(captured)


def views_and_ensembles(
    models: Sequence[nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    stats: DatasetStats | None = None,
    *,
    crop: int = recipe.CROP,
    device="auto",
    names: Sequence[str] | None = None,
) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Top-1/top-5 error of each network with one centre view and with ten views, and of their
    average (the paper's ensembles). Returns the table rows and the probabilities by row name
    (``"<name> center"``, ``"<name> ten"``, ``"ensemble of N center"``, ...). Paper: sections 4.1
    and 6."""
    names = list(names or [f"net {i + 1}" for i in range(len(models))])
    rows: list[dict] = []
    probs: dict[str, torch.Tensor] = {}
    per_view: dict[str, list[torch.Tensor]] = {"center": [], "ten": []}
    for name, model in zip(names, models):
        for views in ("center", "ten"):
            p = predict(model, images, stats, views=views, crop=crop, device=device)
            per_view[views].append(p)
            probs[f"{name} {views}"] = p
            rows.append({"model": name, "views": views, **topk_errors(p, labels)})
    if len(models) > 1:
        for views in ("center", "ten"):
            name = f"ensemble of {len(models)}"
            p = ensemble(per_view[views])
            probs[f"{name} {views}"] = p
            rows.append({"model": name, "views": views, **topk_errors(p, labels)})
    return rows, probs


def store_views(
    folder: str | Path,
    model: nn.Module,
    val,
    stats: DatasetStats | None = None,
    *,
    crop: int = recipe.CROP,
    device="auto",
    **extra,
) -> dict:
    """Evaluate a trained net on a validation split (``val.images``, ``val.labels``) with the
    centre view and with ten views, and store both in ``folder``: the softmax outputs with the
    labels in ``val_probs.pt`` (small; what an ensemble of stored nets averages) and the top-1 and
    top-5 errors in ``views.json`` (with ``extra`` fields and the provenance). Returns
    ``{"center": errors, "ten": errors}``. Paper: section 4.1."""
    folder, device = Path(folder), resolve_device(device)
    model = for_device(model, device)  # the layout it trained in: same outputs, faster
    probs = {
        v: predict(model, val.images, stats, views=v, crop=crop, device=device)
        for v in ("center", "ten")
    }
    torch.save({"labels": val.labels.clone(), **probs}, folder / "val_probs.pt")
    views = {v: topk_errors(p, val.labels) for v, p in probs.items()}
    record = {**views, "val_images": len(val.labels), **extra, "provenance": provenance()}
    write_json(folder / "views.json", record)
    return views
