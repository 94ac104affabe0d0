"""Scaling out: the paper's two-GPU model parallelism, and data parallelism with DDP.

Two ways to spread AlexNet over two devices:

*Model parallelism* (the paper, section 3.2): each GPU holds half of every layer's kernels (a
"tower") and the GPUs exchange activations only at certain layers. :func:`split_towers` takes a
grouped ``paper`` / ``paper-code`` net from :func:`alexlib.model.build` and places its two towers on
two devices; :func:`cross_device_traffic` counts the bytes that cross between them per image.

    >>> from alexlib.model import build
    >>> from alexlib.parallel import split_towers, cross_device_traffic
    >>> towers = split_towers(build("paper", init=False), devices=("cpu", "cpu"))
    >>> rows = cross_device_traffic(towers)   # one forward pass of one image, float32
    >>> [r.layer for r in rows]               # each tower normalises its own maps: no LRN traffic
    ['conv3', 'fc6', 'fc7', 'fc8']
    >>> sum(r.bytes for r in rows)
    230304

*Data parallelism* (``torch.nn.parallel.DistributedDataParallel``): every process holds the whole
net, trains on its share of the batch, and the gradients are averaged (all-reduced) after every
backward pass. Every process draws the same global batch, augmentation included, and keeps its
share, so each image's crop and flip are a one-process run's; each process draws its own dropout
masks (seeded by seed, epoch and rank in :func:`alexlib.train.train_run`). :func:`run_training`
launches ``python -m alexlib train`` under ``torchrun`` from Python; :func:`communication_per_step`
sets the two schemes' traffic side by side, layer by layer.

Module order: this module imports from ``model`` and ``train``; ``figures`` draws its rows without
importing it.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import preset
from .errors import ParallelError, UnknownSettingError
from .model import AlexNet, EdgePad, layer_names, layer_summary
from .train import TRAIN_FLAGS, load_checkpoint, read_metrics

__all__ = [
    "TowerParallelAlexNet",
    "split_towers",
    "Transfer",
    "cross_device_traffic",
    "CommRow",
    "MemoryEstimate",
    "memory_estimate",
    "communication_per_step",
    "ring_allreduce_bytes",
    "ddp_demo_settings",
    "grouped_parameters",
    "train_command",
    "run_training",
    "compare_runs",
    "ParallelError",
]


@dataclass(frozen=True)
class Transfer:
    """Activations that cross from one tower (device) to the other in one forward pass.

    ``layer``: the layer that needs them (e.g. ``"conv3"``); ``what``: a description;
    ``elements`` and ``bytes``: per image, summed over both directions where both towers send.
    """

    layer: str
    what: str
    elements: int
    bytes: int


# The kinds of step in a tower plan (one per layer of the grouped net):
#   "local"   : each tower applies its own copy to its own maps (ReLU, pooling, dropout, conv2/4/5)
#   "image"   : conv1: each tower reads the whole image, computes its half of the kernels
#   "across"  : conv3 / fc6 / fc7: each tower reads both towers' maps, computes its half of the
#   outputs
#   "halo"    : LRN across channels: each tower borrows the neighbour's boundary maps (see halo_lrn)
#   "reduce"  : the last fc layer: each tower multiplies its own inputs, the partial sums meet on
#   tower 0


class TowerParallelAlexNet(nn.Module):
    """The paper's net with each tower (GPU) on its own device. Paper: section 3.2, Figure 2.

    Built by :func:`split_towers` from a grouped two-tower net (``paper`` or ``paper-code``); the
    weights are copied, so the two modules compute the same function (up to float rounding) and
    :meth:`grouped_state_dict` / :meth:`grouped_grads` map weights and gradients back.

    How each layer is split (tower ``t`` = 0, 1, the paper's GPU 1 and GPU 2, owns output channels
    or units ``t*half .. (t+1)*half`` of each layer):

    - conv1: both devices get the whole image; each computes its 48 kernels (no traffic between
    them).
    - conv2, conv4, conv5 (``groups=2``): each tower reads only its own maps.
    - conv3 (``groups=1``): each tower receives the other's 128 pool2 maps, computes 192 outputs.
    - fc6, fc7: each tower receives the other's half of the input vector and computes half of the
      outputs from the full input (2048 of 4096), as the paper describes.
    - fc8: split by *input* instead: each tower multiplies its own 2048 fc7 units by its half of
      fc8's weight columns, and tower 1's partial logits (B, 1000) are added to tower 0's on
      device 0, where the output lives. That sends 1000 numbers per image, where splitting fc8's
      outputs would need 2 x 2048 (fc7 in both directions) plus 500 to gather the logits.
    - LRN: the ``paper`` nets normalise each tower's maps on their own (``alexlib.model.TowerLRN``),
      as the 2012 code's GPUs did, so each tower applies it to its own maps with no traffic. A
      grouped net built with one ``nn.LocalResponseNorm`` over all 96 (256) maps mixes the last two
      maps of tower 0 with the first two of tower 1; for such a net ``halo_lrn=True`` (the default)
      makes each tower borrow the neighbour's two boundary maps (a "halo") so the outputs stay
      equal, and
      ``halo_lrn=False`` normalises per tower instead.
    - Dropout: each tower draws its own mask, as each GPU did; in training mode the outputs equal
      the grouped net's only in distribution (use ``eval()`` or ``dropout=0`` to compare numbers).

    Shapes: (B, 3, H, W) on any device -> logits (B, classes) on ``devices[0]``.
    """

    def __init__(
        self,
        model: AlexNet,
        devices: Sequence[str | torch.device] = ("cuda:0", "cuda:1"),
        *,
        halo_lrn: bool = True,
    ):
        super().__init__()
        _check_two_towers(model)
        if len(devices) != 2:
            raise ValueError(f"devices must name two devices, one per tower, got {list(devices)!r}")
        self.devices = tuple(torch.device(d) for d in devices)
        self.halo_lrn = halo_lrn
        self.variant = model.variant
        self.source_names: list[str] = []  # the grouped net's layer name of each step
        self.kinds: list[str] = []
        towers: list[list[nn.Module]] = [[], []]
        named = layer_names(model)
        linears = [n for n, m in named if isinstance(m, nn.Linear)]
        seen_conv = False
        for name, module in named:
            if isinstance(module, nn.Conv2d):
                kind = "image" if not seen_conv else ("local" if module.groups == 2 else "across")
                seen_conv = True
                if module.groups not in (1, 2):
                    raise ValueError(
                        f"{name} has groups={module.groups}; a two-tower split needs groups 1 or 2"
                    )
                parts = [_conv_part(module, t, kind, self.devices[t]) for t in range(2)]
            elif isinstance(module, nn.Linear):
                kind = "reduce" if name == linears[-1] else "across"
                parts = [_linear_part(module, t, kind, self.devices[t]) for t in range(2)]
            elif isinstance(module, nn.LocalResponseNorm) and getattr(module, "towers", 1) == 2:
                # the grouped net already normalises each tower's maps on their own: no exchange
                kind = "local"
                parts = [
                    nn.LocalResponseNorm(module.size, module.alpha, module.beta, module.k)
                    for _ in range(2)
                ]
            elif isinstance(module, nn.LocalResponseNorm):
                kind = "halo" if halo_lrn else "local"
                parts = [copy.deepcopy(module) for _ in range(2)]
            elif isinstance(
                module,
                (nn.ReLU, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Dropout, EdgePad),
            ):
                kind = "local"
                parts = [copy.deepcopy(module) for _ in range(2)]
            else:
                raise ValueError(
                    f"{self.variant}: cannot split layer {name} ({type(module).__name__}) between "
                    "two towers; only the paper's layers (conv, fc, ReLU, LRN, pooling, dropout) "
                    "are supported"
                )
            self.source_names.append(name)
            self.kinds.append(kind)
            for t in range(2):
                towers[t].append(parts[t])
        # where the conv part ends: flatten (B, 128, 6, 6) -> (B, 4608) per tower before the first
        # fc layer
        self._flatten_at = self.source_names.index(linears[0])
        self.towers = nn.ModuleList([nn.ModuleList(towers[0]), nn.ModuleList(towers[1])])
        for t in range(2):
            self.towers[t].to(self.devices[t])
        self._log: list[tuple[str, str, int, int]] | None = None

    # -- moving activations between towers -----------------------------------------------------

    def _send(self, x: torch.Tensor, src: int, dst: int, layer: str, what: str) -> torch.Tensor:
        """``x`` from tower ``src`` to tower ``dst``'s device; counted when the towers differ."""
        if src != dst and self._log is not None:
            per_image = x[0].numel()
            self._log.append((layer, what, per_image, per_image * x.element_size()))
        return x.to(self.devices[dst])

    def _gather(self, xs: list[torch.Tensor], dst: int, layer: str) -> torch.Tensor:
        # both towers' maps, in the grouped net's channel order, on tower dst: (B, 2C, ...) or (B,
        # 2F)
        what = (
            f"each tower's {_shape(xs[0])} {'maps' if xs[0].dim() == 4 else 'units'} to the other"
        )
        parts = [self._send(x, src, dst, layer, what) for src, x in enumerate(xs)]
        return torch.cat(parts, dim=1)

    def _halo(
        self, xs: list[torch.Tensor], lrns: list[nn.Module], layer: str
    ) -> list[torch.Tensor]:
        # LocalResponseNorm(size=n) at channel c reads channels c - n//2 .. c + (n-1)//2
        before, after = lrns[0].size // 2, (lrns[0].size - 1) // 2
        # tower 1 borrows tower 0's last `before` maps; tower 0 borrows tower 1's first `after` maps
        h, w = xs[0].shape[-2:]
        what = f"{max(before, after)} boundary maps ({h}x{w}) each way, for LRN"
        from0 = self._send(xs[0][:, -before:], 0, 1, layer, what) if before else None
        from1 = self._send(xs[1][:, :after], 1, 0, layer, what) if after else None
        c0 = xs[0].shape[1]
        y0 = lrns[0](torch.cat([xs[0], from1], dim=1) if after else xs[0])[:, :c0]  # (B, C/2, H, W)
        y1 = lrns[1](torch.cat([from0, xs[1]], dim=1) if before else xs[1])[
            :, before:
        ]  # (B, C/2, H, W)
        return [y0, y1]

    # -- forward --------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3 or not torch.is_floating_point(x):
            raise ValueError(
                f"{self.variant} (two towers) expects a float batch (B, 3, H, W); got "
                f"{x.dtype} {tuple(x.shape)}"
            )
        # the image goes to both devices: each tower's conv1 sees all of it
        xs = [x.to(d) for d in self.devices]  # 2 x (B, 3, H, W)
        for i, (name, kind) in enumerate(zip(self.source_names, self.kinds)):
            if i == self._flatten_at:
                xs = [torch.flatten(v, 1) for v in xs]  # 2 x (B, 4608)
            mods = [self.towers[0][i], self.towers[1][i]]
            if kind in ("local", "image"):
                xs = [m(v) for m, v in zip(mods, xs)]
            elif kind == "halo":
                xs = self._halo(xs, mods, name)
            elif kind == "across":
                xs = [mods[t](self._gather(xs, t, name)) for t in range(2)]
            else:  # "reduce": logits = W[:, :half] x0 + W[:, half:] x1 + b, summed on tower 0
                partial = [m(v) for m, v in zip(mods, xs)]  # 2 x (B, classes)
                what = f"tower 2's partial logits ({partial[1].shape[1]}) to tower 1"
                return partial[0] + self._send(partial[1], 1, 0, name, what)
        raise AssertionError("the last layer of a two-tower net is a fully-connected layer")

    # -- back to the grouped layout -------------------------------------------------------------

    def _grouped(self, attr: str) -> dict[str, torch.Tensor]:
        out = {}
        for i, (name, kind) in enumerate(zip(self.source_names, self.kinds)):
            a, b = self.towers[0][i], self.towers[1][i]
            if not isinstance(a, (nn.Conv2d, nn.Linear)):
                continue
            for p in ("weight", "bias"):
                ta, tb = getattr(a, p), getattr(b, p)
                va = None if ta is None else (ta if attr == "data" else ta.grad)
                vb = None if tb is None else (tb if attr == "data" else tb.grad)
                if va is None:
                    continue
                va = va.detach().cpu()
                if kind == "reduce" and p == "weight":
                    out[f"{name}.{p}"] = torch.cat([va, vb.detach().cpu()], dim=1)  # input columns
                elif kind == "reduce":
                    out[f"{name}.{p}"] = va  # the bias lives on tower 0 only
                else:
                    out[f"{name}.{p}"] = torch.cat([va, vb.detach().cpu()], dim=0)  # output rows
        return out

    def grouped_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights in the grouped net's layout, keyed by layer name (``"conv1.weight"``, ...),
        on the CPU."""
        return self._grouped("data")

    def grouped_grads(self) -> dict[str, torch.Tensor]:
        """The gradients after ``backward()``, in the grouped net's layout (same keys as
        :meth:`grouped_state_dict`), on the CPU."""
        return self._grouped("grad")

    def layout(self) -> list[dict]:
        """One dict per conv/fc layer: ``layer``, ``weight`` (tower 1's weight shape; tower 2's is
        the same), ``reads`` (what each tower's share of the layer takes as input) and ``crosses``
        (whether activations move between the towers for it)."""
        reads = {
            "image": "the whole image (each device holds a copy)",
            "local": "its own tower's maps only",
            "across": "both towers' outputs",
            "reduce": "its own tower's fc7 half; the partial sums meet",
        }
        out = []
        for i, (name, kind) in enumerate(zip(self.source_names, self.kinds)):
            part = self.towers[0][i]
            if isinstance(part, (nn.Conv2d, nn.Linear)):
                out.append(
                    {
                        "layer": name,
                        "weight": tuple(part.weight.shape),
                        "reads": reads[kind],
                        "crosses": kind in ("across", "reduce"),
                    }
                )
        return out

    def extra_repr(self) -> str:
        devices = [str(d) for d in self.devices]
        return f"variant={self.variant!r}, devices={devices}, halo_lrn={self.halo_lrn}"


def grouped_parameters(model: AlexNet) -> dict[str, nn.Parameter]:
    """The grouped net's parameters keyed by layer name, ``"conv1.weight"``, ``"fc8.bias"``, ...:
    the keys of :meth:`TowerParallelAlexNet.grouped_state_dict` and
    :meth:`~TowerParallelAlexNet.grouped_grads`."""
    out = {}
    for name, module in layer_names(model):
        for p in ("weight", "bias"):
            t = getattr(module, p, None)
            if isinstance(t, nn.Parameter):
                out[f"{name}.{p}"] = t
    return out


def _check_two_towers(model) -> None:
    if not isinstance(model, AlexNet):
        raise TypeError(
            f"split_towers() needs an alexlib AlexNet from alexlib.model.build, got "
            f"{type(model).__name__}"
        )
    if model.towers != 2:
        raise ValueError(
            f"{model.variant} has {model.towers} tower(s); only the two-tower variants "
            "('paper', 'paper-code') can be split between two devices"
        )


def _shape(x: torch.Tensor) -> str:
    return "x".join(str(s) for s in x.shape[1:])


def _conv_part(conv: nn.Conv2d, t: int, kind: str, device: torch.device) -> nn.Conv2d:
    """Tower ``t``'s half of ``conv``'s kernels, as a conv of its own with copied weights.

    ``kind="local"`` (groups=2): reads its own C_in/2 maps; else (conv1, conv3) it reads all
    C_in."""
    half = conv.out_channels // 2
    in_channels = conv.in_channels // 2 if kind == "local" else conv.in_channels
    part = nn.Conv2d(
        in_channels,
        half,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        bias=conv.bias is not None,
        device="meta",
    )
    # a grouped weight is (C_out, C_in / groups, kh, kw): tower t owns rows t*half .. (t+1)*half
    part.weight = nn.Parameter(
        conv.weight.detach()[t * half : (t + 1) * half].to(device, copy=True)
    )
    if conv.bias is not None:
        part.bias = nn.Parameter(
            conv.bias.detach()[t * half : (t + 1) * half].to(device, copy=True)
        )
    return part


def _linear_part(fc: nn.Linear, t: int, kind: str, device: torch.device) -> nn.Linear:
    """Tower ``t``'s share of ``fc``: half the output rows ("across"), or half the input columns
    ("reduce"; the bias then goes to tower 0 alone)."""
    if kind == "across":
        half = fc.out_features // 2
        part = nn.Linear(fc.in_features, half, bias=fc.bias is not None, device="meta")
        part.weight = nn.Parameter(
            fc.weight.detach()[t * half : (t + 1) * half].to(device, copy=True)
        )  # (out/2, in)
        if fc.bias is not None:
            part.bias = nn.Parameter(
                fc.bias.detach()[t * half : (t + 1) * half].to(device, copy=True)
            )
        return part
    half = fc.in_features // 2
    has_bias = fc.bias is not None and t == 0
    part = nn.Linear(half, fc.out_features, bias=has_bias, device="meta")
    part.weight = nn.Parameter(
        fc.weight.detach()[:, t * half : (t + 1) * half].to(device, copy=True)
    )  # (out, in/2)
    if has_bias:
        part.bias = nn.Parameter(fc.bias.detach().to(device, copy=True))
    return part


def split_towers(
    model: AlexNet,
    devices: Sequence[str | torch.device] = ("cuda:0", "cuda:1"),
    *,
    halo_lrn: bool = True,
) -> TowerParallelAlexNet:
    """Place the two towers of a grouped ``paper`` / ``paper-code`` net on ``devices`` (one each).

    The weights are copied; the grouped net is left as it was. With ``devices=("cpu", "cpu")`` the
    split runs (and is tested) without GPUs. See :class:`TowerParallelAlexNet`. Paper: section 3.2.
    """
    for d in devices:
        d = torch.device(d)
        if d.type == "cuda" and (
            not torch.cuda.is_available() or (d.index or 0) >= torch.cuda.device_count()
        ):
            have = torch.cuda.device_count() if torch.cuda.is_available() else 0
            raise ParallelError(
                f"device {d} is not available (this machine has {have} CUDA device(s)); "
                "pass devices=('cpu', 'cpu') to run the split on the CPU"
            )
    return TowerParallelAlexNet(model, devices, halo_lrn=halo_lrn)


@torch.no_grad()
def cross_device_traffic(
    model: AlexNet | TowerParallelAlexNet,
    input_size: tuple[int, int, int] = (3, 224, 224),
    *,
    halo_lrn: bool = True,
) -> list[Transfer]:
    """The activations that cross between the two towers in one forward pass, per image, layer by
    layer.

    Counted, not assumed: one image is pushed through the split net and every transfer between
    towers is recorded (both directions, at the model's float size; a grouped ``AlexNet`` is split
    on the ``meta`` device, which computes shapes only). The backward pass sends the gradients of
    the same tensors the other way: training moves twice these bytes. The image itself is copied
    from host memory to both devices and is not counted. Paper: section 3.2 ("the GPUs communicate
    only in certain layers").
    """
    if isinstance(model, TowerParallelAlexNet):
        towers = model
    else:
        _check_two_towers(model)
        towers = TowerParallelAlexNet(model, ("meta", "meta"), halo_lrn=halo_lrn)
    dtype = next(towers.parameters()).dtype
    towers._log = []
    try:
        towers(torch.zeros(1, *input_size, dtype=dtype, device=towers.devices[0]))
        log = towers._log
    finally:
        towers._log = None
    rows: dict[
        tuple[str, str], list[int]
    ] = {}  # (layer, what) -> [elements, bytes], in forward order
    for layer, what, elements, nbytes in log:
        acc = rows.setdefault((layer, what), [0, 0])
        acc[0] += elements
        acc[1] += nbytes
    return [Transfer(layer, what, e, b) for (layer, what), (e, b) in rows.items()]


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes one device needs to train a net with SGD and momentum (see :func:`memory_estimate`)."""

    weights: int
    gradients: int
    momentum: int
    activations: int
    activation_gradients: int

    @property
    def total(self) -> int:
        return (
            self.weights
            + self.gradients
            + self.momentum
            + self.activations
            + self.activation_gradients
        )


def memory_estimate(
    model: AlexNet,
    batch_size: int = 128,
    *,
    towers: int = 1,
    input_size: tuple[int, int, int] = (3, 224, 224),
    bytes_per_element: int = 4,
) -> MemoryEstimate:
    """A lower-bound count of one device's training memory, from
    :func:`alexlib.model.layer_summary`.

    Weights, their gradients and the momentum buffer: three copies of the parameters. Activations:
    every layer's output for ``batch_size`` images (an in-place ReLU adds none), kept for the
    backward pass, and the backward pass's gradient of each (the same size again, as cuda-convnet
    kept them). Not counted: convolution workspaces, the batches being loaded, the framework.
    ``towers=2``: the paper's split, every term halved except the input image, which both devices
    hold. Paper: section 3.2 ("a single GTX 580 GPU has only 3GB of memory").
    """
    if towers not in (1, 2):
        raise ValueError(f"towers must be 1 or 2, got {towers!r}")
    rows = layer_summary(model, input_size)
    params = sum(p.numel() for p in model.parameters())
    # the image (B, 3, H, W) as it enters conv1 (after edge padding where there is some)
    image = next(
        (r.activation_bytes for r in rows if r.kind == "EdgePad"),
        4 * int(torch.Size(input_size).numel()),
    )
    outputs = sum(
        r.activation_bytes
        for r in rows
        if r.kind != "EdgePad" and not getattr(_layer(model, r.name), "inplace", False)
    )
    per_image = (outputs / towers + image) * bytes_per_element // 4  # layer_summary counts float32
    weights = params * bytes_per_element // towers
    return MemoryEstimate(
        weights, weights, weights, int(per_image * batch_size), int(per_image * batch_size)
    )


def _layer(model: AlexNet, name: str) -> nn.Module:
    return dict(layer_names(model))[name]


# ----------------------------------------------------------------------------------------------
# Data parallel vs model parallel: what each sends per training step


def ring_allreduce_bytes(elements: int, workers: int, bytes_per_element: int = 4) -> int:
    """Bytes each worker sends in a ring all-reduce of ``elements`` numbers over ``workers``:
    ``2 (N - 1) / N`` times the tensor (a reduce-scatter, then an all-gather)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    # 2 (N - 1) / N * elements * bytes
    return 2 * (workers - 1) * elements * bytes_per_element // workers


@dataclass(frozen=True)
class CommRow:
    """One conv or fc layer: its share of the work and what parallelising it costs per training
    step.

    ``data_parallel_bytes``: each worker's all-reduce traffic for this layer's gradients (DDP);
    ``model_parallel_bytes``: the activations (forward) and their gradients (backward) that cross
    between two towers for this layer, for the whole batch."""

    name: str
    params: int
    macs: int
    data_parallel_bytes: int
    model_parallel_bytes: int


def communication_per_step(
    model: AlexNet,
    batch_size: int = 128,
    workers: int = 2,
    input_size: tuple[int, int, int] = (3, 224, 224),
    *,
    halo_lrn: bool = False,
) -> list[CommRow]:
    """Per conv/fc layer of a two-tower net: parameters, multiply-accumulates per image, and the
    bytes one training step of ``batch_size`` images moves under data parallelism (all-reduce of the
    layer's gradients among ``workers``; independent of the batch) and under the paper's two-tower
    model parallelism (:func:`cross_device_traffic`, forward and backward, times the batch).

    ``halo_lrn=False`` (default) counts the paper's split, where each GPU normalised its own maps;
    ``True`` adds the LRN boundary exchange that equality with the grouped module needs (to conv1
    and conv2, whose LRN it is). Krizhevsky's "One weird trick" (2014): conv layers hold most of the
    compute and few parameters, fc layers the reverse, so data parallelism suits the former and
    model parallelism the latter.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    _check_two_towers(model)
    summary = {r.name: r for r in layer_summary(model, input_size)}
    traffic: dict[str, int] = {}
    for t in cross_device_traffic(model, input_size, halo_lrn=halo_lrn):
        traffic[t.layer] = traffic.get(t.layer, 0) + t.bytes
    # LRN halos belong to the conv layer that feeds them (lrn1 -> conv1, lrn2 -> conv2)
    for name in list(traffic):
        if name.startswith("lrn"):
            conv = "conv" + name[3:]
            traffic[conv] = traffic.get(conv, 0) + traffic.pop(name)
    rows = []
    for name, r in summary.items():
        if r.kind not in ("Conv2d", "Linear"):
            continue
        rows.append(
            CommRow(
                name,
                r.params,
                r.macs,
                ring_allreduce_bytes(r.params, workers),
                2 * batch_size * traffic.get(name, 0),
            )
        )  # forward + backward
    return rows


# ----------------------------------------------------------------------------------------------
# Launching training runs (one process, or DDP under torchrun) from Python


def train_command(
    out: str | os.PathLike,
    *,
    nproc: int = 1,
    dataset: str = "cifar10",
    variant: str = "cifar4",
    scale: str = "smoke",
    **options,
) -> list[str]:
    """The command line of ``python -m alexlib train`` for the run folder ``out``: with ``nproc >
    1`` under ``torchrun --standalone --nproc_per_node nproc`` (DDP; gloo on the CPU, NCCL on GPUs).

    ``options`` are the train command's flags with underscores, e.g. ``image_size=32`` ->
    ``--image-size 32`` (``data_root`` -> ``--root``). Each process trains on ``x[rank::nproc]`` of
    the same global batch, so ``batch_size`` is the global batch whatever ``nproc`` is.
    """
    unknown = sorted(set(options) - set(TRAIN_FLAGS))
    if unknown:
        raise UnknownSettingError(
            f"unknown training option(s) {unknown}; the options are: {sorted(TRAIN_FLAGS)}"
        )
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be a positive whole number of processes, got {nproc!r}")
    args = [
        "-m",
        "alexlib",
        "train",
        "--dataset",
        dataset,
        "--variant",
        variant,
        "--scale",
        scale,
        "--out",
        str(out),
        "--quiet",
    ]
    for key in sorted(options):
        value = options[key]
        if value is None:
            continue
        flag = "--root" if key == "data_root" else "--" + key.replace("_", "-")
        args += [flag, str(value)]
    if nproc == 1:
        return [sys.executable, *args]
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        *args,
    ]


def ddp_demo_settings(scale: str) -> dict:
    """Keyword arguments of :func:`run_training` for the chapter's one-process vs DDP comparison at
    ``scale`` (the registry's ``ddp`` preset). The device is the CPU (gloo) unless the machine has
    a GPU per process (two or more)."""
    device = "cuda" if torch.cuda.is_available() and torch.cuda.device_count() >= 2 else "cpu"
    return {**preset("ddp", scale), "device": device}


def run_training(
    out: str | os.PathLike,
    *,
    nproc: int = 1,
    threads_per_process: int | None = 1,
    timeout: float = 600,
    **kw,
) -> Path:
    """Run :func:`train_command` in a subprocess and wait for it; returns the run folder ``out``
    (``settings.json``, ``metrics.jsonl``, ``checkpoint.pt``; read them with
    :func:`alexlib.train.read_metrics`). ``threads_per_process`` sets ``OMP_NUM_THREADS`` so that
    processes sharing a CPU do not fight over its cores (None: leave it as it is). A failed run
    raises :class:`ParallelError` with the end of its error output."""
    cmd = train_command(out, nproc=nproc, **kw)
    env = dict(os.environ)
    if threads_per_process is not None:
        env["OMP_NUM_THREADS"] = str(threads_per_process)
    try:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ParallelError(
            f"the training run did not finish within {timeout:.0f} s: {' '.join(cmd)}. "
            "Pass a larger timeout=, or fewer epochs / images."
        ) from None
    if done.returncode != 0:
        raise ParallelError(
            f"the training run failed (exit status {done.returncode}): {' '.join(cmd)}\n"
            f"{done.stderr[-3000:]}"
        )
    return Path(out)


def compare_runs(a: str | os.PathLike, b: str | os.PathLike) -> dict:
    """How far two run folders' results are apart: the largest absolute difference of any weight in
    their final checkpoints (``max_weight_diff``), the largest relative one (``max_weight_rel``, per
    tensor: max |a - b| / max |a|), and per epoch the validation loss and top-1 error of both
    (``epochs``: a list of dicts). Both runs must have the same settings apart from the process
    count."""
    ca, cb = load_checkpoint(Path(a) / "checkpoint.pt"), load_checkpoint(Path(b) / "checkpoint.pt")
    if ca["model"].keys() != cb["model"].keys():
        raise ParallelError(
            f"{a} and {b} hold different networks; compare runs of the same variant"
        )
    diff, rel = 0.0, 0.0
    for name, wa in ca["model"].items():
        wb = cb["model"][name]
        if not torch.is_floating_point(wa):
            continue
        d = (wa - wb).abs().max().item()
        diff = max(diff, d)
        rel = max(rel, d / max(wa.abs().max().item(), 1e-12))
    epochs = [
        {
            "epoch": ra["epoch"],
            "val_loss": (ra["val_loss"], rb["val_loss"]),
            "val_top1_err": (ra["val_top1_err"], rb["val_top1_err"]),
        }
        for ra, rb in zip(read_metrics(a), read_metrics(b))
    ]
    return {"max_weight_diff": diff, "max_weight_rel": rel, "epochs": epochs}
