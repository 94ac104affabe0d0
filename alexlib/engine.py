"""The training engine: one training loop, one evaluation loop, one top-k. Every path that trains
or scores a network goes through these two functions: the chapters' small experiments
(:func:`alexlib.train.fit`), the resumable paper recipe (:func:`alexlib.train.train_run`, on one
device or under DDP), Figure 1, the Figure 3/4 nets, the ledger's ablations, the auto-encoder of
Figure 4, and the benchmark's timed step (:func:`train_step`).

    optimizer = sgd_paper(model, lr=0.01)
    for epoch in range(epochs):
        row = train_one_epoch(model, loader, optimizer)        # loss, top-1/top-5 error, images/s
        val = evaluate(model, val_loader)                     # loss, top-1/top-5 error

``loader`` is any iterable of ``(x, y)`` batches already on the device and already prepared
(``alexlib.augment.GPULoader`` is the library's; its ``DatasetStats`` own the input convention).
The engine never looks at pixels: it moves nothing and normalises nothing, so it cannot apply the
wrong preprocessing.

Paper: section 5 (SGD with momentum and weight decay), section 6 (top-1 and top-5 error).
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from . import recipe
from ._io import cpu_has_bf16
from .errors import SettingsError, TrainingError

__all__ = [
    "topk_hits",
    "topk_errors",
    "sgd_paper",
    "PRECISIONS",
    "choose_precision",
    "precision_for",
    "cpu_has_bf16",
    "grad_scaler",
    "autocast",
    "Diverged",
    "train_step",
    "train_one_epoch",
    "probabilities",
    "evaluate",
]


# ----------------------------------------------------------------------------------- top-k


def topk_hits(scores: torch.Tensor, labels: torch.Tensor, k: int) -> torch.Tensor:
    """``(N,)`` bool: whether each row's label is among the ``k`` highest ``scores`` (N, C)
    (logits or probabilities). ``k`` larger than C counts every row as a hit."""
    labels = torch.as_tensor(labels).to(scores.device)
    if scores.dim() != 2 or labels.shape != (scores.shape[0],):
        raise ValueError(
            f"want scores (N, C) and labels (N,); got {tuple(scores.shape)} and "
            f"{tuple(labels.shape)}"
        )
    top = scores.topk(min(k, scores.shape[1]), dim=1).indices  # (N, k), best first
    return (top == labels[:, None]).any(dim=1)


def topk_errors(
    scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)
) -> dict[str, float]:
    """Top-k error in percent for each ``k``: ``{"top1_err": ..., "top5_err": ...}``, the share
    of rows whose label is not among the ``k`` highest scores. Paper: section 6."""
    if scores.shape[0] == 0:
        raise ValueError("the top-k error of no images is undefined")
    return {
        f"top{k}_err": 100.0 * (1 - topk_hits(scores, labels, k).float().mean().item()) for k in ks
    }


# ----------------------------------------------------------------------------------- SGD


def sgd_paper(
    model: nn.Module,
    *,
    lr: float,
    momentum: float = recipe.MOMENTUM,
    weight_decay: float = recipe.WEIGHT_DECAY,
    fused: bool | None = None,
) -> torch.optim.SGD:
    """SGD with momentum and weight decay on the weights only (biases and norm parameters
    excluded), as the original code does. Paper: section 5,

        v <- 0.9 v - 0.0005 lr w - lr grad(L);   w <- w + v.

    PyTorch keeps v' = -v / lr and updates v' <- 0.9 v' + grad(L) + 0.0005 w; w <- w - lr v', the
    same steps while lr is constant (they differ only in how a change of lr acts on the velocity).

    ``fused``: PyTorch's fused SGD kernel (one launch for every parameter); ``None`` uses it when
    all parameters are on a CUDA device. The same arithmetic either way.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if fused is None:
        fused = bool(params) and all(p.is_cuda for p in params)
    return torch.optim.SGD(
        [g for g in groups if g["params"]], lr=lr, momentum=momentum, fused=fused or None
    )


#: The arithmetic a run may ask for: "auto" picks it from the device (:func:`choose_precision`).
PRECISIONS = ("auto", "bf16", "fp16", "fp32")


def choose_precision(requested: str | bool, device_type: str, capability: tuple[int, int]) -> str:
    """The arithmetic of a training step: ``"bf16"`` or ``"fp16"`` autocast, or plain ``"fp32"``.

    ``"auto"`` (or ``True``) on CUDA: bf16 where the GPU has bf16 units (compute capability 8.0 and
    up: A100, H100, RTX 30xx and later), else fp16 with a gradient scaler (the T4 that Colab gives
    most readers is 7.5). On a CPU ``"auto"`` is fp32, and ``"bf16"`` is CPU autocast to bf16: on a
    CPU with bf16 instructions (AVX512-BF16, AMX) it can be much faster, on others slower, so it is
    asked for by name (``benchmarks/bench_cpu.py`` measures it on yours; the laptop presets ask
    for it, and :func:`precision_for` trains in fp32 where the CPU lacks those instructions);
    fp16 needs a GPU.
    ``False`` or ``"fp32"``: fp32 everywhere.

    >>> choose_precision("auto", "cuda", (7, 5)), choose_precision("auto", "cuda", (9, 0))
    ('fp16', 'bf16')
    >>> choose_precision("auto", "cpu", (0, 0)), choose_precision("bf16", "cpu", (0, 0))
    ('fp32', 'bf16')
    """
    if requested is True:
        requested = "auto"
    if requested is False or requested is None:
        requested = "fp32"
    if requested not in PRECISIONS:
        raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}; got {requested!r}")
    if device_type != "cuda":
        if requested == "fp16":
            raise SettingsError(
                f"fp16 autocast needs a CUDA GPU; on {device_type} use precision bf16 or fp32"
            )
        return "bf16" if requested == "bf16" and device_type == "cpu" else "fp32"
    if requested == "auto":
        return "bf16" if capability[0] >= 8 else "fp16"
    return requested


def precision_for(device: torch.device, amp: str | bool = "auto") -> str:
    """:func:`choose_precision` for ``device`` (its compute capability read when it is CUDA). bf16
    on a CPU without bf16 instructions (:func:`cpu_has_bf16`) is fp32, with a warning: autocast
    would emulate it there, slower than fp32."""
    device = torch.device(device)
    if device.type == "cpu" and amp == "bf16" and not cpu_has_bf16():
        warnings.warn(
            "this CPU has no bf16 instructions (avx512_bf16 or amx_bf16): training in fp32, "
            "which is faster here than emulated bf16",
            stacklevel=2,
        )
        return "fp32"
    # the capability matters to "auto" alone: a step that names its arithmetic asks the device
    # nothing (autocast runs this on every step)
    asks = device.type == "cuda" and amp in ("auto", True)
    capability = torch.cuda.get_device_capability(device) if asks else (0, 0)
    return choose_precision(amp, device.type, capability)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 steps (small gradients would underflow to zero without it);
    None for bf16 and fp32, which have fp32's exponent range."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(torch.device(device).type)


def autocast(device: torch.device, amp: str | bool):
    """Autocast in the arithmetic :func:`precision_for` picks (``amp``: True or "auto", "bf16",
    "fp16", "fp32", False); a no-op context for fp32."""
    precision = precision_for(device, amp)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(torch.device(device).type, dtype=dtype)


# ----------------------------------------------------------------------------------- training


class Diverged(TrainingError):
    """The training loss became NaN or infinite (``loss``, ``step``: where it was seen)."""

    def __init__(self, loss: float, step: int):
        super().__init__(f"the training loss became {loss} by step {step}")
        self.loss, self.step = loss, step


def train_step(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    optimizer,
    *,
    loss_fn: Callable | None = None,
    amp: str | bool = False,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One SGD step: forward, loss, backward, update. Returns ``(loss, output)``, both detached
    and still on the device (no host sync). ``loss_fn``: default cross-entropy (the paper's
    multinomial logistic regression). ``amp``: the arithmetic (:func:`autocast`); the loss is
    computed in float32. ``scaler``: a gradient scaler (:func:`grad_scaler`, for fp16): the loss is
    scaled up before the backward pass and the gradients scaled back before the update, which is
    skipped when they overflowed."""
    loss_fn = loss_fn or F.cross_entropy
    with autocast(x.device, amp):
        out = model(x)  # (B, classes)
        loss = loss_fn(out.float(), y)
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    return loss.detach(), out.detach()


def train_one_epoch(
    model: nn.Module,
    batches: Iterable,
    optimizer,
    *,
    loss_fn: Callable | None = None,
    ks: Sequence[int] = (1, 5),
    amp: str | bool = False,
    scaler: torch.amp.GradScaler | None = None,
    step_model: nn.Module | None = None,
    check_every: int = 20,
    progress: bool = False,
    desc: str = "training",
    total: int | None = None,
    world: int = 1,
) -> dict:
    """Train ``model`` for one pass over ``batches`` (``(x, y)`` pairs on the device).

    Returns ``{"loss", "top1_err", "top5_err", "images", "seconds", "images_per_s"}``: the mean
    loss and the top-k errors (%) counted on the batches as they were trained on (augmented,
    dropout on, weights still moving), the number of images and the wall time. ``ks=()`` for a
    loss that is not a classification (an auto-encoder: ``y`` is the target tensor).

    ``step_model``: what to call forward (a compiled or DDP-wrapped ``model``; default
    ``model``). ``check_every``: steps between host syncs that check the loss for NaN or infinity
    (raising :class:`Diverged`); every step when 1. ``world``: processes training on shares of
    the same global batch (images/s counts all of them).
    """
    model.train()
    step_model = step_model or model
    started = time.perf_counter()
    loss_sum = wrong = None
    seen = step = 0
    bar = tqdm(batches, total=total, desc=desc, disable=not progress, leave=False)
    for step, (x, y) in enumerate(bar, 1):
        loss, out = train_step(step_model, x, y, optimizer, loss_fn=loss_fn, amp=amp, scaler=scaler)
        n = len(x)
        with torch.no_grad():
            batch_loss = loss * n
            loss_sum = batch_loss if loss_sum is None else loss_sum + batch_loss
            if ks:
                missed = torch.stack([(~topk_hits(out, y, k)).sum() for k in ks])
                wrong = missed if wrong is None else wrong + missed
        seen += n
        if step % check_every == 0:  # one host sync every check_every steps, not every step
            _check_finite(loss_sum, step)
            if progress:
                bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}")
    if seen == 0:
        raise TrainingError("the epoch had no batches: the training set is smaller than a batch")
    _check_finite(loss_sum, step)
    seconds = time.perf_counter() - started
    row = {"loss": loss_sum.item() / seen}
    if ks:
        row.update({f"top{k}_err": 100.0 * w / seen for k, w in zip(ks, wrong.tolist())})
    row.update(images=seen, seconds=seconds, images_per_s=seen * world / seconds)
    return row


def _check_finite(loss_sum: torch.Tensor, step: int) -> None:
    value = loss_sum.item()
    if not math.isfinite(value):
        raise Diverged(value, step)


# ----------------------------------------------------------------------------------- scoring


@torch.no_grad()
def probabilities(
    model: nn.Module,
    batches: Iterable,
    *,
    amp: bool = False,
    progress: bool = False,
    desc: str = "evaluating",
    total: int | None = None,
):
    """Class probabilities of ``model`` in eval mode, batch by batch: yields ``(probs, y)`` with
    ``probs`` float32 ``(B, C)`` on the device. A batch of views ``x`` (B, V, 3, H, W) (the
    paper's ten test patches) is scored view by view and the softmax averaged over the V views
    (Paper: section 4.1)."""
    was_training = model.training
    model.eval()
    try:
        for x, y in tqdm(batches, total=total, desc=desc, disable=not progress, leave=False):
            with autocast(x.device, amp):
                if x.dim() == 5:
                    b, v = x.shape[:2]
                    logits = model(x.flatten(0, 1))  # (B*V, C)
                    probs = logits.float().softmax(dim=1).view(b, v, -1).mean(dim=1)  # (B, C)
                else:
                    probs = model(x).float().softmax(dim=1)  # (B, C)
            yield probs, y
    finally:
        model.train(was_training)


def evaluate(
    model: nn.Module,
    batches: Iterable,
    *,
    ks: Sequence[int] = (1, 5),
    amp: bool = False,
    keep: bool = False,
    progress: bool = False,
    total: int | None = None,
) -> dict:
    """Score ``model`` in eval mode over ``batches`` (``(x, y)`` on the device; ``x`` may hold
    several views per image, see :func:`probabilities`).

    Returns ``{"loss", "top1_err", "top5_err", "images"}``: the mean cross-entropy of the
    (view-averaged) probabilities and the top-k errors in percent; with ``keep=True`` also
    ``"probs"`` (N, C) and ``"labels"`` (N,) on the CPU. Paper: section 6.
    """
    nll = images = 0.0
    wrong = torch.zeros(len(ks), dtype=torch.float64)
    kept: list[tuple[torch.Tensor, torch.Tensor]] = []
    for probs, y in probabilities(model, batches, amp=amp, progress=progress, total=total):
        y = y.to(probs.device)
        nll += F.nll_loss(probs.clamp_min(1e-12).log(), y, reduction="sum").item()
        wrong += torch.tensor(
            [(~topk_hits(probs, y, k)).sum().item() for k in ks], dtype=torch.float64
        )
        images += len(y)
        if keep:
            kept.append((probs.cpu(), y.cpu()))
    if images == 0:
        raise ValueError("evaluate() got no batches: there is nothing to score")
    row = {
        "loss": nll / images,
        **{f"top{k}_err": 100.0 * w / images for k, w in zip(ks, wrong.tolist())},
        "images": int(images),
    }
    if keep:
        row["probs"] = torch.cat([p for p, _ in kept])
        row["labels"] = torch.cat([y for _, y in kept])
    return row
