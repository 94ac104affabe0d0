"""Tests of the figure experiments (alexlib.experiments): colour scores, epochs to a threshold,
the resident training loop, nearest-neighbour and Hamming retrieval, the binary auto-encoder, and
the stored-results round trips. CPU, a few seconds."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.testing import assert_close

from alexlib import experiments as ex
from alexlib.model import build
from alexlib.train import load_checkpoint


class _Split:
    """The smallest stand-in for ``ImageTensors``: images, labels, classes, len()."""

    def __init__(self, images, labels, classes):
        self.images, self.labels, self.classes = images, labels, classes

    def __len__(self):
        return len(self.images)


# ---------------------------------------------------------------------------------------- Figure 3


def test_colour_selectivity_of_hand_made_kernels():
    torch.manual_seed(0)
    pattern = torch.randn(5, 11, 11)
    grey = pattern[:, None].expand(5, 3, 11, 11)  # the same weights in R, G and B
    opponent = torch.stack([pattern, -pattern, torch.zeros_like(pattern)], dim=1)  # red minus green
    red_only = torch.stack([pattern, torch.zeros_like(pattern), torch.zeros_like(pattern)], dim=1)
    assert_close(ex.colour_selectivity(grey), torch.zeros(5), atol=1e-6, rtol=0)
    assert_close(ex.colour_selectivity(opponent), torch.ones(5))
    assert_close(ex.colour_selectivity(red_only), torch.full((5,), 2 / 3))
    # a grey kernel plus a little colour scores a little; scaling a kernel changes nothing
    mixed = grey + 0.1 * opponent
    assert_close(ex.colour_selectivity(mixed), ex.colour_selectivity(7.5 * mixed))
    assert (ex.colour_selectivity(mixed) < 0.05).all()
    assert ex.colour_selectivity(torch.zeros(2, 3, 11, 11)).tolist() == [0.0, 0.0]
    noise = ex.colour_selectivity(torch.randn(2000, 3, 11, 11))
    assert (
        abs(noise.mean().item() - 2 / 3) < 0.01
    )  # random kernels: 2 of 3 RGB directions are colour
    with pytest.raises(ValueError, match=r"\(K, 3, h, w\)"):
        ex.colour_selectivity(torch.randn(4, 1, 11, 11))


def test_tower_split_detects_a_grey_and_a_colour_tower():
    torch.manual_seed(1)
    pattern = torch.randn(48, 11, 11)
    grey = pattern[:, None].repeat(1, 3, 1, 1) + 0.05 * torch.randn(48, 3, 11, 11)
    colour = torch.stack([pattern, -pattern, 0.2 * pattern], dim=1)
    split = ex.tower_split(grey, colour)
    assert split["auc"] == 1.0 and split["separation"] == 1.0 and split["agrees"]
    assert split["colourful_tower"] == 2
    assert split["mean"][0] < 0.05 < 0.9 < split["mean"][1]
    assert split["scores"][0].shape == split["scores"][1].shape == (48,)
    swapped = ex.tower_split(colour, grey)
    assert swapped["auc"] == 0.0 and swapped["agrees"] and swapped["colourful_tower"] == 1
    same = ex.tower_split(colour, colour)
    assert same["auc"] == 0.5 and not same["agrees"]
    # the paper's net, untrained: both towers are noise, no split
    weight = build("paper", num_classes=10).features[1].weight.detach()  # (96, 3, 11, 11)
    assert weight.shape == (96, 3, 11, 11)
    assert not ex.tower_split(*weight.chunk(2)).get("agrees")


def test_bimodality_coefficient_limits():
    two_point = torch.tensor([0.0, 1.0]).repeat(500)  # symmetric, two modes: skew 0, kurtosis -2
    assert abs(ex.bimodality_coefficient(two_point) - 1.0) < 0.01
    normal = torch.randn(20000, generator=torch.Generator().manual_seed(0))
    assert abs(ex.bimodality_coefficient(normal) - 1 / 3) < 0.02
    with pytest.raises(ValueError, match="at least 4"):
        ex.bimodality_coefficient(torch.tensor([1.0, 2.0, 3.0]))


def test_pretrained_conv1_reads_the_hub_cache_only(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert ex.pretrained_conv1(download=False) is None
    (tmp_path / "checkpoints").mkdir()
    weight = torch.randn(64, 3, 11, 11)
    torch.save(
        {"features.0.weight": weight, "features.0.bias": torch.zeros(64)},
        tmp_path / "checkpoints" / ex.TORCHVISION_ALEXNET,
    )
    assert_close(ex.pretrained_conv1(), weight)


# ---------------------------------------------------------------------------------------- Figure 1


def test_epochs_to_reach_on_made_up_curves():
    assert ex.epochs_to_reach([90, 60, 40, 20], 25.0) == pytest.approx(2.75)
    assert ex.epochs_to_reach([90, 60, 25, 20], 25.0) == pytest.approx(
        2.0
    )  # reached exactly at epoch 2
    assert ex.epochs_to_reach([90, 80, 70], 25.0) is None  # never reached
    assert ex.epochs_to_reach([20, 10], 25.0) == 0.0
    assert (
        ex.epochs_to_reach([90, float("nan"), 10], 25.0) is None
    )  # no line can be drawn through a NaN epoch
    assert ex.epochs_to_reach([90, float("nan")], 25.0) is None
    with pytest.raises(ValueError):
        ex.epochs_to_reach([], 25.0)


def _run(activation, lr, seed, errors, role="search", diverged=False):
    history = [
        {"epoch": e, "train_err": v, "diverged": diverged and e == len(errors) - 1}
        for e, v in enumerate(errors)
    ]
    return {
        "activation": activation,
        "lr": lr,
        "seed": seed,
        "role": role,
        "history": history,
        "settings": {"thresholds": (25.0, 50.0)},
    }


def test_best_lr_and_the_summary_ratio():
    runs = [
        _run("relu", 0.01, 0, [90, 40, 20, 10]),  # 25% after 1.75 epochs
        _run("relu", 0.1, 0, [90, 20, 10, 5], diverged=True),  # faster, but diverged: never chosen
        _run("relu", 0.001, 0, [90, 80, 60, 40]),
        _run("tanh", 0.01, 0, [90, 80, 70, 60, 50, 40, 30, 26, 24, 20, 15]),  # 25% after 7.5 epochs
        _run("tanh", 0.1, 0, [90, 85, 80, 75]),
        _run("relu", 0.01, 1, [90, 60, 30, 20], role="seed"),  # 2.5 epochs
        _run("tanh", 0.01, 1, [90, 80, 70, 60, 50, 40, 30, 25], role="seed"),  # 7 epochs
    ]
    assert ex.best_lr(runs, "relu", 25.0) == 0.01
    assert ex.best_lr(runs, "tanh", 25.0) == 0.01
    summary = ex.summarise_figure1(runs)
    row = summary["by_threshold"][25.0]
    assert row["seeds"] == [0, 1]
    assert row["relu"] == pytest.approx([1.75, 2.5])
    assert row["tanh"] == pytest.approx([7.5, 7.0])
    assert row["ratio"] == pytest.approx([7.5 / 1.75, 7.0 / 2.5])
    # tanh never gets there in its 3 epochs, ReLU in 1.75: the ratio is only bounded, above 3/1.75
    bounded = ex.summarise_figure1(
        [runs[0], _run("tanh", 0.01, 0, [90, 80, 70, 60])], thresholds=(25.0,)
    )["by_threshold"][25.0]
    assert bounded["ratio"] == [None] and bounded["above"] == pytest.approx([3 / 1.75])
    assert "> 1.71" in ex.format_figure1({"lr": {}, "by_threshold": {25.0: bounded}})
    # no run reached the threshold: the lowest final error wins
    slow = [_run("tanh", 0.01, 0, [90, 70, 60]), _run("tanh", 0.03, 0, [90, 60, 55])]
    assert ex.best_lr(slow, "tanh", 25.0) == 0.03
    with pytest.raises(ValueError, match="diverging"):
        ex.best_lr([_run("relu", 1.0, 0, [90, 90], diverged=True)], "relu", 25.0)


def test_train_resident_learns_and_measures_the_training_error():
    # 40 noisy images whose class is their colour: learnable in a few epochs
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(40) % 10
    colours = torch.randint(0, 256, (10, 3), generator=g).float()
    images = (
        colours[labels][:, :, None, None] + 30 * torch.randn(40, 3, 32, 32, generator=g)
    ).clamp(0, 255)
    images = images.to(torch.uint8)
    torch.manual_seed(0)
    model = build("cifar4", activation="relu")
    untrained = {k: v.clone() for k, v in model.state_dict().items()}
    history = ex.train_resident(
        model, images, labels, epochs=8, lr=0.01, batch_size=8, device="cpu"
    )
    assert [h["epoch"] for h in history] == list(range(9))
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert history[-1]["train_err"] < history[0]["train_err"]
    # epoch 0 is the untrained net's error, measured in one eval pass: check against a direct count
    model.load_state_dict(untrained)
    mean = images.double().mean(dim=(0, 2, 3))  # per channel, pixel units
    std = images.double().std(dim=(0, 2, 3))  # over all pixels of all images, unbiased
    with torch.no_grad():
        out = model(((images.double() - mean[:, None, None]) / std[:, None, None]).float())
    assert history[0]["train_err"] == pytest.approx(
        100.0 * (out.argmax(1) != labels).float().mean().item()
    )
    # a learning rate far too high: the run stops at the epoch the loss stops being finite
    torch.manual_seed(0)
    blown = ex.train_resident(
        build("cifar4", activation="relu"),
        images,
        labels,
        epochs=3,
        lr=1e4,
        batch_size=8,
        device="cpu",
    )
    assert blown[-1]["diverged"] and len(blown) <= 4
    with pytest.raises(TypeError, match="uint8"):
        ex.train_resident(
            model, images.float(), labels, epochs=1, lr=0.01, batch_size=8, device="cpu"
        )


def test_run_figure1_small_and_stored_round_trip(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(0)
    data = _Split(
        torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.arange(40) % 10,
        [str(c) for c in range(10)],
    )
    runs = ex.run_figure1(
        "smoke",
        data=data,
        device="cpu",
        progress=False,
        epochs=2,
        batch_size=20,
        lrs={"today": {"relu": (0.01, 0.02), "tanh": (0.01,)}},
        seeds=(0, 1),
    )
    assert [(r["activation"], r["lr"], r["role"], r["seed"]) for r in runs] == [
        ("relu", 0.01, "search", 0),
        ("tanh", 0.01, "search", 0),
        ("relu", 0.01, "seed", 1),
        ("tanh", 0.01, "seed", 1),
        ("relu", 0.02, "search", 0),
    ] + ([("relu", 0.02, "seed", 1)] if ex.best_lr(runs, "relu", 25.0) == 0.02 else [])
    assert all(len(r["history"]) == 3 for r in runs)
    with pytest.raises(TypeError, match="unknown setting"):
        ex.run_figure1("smoke", data=data, nonsense=1)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "_toc.yml").write_text("root: intro\n")  # results_dir() is found next to _toc.yml
    assert ex.stored_figure1("full") == ([], None)
    ex.save_figure1(runs, tag="full")
    stored, where = ex.stored_figure1("full")
    assert all(r["settings"]["regime"] == "today" for r in stored)
    assert all(r["settings"]["inputs"] == "standardise" for r in stored)
    assert "date" in where and "torch" in where
    key = lambda r: (r["activation"], r["lr"], r["seed"])
    assert sorted(map(key, stored)) == sorted(map(key, runs))
    for r in runs:
        s = next(x for x in stored if key(x) == key(r))
        assert [h["train_err"] for h in s["history"]] == pytest.approx(
            [h["train_err"] for h in r["history"]]
        )
    assert ex.summarise_figure1(stored)["lr"] == ex.summarise_figure1(runs)["lr"]


def _colour_images(n=40, seed=0):
    """``n`` noisy images whose class is their colour: learnable in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    colours = torch.randint(0, 256, (10, 3), generator=g).float()
    noisy = colours[labels][:, :, None, None] + 30 * torch.randn(n, 3, 32, 32, generator=g)
    return noisy.clamp(0, 255).to(torch.uint8), labels


def test_activation_stats_count_the_flat_part_of_each_unit():
    images, _ = _colour_images(20)
    torch.manual_seed(0)
    net = build("cifar4", activation="tanh", init="code")
    from alexlib.augment import dataset_stats

    stats = dataset_stats(images, size=32, inputs="mean-image")
    small = ex.activation_stats(net, images, stats)
    assert all(a["activation"] == "tanh" for a in small)
    # the 2012 code's init: conv1's inputs are 0-255 pixels times N(0, 1e-4) weights, far inside
    # tanh's linear part; scaled up 10,000 times, nearly every unit of conv1 is saturated
    assert small[0]["flat_share"] < 0.01 and small[0]["input_std"] < 0.2
    with torch.no_grad():
        net.features[0].weight.mul_(1e4)
    big = ex.activation_stats(net, images, stats)
    assert big[0]["flat_share"] > 0.9
    assert big[0]["input_std"] == pytest.approx(1e4 * small[0]["input_std"], rel=0.05)
    relu = ex.activation_stats(build("cifar4"), images, dataset_stats(images, size=32))
    assert 0.2 < relu[0]["flat_share"] < 0.8  # about half of ReLU's inputs are negative


def test_train_resident_resumed_from_its_state_gives_the_uninterrupted_curve(tmp_path):
    images, labels = _colour_images()
    kw = dict(epochs=4, lr=0.01, batch_size=8, device="cpu")
    torch.manual_seed(0)
    whole = ex.train_resident(build("cifar4"), images, labels, **kw)
    state = tmp_path / "state.pt"
    torch.manual_seed(0)
    first = ex.train_resident(build("cifar4"), images, labels, state=state, max_epochs=2, **kw)
    assert [h["epoch"] for h in first] == [0, 1, 2] and state.is_file()
    # one checkpoint format for every use of the epoch driver (train_run's adds its settings)
    saved = load_checkpoint(state)
    assert set(saved) == {"model", "optimizer", "schedule", "rng", "history", "scaler"}
    torch.manual_seed(5)  # a fresh net with other weights: the state file replaces them
    rest = ex.train_resident(build("cifar4"), images, labels, state=state, **kw)
    assert [h["epoch"] for h in rest] == [0, 1, 2, 3, 4]
    assert [h["train_err"] for h in rest] == [h["train_err"] for h in whole]
    assert [h["train_loss"] for h in rest] == pytest.approx(
        [h["train_loss"] for h in whole], rel=1e-5
    )
    # stop_at: the run ends at the first epoch at or below the level
    torch.manual_seed(0)
    stopped = ex.train_resident(
        build("cifar4"), images, labels, stop_at=whole[2]["train_err"], **kw
    )
    assert stopped[-1]["train_err"] <= whole[2]["train_err"]
    assert all(h["train_err"] > whole[2]["train_err"] for h in stopped[:-1])


def test_run_figure1_prunes_the_search_stores_each_run_and_resumes(tmp_path, monkeypatch):
    """The orchestration alone: train_resident replaced by curves fixed per learning rate."""
    curves = {0.01: [90, 60, 40, 20, 10], 0.03: [90, 50, 20, 10, 5], 0.1: [90, 80, 70, 60, 50]}
    calls = []

    def fake(model, images, labels, *, lr, epochs, stop_at, max_epochs, state, **kw):
        calls.append((lr, max_epochs))
        out = []
        for e, err in enumerate(curves[lr][: epochs + 1]):
            out.append(
                {
                    "epoch": e,
                    "train_err": err,
                    "batch_err": err,
                    "train_loss": 1.0,
                    "seconds": 0.0,
                    "diverged": False,
                }
            )
            if err <= stop_at or (max_epochs is not None and e >= max_epochs):
                break
        return out

    monkeypatch.setattr("alexlib.experiments.figure1.train_resident", fake)
    data = _Split(
        torch.zeros(20, 3, 32, 32, dtype=torch.uint8),
        torch.arange(20) % 10,
        [str(c) for c in range(10)],
    )
    kw = dict(
        data=data,
        progress=False,
        epochs=4,
        seeds=(0, 1),
        thresholds=(25.0,),
        lrs={"paper": {"relu": (0.01, 0.03, 0.1)}},
        regime="paper",
    )
    runs = ex.run_figure1("smoke", store=tmp_path / "figure1", state_dir=tmp_path / "st", **kw)
    # the first rate at both seeds; 0.01 reaches 25% in epoch 3; 0.03 gets there sooner (epoch
    # 2) and tightens the budget; 0.1 is stopped after 2 epochs, having no chance to be faster;
    # then seed 1 again at the rate chosen
    assert calls == [(0.01, None), (0.01, None), (0.03, 3), (0.1, 2), (0.03, None)]
    assert [len(r["history"]) for r in runs] == [4, 4, 3, 3, 3]
    assert ex.best_lr(runs, "relu", 25.0) == 0.03
    assert runs[-1]["role"] == "seed" and runs[-1]["seed"] == 1
    assert all(r["settings"]["inputs"] == "mean-image" for r in runs)
    stored, _ = ex.stored_figure1("smoke-paper", base=tmp_path / "figure1")
    assert len(stored) == 5
    # each run stores what its activations saw, before training and after (here: untrained nets)
    first = stored[0]["activations"]
    assert [a["layer"] for a in first["init"]] == ["conv1", "conv2", "conv3"]
    assert first["init"] == first["end"]
    # run again: every run is read back, none is trained
    calls.clear()
    again = ex.run_figure1("smoke", store=tmp_path / "figure1", state_dir=tmp_path / "st", **kw)
    assert calls == []
    assert [r["history"] for r in again] == [r["history"] for r in runs]
    text = ex.describe_figure1(stored, stored[0]["provenance"], {"relu": (0.01, 0.03, 0.1, 0.3)})
    assert max(len(line) for line in text.splitlines()) <= 88
    text = " ".join(text.split())
    assert (
        "smoke scale, paper regime (mean-image inputs): 20 CIFAR-10 training images, 5 runs" in text
    )
    assert "Rates tried: relu 0.01, 0.03, 0.1 (still to run: 0.3)." in text
    # first_seeds=1: the first-guess rate at the first seed only
    calls.clear()
    ex.run_figure1("smoke", first_seeds=1, **{**kw, "lrs": {"paper": {"relu": (0.1,)}}})
    assert calls == [(0.1, None)]
    with pytest.raises(ValueError, match="regime must be one of"):
        ex.run_figure1("smoke", data=data, regime="1998")


# ---------------------------------------------------------------------------------------- Figure 4


def test_nearest_neighbours_match_brute_force():
    g = torch.Generator().manual_seed(0)
    database = torch.randn(300, 40, generator=g)
    queries = torch.randn(17, 40, generator=g)
    idx, dist = ex.nearest_neighbours(
        queries, database, k=6, device="cpu", chunk=64
    )  # several chunks
    ref = torch.cdist(queries.double(), database.double())  # (17, 300)
    ref_d, ref_i = ref.sort(dim=1)
    assert idx.shape == dist.shape == (17, 6)
    assert torch.equal(idx, ref_i[:, :6])
    assert_close(dist, ref_d[:, :6].float(), atol=1e-4, rtol=1e-4)
    # a query that is in the database finds itself at distance 0
    idx_self, dist_self = ex.nearest_neighbours(
        database[:5], database, k=1, device="cpu", chunk=100
    )
    assert idx_self.flatten().tolist() == [0, 1, 2, 3, 4]
    # (the expanded |q|^2 - 2q.d + |d|^2 cancels to ~1e-5 in float32; its square root is ~3e-3)
    assert_close(dist_self.flatten(), torch.zeros(5), atol=1e-2, rtol=0)
    # uint8 pixels are converted chunk by chunk and give the same answer as floats
    pixels = torch.randint(0, 256, (50, 48), dtype=torch.uint8, generator=g)
    a, _ = ex.nearest_neighbours(pixels[:7], pixels, k=3, device="cpu", chunk=16)
    b, _ = ex.nearest_neighbours(pixels[:7].float(), pixels.float(), k=3, device="cpu")
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="same D"):
        ex.nearest_neighbours(queries, database[:, :10], k=3)
    with pytest.raises(ValueError, match="between 1"):
        ex.nearest_neighbours(queries, database, k=301)


def test_hamming_neighbours_match_brute_force():
    g = torch.Generator().manual_seed(0)
    db = torch.rand(200, 64, generator=g) > 0.5
    q = torch.rand(9, 64, generator=g) > 0.5
    idx, dist = ex.hamming_neighbours(q, db, k=10, device="cpu")
    ref = (q[:, None, :] ^ db[None, :, :]).sum(dim=2)  # (9, 200) bits that differ
    ref_i = ref.argsort(dim=1, stable=True)[:, :10]
    assert torch.equal(idx, ref_i)
    assert torch.equal(dist, ref.gather(1, ref_i))
    same, d0 = ex.hamming_neighbours(db[:3], db, k=1, device="cpu")
    assert same.flatten().tolist() == [0, 1, 2] and d0.flatten().tolist() == [0, 0, 0]


def test_retrieval_scores():
    true = torch.tensor([[1, 2, 3], [4, 5, 6]])
    found = torch.tensor([[3, 9, 1], [7, 8, 9]])
    assert ex.neighbour_recall(found, true) == pytest.approx(2 / 6)
    labels_db = torch.tensor([0, 0, 1, 1, 0, 1, 1, 1, 0, 0])
    assert ex.class_precision(found, torch.tensor([0, 1]), labels_db) == pytest.approx((2 + 1) / 6)


def test_binary_autoencoder_codes_and_training():
    torch.manual_seed(0)
    ae = ex.BinaryAutoencoder(dim=32, bits=16, hidden=24)
    x = torch.randn(10, 32)
    code = ae.code(x)
    assert code.shape == (10, 16) and code.dtype == torch.bool
    out = ae(x)
    assert out.shape == (10, 32)
    out.pow(2).sum().backward()  # the straight-through code lets the gradient reach the encoder
    assert ae.encoder[0].weight.grad is not None and ae.encoder[0].weight.grad.abs().sum() > 0
    # features with structure (8 clusters): the codes keep the clusters apart
    centres = torch.randn(8, 32) * 3
    labels = torch.arange(400) % 8
    feats = (centres[labels] + 0.3 * torch.randn(400, 32)).relu()
    trained, info = ex.train_autoencoder(
        feats, bits=16, epochs=40, hidden=64, lr=3e-3, device="cpu"
    )
    codes = ex.binary_codes(trained, info, feats)
    assert codes.shape == (400, 16) and info["mean"].shape == (32,)
    assert set(codes.unique().tolist()) <= {False, True}
    idx, _ = ex.hamming_neighbours(codes[:40], codes, k=5, device="cpu")
    assert ex.class_precision(idx, labels[:40], labels) > 0.8
    assert math.isfinite(info["loss"])


# ---------------------------------------------------------------------------------------- drawing


def test_figure_functions_draw_the_figures():
    from alexlib import figures

    kernels = torch.randn(96, 3, 11, 11)
    fig = figures.conv1_kernels(kernels, towers=2)
    assert len(fig.axes) == 2 and [a.get_title(loc="left") for a in fig.axes] == ["GPU 1", "GPU 2"]
    assert fig.axes[0].images[0].get_array().shape == (
        3 * 12 - 1,
        16 * 12 - 1,
        3,
    )  # 3 rows of 16 per tower
    assert len(figures.conv1_kernels(kernels[:64]).axes) == 1
    with pytest.raises(ValueError, match="RGB kernels"):
        figures.conv1_kernels(torch.randn(8, 1, 5, 5))
    curves = {"relu": {0: [90, 50, 20]}, "tanh": {0: [90, 70, 60]}}
    assert len(figures.relu_vs_tanh(curves).axes[0].lines) == 3  # two curves and the 25% line
    images = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8)
    classes = [f"class {i}" for i in range(10)]
    top = torch.arange(5).repeat(8, 1)
    fig = figures.top5_bars(
        images, top, torch.full((8, 5), 0.2), torch.zeros(8, dtype=torch.long), classes
    )
    bars = [p for a in fig.axes for p in a.patches]
    assert (
        len(bars) == 40 and sum(p.get_facecolor()[0] > 0.7 for p in bars) == 8
    )  # the true class is red
    fig = figures.neighbour_rows(
        images[:2],
        {"fc7": images[:6].view(2, 3, 3, 16, 16), "pixels": images[2:8].view(2, 3, 3, 16, 16)},
    )
    assert sum(bool(a.images) for a in fig.axes) == 2 * (1 + 3 + 3)
    fig = figures.colour_scores({"a": torch.rand(48), "b": torch.rand(48)})
    assert len(fig.axes[0].collections) == 2


def test_figure3_and_figure4_results_round_trip(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    assert ex.stored_figure3("full") == [] and ex.stored_figure4("full") == []
    run = tmp_path / "run"
    run.mkdir()
    (run / "settings.json").write_text(
        json.dumps({"settings": {"variant": "paper", "seed": 3}, "provenance": {"date": "d"}})
    )
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "seconds": 2.0}) + "\n")
    kernels = torch.randn(96, 3, 11, 11)
    ex.save_figure3("paper", 3, {"out": str(run), "conv1": kernels}, tag="full")
    (stored,) = ex.stored_figure3("full")
    assert stored["variant"] == "paper" and stored["seed"] == 3 and stored["wall_s"] == 2.0
    assert torch.equal(stored["conv1"], kernels)
    assert stored["views"] is None and stored["val_probs"] is None  # not a figure3_net run
    from alexlib.train import describe_stored

    line = describe_stored(
        {
            **stored,
            "provenance": {
                "device": "cpu (2 threads)",
                "cpu": "X",
                "cores": 2,
                "commit": "abc",
                "date": "d",
            },
        }
    )
    assert line.startswith(f"{stored['name']}: X (2 cores, 2 threads), torch ?,\n  commit abc, d;")
    assert line.endswith("1 epochs, 0 min of training, seed 3")
    from alexlib.train import machine_name

    assert machine_name({"device": "cuda (NVIDIA H200)"}) == "cuda (NVIDIA H200)"
    assert machine_name({"device": "cpu", "cpu": "X", "cores": 2}) == "X (2 cores)"
    with_bf16 = {"device": "cpu (2 threads)", "cpu": "X", "cores": 2, "cpu_bf16": True}
    assert machine_name(with_bf16) == "X (2 cores, 2 threads, bf16)"
    assert machine_name({**with_bf16, "cpu_bf16": False}) == "X (2 cores, 2 threads, no bf16)"
    one = {"device": "cpu (1 threads)", "cpu": "X", "cores": 2}
    assert (
        machine_name(one)
        == machine_name({**one, "device": "cpu (1 thread)"})
        == ("X (2 cores, 1 thread)")
    )
    result = {
        "top5": {"images": [1, 2]},
        "neighbours": {"queries": [0]},
        "retrieval": {"fc7": {"precision": 0.5}},
        "k": 6,
        "classes": ["a"],
        "metrics": [{"epoch": 1, "seconds": 1.5}],
        "settings": {"seed": 0},
        "val": object(),
        "train": object(),
    }
    ex.save_figure4(result, tag="full")
    (stored4,) = ex.stored_figure4("full")
    assert (
        stored4["figure4"]["retrieval"] == {"fc7": {"precision": 0.5}}
        and "val" not in stored4["figure4"]
    )
    assert "torch" in stored4["provenance"] and stored4["metrics"] == [{"epoch": 1, "seconds": 1.5}]


def test_neighbour_searches_reject_mismatched_shapes_and_k():
    db = torch.rand(20, 8)
    with pytest.raises(ValueError, match=r"same D; got \(3, 7\) and \(20, 8\)"):
        ex.nearest_neighbours(torch.rand(3, 7), db, k=2, device="cpu")
    with pytest.raises(ValueError, match="between 1 and the database size 20, got 21"):
        ex.nearest_neighbours(torch.rand(3, 8), db, k=21, device="cpu")
    codes = torch.rand(20, 16) > 0.5
    with pytest.raises(ValueError, match=r"\(Q, bits\)"):
        ex.hamming_neighbours(torch.rand(3, 4) > 0.5, codes, k=1, device="cpu")
    with pytest.raises(ValueError, match="got 0"):
        ex.hamming_neighbours(codes[:2], codes, k=0, device="cpu")


def test_the_laptop_driver_runs_what_the_book_misses_most_first(tmp_path, monkeypatch, capsys):
    import tools.laptop as driver

    calls = []
    monkeypatch.setattr(
        driver,
        "run_figure1",
        lambda scale, *, regime, search, first_seeds=None, **kw: (
            calls.append(("figure1", regime, search, first_seeds)) or []
        ),
    )
    monkeypatch.setattr(driver, "summarise_figure1", lambda runs: {})
    monkeypatch.setattr(driver, "format_figure1", lambda summary: "")
    monkeypatch.setattr(
        driver, "figure3_net", lambda variant, scale, seed, *a: calls.append(("figure3", seed))
    )
    monkeypatch.setattr(driver, "figure4_result", lambda *a: calls.append(("figure4",)))
    monkeypatch.setattr(
        driver,
        "run_ledger",
        lambda scale, **kw: calls.append(("ledger", scale, kw.get("experiment", "ledger"))) or [],
    )
    driver.laptop(tmp_path)
    plan = capsys.readouterr().out.splitlines()
    assert plan[0].startswith("The laptop-scale results, in order")
    # each step's time is read from the stored runs' own records
    assert plan[1].startswith("  1. Figure 1") and "min of training in all" in plan[1]
    assert "AMD EPYC" in plan[1] and plan[3].startswith("  3. Figure 4")
    assert calls == [
        ("figure1", "paper", False, 1),
        ("figure1", "today", False, 1),
        ("figure1", "paper", False, None),
        ("figure1", "today", False, None),
        ("figure3", 0),
        ("figure4",),
        ("ledger", "laptop", "ledger"),
        ("figure1", "paper", True, None),
        ("figure1", "today", True, None),
        ("figure3", 1),
        ("figure3", 2),
        ("ledger", "laptop", "ledger-laptop-6b"),  # claim 6b's constant-rate runs, last
    ]
    assert plan[7].startswith("  7. claim 6b at a constant rate")
    # each step names the arithmetic of its stored runs, and warns where this CPU cannot use it
    assert ", in fp32;" in plan[1] and ", in bf16" in plan[7]
    for has_bf16 in (True, False):
        monkeypatch.setattr(driver, "cpu_has_bf16", lambda: has_bf16)
        warned = "this CPU has no bf16 instructions" in driver.laptop_plan()[6]
        assert warned is not has_bf16


def test_a_stored_run_s_arithmetic_from_either_record(tmp_path):
    from alexlib.train import read_stored, run_arithmetic, stored_runs

    # Figure 1's resident runs keep it among their settings; train_run beside them
    bf16 = stored_runs("figure1-cpu-bf16")
    assert len(bf16) == 6 and {run_arithmetic(r) for r in bf16} == {"bf16"}
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text('{"epoch": 1}\n')
    for meta, said in [
        ({"arithmetic": "fp16", "provenance": {"device": "Tesla T4"}}, "fp16"),
        ({"provenance": {"device": "cpu (2 threads)"}}, "fp32"),  # before CPU bf16 existed
        ({"provenance": {"device": "NVIDIA H100"}}, None),  # a GPU's is not guessed
    ]:
        (folder / "settings.json").write_text(json.dumps({"settings": {}, **meta}))
        assert run_arithmetic(read_stored(folder)) == said


def test_shown_images_redraws_a_stored_figure4_from_the_shown_images_alone(
    shared_data, tmp_path, monkeypatch
):
    # a stored result names image positions in its subsets; shown_images decodes only those and
    # points the result at them, so the figures get the very pixels the whole splits would give
    from alexlib.data import load
    from alexlib.figures import figure4_figures

    monkeypatch.setenv("ALEXLIB_CACHE", str(tmp_path / "cache"))
    settings = dict(dataset="imagenette", image_size=72, crop=64, seed=2)
    settings.update(train_per_class=4, val_per_class=2)
    result = {
        "settings": settings,
        "classes": [f"c{i}" for i in range(10)],
        "top5": {"images": [19, 3, 3], "classes": [[0, 1, 2, 3, 4]] * 3},
        "neighbours": {"queries": [5, 19], "fc7": [[39, 0], [8, 8]], "pixels": [[1, 2], [39, 7]]},
    }
    result["top5"].update(probs=[[0.5, 0.2, 0.1, 0.1, 0.1]] * 3, labels=[9, 1, 1])
    shown, train, val = ex.shown_images(result, data_root=shared_data)
    assert (len(train), len(val)) == (6, 3)  # 39, 0, 8, 1, 2, 7 and 19, 3, 5
    kw = dict(root=shared_data, size=72, seed=2, progress=False)
    whole_train = load("imagenette", "train", per_class=4, **kw)
    whole_val = load("imagenette", "val", per_class=2, **kw)
    assert torch.equal(val.images[shown["top5"]["images"]], whole_val.images[[19, 3, 3]])
    n, m = shown["neighbours"], result["neighbours"]
    assert torch.equal(val.images[n["queries"]], whole_val.images[m["queries"]])
    for space in ("fc7", "pixels"):
        got = train.images[torch.tensor(n[space]).flatten()]
        assert torch.equal(got, whole_train.images[torch.tensor(m[space]).flatten()])
    # the rest of the result is kept, and the stored result itself is not changed
    assert shown["top5"]["probs"] == result["top5"]["probs"] and result["top5"]["images"][0] == 19
    left, right = figure4_figures(shown, train, val)  # draws from the small sets
    assert [ax.get_title() for ax in left.axes if ax.get_title()] == ["c9", "c1", "c1"]
