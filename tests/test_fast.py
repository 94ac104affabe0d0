"""alexlib.fast: every fast form computes the reference layer's function, forward and backward.

The Triton kernel runs here in Triton's interpreter (``TRITON_INTERPRET=1``), on the CPU: the same
kernel source a GPU compiles, checked element by element. Speed is not tested (see alexlib.bench).
"""

import copy
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from alexlib import fast
from alexlib.model import TowerLRN, build, get_layer, layer_names


def reference_lrn(x, size, alpha, beta, k, towers):
    """Per-tower LRN written independently: each tower through PyTorch's own LRN."""
    return torch.cat(
        [F.local_response_norm(part, size, alpha, beta, k) for part in x.chunk(towers, dim=1)],
        dim=1,
    )


# a large alpha so the normalisation actually changes the maps (the paper's 1e-4 barely does at unit
# scale)
HYPER = dict(alpha=0.5, beta=0.75, k=2.0)


@pytest.fixture
def interpret(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.mark.parametrize("impl", ["shift", "banded"])
@pytest.mark.parametrize("towers", [1, 2, 3])
@pytest.mark.parametrize("size", [5, 4, 1])
def test_pytorch_lrn_forms_match_reference_in_float64(impl, towers, size):
    torch.manual_seed(0)
    x = torch.randn(2, 12, 4, 5, dtype=torch.float64, requires_grad=True)
    y = fast.lrn(x, size, towers=towers, impl=impl, **HYPER)
    want = reference_lrn(x, size, HYPER["alpha"], HYPER["beta"], HYPER["k"], towers)
    assert_close(y, want, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda t: fast.lrn(t, size, towers=towers, impl=impl, **HYPER), (x,)
    )


@pytest.mark.parametrize("impl", ["shift", "banded"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_pytorch_lrn_forms_keep_the_memory_format(impl, memory_format):
    # a contiguous net must stay contiguous after its LRN, a channels-last one channels-last
    x = torch.randn(2, 8, 5, 6).contiguous(memory_format=memory_format)
    y = fast.lrn(x, 5, impl=impl, **HYPER)
    assert y.is_contiguous(memory_format=memory_format)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
@pytest.mark.parametrize("towers", [1, 2])
@pytest.mark.parametrize("size", [5, 4])
def test_triton_lrn_matches_reference(interpret, memory_format, towers, size):
    torch.manual_seed(1)
    x = torch.randn(2, 40, 3, 5).contiguous(memory_format=memory_format).requires_grad_(True)
    g = torch.randn(2, 40, 3, 5)
    y = fast.lrn_triton(x, size, towers=towers, **HYPER)
    assert y.is_contiguous(memory_format=memory_format)  # the output keeps the input's layout
    (dx,) = torch.autograd.grad(y, x, g)
    x64 = x.detach().double().requires_grad_(True)
    want = reference_lrn(x64, size, HYPER["alpha"], HYPER["beta"], HYPER["k"], towers)
    (want_dx,) = torch.autograd.grad(want, x64, g.double())
    assert_close(y.double(), want, rtol=1e-5, atol=1e-6)
    assert_close(dx.double(), want_dx, rtol=1e-5, atol=1e-6)


def test_triton_lrn_gradient_of_a_non_contiguous_gradient(interpret):
    # autograd may hand the backward a gradient in another layout than x; the kernel takes its
    # strides
    x = torch.randn(1, 8, 4, 4, requires_grad=True)
    g = torch.randn(1, 4, 4, 8).permute(0, 3, 1, 2)  # channels-last strides, x is contiguous
    (dx,) = torch.autograd.grad(fast.lrn_triton(x, 5, towers=2, **HYPER), x, g)
    x2 = x.detach().requires_grad_(True)
    (want,) = torch.autograd.grad(
        reference_lrn(x2, 5, HYPER["alpha"], HYPER["beta"], HYPER["k"], 2), x2, g
    )
    assert_close(dx, want, rtol=1e-5, atol=1e-6)


def test_triton_lrn_gradient_whose_h_and_w_do_not_collapse(interpret):
    # a gradient through a transpose has strides no (B, C, H*W) view can describe: the backward
    # copies it first (it read out of bounds before)
    x = torch.randn(2, 16, 6, 10, requires_grad=True)
    g = torch.randn(2, 16, 10, 6)
    (dx,) = torch.autograd.grad(fast.lrn_triton(x, 5, towers=2, **HYPER).transpose(2, 3), x, g)
    x2 = x.detach().requires_grad_(True)
    want = reference_lrn(x2, 5, HYPER["alpha"], HYPER["beta"], HYPER["k"], 2)
    (want_dx,) = torch.autograd.grad(want.transpose(2, 3), x2, g)
    assert_close(dx, want_dx, rtol=1e-5, atol=1e-6)


def test_bf16_maps_are_summed_in_float32(interpret):
    # under autocast the maps are bf16; the fast forms sum in float32 and return bf16
    torch.manual_seed(2)
    x = (torch.randn(2, 16, 3, 3) * 3).bfloat16()
    want = reference_lrn(x.float(), 5, HYPER["alpha"], HYPER["beta"], HYPER["k"], 2)
    for impl in ("shift", "banded", "triton"):
        y = fast.lrn(x, 5, towers=2, impl=impl, **HYPER)
        assert y.dtype == torch.bfloat16
        assert_close(y.float(), want, rtol=1e-2, atol=1e-2)


def test_triton_on_cpu_without_interpreter_says_what_to_do(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="impl='shift'"):
        fast.lrn_triton(torch.randn(1, 4, 2, 2))


def test_lrn_rejects_bad_input():
    with pytest.raises(ValueError, match="towers=3"):
        fast.lrn(torch.randn(1, 8, 2, 2), towers=3)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        fast.lrn(torch.randn(8, 2, 2))
    with pytest.raises(ValueError, match="impl must be one of"):
        fast.lrn(torch.randn(1, 8, 2, 2), impl="fused")


def test_fast_lrn_module_is_a_tower_lrn_and_auto_uses_reference_on_cpu():
    layer = fast.FastLRN(5, 1e-4, 0.75, 2.0, towers=2)
    assert isinstance(layer, TowerLRN) and isinstance(layer, nn.LocalResponseNorm)
    x = torch.randn(2, 96, 5, 5) * 30
    assert torch.equal(
        layer(x), TowerLRN(5, 1e-4, 0.75, 2.0, towers=2)(x)
    )  # the very same computation


@pytest.mark.parametrize("impl", ["dense", "split"])
@pytest.mark.parametrize("groups", [2, 4])
def test_tower_convs_match_grouped_conv(impl, groups):
    torch.manual_seed(3)
    ref = nn.Conv2d(8, 12, 3, padding=1, groups=groups).double()
    conv = fast.FastConv2d.like(ref, impl)
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64, requires_grad=True)
    assert_close(conv(x), ref(x), rtol=1e-12, atol=1e-12)
    g = torch.randn(2, 12, 6, 6, dtype=torch.float64)
    got = torch.autograd.grad(conv(x), [x, conv.weight, conv.bias], g)
    want = torch.autograd.grad(
        F.conv2d(x, ref.weight, ref.bias, padding=1, groups=groups), [x, ref.weight, ref.bias], g
    )
    for a, b in zip(got, want):
        assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_block_diagonal_places_each_group_on_the_diagonal():
    w = torch.arange(2 * 1 * 1 * 1.0).view(2, 1, 1, 1) + 1  # 2 groups, 1 in/out channel each
    dense = fast.block_diagonal(w, 2)
    assert dense[:, :, 0, 0].tolist() == [[1.0, 0.0], [0.0, 2.0]]


@pytest.mark.parametrize("size", [224, 227, 230, 33])
@pytest.mark.parametrize("padding,groups", [(0, 1), (2, 1), (0, 3)])
def test_space_to_depth_conv1_matches_strided_conv(size, padding, groups):
    torch.manual_seed(4)
    w = torch.randn(6, 3 // groups, 11, 11, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    x = torch.randn(1, 3, size, size, dtype=torch.float64)
    want = F.conv2d(x, w, b, stride=4, padding=padding, groups=groups)
    got = fast.space_to_depth_conv(x, w, b, 4, padding, groups)
    assert got.shape == want.shape
    assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_space_to_depth_gradients():
    torch.manual_seed(5)
    conv = nn.Conv2d(3, 4, 5, stride=2).double()
    x = torch.randn(1, 3, 13, 11, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t, w, b: fast.space_to_depth_conv(t, w, b, 2), (x, conv.weight, conv.bias)
    )


def test_s2d_refuses_convs_it_cannot_rewrite():
    with pytest.raises(ValueError, match="square stride >= 2"):
        fast.FastConv2d.like(nn.Conv2d(3, 4, 3, stride=1), "s2d")
    with pytest.raises(ValueError, match="impl must be one of"):
        fast.FastConv2d.like(nn.Conv2d(3, 4, 3), "winograd")


def test_speed_up_keeps_parameters_and_state_dict():
    torch.manual_seed(6)
    net = build("paper", num_classes=10)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    params = [id(p) for p in net.parameters()]
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)  # built before the swap
    fast.speed_up(net, lrn="shift", conv="dense", conv1="s2d")
    assert [id(p) for p in net.parameters()] == params
    assert net.state_dict().keys() == before.keys()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    assert fast.describe(net) == {
        "features.1": "s2d",
        "features.3": "shift",
        "features.5": "dense",
        "features.7": "shift",
        "features.9": "native",
        "features.11": "dense",
        "features.13": "dense",
    }
    assert [n for n, _ in layer_names(net)] == [
        n for n, _ in layer_names(build("paper", num_classes=10))
    ]
    net(torch.randn(2, 3, 224, 224)).sum().backward()
    optimizer.step()  # the optimizer still holds the net's parameters
    assert not torch.equal(net.features[1].weight, before["features.1.weight"])
    fresh = build("paper", num_classes=10)
    fresh.load_state_dict(net.state_dict())  # checkpoints load into the reference form


def test_speed_up_auto_is_reference_on_cpu():
    net = fast.speed_up(build("paper", num_classes=10))
    assert set(fast.describe(net).values()) == {"native", "auto"}
    x = torch.randn(1, 3, 224, 224)
    ref = build("paper", num_classes=10)
    ref.load_state_dict(net.state_dict())
    ref.eval(), net.eval()
    assert torch.equal(net(x), ref(x))


@pytest.mark.parametrize(
    "forms",
    [
        dict(lrn="shift", conv="dense", conv1="s2d"),
        dict(lrn="banded", conv="split"),
    ],
)
def test_whole_paper_net_is_the_same_function_in_float64(forms):
    torch.manual_seed(7)
    ref = build("paper", num_classes=10).double().eval()
    net = fast.speed_up(copy.deepcopy(ref), **forms).eval()
    xa = torch.randn(2, 3, 224, 224, dtype=torch.float64, requires_grad=True)
    xb = xa.detach().clone().requires_grad_(True)
    ya, yb = ref(xa), net(xb)
    g = torch.randn_like(ya)
    ya.backward(g)
    yb.backward(g)
    assert_close(yb, ya, rtol=1e-9, atol=1e-12)
    assert_close(xb.grad, xa.grad, rtol=1e-9, atol=1e-12)
    for (name, p), q in zip(ref.named_parameters(), net.parameters()):
        assert_close(q.grad, p.grad, rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.parametrize(
    "forms", [dict(lrn="shift", conv="dense", conv1="s2d"), dict(lrn="banded", conv="split")]
)
def test_channels_last_net_as_trained_on_a_gpu(forms):
    # on CUDA the net and its input are channels-last (parameters included); the rewrites must not
    # assume contiguous tensors
    torch.manual_seed(12)
    ref = build("paper", num_classes=10).double().eval()
    net = fast.speed_up(copy.deepcopy(ref), **forms).to(memory_format=torch.channels_last).eval()
    assert net.features[1].weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 224, 224, dtype=torch.float64)
    xa = x.clone().requires_grad_(True)
    xb = x.contiguous(memory_format=torch.channels_last).requires_grad_(True)
    ya, yb = ref(xa), net(xb)
    ya.sum().backward()
    yb.sum().backward()
    assert_close(yb, ya, rtol=1e-9, atol=1e-12)
    assert_close(xb.grad, xa.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("conv", ["dense", "split"])
@pytest.mark.parametrize(
    "variant", ["paper-code", "paper-nolrn", "paper-pool2", "half", "onegpu2014", "bn", "cifar4"]
)
def test_speed_up_works_on_every_variant(variant, conv):
    torch.manual_seed(8)
    ref = build(variant, num_classes=10).double().eval()
    net = fast.speed_up(copy.deepcopy(ref), lrn="shift", conv=conv, conv1="s2d").eval()
    size = 32 if variant == "cifar4" else 224
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    assert_close(net(x), ref(x), rtol=1e-9, atol=1e-12)


def test_check_equal_passes_equal_forms_and_catches_a_wrong_one():
    torch.manual_seed(9)
    ref = build("paper", num_classes=10)
    x = torch.randn(1, 3, 224, 224)
    good = fast.speed_up(copy.deepcopy(ref), lrn="shift", conv="dense", conv1="s2d")
    rows = fast.check_equal(ref, good, x)
    assert set(rows) == {
        "features.1",
        "features.3",
        "features.5",
        "features.7",
        "features.9",
        "features.11",
        "features.13",
    }
    assert all(r["equal"] for r in rows.values())
    bad = copy.deepcopy(good)
    bad.features[3].k = 1.0  # LRN1 with the wrong k: a different function
    rows = fast.check_equal(ref, bad, x)
    assert not rows["features.3"]["equal"] and rows["features.3"]["output"] > 1e-3
    assert rows["features.7"]["equal"]


def test_triton_lrn_in_the_whole_net(interpret):
    torch.manual_seed(10)
    ref = build("paper", num_classes=10)
    net = fast.speed_up(copy.deepcopy(ref), lrn="triton")
    x = torch.randn(1, 3, 224, 224)  # one image: the interpreter is slow
    rows = fast.check_equal(ref, net, x)
    assert [r["impl"] for r in rows.values() if r["impl"] == "triton"] == ["triton", "triton"]
    assert all(r["equal"] for r in rows.values()), rows


@pytest.mark.parametrize(
    "forms",
    [
        dict(lrn="shift", conv="dense", conv1="s2d"),
        dict(lrn="banded", conv="split"),
    ],
)
def test_fast_forms_compile_to_one_graph(forms):
    # fullgraph=True fails on any graph break; aot_eager runs the traced forward and backward graphs
    torch.manual_seed(11)
    ref = build("paper", num_classes=10).eval()
    net = fast.speed_up(copy.deepcopy(ref), **forms).eval()
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    x = torch.randn(1, 3, 224, 224, requires_grad=True)
    y = compiled(x)
    y.sum().backward()
    x2 = x.detach().requires_grad_(True)
    want = ref(x2)
    want.sum().backward()
    assert_close(y, want, rtol=1e-4, atol=1e-5)
    assert_close(x.grad, x2.grad, rtol=1e-3, atol=1e-6)


def test_triton_lrn_traces_as_one_op():
    # without a GPU the kernel cannot run compiled, but tracing with fake tensors must see one
    # opaque op. A fresh process: once the interpreter tests have defined the kernels interpreted,
    # they stay so.
    pytest.importorskip("triton")
    code = """
import torch
from torch import nn
from alexlib import fast
lrn = fast.FastLRN(5, 0.5, 0.75, 2.0, towers=2, impl="triton")
net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), lrn)
graph = torch.export.export(net, (torch.randn(2, 3, 9, 9),)).graph
print([str(n.target) for n in graph.nodes if n.op == "call_function"])
"""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "alexlib.lrn_forward.default" in done.stdout


def test_banded_lrn_sums_in_float32_under_autocast():
    # autocast runs a matmul in bf16 unless told otherwise; the window sums must stay float32
    torch.manual_seed(3)
    x = torch.randn(2, 16, 3, 3) * 3
    want = fast.lrn(x, 5, towers=2, impl="banded", **HYPER)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = fast.lrn(x, 5, towers=2, impl="banded", **HYPER)
    assert got.dtype == torch.float32
    assert_close(got, want, rtol=1e-6, atol=1e-6)


def test_for_device_is_the_training_layout_and_the_same_function():
    torch.manual_seed(0)
    plain = build("paper", input_size=128, num_classes=10).eval()
    moved = fast.for_device(copy.deepcopy(plain), "cpu")
    assert get_layer(moved, "conv1").weight.is_contiguous(memory_format=torch.channels_last)
    assert set(fast.describe(moved).values()) >= {"banded"}
    assert moved.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        assert_close(moved(x), plain(x), rtol=1e-4, atol=1e-5)
    untouched = fast.for_device(copy.deepcopy(plain), "cpu", channels_last=False, fast=False)
    assert get_layer(untouched, "conv1").weight.is_contiguous() and not fast.describe(untouched)
