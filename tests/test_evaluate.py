"""Evaluation: top-k errors, ten-view averaging, ensembles, per-class errors, confusion,
features."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from alexlib.augment import DatasetStats, ten_crop
from alexlib.evaluate import (
    confusion_matrix,
    ensemble,
    features,
    per_class_errors,
    predict,
    store_views,
    topk_errors,
)


def test_topk_errors_on_a_hand_made_example():
    probs = torch.tensor(
        [
            [0.1, 0.6, 0.2, 0.05, 0.03, 0.02],  # true 1: top-1 right
            [0.5, 0.1, 0.2, 0.1, 0.06, 0.04],  # true 2: second best -> top-1 wrong, top-5 right
            [0.3, 0.25, 0.2, 0.1, 0.1, 0.05],  # true 5: the least likely -> wrong at top-5 too
            [0.2, 0.2, 0.2, 0.2, 0.15, 0.05],  # true 4: fifth -> top-5 right
        ]
    )
    labels = torch.tensor([1, 2, 5, 4])
    errors = topk_errors(probs, labels)
    assert errors["top1_err"] == pytest.approx(75.0)
    assert errors["top5_err"] == pytest.approx(25.0)
    with pytest.raises(ValueError, match="want scores"):
        topk_errors(probs, labels[:3])


def test_ensemble_is_the_mean_and_checks_shapes():
    a, b = torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([[0.3, 0.7], [0.4, 0.6]])
    torch.testing.assert_close(ensemble([a, b]), torch.tensor([[0.6, 0.4], [0.3, 0.7]]))
    with pytest.raises(ValueError, match="one shape"):
        ensemble([a, torch.zeros(3, 2)])
    with pytest.raises(ValueError, match="at least one"):
        ensemble([])


def test_confusion_and_per_class_errors_agree():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 2])
    probs = nn.functional.one_hot(pred, 4).float()  # class 3 has no images
    matrix = confusion_matrix(probs, labels)
    assert matrix.tolist() == [[1, 1, 0, 0], [0, 2, 1, 0], [0, 0, 1, 0], [0, 0, 0, 0]]
    errors = per_class_errors(probs, labels)
    assert errors[:3].tolist() == pytest.approx([50.0, 100 / 3, 0.0])
    assert math.isnan(errors[3].item())
    diag = matrix.diag().float() / matrix.sum(1).clamp_min(1)
    torch.testing.assert_close(errors[:3], 100 * (1 - diag[:3]))


class ViewRecorder(nn.Module):
    """A 'network' whose class scores are the mean of each input channel: easy to predict by
    hand."""

    def forward(self, x):
        return x.mean(dim=(2, 3))  # (B, 3) scores for 3 classes


def test_ten_views_average_the_softmax_of_each_view():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (5, 3, 12, 12), dtype=torch.uint8, generator=gen)
    stats = DatasetStats(torch.full((3, 12, 12), 100.0), torch.ones(3), torch.eye(3), 5)
    probs = predict(ViewRecorder(), images, stats, views="ten", crop=8, batch_size=2, device="cpu")
    views = ten_crop(images.float() - 100.0, 8)  # (5, 10, 3, 8, 8)
    expected = views.mean(dim=(3, 4)).softmax(dim=2).mean(dim=1)  # softmax per view, then the mean
    torch.testing.assert_close(probs, expected)
    centre = predict(ViewRecorder(), images, stats, views="center", crop=8, device="cpu")
    torch.testing.assert_close(
        centre, (images[:, :, 2:10, 2:10].float() - 100).mean(dim=(2, 3)).softmax(1)
    )
    with pytest.raises(ValueError, match="views"):
        predict(ViewRecorder(), images, stats, views="five", crop=8, device="cpu")


def test_store_views_keeps_both_views_probabilities_and_errors(tmp_path):
    import json
    from types import SimpleNamespace

    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (6, 3, 12, 12), dtype=torch.uint8, generator=gen)
    val = SimpleNamespace(images=images, labels=torch.tensor([0, 1, 2, 0, 1, 2]))
    stats = DatasetStats(torch.full((3, 12, 12), 100.0), torch.ones(3), torch.eye(3), 6)
    views = store_views(tmp_path, ViewRecorder(), val, stats, crop=8, device="cpu", note="x")
    saved = torch.load(tmp_path / "val_probs.pt", weights_only=True)
    assert torch.equal(saved["labels"], val.labels)
    for v in ("center", "ten"):
        expected = predict(ViewRecorder(), images, stats, views=v, crop=8, device="cpu")
        torch.testing.assert_close(saved[v], expected)
        assert views[v] == topk_errors(expected, val.labels)
    record = json.loads((tmp_path / "views.json").read_text())
    assert record["center"] == views["center"] and record["val_images"] == 6
    assert record["note"] == "x" and "torch" in record["provenance"]


def test_features_capture_a_hidden_layer_in_eval_mode():
    net = nn.Sequential(
        nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4)
    )
    images = torch.randint(
        0, 256, (6, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    stats = DatasetStats(torch.zeros(3, 8, 8), torch.ones(3), torch.eye(3), 6)
    f = features(net, images, stats, net[2], crop=8, batch_size=4, device="cpu")
    assert f.shape == (6, 16) and (f >= 0).all()
    # batches of 4 against one batch of 6: the same sums in another order (float32 rounding)
    torch.testing.assert_close(f, net[2](net[1](net[0](images.float()))), rtol=1e-5, atol=1e-4)
    assert net.training  # the mode is restored
