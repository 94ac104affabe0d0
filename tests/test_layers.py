"""alexlib.layers against PyTorch's built-ins: forward, gradients, shapes, and clear errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from alexlib import layers


def _grads(fn, *tensors):
    """Forward ``fn(*tensors)``, backward a fixed random upstream gradient; return out and grads."""
    tensors = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*tensors)
    upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    out.backward(upstream)
    return out.detach(), [t.grad for t in tensors]


# ------------------------------------------------------------------------------ output sizes


def test_conv_output_size_alexnet_arithmetic():
    # conv1: 227 (Caffe) and 224 + cuda-convnet's ceil both give 55; torchvision pads 2.
    assert layers.conv_output_size(227, 11, 4) == 55
    assert layers.conv_output_size(224, 11, 4, rounding="ceil") == 55
    assert (
        layers.conv_output_size(224, 11, 4, 2, rounding="floor") == 55
    )  # torchvision: 55.25 -> 55
    assert layers.conv_output_size(224, 11, 4, rounding="floor") == 54
    # the pools: 55 -> 27 -> 13 -> 6 with z=3, s=2; conv2 keeps 27 with pad 2
    assert [layers.conv_output_size(n, 3, 2) for n in (55, 27, 13)] == [27, 13, 6]
    assert layers.conv_output_size(27, 5, 1, 2) == 27
    with pytest.raises(ValueError, match="not a whole number"):
        layers.conv_output_size(224, 11, 4)
    with pytest.raises(ValueError, match="does not fit"):
        layers.conv_output_size(3, 5)
    with pytest.raises(ValueError, match="rounding"):
        layers.conv_output_size(10, 3, rounding="round")


# ------------------------------------------------------------------------------ convolution

CONV_CASES = [
    # (B, C_in, H, W, C_out, k, stride, padding, groups, dtype)
    (1, 3, 7, 7, 1, 7, 1, 0, 1, torch.float64),
    (2, 3, 13, 11, 4, 3, 1, 1, 1, torch.float64),
    (3, 3, 35, 35, 8, 11, 4, 0, 1, torch.float32),  # conv1-like, odd size
    (2, 6, 9, 9, 4, 5, 1, 2, 2, torch.float64),  # conv2-like: groups=2, pad 2
    (1, 4, 10, 8, 6, (3, 2), (2, 1), (1, 0), 2, torch.float64),  # non-square everything
    (2, 4, 6, 6, 4, 3, 2, 1, 4, torch.float32),  # depthwise
]


@pytest.mark.parametrize("b,cin,h,w,cout,k,s,p,g,dtype", CONV_CASES)
def test_conv2d_matches_torch_forward_and_backward(b, cin, h, w, cout, k, s, p, g, dtype):
    gen = torch.Generator().manual_seed(0)
    kh, kw = (k, k) if isinstance(k, int) else k
    x = torch.randn(b, cin, h, w, generator=gen, dtype=dtype)
    weight = torch.randn(cout, cin // g, kh, kw, generator=gen, dtype=dtype)
    bias = torch.randn(cout, generator=gen, dtype=dtype)
    ours, our_grads = _grads(
        lambda *t: layers.conv2d(*t, stride=s, padding=p, groups=g), x, weight, bias
    )
    ref, ref_grads = _grads(lambda *t: F.conv2d(*t, stride=s, padding=p, groups=g), x, weight, bias)
    assert ours.shape == ref.shape
    # float32: hundreds of products summed in a different order differ by ~1e-5 of the output
    # scale (values ~ 20 here); float64 cases use assert_close's default (tight) tolerances
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float32 else {}
    assert_close(ours, ref, **tol)
    for mine, theirs in zip(our_grads, ref_grads):  # d/dx, d/dweight, d/dbias
        assert_close(mine, theirs, **tol)


def test_conv2d_worked_example_dot_product():
    # The curve-detector slide: one 7x7 receptive field times one 7x7 filter is one number.
    field = torch.zeros(7, 7, dtype=torch.float64)
    field[0, 6] = 30
    field[1, 4:] = 50
    field[2, 3:5] = torch.tensor([20.0, 50.0], dtype=torch.float64)
    field[3:7, 3:5] = 50
    kernel = torch.zeros(7, 7, dtype=torch.float64)
    kernel[0, 5] = kernel[1, 4] = 30
    kernel[2:6, 3] = 30
    out = layers.conv2d(field.view(1, 1, 7, 7), kernel.view(1, 1, 7, 7))
    assert out.shape == (1, 1, 1, 1)
    assert out.item() == 6600.0 == (field * kernel).sum().item()


def test_conv2d_module_is_drop_in_for_nn_conv2d():
    torch.manual_seed(0)
    ref = nn.Conv2d(6, 8, 5, stride=1, padding=2, groups=2)
    ours = layers.Conv2d(6, 8, 5, stride=1, padding=2, groups=2)
    assert [(n, p.shape) for n, p in ours.named_parameters()] == [
        (n, p.shape) for n, p in ref.named_parameters()
    ]
    assert sum(p.numel() for p in ours.parameters()) == 8 * 3 * 5 * 5 + 8
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 6, 11, 11)
    assert_close(ours(x), ref(x))
    # default init has PyTorch's bound 1/sqrt(fan_in)
    fresh = layers.Conv2d(3, 96, 11, stride=4)
    assert fresh.weight.abs().max() <= 1 / math.sqrt(3 * 11 * 11)
    assert layers.Conv2d(4, 4, 3, bias=False).bias is None


def test_conv2d_paper_conv1_shape():
    x = torch.zeros(1, 3, 227, 227)
    assert layers.Conv2d(3, 96, 11, stride=4)(x).shape == (1, 96, 55, 55)


def test_conv2d_clear_errors():
    x = torch.randn(1, 4, 8, 8)
    with pytest.raises(ValueError, match="unsqueeze"):
        layers.conv2d(x[0], torch.randn(2, 4, 3, 3))
    with pytest.raises(ValueError, match="groups=3 must divide"):
        layers.conv2d(x, torch.randn(3, 1, 3, 3), groups=3)
    with pytest.raises(ValueError, match="input channels per group"):
        layers.conv2d(x, torch.randn(2, 3, 3, 3))
    with pytest.raises(TypeError, match="uint8"):
        layers.conv2d(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), torch.randn(1, 3, 3, 3))
    with pytest.raises(TypeError, match="cast"):
        layers.conv2d(x, torch.randn(2, 4, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="does not fit"):
        layers.conv2d(x, torch.randn(2, 4, 9, 9))
    with pytest.raises(TypeError, match="pair of ints"):
        layers.conv2d(x, torch.randn(2, 4, 3, 3), stride=1.5)


# ------------------------------------------------------------------------------ ReLU


def test_relu_matches_torch_including_gradient_at_zero():
    x = torch.tensor([[-2.0, -0.0, 0.0, 1e-8, 3.0]], dtype=torch.float64).repeat(2, 1)
    ours, (g_ours,) = _grads(layers.relu, x)
    ref, (g_ref,) = _grads(F.relu, x)
    assert_close(ours, ref)
    assert_close(g_ours, g_ref)
    assert_close(layers.ReLU()(x), nn.ReLU()(x))


# ------------------------------------------------------------------------------ LRN


def test_lrn_window_edges_match_pytorch_convention():
    w5 = layers.lrn_window(7, 5)
    assert w5[0].tolist() == [1, 1, 1, 0, 0, 0, 0]  # maps 0..2 at the low edge
    assert w5[3].tolist() == [0, 1, 1, 1, 1, 1, 0]  # i-2 .. i+2 in the middle
    assert w5[6].tolist() == [0, 0, 0, 0, 1, 1, 1]
    w4 = layers.lrn_window(6, 4)  # even n leans low: i-2 .. i+1
    assert w4[3].tolist() == [0, 1, 1, 1, 1, 0]
    assert_close(layers.lrn_window(5, 1), torch.eye(5))
    with pytest.raises(ValueError, match="adjacent maps"):
        layers.lrn_window(5, 0)


@pytest.mark.parametrize("size", [4, 5])
def test_lrn_window_of_two_towers_stops_at_each_towers_edge(size):
    one = layers.lrn_window(6, size)
    assert_close(layers.lrn_window(12, size, towers=2), torch.block_diag(one, one))
    with pytest.raises(ValueError, match="divides 12 maps"):
        layers.lrn_window(12, size, towers=5)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("shape", [(1, 7, 5, 5), (3, 12, 4, 3), (2, 3, 6), (2, 2, 3, 3)])
def test_lrn_code_convention_equals_torch(size, shape):
    gen = torch.Generator().manual_seed(size)
    # large activations, so the normalisation actually bites (not ~ x / k^beta)
    x = 30 * torch.randn(shape, generator=gen, dtype=torch.float64)
    ours, (g_ours,) = _grads(
        lambda t: layers.local_response_norm(t, size, 1e-4, 0.75, 2.0, "code"), x
    )
    ref, (g_ref,) = _grads(
        lambda t: F.local_response_norm(t, size, alpha=1e-4, beta=0.75, k=2.0), x
    )
    assert_close(ours, ref)
    assert_close(g_ours, g_ref)


def test_lrn_paper_convention_is_torch_with_alpha_times_n():
    gen = torch.Generator().manual_seed(0)
    x = 50 * torch.relu(torch.randn(2, 96, 9, 9, generator=gen, dtype=torch.float64))
    code = layers.LocalResponseNorm(convention="code")
    paper = layers.LocalResponseNorm(convention="paper")
    assert_close(code(x), nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2)(x))
    assert_close(paper(x), nn.LocalResponseNorm(5, alpha=5e-4, beta=0.75, k=2)(x))
    # The two really differ on these activations, and the paper's form divides more.
    assert (paper(x) - code(x)).abs().max() > 1e-3
    assert bool((paper(x).abs() <= code(x).abs()).all())


def test_lrn_formula_by_hand_for_one_unit():
    # b = a / (k + alpha * sum of a^2 over the window)^beta, for map 0 of 3 with n=5: maps 0, 1, 2
    a = torch.tensor([3.0, 4.0, 12.0], dtype=torch.float64).view(1, 3, 1, 1)
    out = layers.local_response_norm(a, 5, alpha=0.01, beta=0.5, k=1.0, convention="paper")
    assert_close(out[0, 0, 0, 0].item(), 3.0 / math.sqrt(1.0 + 0.01 * (9 + 16 + 144)))


def test_lrn_float32_paper_constants_and_errors():
    x = 100 * torch.randn(4, 96, 13, 13, generator=torch.Generator().manual_seed(3))
    assert_close(layers.local_response_norm(x), nn.LocalResponseNorm(5, 1e-4, 0.75, 2)(x))
    with pytest.raises(ValueError, match="convention"):
        layers.local_response_norm(x, convention="caffe")
    with pytest.raises(ValueError, match="dimension 1"):
        layers.local_response_norm(torch.randn(4, 96))
    with pytest.raises(TypeError, match="floating-point"):
        layers.local_response_norm(torch.ones(1, 3, 2, 2, dtype=torch.int64))


# ------------------------------------------------------------------------------ max pooling

POOL_CASES = [
    # (B, C, H, W, kernel, stride, padding)
    (1, 1, 55, 55, 3, 2, 0),  # the paper's pool1, overlapping
    (2, 3, 13, 13, 3, 2, 0),  # pool5: 13 -> 6
    (2, 3, 8, 8, 2, 2, 0),  # traditional, non-overlapping
    (1, 2, 9, 7, 3, 1, 1),  # stride 1, padded, non-square
    (3, 2, 10, 11, (3, 2), (2, 1), (1, 1)),
    (2, 2, 7, 7, 3, None, 0),  # stride defaults to kernel
]


@pytest.mark.parametrize("b,c,h,w,k,s,p", POOL_CASES)
@pytest.mark.parametrize("ties", [False, True])
def test_max_pool2d_matches_torch_forward_and_backward(b, c, h, w, k, s, p, ties):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(b, c, h, w, generator=gen, dtype=torch.float64)
    if ties:  # ReLU'd integers: many equal maxima (zeros), the gradient must pick the same one
        x = torch.relu(torch.round(2 * x))
    ours, (g_ours,) = _grads(lambda t: layers.max_pool2d(t, k, s, p), x)
    ref, (g_ref,) = _grads(lambda t: F.max_pool2d(t, k, s, p), x)
    assert ours.shape == ref.shape
    assert_close(ours, ref)
    assert_close(g_ours, g_ref)


def test_max_pool2d_sizes_through_alexnet_and_module():
    x = torch.randn(1, 96, 55, 55)
    sizes = []
    for _ in range(3):
        x = layers.MaxPool2d()(x)  # z=3, s=2
        sizes.append(x.shape[-1])
    assert sizes == [27, 13, 6]
    assert layers.max_pool2d(torch.randn(1, 1, 55, 55), 2, 2).shape == (1, 1, 27, 27)


def test_max_pool2d_clear_errors():
    with pytest.raises(ValueError, match="half the window"):
        layers.max_pool2d(torch.randn(1, 1, 8, 8), 3, 2, 2)
    with pytest.raises(ValueError, match="does not fit"):
        layers.max_pool2d(torch.randn(1, 1, 2, 2), 3, 2)
    with pytest.raises(ValueError, match="unsqueeze"):
        layers.max_pool2d(torch.randn(1, 8, 8))


# ------------------------------------------------------------------------------ dropout

N_UNITS = 200_000


def _zero_fraction_bounds(p: float, n: int, sigmas: float = 6.0) -> tuple[float, float]:
    # the number of dropped units is Binomial(n, p)
    spread = sigmas * math.sqrt(p * (1 - p) / n)
    return p - spread, p + spread


@pytest.mark.parametrize("mode", layers.DROPOUT_MODES)
@pytest.mark.parametrize("p", [0.5, 0.2])
def test_dropout_train_statistics(mode, p):
    x = torch.rand(N_UNITS, dtype=torch.float64) + 0.5  # no zeros in the input
    out = layers.dropout(x, p, training=True, mode=mode, generator=torch.Generator().manual_seed(7))
    dropped = out == 0
    low, high = _zero_fraction_bounds(p, N_UNITS)
    assert low < dropped.double().mean().item() < high
    # kept units are exactly x (paper) or exactly x / (1 - p) (inverted)
    scale = 1.0 if mode == "paper" else 1 / (1 - p)
    assert_close(out[~dropped], x[~dropped] * scale)
    # the mean over units matches the test-time output's mean within 6 standard errors
    test_out = layers.dropout(x, p, training=False, mode=mode)
    stderr = (x * scale).std().item() / math.sqrt(N_UNITS) + x.mean().item() * scale * math.sqrt(
        p * (1 - p) / N_UNITS
    )
    assert abs(out.mean().item() - test_out.mean().item()) < 6 * stderr


def test_dropout_forms_agree_in_expectation_and_with_torch():
    p = 0.5
    x = torch.randn(4, 4096, dtype=torch.float64)
    # test time: the paper multiplies by 1 - p = 0.5, the inverted form (torch's) is the identity
    assert_close(layers.dropout(x, p, training=False, mode="paper"), 0.5 * x)
    inverted = layers.Dropout(p, mode="inverted").eval()
    assert_close(inverted(x), nn.Dropout(p).eval()(x))
    # same mask -> the inverted output is the paper's output scaled by 1 / (1 - p): a network
    # trained one way is the other network with its next layer's weights scaled by 1 - p
    paper = layers.dropout(x, p, True, "paper", torch.Generator().manual_seed(3))
    inv = layers.dropout(x, p, True, "inverted", torch.Generator().manual_seed(3))
    assert_close(inv, paper / (1 - p))
    # averaging many masks converges to the test-time output, for both forms
    gen = torch.Generator().manual_seed(11)
    for mode in layers.DROPOUT_MODES:
        mean = torch.stack([layers.dropout(x, p, True, mode, gen) for _ in range(400)]).mean(0)
        target = layers.dropout(x, p, False, mode)
        # per unit: std of the 400-sample mean is |x| * scale * 0.5 / sqrt(400) <= |x| * 0.05
        assert bool(((mean - target).abs() <= 0.3 * x.abs() + 1e-12).all())
    # torch's training-time output has the inverted form's structure: 0 or x / (1 - p)
    torch.manual_seed(0)
    ref = nn.Dropout(p).train()(x)
    kept = ref != 0
    assert_close(ref[kept], x[kept] / (1 - p))
    low, high = _zero_fraction_bounds(p, x.numel())
    assert low < (~kept).double().mean().item() < high


def test_dropout_module_modes_edge_cases_and_errors():
    x = torch.ones(1000)
    module = layers.Dropout(0.5, generator=torch.Generator().manual_seed(0))
    assert module.training and set(module(x).unique().tolist()) == {0.0, 1.0}
    assert_close(module.eval()(x), 0.5 * x)
    assert_close(layers.dropout(x, 0.0, True, "inverted"), x)
    assert_close(layers.dropout(x, 1.0, True, "inverted"), torch.zeros(1000))
    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert_close(
        layers.dropout(x, 0.5, True, generator=gen_a), layers.dropout(x, 0.5, True, generator=gen_b)
    )
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        layers.dropout(x, 1.5)
    with pytest.raises(ValueError, match="inverted"):
        layers.Dropout(0.5, mode="scaled")


# ------------------------------------------------------------------------------ hand-made kernels


def test_oriented_kernels_shape_norm_and_rotation():
    kernels = layers.oriented_kernels(4, 11)
    assert kernels.shape == (4, 3, 11, 11) and kernels.dtype == torch.float32
    assert_close(kernels.flatten(1).norm(dim=1), torch.ones(4))
    assert_close(kernels.sum(dim=(2, 3)), torch.zeros(4, 3), atol=1e-6, rtol=0)
    assert_close(kernels[:, 0], kernels[:, 2])  # colour-blind: same weights on every channel
    # 90 degrees apart: the vertical-stripe kernel transposed is the horizontal-stripe kernel
    assert_close(kernels[0, 0].T, kernels[2, 0], atol=1e-6, rtol=0)
    # each kernel responds most strongly to stripes at its own orientation
    r = torch.arange(31, dtype=torch.float32) - 15
    y, x = torch.meshgrid(r, r, indexing="ij")
    for i in range(4):
        theta = math.pi * i / 4
        grating = torch.cos(2 * math.pi * (x * math.cos(theta) + y * math.sin(theta)) / 6.0)
        response = (
            layers.conv2d(grating.expand(1, 3, 31, 31).contiguous(), kernels).abs().amax(dim=(2, 3))
        )
        assert int(response.argmax()) == i
    with pytest.raises(ValueError, match="odd"):
        layers.oriented_kernels(4, 10)
