"""AlexNet's building blocks written out from their definitions, for teaching.

Each function here computes the same numbers as a PyTorch built-in (the tests check forward and
backward against them); the point is to see the arithmetic, not to be fast. The network code in
``alexlib.model`` uses PyTorch's own layers.

    conv2d / Conv2d                      2-D convolution as unfold + matmul   Paper: section 3.5
    relu / ReLU                          max(0, x)                            Paper: section 3.1
    local_response_norm / LocalResponseNorm   across-channel normalisation    Paper: section 3.3
    max_pool2d / MaxPool2d               (overlapping) max pooling            Paper: section 3.4
    dropout / Dropout                    the paper's and the inverted form    Paper: section 4.2
    conv_output_size                     (W - F + 2P) / S + 1                 Paper: section 3.5
    oriented_kernels                     hand-made conv1-like edge kernels    (for the chapters)

Like PyTorch (and every deep-learning library), "convolution" here is cross-correlation: the
kernel is not flipped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import recipe

__all__ = [
    "conv_output_size",
    "conv2d",
    "Conv2d",
    "oriented_kernels",
    "relu",
    "ReLU",
    "lrn_window",
    "local_response_norm",
    "LocalResponseNorm",
    "LRN_CONVENTIONS",
    "max_pool2d",
    "MaxPool2d",
    "dropout",
    "Dropout",
    "DROPOUT_MODES",
]


# --------------------------------------------------------------------------------------------
# argument checks shared by the layers


def _pair(value, name: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(3, 2)`` stays; anything else is a clear error."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return value, value
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    ):
        return int(value[0]), int(value[1])
    raise TypeError(f"{name} must be an int or a pair of ints (height, width), got {value!r}")


def _check_image_batch(x: Tensor, what: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{what} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(
            f"{what} expects a batch of shape (B, C, H, W), got shape {tuple(x.shape)}; "
            "add a batch dimension with x.unsqueeze(0) for a single image"
        )
    if not x.is_floating_point():
        raise TypeError(
            f"{what} expects floating-point input, got {x.dtype}; convert uint8 images "
            "with x.float() / 255 (or x.float())"
        )


# --------------------------------------------------------------------------------------------
# output-size arithmetic


def conv_output_size(
    size: int, kernel: int, stride: int = 1, padding: int = 0, *, rounding: str = "exact"
) -> int:
    """Output width of a convolution or pooling window sliding over ``size`` pixels.

    ``(size - kernel + 2 * padding) / stride + 1`` positions, where ``rounding`` says what
    happens when the division is not whole:

    - ``"exact"``: raise ``ValueError`` (the kernel would not tile the input evenly),
    - ``"floor"``: drop the last partial step, as PyTorch and Caffe do,
    - ``"ceil"``: keep it, treating pixels past the edge as zero, as cuda-convnet (the paper's
      code) does: ``1 + ceil((2p + size - kernel) / stride)``.

    >>> conv_output_size(227, 11, 4)          # conv1 in Caffe
    55
    >>> conv_output_size(224, 11, 4, rounding="ceil")   # conv1 in cuda-convnet
    55

    Paper: section 3.5 (conv1: 224x224x3 input, 11x11 kernels, stride 4, 55x55 output).
    """
    for name, value, low in (
        ("size", size, 1),
        ("kernel", kernel, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if rounding not in ("exact", "floor", "ceil"):
        raise ValueError(f"rounding must be 'exact', 'floor' or 'ceil', got {rounding!r}")
    span = size + 2 * padding - kernel
    if span < 0:
        raise ValueError(
            f"a {kernel}-wide kernel does not fit in {size} pixels with padding {padding}"
        )
    if span % stride and rounding == "exact":
        raise ValueError(
            f"(W - F + 2P) / S + 1 = ({size} - {kernel} + 2*{padding}) / {stride} + 1 = "
            f"{span / stride + 1:g} is not a whole number: the windows do not tile the input. "
            "Change the size or padding, or pass rounding='floor' (PyTorch) or 'ceil' "
            "(cuda-convnet)."
        )
    if rounding == "ceil":
        return 1 + -(-span // stride)
    return span // stride + 1


# --------------------------------------------------------------------------------------------
# convolution


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    groups: int = 1,
) -> Tensor:
    """2-D convolution (cross-correlation) written as "unfold the patches, then one matmul".

    Shapes: ``x`` (B, C_in, H, W), ``weight`` (C_out, C_in / groups, kH, kW), ``bias`` (C_out,)
    -> (B, C_out, H_out, W_out) with ``H_out = (H - kH + 2 * pad) // stride + 1``.
    Equal to ``torch.nn.functional.conv2d`` with the same arguments.

    ``groups=2`` is the paper's two-GPU split: the first half of the output maps sees only the
    first half of the input maps, the second half only the second (conv2, conv4, conv5).

    Paper: section 3.5 (and section 3.2 for the groups).
    """
    _check_image_batch(x, "conv2d")
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        raise ValueError(
            "conv2d expects weight of shape (C_out, C_in / groups, kH, kW), got "
            f"{tuple(weight.shape) if isinstance(weight, Tensor) else type(weight).__name__}"
        )
    if weight.dtype != x.dtype:
        raise TypeError(f"x is {x.dtype} but weight is {weight.dtype}; cast one to the other")
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"groups must be an int >= 1, got {groups!r}")
    (sh, sw), (ph, pw) = _pair(stride, "stride"), _pair(padding, "padding")
    if sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError(
            f"stride must be >= 1 and padding >= 0, got stride={stride}, padding={padding}"
        )
    batch, c_in, height, width = x.shape
    c_out, c_per_group, kh, kw = weight.shape
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"groups={groups} must divide both the input channels ({c_in}) and the output channels "
            f"({c_out})"
        )
    if c_per_group * groups != c_in:
        raise ValueError(
            f"weight expects {c_per_group} input channels per group x {groups} groups = "
            f"{c_per_group * groups} channels, but x has {c_in}"
        )
    if bias is not None and tuple(bias.shape) != (c_out,):
        raise ValueError(f"bias must have shape ({c_out},), got {tuple(bias.shape)}")
    h_out = conv_output_size(height, kh, sh, ph, rounding="floor")
    w_out = conv_output_size(width, kw, sw, pw, rounding="floor")

    # Every kH x kW patch of every input map, laid out as a column ("im2col").
    cols = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))  # (B, C_in*kH*kW, L)
    cols = cols.view(batch, groups, c_per_group * kh * kw, h_out * w_out)  # (B, G, C_in/G*kH*kW, L)
    w = weight.reshape(groups, c_out // groups, c_per_group * kh * kw)  # (G, C_out/G, C_in/G*kH*kW)
    # y[b, g, o, l] = sum_k w[g, o, k] * cols[b, g, k, l]: each output pixel is a dot product
    # of one kernel with one patch.
    y = torch.matmul(w.unsqueeze(0), cols)  # (B, G, C_out/G, L)
    y = y.reshape(batch, c_out, h_out, w_out)  # (B, C_out, H_out, W_out)
    if bias is not None:
        y = y + bias.view(1, c_out, 1, 1)
    return y


class Conv2d(nn.Module):
    """The module form of :func:`conv2d`, a drop-in for ``torch.nn.Conv2d``.

    Same parameter names and shapes (``weight`` (C_out, C_in / groups, kH, kW), ``bias``
    (C_out,)) and the same default initialisation, so ``load_state_dict`` works both ways.

    Paper: section 3.5.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride, self.padding = _pair(stride, "stride"), _pair(padding, "padding")
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size)
        )
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # PyTorch's default for nn.Conv2d: uniform in +-1/sqrt(fan_in) (kaiming_uniform, a=sqrt(5)).
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].numel()
            nn.init.uniform_(self.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def forward(self, x: Tensor) -> Tensor:
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.groups)

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, groups={self.groups}, "
            f"bias={self.bias is not None}"
        )


def oriented_kernels(
    orientations: int = 16,
    size: int = 11,
    wavelength: float = 6.0,
    sigma: float = 2.5,
    channels: int = 3,
) -> Tensor:
    """Hand-made edge/stripe detectors (Gabor kernels) at evenly spaced orientations.

    Kernel i is cos(2 pi x' / wavelength) under a Gaussian of width ``sigma``, with x' the
    coordinate across stripes at angle ``pi * i / orientations`` (kernel 0 responds to vertical
    stripes, kernel ``orientations // 2`` to horizontal ones), so neighbouring kernels have
    neighbouring orientations. Each is zero-mean (a flat patch gives 0) and has unit L2 norm,
    the same weights on every input channel (colour-blind).

    Shape: (orientations, channels, size, size), e.g. (16, 3, 11, 11) like a slice of conv1.
    These stand in for learned conv1 kernels when a chapter needs conv1-like activations of a
    real photo without a trained network. Paper: section 3.5 (conv1), Figure 3.
    """
    if not isinstance(orientations, int) or orientations < 1:
        raise ValueError(f"orientations must be an int >= 1, got {orientations!r}")
    if not isinstance(size, int) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be an odd int >= 1 (so the kernel has a centre), got {size!r}")
    if wavelength <= 0 or sigma <= 0:
        raise ValueError(f"wavelength and sigma must be > 0, got {wavelength}, {sigma}")
    r = torch.arange(size, dtype=torch.float64) - size // 2
    y, x = torch.meshgrid(r, r, indexing="ij")  # (size, size) each: row and column offsets
    theta = torch.arange(orientations, dtype=torch.float64) * math.pi / orientations  # (O,)
    # x' = x cos(theta) + y sin(theta): distance across the stripes
    across = x * torch.cos(theta).view(-1, 1, 1) + y * torch.sin(theta).view(
        -1, 1, 1
    )  # (O, size, size)
    # g = exp(-(x^2 + y^2) / (2 sigma^2)) * cos(2 pi x' / wavelength)
    g = torch.exp(-(x**2 + y**2) / (2 * sigma**2)) * torch.cos(2 * math.pi * across / wavelength)
    g = g - g.mean(dim=(1, 2), keepdim=True)  # zero-mean: no response to flat brightness
    g = g.unsqueeze(1).expand(-1, channels, -1, -1)  # (O, C, size, size)
    g = g / g.flatten(1).norm(dim=1).view(-1, 1, 1, 1)  # unit L2 norm per kernel
    return g.float().contiguous()


# --------------------------------------------------------------------------------------------
# ReLU


def relu(x: Tensor) -> Tensor:
    """f(x) = max(0, x), elementwise; any shape. Paper: section 3.1."""
    # f(x) = max(0, x); the gradient is 1 where x > 0 and 0 elsewhere (0 at x = 0, as in PyTorch)
    return torch.where(x > 0, x, torch.zeros_like(x))


class ReLU(nn.Module):
    """The module form of :func:`relu`. Paper: section 3.1."""

    def forward(self, x: Tensor) -> Tensor:
        return relu(x)


# --------------------------------------------------------------------------------------------
# local response normalisation

#: "paper": alpha multiplies the sum, as the formula is printed in section 3.3.
#: "code": alpha / n multiplies the sum, as in cuda-convnet and ``torch.nn.LocalResponseNorm``
#: (the 2012 code's ``layer.py`` divides a ``cmrnorm`` layer's configured ``scale`` by its
#: ``size``: scale=0.0001 in ``layer-params-145.cfg`` with size=5 in ``layers-145.cfg`` weighs
#: each square by 2e-5).
LRN_CONVENTIONS = ("paper", "code")


def lrn_window(
    channels: int, size: int, *, towers: int = 1, device=None, dtype=torch.float32
) -> Tensor:
    """The (C, C) 0/1 matrix whose row i marks the maps summed to normalise map i.

    Row i covers maps ``i - size // 2`` to ``i + (size - 1) // 2``, cut off at 0 and C - 1 (maps
    past the edge count as zero). For odd ``size`` that is ``size // 2`` maps on each side, the
    paper's ``max(0, i - n/2) .. min(N - 1, i + n/2)``; for even ``size`` the window leans one map
    towards lower indices, which is PyTorch's convention (the printed formula would sum n + 1 maps).
    With ``towers`` > 1 the C maps are split into that many equal towers (the paper's two GPUs)
    and a window stops at its tower's edge: the matrix is block-diagonal. This one matrix is the
    window of every LRN form in the library (:func:`local_response_norm`, ``fast.lrn_banded``).

    Paper: section 3.3.
    """
    if not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be an int >= 1, got {channels!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"size (n, the number of adjacent maps) must be an int >= 1, got {size!r}")
    if not isinstance(towers, int) or towers < 1 or channels % towers:
        raise ValueError(f"towers must be an int >= 1 that divides {channels} maps, got {towers!r}")
    i = torch.arange(channels, device=device).unsqueeze(1)  # (C, 1): the map being normalised
    j = torch.arange(channels, device=device).unsqueeze(0)  # (1, C): a map in its window
    inside = (j >= i - size // 2) & (j <= i + (size - 1) // 2)  # (C, C)
    per_tower = channels // towers
    inside &= (i // per_tower) == (j // per_tower)  # the same tower
    return inside.to(dtype)


def local_response_norm(
    x: Tensor,
    size: int = recipe.LRN_SIZE,
    alpha: float = recipe.LRN_ALPHA,
    beta: float = recipe.LRN_BETA,
    k: float = recipe.LRN_K,
    convention: str = "code",
) -> Tensor:
    """Local response normalisation across channels, from the paper's formula.

    b[i] = a[i] / (k + alpha' * sum_{j in window(i)} a[j]^2) ** beta, with the window of
    :func:`lrn_window` and ``alpha' = alpha`` (``convention="paper"``, the formula as printed)
    or ``alpha' = alpha / size`` (``convention="code"``, the original cuda-convnet code and
    ``torch.nn.LocalResponseNorm``). So with the paper's constants (k=2, n=5, alpha=1e-4,
    beta=0.75) "code" equals ``nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2)`` and
    "paper" equals ``nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2)``.

    Shapes: ``x`` (B, C, ...) with the maps on dimension 1, e.g. (B, 96, 55, 55); same shape out.

    Paper: section 3.3.
    """
    if not isinstance(x, Tensor) or x.dim() < 3:
        raise ValueError(
            "local_response_norm expects a tensor (B, C, H, W) (or (B, C, L)) with the maps on "
            f"dimension 1, got {tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__}"
        )
    if not x.is_floating_point():
        raise TypeError(f"local_response_norm expects floating-point input, got {x.dtype}")
    if convention not in LRN_CONVENTIONS:
        raise ValueError(
            f"convention must be 'paper' (alpha as printed in section 3.3) or 'code' (alpha / n, "
            f"as cuda-convnet and torch.nn.LocalResponseNorm), got {convention!r}"
        )
    if k < 0 or alpha < 0:
        raise ValueError(f"k and alpha must be >= 0, got k={k}, alpha={alpha}")
    window = lrn_window(x.shape[1], size, device=x.device, dtype=x.dtype)  # (C, C)
    # sum_{j in window(i)} a_j^2 for every map i, as one banded matmul over the channel axis
    sums = torch.einsum("ij,bj...->bi...", window, x * x)  # (B, C, ...)
    scale = alpha if convention == "paper" else alpha / size
    # b_i = a_i / (k + alpha' * sum_j a_j^2)^beta
    return x / (k + scale * sums) ** beta


class LocalResponseNorm(nn.Module):
    """The module form of :func:`local_response_norm`, with the paper's constants as defaults.

    ``LocalResponseNorm(convention="code")`` equals ``nn.LocalResponseNorm(5, 1e-4, 0.75, 2)``;
    ``LocalResponseNorm(convention="paper")`` equals ``nn.LocalResponseNorm(5, 5e-4, 0.75, 2)``.

    Paper: section 3.3.
    """

    def __init__(
        self,
        size: int = recipe.LRN_SIZE,
        alpha: float = recipe.LRN_ALPHA,
        beta: float = recipe.LRN_BETA,
        k: float = recipe.LRN_K,
        convention: str = "code",
    ) -> None:
        super().__init__()
        if convention not in LRN_CONVENTIONS:
            raise ValueError(f"convention must be one of {LRN_CONVENTIONS}, got {convention!r}")
        lrn_window(1, size)  # validates size
        self.size, self.alpha, self.beta, self.k, self.convention = size, alpha, beta, k, convention

    def forward(self, x: Tensor) -> Tensor:
        return local_response_norm(x, self.size, self.alpha, self.beta, self.k, self.convention)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, "
            f"convention={self.convention!r}"
        )


# --------------------------------------------------------------------------------------------
# max pooling


def max_pool2d(
    x: Tensor,
    kernel_size: int | tuple[int, int] = 3,
    stride: int | tuple[int, int] | None = 2,
    padding: int | tuple[int, int] = 0,
) -> Tensor:
    """Max pooling from its definition: the largest value in each z x z window, windows s apart.

    The paper's overlapping pooling is z=3, s=2 (the defaults): neighbouring windows share a row
    or column. z=2, s=2 is the traditional non-overlapping kind. ``stride=None`` means
    ``stride = kernel_size``, as in PyTorch.

    Shapes: (B, C, H, W) -> (B, C, H_out, W_out), ``H_out = (H - z + 2 * pad) // s + 1``,
    e.g. (B, 96, 55, 55) -> (B, 96, 27, 27). Equal to ``torch.nn.functional.max_pool2d``,
    gradients included: where a window holds several equal maxima, the gradient goes to the
    first in row-major order, as in PyTorch.

    Paper: section 3.4.
    """
    _check_image_batch(x, "max_pool2d")
    kh, kw = _pair(kernel_size, "kernel_size")
    sh, sw = (kh, kw) if stride is None else _pair(stride, "stride")
    ph, pw = _pair(padding, "padding")
    if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
        raise ValueError(
            f"kernel_size and stride must be >= 1 and padding >= 0, got {kernel_size}, {stride}, "
            f"{padding}"
        )
    if ph > kh // 2 or pw > kw // 2:
        raise ValueError(
            f"padding {padding} is more than half the window {kernel_size}: some windows would "
            "hold only padding. Use padding <= kernel_size // 2."
        )
    if x.shape[2] + 2 * ph < kh or x.shape[3] + 2 * pw < kw:
        raise ValueError(
            f"the {kh}x{kw} window does not fit in a {x.shape[2]}x{x.shape[3]} input (padding "
            f"{padding})"
        )
    # Padding never wins a max: pad with -inf.
    x = F.pad(x, (pw, pw, ph, ph), value=float("-inf"))
    # Every window as a view: (B, C, H_out, W_out, kH, kW); overlapping windows share memory.
    windows = x.unfold(2, kh, sh).unfold(3, kw, sw)
    windows = windows.reshape(*windows.shape[:4], kh * kw)  # (B, C, H_out, W_out, kH*kW)
    # .max(dim) returns the first maximum and sends the gradient to it alone (like PyTorch);
    # .amax would share it between ties.
    return windows.max(dim=-1).values  # (B, C, H_out, W_out)


class MaxPool2d(nn.Module):
    """The module form of :func:`max_pool2d`; defaults are the paper's z=3, s=2. Paper: section
    3.4."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] | None = 2,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


# --------------------------------------------------------------------------------------------
# dropout

#: "paper": train x * mask, test x * (1 - p).  "inverted": train x * mask / (1 - p), test x.
DROPOUT_MODES = ("paper", "inverted")


def dropout(
    x: Tensor,
    p: float = 0.5,
    training: bool = True,
    mode: str = "paper",
    generator: torch.Generator | None = None,
) -> Tensor:
    """Dropout in the paper's form or the inverted form; both have the same expected output.

    - ``mode="paper"``: in training each unit is zeroed with probability ``p``; at test time
      every output is multiplied by ``1 - p`` (0.5 in the paper).
    - ``mode="inverted"``: in training the kept units are also scaled by ``1 / (1 - p)``; at test
      time the layer is the identity. This is what ``torch.nn.Dropout`` does.

    Either way the test-time output equals the training-time output's expectation. Any shape;
    ``generator`` makes the mask reproducible.

    Paper: section 4.2 (p = 0.5 in fc6 and fc7).
    """
    if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:
        raise ValueError(f"p (the probability of dropping a unit) must be in [0, 1], got {p!r}")
    if mode not in DROPOUT_MODES:
        raise ValueError(
            f"mode must be 'paper' (scale by 1 - p at test time) or 'inverted' (scale by "
            f"1 / (1 - p) in training, as torch.nn.Dropout), got {mode!r}"
        )
    if not x.is_floating_point():
        raise TypeError(f"dropout expects floating-point input, got {x.dtype}")
    if not training:
        # test time: E[x * mask] = (1 - p) * x for the paper's form; the inverted form already is x
        return x * (1 - p) if mode == "paper" else x
    if generator is not None and generator.device != x.device:
        raise ValueError(
            f"the generator is on {generator.device} but x is on {x.device}; make it with "
            f"torch.Generator(device=x.device)"
        )
    # mask_i ~ Bernoulli(1 - p): keep a unit with probability 1 - p
    keep = torch.rand(x.shape, generator=generator, device=x.device) >= p
    kept = x * keep.to(x.dtype)
    if mode == "paper":
        return kept
    # inverted: x * mask / (1 - p) keeps E[output] = x (p = 1 drops everything)
    return kept / (1 - p) if p < 1 else kept


class Dropout(nn.Module):
    """The module form of :func:`dropout`; ``.train()`` / ``.eval()`` pick the behaviour.

    ``Dropout(0.5, mode="inverted")`` behaves like ``torch.nn.Dropout(0.5)``;
    ``Dropout(0.5, mode="paper")`` is the paper's description. Paper: section 4.2.
    """

    def __init__(
        self, p: float = 0.5, mode: str = "paper", generator: torch.Generator | None = None
    ):
        super().__init__()
        dropout(torch.zeros(1), p, False, mode)  # validates p and mode
        self.p, self.mode, self.generator = p, mode, generator

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training, self.mode, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}"
