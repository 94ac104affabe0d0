"""Faster, equal forms of the paper net's slow layers: LRN, the towers' grouped convolutions, conv1.

The paper's network and torchvision's slimmer ``alexnet`` cost about the same arithmetic per image,
yet written with PyTorch's stock layers the paper's net trains much more slowly on a GPU
(``python -m tools.bench`` measures by how much): ``nn.LocalResponseNorm`` (a padded 3-D average
pool over the squared maps), cuDNN's grouped convolutions, and conv1's 3-channel, stride-4 input all
leave the tensor cores idle.
This module computes the same functions in other ways, and :func:`speed_up` swaps them into a
built net *keeping its parameters*, so state dicts, checkpoints and the paper's init are unchanged.

    LRN (:class:`FastLRN`, ``impl=``)
        ``"reference"``  PyTorch's ``F.local_response_norm`` (per tower), as ``alexlib.model``
                         builds it
        ``"shift"``      the window sum as five shifted slices of the squared maps: one pointwise
                         expression that ``torch.compile`` fuses into a single kernel, forward
                         and backward
        ``"banded"``     the window sum as a matmul with a (C, C) band matrix, block-diagonal per
                         tower
        ``"triton"``     a hand-written fused Triton kernel (forward, and a backward that
                         recomputes the sums rather than storing them; ``alexlib/_lrn_triton.py``);
                         CUDA, or the CPU under ``TRITON_INTERPRET=1``
    grouped convolutions, the towers (:class:`FastConv2d`, ``impl=``)
        ``"native"``     ``nn.Conv2d`` with ``groups=2`` (cuDNN's grouped kernels)
        ``"dense"``      one dense convolution with the cross-tower blocks of the kernel held at
                         zero (more multiply-adds, but dense kernels often run faster than grouped
                         ones)
        ``"split"``      one convolution per tower on its half of the maps, outputs concatenated
    conv1 (:class:`FastConv2d`, ``impl="s2d"``)
        space-to-depth: the 11x11 stride-4 convolution over 3 channels rewritten as a 3x3 stride-1
        convolution over 48 channels (4x4 pixel blocks unshuffled into channels, the kernel padded
        with zeros to 12x12): the same sums, in a shape matrix units handle well

Every form equals the reference in outputs and gradients up to float rounding
(``tests/test_fast.py``, and :func:`check_equal`); which is *fastest* is a property of the GPU and
the compiler, measured by ``python -m tools.bench --sweep`` (``tools/bench.py``: the project's
tooling, in the repository, not in this package). The chapters that teach keep the reference
layers; :func:`speed_up` is applied where the net trains on a GPU (``alexlib.train.train_run``).

Paper: section 3.3 (LRN), section 3.2 (the towers), section 3.5 (conv1).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import recipe
from .layers import lrn_window
from .model import TowerLRN

__all__ = [
    "LRN_IMPLS",
    "CONV_IMPLS",
    "CONV1_IMPLS",
    "DEFAULTS",
    "EAGER_LRN",
    "lrn",
    "lrn_shift",
    "lrn_banded",
    "lrn_triton",
    "triton_available",
    "FastLRN",
    "FastConv2d",
    "block_diagonal",
    "space_to_depth_conv",
    "speed_up",
    "for_device",
    "uses_channels_last",
    "describe",
    "check_equal",
]

LRN_IMPLS = ("reference", "shift", "banded", "triton")
CONV_IMPLS = ("native", "dense", "split")
CONV1_IMPLS = ("native", "s2d")

#: What ``"auto"`` means on a CUDA device inside ``torch.compile`` (and what ``bench`` measures as
#: "paper, alexlib"). The book's first GPU bench (an H200, torch 2.11, compiled, bf16; stored in
#: ``results/bench/20261204T153556Z-h200.json``, chapter 8) trained the net with the ``shift`` LRN
#: at 14,808 images/s against 18,796 with PyTorch's own LRN, side by side in one process, so the
#: reference LRN is the default until a sweep on a GPU (``banded``, ``triton``) finds a faster
#: form. Replace them with the winners of ``python -m tools.bench --sweep`` on your GPU.
DEFAULTS = {"lrn": "reference", "conv": "native", "conv1": "native"}

#: ``"auto"`` LRN on CUDA when the net runs eagerly (not compiled): the shifted-slice form only pays
#: off once the compiler fuses it, so eager code keeps PyTorch's own kernels.
EAGER_LRN = "reference"


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices + ("auto",):
        raise ValueError(
            f"{name} must be one of {', '.join(repr(c) for c in choices + ('auto',))}; got "
            f"{value!r}"
        )
    return value


# ----------------------------------------------------------------------------------------------
# LRN, three ways. Each computes, within each block of C / towers maps,
#     b_c = a_c / (k + alpha / n * sum_{c' = c - n//2 .. c + (n-1)//2} a_c'^2) ^ beta
# (PyTorch's window, which for the paper's odd n = 5 is the symmetric c-2 .. c+2). The sums run in
# float32 whatever the input's dtype (bf16 under autocast), and the result has the input's dtype.


def _check_lrn_input(x: Tensor, size: int, towers: int) -> None:
    if not isinstance(x, Tensor) or x.dim() != 4:
        got = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"LRN expects a batch of maps (B, C, H, W), got {got}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"LRN size must be a positive int, got {size!r}")
    if not isinstance(towers, int) or towers < 1 or x.shape[1] % towers:
        raise ValueError(
            f"towers={towers!r} must be a positive int dividing the {x.shape[1]} channels"
        )


def _compute_dtype(x: Tensor) -> Tensor:
    # float32 sums for bf16 / fp16 maps; float64 stays float64
    return x.float() if x.element_size() < 4 else x


def lrn_shift(
    x: Tensor,
    size: int = recipe.LRN_SIZE,
    alpha: float = recipe.LRN_ALPHA,
    beta: float = recipe.LRN_BETA,
    k: float = recipe.LRN_K,
    towers: int = 1,
) -> Tensor:
    """LRN as a sum of ``size`` shifted slices of the zero-padded squared maps (per tower).

    (B, C, H, W) -> (B, C, H, W). No pooling op, no gather: after ``torch.compile`` the pad, the
    slices, the sum and the power are one pointwise kernel (and so is the backward).
    """
    _check_lrn_input(x, size, towers)
    b, c, h, w = x.shape
    xf = _compute_dtype(x).view(b, towers, c // towers, h, w)  # a view in either memory format
    # zero maps beyond each tower's edge
    sq = F.pad(xf.square(), (0, 0, 0, 0, size // 2, (size - 1) // 2))
    total = sq[:, :, 0 : c // towers]
    for d in range(1, size):
        total = total + sq[:, :, d : d + c // towers]
    y = xf * (k + (alpha / size) * total).pow(-beta)
    return y.view(b, c, h, w).to(x.dtype)


def lrn_banded(
    x: Tensor,
    size: int = recipe.LRN_SIZE,
    alpha: float = recipe.LRN_ALPHA,
    beta: float = recipe.LRN_BETA,
    k: float = recipe.LRN_K,
    towers: int = 1,
) -> Tensor:
    """LRN with the window sum as one matmul: squared maps (B*H*W, C) times a (C, C) band matrix.

    (B, C, H, W) -> (B, C, H, W). The band is block-diagonal, one block per tower, so the towers
    cost nothing extra. In channels-last memory the (B, H, W, C) view is already contiguous.
    """
    _check_lrn_input(x, size, towers)
    xf = _compute_dtype(x).permute(0, 2, 3, 1)  # (B, H, W, C)
    # band[c', c] = 1 when map c' is summed for map c: the window matrix turned over. Built on
    # each call (a 96x96 comparison, nothing next to the matmul), so torch.compile folds it.
    band = lrn_window(x.shape[1], size, towers=towers, device=x.device, dtype=xf.dtype).T
    with torch.autocast(x.device.type, enabled=False):  # autocast would run the matmul in bf16
        total = xf.square() @ band  # (B, H, W, C)
    y = (xf * (k + (alpha / size) * total).pow(-beta)).permute(0, 3, 1, 2).to(x.dtype)
    # the permuted result is channels-last: give a contiguous input a contiguous output, so the
    # layers after it keep the memory format the net chose
    return y if x.is_contiguous(memory_format=torch.channels_last) else y.contiguous()


# -- the Triton kernel --------------------------------------------------------------------------


def triton_available() -> bool:
    """Whether Triton is importable (it ships with PyTorch's CUDA builds on Linux)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _triton_ops():
    """The registered Triton LRN op (:mod:`alexlib._lrn_triton`, imported on first use, outside any
    compiled region: :class:`FastLRN` does it when it is built)."""
    from . import _lrn_triton

    return _lrn_triton.lrn_forward


def _collapsible(x: Tensor) -> bool:
    # H and W must share one stride run so the kernel can address them as one H*W axis
    return x.shape[3] == 1 or x.stride(2) == x.shape[3] * x.stride(3)


def lrn_triton(
    x: Tensor,
    size: int = recipe.LRN_SIZE,
    alpha: float = recipe.LRN_ALPHA,
    beta: float = recipe.LRN_BETA,
    k: float = recipe.LRN_K,
    towers: int = 1,
) -> Tensor:
    """LRN as one fused Triton kernel per direction (per-tower windows, float32 sums).

    (B, C, H, W) -> (B, C, H, W), in the input's memory format. Runs on CUDA; on the CPU only under
    ``TRITON_INTERPRET=1`` (slowly: that is how the tests check it on machines without a GPU).
    """
    _check_lrn_input(x, size, towers)
    if not torch.compiler.is_compiling():  # inside torch.compile the op is already registered
        if not triton_available():
            raise RuntimeError(
                "the Triton LRN needs the 'triton' package (it comes with PyTorch's CUDA builds "
                "on Linux); use impl='shift' instead"
            )
        if x.device.type != "cuda" and not _interpreting():
            raise RuntimeError(
                f"the Triton LRN runs on CUDA tensors, got one on {x.device.type}; use "
                "impl='shift' (or set TRITON_INTERPRET=1 to run the kernel in Triton's "
                "interpreter, for tests)"
            )
        _triton_ops()
    if not _collapsible(x):
        x = x.contiguous()
    return torch.ops.alexlib.lrn_forward(x, size, float(alpha), float(beta), float(k), towers)


def _lrn_reference(
    x: Tensor, size: int, alpha: float, beta: float, k: float, towers: int
) -> Tensor:
    _check_lrn_input(x, size, towers)
    b, c, h, w = x.shape
    if towers == 1:
        return F.local_response_norm(x, size, alpha, beta, k)
    return F.local_response_norm(
        x.reshape(b * towers, c // towers, h, w), size, alpha, beta, k
    ).reshape(b, c, h, w)


_LRN_FUNCS = {
    "reference": _lrn_reference,
    "shift": lrn_shift,
    "banded": lrn_banded,
    "triton": lrn_triton,
}


def lrn(
    x: Tensor,
    size: int = recipe.LRN_SIZE,
    alpha: float = recipe.LRN_ALPHA,
    beta: float = recipe.LRN_BETA,
    k: float = recipe.LRN_K,
    towers: int = 1,
    *,
    impl: str = "shift",
) -> Tensor:
    """Local response normalisation (per tower) computed by ``impl`` (one of :data:`LRN_IMPLS`)."""
    _check_choice("impl", impl, LRN_IMPLS)
    if impl == "auto":
        if x.device.type != "cuda":
            impl = "reference"
        else:
            impl = DEFAULTS["lrn"] if torch.compiler.is_compiling() else EAGER_LRN
    return _LRN_FUNCS[impl](x, size, alpha, beta, k, towers)  # each form checks its input once


class FastLRN(TowerLRN):
    """:class:`alexlib.model.TowerLRN` (same hyperparameters, same towers) computed by ``impl``.

    ``impl="auto"`` picks, for CUDA inputs, :data:`DEFAULTS` ``["lrn"]`` inside ``torch.compile``
    and
    :data:`EAGER_LRN` outside it; the reference on the CPU.
    """

    def __init__(
        self,
        size: int = recipe.LRN_SIZE,
        alpha: float = recipe.LRN_ALPHA,
        beta: float = recipe.LRN_BETA,
        k: float = recipe.LRN_K,
        towers: int = 1,
        impl: str = "auto",
    ):
        super().__init__(size, alpha, beta, k, towers)
        self.impl = _check_choice("impl", impl, LRN_IMPLS)
        if (
            impl == "triton" or (impl == "auto" and "triton" in (DEFAULTS["lrn"], EAGER_LRN))
        ) and triton_available():
            _triton_ops()  # register the op now: torch.compile cannot trace its registration

    def forward(self, x: Tensor) -> Tensor:
        return lrn(x, self.size, self.alpha, self.beta, self.k, self.towers, impl=self.impl)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, impl={self.impl!r}"


# ----------------------------------------------------------------------------------------------
# Convolutions


def block_diagonal(weight: Tensor, groups: int) -> Tensor:
    """A grouped conv's kernel (C_out, C_in / g, kH, kW) as the equal dense kernel (C_out, C_in, kH,
    kW): group i's block on the diagonal, zeros elsewhere (gradients reach only the diagonal
    blocks)."""
    if groups == 1:
        return weight
    c_out, c_in_g, kh, kw = weight.shape
    co = c_out // groups
    rows = []
    for i, block in enumerate(weight.split(co, dim=0)):
        parts = []
        if i:
            parts.append(block.new_zeros(co, i * c_in_g, kh, kw))
        parts.append(block)
        if i < groups - 1:
            parts.append(block.new_zeros(co, (groups - 1 - i) * c_in_g, kh, kw))
        rows.append(torch.cat(parts, dim=1))
    return torch.cat(rows, dim=0)


def space_to_depth_conv(
    x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int = 0, groups: int = 1
) -> Tensor:
    """A stride-``s`` convolution as a stride-1 one on ``s x s`` pixel blocks unshuffled into
    channels.

    (B, C, H, W) -> (B, C_out, H_out, W_out), equal to ``F.conv2d(x, weight, bias, stride, padding,
    groups=groups)``. The kernel (kH, kW) is zero-padded to multiples of ``s`` (11 -> 12 for conv1)
    and rearranged to (C_out, C * s * s, kH / s, kW / s); the input is padded (or cropped) to
    exactly the pixels the windows read, then ``pixel_unshuffle``-d. For conv1 of the paper (3 x 11
    x 11, stride 4): 227x227x3 -> 57x57x48 -> 3x3 kernels -> 55x55x96.
    """
    s = stride
    c_out, c_in_g, kh, kw = weight.shape
    kh2, kw2 = -(-kh // s) * s, -(-kw // s) * s
    if padding:
        x = F.pad(x, (padding, padding, padding, padding))
    h, w = x.shape[-2:]
    if h < kh or w < kw:
        raise ValueError(
            f"a {kh}x{kw} kernel does not fit a {h}x{w} input (after padding {padding})"
        )
    h_out, w_out = (h - kh) // s + 1, (w - kw) // s + 1
    need_h, need_w = (h_out - 1) * s + kh2, (w_out - 1) * s + kw2
    # pad with zeros (read only by the kernel's zero rows/columns) or drop pixels no window reads
    x = F.pad(x, (0, need_w - w, 0, need_h - h))
    u = F.pixel_unshuffle(
        x, s
    )  # (B, C*s*s, need_h/s, need_w/s); channel c*s*s + i*s + j = pixel (i, j) of a block
    wp = F.pad(weight, (0, kw2 - kw, 0, kh2 - kh))  # (C_out, C/g, kh2, kw2)
    wp = wp.reshape(c_out, c_in_g, kh2 // s, s, kw2 // s, s).permute(0, 1, 3, 5, 2, 4)
    wp = wp.reshape(c_out, c_in_g * s * s, kh2 // s, kw2 // s)
    return F.conv2d(u, wp, bias, 1, 0, 1, groups)


class FastConv2d(nn.Conv2d):
    """``nn.Conv2d`` (same parameters, same state dict) computed by ``impl``: ``"native"``,
    ``"dense"`` / ``"split"`` (grouped convs, see the module doc) or ``"s2d"`` (strided convs)."""

    def __init__(self, *args, impl: str = "native", **kwargs):
        super().__init__(*args, **kwargs)
        self.impl = impl
        self._check()

    def _check(self) -> None:
        _check_choice("impl", self.impl, tuple(dict.fromkeys(CONV_IMPLS + CONV1_IMPLS)))
        if self.impl == "s2d":
            s, p = self.stride, self.padding
            if (
                s[0] != s[1]
                or s[0] < 2
                or isinstance(p, str)
                or p[0] != p[1]
                or self.dilation != (1, 1)
                or self.padding_mode != "zeros"
            ):
                raise ValueError(
                    "impl='s2d' needs a square stride >= 2, equal zero padding and no dilation; "
                    f"this conv has stride={s}, padding={p}, dilation={self.dilation}"
                )

    @classmethod
    def like(cls, conv: nn.Conv2d, impl: str) -> FastConv2d:
        """A FastConv2d sharing ``conv``'s parameter tensors (no copy)."""
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.__dict__.update(
            {
                k: v
                for k, v in conv.__dict__.items()
                if k not in ("_parameters", "_buffers", "_modules")
            }
        )
        new._parameters = (
            conv._parameters
        )  # the same Parameter objects: an optimizer built before still works
        new._buffers = conv._buffers
        new._modules = conv._modules
        new.impl = impl
        new._check()
        return new

    def forward(self, x: Tensor) -> Tensor:
        g = self.groups
        if self.impl == "native" or (self.impl in ("dense", "split") and g == 1):
            return super().forward(x)
        if self.impl == "s2d":
            return space_to_depth_conv(
                x, self.weight, self.bias, self.stride[0], self.padding[0], g
            )
        if self.impl == "dense":
            return F.conv2d(
                x,
                block_diagonal(self.weight, g),
                self.bias,
                self.stride,
                self.padding,
                self.dilation,
                1,
            )
        # split: one conv per tower
        xs = x.chunk(g, dim=1)
        ws = self.weight.chunk(g, dim=0)
        bs = self.bias.chunk(g, dim=0) if self.bias is not None else [None] * g
        return torch.cat(
            [
                F.conv2d(a, w, b, self.stride, self.padding, self.dilation, 1)
                for a, w, b in zip(xs, ws, bs)
            ],
            dim=1,
        )

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, impl={self.impl!r}"


# ----------------------------------------------------------------------------------------------
# Swapping the fast forms into a built net


def _resolve(value: str, key: str, device: torch.device | str) -> str:
    if (
        value != "auto" or key == "lrn"
    ):  # an "auto" LRN decides per call (compiled or not, see lrn())
        return value
    return DEFAULTS[key] if torch.device(device).type == "cuda" else "native"


def speed_up(
    model: nn.Module,
    *,
    lrn: str = "auto",
    conv: str = "auto",
    conv1: str = "auto",
    device: torch.device | str | None = None,
) -> nn.Module:
    """Swap ``model``'s LRN layers, grouped convolutions and strided first conv for the chosen fast
    forms, in place, keeping every parameter tensor; returns ``model``.

    ``"auto"`` means :data:`DEFAULTS` on a CUDA device and the reference layers elsewhere
    (``device`` defaults to where the model's parameters are; an ``"auto"`` LRN decides on each
    call, see :func:`lrn`). Works on every variant (those without LRN or towers just keep those
    layers). Gives the same outputs and gradients up to float rounding; the state dict is unchanged,
    so checkpoints load into either form.
    """
    _check_choice("lrn", lrn, LRN_IMPLS)
    _check_choice("conv", conv, CONV_IMPLS)
    _check_choice("conv1", conv1, CONV1_IMPLS)
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else "cpu"
    lrn, conv, conv1 = (
        _resolve(lrn, "lrn", device),
        _resolve(conv, "conv", device),
        _resolve(conv1, "conv1", device),
    )
    first_conv = True
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.LocalResponseNorm):
                setattr(
                    parent,
                    name,
                    FastLRN(
                        child.size,
                        child.alpha,
                        child.beta,
                        child.k,
                        getattr(child, "towers", 1),
                        impl=lrn,
                    ),
                )
            elif isinstance(child, nn.Conv2d):
                impl = "native"
                if first_conv and child.stride[0] > 1:
                    impl = conv1
                elif child.groups > 1:
                    impl = conv
                first_conv = False
                setattr(parent, name, FastConv2d.like(child, impl))
    return model


def uses_channels_last(device: torch.device | str, channels_last: bool = True) -> bool:
    """Whether a net asked for ``channels_last`` memory gets it on ``device`` (a CPU or CUDA
    device; elsewhere it stays contiguous): what :func:`for_device` does to the weights and the
    training loop to the batches."""
    return channels_last and torch.device(device).type in ("cuda", "cpu")


def for_device(
    model: nn.Module, device: torch.device | str, *, channels_last: bool = True, fast: bool = True
) -> nn.Module:
    """Put ``model`` on ``device`` in the layout alexlib trains it with there, in place; returns
    ``model``. ``channels_last``: channels-last memory on a CPU or CUDA device. ``fast``: the fast
    layer forms (:func:`speed_up`): :data:`DEFAULTS` on CUDA; on a CPU the banded LRN, the one form
    that pays there (``benchmarks/bench_cpu.py``). The same function and the same state dict, so
    what a trained net computes (and evaluates to) does not depend on it."""
    device = torch.device(device)
    model.to(device)
    if uses_channels_last(device, channels_last):
        model.to(memory_format=torch.channels_last)
    if fast and device.type == "cuda":
        speed_up(model, device=device)
    elif fast and device.type == "cpu":
        speed_up(model, lrn="banded", device=device)
    return model


def describe(model: nn.Module) -> dict[str, str]:
    """Which form each fast layer of ``model`` uses, by module name: ``{"features.4": "shift",
    ...}``."""
    return {
        name: m.impl for name, m in model.named_modules() if isinstance(m, (FastLRN, FastConv2d))
    }


def check_equal(
    reference: nn.Module, fast: nn.Module, x: Tensor, *, rtol: float = 1e-4
) -> dict[str, dict]:
    """Compare every fast layer of ``fast`` with the same-named layer of ``reference``, on the input
    that layer receives when ``reference`` runs on ``x``: outputs, input gradients and parameter
    gradients (for one random output gradient), each as the relative difference ``|a - b| / |a|``
    (Euclidean norms). Returns ``{layer name: {"impl", "output", "input grad", "param grad",
    "equal"}}``.

    Layer by layer, not the whole net: float rounding can flip which of two nearly equal values a
    max pool picks, and one flipped choice moves a gradient element; that is rounding, not a
    different function, and a layer-wise check is not fooled by it.
    """
    targets = {name: m for name, m in fast.named_modules() if isinstance(m, (FastLRN, FastConv2d))}
    ref_modules = dict(reference.named_modules())
    missing = sorted(set(targets) - set(ref_modules))
    if missing:
        raise ValueError(
            f"reference has no layers named {missing}: pass the net the fast one was made from"
        )
    inputs: dict[str, Tensor] = {}
    hooks = [
        ref_modules[name].register_forward_pre_hook(
            lambda mod, args, name=name: inputs.__setitem__(name, args[0].detach().clone())
        )
        for name in targets
    ]
    was_training = reference.training
    try:
        reference.eval()
        with torch.no_grad():
            reference(x)
    finally:
        for h in hooks:
            h.remove()
        reference.train(was_training)

    def rel(a: Tensor, b: Tensor) -> float:
        a, b = a.double(), b.double()
        return ((a - b).norm() / a.norm().clamp_min(1e-300)).item()

    rows = {}
    for name, fast_m in targets.items():
        ref_m, xin = ref_modules[name], inputs[name]
        results = []
        for m in (ref_m, fast_m):
            xa = xin.clone().requires_grad_(True)
            y = m(xa)
            g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y)
            params = list(m.parameters())
            grads = torch.autograd.grad(y, [xa, *params], g)
            results.append((y.detach(), grads[0], grads[1:]))
        (ya, ga, pa), (yb, gb, pb) = results
        row = {
            "impl": targets[name].impl,
            "output": rel(ya, yb),
            "input grad": rel(ga, gb),
            "param grad": max((rel(a, b) for a, b in zip(pa, pb)), default=0.0),
        }
        row["equal"] = all(row[k] <= rtol for k in ("output", "input grad", "param grad"))
        rows[name] = row
    return rows
