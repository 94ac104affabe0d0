"""alexlib.model: parameter counts, shapes through every stage, init, torchvision round trip,
towers."""

import pytest
import torch
import torchvision
from torch import nn

from alexlib.model import (
    VARIANTS,
    EdgePad,
    build,
    conv1_towers,
    count_parameters,
    format_summary,
    get_layer,
    layer_names,
    layer_summary,
    paper_head,
    tower_activations,
)


@pytest.fixture(scope="module")
def paper():
    torch.manual_seed(0)
    return build("paper").eval()


# ---------------------------------------------------------------------------------------------
# parameter counts


def test_paper_has_60965224_parameters(paper):
    assert count_parameters(paper) == 60_965_224


def test_onegpu2014_matches_torchvision_count():
    model = build("onegpu2014")
    assert count_parameters(model) == 61_100_840
    assert count_parameters(torchvision.models.alexnet(weights=None)) == 61_100_840


@pytest.mark.parametrize(
    "variant, expected",
    [
        # paper with the code's init and layer order: the same layers, the same 60,965,224
        ("paper-code", 60_965_224),
        # conv1 48*3*121+48 = 17,472; conv2 128*48*25+128 = 153,728; conv3 192*128*9+192 = 221,376;
        # conv4 192*192*9+192 = 331,968; conv5 256*192*9+256 = 442,624;
        # fc6 9216*4096+4096 = 37,752,832; fc7 4096*4096+4096 = 16,781,312; fc8 4096*1000+1000 =
        # 4,097,000 total 59,798,312
        ("half", 59_798_312),
        # one tower 96-256-384-384-256: convs 34,944 + 614,656 + 885,120 + 1,327,488 + 884,992 =
        # 3,747,200; BatchNorm2d 2*(96+256+384+384+256) = 2,752; fc 58,631,144; BatchNorm1d
        # 2*(4096+4096) = 16,384 total 62,397,480
        ("bn", 62_397_480),
        # conv 3*32*25+32 = 2,432; 32*32*25+32 = 25,632; 32*64*25+64 = 51,264; fc 1024*10+10 =
        # 10,250 total 89,578
        ("cifar4", 89_578),
    ],
)
def test_other_variant_counts(variant, expected):
    assert count_parameters(build(variant)) == expected


def test_fewer_classes_shrink_only_fc8():
    # fc8 goes from 4096*1000+1000 to 4096*10+10: 4,097,000 - 40,970 = 4,056,030 fewer
    assert count_parameters(build("paper", num_classes=10)) == 60_965_224 - 4_056_030


# ---------------------------------------------------------------------------------------------
# shapes


def _stage_shapes(model, size):
    rows = {r.name: r.output_shape for r in layer_summary(model, (3, size, size))}
    return [
        rows[n]
        for n in (
            "conv1",
            "pool1",
            "conv2",
            "pool2",
            "conv3",
            "conv4",
            "conv5",
            "pool5",
            "fc6",
            "fc7",
            "fc8",
        )
    ]


@pytest.mark.parametrize("size", [224, 227])
def test_paper_shapes_at_224_and_227(paper, size):
    assert _stage_shapes(paper, size) == [
        (96, 55, 55),
        (96, 27, 27),
        (256, 27, 27),
        (256, 13, 13),
        (384, 13, 13),
        (384, 13, 13),
        (256, 13, 13),
        (256, 6, 6),
        (4096,),
        (4096,),
        (1000,),
    ]


def test_edge_pad_is_cuda_convnet_rule():
    pad = EdgePad(kernel_size=11, stride=4)
    x = torch.randn(2, 3, 224, 224)
    y = pad(x)
    assert y.shape == (2, 3, 227, 227)
    # the image sits top-left, three zero rows/columns are added at the bottom/right
    torch.testing.assert_close(y[..., :224, :224], x)
    assert y[..., 224:, :].abs().sum() == 0 and y[..., :, 224:].abs().sum() == 0
    # 1 + ceil((2p + N - f) / s) with p = 0, N = 224, f = 11, s = 4 -> 55
    conv = nn.Conv2d(3, 4, 11, stride=4)
    assert conv(y).shape[-1] == 1 + -(-(224 - 11) // 4) == 55
    z = torch.randn(1, 3, 227, 227)
    assert pad(z) is z


def test_224_input_equals_227_input_with_zero_border(paper):
    x = torch.randn(2, 3, 224, 224)
    padded = torch.nn.functional.pad(x, (0, 3, 0, 3))
    with torch.no_grad():
        torch.testing.assert_close(paper(x), paper(padded))


@pytest.mark.parametrize("variant", ["paper-code", "half", "bn", "onegpu2014"])
@pytest.mark.parametrize("size", [224, 227])
def test_every_imagenet_variant_reaches_6x6(variant, size):
    rows = layer_summary(build(variant), (3, size, size))
    pools = [r.output_shape[-1] for r in rows if r.kind == "MaxPool2d"]
    assert pools == [27, 13, 6]
    assert rows[-1].output_shape == (1000,)


def test_forward_output_shape(paper):
    with torch.no_grad():
        assert paper(torch.randn(2, 3, 224, 224)).shape == (2, 1000)


def test_summary_last_line_and_macs(paper):
    text = format_summary(paper)
    assert text.splitlines()[-1] == "parameters: 60,965,224"
    rows = layer_summary(paper)
    by_name = {r.name: r for r in rows}
    # conv1: 55*55 positions * 96 kernels * 3*11*11 weights each
    assert by_name["conv1"].macs == 55 * 55 * 96 * 363
    # conv2 is grouped: each kernel sees 48 of the 96 maps
    assert by_name["conv2"].macs == 27 * 27 * 256 * 48 * 25
    assert by_name["fc6"].macs == 9216 * 4096
    assert by_name["conv1"].activation_bytes == 96 * 55 * 55 * 4
    assert sum(r.params for r in rows) == 60_965_224


def test_layer_names_are_the_papers(paper):
    names = [n for n, _ in layer_names(paper)]
    assert names[:5] == ["pad", "conv1", "relu1", "lrn1", "pool1"]
    assert [n for n in names if n[:2] in ("co", "fc")] == [f"conv{i}" for i in range(1, 6)] + [
        "fc6",
        "fc7",
        "fc8",
    ]
    assert len(set(names)) == len(names)


# ---------------------------------------------------------------------------------------------
# structure and init


def test_paper_groups_and_lrn(paper):
    groups = [get_layer(paper, f"conv{i}").groups for i in range(1, 6)]
    assert groups == [1, 2, 1, 2, 2]
    lrns = [m for _, m in layer_names(paper) if isinstance(m, nn.LocalResponseNorm)]
    assert len(lrns) == 2
    for lrn in lrns:
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0)
    # LRN follows ReLU in the paper; in the code's order it sees the raw conv1 output
    names = [n for n, _ in layer_names(paper)]
    assert names.index("relu1") < names.index("lrn1")
    code_names = [n for n, _ in layer_names(build("paper-code"))]
    assert code_names[1:5] == ["conv1", "lrn1", "pool1", "relu1"]


def test_tower_lrn_and_fast_lrn_default_to_the_papers_constants():
    """Built with no arguments, both LRN modules use the paper's n=5, alpha=1e-4, beta=0.75 and
    k=2 (the 2012 code's minDiv=2), not PyTorch's k=1 default."""
    from alexlib.fast import FastLRN
    from alexlib.model import TowerLRN

    assert nn.LocalResponseNorm(5).k == 1.0  # what a forgotten k would silently give
    for lrn in (TowerLRN(), FastLRN(), FastLRN(impl="reference")):
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 1e-4, 0.75, 2.0), type(lrn)
    assert TowerLRN().towers == 2 and FastLRN().towers == 1
    # and they compute it: k=2 within each tower of 48 maps
    x = torch.rand(2, 96, 7, 7) * 20
    per_tower = torch.cat([nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0)(h) for h in x.chunk(2, 1)], 1)
    torch.testing.assert_close(TowerLRN()(x), per_tower)
    torch.testing.assert_close(FastLRN(towers=2)(x), per_tower)
    assert not torch.allclose(
        TowerLRN()(x), torch.cat([nn.LocalResponseNorm(5, 1e-4, 0.75)(h) for h in x.chunk(2, 1)], 1)
    )


def test_paper_dropout_sits_on_fc6_and_fc7_outputs(paper):
    names = [n for n, _ in layer_names(paper)]
    assert names[-7:] == ["fc6", "relu6", "drop6", "fc7", "relu7", "drop7", "fc8"]
    assert all(m.p == 0.5 for _, m in layer_names(paper) if isinstance(m, nn.Dropout))


def test_paper_init_statistics(paper):
    for i, name in enumerate(["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]):
        layer = get_layer(paper, name)
        w = layer.weight.detach()
        assert abs(w.mean().item()) < 3e-3
        assert w.std().item() == pytest.approx(0.01, rel=0.05)
        expected_bias = 1.0 if name in ("conv2", "conv4", "conv5", "fc6", "fc7") else 0.0
        torch.testing.assert_close(layer.bias.detach(), torch.full_like(layer.bias, expected_bias))


def test_paper_code_init_uses_std_003_in_conv3_to_5():
    torch.manual_seed(1)
    model = build("paper-code")
    for name, std in [
        ("conv1", 0.01),
        ("conv2", 0.01),
        ("conv3", 0.03),
        ("conv4", 0.03),
        ("conv5", 0.03),
        ("fc6", 0.01),
    ]:
        assert get_layer(model, name).weight.std().item() == pytest.approx(std, rel=0.05)


# ---------------------------------------------------------------------------------------------
# torchvision


def test_onegpu2014_state_dict_round_trip_with_torchvision():
    torch.manual_seed(0)
    ours = build("onegpu2014").eval()
    theirs = torchvision.models.alexnet(weights=None).eval()
    theirs.load_state_dict(ours.state_dict())  # strict: every key and shape must match
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), ours(x), rtol=0, atol=0)
    # and back: torchvision's (freshly initialised) weights into ours
    torch.manual_seed(1)
    theirs = torchvision.models.alexnet(weights=None).eval()
    ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# towers


def test_conv1_towers_are_the_two_halves(paper):
    a, b = conv1_towers(paper)
    assert a.shape == b.shape == (48, 3, 11, 11)
    torch.testing.assert_close(torch.cat([a, b]), get_layer(paper, "conv1").weight.detach())


def test_tower_activations_shapes(paper):
    x = torch.randn(2, 3, 224, 224)
    a, b = tower_activations(paper, x, "relu1")
    assert a.shape == b.shape == (2, 48, 55, 55)
    a2, b2 = tower_activations(paper, x, "conv2")
    assert a2.shape == b2.shape == (2, 128, 27, 27)
    # tower 1's relu1 maps are the ReLU of tower 1's kernels applied to the (padded) image
    ref = torch.relu(
        nn.functional.conv2d(
            nn.functional.pad(x, (0, 3, 0, 3)),
            conv1_towers(paper)[0],
            get_layer(paper, "conv1").bias[:48],
            stride=4,
        )
    )
    torch.testing.assert_close(a, ref)


def test_towers_are_independent_in_conv2_and_cross_in_conv3(paper):
    torch.manual_seed(0)
    x = torch.randn(1, 96, 27, 27)
    x_perturbed = x.clone()
    x_perturbed[:, :48] += torch.randn(1, 48, 27, 27)  # change only tower 1's maps
    conv2 = get_layer(paper, "conv2")
    with torch.no_grad():
        y, y_perturbed = conv2(x), conv2(x_perturbed)
    torch.testing.assert_close(
        y_perturbed[:, 128:], y[:, 128:], rtol=0, atol=0
    )  # tower 2 untouched
    assert not torch.allclose(y_perturbed[:, :128], y[:, :128])
    conv3 = get_layer(paper, "conv3")
    z = torch.randn(1, 256, 13, 13)
    z_perturbed = z.clone()
    z_perturbed[:, :128] += 1.0
    with torch.no_grad():
        assert not torch.allclose(conv3(z_perturbed)[:, 192:], conv3(z)[:, 192:])  # conv3 crosses


def test_single_tower_variants_refuse_tower_access():
    with pytest.raises(ValueError, match="single tower"):
        conv1_towers(build("half"))


# ---------------------------------------------------------------------------------------------
# cifar4, errors


@pytest.mark.parametrize("activation, kind", [("relu", nn.ReLU), ("tanh", nn.Tanh)])
def test_cifar4_activations(activation, kind):
    torch.manual_seed(0)
    model = build("cifar4", activation=activation)
    acts = [m for _, m in layer_names(model) if isinstance(m, (nn.ReLU, nn.Tanh))]
    assert len(acts) == 3 and all(isinstance(m, kind) for m in acts)
    rows = layer_summary(model, (3, 32, 32))
    assert [r.output_shape for r in rows if r.kind.endswith("Pool2d")] == [
        (32, 16, 16),
        (32, 8, 8),
        (64, 4, 4),
    ]
    out = model(torch.randn(4, 3, 32, 32))
    assert out.shape == (4, 10)
    if activation == "tanh":
        # tanh keeps every feature inside (-1, 1)
        feats = model.features(torch.randn(4, 3, 32, 32) * 100)
        assert feats.abs().max() < 1


def test_cifar4_hidden_head_with_dropout():
    model = build("cifar4", hidden=(64, 64), dropout=0.5)
    names = [n for n, _ in layer_names(model)]
    assert names[-7:] == ["fc4", "relu4", "drop4", "fc5", "relu5", "drop5", "fc6"]
    assert count_parameters(model) == 89_578 - 10_250 + (1024 * 64 + 64) + (64 * 64 + 64) + (
        64 * 10 + 10
    )


def test_unknown_variant_lists_known_ones():
    with pytest.raises(
        ValueError,
        match="known variants are: paper, paper-code, half, onegpu2014, bn, cifar4, paper-nolrn, "
        "paper-pool2, mini, mini-nolrn, mini-pool2, mini-half",
    ):
        build("resnet")
    assert VARIANTS == (
        "paper",
        "paper-code",
        "half",
        "onegpu2014",
        "bn",
        "cifar4",
        "paper-nolrn",
        "paper-pool2",
        "mini",
        "mini-nolrn",
        "mini-pool2",
        "mini-half",
    )


def test_paper_net_sized_for_a_smaller_input():
    # at 224 the paper's 60,965,224 parameters (1000 classes); at 128 conv5's pool leaves 3x3
    # maps and fc6 reads 256 * 3 * 3 features, the conv layers unchanged
    full = build("paper")
    small = build("paper", input_size=128)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(full) == 60_965_224
    fc6 = lambda m: next(x for x in m.classifier if isinstance(x, torch.nn.Linear))
    assert fc6(small).in_features == 256 * 3 * 3
    assert count(full) - count(small) == (256 * 6 * 6 - 256 * 3 * 3) * 4096
    assert small(torch.zeros(2, 3, 128, 128)).shape == (2, 1000)
    assert build("paper-pool2", input_size=128).variant == "paper-pool2"


def test_mini_net_switches_only_what_each_ablation_names():
    count = lambda m: sum(p.numel() for p in m.parameters())
    base, nolrn, pool2, half = (build(v) for v in ("mini", "mini-nolrn", "mini-pool2", "mini-half"))
    kinds = lambda m: [type(x).__name__ for x in m.features]
    assert kinds(base).count("TowerLRN") == 2 and "TowerLRN" not in kinds(nolrn)
    assert [x for x in kinds(base) if x != "TowerLRN"] == kinds(nolrn)
    pools = lambda m: [
        (x.kernel_size, x.stride) for x in m.features if isinstance(x, torch.nn.MaxPool2d)
    ]
    assert pools(base) == [(3, 2)] * 3 and pools(pool2) == [(2, 2)] * 3
    # z=3 and z=2 (rounding up) leave the same maps, so the same parameters
    assert count(base) == count(nolrn) == count(pool2)
    convs = lambda m: [
        (x.out_channels, x.groups) for x in m.features if isinstance(x, torch.nn.Conv2d)
    ]
    assert convs(base) == [(48, 1), (48, 2), (96, 1), (96, 2), (64, 2)]
    assert convs(half) == [(24, 1), (24, 1), (48, 1), (48, 1), (64, 1)]
    # LRN on standardised inputs equals the paper's alpha on 0-255 maps 64 times larger
    lrn = next(x for x in base.features if type(x).__name__ == "TowerLRN")
    maps = torch.rand(2, 48, 6, 6) * 3
    paper_lrn = type(lrn)(size=5, alpha=1e-4, beta=0.75, k=2.0, towers=2)
    torch.testing.assert_close(lrn(maps) * 64, paper_lrn(maps * 64))
    x = torch.randn(4, 3, 24, 24)
    assert all(m(x).shape == (4, 10) for m in (base, nolrn, pool2, half))


def test_bad_options_and_inputs_are_explained(paper):
    with pytest.raises(TypeError, match="unknown option"):
        build("paper", activation="tanh")
    with pytest.raises(ValueError, match="unknown activation"):
        build("cifar4", activation="sigmoid")
    with pytest.raises(TypeError, match="float input"):
        paper(torch.zeros(1, 3, 224, 224, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        paper(torch.zeros(3, 224, 224))
    with pytest.raises(ValueError, match="smaller than"):
        paper(torch.zeros(1, 3, 8, 8))


def test_paper_head_alone():
    model = paper_head((3, 32, 32), num_classes=10, hidden=1024, dropout=0.5)
    # 3072*1024+1024 + 1024*1024+1024 + 1024*10+10 = 3,146,752 + 1,049,600 + 10,250
    assert count_parameters(model) == 4_206_602
    assert [n for n, _ in layer_names(model)] == [
        "fc1",
        "relu1",
        "drop1",
        "fc2",
        "relu2",
        "drop2",
        "fc3",
    ]
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_layer_cost_figure_draws_the_summary(paper):
    from alexlib.figures import layer_costs, two_towers

    rows = layer_summary(paper)
    fig = layer_costs(rows)
    params_panel = fig.axes[0]
    heights = [bar.get_height() for bar in params_panel.patches]
    expected = [r.params / 1e6 for r in rows if r.kind in ("Conv2d", "Linear")]
    assert heights == pytest.approx(expected)
    assert [t.get_text() for t in params_panel.get_xticklabels()] == [
        f"conv{i}" for i in range(1, 6)
    ] + ["fc6", "fc7", "fc8"]
    # two towers: 2 x 7 per-GPU boxes (conv1-fc7) + the input and fc8 boxes
    assert len(two_towers().axes[0].patches) == 16


# ---------------------------------------------------------------------------------------------
# the ablation switches of the paper-claims ledger: no LRN (section 3.3), z=2, s=2 pooling (section
# 3.4)


@pytest.mark.parametrize(
    "variant, options",
    [
        ("paper-nolrn", {}),
        ("paper-pool2", {}),
        ("paper", {"lrn": False}),
        ("paper", {"pool": (2, 2)}),
    ],
)
def test_ablation_switches_keep_the_parameter_count(variant, options):
    model = build(variant, **options)
    # LRN and max pooling have no parameters: the ablations compare nets of the same size
    assert count_parameters(model) == 60_965_224
    assert model.towers == 2


def test_no_lrn_variant_has_no_lrn_and_otherwise_the_paper_layers(paper):
    names = [n for n, _ in layer_names(build("paper-nolrn"))]
    assert not [n for n in names if n.startswith("lrn")]
    assert names == [n for n, _ in layer_names(paper) if not n.startswith("lrn")]
    assert build("paper", lrn=False).variant == "paper-nolrn"


def test_pool2_keeps_the_widths_55_27_13_6():
    model = build("paper-pool2")
    pools = [m for _, m in layer_names(model) if isinstance(m, nn.MaxPool2d)]
    assert [(p.kernel_size, p.stride) for p in pools] == [(2, 2)] * 3
    rows = layer_summary(model)
    # floor((55 - 2) / 2) + 1 = 27, floor((27 - 2) / 2) + 1 = 13, floor((13 - 2) / 2) + 1 = 6
    assert [r.output_shape for r in rows if r.kind == "MaxPool2d"] == [
        (96, 27, 27),
        (256, 13, 13),
        (256, 6, 6),
    ]
    assert isinstance(
        model.avgpool, nn.Identity
    )  # no adaptive pool needed: fc6 reads 9216 features
    assert model(torch.zeros(2, 3, 224, 224)).shape == (2, 1000)
    assert build("paper", pool=(2, 2)).variant == "paper-pool2"


def test_ablation_variants_share_the_paper_weights_layout(paper):
    # the same learned tensors in the same order (without LRN the module indices shift, the shapes
    # do not)
    shapes = [tuple(v.shape) for v in paper.state_dict().values()]
    for variant in ("paper-nolrn", "paper-pool2"):
        assert [tuple(v.shape) for v in build(variant).state_dict().values()] == shapes


def test_pool2_on_a_max_pool_reference():
    # z=2, s=2 on a 55x55 map equals torch's max pool over the first 54 rows and columns in 2x2
    # blocks
    x = torch.randn(1, 96, 55, 55)
    pool = [m for _, m in layer_names(build("paper-pool2")) if isinstance(m, nn.MaxPool2d)][0]
    expected = (
        x[..., :54, :54].unfold(2, 2, 2).unfold(3, 2, 2).amax(dim=(-1, -2))
    )  # (1, 96, 27, 27)
    torch.testing.assert_close(pool(x), expected)


def test_a_pool_that_misses_6x6_gets_the_adaptive_pool_and_bad_pools_are_explained():
    model = build("paper", pool=(3, 3))  # 55 -> 18 -> 6 -> 2: fc6 still needs 6x6
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)
    assert model(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    assert count_parameters(model) == 60_965_224
    with pytest.raises(ValueError, match=r"pool must be \(size z, stride s\)"):
        build("paper", pool=3)
    with pytest.raises(ValueError, match="1 <= s <= z"):
        build("paper", pool=(2, 3))


def test_paper_dropout_drops_without_rescaling_and_halves_at_test_time():
    from alexlib.model import PaperDropout

    x = torch.rand(64, 4096) + 0.5
    drop = PaperDropout(0.5)
    torch.manual_seed(3)
    y = drop(x)
    kept = y != 0
    torch.testing.assert_close(y[kept], x[kept])  # kept units pass unchanged
    assert 0.45 < kept.float().mean().item() < 0.55
    torch.manual_seed(3)
    assert torch.equal(nn.Dropout(0.5)(x) != 0, kept)  # the same random numbers as nn.Dropout
    drop.eval()
    torch.testing.assert_close(drop(x), 0.5 * x)
    assert all(
        type(m) is PaperDropout for m in build("paper").classifier if isinstance(m, nn.Dropout)
    )
    assert all(
        type(m) is nn.Dropout for m in build("onegpu2014").classifier if isinstance(m, nn.Dropout)
    )


def test_inverted_dropout_quadruples_the_next_layers_step_at_the_same_lr():
    """Why the paper variants use the paper's dropout: one SGD step on the layer after dropout moves
    its outputs four times as far with inverted dropout (inputs 2x, so gradient 2x and effect
    2x)."""
    torch.manual_seed(0)
    h = torch.rand(1, 256) + 0.5
    mask = (torch.rand(1, 256) < 0.5).float()
    moves = {}
    for name, inputs in (("paper", h * mask), ("inverted", 2 * h * mask)):
        fc = nn.Linear(256, 10, bias=False)
        nn.init.zeros_(fc.weight)
        loss = nn.functional.cross_entropy(fc(inputs), torch.tensor([3]))
        loss.backward()
        with torch.no_grad():
            fc.weight -= 0.01 * fc.weight.grad
            moves[name] = fc(inputs).abs().max().item()
    assert moves["inverted"] / moves["paper"] == pytest.approx(4.0, rel=1e-5)
