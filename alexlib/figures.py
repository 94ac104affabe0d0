"""Figures: one function per picture the book draws, each returning a matplotlib ``Figure``.

Chapters call these and let the notebook display the returned figure, so the same picture is drawn
the same way in every chapter and in the tests. Functions take tensors in the library's conventions
(images ``(N, 3, H, W)`` uint8 or float in [0, 1]).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from . import recipe
from .augment import center_crop, pca_colour
from .layers import local_response_norm
from .ledger import CLAIM_NAMES, METRIC_LABELS, LedgerRow, mean_sd, verdict


def _finish(
    fig: plt.Figure, title: str | None = None, *, ax=None, fontsize: int | None = None
) -> plt.Figure:
    """Every figure's last steps: the title (over ``ax`` if given, else over the figure), a tight
    layout, and detaching it from pyplot, so that the notebook shows the returned figure once and
    pyplot keeps no state between cells."""
    if title:
        kw = {} if fontsize is None else {"fontsize": fontsize}
        (ax.set_title if ax is not None else fig.suptitle)(title, **kw)
    fig.tight_layout()
    plt.close(fig)
    return fig


def _to_hwc(image: torch.Tensor):
    """``(3, H, W)`` uint8 or float in [0, 1] -> ``(H, W, 3)`` numpy array that imshow draws as
    is."""
    image = image.detach().cpu()
    if image.dtype != torch.uint8:
        image = image.float().clamp(0, 1)
    return image.permute(1, 2, 0).numpy()


def image_grid(
    images: torch.Tensor,
    titles: list[str] | None = None,
    ncols: int = 8,
    size: float = 1.6,
    suptitle: str | None = None,
) -> plt.Figure:
    """Draw ``images`` ``(N, 3, H, W)`` in a grid with an optional title under each."""
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * size, nrows * (size + 0.25)), squeeze=False
    )
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(
                _to_hwc(images[k]),
                interpolation="nearest" if images.shape[-1] < 64 else "antialiased",
            )
            if titles is not None:
                ax.set_title(titles[k], fontsize=8)
    return _finish(fig, suptitle)


# --------------------------------------------------------------------------------------------
# chapters 1, 3, 4: convolution, local response normalisation, overlapping pooling


def number_grids(
    grids, titles: list[str], suptitle: str | None = None, fmt: str = "{:g}", cell: float = 0.42
) -> plt.Figure:
    """Small 2-D tensors drawn as tables of numbers (zero cells blank), side by side.

    For the chapter-1 worked example: a receptive field, a filter and their elementwise product,
    each ``(H, W)``. Paper: section 3.5.
    """
    fig, axes = plt.subplots(
        1,
        len(grids),
        squeeze=False,
        figsize=(
            sum(g.shape[1] for g in grids) * cell + 0.6 * len(grids),
            max(g.shape[0] for g in grids) * cell + 0.8,
        ),
    )
    for ax, grid, title in zip(axes[0], grids, titles):
        grid = torch.as_tensor(grid).detach().cpu().double()
        ax.imshow(
            grid.numpy(), cmap="Greys", vmin=0, vmax=max(float(grid.abs().max()), 1e-12) * 1.6
        )
        for (r, c), value in zip(
            torch.cartesian_prod(torch.arange(grid.shape[0]), torch.arange(grid.shape[1])).tolist(),
            grid.flatten().tolist(),
        ):
            if value != 0:
                ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=7)
        ax.set_xticks([x - 0.5 for x in range(grid.shape[1] + 1)], minor=True)
        ax.set_yticks([y - 0.5 for y in range(grid.shape[0] + 1)], minor=True)
        ax.grid(which="minor", color="0.75", linewidth=0.5)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        ax.set_title(title, fontsize=9)
    return _finish(fig, suptitle, fontsize=10)


def kernels_and_responses(
    image: torch.Tensor, kernels, responses, names: list[str], size: float = 2.4
) -> plt.Figure:
    """A photo, then one column per kernel: the kernel (top) and its response map (bottom).

    ``image`` (3, H, W) uint8 or float in [0, 1]; ``kernels`` K tensors (C, kH, kW) (a list, so
    sizes may differ; drawn summed over C); ``responses`` K maps (H_out, W_out). Red is positive,
    blue negative. Paper: section 3.5.
    """
    n = len(kernels)
    fig, axes = plt.subplots(
        2,
        n + 1,
        figsize=((n + 1) * size, 2 * size + 0.4),
        squeeze=False,
        gridspec_kw=dict(height_ratios=[1, 1.6]),
    )
    axes[1, 0].imshow(_to_hwc(image))
    axes[1, 0].set_title(f"input {image.shape[-2]}x{image.shape[-1]}", fontsize=9)
    axes[0, 0].axis("off")
    for j in range(n):
        kernel = kernels[j].detach().cpu().float().sum(0)  # (kH, kW)
        lim = float(kernel.abs().max()) or 1.0
        axes[0, j + 1].imshow(kernel.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[0, j + 1].set_title(f"{names[j]} ({kernel.shape[0]}x{kernel.shape[1]})", fontsize=9)
        response = responses[j].detach().cpu().float()
        lim = float(response.abs().max()) or 1.0
        axes[1, j + 1].imshow(response.numpy(), cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[1, j + 1].set_title(f"response {response.shape[0]}x{response.shape[1]}", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return _finish(fig)


def feature_maps(
    maps,
    titles: list[str] | None = None,
    ncols: int = 6,
    size: float = 2.0,
    cmap: str = "magma",
    suptitle: str | None = None,
) -> plt.Figure:
    """Single-channel maps in a grid, each with its own colour scale.

    ``maps``: a tensor (N, H, W) or a list of N tensors (H_i, W_i), so maps of different sizes
    (a map before and after pooling) can sit side by side.
    """
    n = len(maps)
    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(ncols * size, nrows * (size + 0.3)), squeeze=False
    )
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(maps[k].detach().cpu().float().numpy(), cmap=cmap, interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[k], fontsize=8)
    return _finish(fig, suptitle, fontsize=10)


def lrn_effect(
    before: torch.Tensor,
    after: torch.Tensor,
    pixel: tuple[int, int] | None = None,
    label: str = "LRN",
) -> plt.Figure:
    """What local response normalisation does to a stack of maps ``(C, H, W)``, in three panels.

    Left: histograms of the positive activations before and after (log counts). Middle: each
    unit's output/input ratio against its input. Right: the C activations at one pixel (default:
    the strongest) before and after: strong neighbours pull each other down ("lateral
    inhibition"). Paper: section 3.3.
    """
    before, after = before.detach().cpu().double(), after.detach().cpu().double()
    if pixel is None:
        flat = int(before.abs().amax(0).argmax())
        pixel = divmod(flat, before.shape[-1])
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    positive = before > 0
    top = float(before.max())
    bins = torch.linspace(0, top, 60).numpy()
    axes[0].hist(before[positive].numpy(), bins=bins, alpha=0.6, label="before")
    axes[0].hist(after[positive].numpy(), bins=bins, alpha=0.6, label=f"after {label}")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("activation (positive units)")
    axes[0].set_ylabel("units")
    axes[0].legend(fontsize=8)
    axes[0].set_title("distribution", fontsize=10)
    idx = torch.randperm(int(positive.sum()), generator=torch.Generator().manual_seed(0))[:5000]
    axes[1].scatter(
        before[positive][idx].numpy(),
        (after[positive] / before[positive])[idx].numpy(),
        s=2,
        alpha=0.4,
    )
    axes[1].set_xlabel("input activation a")
    axes[1].set_ylabel("b / a (the divisor's inverse)")
    axes[1].set_title("how much each unit is divided", fontsize=10)
    r, c = pixel
    channels = torch.arange(before.shape[0]).numpy()
    axes[2].bar(channels - 0.2, before[:, r, c].numpy(), width=0.4, label="before")
    axes[2].bar(channels + 0.2, after[:, r, c].numpy(), width=0.4, label=f"after {label}")
    axes[2].xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    axes[2].set_xlabel("channel (map)")
    axes[2].set_ylabel("activation")
    axes[2].set_title(f"all maps at pixel ({r}, {c})", fontsize=10)
    axes[2].legend(fontsize=8)
    return _finish(fig)


def lrn_settings(
    x: torch.Tensor, settings: list[dict], channel: int | None = None, size: float = 2.8
) -> plt.Figure:
    """Local response normalisation of maps ``x`` (C, H, W) under several settings, side by side.

    Each ``settings`` entry holds keyword arguments of ``alexlib.layers.local_response_norm``
    (``size``, ``alpha``, ``beta``, ``k``, ``convention``). Top row: one map after normalisation
    (default: the map with the largest activation), all on the input's colour scale so dimming
    shows; bottom row: b against a for every unit, with b = a as a dashed line. Paper: section 3.3.
    """
    x = x.detach().cpu().double()
    if channel is None:
        channel = int(x.flatten(1).amax(1).argmax())
    top = float(x[channel].abs().max()) or 1.0
    n = len(settings) + 1
    fig, axes = plt.subplots(2, n, figsize=(n * size, 2 * size + 0.5), squeeze=False)
    axes[0, 0].imshow(x[channel].numpy(), cmap="magma", vmin=0, vmax=top)
    axes[0, 0].set_title(f"map {channel}, before", fontsize=9)
    sample = torch.randperm(x.numel(), generator=torch.Generator().manual_seed(0))[:4000]
    axes[1, 0].hist(x.flatten()[x.flatten() > 0].numpy(), bins=50, color="0.5")
    axes[1, 0].set_yscale("log")
    axes[1, 0].set_title("activations before", fontsize=9)
    for j, setting in enumerate(settings, start=1):
        y = local_response_norm(x.unsqueeze(0), **setting)[0]
        axes[0, j].imshow(y[channel].numpy(), cmap="magma", vmin=0, vmax=top)
        full = {"size": recipe.LRN_SIZE, "alpha": recipe.LRN_ALPHA, "beta": recipe.LRN_BETA}
        full = {**full, "k": recipe.LRN_K, "convention": "code", **setting}
        axes[0, j].set_title(
            f"n={full['size']}, k={full['k']:g}, alpha={full['alpha']:.0e}\n"
            f"beta={full['beta']:g}, {full['convention']} convention",
            fontsize=8,
        )
        axes[1, j].scatter(x.flatten()[sample].numpy(), y.flatten()[sample].numpy(), s=2, alpha=0.4)
        axes[1, j].plot([0, top], [0, top], "k--", linewidth=0.8)
        axes[1, j].set_xlim(0, top)
        axes[1, j].set_ylim(0, top)
        axes[1, j].set_xlabel("a (before)", fontsize=8)
        axes[1, j].set_ylabel("b (after)", fontsize=8)
    for ax in axes[0]:
        ax.set_xticks([])
        ax.set_yticks([])
    return _finish(fig)


def pooling_windows(
    size: int = 9, configs: tuple[tuple[int, int], ...] = ((2, 2), (3, 2)), cell: float = 0.45
) -> plt.Figure:
    """Pooling windows of kernel z and stride s drawn on a ``size`` x ``size`` grid, one panel each.

    Each cell is shaded by how many windows cover it (2 or 4 where windows overlap); the first
    row of windows is outlined. Paper: section 3.4.
    """
    fig, axes = plt.subplots(
        1,
        len(configs),
        figsize=(len(configs) * (size * cell + 0.8), size * cell + 1.4),
        squeeze=False,
    )
    colours = plt.get_cmap("tab10")
    for ax, (z, s) in zip(axes[0], configs):
        steps = (size - z) // s + 1
        cover = torch.zeros(size, size)
        for i in range(steps):
            for j in range(steps):
                cover[i * s : i * s + z, j * s : j * s + z] += 1
        ax.imshow(cover.numpy(), cmap="Blues", vmin=0, vmax=5)
        for (r, c), value in zip(
            torch.cartesian_prod(torch.arange(size), torch.arange(size)).tolist(),
            cover.flatten().tolist(),
        ):
            ax.text(
                c,
                r,
                f"{value:.0f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if value >= 3 else "0.25",
            )
        for j in range(steps):  # the first row of windows, alternately inset so shared edges show
            inset = 0.08 if j % 2 == 0 else 0.2
            ax.add_patch(
                plt.Rectangle(
                    (j * s - 0.5 + inset, -0.5 + inset),
                    z - 2 * inset,
                    z - 2 * inset,
                    fill=False,
                    edgecolor=colours(j % 10),
                    linewidth=2,
                )
            )
        ax.set_xticks([x - 0.5 for x in range(size + 1)], minor=True)
        ax.set_yticks([y - 0.5 for y in range(size + 1)], minor=True)
        ax.grid(which="minor", color="0.8", linewidth=0.5)
        ax.tick_params(which="both", length=0, labelbottom=False, labelleft=False)
        kind = "overlapping" if z > s else "non-overlapping"
        ax.set_title(f"z={z}, s={s} ({kind}): {size}x{size} -> {steps}x{steps}", fontsize=9)
    fig.suptitle(
        "number in each cell: how many pooling windows cover it; outlined: the first row of "
        "windows",
        fontsize=9,
    )
    return _finish(fig)


# --------------------------------------------------------------------------------------------
# chapter 7: the input pipeline and data augmentation (Paper: sections 2 and 4.1)


def _pixels_to_unit(x: torch.Tensor) -> torch.Tensor:
    """A float image in pixel units ([0, 255]) -> [0, 1] for display (clamped)."""
    return (x.detach().float().cpu() / 255.0).clamp(0, 1)


def preprocess_steps(
    originals: list[torch.Tensor],
    processed: torch.Tensor,
    titles: list[str] | None = None,
    size: float = 2.2,
) -> plt.Figure:
    """Top row: photos ``(3, H_i, W_i)`` uint8 at their own size, the kept central square outlined;
    bottom row: the results ``(N, 3, S, S)`` (shorter side rescaled to S, central S x S crop).

    The photos are drawn on a common pixel scale, so their sizes compare. Paper: section 2.
    """
    n = len(originals)
    biggest = max(max(im.shape[-2:]) for im in originals)
    fig, axes = plt.subplots(2, n, figsize=(n * size, 2 * size + 0.6), squeeze=False)
    s = processed.shape[-1]
    for k, (im, out) in enumerate(zip(originals, processed)):
        h, w = im.shape[-2:]
        ax = axes[0, k]
        ax.imshow(_to_hwc(im), extent=(0, w, h, 0))
        side = min(h, w)  # the square that survives the centre crop, in the photo's own pixels
        ax.add_patch(
            plt.Rectangle(
                ((w - side) / 2, (h - side) / 2),
                side,
                side,
                fill=False,
                edgecolor="yellow",
                linewidth=1.5,
                linestyle="--",
            )
        )
        ax.set_xlim(0, biggest)
        ax.set_ylim(biggest, 0)
        ax.set_title(f"{(titles[k] + ': ') if titles else ''}{w}x{h}", fontsize=8)
        ax.axis("off")
        axes[1, k].imshow(_to_hwc(out))
        axes[1, k].set_title(f"{s}x{s}" + (" (upsampled)" if side < s else ""), fontsize=8)
        axes[1, k].axis("off")
    fig.suptitle(
        f"top: photos at their own size, dashed: the central square kept; bottom: rescaled to "
        f"{s}x{s}",
        fontsize=9,
    )
    return _finish(fig)


def mean_image_panels(
    mean: torch.Tensor, image: torch.Tensor, n_images: int | None = None, size: float = 2.6
) -> plt.Figure:
    """The training set's mean image ``(3, S, S)`` (pixel units), a photo ``(3, S, S)`` uint8, and
    the photo minus the mean (what the network is given), each drawn with its own contrast stretch.

    Paper: section 2 ("subtracting the mean activity over the training set from each pixel").
    """
    mean = mean.detach().float().cpu()
    centred = image.float().cpu() - mean

    def stretch(x):  # full contrast, so the faint structure of an average shows
        return (x - x.min()) / (x.max() - x.min()).clamp_min(1e-6)

    panels = [
        (
            stretch(mean),
            f"mean image{f' of {n_images} photos' if n_images else ''}\n"
            f"(contrast stretched; values {mean.min():.0f}-{mean.max():.0f})",
        ),
        (image, "a photo"),
        (
            stretch(centred),
            f"photo - mean image\n(stretched; values {centred.min():.0f} to {centred.max():.0f})",
        ),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(3 * size, size + 0.7))
    for ax, (x, title) in zip(axes, panels):
        ax.imshow(_to_hwc(x))
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    return _finish(fig)


def crop_positions(
    image: torch.Tensor,
    offsets: torch.Tensor,
    flips: torch.Tensor,
    crops: torch.Tensor,
    ncols: int = 4,
    size: float = 1.7,
) -> plt.Figure:
    """Left: a ``(3, S, S)`` uint8 image with the outline of each random patch (dashed: reflected);
    right: the patches ``(N, 3, c, c)`` themselves, as the network sees them (before the mean is
    taken off).

    ``offsets`` ``(N, 2)`` (top, left) and ``flips`` ``(N,)`` from
    ``alexlib.augment.sample_params``. Paper: section 4.1.
    """
    n, crop = len(crops), crops.shape[-1]
    nrows = math.ceil(n / ncols)
    fig = plt.figure(figsize=(size * (ncols + nrows) + 0.4, size * nrows + 0.5))
    grid = fig.add_gridspec(nrows, ncols + nrows)
    big = fig.add_subplot(grid[:, :nrows])
    big.imshow(_to_hwc(image))
    colours = plt.get_cmap("tab10")
    for k, ((top, left), flip) in enumerate(zip(offsets.tolist(), flips.tolist())):
        big.add_patch(
            plt.Rectangle(
                (left - 0.5, top - 0.5),
                crop,
                crop,
                fill=False,
                edgecolor=colours(k % 10),
                linewidth=1.2,
                linestyle="--" if flip else "-",
            )
        )
    big.set_title(
        f"{image.shape[-1]}x{image.shape[-2]} image, {n} random {crop}x{crop} patches", fontsize=8
    )
    big.axis("off")
    for k in range(n):
        ax = fig.add_subplot(grid[k // ncols, nrows + k % ncols])
        ax.imshow(_to_hwc(crops[k]))
        top, left = offsets[k].tolist()
        ax.set_title(
            f"({top}, {left}){' flipped' if flips[k] else ''}", fontsize=7, color=colours(k % 10)
        )
        ax.axis("off")
    return _finish(fig)


def pca_axes(
    images: torch.Tensor,
    eigvals: torch.Tensor,
    eigvecs: torch.Tensor,
    n_pixels: int = 4000,
    seed: int = 0,
) -> plt.Figure:
    """The principal axes of a set of images' RGB pixel values.

    Left: a random sample of ``n_pixels`` pixels of ``images`` ``(N, 3, H, W)`` uint8, placed by
    their coordinates along the first two eigenvectors and drawn in their own colour. Right: one
    colour strip per axis, the mean colour moved along ``eigvecs[:, i]`` by -2 to +2 standard
    deviations (``sqrt(eigvals[i])``, [0, 1] scale, from ``alexlib.augment.rgb_pca``). Paper:
    section 4.1.
    """
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = images.shape

    def sample(k):  # k random pixels (k, 3) on [0, 1], gathered without copying the whole set
        where = [torch.randint(0, size, (k,), generator=g) for size in (n, h, w)]
        return images[where[0], :, where[1], where[2]].float() / 255.0

    x = sample(n_pixels)  # (n_pixels, 3), drawn
    mean = sample(100_000).mean(dim=0)  # (3,) the mean colour, estimated from a larger sample
    coords = (x - mean) @ eigvecs  # (n_pixels, 3) along p1, p2, p3
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10, 4.2), gridspec_kw={"width_ratios": [1, 1.3]}
    )
    left.set_facecolor("0.85")  # so that white pixels show
    left.scatter(coords[:, 0].numpy(), coords[:, 1].numpy(), c=x.numpy(), s=4)
    left.set_xlabel("along p1 (brightness-like)")
    left.set_ylabel("along p2")
    left.set_aspect("equal")
    left.set_title(f"{n_pixels} random pixels in their own colour", fontsize=9)
    steps = torch.linspace(-2, 2, 65)
    strips = torch.stack(
        [
            (
                mean[None] + steps[:, None] * eigvals[i].clamp_min(0).sqrt() * eigvecs[:, i][None]
            ).clamp(0, 1)
            for i in range(3)
        ]
    )  # (3, 65, 3)
    right.imshow(strips.numpy(), aspect="auto", extent=(-2, 2, 2.5, -0.5))
    right.set_yticks(range(3))
    right.set_yticklabels(
        [
            f"p{i + 1}: "
            f"l={eigvals[i]:.4f}\n({', '.join(f'{v:+.2f}' for v in eigvecs[:, i].tolist())})"
            for i in range(3)
        ],
        fontsize=8,
    )
    right.set_xlabel("standard deviations along the axis (sqrt of the eigenvalue)")
    right.set_title(
        "mean colour moved along each eigenvector (eigenvalues on the [0, 1] scale)", fontsize=9
    )
    return _finish(fig)


def pca_colour_grid(
    image: torch.Tensor,
    eigvecs: torch.Tensor,
    eigvals: torch.Tensor,
    alphas: list[float],
    sqrt_eigvals: bool = False,
    size: float = 1.8,
) -> plt.Figure:
    """One photo ``(3, S, S)`` uint8 shifted along one principal axis at a time: row i sets
    a_i to each value of ``alphas`` (the other two 0). Titles give the shift in grey levels.

    Uses ``alexlib.augment.pca_colour`` (the paper's l_i, or sqrt(l_i) with ``sqrt_eigvals``).
    Paper: section 4.1.
    """
    fig, axes = plt.subplots(
        3, len(alphas), figsize=(len(alphas) * size, 3 * (size + 0.3)), squeeze=False
    )
    x = image.float()[None]  # (1, 3, S, S) pixel units
    for i in range(3):
        for j, a in enumerate(alphas):
            alpha = torch.zeros(1, 3)
            alpha[0, i] = a
            out = pca_colour(x, eigvecs, eigvals, alpha, sqrt_eigvals=sqrt_eigvals)[0]
            shift = (out - x[0])[:, 0, 0]  # the same RGB offset at every pixel
            ax = axes[i, j]
            ax.imshow(_to_hwc(_pixels_to_unit(out)))
            ax.set_title(
                f"a{i + 1}={a:+g}\nRGB {', '.join(f'{v:+.0f}' for v in shift.tolist())}", fontsize=7
            )
            ax.axis("off")
    scale = "sqrt(l)" if sqrt_eigvals else "l (as printed in the paper)"
    fig.suptitle(
        f"adding [p1 p2 p3][a1 s1, a2 s2, a3 s3]^T with s = {scale}; rows: axis 1, 2, 3", fontsize=9
    )
    return _finish(fig)


def augmented_inputs(
    batch: torch.Tensor, titles: list[str] | None = None, ncols: int = 8, size: float = 1.6
) -> plt.Figure:
    """Network inputs ``(N, 3, c, c)`` in pixel units with the mean image subtracted, drawn as
    ``x / 255 + 0.5`` (so zero, the average pixel, is mid-grey). Paper: sections 2 and 4.1."""
    shown = (batch.detach().float().cpu() / 255.0 + 0.5).clamp(0, 1)
    return image_grid(
        shown,
        titles,
        ncols=ncols,
        size=size,
        suptitle="what the network is given: x / 255 + 0.5 (mid-grey = the mean image)",
    )


# ----------------------------------------------------------------------------------------------
# activations, training curves, the layer table, the two towers (chapters 2, 5, 6)


def activation_functions(lo: float = -5.0, hi: float = 5.0) -> plt.Figure:
    """tanh, the logistic sigmoid and ReLU (left) and their derivatives (right), the derivatives
    computed by autograd. Saturating units have derivatives that vanish for large |x|; ReLU's is 1
    for every x > 0. Paper: section 3.1."""
    x = torch.linspace(lo, hi, 801, requires_grad=True)
    funcs = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "ReLU": torch.relu}
    fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, f in funcs.items():
        y = f(x)
        (dy,) = torch.autograd.grad(y.sum(), x)  # elementwise f'(x)
        ax_f.plot(x.detach(), y.detach(), label=name)
        ax_d.plot(x.detach(), dy, label=f"{name}'")
    ax_f.set_title("f(x)")
    ax_d.set_title("f'(x): how much gradient passes through")
    for ax in (ax_f, ax_d):
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_xlabel("x (the unit's input)")
        ax.legend(fontsize=8)
    ax_f.set_ylim(-1.5, 3)
    return _finish(fig)


def epoch_curves(
    histories: dict[str, list[dict]],
    keys: tuple[str, ...] = ("train_err",),
    title: str | None = None,
    ylabel: str = "error (%)",
    hline: tuple[float, str] | None = None,
) -> plt.Figure:
    """One line per run (colour) and metric (line style) against the epoch, from ``fit``
    histories (lists of dicts with an ``epoch`` key). ``hline``: (value, label) for a reference
    level, e.g. ``(25, "25% training error")``. Paper: sections 3.1 and 4.2."""
    styles = ["-", "--", ":", "-."]
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for c, (label, history) in enumerate(histories.items()):
        epochs = [row["epoch"] for row in history]
        for s, key in enumerate(keys):
            ax.plot(
                epochs,
                [row[key] for row in history],
                styles[s % len(styles)],
                color=f"C{c}",
                marker=".",
                label=f"{label}: {key}" if len(keys) > 1 else label,
            )
    if hline is not None:
        ax.axhline(hline[0], color="0.5", lw=0.8, ls="--")
        ax.annotate(
            hline[1],
            (ax.get_xlim()[0], hline[0]),
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=8,
            color="0.4",
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return _finish(fig, title, ax=ax, fontsize=10)


def gradient_norms(
    norms: dict[str, list[float]], title: str | None = None, ylabel: str = "gradient norm"
) -> plt.Figure:
    """Gradient size per layer (log scale), one line per activation; layer 1 is nearest the input.
    ``norms`` maps a label to a list of per-layer gradient norms. Paper: section 3.1."""
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    for label, values in norms.items():
        ax.semilogy(range(1, len(values) + 1), values, marker="o", label=label)
    ax.set_xlabel("layer (1 = nearest the input)")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return _finish(fig, title, ax=ax, fontsize=10)


def layer_costs(rows, title: str | None = None) -> plt.Figure:
    """Three bar charts over the conv and fc layers of a layer summary (rows with ``name``,
    ``kind``, ``params``, ``macs``, ``activation_bytes``, as ``alexlib.model.layer_summary`` makes):
    parameters, multiply-accumulates per image and output activation memory per image.
    Paper: section 3.5 (Figure 2)."""
    rows = [r for r in rows if r.kind in ("Conv2d", "Linear")]
    names = [r.name for r in rows]
    panels = [
        ("parameters (millions)", [r.params / 1e6 for r in rows]),
        ("multiply-accumulates per image (millions)", [r.macs / 1e6 for r in rows]),
        ("output activations per image (KiB, float32)", [r.activation_bytes / 1024 for r in rows]),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (label, values) in zip(axes, panels):
        bars = ax.bar(names, values, color=["C0" if n.startswith("conv") else "C1" for n in names])
        total = sum(values)
        for bar, v in zip(bars, values):
            ax.annotate(
                f"{100 * v / total:.0f}%",
                (bar.get_x() + bar.get_width() / 2, v),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax.set_title(label, fontsize=9)
        ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        ax.margins(y=0.15)
    return _finish(fig, title, fontsize=10)


def variant_costs(table: dict[str, tuple[int, int]], title: str | None = None) -> plt.Figure:
    """Parameters and multiply-accumulates per image of several networks side by side;
    ``table`` maps a name to ``(parameters, macs)``."""
    names = list(table)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, (i, label) in zip(
        axes, [(0, "parameters (millions)"), (1, "multiply-accumulates per image (millions)")]
    ):
        values = [table[n][i] / 1e6 for n in names]
        bars = ax.barh(names, values, color=[f"C{k}" for k in range(len(names))])
        for bar, v in zip(bars, values):
            ax.annotate(
                f"{v:,.1f}",
                (v, bar.get_y() + bar.get_height() / 2),
                va="center",
                fontsize=8,
                xytext=(3, 0),
                textcoords="offset points",
            )
        ax.set_title(label, fontsize=9)
        ax.invert_yaxis()
        ax.margins(x=0.2)
    return _finish(fig, title, fontsize=10)


def two_towers() -> plt.Figure:
    """A schematic of the paper's net on two GPUs: one row of boxes per GPU (tower), arrows for
    the connections. conv2, conv4 and conv5 take input from their own tower only (``groups=2``);
    conv3 and fc6-fc8 take input from both (red arrows cross between the towers).
    Paper: section 3.2 and Figure 2."""
    layers = ["input", "conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8"]
    sizes = [
        "224x224x3",
        "55x55x48",
        "27x27x128",
        "13x13x192",
        "13x13x192",
        "13x13x128",
        "2048",
        "2048",
        "1000",
    ]
    crosses = {"conv1", "conv3", "fc6", "fc7", "fc8"}  # takes input from both towers
    fig, ax = plt.subplots(figsize=(11, 3.6))
    ys = {0: 1.0, 1: 0.0}
    for i, (name, size) in enumerate(zip(layers, sizes)):
        for tower, y in ys.items():
            single = name in ("input", "fc8")  # one box: the image, and the 1000-way output
            if single and tower == 1:
                continue
            yy = 0.5 if single else y
            ax.add_patch(
                plt.Rectangle(
                    (i - 0.32, yy - 0.22),
                    0.64,
                    0.44,
                    fc="0.6" if single else ("C0" if tower == 0 else "C2"),
                    alpha=0.15 if single else 0.25,
                    ec="0.3",
                )
            )
            label = f"{name}\n{size}"
            ax.text(i, yy, label, ha="center", va="center", fontsize=7.5)
        if name == "fc8":
            for sy in ys.values():
                ax.annotate(
                    "",
                    xy=(i - 0.33, 0.5),
                    xytext=(i - 1 + 0.33, sy),
                    arrowprops=dict(arrowstyle="->", color="C3", lw=1.3),
                )
            continue
        if i == 0:
            continue
        for tower, y in ys.items():
            src_ys = [0.5] if i == 1 else ([ys[0], ys[1]] if name in crosses else [y])
            for sy in src_ys:
                cross = sy != y and i > 1
                ax.annotate(
                    "",
                    xy=(i - 0.33, y),
                    xytext=(i - 1 + 0.33, sy),
                    arrowprops=dict(
                        arrowstyle="->", color="C3" if cross else "0.35", lw=1.3 if cross else 1
                    ),
                )
    ax.text(-0.5, 1.0, "GPU 1", ha="right", va="center", fontsize=9, color="C0")
    ax.text(-0.5, 0.0, "GPU 2", ha="right", va="center", fontsize=9, color="C2")
    ax.set_xlim(-1.2, len(layers) - 0.5)
    ax.set_ylim(-0.45, 1.45)
    ax.axis("off")
    ax.set_title(
        "per-GPU shapes; red arrows cross between GPUs (conv3, fc6, fc7, fc8); "
        "conv2, conv4, conv5 stay on their GPU (groups=2)",
        fontsize=9,
    )
    return _finish(fig)


def training_curves(runs: dict[str, list[dict]], title: str | None = None) -> plt.Figure:
    """Loss, top-1/top-5 error and learning rate per epoch of one or more training runs.

    ``runs``: label -> the per-epoch metrics of :func:`alexlib.train.read_metrics` (keys ``epoch``,
    ``train_loss``, ``val_loss``, ``train_top1_err``, ``val_top1_err``, ``val_top5_err``, ``lr``).
    """
    fig, (ax_loss, ax_err, ax_lr) = plt.subplots(1, 3, figsize=(13, 3.6))
    for k, (label, rows) in enumerate(runs.items()):
        colour = f"C{k}"
        epochs = [r["epoch"] for r in rows]
        ax_loss.plot(
            epochs, [r["train_loss"] for r in rows], "-", color=colour, label=f"{label}: train"
        )
        ax_loss.plot(
            epochs, [r["val_loss"] for r in rows], "--", color=colour, label=f"{label}: val"
        )
        ax_err.plot(
            epochs,
            [r["train_top1_err"] for r in rows],
            "-",
            color=colour,
            label=f"{label}: train top-1",
        )
        ax_err.plot(
            epochs,
            [r["val_top1_err"] for r in rows],
            "--",
            color=colour,
            label=f"{label}: val top-1",
        )
        ax_err.plot(
            epochs,
            [r["val_top5_err"] for r in rows],
            ":",
            color=colour,
            label=f"{label}: val top-5",
        )
        ax_lr.step(epochs, [r["lr"] for r in rows], where="post", color=colour, label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_err.set(xlabel="epoch", ylabel="error (%)", title="error", ylim=(0, 100))
    ax_lr.set(xlabel="epoch", ylabel="learning rate", title="learning rate", yscale="log")
    for ax in (ax_loss, ax_err, ax_lr):
        ax.grid(alpha=0.3)
        if len(rows) < 10:
            ax.set_xticks(epochs)
    ax_loss.legend(fontsize=7)
    ax_err.legend(fontsize=7)
    return _finish(fig, title)


def confusion_figure(
    matrix: torch.Tensor, classes: list[str], title: str | None = None
) -> plt.Figure:
    """A confusion matrix ``(C, C)`` (rows: true class, columns: predicted) as a heat map with
    counts, and each class's top-1 error beside it."""
    matrix = matrix.detach().cpu()
    c = len(classes)
    fig, (ax, bar) = plt.subplots(1, 2, figsize=(11, 4.8), gridspec_kw={"width_ratios": [3, 1.2]})
    ax.imshow(matrix.numpy(), cmap="Blues")
    ax.set_xticks(range(c), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(c), classes, fontsize=8)
    ax.set(xlabel="predicted class", ylabel="true class")
    peak = max(1, int(matrix.max()))
    for i in range(c):
        for j in range(c):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    int(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if matrix[i, j] > peak / 2 else "black",
                )
    totals = matrix.sum(dim=1).clamp_min(1)
    errors = 100 * (1 - matrix.diag() / totals)
    bar.barh(range(c), errors.numpy(), color="C3")
    bar.set_yticks(range(c), [])
    bar.invert_yaxis()
    bar.set(xlabel="top-1 error (%)", xlim=(0, 100))
    return _finish(fig, title)


def traffic_per_layer(rows, batch_size: int = 128, title: str | None = None) -> plt.Figure:
    """The activations that cross between the paper's two GPUs, layer by layer: per image (KiB,
    left) and per training step of ``batch_size`` images, forward plus backward (MiB, right).

    ``rows``: ``alexlib.parallel.Transfer`` rows (``layer``, ``bytes`` per image, forward), as
    ``alexlib.parallel.cross_device_traffic`` counts them. Paper: section 3.2."""
    names = [r.layer for r in rows]
    per_image = [r.bytes / 1024 for r in rows]
    per_step = [2 * batch_size * r.bytes / 2**20 for r in rows]  # forward + backward
    colours = [
        "0.6" if n.startswith("lrn") else ("C0" if n.startswith("conv") else "C1") for n in names
    ]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    panels = [
        ("KiB per image, forward", per_image, "{:,.1f}"),
        (f"MiB per step of {batch_size} images, forward + backward", per_step, "{:,.1f}"),
    ]
    for ax, (label, values, fmt) in zip(axes, panels):
        bars = ax.barh(names, values, color=colours)
        for bar, v in zip(bars, values):
            ax.annotate(
                fmt.format(v),
                (v, bar.get_y() + bar.get_height() / 2),
                va="center",
                fontsize=8,
                xytext=(3, 0),
                textcoords="offset points",
            )
        ax.set_title(f"{label} (total {fmt.format(sum(values))})", fontsize=9)
        ax.invert_yaxis()
        ax.margins(x=0.25)
    return _finish(fig, title, fontsize=10)


def parallelism_costs(rows, title: str | None = None) -> plt.Figure:
    """Where data parallelism and model parallelism each win, per conv/fc layer.

    Left: each layer's share of the multiply-accumulates and of the parameters. Right: the bytes one
    training step moves for that layer under data parallelism (all-reduce of its gradients) and
    under the two-tower model parallelism (its activations forward and their gradients backward), on
    a log scale. ``rows``: ``alexlib.parallel.CommRow`` (``name``, ``params``, ``macs``,
    ``data_parallel_bytes``, ``model_parallel_bytes``). Krizhevsky 2014, "One weird trick"."""
    names = [r.name for r in rows]
    x = list(range(len(rows)))
    w = 0.38
    total_macs, total_params = sum(r.macs for r in rows), sum(r.params for r in rows)
    fig, (ax_share, ax_comm) = plt.subplots(1, 2, figsize=(12, 3.6))
    ax_share.bar(
        [i - w / 2 for i in x], [100 * r.macs / total_macs for r in rows], w, label="compute (MACs)"
    )
    ax_share.bar(
        [i + w / 2 for i in x], [100 * r.params / total_params for r in rows], w, label="parameters"
    )
    ax_share.set(ylabel="share of the whole net (%)", title="work vs weights, per layer")
    dp = [r.data_parallel_bytes / 2**20 for r in rows]
    mp = [r.model_parallel_bytes / 2**20 for r in rows]
    ax_comm.bar(
        [i - w / 2 for i in x], dp, w, color="C2", label="data parallel: gradients all-reduced"
    )
    ax_comm.bar(
        [i + w / 2 for i in x], mp, w, color="C3", label="model parallel: activations exchanged"
    )
    ax_comm.set(
        ylabel="MiB per training step", yscale="log", title="communication per step, per layer"
    )
    bottom = ax_comm.get_ylim()[0]
    for i, v in enumerate(mp):
        if v == 0:  # nothing to draw on a log scale: say so
            ax_comm.annotate(
                "none",
                (i + w / 2, bottom),
                ha="center",
                va="bottom",
                fontsize=7,
                color="C3",
                xytext=(0, 2),
                textcoords="offset points",
                rotation=90,
            )
    for ax in (ax_share, ax_comm):
        ax.set_xticks(x, names, fontsize=8)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    return _finish(fig, title, fontsize=10)


# ----------------------------------------------------------------------------------------------
# The paper's figures 1, 3 and 4 (chapters 10-12; the experiments are in alexlib.experiments)


def relu_vs_tanh(
    curves: dict[str, dict[int, list[float]]], threshold: float = 25.0, title: str | None = None
) -> plt.Figure:
    """Figure 1: training error per epoch of the ReLU net (solid) and the tanh net (dashed), one
    line per seed, with the ``threshold`` level marked. ``curves``: activation -> seed -> errors
    (%) after epochs 0, 1, 2, ... (``alexlib.experiments.summarise_figure1(...)["curves"]``).
    Paper: section 3.1, Figure 1."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    styles = {"relu": ("-", "C0", "ReLU"), "tanh": ("--", "C3", "tanh")}
    for activation, by_seed in curves.items():
        ls, colour, name = styles.get(activation, (":", "C2", activation))
        for n, (seed, errors) in enumerate(sorted(by_seed.items())):
            ax.plot(
                range(len(errors)),
                errors,
                ls,
                color=colour,
                lw=1.6 if n == 0 else 0.9,
                alpha=1 if n == 0 else 0.6,
                label=f"{name} ({len(by_seed)} seed{'s' if len(by_seed) > 1 else ''})"
                if n == 0
                else None,
            )
    ax.axhline(threshold, color="0.3", lw=0.8, ls=":")
    ax.annotate(
        f"{threshold:g}% training error",
        (0, threshold),
        textcoords="offset points",
        xytext=(4, 3),
        fontsize=8,
        color="0.3",
    )
    ax.set(xlabel="epochs", ylabel="training error (%)", ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, title, ax=ax, fontsize=10)


def lr_search(
    runs: list[dict],
    chosen: dict[str, float],
    title: str | None = None,
    threshold: float | None = 25.0,
) -> plt.Figure:
    """The learning-rate search of Figure 1: for each activation and each rate tried, the training
    error per epoch (one panel per activation, the chosen rate drawn bold, ``threshold`` the
    dotted line the search races to; None: no line). ``runs``: the ``role == "search"`` runs of
    ``alexlib.experiments.run_figure1``. Paper: section 3.1."""
    activations = [a for a in ("relu", "tanh") if any(r["activation"] == a for r in runs)]
    fig, axes = plt.subplots(
        1, len(activations), figsize=(4.2 * len(activations), 3.4), sharey=True, squeeze=False
    )
    for ax, activation in zip(axes[0], activations):
        mine = sorted(
            (r for r in runs if r["activation"] == activation and r["role"] == "search"),
            key=lambda r: r["lr"],
        )
        for k, r in enumerate(mine):
            errors = [h["train_err"] for h in r["history"]]
            bold = r["lr"] == chosen.get(activation)
            label = (
                f"lr {r['lr']:g}"
                + (" (chosen)" if bold else "")
                + (" diverged" if r["history"][-1]["diverged"] else "")
            )
            ax.plot(range(len(errors)), errors, color=f"C{k}", lw=2.2 if bold else 1.0, label=label)
        if threshold is not None:
            ax.axhline(threshold, color="0.3", lw=0.8, ls=":")
        ax.set(title=activation, xlabel="epochs", ylim=(0, 100))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("training error (%)")
    return _finish(fig, title, fontsize=10)


def _kernel_tiles(kernels: torch.Tensor) -> torch.Tensor:
    """(K, 3, h, w) weights -> (K, 3, h, w) in [0, 1] for display: each kernel scaled by its own
    largest absolute weight around grey 0.5, so zero stays grey and colour is not distorted."""
    k = kernels.detach().float().cpu()
    peak = k.flatten(1).abs().amax(dim=1).clamp_min(1e-12)[:, None, None, None]  # (K, 1, 1, 1)
    return 0.5 + 0.5 * k / peak


def conv1_kernels(
    kernels: torch.Tensor,
    towers: int = 1,
    ncols: int = 16,
    title: str | None = None,
    tower_labels: list[str] | None = None,
    size: float = 0.55,
) -> plt.Figure:
    """Figure 3: conv1 kernels (K, 3, h, w) drawn as RGB tiles, ``ncols`` per row; with ``towers=2``
    the first K/2 (GPU 1) and the last K/2 (GPU 2) are drawn as two separate blocks of rows, as in
    the paper (48 per GPU: three rows of 16 each). Paper: section 6.1, Figure 3."""
    if kernels.dim() != 4 or kernels.shape[1] != 3:
        raise ValueError(
            f"conv1_kernels() wants RGB kernels (K, 3, h, w); got {tuple(kernels.shape)}"
        )
    tiles = _kernel_tiles(kernels)
    blocks = tiles.chunk(towers, dim=0)
    labels = tower_labels or ([f"GPU {t + 1}" for t in range(towers)] if towers > 1 else [None])
    rows = [math.ceil(len(b) / ncols) for b in blocks]
    fig, axes = plt.subplots(
        len(blocks),
        1,
        figsize=(ncols * size, sum(rows) * size + 0.45 * len(blocks) + 0.3),
        squeeze=False,
        gridspec_kw={"height_ratios": rows},
    )
    h, w = kernels.shape[-2:]
    for ax, block, label in zip(axes[:, 0], blocks, labels):
        n_rows = math.ceil(len(block) / ncols)
        # one mosaic per block with a 1-pixel white gutter between kernels
        mosaic = torch.ones(3, n_rows * (h + 1) - 1, ncols * (w + 1) - 1)
        for i, tile in enumerate(block):
            r, c = divmod(i, ncols)
            mosaic[:, r * (h + 1) : r * (h + 1) + h, c * (w + 1) : c * (w + 1) + w] = tile
        ax.imshow(mosaic.permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.axis("off")
        if label:
            ax.set_title(label, fontsize=9, loc="left")
    return _finish(fig, title, fontsize=10)


def colour_scores(scores: dict[str, torch.Tensor], title: str | None = None) -> plt.Figure:
    """The colour-selectivity score of every kernel (``alexlib.experiments.colour_selectivity``),
    one row of dots per group (e.g. "seed 0, GPU 1"), its mean marked with a bar; 2/3 is where
    random kernels sit. Paper: section 6.1, Figure 3."""
    labels = list(scores)
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(labels) + 1.2))
    g = torch.Generator().manual_seed(0)
    for row, label in enumerate(labels):
        s = scores[label].detach().float().cpu()
        jitter = (torch.rand(len(s), generator=g) - 0.5) * 0.35
        ax.scatter(s.numpy(), (row + jitter).numpy(), s=9, color=f"C{row % 10}", alpha=0.75)
        ax.plot([s.mean().item()] * 2, [row - 0.3, row + 0.3], color="k", lw=2)
    ax.axvline(2 / 3, color="0.5", lw=0.8, ls=":")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set(
        xlim=(0, 1),
        ylim=(len(labels) - 0.5, -0.5),
        xlabel="colour selectivity (0: grey, 1: pure colour contrast; dotted: random kernels)",
    )
    ax.grid(axis="x", alpha=0.3)
    return _finish(fig, title, ax=ax, fontsize=10)


def top5_bars(
    images: torch.Tensor,
    top_classes,
    top_probs,
    labels,
    classes: list[str],
    ncols: int = 4,
    title: str | None = None,
) -> plt.Figure:
    """Figure 4 (left): each image with its five most probable classes as horizontal bars; the bar
    of the true class is red, and the true label is written under the image.
    ``images`` (N, 3, H, W); ``top_classes``/``top_probs`` (N, 5); ``labels`` (N,).
    Paper: section 6.1, Figure 4."""
    n = len(images)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(
        2 * nrows,
        ncols,
        figsize=(3.0 * ncols, 4.1 * nrows),
        gridspec_kw={"height_ratios": [2.2, 1.3] * nrows},
        squeeze=False,
    )
    for ax in axes.flat:
        ax.axis("off")
    for i in range(n):
        r, c = divmod(i, ncols)
        ax_img, ax_bar = axes[2 * r, c], axes[2 * r + 1, c]
        ax_img.imshow(_to_hwc(images[i]))
        ax_img.set_title(classes[int(labels[i])], fontsize=9)
        ax_bar.axis("on")
        cls = [int(x) for x in top_classes[i]]
        probs = [float(p) for p in top_probs[i]]
        colours = ["C3" if k == int(labels[i]) else "C0" for k in cls]
        ax_bar.barh(range(len(cls)), probs, color=colours)
        ax_bar.set_yticks(range(len(cls)), [classes[k][:18] for k in cls], fontsize=7)
        ax_bar.set_xlim(0, 1)
        ax_bar.invert_yaxis()
        ax_bar.tick_params(axis="x", labelsize=7)
    return _finish(fig, title, fontsize=10)


def neighbour_rows(
    queries: torch.Tensor,
    neighbours: dict[str, torch.Tensor],
    title: str | None = None,
    size: float = 0.95,
) -> plt.Figure:
    """Figure 4 (right): each query image (first column), then for each retrieval space (e.g.
    "fc7", "pixels") its nearest training images in order. ``queries`` (Q, 3, H, W); ``neighbours``:
    label -> (Q, k, 3, H, W). Paper: section 6.1, Figure 4."""
    spaces = list(neighbours)
    q = len(queries)
    k = neighbours[spaces[0]].shape[1]
    ncols = 1 + len(spaces) * (k + 1) - 1
    fig, axes = plt.subplots(q, ncols, figsize=(ncols * size, q * size + 0.5), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i in range(q):
        axes[i, 0].imshow(_to_hwc(queries[i]))
        col = 1
        for s, space in enumerate(spaces):
            if s > 0:
                col += 1  # an empty column between the spaces
            for j in range(k):
                axes[i, col + j].imshow(_to_hwc(neighbours[space][i, j]))
                if i == 0 and j == 0:
                    axes[i, col + j].set_title(f"nearest in {space} \u2192", fontsize=8, loc="left")
            col += k
    axes[0, 0].set_title("query", fontsize=8)
    return _finish(fig, title, fontsize=10)


# ----------------------------------------------------------------------------------------------
# Figure 4 from its experiment's result, and the ledger's effects


def figure4_figures(result: dict, train, val, title: str = "", crop: int | None = None):
    """The two halves of Figure 4 drawn from :func:`alexlib.experiments.run_figure4`'s (or a stored)
    result and the data it indexes: ``(top-5 figure, neighbours figure)``. ``crop``: the side of
    the centre views shown (default: the result's own crop, 224 unless its settings say else)."""
    if crop is None:
        crop = result.get("settings", {}).get("crop", recipe.CROP)
    t = result["top5"]
    left = top5_bars(
        center_crop(val.images[t["images"]], crop),
        t["classes"],
        t["probs"],
        t["labels"],
        result["classes"],
        title=f"top-5 predictions{title}",
    )
    n = result["neighbours"]
    spaces = {"fc7": torch.tensor(n["fc7"]), "pixels": torch.tensor(n["pixels"])}
    right = neighbour_rows(
        center_crop(val.images[n["queries"]], crop),
        {
            space: center_crop(train.images[idx.flatten()], crop).unflatten(0, idx.shape)
            for space, idx in spaces.items()
        },
        title=f"nearest training images{title}",
    )
    return left, right


def effects_figure(
    rows: Sequence[LedgerRow], title: str | None = None, scale: str = "full"
) -> plt.Figure:
    """A bar chart per measured claim: the mean effect per metric with its 95% interval over the
    seeds (error bar: the ledger's verdict reads it; a ratio's mean and interval are taken on its
    logarithm; claim 9's per-run separation shows its sd), each seed as a dot, and the paper's
    number as a red line where it has one. Returns a matplotlib Figure; with no measured row, a
    figure that says so (``scale``: the rows' scale, for that message)."""
    measured = [r for r in rows if r.measured]
    if not measured:
        fig, ax = plt.subplots(figsize=(7, 1.6))
        ax.axis("off")
        ax.text(
            0.5,
            0.5,
            f"No {scale}-scale result stored yet: no effect to draw.\n"
            f"Unmeasured claims: {', '.join(r.id for r in rows)}",
            ha="center",
            va="center",
            fontsize=11,
        )
        return _finish(fig)
    ncols = min(3, len(measured))
    nrows = math.ceil(len(measured) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, r in zip(axes.flat, measured):
        labels = [METRIC_LABELS.get(m, m) for m in r.values]
        for i, (metric, vals) in enumerate(r.values.items()):
            if metric == "separation" or len(vals) < 2:
                mean, sd = mean_sd(vals)
                err = [[sd or 0.0], [sd or 0.0]]
            else:
                v = verdict(vals, ratio=metric == "ratio")
                mean, err = v.mean, [[v.mean - v.low], [v.high - v.mean]]
            ax.bar(i, mean, yerr=err, capsize=6, color="tab:blue", alpha=0.7)
            ax.plot([i] * len(vals), vals, "o", color="black", markersize=4)
            paper = r.paper_values.get(metric)
            if paper is not None:
                ax.plot(
                    [i - 0.4, i + 0.4],
                    [paper, paper],
                    color="tab:red",
                    linewidth=2,
                    label="paper" if i == 0 else None,
                )
        ax.axhline(1.0 if set(r.values) <= {"ratio"} else 0.0, color="grey", linewidth=0.8)
        ax.set_xticks(range(len(labels)), labels)
        n = len(r.seeds)
        ax.set_title(
            f"claim {r.id}: {CLAIM_NAMES.get(r.id, '')} ({n} seed{'s' if n != 1 else ''})",
            fontsize=10,
        )
        ax.set_ylabel(r.unit, fontsize=8)
        if any(r.paper_values.get(m) is not None for m in r.values):
            ax.legend(fontsize=8, loc="best")
    for ax in list(axes.flat)[len(measured) :]:
        ax.axis("off")
    return _finish(
        fig,
        title
        or "Effect of each claim's feature: ours (bars, 95% interval over seeds, dots) vs the "
        "paper (red)",
    )
