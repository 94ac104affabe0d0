"""The Triton kernels of ``alexlib.fast.lrn_triton``: local response normalisation, forward and
backward.

Imported by ``alexlib.fast`` on first use (not at package import), so that Triton is needed only by
those who use the kernels and so that ``TRITON_INTERPRET=1``, set by the tests before that first
use, makes Triton's interpreter run them on the CPU.

The two kernels are registered as PyTorch ops ``torch.ops.alexlib.lrn_forward`` / ``lrn_backward``
with ``torch.library.triton_op``, so ``torch.compile`` traces through them (no graph break) and
autograd knows the backward. Each program handles BLOCK_P pixels x BLOCK_C channels of the maps
viewed as (B, C, H*W) with any strides (contiguous or channels-last alike). The kernels use only
Triton builtins (``tl.full``, not ``tl.zeros``, itself a jitted helper defined at Triton's import).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.library import triton_op, wrap_triton

from .fast import _collapsible, _interpreting

# Tile shapes to try on the GPU (the first call per shape times them all and keeps the fastest);
# one tile in Triton's interpreter, where timing means nothing.
_SHAPES = (
    [(64, 32, 4)]
    if _interpreting()
    else [(64, 32, 4), (128, 32, 4), (32, 64, 4), (64, 64, 4), (128, 64, 8), (256, 32, 8)]
)
_CONFIGS = [triton.Config({"BLOCK_P": p, "BLOCK_C": c}, num_warps=w) for p, c, w in _SHAPES]


@triton.jit
def _tile(P, HW, C, CT, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    # this program's BLOCK_P pixels x BLOCK_C channels of the (B, C, H*W) view: batch index and
    # pixel within the image (BLOCK_P,), channel (1, BLOCK_C), first channel of its tower, and
    # which of the (BLOCK_P, BLOCK_C) elements exist
    p = tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cc = c[None, :]
    inside = (p < P)[:, None] & (cc < C)
    return p // HW, p % HW, cc, ((c // CT) * CT)[None, :], inside


@triton.jit
def _window_squares(
    x_ptr,
    xrow,
    sxc,
    centre,
    lo,
    CT,
    ok,
    SIZE: tl.constexpr,
    LO: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    # sum of x^2 over channels centre - LO .. centre - LO + SIZE - 1 that lie in the tower [lo, lo +
    # CT)
    acc = tl.full((BLOCK_P, BLOCK_C), 0.0, tl.float32)
    for i in tl.static_range(SIZE):
        n = centre + (i - LO)
        v = tl.load(x_ptr + xrow + n * sxc, mask=ok & (n >= lo) & (n < lo + CT), other=0.0).to(
            tl.float32
        )
        acc += v * v
    return acc


@triton.autotune(configs=_CONFIGS, key=["P", "C", "CT"])
@triton.jit
def _fwd(
    x_ptr,
    y_ptr,
    P,
    HW,
    C,
    CT,
    sxb,
    sxc,
    sxq,
    syb,
    syc,
    syq,
    alpha_n,
    beta,
    k,
    SIZE: tl.constexpr,
    LO: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    # y = x s^-beta with s = k + alpha_n * (window sum of x^2)
    bi, q, cc, lo, inside = _tile(P, HW, C, CT, BLOCK_P, BLOCK_C)
    xrow = (bi * sxb + q * sxq)[:, None]
    s = k + alpha_n * _window_squares(
        x_ptr, xrow, sxc, cc, lo, CT, inside, SIZE, LO, BLOCK_P, BLOCK_C
    )
    xv = tl.load(x_ptr + xrow + cc * sxc, mask=inside, other=0.0).to(tl.float32)
    y = xv * tl.exp2(-beta * tl.log2(s))
    tl.store(
        y_ptr + (bi * syb + q * syq)[:, None] + cc * syc, y.to(y_ptr.dtype.element_ty), mask=inside
    )


@triton.autotune(configs=_CONFIGS, key=["P", "C", "CT"])
@triton.jit
def _bwd(
    x_ptr,
    g_ptr,
    dx_ptr,
    P,
    HW,
    C,
    CT,
    sxb,
    sxc,
    sxq,
    sgb,
    sgc,
    sgq,
    sdb,
    sdc,
    sdq,
    alpha_n,
    beta,
    k,
    SIZE: tl.constexpr,
    LO: tl.constexpr,
    BLOCK_P: tl.constexpr,
    BLOCK_C: tl.constexpr,
):
    # dx_j = g_j s_j^-beta - 2 beta alpha_n x_j sum_{c: j in window(c)} g_c x_c s_c^(-beta-1);
    # the sums s_c are recomputed from x rather than stored by the forward
    bi, q, cc, lo, inside = _tile(P, HW, C, CT, BLOCK_P, BLOCK_C)
    xrow = (bi * sxb + q * sxq)[:, None]
    grow = (bi * sgb + q * sgq)[:, None]
    HI: tl.constexpr = SIZE - 1 - LO
    acc = tl.full((BLOCK_P, BLOCK_C), 0.0, tl.float32)  # sum of g_c x_c s_c^(-beta-1)
    for i in tl.static_range(SIZE):  # the channels c whose window holds j: c = j - HI .. j + LO
        cn = cc + (i - HI)
        ok = inside & (cn >= lo) & (cn < lo + CT)
        s_c = k + alpha_n * _window_squares(
            x_ptr, xrow, sxc, cn, lo, CT, ok, SIZE, LO, BLOCK_P, BLOCK_C
        )
        x_c = tl.load(x_ptr + xrow + cn * sxc, mask=ok, other=0.0).to(tl.float32)
        g_c = tl.load(g_ptr + grow + cn * sgc, mask=ok, other=0.0).to(tl.float32)
        acc += tl.where(ok, g_c * x_c * tl.exp2((-beta - 1.0) * tl.log2(s_c)), 0.0)
    s_j = k + alpha_n * _window_squares(
        x_ptr, xrow, sxc, cc, lo, CT, inside, SIZE, LO, BLOCK_P, BLOCK_C
    )
    xj = tl.load(x_ptr + xrow + cc * sxc, mask=inside, other=0.0).to(tl.float32)
    gj = tl.load(g_ptr + grow + cc * sgc, mask=inside, other=0.0).to(tl.float32)
    dx = gj * tl.exp2(-beta * tl.log2(s_j)) - 2.0 * beta * alpha_n * xj * acc
    tl.store(
        dx_ptr + (bi * sdb + q * sdq)[:, None] + cc * sdc,
        dx.to(dx_ptr.dtype.element_ty),
        mask=inside,
    )


def _strides(t: Tensor) -> tuple[int, int, int]:
    # (B, C, H, W) -> strides of the (B, C, H*W) view (see alexlib.fast._collapsible)
    return t.stride(0), t.stride(1), t.stride(3)


def _grid(P: int, C: int):
    return lambda meta: (triton.cdiv(P, meta["BLOCK_P"]), triton.cdiv(C, meta["BLOCK_C"]))


@triton_op("alexlib::lrn_forward", mutates_args={})
def lrn_forward(x: Tensor, size: int, alpha: float, beta: float, k: float, towers: int) -> Tensor:
    b, c, h, w = x.shape
    y = torch.empty_like(x)
    P = b * h * w
    wrap_triton(_fwd)[_grid(P, c)](
        x,
        y,
        P,
        h * w,
        c,
        c // towers,
        *_strides(x),
        *_strides(y),
        alpha / size,
        beta,
        k,
        SIZE=size,
        LO=size // 2,
    )
    return y


@triton_op("alexlib::lrn_backward", mutates_args={})
def lrn_backward(
    grad: Tensor, x: Tensor, size: int, alpha: float, beta: float, k: float, towers: int
) -> Tensor:
    b, c, h, w = x.shape
    dx = torch.empty_like(x)
    P = b * h * w
    wrap_triton(_bwd)[_grid(P, c)](
        x,
        grad,
        dx,
        P,
        h * w,
        c,
        c // towers,
        *_strides(x),
        *_strides(grad),
        *_strides(dx),
        alpha / size,
        beta,
        k,
        SIZE=size,
        LO=size // 2,
    )
    return dx


def _setup_context(ctx, inputs, output):
    x, size, alpha, beta, k, towers = inputs
    ctx.save_for_backward(x)
    ctx.hyper = (size, alpha, beta, k, towers)


def _backward(ctx, grad):
    (x,) = ctx.saved_tensors
    if not _collapsible(grad):  # autograd may hand back any layout, e.g. a transposed gradient
        grad = grad.contiguous()
    return (lrn_backward(grad, x, *ctx.hyper),) + (None,) * 5


lrn_forward.register_autograd(_backward, setup_context=_setup_context)
