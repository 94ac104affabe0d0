"""The CUDA side of the library, on a GPU: every fast layer form against the reference layers
(float32 and bf16 autocast, outputs and gradients), the compiled Triton LRN kernel, the compiled
paper net with no graph break, the GPU loader's pixels against the CPU path's, nvJPEG against the
CPU decoder, a resumed ``train_run`` against an uninterrupted one, and data parallelism with NCCL.

Every test is marked ``cuda``. Without a CUDA GPU they are skipped, unless
``ALEXLIB_TEST_DEVICE=cpu``: then each runs on the CPU at tiny sizes (a dry run, so that the first
GPU sitting runs test code that has already run); the few things a CPU cannot do are named where
they are skipped. ``ALEXLIB_TEST_DEVICE=cuda`` makes a missing GPU a failure instead of a skip.

Integer and same-operation results must be equal; where rounding differs, tolerances compare
whole tensors, ``|got - want| / |want|`` (Euclidean norms, :func:`rel_err`): rounding bounds that
ratio, where element-wise tolerances trip on elements near zero. float32 comparisons run with TF32
off (:func:`no_tf32`; cuDNN's convolutions use TF32 by default). Work that must not share this
process (the Triton kernel, training runs, torchrun) runs in subprocesses; the training runs use
the real CIFAR-10 when the data root has it, else a CIFAR-like set of JPEGs made for the test.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from alexlib import data, engine, fast, recipe
from alexlib.augment import (
    EvalTransform,
    GPULoader,
    TrainTransform,
    dataset_stats,
    sample_params,
)
from alexlib.model import build
from alexlib.parallel import compare_runs, ddp_demo_settings, train_command
from alexlib.train import load_checkpoint, read_metrics

REPO = Path(__file__).resolve().parents[1]
_MODE = os.environ.get("ALEXLIB_TEST_DEVICE", "")
if _MODE not in ("", "cpu", "cuda"):
    raise ValueError(f"ALEXLIB_TEST_DEVICE must be 'cpu' (a dry run) or 'cuda'; got {_MODE!r}")
DRY_RUN = _MODE == "cpu"

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        _MODE == "" and not torch.cuda.is_available(),
        reason=f"no CUDA GPU (torch {torch.__version__} sees none); ALEXLIB_TEST_DEVICE=cpu "
        "dry-runs these tests on the CPU",
    ),
]

# a large alpha so that LRN changes the maps (the paper's 1e-4 barely does at unit scale)
HYPER = dict(alpha=0.5, beta=0.75, k=2.0)

# the fast forms checked against the reference layers: together they use every LRN form but the
# Triton kernel (tested in its own process, test_triton_lrn_compiled), every tower convolution and
# both conv1 forms; the first is what training on a GPU uses
FORMS = [
    dict(fast.DEFAULTS),
    dict(lrn="reference", conv="dense", conv1="s2d"),
    dict(lrn="shift", conv="split", conv1="s2d"),
    dict(lrn="banded", conv="split", conv1="native"),
]


def _form_id(forms: dict) -> str:
    return "-".join(forms[k] for k in ("lrn", "conv", "conv1"))


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The GPU, or the CPU in a dry run."""
    if DRY_RUN:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        pytest.fail("ALEXLIB_TEST_DEVICE=cuda, but torch sees no CUDA GPU")
    return torch.device("cuda")


def sized(device: torch.device, gpu, cpu):
    """``gpu`` on CUDA (realistic sizes), ``cpu`` in a dry run (tiny ones, one slow core)."""
    return gpu if device.type == "cuda" else cpu


@pytest.fixture
def no_tf32():
    """float32 convolutions and matmuls in full float32 precision for the test."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def bf16(device: torch.device):
    """bf16 autocast as training uses it (:func:`alexlib.engine.autocast`); on the CPU of a dry
    run, the CPU's bf16 autocast, so the same bf16 code paths run."""
    if device.type == "cuda":
        return engine.autocast(device, True)
    return torch.autocast("cpu", dtype=torch.bfloat16)


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    """``|got - want| / |want|`` over the whole tensor, in float64."""
    got, want = got.detach().double().cpu(), want.detach().double().cpu()
    return ((got - want).norm() / want.norm().clamp_min(1e-300)).item()


def paper_net(device: torch.device, **kw) -> tuple[nn.Module, int]:
    """The ``paper`` net (10 classes) on ``device`` and the side of its input: the paper's 224 on
    CUDA; 128 in a dry run (the same layers, conv1 to pool5, a third of the arithmetic, fc6 sized
    to the 3x3 map that leaves)."""
    side = sized(device, 224, 128)
    kw = kw if side == 224 else {**kw, "input_size": side}
    return build("paper", num_classes=10, **kw).to(device), side


def images_like_pixels(n: int, size: int, device, dtype=torch.float32) -> torch.Tensor:
    """Mean-subtracted pixel units (about [-128, 128]), what the paper's init expects."""
    g = torch.Generator().manual_seed(0)
    return (torch.randn(n, 3, size, size, generator=g) * 60).to(device, dtype)


def reference_lrn(x: torch.Tensor, size: int, towers: int) -> torch.Tensor:
    """Per-tower LRN written independently of alexlib: each tower through PyTorch's own LRN."""
    return torch.cat(
        [F.local_response_norm(p, size, **HYPER) for p in x.chunk(towers, dim=1)], dim=1
    )


def forward_backward(net, x, g, *, amp=False, channels_last=False, module=None) -> dict:
    """Logits, input gradient and every parameter gradient of ``net`` at ``x`` for the output
    gradient ``g``, by name (``"logits"``, ``"input"``, ``"features.1.weight"``, ...; the names
    of ``module``'s parameters when ``net`` is a compiled wrapper of it)."""
    x = x.detach().clone()
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    params = dict((module or net).named_parameters())
    with bf16(x.device) if amp else contextlib.nullcontext():
        y = net(x)
    grads = torch.autograd.grad(y.float(), [x, *params.values()], g)
    return {"logits": y.detach().float(), **dict(zip(["input", *params], grads))}


def _env(**extra) -> dict:
    # a subprocess without Triton's interpreter (test_fast.py sets it in its own tests), that
    # imports this checkout's alexlib whether or not it is installed (a script's folder, not the
    # working directory, starts sys.path)
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return {**env, **extra}


def _run(cmd: list[str], timeout: float, **env) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, env=_env(**env), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)[:300]}\n{done.stderr[-4000:]}"
    return done


# ----------------------------------------------------------------------------------------------
# The fast forms against the reference layers


@pytest.mark.parametrize("forms", FORMS, ids=_form_id)
def test_fast_net_is_the_reference_function_in_float64(device, forms):
    # float64: no near-tie in a max pool flips, so the whole net's gradients compare tightly
    # (in float32 one flipped pool choice moves an input-gradient element: 4e-3 of its norm)
    torch.manual_seed(0)
    ref, side = paper_net(device)
    ref = ref.double().eval()
    net = fast.speed_up(copy.deepcopy(ref), **forms).eval()
    x = images_like_pixels(sized(device, 4, 1), side, device, torch.float64)
    g = torch.randn(len(x), 10, dtype=torch.float64, device=device)
    want, got = forward_backward(ref, x, g), forward_backward(net, x, g)
    assert want.keys() == got.keys()
    for name in want:
        # float64 rounding (1e-16 per operation) summed over the layers stays far below 1e-9
        assert rel_err(got[name], want[name]) <= 1e-9, name


@pytest.mark.parametrize("forms", FORMS, ids=_form_id)
def test_fast_layers_match_the_reference_in_float32(device, forms, no_tf32):
    torch.manual_seed(1)
    ref, side = paper_net(device)
    ref = ref.eval()
    net = fast.speed_up(copy.deepcopy(ref), **forms).eval()
    x = images_like_pixels(sized(device, 8, 1), side, device)
    # layer by layer, each on the input the reference layer sees: outputs, input and parameter
    # gradients within 1e-4 (float32 rounding is ~1e-6; cuDNN's FFT and Winograd algorithms
    # round more, still well under 1e-4; a wrong form is off by far more than 1e-3)
    rows = fast.check_equal(ref, net, x, rtol=1e-4)
    assert {r["impl"] for r in rows.values()} >= {v for v in forms.values() if v != "native"}
    assert all(r["equal"] for r in rows.values()), rows
    with torch.no_grad():  # the whole net's logits: pool near-ties do not move forward values
        assert rel_err(net(x), ref(x)) <= 1e-4


@pytest.mark.parametrize("forms", FORMS, ids=_form_id)
def test_fast_net_under_bf16_is_as_accurate_as_the_reference(device, forms, no_tf32):
    # the training setting: bf16 autocast, channels-last net and input. Measured against the
    # float32 reference layers, bf16 (8 mantissa bits) puts the logits ~3e-3 off; the gradients
    # of the conv layers and the input are far noisier (~0.4 in a CPU dry run), because rounding
    # flips ReLU and max-pool choices, so for them the bar is the reference layers' own error
    # in bf16: the fast forms may not lose more accuracy than the layers they replace. The 3e-2
    # on top: with one image (a dry run) a single layer's gradient error swings 2-6x between two
    # equal functions (fc7's, 4e-3 vs 2.7e-2, was the worst seen); 16 images average that out
    torch.manual_seed(2)
    ref, side = paper_net(device)
    ref = ref.eval()
    net = fast.speed_up(copy.deepcopy(ref), **forms).to(memory_format=torch.channels_last).eval()
    ref_cl = copy.deepcopy(ref).to(memory_format=torch.channels_last)
    x = images_like_pixels(sized(device, 16, 1), side, device)
    g = torch.randn(len(x), 10, device=device)
    exact = forward_backward(ref, x, g)
    baseline = forward_backward(ref_cl, x, g, amp=True, channels_last=True)
    got = forward_backward(net, x, g, amp=True, channels_last=True)
    assert rel_err(got["logits"], exact["logits"]) <= 2e-2
    for name in exact:
        err, bar = rel_err(got[name], exact[name]), rel_err(baseline[name], exact[name])
        assert err <= 1.5 * bar + 3e-2, (name, err, bar)


@pytest.mark.parametrize("precision", ["float32", "bf16"])
@pytest.mark.parametrize("towers", [1, 2])
@pytest.mark.parametrize("impl", ["reference", "shift", "banded"])
def test_lrn_forms_match_reference(device, impl, towers, precision):
    # the maps LRN1 sees ((B, 96, 55, 55) in the paper); under autocast they arrive as bf16
    torch.manual_seed(3)
    b, side = sized(device, (8, 55), (2, 7))
    dtype = torch.float32 if precision == "float32" else torch.bfloat16
    for memory_format in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(b, 96, side, side, device=device).to(dtype)
        x = x.contiguous(memory_format=memory_format).requires_grad_(True)
        with bf16(device) if precision == "bf16" else contextlib.nullcontext():
            y = fast.lrn(x, 5, towers=towers, impl=impl, **HYPER)
        if impl != "reference":  # the fast forms sum in float32 and return the input's dtype
            assert y.dtype == dtype
        g = torch.randn(y.shape, device=device).to(y.dtype)
        (dx,) = torch.autograd.grad(y, x, g)
        x64 = x.detach().double().requires_grad_(True)  # the same (bf16-rounded) maps
        want = reference_lrn(x64, 5, towers)
        (want_dx,) = torch.autograd.grad(want, x64, g.double())
        # float32: ~1e-7 of rounding, so 1e-5 catches any wrong window or tower edge (a tower
        # edge in the wrong place is 1e-2 off). bf16 checks the bf16 path, not the function
        # again: the output's rounding to 8 bits gives 1.7e-3 (shift), the banded form's matmul
        # runs in bf16 under autocast (2.9e-3), the reference's gradient 3.7e-3 (a CPU dry run)
        tol = 1e-5 if precision == "float32" else 1e-2
        assert rel_err(y, want) <= tol, memory_format
        assert rel_err(dx, want_dx) <= tol, memory_format


CONVS = {
    # the paper's conv2: two towers of 48 -> 128 maps, 5x5 on 27x27
    "conv2": (dict(in_channels=96, out_channels=256, kernel_size=5, padding=2, groups=2), 96, 27),
    # conv1: 11x11 stride 4 over the image, 227 (exact) and 224 (cropped by space-to-depth)
    "conv1-227": (dict(in_channels=3, out_channels=96, kernel_size=11, stride=4), 3, 227),
    "conv1-224": (dict(in_channels=3, out_channels=96, kernel_size=11, stride=4), 3, 224),
}


@pytest.mark.parametrize("precision", ["float32", "bf16"])
@pytest.mark.parametrize(
    "layer,impl",
    [
        ("conv2", "dense"),
        ("conv2", "split"),
        ("conv1-227", "s2d"),
        ("conv1-224", "s2d"),
    ],
)
def test_conv_forms_match_reference(device, layer, impl, precision, no_tf32):
    torch.manual_seed(4)
    kw, channels, side = CONVS[layer]
    if device.type != "cuda" and channels == 96:
        side = 13
    ref = nn.Conv2d(**kw).to(device)
    conv = fast.FastConv2d.like(ref, impl)  # the same parameter tensors
    x = torch.randn(sized(device, 16, 1), channels, side, side, device=device) * 10
    g = torch.randn_like(ref(x))
    params = [ref.weight, ref.bias]

    def grads(layer, amp):
        xa = x.detach().clone()
        if amp:  # channels-last, as the net trains (weights included)
            layer.to(memory_format=torch.channels_last)
            xa = xa.contiguous(memory_format=torch.channels_last)
        xa.requires_grad_(True)
        with bf16(device) if amp else contextlib.nullcontext():
            y = layer(xa)
        return [y.float(), *torch.autograd.grad(y.float(), [xa, *params], g)]

    want = grads(ref, amp=False)  # float32, the truth
    amp = precision == "bf16"
    got = grads(conv, amp)
    baseline = grads(ref, amp)  # the grouped / strided conv itself, in the same precision
    names = ("output", "input grad", "weight grad", "bias grad")
    for what, a, b, w in zip(names, got, baseline, want):
        if precision == "float32":
            # summation order only (TF32 off): ~1e-6; 1e-4 leaves room for cuDNN's algorithms
            assert rel_err(a, w) <= 1e-4, what
        else:
            # bf16 inputs and weights (2^-9 each): ~3e-3 for the grouped conv itself; the
            # function itself is checked in float32 above, this checks the bf16 path
            assert rel_err(a, w) <= 2e-2, what
            assert rel_err(a, w) <= 1.5 * rel_err(b, w) + 2e-3, what


# ----------------------------------------------------------------------------------------------
# The Triton LRN kernel, compiled

TRITON_SCRIPT = r"""
import copy, json, sys
import torch
import torch.nn.functional as F
from torch import nn
from alexlib import fast
from alexlib.model import TowerLRN, build

torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
dev = torch.device("cuda")
H = dict(alpha=0.5, beta=0.75, k=2.0)
out = {"interpreting": fast._interpreting(), "lrn": {}}

def rel(a, b):
    a, b = a.detach().double(), b.detach().double()
    return ((a - b).norm() / b.norm()).item()

def ref(x, towers):
    return torch.cat([F.local_response_norm(p, 5, **H) for p in x.chunk(towers, 1)], 1)

LAYOUTS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
torch.manual_seed(0)
for shape in [(8, 96, 27, 27), (3, 40, 7, 5)]:  # the second fills no tile exactly
    for dtype in (torch.float32, torch.bfloat16):
        for layout, fmt in LAYOUTS.items():
            for towers in (1, 2):
                x = torch.randn(shape, device=dev).to(dtype)
                x = x.contiguous(memory_format=fmt).requires_grad_(True)
                y = fast.lrn_triton(x, 5, towers=towers, **H)
                g = torch.randn(shape, device=dev).to(dtype)
                (dx,) = torch.autograd.grad(y, x, g)
                x64 = x.detach().double().requires_grad_(True)
                want = ref(x64, towers)
                (want_dx,) = torch.autograd.grad(want, x64, g.double())
                out["lrn"][f"{shape} {dtype} {layout} towers={towers}"] = dict(
                    y=rel(y, want), dx=rel(dx, want_dx), dtype=str(y.dtype),
                    layout_kept=y.is_contiguous(memory_format=fmt),
                )
from alexlib import _lrn_triton
out["kernel"] = type(_lrn_triton._fwd.fn).__name__

# the whole paper net with the Triton LRN, layer by layer (float32)
torch.manual_seed(1)
net = build("paper", num_classes=10).to(dev).eval()
fast_net = fast.speed_up(copy.deepcopy(net), lrn="triton", conv="dense", conv1="s2d")
x = torch.randn(8, 3, 224, 224, device=dev) * 60
rows = fast.check_equal(net, fast_net, x)
out["net"] = {n: [r["impl"], r["equal"], r["output"], r["input grad"]] for n, r in rows.items()}

# torch.compile (inductor) of a small net with the Triton LRN, against the eager reference
torch.manual_seed(2)
small = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), fast.FastLRN(5, towers=2, impl="triton", **H))
small = small.to(dev)
eager = copy.deepcopy(small)
eager[2] = TowerLRN(5, towers=2, **H)
x = torch.randn(4, 3, 19, 19, device=dev)
g = torch.randn(4, 16, 17, 17, device=dev)
compiled = torch.compile(small, fullgraph=True)
results = {}
for tag, m in (("compiled", compiled), ("eager", eager)):
    xa = x.clone().requires_grad_(True)
    y = m(xa)
    results[tag] = [y, *torch.autograd.grad(y, [xa, *m.parameters()], g)]
out["compiled"] = [rel(a, b) for a, b in zip(results["compiled"], results["eager"])]
with torch.autocast("cuda", dtype=torch.bfloat16):  # and under bf16 autocast, channels-last
    y = compiled(x.contiguous(memory_format=torch.channels_last))
out["compiled_bf16"] = [str(y.dtype), rel(y.float(), results["eager"][0])]
print(json.dumps(out))
"""

TRANSPOSED_GRAD_SCRIPT = r"""
import torch
import torch.nn.functional as F
from alexlib import fast
H = dict(alpha=0.5, beta=0.75, k=2.0)
x = torch.randn(2, 16, 6, 10, device="cuda", requires_grad=True)
g = torch.randn(2, 16, 10, 6, device="cuda")
(dx,) = torch.autograd.grad(fast.lrn_triton(x, 5, towers=2, **H).transpose(2, 3), x, g)
x2 = x.detach().requires_grad_(True)
want = torch.cat([F.local_response_norm(p, 5, **H) for p in x2.chunk(2, 1)], 1)
(want_dx,) = torch.autograd.grad(want.transpose(2, 3), x2, g)
torch.cuda.synchronize()
print(((dx - want_dx).norm() / want_dx.norm()).item())
"""


def _needs_compiled_triton(device: torch.device) -> None:
    if device.type != "cuda":
        pytest.skip(
            "dry run: compiled Triton kernels need CUDA (tests/test_fast.py runs the same "
            "kernels in Triton's interpreter on the CPU)"
        )
    if not fast.triton_available():
        pytest.fail("this CUDA build of torch has no Triton")


def test_triton_lrn_compiled(device, tmp_path):
    # a fresh process without TRITON_INTERPRET: a kernel module imported under the interpreter
    # stays interpreted, and one compiled here would break test_fast.py's interpreted tests
    _needs_compiled_triton(device)
    script = tmp_path / "triton_lrn.py"
    script.write_text(TRITON_SCRIPT)
    done = _run([sys.executable, str(script)], timeout=420)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert not out["interpreting"] and out["kernel"] != "InterpretedFunction", out["kernel"]
    assert len(out["lrn"]) == 16
    for case, r in out["lrn"].items():
        # float32: the kernel's float32 sums and exp2/log2 power, ~1e-6 (tests/test_fast.py asks
        # 1e-5 of the interpreter); bf16: the rounding of input and output to 8 bits, ~3e-3
        tol = 1e-5 if "float32" in case else 1e-2
        assert r["y"] <= tol and r["dx"] <= tol, (case, r)
        assert r["layout_kept"] and r["dtype"] in case, (case, r)
    for name, (impl, equal, *errs) in out["net"].items():
        assert equal, (name, impl, errs)
    assert sorted(i for i, *_ in out["net"].values() if i == "triton") == ["triton", "triton"]
    # compiled vs eager in float32 (TF32 off): outputs, input and parameter gradients
    assert len(out["compiled"]) == 4 and max(out["compiled"]) <= 1e-4, out["compiled"]
    dtype, err = out["compiled_bf16"]
    assert dtype == "torch.bfloat16" and err <= 2e-2  # bf16 conv and maps: ~5e-3


def test_triton_lrn_backward_of_a_transposed_gradient(device, tmp_path):
    _needs_compiled_triton(device)
    script = tmp_path / "transposed.py"
    script.write_text(TRANSPOSED_GRAD_SCRIPT)
    # its own process: an out-of-bounds read may end the CUDA context
    done = _run([sys.executable, str(script)], timeout=300)
    assert float(done.stdout.strip().splitlines()[-1]) <= 1e-5


# ----------------------------------------------------------------------------------------------
# The compiled paper net


@pytest.mark.parametrize("forms", ["defaults", "reference"])
def test_compiled_paper_net_has_no_graph_break(device, forms, no_tf32):
    # fullgraph=True raises on any graph break. On CUDA the default inductor backend compiles
    # the forward and backward graphs; a dry run uses aot_eager (the same traced graphs, run by
    # eager kernels), as inductor's C++ build of the whole net takes minutes on one CPU core.
    # Training mode, as train_run compiles it; dropout 0 so that eager and compiled agree
    torch._dynamo.reset()
    torch.manual_seed(5)
    ref, side = paper_net(device, dropout=0.0)
    net = copy.deepcopy(ref).to(memory_format=torch.channels_last)
    if forms == "defaults":
        fast.speed_up(net, **fast.DEFAULTS)
    backend = "inductor" if device.type == "cuda" else "aot_eager"
    compiled = torch.compile(net, fullgraph=True, backend=backend)
    x = images_like_pixels(sized(device, 16, 1), side, device)
    g = torch.randn(len(x), 10, device=device)
    got = forward_backward(compiled, x, g, amp=True, channels_last=True, module=net)
    eager = forward_backward(net, x, g, amp=True, channels_last=True)
    exact = forward_backward(ref, x, g)  # float32, eager
    assert got.keys() == exact.keys()
    # as in test_fast_net_under_bf16_is_as_accurate_as_the_reference: bf16 logits within 2e-2
    # of float32, every gradient no further from float32 than eager bf16's (inductor keeps
    # fused intermediates in float32, so it is usually closer)
    assert rel_err(got["logits"], exact["logits"]) <= 2e-2
    for name in exact:
        err, bar = rel_err(got[name], exact[name]), rel_err(eager[name], exact[name])
        assert err <= 1.5 * bar + 3e-2, (name, err, bar)


# ----------------------------------------------------------------------------------------------
# The GPU loader's pixels


def _uint8_set(device: torch.device, inputs: str):
    n, size, crop = sized(device, (32, 256, 224), (6, 40, 32))
    g = torch.Generator().manual_seed(6)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
    labels = torch.arange(n) % 3
    return images, labels, dataset_stats(images, size=size, cache=False, inputs=inputs), crop


@pytest.mark.parametrize("inputs", ["mean-image", "standardise"])
def test_gpu_loader_test_views_are_the_cpu_paths_pixels(device, inputs):
    # a uint8 crop minus the float32 mean image (divided by the channel std): the same IEEE
    # operations on every device, so the views are equal bit for bit
    images, labels, stats, crop = _uint8_set(device, inputs)
    for views in ("center", "ten"):
        kw = dict(batch_size=4, crop=crop, train=False, views=views)
        on_device = list(GPULoader(images, labels, stats, device=device, **kw))
        on_cpu = list(GPULoader(images, labels, stats, device="cpu", **kw))
        assert on_device[0][0].device.type == device.type
        got = torch.cat([x.cpu() for x, _ in on_device])
        assert torch.equal(got, torch.cat([x for x, _ in on_cpu]))
        transform = EvalTransform(stats, crop, views)  # the DataLoader workers' per-image path
        assert torch.equal(got, torch.stack([transform(im) for im in images]))
        assert torch.equal(torch.cat([y.cpu() for _, y in on_device]), labels)


@pytest.mark.parametrize("colour", [False, True], ids=["crops-flips", "pca-colour"])
@pytest.mark.parametrize("inputs", ["mean-image", "standardise"])
def test_gpu_loader_training_batches_are_the_cpu_transforms_pixels(device, inputs, colour):
    # the loader's random choices (shuffle, crops, flips, PCA alphas) drawn again from a
    # generator seeded as its own, then applied image by image by the CPU path (TrainTransform)
    images, labels, stats, crop = _uint8_set(device, inputs)
    alpha_std = recipe.PCA_STD if colour else 0.0
    b, seed = 4, 7
    loader = GPULoader(
        images, labels, stats, batch_size=b, crop=crop, device=device, seed=seed,
        alpha_std=alpha_std, channels_last=True,
    )  # fmt: skip
    batches = list(loader)
    assert len(batches) == len(images) // b
    gen = torch.Generator(device=device).manual_seed(seed)
    order = torch.randperm(len(images), generator=gen, device=device).cpu()
    transform = TrainTransform(stats, crop)
    flips = 0
    for i, (x, y) in enumerate(batches):
        assert x.device.type == device.type and x.is_contiguous(memory_format=torch.channels_last)
        idx = order[i * b : (i + 1) * b]
        p = sample_params(b, images.shape[-1], crop, generator=gen, alpha_std=alpha_std)
        flips += int(p.flips.sum())
        choices = zip(idx.tolist(), p.offsets.cpu(), p.flips.cpu(), p.alphas.cpu())
        want = torch.stack([transform.apply(images[j], o, f, a) for j, o, f, a in choices])
        assert torch.equal(y.cpu(), labels[idx])
        if colour:
            # the colour shift is a (B, 3) x (3, 3) matmul, whose rounding may differ by an ulp
            # between devices: 1e-3 (of a grey level, or of a channel's std) is far below what
            # a wrong crop, flip, mean or alpha gives
            torch.testing.assert_close(x.cpu(), want, rtol=0, atol=1e-3)
        else:  # crop, reflect, subtract: exact
            assert torch.equal(x.cpu(), want)
    assert 0 < flips < len(batches) * b  # both kinds of patch were compared


# ----------------------------------------------------------------------------------------------
# JPEG decoding on the GPU


def _jpeg_files() -> list[bytes]:
    """Colour (4:2:0, Pillow's default, and 4:4:4) and greyscale JPEGs of odd sizes: smooth
    colour (chroma changing by at most ~3 levels a pixel) under a grey texture."""
    files = []
    for (h, w), mode, subsampling, quality in [
        ((37, 53), "RGB", 2, 90),
        ((64, 48), "RGB", 0, 95),
        ((29, 131), "L", None, 90),
        ((17, 16), "RGB", 2, 75),
        ((120, 97), "RGB", 2, 90),
    ]:
        rng = np.random.default_rng(h * w)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        texture = rng.normal(0, 8, (h, w))
        rgb = np.stack(
            [
                128 + 40 * np.sin(2 * np.pi * xx / 96) + texture,
                128 + 40 * np.cos(2 * np.pi * yy / 96) + texture,
                128 + 40 * np.sin(2 * np.pi * (xx + yy) / 128) + texture,
            ],
            axis=-1,
        )
        pixels = np.clip(rgb, 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels if mode == "RGB" else pixels[..., 0])  # RGB or L
        kw = {} if subsampling is None else {"subsampling": subsampling}
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality, **kw)
        files.append(buffer.getvalue())
    return files


def test_gpu_jpeg_decoding_matches_the_cpu_decoder(device):
    # nvJPEG and libjpeg-turbo differ in IDCT rounding (+-1), colour conversion (+-1) and chroma
    # upsampling (libjpeg's is interpolating; about the chroma's change per pixel, <= ~4 levels
    # for these images): a few levels at most, under one level on average (torchvision's own
    # nvJPEG test asks a mean difference under 2). A dry run compares the CPU decoder with itself.
    encoded = _jpeg_files()
    files = [torch.frombuffer(bytearray(f), dtype=torch.uint8) for f in encoded]
    got = data.decode_jpegs(files, device)
    want = data.decode_jpegs(encoded, "cpu")  # bytes in, the same pixels
    assert len(got) == len(want) == len(encoded)
    for i, (a, b, f) in enumerate(zip(got, want, encoded)):
        with Image.open(io.BytesIO(f)) as im:
            shape = (3, im.height, im.width)
        assert tuple(a.shape) == tuple(b.shape) == shape, i
        assert a.dtype == b.dtype == torch.uint8 and a.device.type == device.type, i
        diff = (a.cpu().int() - b.int()).abs()
        assert diff.max() <= 8 and diff.float().mean() < 1.0, (i, diff.max(), diff.float().mean())


def test_gpu_jpeg_decoding_runs_on_the_gpu(device, monkeypatch):
    # decode_jpegs falls back to Pillow, file by file, when no GPU decoder takes the batch: still
    # the right pixels (the test above), but not a GPU decode
    if device.type != "cuda":
        pytest.skip("dry run: on the CPU, Pillow is one of the intended decoders")

    def pillow(*args, **kwargs):
        raise AssertionError(
            "decode_jpegs decoded a CUDA batch with Pillow: neither torchcodec nor torchvision's "
            "nvJPEG took it"
        )

    monkeypatch.setattr(data, "_decode_pillow", pillow)
    got = data.decode_jpegs(_jpeg_files(), device)
    assert all(im.is_cuda for im in got)


# ----------------------------------------------------------------------------------------------
# Training runs: resume, and NCCL


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> dict:
    """``dataset`` and ``data_root`` settings of a CIFAR-10-like set: the real CIFAR-10 when the
    data root has it, else (the GPU machine may not) ten classes of 32x32 JPEGs made here, in the
    ImageFolder layout a path dataset takes, with the same per-class counts the tests draw."""
    for root in (None, REPO.parent / "shared" / "data"):  # as conftest's shared_data looks
        if data.find("cifar10", root) is not None:
            return {"dataset": "cifar10", "data_root": str(data.data_root(root)[0])}
    root = tmp_path_factory.mktemp("cifar-like")
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("val", 10)):
        for c in range(10):
            folder = root / split / f"class{c}"
            folder.mkdir(parents=True)
            tint = rng.integers(40, 216, 3)
            for i in range(n):
                pixels = np.clip(tint + rng.normal(0, 40, (32, 32, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
    return {"dataset": str(root), "data_root": None}


TRAIN_SCRIPT = r"""
import json, sys
import torch
job = json.loads(sys.argv[1])
if job["deterministic"]:
    torch.use_deterministic_algorithms(True, warn_only=True)
from alexlib.train import RunSettings, train_run
for settings, out, resume in job["runs"]:
    train_run(RunSettings(**settings), out, resume=resume, progress=False)
"""


def _train(tmp_path: Path, runs: list, deterministic: bool) -> None:
    """``train_run`` of each ``(settings, out, resume)`` in ``runs``, in one fresh process."""
    script = tmp_path / "train_job.py"
    script.write_text(TRAIN_SCRIPT)
    job = json.dumps({"runs": [[s, str(o), r] for s, o, r in runs], "deterministic": deterministic})
    # CUBLAS_WORKSPACE_CONFIG: what cuBLAS needs for deterministic matmuls
    _run([sys.executable, str(script), job], 600, CUBLAS_WORKSPACE_CONFIG=":4096:8")


def _whole_and_resumed(tmp_path, settings, deterministic):
    """A two-epoch run, and the same run stopped after epoch 1 (as a killed run leaves its last
    checkpoint) and resumed to epoch 2 in a fresh process: both metric lists, and how far the
    final weights are apart (:func:`alexlib.parallel.compare_runs`)."""
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    _train(
        tmp_path,
        [({**settings, "epochs": 2}, whole, False), ({**settings, "epochs": 1}, cut, False)],
        deterministic,
    )
    assert len(read_metrics(cut)) == 1
    _train(tmp_path, [({**settings, "epochs": 2}, cut, True)], deterministic)
    drop = ("seconds", "images_per_s")
    runs = [
        [{k: v for k, v in m.items() if k not in drop} for m in read_metrics(folder)]
        for folder in (whole, cut)
    ]
    return runs, compare_runs(whole, cut)


def test_resumed_cuda_run_equals_an_uninterrupted_one_exactly(device, cifar, tmp_path):
    # deterministic kernels (torch.use_deterministic_algorithms in the run's process) and the
    # cifar4 net, which has none of the ops that lack a deterministic CUDA kernel (the reference
    # LRN's avg_pool3d backward is one): bf16 autocast, channels-last, the fused SGD and the GPU
    # loader as training uses them, and then every number must be equal
    settings = dict(
        **cifar, variant="cifar4", image_size=32, crop=32, batch_size=32, lr=0.002,
        train_per_class=20, val_per_class=5, schedule="constant", inputs="mean-image",
        pca_colour=True, device=device.type,
    )  # fmt: skip
    (whole, cut), diff = _whole_and_resumed(tmp_path, settings, deterministic=True)
    assert [m["epoch"] for m in whole] == [1, 2]
    assert whole == cut
    assert diff["max_weight_diff"] == 0.0


def test_resumed_cuda_run_of_the_mini_net_matches_an_uninterrupted_one(device, cifar, tmp_path):
    # the run as it trains by default: the mini net (two towers, LRN, dropout whose masks come
    # from the CUDA generator the checkpoint restores), fast forms, bf16, no determinism. The
    # reference LRN's backward (avg_pool3d) adds bf16 values with atomics, so two CUDA runs
    # differ by rounding in some gradient elements: expected ~1e-4 of the loss and of the largest
    # weight after 12 steps. Allowed: 1e-3 of the losses, 1e-2 of each tensor's largest weight,
    # and one image's flipped prediction (2 points of 50 validation images). Measured on the CPU
    # (where resumed and whole runs are equal): a resume that skips the random states, or the
    # momentum, moves weights by 0.8 or 0.6 of a tensor's largest and the train loss by 5e-2 or
    # 4e-3
    settings = dict(
        **cifar, variant="mini", image_size=32, crop=24, batch_size=32, lr=0.01,
        train_per_class=20, val_per_class=5, schedule="constant", pca_colour=True,
        device=device.type,
    )  # fmt: skip
    (whole, cut), diff = _whole_and_resumed(tmp_path, settings, deterministic=False)
    assert len(whole) == len(cut) == 2
    for a, b in zip(whole, cut):
        assert a["epoch"] == b["epoch"] and a["lr"] == b["lr"]
        for key in ("train_loss", "val_loss"):
            assert b[key] == pytest.approx(a[key], rel=1e-3), (a["epoch"], key)
        for key in ("train_top1_err", "train_top5_err", "val_top1_err", "val_top5_err"):
            assert b[key] == pytest.approx(a[key], abs=2.1), (a["epoch"], key)
    assert diff["max_weight_rel"] <= 1e-2
    if device.type == "cpu":
        assert whole == cut and diff["max_weight_diff"] == 0.0


DETERMINISTIC_CLI = r"""
import sys
import torch
torch.use_deterministic_algorithms(True, warn_only=True)
from alexlib.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_one_process_nccl_run_equals_a_plain_run(device, cifar, tmp_path):
    # torchrun with one process: the train command's distributed path (NCCL on CUDA, gloo in a
    # dry run; init, set_device, destroy). With world size 1 train_run trains unwrapped, so
    # with deterministic kernels it must give the plain run's numbers exactly. NCCL's
    # collectives themselves are checked by test_ddp_with_nccl_equals_a_plain_step
    opts = {
        **ddp_demo_settings("smoke"), "epochs": 2, "device": device.type,
        "dataset": cifar["dataset"], "data_root": cifar["data_root"],
    }  # fmt: skip
    wrapper = tmp_path / "alexlib_cli.py"
    wrapper.write_text(DETERMINISTIC_CLI)
    plain = train_command(tmp_path / "plain", **opts)
    ddp = train_command(tmp_path / "nccl", **opts)
    assert plain[1:4] == ["-m", "alexlib", "train"] and ddp[1:4] == plain[1:4]
    env = dict(CUBLAS_WORKSPACE_CONFIG=":4096:8")
    _run([sys.executable, str(wrapper), *plain[3:]], 600, **env)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    _run([*torchrun, "--nproc_per_node", "1", str(wrapper), *ddp[3:]], 600, **env)
    meta = json.loads((tmp_path / "nccl" / "settings.json").read_text())
    assert meta["world_size"] == 1
    # the NCCL branch of the train command pins the process to its GPU: cuda:LOCAL_RANK
    assert meta["settings"]["device"] == ("cuda:0" if device.type == "cuda" else "cpu")
    drop = ("seconds", "images_per_s")
    a, b = (
        [{k: v for k, v in m.items() if k not in drop} for m in read_metrics(tmp_path / name)]
        for name in ("plain", "nccl")
    )
    assert len(a) == 2 and a == b
    assert compare_runs(tmp_path / "plain", tmp_path / "nccl")["max_weight_diff"] == 0.0
    assert load_checkpoint(tmp_path / "nccl" / "checkpoint.pt")["epoch"] == 2


def test_ddp_with_nccl_equals_a_plain_step(device, tmp_path, no_tf32):
    # DistributedDataParallel over one NCCL process (gloo in a dry run): the gradients go through
    # NCCL's all-reduce (a sum over one process, divided by one), so a training step must match
    # an unwrapped one up to the rounding of nondeterministic kernels (~1e-7; a broken
    # all-reduce is off by O(1))
    import torch.distributed as dist

    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(
        backend, init_method=f"file://{tmp_path}/rendezvous", rank=0, world_size=1
    )
    try:
        assert dist.get_backend() == backend
        torch.manual_seed(8)
        plain = build("mini", num_classes=10, dropout=0.0).to(device)
        wrapped = copy.deepcopy(plain)
        ddp = nn.parallel.DistributedDataParallel(
            wrapped, device_ids=[device.index or 0] if device.type == "cuda" else None
        )
        x = torch.randn(sized(device, 64, 8), 3, 24, 24, device=device)
        y = torch.randint(0, 10, (len(x),), device=device)
        for model, step_model in ((plain, plain), (wrapped, ddp)):
            optimizer = engine.sgd_paper(model, lr=0.01)
            for _ in range(2):  # two steps: the second starts from all-reduced updates
                engine.train_step(step_model, x, y, optimizer)
        for (name, p), q in zip(plain.named_parameters(), wrapped.parameters()):
            assert q.grad is not None and rel_err(q.grad, p.grad) <= 1e-5, name
            assert rel_err(q, p) <= 1e-6, name
        t = torch.arange(4.0, device=device)
        dist.all_reduce(t)
        assert t.tolist() == [0.0, 1.0, 2.0, 3.0]
    finally:
        dist.destroy_process_group()
