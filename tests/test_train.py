"""alexlib.train and alexlib.engine: top-k on a hand-made example, the SGD rule, overfitting 32
images, determinism, the input convention a trained model carries."""

from types import SimpleNamespace

import pytest
import torch

from alexlib.augment import GPULoader, dataset_stats
from alexlib.config import preset
from alexlib.engine import evaluate, sgd_paper, topk_errors
from alexlib.errors import SettingsError
from alexlib.evaluate import predict
from alexlib.model import build, paper_head
from alexlib.train import History, fit


def _images(n=32, size=32, classes=4, seed=0):
    """n random uint8 images (4x4 blocks of random colour, blown up to size x size) with arbitrary
    labels: there is nothing to learn but the images themselves, so memorising them exercises
    the model and the optimiser alone."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (n, 3, 4, 4), dtype=torch.uint8, generator=g)
    images = blocks.repeat_interleave(size // 4, -1).repeat_interleave(
        size // 4, -2
    )  # (n, 3, size, size)
    labels = torch.arange(n) % classes
    return SimpleNamespace(images=images, labels=labels)


def test_accuracy_hand_made():
    output = torch.tensor(
        [
            [0.1, 0.9, 0.0, 0.0, 0.0, 0.0],  # ranking 1, 0, ...            target 1: top-1 hit
            [0.5, 0.1, 0.4, 0.0, 0.0, 0.0],  # ranking 0, 2, 1, ...         target 2: top-2 hit only
            [
                0.0,
                0.1,
                0.2,
                0.3,
                0.4,
                0.5,
            ],  # ranking 5, 4, 3, 2, 1, 0     target 0: last, a miss for k <= 5
            [
                0.0,
                0.1,
                0.2,
                0.3,
                0.4,
                0.5,
            ],  #                              target 1: 5th, a top-5 hit
        ]
    )
    target = torch.tensor([1, 2, 0, 1])
    assert topk_errors(output, target, ks=(1, 2, 5)) == {
        "top1_err": 75.0,
        "top2_err": 50.0,
        "top5_err": 25.0,
    }
    assert topk_errors(output, target, ks=(6,)) == {"top6_err": 0.0}


def test_accuracy_matches_a_direct_count():
    torch.manual_seed(0)
    output, target = torch.randn(100, 10), torch.randint(0, 10, (100,))
    errors = topk_errors(output, target)
    assert 100 - errors["top1_err"] == pytest.approx(
        (output.argmax(1) == target).float().mean().item() * 100
    )
    rank = (output > output.gather(1, target[:, None])).sum(1)  # how many classes score higher
    assert 100 - errors["top5_err"] == pytest.approx((rank < 5).float().mean().item() * 100)


def test_accuracy_explains_bad_input():
    # top-k with k above the number of classes counts every row as a hit (all classes are in the top
    # k)
    assert topk_errors(torch.randn(2, 3), torch.tensor([0, 1]), ks=(1, 5))["top5_err"] == 0.0
    with pytest.raises(ValueError, match=r"scores \(N, C\) and labels \(N,\)"):
        topk_errors(torch.randn(2, 3), torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="no images"):
        topk_errors(torch.randn(0, 3), torch.tensor([], dtype=torch.long))


def test_sgd_paper_step_is_the_papers_update_rule():
    # v <- 0.9 v - 0.0005 lr w - lr grad;  w <- w + v   (weights); biases: no decay term
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 3)
    w0, b0 = layer.weight.detach().clone(), layer.bias.detach().clone()
    opt = sgd_paper(layer, lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(5, 4)
    vw, vb = torch.zeros_like(w0), torch.zeros_like(b0)
    w, b = w0.clone(), b0.clone()
    for _ in range(3):
        loss = layer(x).pow(2).sum()
        opt.zero_grad()
        loss.backward()
        gw, gb = layer.weight.grad.clone(), layer.bias.grad.clone()
        opt.step()
        vw = 0.9 * vw - 5e-4 * 0.1 * w - 0.1 * gw
        vb = 0.9 * vb - 0.1 * gb
        w, b = w + vw, b + vb
        torch.testing.assert_close(layer.weight.detach(), w)
        torch.testing.assert_close(layer.bias.detach(), b)
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, 5e-4]


def test_loss_falls_when_overfitting_32_images():
    data = _images(32)
    torch.manual_seed(0)
    model = build("cifar4", num_classes=4)
    history = fit(
        model,
        data,
        data,
        epochs=25,
        lr=0.01,
        batch_size=8,
        device="cpu",
        seed=0,
        progress=False,
        weight_decay=0.0,
    )
    losses = history.column("train_loss")
    assert losses[0] > 1.3  # about ln 4 = 1.386: chance
    assert losses[-1] < 0.1 * losses[0]
    assert history[-1]["val_err"] == 0.0  # every one of the 32 images memorised (eval mode)
    assert set(history[0]) == {
        "epoch",
        "train_loss",
        "train_err",
        "val_err",
        "val_top5_err",
        "seconds",
    }


def _run(seed_init, seed_fit, data):
    torch.manual_seed(seed_init)
    model = paper_head((3, 16, 16), num_classes=4, hidden=64, dropout=0.5)
    history = fit(
        model,
        data,
        None,
        epochs=2,
        lr=0.01,
        batch_size=8,
        device="cpu",
        seed=seed_fit,
        progress=False,
        eval_train=True,
    )
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history], model.state_dict()


def test_seeds_make_runs_identical():
    data = _images(32, size=16)
    h1, s1 = _run(0, 0, data)
    h2, s2 = _run(0, 0, data)
    assert h1 == h2
    for key in s1:
        torch.testing.assert_close(s1[key], s2[key], rtol=0, atol=0)
    h3, s3 = _run(0, 1, data)  # another shuffle and other dropout masks
    assert not torch.equal(s1["classifier.0.weight"], s3["classifier.0.weight"])


def test_evaluate_agrees_with_topk_errors():
    data = _images(20, size=16)
    torch.manual_seed(0)
    model = paper_head((3, 16, 16), num_classes=4, hidden=32).eval()
    stats = dataset_stats(data.images, size=16, inputs="standardise", cache=False)
    rates = evaluate(
        model, GPULoader(data.images, data.labels, stats, batch_size=7, crop=16, train=False)
    )
    x = (data.images.float() - stats.mean) / stats.std[:, None, None]
    with torch.no_grad():
        errors = topk_errors(model(x), data.labels, (1, 4))
    assert rates["top1_err"] == pytest.approx(errors["top1_err"])
    assert rates["top5_err"] == pytest.approx(0.0)  # 4 classes: the top 4 always hold the target
    assert errors["top4_err"] == pytest.approx(0.0)
    assert rates["images"] == 20


def test_standardise_inputs_are_channel_statistics():
    images = torch.zeros(2, 3, 2, 2, dtype=torch.uint8)
    images[:, 1] = 255
    images[0, 2] = 255  # channel 2: half 0, half 255
    stats = dataset_stats(images, size=2, inputs="standardise", cache=False)
    torch.testing.assert_close(stats.mean[:, 0, 0], torch.tensor([0.0, 255.0, 127.5]))
    assert stats.std[2].item() == pytest.approx(
        255 * torch.tensor([1.0] * 4 + [0.0] * 4).std().item(), rel=1e-5
    )
    assert stats.inputs == "standardise"
    paper = dataset_stats(images, size=2, cache=False)
    assert paper.inputs == "mean-image" and torch.equal(paper.std, torch.ones(3))


def test_a_trained_model_is_scored_on_its_own_preprocessing():
    data = _images(16, size=16)
    torch.manual_seed(0)
    model = paper_head((3, 16, 16), 4, hidden=16)
    fit(model, data, None, epochs=1, lr=0.01, batch_size=8, device="cpu", seed=0, progress=False)
    assert model.input_stats.inputs == "standardise"
    own = predict(model, data.images, crop=16, device="cpu")  # no stats given: the model's own
    same = predict(model, data.images, model.input_stats, crop=16, device="cpu")
    torch.testing.assert_close(own, same)
    wrong = dataset_stats(data.images, size=16, cache=False)  # the paper's mean-image convention
    with pytest.raises(SettingsError, match="trained on 'standardise' inputs"):
        predict(model, data.images, wrong, crop=16, device="cpu")
    with pytest.raises(SettingsError, match="carries no input statistics"):
        predict(paper_head((3, 16, 16), 4, hidden=16), data.images, crop=16, device="cpu")


def test_augment_hook_is_applied():
    data = _images(16, size=16)
    seen = []

    def flip(batch):
        seen.append(batch.shape)
        return batch.flip(-1)

    torch.manual_seed(0)
    fit(
        paper_head((3, 16, 16), 4, hidden=16),
        data,
        None,
        epochs=1,
        lr=0.01,
        batch_size=8,
        device="cpu",
        seed=0,
        augment=flip,
        progress=False,
    )
    assert seen == [(8, 3, 16, 16), (8, 3, 16, 16)]


def test_fit_explains_bad_input():
    data = _images(8)
    model = build("cifar4", num_classes=4)
    bad = SimpleNamespace(images=data.images.float(), labels=data.labels)
    with pytest.raises(TypeError, match="uint8"):
        fit(model, bad, None, epochs=1, lr=0.01, batch_size=4, device="cpu")
    with pytest.raises(ValueError, match="num_classes=10"):
        fit(
            build("cifar4", num_classes=4),
            SimpleNamespace(images=data.images, labels=data.labels * 3),
            None,
            epochs=1,
            lr=0.01,
            batch_size=4,
            device="cpu",
        )
    with pytest.raises(ValueError, match="lr must be"):
        fit(model, data, None, epochs=1, lr=-1.0, batch_size=4, device="cpu")
    with pytest.raises(TypeError, match=r"\.images and \.labels"):
        fit(model, data.images, None, epochs=1, lr=0.01, batch_size=4, device="cpu")


def test_history_helpers():
    history = History([{"epoch": 1, "val_err": 50.0}, {"epoch": 2, "val_err": 40.0}])
    assert history.column("val_err") == [50.0, 40.0]
    with pytest.raises(KeyError, match="has: epoch, val_err"):
        history.column("top5")
    assert history.table().splitlines()[0].split() == ["epoch", "val_err"]


def test_demo_settings():
    assert preset("relu_vs_tanh", "smoke")["epochs"] >= 1
    with pytest.raises(SettingsError, match="the experiments are"):
        preset("lrn", "smoke")


# ---------------------------------------------------------------- the arithmetic of a step


@pytest.mark.parametrize(
    "requested, device, capability, chosen",
    [
        ("auto", "cuda", (7, 5), "fp16"),  # a T4: no bf16 units
        ("auto", "cuda", (8, 0), "bf16"),  # A100
        ("auto", "cuda", (9, 0), "bf16"),  # H100, H200
        (True, "cuda", (7, 0), "fp16"),  # V100: RunSettings.amp=True means "auto"
        ("fp16", "cuda", (9, 0), "fp16"),
        ("fp32", "cuda", (9, 0), "fp32"),
        (False, "cuda", (9, 0), "fp32"),
        ("auto", "cpu", (0, 0), "fp32"),
        ("bf16", "cpu", (0, 0), "bf16"),  # CPU autocast, asked for by name
        ("bf16", "mps", (0, 0), "fp32"),
    ],
)
def test_the_arithmetic_is_picked_from_the_device(requested, device, capability, chosen):
    from alexlib.engine import choose_precision

    assert choose_precision(requested, device, capability) == chosen


def test_an_unknown_arithmetic_is_a_settings_error():
    from alexlib.engine import choose_precision
    from alexlib.train import RunSettings

    with pytest.raises(SettingsError, match="precision must be one of"):
        choose_precision("fp8", "cuda", (9, 0))
    with pytest.raises(SettingsError, match="precision must be one of"):
        RunSettings(dataset="cifar10", variant="cifar4", precision="half")


def test_fp16_off_cuda_is_refused_in_one_line():
    from alexlib.engine import choose_precision

    with pytest.raises(SettingsError, match="fp16 autocast needs a CUDA GPU; on cpu use"):
        choose_precision("fp16", "cpu", (0, 0))


def test_a_cpu_bf16_step_computes_in_bf16_and_agrees_with_fp32(monkeypatch):
    from alexlib import engine
    from alexlib.engine import train_step
    from alexlib.model import build

    # on a CPU without bf16 instructions the library picks fp32 (the next test); autocast itself
    # still computes in bf16 there (emulated), which is what this step checks on any machine
    monkeypatch.setattr(engine, "cpu_has_bf16", lambda: True)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    losses, outs = {}, {}
    for amp in ("fp32", "bf16"):
        torch.manual_seed(0)
        model = build("cifar4")
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        loss, out = train_step(model, x, y, opt, amp=amp)
        losses[amp], outs[amp] = float(loss), out
    assert outs["fp32"].dtype == torch.float32 and outs["bf16"].dtype == torch.bfloat16
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=2e-2)


@pytest.mark.parametrize("has_bf16", [True, False])
def test_cpu_bf16_is_asked_for_and_falls_back_to_fp32_without_the_instructions(
    has_bf16, monkeypatch
):
    from alexlib import engine
    from alexlib.config import preset

    monkeypatch.setattr(engine, "cpu_has_bf16", lambda: has_bf16)
    if has_bf16:
        assert engine.precision_for(torch.device("cpu"), "bf16") == "bf16"
    else:
        with pytest.warns(UserWarning, match="no bf16 instructions"):
            assert engine.precision_for(torch.device("cpu"), "bf16") == "fp32"
    assert engine.precision_for(torch.device("cpu"), "auto") == "fp32"
    # the laptop runs ask for it; the smoke runs (CI) and the ledger's fp32 seeds do not
    for experiment in ("train", "figure1", "figure3"):
        assert preset(experiment, "laptop")["precision"] == "bf16"
        assert "precision" not in preset(experiment, "smoke")
    assert "precision" not in preset("ledger", "laptop")


def _two_identical_steps(scaler, loss_fn=None):
    from alexlib.engine import train_step

    torch.manual_seed(0)
    model = build("cifar4", num_classes=10)
    optimizer = sgd_paper(model, lr=0.01)
    x, y = torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))
    before = [p.detach().clone() for p in model.parameters()]
    train_step(model, x, y, optimizer, scaler=scaler, loss_fn=loss_fn)
    return before, [p.detach().clone() for p in model.parameters()]


def test_a_scaled_step_updates_the_weights_as_an_unscaled_one():
    """The fp16 path's gradient scaler, on the CPU: scaling the loss by a power of two and the
    gradients back is exact in fp32, so the update is the plain step's, to the bit."""
    from alexlib.engine import grad_scaler

    scaler = grad_scaler("fp16", torch.device("cpu"))
    assert scaler is not None and grad_scaler("bf16", torch.device("cpu")) is None
    _, plain = _two_identical_steps(None)
    _, scaled = _two_identical_steps(scaler)
    assert all(torch.equal(a, b) for a, b in zip(plain, scaled))
    assert scaler.get_scale() == 65536.0  # no overflow: the scale is kept


def test_a_scaled_step_whose_gradients_overflow_is_skipped():
    """What fp16 needs the scaler for: a step with infinite gradients leaves the weights alone and
    halves the scale, instead of writing infinities into the net."""
    import torch.nn.functional as F

    from alexlib.engine import grad_scaler

    scaler = grad_scaler("fp16", torch.device("cpu"))

    def overflowing(out, y):
        return F.cross_entropy(out, y) * torch.tensor(float("inf"))

    before, after = _two_identical_steps(scaler, loss_fn=overflowing)
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert scaler.get_scale() == 32768.0
