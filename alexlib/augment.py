"""The paper's input pipeline: preprocessing, training augmentation and test views.

Paper: section 2 (256 x 256 images, mean subtraction) and section 4.1 (random 224 x 224 crops and
their reflections, PCA colour augmentation, ten test views).

Everything here is a pure function of a batch and explicit random parameters, so that one set of
parameters can be fed to two implementations and their pixels compared:

* the **GPU path** keeps a whole dataset resident on the device as uint8 ``(N, 3, 256, 256)`` and
  augments each batch with tensor ops (:func:`augment_batch`, :class:`GPULoader`);
* the **CPU path** transforms one image at a time in ``DataLoader`` workers with torchvision
  transforms v2 (:class:`TrainTransform`, :func:`cpu_loader`);
* the **streaming path** reads encoded JPEG bytes in workers and decodes whole batches where the
  batch is going (torchcodec's decoder, nvJPEG on CUDA, or on the CPU) (:class:`StreamLoader`).

All three draw their randomness from the same samplers (:func:`sample_params`).

Value scales (read this before changing anything):

* images are uint8 in [0, 255]; the float batches this module returns are in *pixel units*:
  ``pixel - mean_image (+ colour shift)``, roughly in [-128, 128];
* the RGB PCA (:func:`rgb_pca`) is computed on pixels divided by 255, i.e. on the [0, 1] scale.
  Its eigenvectors do not depend on the scale but its eigenvalues do, by a factor 255**2. The paper
  adds ``[p1 p2 p3][a1 l1, a2 l2, a3 l3]^T`` with the *eigenvalues* ``l`` (not their square roots)
  and ``a ~ N(0, 0.1)``; that expression has units of pixel**2, so it only means something on one
  stated scale. We follow the paper as printed on the [0, 1] scale and convert the shift to pixel
  units (times 255). On Imagenette that shifts a typical image by a few grey levels (the ImageNet
  values in many training scripts, 0.2175, 0.0188, 0.0045, are on the same scale). Some
  implementations use ``sqrt(l)`` (a standard deviation, which is scale-free and gives a larger
  shift);
  :func:`pca_colour` offers it as ``sqrt_eigvals=True`` for comparison, but the default is the
  paper's.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torchvision.transforms.v2 import functional as TF

from . import recipe
from ._io import atomic_save
from .data import ImageTensors, cache_dir, decode_jpegs, resize_center_crop
from .errors import SettingsError

# Paper: section 2 and 4.1.
PIXEL_RANGE = 255.0  # uint8 pixels; the PCA is computed on pixels / PIXEL_RANGE

__all__ = [
    "PIXEL_RANGE",
    "to_rgb",
    "preprocess",
    "center_crop",
    "ten_crop",
    "crop_flip",
    "mean_image",
    "rgb_pca",
    "pca_colour",
    "DatasetStats",
    "dataset_stats",
    "AugmentParams",
    "random_crop_params",
    "random_flips",
    "pca_alphas",
    "sample_params",
    "augment_batch",
    "eval_batch",
    "center_params",
    "TrainTransform",
    "EvalTransform",
    "LabelledImages",
    "cpu_loader",
    "GPULoader",
    "JpegBytes",
    "decode_batch",
    "StreamLoader",
]


# ----------------------------------------------------------------------------------- checks


def _check_batch(batch: torch.Tensor, what: str = "batch", channels: int | None = 3) -> None:
    if not isinstance(batch, torch.Tensor):
        raise TypeError(
            f"{what} must be a torch.Tensor of shape (N, 3, H, W), got {type(batch).__name__}"
        )
    if batch.dim() != 4:
        raise ValueError(
            f"{what} must have shape (N, 3, H, W), got {tuple(batch.shape)}; "
            "for one image use image[None] (or image.unsqueeze(0))."
        )
    if channels is not None and batch.shape[1] != channels:
        raise ValueError(
            f"{what} must have {channels} channels in dimension 1, got shape {tuple(batch.shape)}; "
            "images are channels-first (N, C, H, W); use to_rgb() for greyscale."
        )


def _check_crop(size: tuple[int, int], crop: int) -> None:
    h, w = size
    if not (0 < crop <= min(h, w)):
        raise ValueError(
            f"crop={crop} does not fit in images of size {h}x{w}; use a crop between 1 and "
            f"{min(h, w)}."
        )


def _images_of(data) -> torch.Tensor:
    if isinstance(data, ImageTensors):
        return data.images
    if isinstance(data, torch.Tensor):
        return data
    raise TypeError(
        f"expected an ImageTensors or a uint8 tensor (N, 3, H, W), got {type(data).__name__}"
    )


# ----------------------------------------------------------------------------------- preprocessing


def to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Give a greyscale image three channels: ``(1, H, W)`` or ``(N, 1, H, W)`` -> 3 channels.

    RGB input is returned unchanged. CMYK and palette files are converted to RGB when decoded
    (``alexlib.data.decode_image`` and ``decode_jpegs``): a 4-channel tensor is ambiguous
    (RGBA or CMYK?) and is refused. Paper: section 2 (greyscale images get their channel
    replicated).
    """
    c = image.shape[-3] if image.dim() >= 3 else None
    if c == 3:
        return image
    if c == 1:
        # (.., 1, H, W) -> (.., 3, H, W): the grey value in R, G and B
        return image.expand(*image.shape[:-3], 3, *image.shape[-2:]).contiguous()
    raise ValueError(
        f"to_rgb expects (1, H, W) or (3, H, W) images (or a batch of them), got shape "
        f"{tuple(image.shape)}; "
        "decode files with mode RGB (alexlib.data.decode_image does) to turn CMYK or RGBA into RGB."
    )


def preprocess(
    images: torch.Tensor | Sequence[torch.Tensor], size: int = recipe.IMAGE_SIZE
) -> torch.Tensor:
    """Rescale each image so its shorter side is ``size`` and take the central ``size x size``
    patch.

    ``images``: a uint8 batch ``(N, C, H, W)`` or a list of ``(C, H_i, W_i)`` images of any sizes
    (C = 1 or 3). Returns uint8 ``(N, 3, size, size)``. Images of equal size are resized together.
    Paper: section 2 ("rescaled the image such that the shorter side was of length 256, and then
    cropped out the central 256x256 patch").
    """
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            raise ValueError(
                f"preprocess expects a batch (N, C, H, W) or a list of images; got one image "
                f"{tuple(images.shape)}: pass [image] or image[None]."
            )
        _check_batch(images, "images", channels=None)
        return resize_center_crop(to_rgb(images), size)
    images = list(images)
    if not images:
        raise ValueError("preprocess got an empty list of images")
    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8, device=images[0].device)
    by_shape: dict[tuple, list[int]] = {}
    for i, im in enumerate(images):
        if im.dim() != 3:
            raise ValueError(f"image {i} has shape {tuple(im.shape)}; each image must be (C, H, W)")
        by_shape.setdefault(tuple(im.shape), []).append(i)
    for idx in by_shape.values():
        group = torch.stack([images[i] for i in idx])  # (n, C, H, W): one resize call per shape
        out[idx] = resize_center_crop(to_rgb(group), size)
    return out


def center_params(n: int, size: int | tuple[int, int], crop: int, device=None) -> torch.Tensor:
    """The offsets ``(n, 2)`` (top, left) of the central ``crop x crop`` patch: 256 -> 224 gives
    (16, 16)."""
    h, w = (size, size) if isinstance(size, int) else size
    _check_crop((h, w), crop)
    # torchvision's rounding: top = round((H - crop) / 2)
    top, left = int(round((h - crop) / 2.0)), int(round((w - crop) / 2.0))
    return torch.tensor([top, left], device=device).expand(n, 2).clone()


def center_crop(batch: torch.Tensor, crop: int = recipe.CROP) -> torch.Tensor:
    """The central ``crop x crop`` patch of each image: ``(N, C, H, W)`` -> ``(N, C, crop, crop)``.

    Paper: section 4.1 (the single-view test). Same pixels as ``torchvision...center_crop``.
    """
    _check_batch(batch, channels=None)
    _check_crop(batch.shape[-2:], crop)
    top, left = center_params(1, tuple(batch.shape[-2:]), crop)[0].tolist()
    return batch[..., top : top + crop, left : left + crop]


def ten_crop(batch: torch.Tensor, crop: int = recipe.CROP) -> torch.Tensor:
    """The paper's ten test views: ``(N, C, H, W)`` -> ``(N, 10, C, crop, crop)``.

    Views 0-4: top-left, top-right, bottom-left, bottom-right corners and the centre (the order of
    torchvision's ``five_crop``); views 5-9: the horizontal reflections of views 0-4, in the same
    order. (torchvision's ``ten_crop`` instead crops the reflected image, so its view 5 mirrors view
    1.) Paper: section 4.1 ("five 224x224 patches ... as well as their horizontal reflections (hence
    ten patches in all), and averaging the predictions").
    """
    _check_batch(batch, channels=None)
    h, w = batch.shape[-2:]
    _check_crop((h, w), crop)
    top, left = center_params(1, (h, w), crop)[0].tolist()
    corners = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), (top, left)]
    views = [batch[..., y : y + crop, x : x + crop] for y, x in corners]  # 5 x (N, C, crop, crop)
    views += [v.flip(-1) for v in views]
    return torch.stack(views, dim=1)  # (N, 10, C, crop, crop)


# ----------------------------------------------------------------------------------- crops and
# flips


def _check_offsets(offsets: torch.Tensor, size: tuple[int, int], crop: int) -> None:
    h, w = size
    limit = torch.tensor([h - crop, w - crop], device=offsets.device)
    # one reduction, so a GPU batch costs one synchronisation
    if len(offsets) and bool(((offsets < 0) | (offsets > limit)).any()):
        raise ValueError(
            f"offsets must lie in [0, {h - crop}] x [0, {w - crop}] for a {crop} crop of {h}x{w} "
            f"images"
        )


def crop_flip(
    batch: torch.Tensor,
    offsets: torch.Tensor,
    flips: torch.Tensor,
    crop: int = recipe.CROP,
    *,
    method: str = "auto",
    check: bool = True,
) -> torch.Tensor:
    """Cut a ``crop x crop`` patch from each image at its own offset, mirrored where ``flips`` is
    True.

    ``batch``: ``(N, C, H, W)`` any dtype (uint8 stays uint8), any device; ``offsets``: ``(N, 2)``
    integer (top, left); ``flips``: ``(N,)`` bool. Returns ``(N, C, crop, crop)``.
    ``method="gather"``: one indexing kernel for the whole batch, no Python loop (what a GPU wants;
    the result is channels-last in memory); ``"loop"``: one slice copy per image (faster on a CPU);
    ``"auto"``: gather on CUDA, loop elsewhere. Both give the same pixels. ``check=False`` skips
    the range check of the offsets (one GPU synchronisation) for callers that have done it.
    Paper: section 4.1 (random 224x224 patches and their horizontal reflections).
    """
    _check_batch(batch, channels=None)
    n, c, h, w = batch.shape
    _check_crop((h, w), crop)
    offsets = torch.as_tensor(offsets, device=batch.device).long()
    flips = torch.as_tensor(flips, device=batch.device).bool()
    if offsets.shape != (n, 2) or flips.shape != (n,):
        raise ValueError(
            f"for a batch of {n} images, offsets must be ({n}, 2) and flips ({n},); "
            f"got {tuple(offsets.shape)} and {tuple(flips.shape)}"
        )
    if check:
        _check_offsets(offsets, (h, w), crop)
    if method == "auto":
        method = "gather" if batch.is_cuda else "loop"
    if method == "loop":
        out = torch.empty((n, c, crop, crop), dtype=batch.dtype, device=batch.device)
        for i, ((top, left), flip) in enumerate(zip(offsets.tolist(), flips.tolist())):
            patch = batch[i, :, top : top + crop, left : left + crop]  # (C, crop, crop) view
            out[i] = patch.flip(-1) if flip else patch
        return out
    if method != "gather":
        raise ValueError(f"method must be 'auto', 'gather' or 'loop', got {method!r}")
    steps = torch.arange(crop, device=batch.device)  # (crop,)
    rows = offsets[:, :1] + steps  # (N, crop)
    # a reflected patch reads its columns right to left: x = left + crop - 1 - j
    cols = offsets[:, 1:] + torch.where(flips[:, None], crop - 1 - steps, steps)  # (N, crop)
    index = torch.arange(n, device=batch.device)[:, None, None]  # (N, 1, 1)
    # advanced indices around a slice put their broadcast dims first: (N, crop, crop, C)
    patches = batch[index, :, rows[:, :, None], cols[:, None, :]]
    return patches.permute(0, 3, 1, 2)  # (N, C, crop, crop), channels-last in memory


# ----------------------------------------------------------------------------------- statistics


def _chunks(images: torch.Tensor, chunk: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(images), chunk):
        yield images[start : start + chunk]


def mean_image(images, chunk: int = 64) -> torch.Tensor:
    """The per-pixel mean over a set of images: ``(N, 3, H, W)`` uint8 -> float32 ``(3, H, W)``.

    In pixel units ([0, 255] for uint8). Accumulates in float64, ``chunk`` images at a time, so a
    large set never becomes one float tensor. ``images``: a tensor, an ``ImageTensors``, or an
    iterable of ``(n, 3, H, W)`` batches (for sets that do not fit in memory).
    Paper: section 2 ("subtracting the mean activity over the training set from each pixel").
    """
    batches = (
        _chunks(_images_of(images), chunk)
        if isinstance(images, (torch.Tensor, ImageTensors))
        else images
    )
    total, count = None, 0
    for b in batches:
        _check_batch(b, "images")
        s = b.double().sum(dim=0)  # (3, H, W)
        if total is not None and s.shape != total.shape:
            raise ValueError(
                f"all images must have the same size for a mean image; got {tuple(s.shape)} "
                f"after {tuple(total.shape)} (run preprocess() first)"
            )
        total = s if total is None else total + s
        count += len(b)
    if not count:
        raise ValueError("mean_image needs at least one image")
    return (total / count).float()


def rgb_pca(images, chunk: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues and eigenvectors of the 3x3 covariance of RGB pixel values over a set of images.

    Every pixel of every image is one sample of (R, G, B), taken on the **[0, 1] scale** (uint8 /
    255; on the [0, 255] scale the eigenvalues are 255**2 times larger, the vectors the same).
    Returns ``(eigvals (3,), eigvecs (3, 3))``, float32, eigenvalues in decreasing order and
    ``eigvecs[:, i]`` the unit eigenvector of ``eigvals[i]`` (sign: largest component positive).
    ``images`` as in :func:`mean_image`. Paper: section 4.1 ("PCA on the set of RGB pixel values").
    """
    batches = (
        _chunks(_images_of(images), chunk)
        if isinstance(images, (torch.Tensor, ImageTensors))
        else images
    )
    s1 = torch.zeros(3, dtype=torch.float64)
    s2 = torch.zeros(3, 3, dtype=torch.float64)
    count = 0
    for b in batches:
        _check_batch(b, "images")
        x = (
            b.permute(1, 0, 2, 3).reshape(3, -1).double().cpu() / PIXEL_RANGE
        )  # (3, n*H*W) on [0, 1]
        s1 += x.sum(dim=1)
        s2 += x @ x.T
        count += x.shape[1]
    if count < 2:
        raise ValueError("rgb_pca needs at least two pixels")
    mu = s1 / count
    # unbiased covariance: C = (sum x x^T - n mu mu^T) / (n - 1)
    cov = (s2 - count * torch.outer(mu, mu)) / (count - 1)
    eigvals, eigvecs = torch.linalg.eigh(cov)  # ascending
    eigvals, eigvecs = eigvals.flip(0), eigvecs.flip(1)
    signs = torch.sign(eigvecs.gather(0, eigvecs.abs().argmax(dim=0, keepdim=True)))  # (1, 3)
    return eigvals.float(), (eigvecs * signs).float()


def pca_colour(
    batch: torch.Tensor,
    eigvecs: torch.Tensor,
    eigvals: torch.Tensor,
    alphas: torch.Tensor,
    *,
    sqrt_eigvals: bool = False,
    value_range: float = PIXEL_RANGE,
) -> torch.Tensor:
    """Add the paper's PCA colour shift to each image: one RGB offset per image, the same at every
    pixel.

    ``batch``: float ``(N, 3, H, W)`` in pixel units (``value_range`` = 255 for [0, 255] pixels, 1
    for [0, 1]); ``eigvecs`` ``(3, 3)`` (columns) and ``eigvals`` ``(3,)`` from :func:`rgb_pca` ([0,
    1] scale); ``alphas`` ``(N, 3)``. ``sqrt_eigvals=True`` scales by sqrt(l) instead of l (what
    many implementations do; not the paper). Returns a new float tensor; ``alphas = 0`` gives the
    input. Paper: section 4.1.
    """
    _check_batch(batch)
    if not batch.is_floating_point():
        raise TypeError(
            f"pca_colour needs a float batch (the shift is not a whole number), got {batch.dtype}; "
            "convert with batch.float() first."
        )
    alphas = torch.as_tensor(alphas, dtype=batch.dtype, device=batch.device)
    if alphas.shape != (len(batch), 3):
        raise ValueError(
            f"alphas must be ({len(batch)}, 3), one triple per image, got {tuple(alphas.shape)}"
        )
    eigvecs = eigvecs.to(batch.device, batch.dtype)
    scale = eigvals.to(batch.device, batch.dtype)
    if sqrt_eigvals:
        scale = scale.clamp_min(0).sqrt()
    # shift_n = [p1 p2 p3] [a1 l1, a2 l2, a3 l3]^T, on the [0, 1] scale, then in pixel units
    shift = (alphas * scale) @ eigvecs.T * value_range  # (N, 3)
    return batch + shift[:, :, None, None]


# The input conventions a network can be trained with. Each is a DatasetStats: the pipeline
# subtracts ``mean`` (3, S, S) and divides by ``std`` (3,), both in pixel units.
#   "mean-image"   the paper's: pixel - the training set's mean image, in [-128, 128] roughly
#                  (std is 1). What the paper's N(0, 0.01) initialisation expects. Paper: section 2.
#   "standardise"  today's usual: (pixel - channel mean) / channel std, about unit variance. What
#                  PyTorch's default initialisation expects.
INPUTS: tuple[str, ...] = ("mean-image", "standardise")


@dataclass
class DatasetStats:
    """What the pipeline needs to know about a training set, and the input convention a network
    trained on it expects.

    ``mean``: float32 ``(3, S, S)`` in pixel units, subtracted from every image (the mean image,
    or for ``"standardise"`` each channel's mean at every pixel); ``std``: ``(3,)`` in pixel units,
    each channel is divided by it (ones for ``"mean-image"``); ``eigvals`` ``(3,)`` and ``eigvecs``
    ``(3, 3)``: the colour PCA on the [0, 1] scale (see :func:`rgb_pca`); ``n_images``; ``key``:
    the cache key it was stored under; ``inputs``: the convention's name (one of :data:`INPUTS`).
    """

    mean: torch.Tensor
    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    n_images: int
    key: str = ""
    inputs: str = "mean-image"
    std: torch.Tensor | None = None

    def __post_init__(self):
        if self.inputs not in INPUTS:
            raise SettingsError(f"inputs must be one of {', '.join(INPUTS)}; got {self.inputs!r}")
        if self.std is None:
            self.std = torch.ones(3, dtype=self.mean.dtype, device=self.mean.device)

    def to(self, device) -> DatasetStats:
        return DatasetStats(
            self.mean.to(device),
            self.eigvals.to(device),
            self.eigvecs.to(device),
            self.n_images,
            self.key,
            self.inputs,
            self.std.to(device),
        )

    def scale(self, x: torch.Tensor) -> torch.Tensor:
        """Divide mean-subtracted pixels ``x`` (..., 3, H, W) by the channel std (in place where
        the convention has one)."""
        if self.inputs == "mean-image":
            return x
        return x.div_(self.std.to(x.device, x.dtype)[:, None, None])

    def as_inputs(self, inputs: str) -> DatasetStats:
        """The same training set's statistics for the input convention ``inputs``. The channel
        means are the mean image's averages; the channel variances are the diagonal of the RGB
        covariance behind the PCA (all pixels of all images, the same samples)."""
        if inputs == self.inputs:
            return self
        if inputs == "mean-image":
            raise SettingsError(
                "the mean image is not recoverable from channel statistics; "
                "compute dataset_stats(..., inputs='mean-image') instead"
            )
        if inputs not in INPUTS:
            raise SettingsError(f"inputs must be one of {', '.join(INPUTS)}; got {inputs!r}")
        channel_mean = self.mean.mean(dim=(1, 2))  # (3,) pixel units
        cov = self.eigvecs @ torch.diag(self.eigvals) @ self.eigvecs.T  # (3, 3) on [0, 1]
        std = cov.diagonal().clamp_min(1e-12).sqrt() * PIXEL_RANGE  # (3,) pixel units
        mean = channel_mean[:, None, None].expand_as(self.mean).contiguous()  # (3, S, S)
        return DatasetStats(mean, self.eigvals, self.eigvecs, self.n_images, self.key, inputs, std)

    def state_dict(self) -> dict:
        """Plain tensors and values, for a checkpoint (``weights_only`` loading)."""
        return {
            "mean": self.mean.cpu(),
            "eigvals": self.eigvals.cpu(),
            "eigvecs": self.eigvecs.cpu(),
            "n_images": self.n_images,
            "inputs": self.inputs,
            "std": self.std.cpu(),
        }

    @classmethod
    def from_state_dict(cls, state: dict, key: str = "checkpoint") -> DatasetStats:
        # checkpoints written before input conventions were recorded used the paper's
        return cls(
            state["mean"],
            state["eigvals"],
            state["eigvecs"],
            int(state["n_images"]),
            key,
            state.get("inputs", "mean-image"),
            state.get("std"),
        )

    def __repr__(self) -> str:
        ev = ", ".join(f"{v:.4g}" for v in self.eigvals.tolist())
        scale = (
            ""
            if self.inputs == "mean-image"
            else (", channel std [" + ", ".join(f"{v:.1f}" for v in self.std.tolist()) + "]")
        )
        return (
            f"DatasetStats({self.key or 'uncached'}, {self.inputs}: mean "
            f"{tuple(self.mean.shape)}{scale}, RGB eigenvalues [{ev}] on the [0, 1] scale, from "
            f"{self.n_images} images)"
        )


def _stats_key(data, images: torch.Tensor) -> str:
    """A cache key that changes when the images change: names, shape, labels and a sample of the
    pixels."""
    h = hashlib.sha1()
    h.update(str(tuple(images.shape)).encode())
    if isinstance(data, ImageTensors):
        h.update(data.labels.numpy().tobytes())
    step = max(1, len(images) // 64)
    h.update(images[::step].contiguous().cpu().numpy().tobytes())  # up to ~64 whole images
    prefix = (
        f"{data.name}-{data.split}" if isinstance(data, ImageTensors) and data.name else "tensor"
    )
    return f"{prefix}-{len(images)}x{images.shape[-1]}-{h.hexdigest()[:12]}"


def dataset_stats(
    data,
    *,
    size: int = recipe.IMAGE_SIZE,
    cache: bool = True,
    key: str | None = None,
    inputs: str = "mean-image",
) -> DatasetStats:
    """Mean image and RGB PCA of a training set, computed once and cached under
    ``cache_dir()/stats``.

    ``data``: an ``ImageTensors`` or a uint8 tensor ``(N, 3, H, W)``; images not already ``size x
    size`` are preprocessed first (:func:`preprocess`). The cache key is derived from the dataset's
    name, split, shape, labels and a sample of its pixels (or pass ``key``). ``inputs``: the input
    convention (:data:`INPUTS`; see :meth:`DatasetStats.as_inputs`). Paper: sections 2 and 4.1.
    """
    return _mean_and_pca(data, size=size, cache=cache, key=key).as_inputs(inputs)


def _mean_and_pca(data, *, size: int, cache: bool, key: str | None) -> DatasetStats:
    images = _images_of(data)
    _check_batch(images, "images", channels=None)
    if images.dtype != torch.uint8:
        raise TypeError(f"dataset_stats expects uint8 images in [0, 255], got {images.dtype}")
    key = key or _stats_key(data, images)
    path = cache_dir() / "stats" / f"{key}-{size}.pt"
    if cache and path.is_file():
        try:
            saved = torch.load(path, weights_only=True)
            return DatasetStats(
                saved["mean"], saved["eigvals"], saved["eigvecs"], int(saved["n_images"]), key
            )
        except Exception as exc:  # a damaged cache file is recomputed, never trusted
            warnings.warn(f"ignoring unreadable statistics cache {path} ({exc}); computing again")

    def batches() -> Iterator[torch.Tensor]:
        for b in _chunks(images, 64):
            yield b if b.shape[-2:] == (size, size) and b.shape[1] == 3 else preprocess(b, size)

    stats = DatasetStats(mean_image(batches()), *rgb_pca(batches()), n_images=len(images), key=key)
    if cache:
        try:
            atomic_save(
                {
                    "mean": stats.mean,
                    "eigvals": stats.eigvals,
                    "eigvecs": stats.eigvecs,
                    "n_images": stats.n_images,
                },
                path,
            )
        except OSError as exc:
            warnings.warn(
                f"could not write the statistics cache {path} ({exc}); continuing without it"
            )
    return stats


# ----------------------------------------------------------------------------------- random
# parameters


@dataclass
class AugmentParams:
    """The random choices for a batch: ``offsets`` (N, 2) long (top, left), ``flips`` (N,) bool,
    ``alphas`` (N, 3) float. Drawn by :func:`sample_params`; consumed by every path."""

    offsets: torch.Tensor
    flips: torch.Tensor
    alphas: torch.Tensor

    def __len__(self) -> int:
        return len(self.flips)

    def __getitem__(self, i) -> AugmentParams:
        return AugmentParams(self.offsets[i], self.flips[i], self.alphas[i])


def random_crop_params(
    n: int,
    size: int | tuple[int, int],
    crop: int = recipe.CROP,
    generator: torch.Generator | None = None,
    device=None,
) -> torch.Tensor:
    """``n`` uniformly random crop offsets ``(n, 2)`` (top, left), each in ``[0, size - crop]``.

    For 256 -> 224 there are 33 x 33 positions. Paper: section 4.1.
    """
    h, w = (size, size) if isinstance(size, int) else size
    _check_crop((h, w), crop)
    dev = generator.device if generator is not None else device
    top = torch.randint(0, h - crop + 1, (n,), generator=generator, device=dev)
    left = torch.randint(0, w - crop + 1, (n,), generator=generator, device=dev)
    return torch.stack([top, left], dim=1).to(device or dev)  # (n, 2)


def random_flips(
    n: int, generator: torch.Generator | None = None, device=None, p: float = 0.5
) -> torch.Tensor:
    """``n`` coin flips ``(n,)`` bool: True means reflect the image left-right. Paper: section
    4.1."""
    dev = generator.device if generator is not None else device
    return (torch.rand(n, generator=generator, device=dev) < p).to(device or dev)


def pca_alphas(
    n: int, std: float = recipe.PCA_STD, generator: torch.Generator | None = None, device=None
) -> torch.Tensor:
    """``n`` triples ``(n, 3)`` of a_i ~ N(0, std), std = 0.1 in the paper; one per image per use.

    Paper: section 4.1.
    """
    dev = generator.device if generator is not None else device
    return (torch.randn(n, 3, generator=generator, device=dev) * std).to(device or dev)


def sample_params(
    n: int,
    size: int | tuple[int, int] = recipe.IMAGE_SIZE,
    crop: int = recipe.CROP,
    *,
    generator: torch.Generator | None = None,
    device=None,
    flip: bool = True,
    alpha_std: float = recipe.PCA_STD,
) -> AugmentParams:
    """Offsets, flips and PCA alphas for ``n`` images, in that order from one generator.

    ``flip=False`` or ``alpha_std=0`` switch reflections or colour noise off (for ablations).
    ``generator=None`` uses torch's global generator (which a ``DataLoader`` seeds per worker).
    """
    offsets = random_crop_params(n, size, crop, generator, device)
    flips = (
        random_flips(n, generator, device)
        if flip
        else torch.zeros(n, dtype=torch.bool, device=offsets.device)
    )
    alphas = (
        pca_alphas(n, alpha_std, generator, device)
        if alpha_std
        else torch.zeros(n, 3, device=offsets.device)
    )
    return AugmentParams(offsets, flips, alphas)


# ----------------------------------------------------------------------------------- the GPU path


def augment_batch(
    images: torch.Tensor,
    params: AugmentParams,
    stats: DatasetStats,
    crop: int = recipe.CROP,
    *,
    sqrt_eigvals: bool = False,
    dtype: torch.dtype = torch.float32,
    method: str = "auto",
) -> torch.Tensor:
    """The paper's training input for a batch, with tensor ops on the batch's device.

    ``images``: uint8 ``(N, 3, S, S)`` (already preprocessed, S = 256); ``stats.mean`` ``(3, S,
    S)``. Returns ``dtype`` ``(N, 3, crop, crop)`` in pixel units: crop and reflect, subtract the
    mean image (cropped and reflected with the same parameters, so the same pixel loses its own
    mean), add the PCA colour shift. ``method``: see :func:`crop_flip`. Paper: sections 2 and 4.1.
    """
    _check_batch(images, "images")
    if images.shape[-2:] != stats.mean.shape[-2:]:
        raise ValueError(
            f"images are {tuple(images.shape[-2:])} but the mean image is "
            f"{tuple(stats.mean.shape[-2:])}; preprocess() them to the same size first."
        )
    n = len(images)
    offsets, flips = params.offsets.to(images.device), params.flips.to(images.device)
    _check_offsets(offsets, tuple(images.shape[-2:]), crop)
    # x = patch(I) - patch(mean image), both cut and reflected with the same offsets and flips
    x = crop_flip(images, offsets, flips, crop, method=method, check=False).to(
        dtype
    )  # (N, 3, crop, crop)
    mean = stats.mean.to(images.device, dtype)[None].expand(n, -1, -1, -1)  # (N, 3, S, S), no copy
    x -= crop_flip(mean, offsets, flips, crop, method=method, check=False)
    x = pca_colour(
        x, stats.eigvecs, stats.eigvals, params.alphas.to(images.device), sqrt_eigvals=sqrt_eigvals
    )
    return stats.scale(x)  # / channel std under the "standardise" convention


def eval_batch(
    images: torch.Tensor,
    stats: DatasetStats,
    crop: int = recipe.CROP,
    *,
    views: str = "center",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Test views of a batch, mean subtracted: ``views="center"`` -> ``(N, 3, crop, crop)``;
    ``views="ten"`` -> ``(N, 10, 3, crop, crop)`` (see :func:`ten_crop`). Paper: section 4.1."""
    _check_batch(images, "images")
    x = stats.scale(images.to(dtype) - stats.mean.to(images.device, dtype))  # (N, 3, S, S)
    if views == "center":
        return center_crop(x, crop).contiguous()
    if views == "ten":
        return ten_crop(x, crop)
    raise ValueError(f"views must be 'center' or 'ten', got {views!r}")


class GPULoader:
    """Batches from a dataset held on ``device`` as uint8, augmented there; an iterable over epochs.

    ``images``: uint8 ``(N, 3, S, S)`` (or an ``ImageTensors``), moved to ``device`` once;
    ``labels``
    ``(N,)``. Each pass yields ``(x, y)``: ``x`` float ``(B, 3, crop, crop)`` from
    :func:`augment_batch` (``train=True``: shuffled, random crops, flips and colour) or the test
    views (``train=False``: in order; ``views="center"`` or ``"ten"``, then ``x`` is ``(B, 10, 3,
    crop, crop)``). The input convention is ``stats``' (:data:`INPUTS`). Reproducible: the
    permutation and the parameters come from one generator seeded with ``seed``. ``flip=False`` /
    ``alpha_std=0`` switch off reflections / PCA colour noise (ablations). ``transform``: an
    optional function of each uint8 batch ``(B, 3, S, S)`` on the device, applied before the crop
    (an extra augmentation). ``channels_last``: yield 4-D batches in channels-last memory (the
    faster layout for convolutions on a CPU, and on a GPU with tensor cores).
    """

    def __init__(
        self,
        images,
        labels=None,
        stats: DatasetStats | None = None,
        *,
        batch_size: int = 128,
        crop: int = recipe.CROP,
        train: bool = True,
        device=None,
        seed: int = 0,
        drop_last: bool | None = None,
        dtype: torch.dtype = torch.float32,
        sqrt_eigvals: bool = False,
        flip: bool = True,
        alpha_std: float = recipe.PCA_STD,
        views: str = "center",
        transform=None,
        channels_last: bool = False,
    ):
        if labels is None and isinstance(images, ImageTensors):
            labels = images.labels
        images = _images_of(images)
        _check_batch(images, "images")
        if images.dtype != torch.uint8:
            raise TypeError(f"GPULoader keeps images as uint8, got {images.dtype}")
        if labels is None or len(labels) != len(images):
            raise ValueError("GPULoader needs one label per image")
        if stats is None:
            raise ValueError(
                "GPULoader needs the training set's DatasetStats (see dataset_stats())"
            )
        if views not in ("center", "ten"):
            raise ValueError(f"views must be 'center' or 'ten', got {views!r}")
        _check_crop(tuple(images.shape[-2:]), crop)
        self.device = torch.device(device) if device is not None else images.device
        self.images = images.to(self.device)
        self.labels = torch.as_tensor(labels).to(self.device)
        self.stats = stats.to(self.device)
        self.batch_size, self.crop, self.train, self.dtype = batch_size, crop, train, dtype
        self.sqrt_eigvals, self.views, self.transform = sqrt_eigvals, views, transform
        # switches for ablations (no reflections, no colour noise)
        self.flip, self.alpha_std = flip, alpha_std
        self.channels_last = channels_last
        self.drop_last = train if drop_last is None else drop_last
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        n, b = len(self.images), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        order = (
            torch.randperm(n, generator=self.generator, device=self.device)
            if self.train
            else torch.arange(n, device=self.device)
        )
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            batch = self.images[idx]  # (B, 3, S, S) uint8
            if self.transform is not None:
                batch = self.transform(batch)
            if self.train:
                params = sample_params(
                    len(idx),
                    tuple(batch.shape[-2:]),
                    self.crop,
                    generator=self.generator,
                    flip=self.flip,
                    alpha_std=self.alpha_std,
                )
                x = augment_batch(
                    batch,
                    params,
                    self.stats,
                    self.crop,
                    sqrt_eigvals=self.sqrt_eigvals,
                    dtype=self.dtype,
                )
            else:
                x = eval_batch(batch, self.stats, self.crop, views=self.views, dtype=self.dtype)
            if self.channels_last and x.dim() == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]


# ----------------------------------------------------------------------------------- the CPU path


class TrainTransform:
    """Per-image training transform for ``DataLoader`` workers, with torchvision transforms v2.

    ``image``: uint8 ``(3, S, S)`` -> float32 ``(3, crop, crop)`` in pixel units. Call it for a
    random draw, or :meth:`apply` with explicit parameters (``offset`` (2,), ``flip`` bool,
    ``alpha`` (3,)): the same pixels as
    :func:`augment_batch` given the same parameters. Images not S x S are preprocessed first.
    Randomness: inside a ``DataLoader`` worker, torch's global generator (which the loader seeds
    differently in each worker, from its own generator); in the main process, a generator seeded
    with
    ``seed`` (or the global one when ``seed`` is None). Paper: sections 2 and 4.1.
    """

    def __init__(
        self,
        stats: DatasetStats,
        crop: int = recipe.CROP,
        *,
        sqrt_eigvals: bool = False,
        seed: int | None = None,
    ):
        self.stats = stats.to("cpu")
        self.size = stats.mean.shape[-1]
        self.crop, self.sqrt_eigvals = crop, sqrt_eigvals
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    def apply(self, image: torch.Tensor, offset, flip, alpha) -> torch.Tensor:
        if image.shape[-2:] != (self.size, self.size) or image.shape[0] != 3:
            image = resize_center_crop(to_rgb(image), self.size)
        top, left = (int(v) for v in offset)
        x = TF.crop(image, top, left, self.crop, self.crop)  # (3, crop, crop) uint8
        m = TF.crop(
            self.stats.mean, top, left, self.crop, self.crop
        )  # the same pixels of the mean image
        if bool(flip):
            x, m = TF.horizontal_flip(x), TF.horizontal_flip(m)
        x = x.float() - m
        alpha = torch.as_tensor(alpha, dtype=torch.float32).reshape(1, 3)
        x = pca_colour(
            x[None], self.stats.eigvecs, self.stats.eigvals, alpha, sqrt_eigvals=self.sqrt_eigvals
        )
        return self.stats.scale(x)[0]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        # a generator copied into several workers would repeat the same draws in each of them
        in_worker = torch.utils.data.get_worker_info() is not None
        p = sample_params(1, self.size, self.crop, generator=None if in_worker else self.generator)
        return self.apply(image, p.offsets[0], p.flips[0], p.alphas[0])


class EvalTransform:
    """Per-image test transform: uint8 ``(3, S, S)`` -> float ``(3, crop, crop)`` (centre view) or
    ``(10, 3, crop, crop)`` (``views="ten"``), mean subtracted. Paper: section 4.1."""

    def __init__(self, stats: DatasetStats, crop: int = recipe.CROP, views: str = "center"):
        self.stats, self.crop, self.views = stats.to("cpu"), crop, views
        self.size = stats.mean.shape[-1]

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if image.shape[-2:] != (self.size, self.size) or image.shape[0] != 3:
            image = resize_center_crop(to_rgb(image), self.size)
        return eval_batch(image[None], self.stats, self.crop, views=self.views)[0]


class LabelledImages(torch.utils.data.Dataset):
    """``(transform(images[i]), labels[i])`` for a uint8 tensor of images (or an
    ``ImageTensors``)."""

    def __init__(self, images, labels=None, transform=None):
        if labels is None and isinstance(images, ImageTensors):
            labels = images.labels
        self.images, self.labels, self.transform = (
            _images_of(images),
            torch.as_tensor(labels),
            transform,
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        image = self.images[i]
        return (self.transform(image) if self.transform else image), self.labels[i]


def cpu_loader(
    images,
    labels=None,
    stats: DatasetStats | None = None,
    *,
    batch_size: int = 128,
    crop: int = recipe.CROP,
    train: bool = True,
    num_workers: int = 0,
    seed: int = 0,
    drop_last: bool | None = None,
) -> torch.utils.data.DataLoader:
    """A ``DataLoader`` that augments one image at a time on the CPU (:class:`TrainTransform`), in
    ``num_workers`` processes; ``train=False`` gives centre views in order. The shuffle order and
    each worker's random stream are seeded from ``seed``. Paper: sections 2 and 4.1."""
    if stats is None:
        raise ValueError("cpu_loader needs the training set's DatasetStats (see dataset_stats())")
    transform = TrainTransform(stats, crop, seed=seed) if train else EvalTransform(stats, crop)
    dataset = LabelledImages(images, labels, transform)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        num_workers=num_workers,
        drop_last=train if drop_last is None else drop_last,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
    )


# ----------------------------------------------------------------------------------- the streaming
# path


class JpegBytes(torch.utils.data.Dataset):
    """The encoded files of a split, undecoded: item ``i`` is ``(uint8 1-D tensor of the file,
    label)``.

    ``split``: anything with ``len``, ``.labels`` and ``.read_bytes(i)``
    (``alexlib.data.open_split``). Reading bytes is cheap, so a few workers keep a GPU decoder busy.
    """

    def __init__(self, split):
        for need in ("labels", "read_bytes"):
            if not hasattr(split, need):
                raise TypeError(
                    f"JpegBytes needs a split from alexlib.data.open_split (with .{need}), "
                    f"got {type(split).__name__}"
                )
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i):
        data = self.split.read_bytes(i)
        return torch.frombuffer(bytearray(data), dtype=torch.uint8), self.split.labels[i]


def _collate_bytes(items):
    return [b for b, _ in items], torch.stack([torch.as_tensor(y) for _, y in items])


def decode_batch(
    files: Sequence[torch.Tensor], device=None, size: int = recipe.IMAGE_SIZE
) -> torch.Tensor:
    """Decode a list of JPEG files (uint8 1-D tensors) on ``device`` in one call and preprocess
    them.

    Returns uint8 ``(B, 3, size, size)`` on ``device``: RGB (greyscale and CMYK converted by the
    decoder), shorter side rescaled to ``size``, central crop. The decoding is
    :func:`alexlib.data.decode_jpegs` (torchcodec: nvJPEG's batched decode on CUDA, libjpeg-turbo
    on the CPU). Paper: section 2.
    """
    images = decode_jpegs(list(files), device)  # list of (3, H_i, W_i)
    return preprocess(images, size)


class StreamLoader:
    """Training (or test) batches streamed from encoded files: workers read bytes, ``device``
    decodes and augments. For datasets too large to keep decoded on the device (a full ImageNet).

    Yields ``(x, y)`` like :class:`GPULoader`; ``stats`` are the training set's (compute them once,
    e.g. with :func:`dataset_stats` on a subset, or :func:`mean_image`/:func:`rgb_pca` on batches
    from
    :func:`decode_batch`). Tested on the CPU; the CUDA decode is the same call.
    """

    def __init__(
        self,
        split,
        stats: DatasetStats,
        *,
        batch_size: int = 128,
        crop: int = recipe.CROP,
        train: bool = True,
        device=None,
        num_workers: int = 0,
        seed: int = 0,
        sqrt_eigvals: bool = False,
        dtype: torch.dtype = torch.float32,
    ):
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.stats = stats.to(self.device)
        self.size = stats.mean.shape[-1]
        self.crop, self.train, self.dtype, self.sqrt_eigvals = crop, train, dtype, sqrt_eigvals
        self.generator = torch.Generator(device=self.device).manual_seed(seed)
        self.loader = torch.utils.data.DataLoader(
            JpegBytes(split),
            batch_size=batch_size,
            shuffle=train,
            drop_last=train,
            num_workers=num_workers,
            collate_fn=_collate_bytes,
            generator=torch.Generator().manual_seed(seed),
            persistent_workers=num_workers > 0,
        )

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for files, labels in self.loader:
            batch = decode_batch(files, self.device, self.size)  # (B, 3, S, S) uint8 on the device
            if self.train:
                params = sample_params(len(batch), self.size, self.crop, generator=self.generator)
                x = augment_batch(
                    batch,
                    params,
                    self.stats,
                    self.crop,
                    sqrt_eigvals=self.sqrt_eigvals,
                    dtype=self.dtype,
                )
            else:
                x = eval_batch(batch, self.stats, self.crop, dtype=self.dtype)
            yield x, labels.to(self.device)
