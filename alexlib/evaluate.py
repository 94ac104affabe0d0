"""Evaluation as the paper reports it: top-1 and top-5 error, one centre view or ten views, averaged
networks, and per-class errors.

    probs = predict(model, val.images, stats, views="ten")     # (N, C) softmax averaged over 10 views
    topk_errors(probs, val.labels)                              # {"top1_err": ..., "top5_err": ...}
    topk_errors(ensemble([p1, p2, p3]), val.labels)             # the paper's averaged CNNs

Images are uint8 ``(N, 3, S, S)`` as :func:`alexlib.augment.preprocess` makes them (S = 256 for the
paper); the network sees mean-subtracted pixel-unit views (:func:`alexlib.augment.eval_batch`).

Paper: section 4.1 (ten test patches, softmax averaged), section 6 (top-1/top-5, averaged CNNs).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from alexlib.augment import PAPER_CROP, DatasetStats, eval_batch
from alexlib.config import resolve_device

__all__ = ["predict", "topk_errors", "ensemble", "per_class_errors", "confusion_matrix", "features"]


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast(device.type, enabled=False)


@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, stats: DatasetStats, *, views: str = "center",
            crop: int = PAPER_CROP, batch_size: int = 256, device="auto", amp: bool = True,
            progress: bool = False) -> torch.Tensor:
    """Class probabilities ``(N, C)`` (float32, on the CPU) of ``model`` in eval mode.

    ``views="center"``: the central ``crop`` patch; ``views="ten"``: the four corner and the centre
    patches and their reflections, softmax averaged over the ten (Paper: section 4.1).
    ``amp``: bf16 autocast on a CUDA device (ignored elsewhere).
    """
    if views not in ("center", "ten"):
        raise ValueError(f"views must be 'center' or 'ten', got {views!r}")
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise TypeError(f"predict() wants uint8 images (N, 3, S, S); got {images.dtype} {tuple(images.shape)}")
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    out = []
    try:
        starts = range(0, len(images), batch_size)
        for start in tqdm(starts, desc=f"evaluating ({views})", disable=not progress, leave=False):
            batch = images[start:start + batch_size].to(device, non_blocking=True)
            x = eval_batch(batch, stats, crop, views=views)  # (B, 3, c, c) or (B, 10, 3, c, c)
            with _autocast(device, amp):
                if views == "ten":
                    b = x.shape[0]
                    logits = model(x.flatten(0, 1))  # (B*10, C)
                    probs = logits.float().softmax(dim=1).view(b, 10, -1).mean(dim=1)  # (B, C)
                else:
                    probs = model(x).float().softmax(dim=1)
            out.append(probs.cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


def topk_errors(probs: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k error in percent for each ``k``: the share of rows whose true label is not among the
    ``k`` most probable classes. Paper: section 6 ("top-1 and top-5 error rates")."""
    labels = torch.as_tensor(labels).to(probs.device)
    if probs.dim() != 2 or labels.shape != (probs.shape[0],):
        raise ValueError(f"want probs (N, C) and labels (N,); got {tuple(probs.shape)} and {tuple(labels.shape)}")
    result = {}
    for k in ks:
        k_eff = min(k, probs.shape[1])
        top = probs.topk(k_eff, dim=1).indices  # (N, k)
        hit = (top == labels[:, None]).any(dim=1)
        result[f"top{k}_err"] = 100.0 * (1 - hit.float().mean().item())
    return result


def ensemble(probabilities: Sequence[torch.Tensor]) -> torch.Tensor:
    """The average of several networks' class probabilities ``[(N, C), ...] -> (N, C)``.

    Paper: section 6 ("averaging the predictions of five similar CNNs").
    """
    if not probabilities:
        raise ValueError("ensemble() needs at least one set of predictions")
    shapes = {tuple(p.shape) for p in probabilities}
    if len(shapes) != 1:
        raise ValueError(f"all predictions must have one shape (same images, same classes); got {sorted(shapes)}")
    return torch.stack(list(probabilities)).mean(dim=0)


def confusion_matrix(probs: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """``(C, C)`` int64 counts: row = true class, column = predicted (top-1) class."""
    num_classes = num_classes or probs.shape[1]
    pred = probs.argmax(dim=1)
    labels = torch.as_tensor(labels).to(pred.device)
    flat = labels * num_classes + pred
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_errors(probs: torch.Tensor, labels: torch.Tensor, k: int = 1) -> torch.Tensor:
    """Top-``k`` error in percent of each class ``(C,)`` (NaN for a class with no images)."""
    labels = torch.as_tensor(labels).to(probs.device)
    top = probs.topk(min(k, probs.shape[1]), dim=1).indices
    wrong = ~(top == labels[:, None]).any(dim=1)
    c = probs.shape[1]
    count = torch.bincount(labels, minlength=c).float()
    errors = torch.bincount(labels, weights=wrong.float(), minlength=c)
    return torch.where(count > 0, 100.0 * errors / count.clamp_min(1), torch.full_like(count, float("nan")))


@torch.no_grad()
def features(model: nn.Module, images: torch.Tensor, stats: DatasetStats, layer: nn.Module, *,
             crop: int = PAPER_CROP, batch_size: int = 256, device="auto", amp: bool = True) -> torch.Tensor:
    """The output of ``layer`` (e.g. the ReLU after fc7: the 4096-d last hidden layer) for the centre
    view of each image: ``(N, D)`` float32 on the CPU. Paper: section 6.1 (Figure 4)."""
    device = resolve_device(device)
    captured: list[torch.Tensor] = []
    hook = layer.register_forward_hook(lambda module, inp, out: captured.append(out.detach().float().flatten(1).cpu()))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(images), batch_size):
            x = eval_batch(images[start:start + batch_size].to(device), stats, crop)
            with _autocast(device, amp):
                model(x)
    finally:
        hook.remove()
        model.train(was_training)
    return torch.cat(captured)


def views_and_ensembles(models: Sequence[nn.Module], images: torch.Tensor, labels: torch.Tensor,
                        stats: DatasetStats, *, crop: int = PAPER_CROP, device="auto",
                        names: Sequence[str] | None = None) -> tuple[list[dict], dict[str, torch.Tensor]]:
    """Top-1/top-5 error of each network with one centre view and with ten views, and of their
    average (the paper's ensembles). Returns the table rows and the probabilities by row name
    (``"<name> center"``, ``"<name> ten"``, ``"ensemble of N center"``, ...). Paper: sections 4.1 and 6."""
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
