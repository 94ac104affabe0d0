"""alexlib.widgets (driven without a browser) and the static LRN figure it draws."""

import matplotlib
import pytest
import torch
from torch.testing import assert_close

from alexlib import figures, layers, widgets

matplotlib.use("Agg")


@pytest.fixture
def maps():
    gen = torch.Generator().manual_seed(0)
    return 80 * torch.relu(torch.randn(8, 6, 6, generator=gen))  # (C, H, W), conv1-like scale


def test_lrn_explorer_starts_at_paper_constants_and_follows_sliders(maps):
    widget = widgets.lrn_explorer(maps)
    controls = {c.description: c for c in widget.children[:-1]}  # the last child is the output area
    assert set(controls) == {"k", "n (maps)", "alpha", "beta", "convention"}
    assert widget.result["setting"] == dict(size=5, alpha=1e-4, beta=0.75, k=2.0, convention="code")
    assert_close(widget.result["output"], layers.local_response_norm(maps.double().unsqueeze(0))[0])

    controls["k"].value = 1.0
    controls["n (maps)"].value = 3
    controls["convention"].value = "paper"
    expected = layers.local_response_norm(maps.double().unsqueeze(0), 3, 1e-4, 0.75, 1.0, "paper")[
        0
    ]
    assert widget.result["setting"] == dict(
        size=3, alpha=1e-4, beta=0.75, k=1.0, convention="paper"
    )
    assert_close(widget.result["output"], expected)
    positive = maps > 0
    assert_close(
        widget.result["mean_ratio"], float((expected[positive] / maps.double()[positive]).mean())
    )

    controls["beta"].value = 0.0  # beta = 0: the divisor is 1, LRN is the identity
    assert_close(widget.result["output"], maps.double())
    assert widget.result["mean_ratio"] == pytest.approx(1.0)


def test_lrn_explorer_rejects_a_batch(maps):
    with pytest.raises(ValueError, match=r"acts\[0\]"):
        widgets.lrn_explorer(maps.unsqueeze(0))


def test_lrn_settings_figure_draws_the_normalised_map(maps):
    settings = [dict(), dict(convention="paper", k=1.0)]
    fig = figures.lrn_settings(maps, settings, channel=2)
    assert len(fig.axes) == 2 * (len(settings) + 1)
    top_row = fig.axes[: len(settings) + 1]  # axes are laid out row by row
    drawn = torch.as_tensor(top_row[2].images[0].get_array())
    expected = layers.local_response_norm(maps.double().unsqueeze(0), convention="paper", k=1.0)[
        0, 2
    ]
    assert_close(drawn, expected)


def test_pooling_windows_titles_give_the_output_sizes():
    fig = figures.pooling_windows(9, ((2, 2), (3, 2)))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("z=2, s=2 (non-overlapping): 9x9 -> 4x4")
    assert titles[1].startswith("z=3, s=2 (overlapping): 9x9 -> 4x4")
    # the number of windows covering each cell: 4 where two rows and two columns of windows overlap
    cover = torch.as_tensor(fig.axes[1].images[0].get_array())
    assert cover.max() == 4 and cover[2, 2] == 4 and cover[0, 0] == 1
