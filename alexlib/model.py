"""The AlexNet family: the paper's two-tower net and its relatives, the paper's init, a layer table.

Every variant is an :class:`AlexNet`: a ``features`` block (convolutions), an ``avgpool`` slot and a
``classifier`` block (fully-connected layers), laid out as in torchvision's ``models/alexnet.py``.
Layers are PyTorch's own (``nn.Conv2d``, ``nn.LocalResponseNorm``, ...); the from-scratch versions
used for teaching live in ``alexlib.layers``.

    >>> from alexlib.model import build, format_summary
    >>> net = build("paper")
    >>> print(format_summary(net).splitlines()[-1])
    parameters: 60,965,224

Variants (``VARIANTS``):

``paper``
    The network of the paper's Figure 2 (Paper: section 3.5): the two GPUs' "towers" written as
    grouped convolutions, LRN, overlapping pooling, dropout, the paper's init (section 5).
``paper-code``
    ``paper`` with the departures of the original cuda-convnet code (``layers-145.cfg``) that a
    PyTorch module can express; see :func:`_paper_code`.
``half``
    The paper's one-GPU comparison net (section 3.2, the code's ``layers-145-half.cfg``).
``onegpu2014``
    The one-tower 64-192-384-256-256 net of "One weird trick" (Krizhevsky 2014), layer for layer
    the module torchvision ships as ``torchvision.models.alexnet``: state dicts load both ways.
``bn``
    The "modern" variant of the seed tutorials: batch norm instead of LRN, dropout after pools.
``cifar4``
    A four-layer (three conv + one fc) net for 32x32 CIFAR-10 with a choice of activation, for the
    paper's Figure 1 (section 3.1).
``paper-nolrn``, ``paper-pool2``
    ``paper`` without LRN (section 3.3), and with non-overlapping z=2, s=2 pooling (section 3.4):
    the ablations of the paper-claims ledger (``alexlib.ledger``). ``build("paper", lrn=False)``
    and ``build("paper", pool=(2, 2))`` give the same nets.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import recipe
from .errors import SettingsError, UnknownSettingError

__all__ = [
    "VARIANTS",
    "AlexNet",
    "EdgePad",
    "build",
    "paper_head",
    "paper_init_",
    "cuda_convnet_init_",
    "he_init_",
    "layer_names",
    "get_layer",
    "conv1_towers",
    "tower_activations",
    "LayerRow",
    "layer_summary",
    "format_summary",
    "count_parameters",
    "options",
    "expected_inputs",
    "input_sizes",
    "check_input_size",
]


class EdgePad(nn.Module):
    """cuda-convnet's edge rule for a strided convolution: zero-pad on the right and bottom only.

    cuda-convnet computes a convolution's output width as ``1 + ceil((2p + N - f) / s)`` and reads
    pixels past the image edge as zeros. With ``p = 0`` that is PyTorch's ``1 + floor((N' - f) /
    s)`` on an input padded on the right and bottom to ``N' = f + s * ceil((N - f) / s)``. For conv1
    (``f = 11, s = 4``) a 224 input gets 3 zero columns and rows (-> 227 -> 55); a 227 input gets
    none.

    Paper: section 3.5 (224x224 input); the 2012 code (cuda-convnet) for the 227 it computes.

    Shapes: (B, C, H, W) -> (B, C, H + ph, W + pw) with ``ph = (-(H - f)) mod s``.
    """

    def __init__(self, kernel_size: int, stride: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def pads(self, height: int, width: int) -> tuple[int, int]:
        """The zero rows (bottom) and columns (right) this layer adds to a ``height x width``
        input."""
        f, s = self.kernel_size, self.stride
        if height < f or width < f:
            raise ValueError(
                f"input of {height}x{width} pixels is smaller than the {f}x{f} kernel; "
                f"AlexNet variants need at least {f}x{f} (the paper uses 224x224)"
            )
        # ceil((N - f) / s) * s + f - N extra pixels, i.e. (-(N - f)) mod s
        return (-(height - f)) % s, (-(width - f)) % s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ph, pw = self.pads(x.shape[-2], x.shape[-1])
        if ph == 0 and pw == 0:
            return x
        # F.pad order: (left, right, top, bottom)
        return F.pad(x, (0, pw, 0, ph))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, side='right,bottom'"


class AlexNet(nn.Module):
    """One member of the AlexNet family: ``features`` -> ``avgpool`` -> flatten -> ``classifier``.

    Shapes (``paper``): (B, 3, 224, 224) or (B, 3, 227, 227) -> features (B, 256, 6, 6)
    -> (B, 9216) -> logits (B, num_classes). ``towers`` is 2 for the two-GPU nets, else 1.

    Paper: section 3 (architecture).
    """

    def __init__(
        self,
        features: nn.Sequential,
        classifier: nn.Sequential,
        *,
        avgpool: nn.Module | None = None,
        variant: str = "custom",
        towers: int = 1,
    ):
        super().__init__()
        self.features = features
        # torchvision's slot; nn.Identity (no parameters, no state) where a variant has no such pool
        self.avgpool = avgpool if avgpool is not None else nn.Identity()
        self.classifier = classifier
        self.variant = variant
        self.towers = towers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"{self.variant} expects a float batch of shape (B, 3, H, W); got "
                f"{tuple(x.shape)}. Add a batch dimension with x[None] for a single image."
            )
        if not torch.is_floating_point(x):
            raise TypeError(
                f"{self.variant} expects float input, got {x.dtype}; convert uint8 images with "
                "x.float() / 255 and normalise them first"
            )
        x = self.features(x)  # paper: (B, 256, 6, 6)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)  # (B, 9216)
        return self.classifier(x)  # (B, num_classes)

    def extra_repr(self) -> str:
        return f"variant={self.variant!r}, towers={self.towers}"


# ----------------------------------------------------------------------------------------------
# Building blocks


class TowerLRN(nn.LocalResponseNorm):
    """Local response normalisation within each tower: the maps of a two-tower layer are normalised
    per tower, as each of the paper's GPUs normalised its own maps (in the 2012 code's
    ``layers-145.cfg`` each ``cmrnorm`` layer, ``rnorm1a`` / ``rnorm1b`` and so on, takes one GPU's
    conv output). A single ``nn.LocalResponseNorm`` over all 96 maps would let maps 46-47 of tower
    1 and 48-49 of tower 2 normalise each other. ``towers=1`` is PyTorch's LRN.

    (B, C, H, W) -> (B, C, H, W); each block of C / towers maps is normalised on its own. The
    defaults are the paper's constants (n=5, alpha=1e-4, beta=0.75, k=2), not PyTorch's k=1.
    """

    def __init__(
        self,
        size: int = recipe.LRN_SIZE,
        alpha: float = recipe.LRN_ALPHA,
        beta: float = recipe.LRN_BETA,
        k: float = recipe.LRN_K,
        towers: int = 2,
    ):
        super().__init__(size, alpha, beta, k)
        self.towers = towers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.towers == 1:
            return super().forward(x)
        b, c, h, w = x.shape
        y = super().forward(
            x.reshape(b * self.towers, c // self.towers, h, w)
        )  # (B*towers, C/towers, H, W)
        return y.reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, towers={self.towers}"


def _lrn(towers: int = 1) -> nn.LocalResponseNorm:
    # b = a / (k + (alpha / n) * sum_{n neighbouring maps} a^2)^beta, k=2, n=5, alpha=1e-4,
    # beta=0.75 (the code's alpha/n convention, which is PyTorch's; Paper: section 3.3), within each
    # tower
    if towers > 1:
        return TowerLRN(towers=towers)
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)


def _pool(size: int = recipe.POOL_SIZE, stride: int = recipe.POOL_STRIDE) -> nn.MaxPool2d:
    # overlapping pooling: z = 3, s = 2 (Paper: section 3.4); z = s = 2 is the traditional,
    # non-overlapping pooling the paper compares it with
    return nn.MaxPool2d(kernel_size=size, stride=stride)


def _pooled(n: int, size: int, stride: int) -> int:
    # a max pool's output width without padding: floor((n - z) / s) + 1
    return (n - size) // stride + 1


def _check_pool(pool) -> tuple[int, int]:
    """``pool`` as ``(z, s)`` ints with ``1 <= s <= z``, or a clear error."""
    if (
        not isinstance(pool, (tuple, list))
        or len(pool) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in pool)
    ):
        raise ValueError(
            f"pool must be (size z, stride s), e.g. (3, 2) (the paper) or (2, 2); got {pool!r}"
        )
    z, s = pool
    if not 1 <= s <= z <= 7:
        raise ValueError(
            f"pool (z={z}, s={s}) must have 1 <= s <= z <= 7; the paper compares (3, 2) with (2, 2)"
        )
    return z, s


class PaperDropout(nn.Dropout):
    """Dropout as the paper describes it (section 4.2): while training, each unit is zeroed with
    probability ``p`` and the others pass unchanged; at test time every output is multiplied by
    ``1 - p`` (0.5). ``nn.Dropout`` ("inverted" dropout) instead multiplies the kept units by
    ``1 / (1 - p)`` while training and does nothing at test time.

    Both compute the same function at test time, but not the same training run at the same learning
    rate: with inverted dropout the layer after it sees inputs twice as large, so its weight
    gradient is twice as large and each SGD step moves its outputs by about four times as much. With
    the paper's lr of 0.01, the biases of 1 and 4096 units, that was enough to blow up the logits in
    the first steps and leave the net stuck at chance; the paper's form trains as the paper did.
    Same random numbers as ``nn.Dropout`` (it reuses it), so runs stay reproducible.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            # F.dropout keeps a unit with probability 1 - p and scales it by 1 / (1 - p): undo the
            # scale
            return F.dropout(x, self.p, True, self.inplace) * (1.0 - self.p)  # = x * mask
        return x * (1.0 - self.p)


def _fc_head(
    in_features: int, hidden: int, num_classes: int, p: float, *, paper_order: bool
) -> nn.Sequential:
    """fc6 -> fc7 -> fc8. ``paper_order``: the paper's dropout (:class:`PaperDropout`) on fc6's and
    fc7's outputs (section 4.2); else torchvision's order and ``nn.Dropout``, on the inputs of fc6
    and fc7."""
    if paper_order:
        return nn.Sequential(
            nn.Linear(in_features, hidden),  # fc6
            nn.ReLU(inplace=True),
            PaperDropout(p),
            nn.Linear(hidden, hidden),  # fc7
            nn.ReLU(inplace=True),
            PaperDropout(p),
            nn.Linear(hidden, num_classes),  # fc8
        )
    return nn.Sequential(
        nn.Dropout(p),
        nn.Linear(in_features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(p),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )


@torch.no_grad()
def paper_init_(
    model: nn.Module, *, std: float = recipe.INIT_STD, conv_std: dict[int, float] | None = None
) -> nn.Module:
    """The paper's initialisation, in place: weights ~ N(0, std), biases 1 in conv2, conv4, conv5,
    fc6 and fc7 (so their ReLUs start with positive input), 0 elsewhere.

    ``conv_std`` overrides the std of single conv layers by number, e.g. ``{3: 0.03}``.
    Layers are numbered as in :func:`layer_names` (conv1..conv5, fc6..fc8).

    Paper: section 5.
    """
    conv_std = conv_std or {}
    for name, module in layer_names(model):
        if not isinstance(module, (nn.Conv2d, nn.Linear)):
            continue
        number = int(name[-1])
        s = conv_std.get(number, std) if name.startswith("conv") else std
        nn.init.normal_(module.weight, mean=0.0, std=s)
        if module.bias is not None:
            nn.init.constant_(module.bias, 1.0 if name in recipe.BIAS_ONE else 0.0)
    return model


@torch.no_grad()
def cuda_convnet_init_(
    model: nn.Module, *, std: float = recipe.INIT_STD, first_std: float = 0.0001
) -> nn.Module:
    """The 2012 code's initialisation of its CIFAR-10 nets, in place: weights ~ N(0, ``std``), the
    first conv layer's ~ N(0, ``first_std``), every bias 0 (``initW`` of ``layers-18pct.cfg``:
    0.0001 for conv1, 0.01 for the other conv layers and the fc layer). Sized for the code's inputs,
    0-255 pixels minus the mean image: conv1's outputs start with a standard deviation of a few
    hundredths."""
    first = True
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.normal_(module.weight, mean=0.0, std=first_std if first else std)
            first = False
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def _five_convs(
    widths: tuple[int, int, int, int, int],
    groups: tuple[int, int, int, int, int],
    *,
    norm: str,
    p_features: float = 0.0,
    edge_pad: bool = True,
    conv1_padding: int = 0,
    lrn_before_relu1: bool = False,
    pool: tuple[int, int] = (recipe.POOL_SIZE, recipe.POOL_STRIDE),
) -> nn.Sequential:
    """The five conv layers of the AlexNet family.

    ``norm``: "lrn" (after ReLU of conv1 and conv2), "bn" (BatchNorm after every ReLU, as the seed
    tutorials have it), or "none". ``p_features``: dropout after each pool (the ``bn`` variant).
    ``pool``: (size z, stride s) of the three max pools, (3, 2) in the paper.
    Shapes (paper widths, 224 input): (B,3,224,224) -> pad (B,3,227,227) -> conv1 (B,96,55,55)
    -> pool1 (B,96,27,27) -> conv2 (B,256,27,27) -> pool2 (B,256,13,13) -> conv3 (B,384,13,13)
    -> conv4 (B,384,13,13) -> conv5 (B,256,13,13) -> pool5 (B,256,6,6).
    """
    c1, c2, c3, c4, c5 = widths
    g1, g2, g3, g4, g5 = groups
    towers = g2  # the two-tower nets split conv2 (and conv4, conv5) between the GPUs
    layers: list[nn.Module] = []

    def after_conv(width: int, *, lrn: bool) -> list[nn.Module]:
        block: list[nn.Module] = [nn.ReLU(inplace=True)]
        if norm == "lrn" and lrn:
            block.append(_lrn(towers))
        elif norm == "bn":
            block.append(nn.BatchNorm2d(width))
        return block

    def pool_block() -> list[nn.Module]:
        return [_pool(*pool)] + ([nn.Dropout(p_features)] if p_features > 0 else [])

    if edge_pad:
        layers.append(EdgePad(kernel_size=11, stride=4))
    layers.append(
        nn.Conv2d(3, c1, kernel_size=11, stride=4, padding=conv1_padding, groups=g1)
    )  # (B, 96, 55, 55)
    if lrn_before_relu1:
        # the code's order: conv1 -> LRN on the raw conv output -> pool1 -> ReLU
        layers += [_lrn(towers), _pool(*pool), nn.ReLU(inplace=True)]
    else:
        layers += after_conv(c1, lrn=True) + pool_block()  # (B, 96, 27, 27)
    layers.append(nn.Conv2d(c1, c2, kernel_size=5, padding=2, groups=g2))  # (B, 256, 27, 27)
    layers += after_conv(c2, lrn=True) + pool_block()  # (B, 256, 13, 13)
    layers.append(nn.Conv2d(c2, c3, kernel_size=3, padding=1, groups=g3))  # (B, 384, 13, 13)
    layers += after_conv(c3, lrn=False)
    layers.append(nn.Conv2d(c3, c4, kernel_size=3, padding=1, groups=g4))  # (B, 384, 13, 13)
    layers += after_conv(c4, lrn=False)
    layers.append(nn.Conv2d(c4, c5, kernel_size=3, padding=1, groups=g5))  # (B, 256, 13, 13)
    layers += after_conv(c5, lrn=False) + pool_block()  # (B, 256, 6, 6)
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------------------------
# The variants


def _paper(
    num_classes: int = 1000,
    *,
    dropout: float = recipe.DROPOUT,
    init: bool = True,
    lrn: bool = True,
    pool: tuple[int, int] = (recipe.POOL_SIZE, recipe.POOL_STRIDE),
    input_size: int = 224,
) -> AlexNet:
    """The paper's two-tower AlexNet (Paper: section 3, Figure 2): 60,965,224 parameters.

    The two GPUs are ``groups=2`` convolutions: conv2, conv4 and conv5 see only their own tower's
    maps; conv1 (both towers see the whole image), conv3 and the fc layers connect across. conv1's
    96 kernels are two towers of 48 (output channels 0-47 and 48-95). LRN (k=2, n=5, alpha=1e-4,
    beta=0.75, the code's alpha/n convention; within each tower, :class:`TowerLRN`) after ReLU of
    conv1 and conv2; max pooling 3/2 after
    LRN1, LRN2 and conv5; dropout on the outputs of fc6 and fc7. A 224 input is zero-padded on the
    right and bottom as cuda-convnet does (:class:`EdgePad`); a 227 input passes unpadded.
    ``init=True`` applies :func:`paper_init_`.

    Switches for the paper's ablations (the parameter count does not change):

    - ``lrn=False`` leaves out both LRN layers (Paper: section 3.3, "-1.4% top-1, -1.2% top-5");
    - ``pool=(2, 2)``: non-overlapping pooling z=2, s=2 instead of z=3, s=2 (section 3.4). The
      widths stay 55 -> 27 -> 13 -> 6, because floor((55-2)/2)+1 = 27, floor((27-2)/2)+1 = 13 and
      floor((13-2)/2)+1 = 6: each pool drops the last row and column, which no window covers.
      A pool whose last map is not 6x6 gets torchvision's ``AdaptiveAvgPool2d((6, 6))`` in the
      ``avgpool`` slot, so fc6 always reads 9216 features.

    ``input_size``: the side of the square input the net is built for. The paper's 224 (or 227)
    gives the 60,965,224 parameters above; any other size gets fc6 sized to the map conv5's pool
    leaves (no ``avgpool``): 128 pixels leave 256 x 3 x 3, so fc6 reads 2,304 features (a net
    that a CPU trains in reasonable time; the conv layers are the paper's).
    """
    z, s = _check_pool(pool)
    features = _five_convs(
        recipe.CONV_WIDTHS, recipe.CONV_GROUPS, norm="lrn" if lrn else "none", pool=(z, s)
    )
    if input_size not in (224, 227):
        classifier = _fc_head(
            _flat_width(features, input_size),
            recipe.FC_WIDTH,
            num_classes,
            dropout,
            paper_order=True,
        )
        name = "paper" + ("" if lrn else "-nolrn") + ("" if (z, s) == (3, 2) else f"-pool{z}s{s}")
        model = AlexNet(features, classifier, variant=name.replace("pool2s2", "pool2"), towers=2)
        return paper_init_(model) if init else model
    classifier = _fc_head(256 * 6 * 6, recipe.FC_WIDTH, num_classes, dropout, paper_order=True)
    # conv1 gives 55x55 (224 padded to 227); then three pools with the convs in between keeping the
    # size
    side = _pooled(_pooled(_pooled(55, z, s), z, s), z, s)
    if side < 1:
        raise ValueError(
            f"pool (z={z}, s={s}) shrinks conv1's 55x55 maps to nothing; use (3, 2) or (2, 2)"
        )
    avgpool = None if side == 6 else nn.AdaptiveAvgPool2d((6, 6))
    name = (
        "paper"
        + ("" if lrn else "-nolrn")
        + ("" if (z, s) == (3, 2) else "-pool2" if (z, s) == (2, 2) else f"-pool{z}s{s}")
    )
    model = AlexNet(features, classifier, avgpool=avgpool, variant=name, towers=2)
    return paper_init_(model) if init else model


def _paper_nolrn(
    num_classes: int = 1000,
    *,
    dropout: float = recipe.DROPOUT,
    init: bool = True,
    input_size: int = 224,
) -> AlexNet:
    """``paper`` without its two LRN layers: the ablation of Paper section 3.3 (same 60,965,224
    parameters; LRN has none)."""
    return _paper(num_classes, dropout=dropout, init=init, lrn=False, input_size=input_size)


def _paper_pool2(
    num_classes: int = 1000,
    *,
    dropout: float = recipe.DROPOUT,
    init: bool = True,
    input_size: int = 224,
) -> AlexNet:
    """``paper`` with non-overlapping max pooling z=2, s=2 in place of z=3, s=2: the ablation of
    Paper section 3.4. Same parameters and the same 55 -> 27 -> 13 -> 6 widths (see
    :func:`_paper`)."""
    return _paper(num_classes, dropout=dropout, init=init, pool=(2, 2), input_size=input_size)


def _paper_code(
    num_classes: int = 1000, *, dropout: float = recipe.DROPOUT, init: bool = True
) -> AlexNet:
    """``paper`` with the departures of the original cuda-convnet code (``layers-145.cfg``).

    Modelled:
      - conv1's LRN runs on the pre-ReLU conv output, and the ReLU sits on pool1's output
        (conv1 -> LRN -> pool1 -> ReLU);
      - conv3, conv4 and conv5 are initialised with std 0.03 (the rest with 0.01, biases as in
        the paper).
    Dropout is the paper's form (:class:`PaperDropout`: units dropped while training, every
    output halved at test time), as in ``paper`` and as the code's ``hs1a``/``hs2a`` layers
    (``keep=0.5``) compute it.

    The code also applies conv5's ReLU after pool5 (``pool3a``'s ``neuron=relu``): the same numbers,
    since ReLU and max pooling commute, so it is not written out.

    Not modelled here:
      - the extra same-map 5x5 normalisation on conv2's output, after its cross-map LRN: the
        code's ``cnorm2a``/``cnorm2b`` layers, with ``type=rnorm`` and ``size=5`` in
        ``layers-145.cfg`` and ``scale=0.001``, ``pow=0.75`` in ``layer-params-145.cfg``. (The
        cross-map ``rnorm1*``/``rnorm2*`` layers there get ``scale=0.0001``, ``pow=0.75``,
        ``minDiv=2``: the paper's alpha, beta and k, alpha in the code's alpha / n convention.)
        The code's ``layer.py`` divides ``scale`` by ``size ** 2`` for this layer (by ``size``
        for the cross-map one), so each squared activation in the 5x5 window weighs
        0.001 / 25 = 4e-5. It normalises over a spatial window of one map, for which ``torch.nn``
        has no layer;
      - biases trained at learning rate 0.02 without weight decay: a property of the optimiser,
        not of the module (:func:`alexlib.engine.sgd_paper` already exempts biases from weight
        decay).
    """
    features = _five_convs(
        recipe.CONV_WIDTHS, recipe.CONV_GROUPS, norm="lrn", lrn_before_relu1=True
    )
    classifier = _fc_head(256 * 6 * 6, recipe.FC_WIDTH, num_classes, dropout, paper_order=True)
    model = AlexNet(features, classifier, variant="paper-code", towers=2)
    return paper_init_(model, conv_std={3: 0.03, 4: 0.03, 5: 0.03}) if init else model


def _half(
    num_classes: int = 1000, *, dropout: float = recipe.DROPOUT, init: bool = True
) -> AlexNet:
    """The paper's one-GPU comparison net (Paper: section 3.2; the code's ``layers-145-half.cfg``).

    One tower (no groups) with conv widths 48-128-192-192-256: half the kernels of the two-tower
    net in conv1-conv4. conv5 and the fc layers keep their full size (the paper's footnote: most
    parameters sit in fc6, which takes conv5's output, so the two nets stay about equal in size).
    Otherwise as ``paper``: LRN, overlapping pooling, dropout, edge padding, the paper's init.
    """
    features = _five_convs((48, 128, 192, 192, 256), (1, 1, 1, 1, 1), norm="lrn")
    classifier = _fc_head(256 * 6 * 6, recipe.FC_WIDTH, num_classes, dropout, paper_order=True)
    model = AlexNet(features, classifier, variant="half", towers=1)
    return paper_init_(model) if init else model


def _onegpu2014(
    num_classes: int = 1000, *, dropout: float = recipe.DROPOUT, init: bool = False
) -> AlexNet:
    """The one-tower net of "One weird trick" (Krizhevsky 2014, ``layers-imagenet-1gpu.cfg``) as
    torchvision ships it (``torchvision.models.alexnet``): conv 64-192-384-256-256, no LRN, conv1
    padding 2, an adaptive average pool to 6x6, dropout on the inputs of fc6 and fc7.
    61,100,840 parameters with 1000 classes.

    Module for module the same layout as torchvision's, so ``state_dict``s load in both directions
    (pretrained torchvision weights can be used here). PyTorch's default init unless ``init=True``.
    """
    features = nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),  # (B, 64, 55, 55)
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 64, 27, 27)
        nn.Conv2d(64, 192, kernel_size=5, padding=2),  # (B, 192, 27, 27)
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 192, 13, 13)
        nn.Conv2d(192, 384, kernel_size=3, padding=1),  # (B, 384, 13, 13)
        nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1),  # (B, 256, 13, 13)
        nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1),  # (B, 256, 13, 13)
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),  # (B, 256, 6, 6)
    )
    classifier = _fc_head(256 * 6 * 6, 4096, num_classes, dropout, paper_order=False)
    model = AlexNet(
        features, classifier, avgpool=nn.AdaptiveAvgPool2d((6, 6)), variant="onegpu2014"
    )
    return paper_init_(model) if init else model


def _bn(
    num_classes: int = 1000,
    *,
    dropout: float = recipe.DROPOUT,
    dropout_features: float = 0.25,
    init: bool = False,
) -> AlexNet:
    """The batch-norm AlexNet of the seed tutorials (a Keras ``AlexNet.build`` that circulates in
    blog posts and courses; not in the paper nor in the 2012 code).

    One tower, conv 96-256-384-384-256; BatchNorm after the ReLU of every conv and fc6/fc7 layer,
    where the paper has LRN after conv1 and conv2 only; dropout 0.25 after each of the three pools
    and 0.5 after fc6 and fc7. Unlike the Keras code (``padding="same"``, which gives 57x57 after
    conv1 at 227 input), the geometry is the paper's: 55 -> 27 -> 13 -> 6. PyTorch's default init.
    """
    features = _five_convs(
        (96, 256, 384, 384, 256), (1, 1, 1, 1, 1), norm="bn", p_features=dropout_features
    )
    classifier = nn.Sequential(
        nn.Linear(256 * 6 * 6, 4096),  # fc6
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(4096),
        nn.Dropout(dropout),
        nn.Linear(4096, 4096),  # fc7
        nn.ReLU(inplace=True),
        nn.BatchNorm1d(4096),
        nn.Dropout(dropout),
        nn.Linear(4096, num_classes),  # fc8
    )
    model = AlexNet(features, classifier, variant="bn")
    return paper_init_(model) if init else model


_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": lambda: nn.ReLU(inplace=True),
    "tanh": nn.Tanh,
}


def _cifar4(
    num_classes: int = 10,
    *,
    activation: str = "relu",
    hidden: tuple[int, ...] = (),
    dropout: float = 0.0,
    init: bool | str = False,
    input_size: int = 32,
) -> AlexNet:
    """A four-layer net for 32x32 CIFAR-10 images (Paper: section 3.1, Figure 1).

    The paper does not publish Figure 1's net; this follows the code's ``layers-18pct.cfg``: three
    5x5 conv layers (32, 32, 64 maps, padding 2), each followed by the activation and a 3/2 pool
    (max, then average, average; cuda-convnet's ceil rounding), then one fc layer to the classes.
    It leaves out that config's same-map response normalisation so that the activation
    (``"relu"`` or ``"tanh"``) is the only difference between the two nets of Figure 1. No dropout,
    no regularisation. ``init``: ``False`` keeps PyTorch's default initialisation (sized for
    standardised inputs); ``"code"`` is that config's (:func:`cuda_convnet_init_`, sized for 0-255
    pixels minus the mean); ``True`` is :func:`paper_init_`.

    ``hidden``: optional extra fully-connected ReLU layers before the output, each followed by
    dropout ``dropout`` (fc6/fc7 in miniature, for the dropout chapter); ``()`` for Figure 1.
    ``input_size``: the side of the square input; the first fc layer is sized to the feature map
    it leaves (24 -> 64 x 3 x 3: the 2012 code trained its CIFAR-10 nets on 24x24 crops).

    Shapes: (B,3,32,32) -> conv1 (B,32,32,32) -> pool1 (B,32,16,16) -> conv2 (B,32,16,16)
    -> pool2 (B,32,8,8) -> conv3 (B,64,8,8) -> pool3 (B,64,4,4) -> (B,1024) -> (B,num_classes).
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"cifar4: unknown activation {activation!r}; choose one of {sorted(_ACTIVATIONS)}"
        )
    act = _ACTIVATIONS[activation]
    features = nn.Sequential(
        nn.Conv2d(3, 32, kernel_size=5, padding=2),  # (B, 32, 32, 32)
        act(),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),  # (B, 32, 16, 16)
        nn.Conv2d(32, 32, kernel_size=5, padding=2),  # (B, 32, 16, 16)
        act(),
        nn.AvgPool2d(kernel_size=3, stride=2, ceil_mode=True),  # (B, 32, 8, 8)
        nn.Conv2d(32, 64, kernel_size=5, padding=2),  # (B, 64, 8, 8)
        act(),
        nn.AvgPool2d(kernel_size=3, stride=2, ceil_mode=True),  # (B, 64, 4, 4)
    )
    head: list[nn.Module] = []
    width = _flat_width(features, input_size)  # 64 * 4 * 4 for 32x32 input
    for h in hidden:
        head += [nn.Linear(width, h), act(), nn.Dropout(dropout)]
        width = h
    head.append(nn.Linear(width, num_classes))
    model = AlexNet(features, nn.Sequential(*head), variant="cifar4")
    if init == "code":
        return cuda_convnet_init_(model)
    if init not in (True, False):
        raise SettingsError(f"cifar4: init must be True, False or 'code', got {init!r}")
    return paper_init_(model) if init else model


# The mini net's LRN: the paper's k=2, n=5, beta=0.75, and its alpha=1e-4 restated for inputs
# divided by their standard deviation (about 64 grey levels) instead of 0-255 pixels. A ReLU net is
# positively homogeneous up to its first LRN, so scaling the inputs by 1/64 scales the maps LRN1
# sees by 1/64, and alpha * 64**2 gives the same normalisation as alpha on the paper's scale.
MINI_LRN_ALPHA = 1e-4 * 64**2


@torch.no_grad()
def he_init_(model: nn.Module) -> nn.Module:
    """Kaiming-normal weights (std sqrt(2 / fan_in), sized for ReLUs) and zero biases, in place:
    the initialisation that lets an eight-layer net without normalisation train from its first
    steps on standardised inputs (PyTorch's default shrinks the signal about sixfold in variance
    per layer, and the 2012 code's N(0, 0.01) more, so a net this deep starts stuck at chance)."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def _mini(
    num_classes: int = 10,
    *,
    dropout: float = recipe.DROPOUT,
    lrn: bool = True,
    pool: tuple[int, int] = (recipe.POOL_SIZE, recipe.POOL_STRIDE),
    towers: int = 2,
    input_size: int = 24,
) -> AlexNet:
    """The paper's design at CIFAR-10's size: the network behind the laptop-scale ledger.

    Every feature the paper's ablations switch is here, on 24x24 crops of 32x32 images: five conv
    layers in two towers (conv2, conv4 and conv5 see only their own tower, conv1 and conv3 connect
    across), ReLU, response normalisation within each tower after the first two conv layers,
    overlapping 3/2 max pooling after conv1, conv2 and conv5, and a three-layer fc head with the
    paper's dropout on fc6's and fc7's outputs. Widths: conv 48-48-96-96-64, fc 512-512.

    Departures, each for a 2-core CPU: LRN follows the pool instead of preceding it (as in the
    2012 code's CIFAR-10 nets, ``layers-18pct.cfg``; a quarter of the cost), with
    :data:`MINI_LRN_ALPHA` for standardised inputs; and the weights start from
    :func:`he_init_`.

    Shapes (24 input): (B,3,24,24) -> conv1 5x5 (B,48,24,24) -> pool1 (B,48,12,12) -> conv2 5x5
    (B,48,12,12) -> pool2 (B,48,6,6) -> conv3..conv5 3x3 (B,96|96|64,6,6) -> pool5 (B,64,3,3)
    -> fc6 (B,512) -> fc7 (B,512) -> fc8 (B,num_classes). The pools round up (as cuda-convnet's
    do), so z=3 and z=2 leave the same map sizes and the same parameter count.

    Switches: ``lrn=False``; ``pool=(2, 2)`` (non-overlapping); ``towers=1`` is the paper's
    one-tower comparison, with half the kernels in conv1-conv4 and conv5 as wide as before
    (24-24-48-48-64), as the paper's half net keeps its conv5 and fc layers.
    """
    z, st = _check_pool(pool)
    if towers not in (1, 2):
        raise SettingsError(f"mini: towers must be 1 or 2, got {towers!r}")
    widths = (48, 48, 96, 96, 64) if towers == 2 else (24, 24, 48, 48, 64)
    g = towers
    c1, c2, c3, c4, c5 = widths

    def norm() -> list[nn.Module]:
        if not lrn:
            return []
        return [TowerLRN(size=5, alpha=MINI_LRN_ALPHA, beta=0.75, k=2.0, towers=towers)]

    def down() -> nn.Module:
        return nn.MaxPool2d(kernel_size=z, stride=st, ceil_mode=True)

    features = nn.Sequential(
        nn.Conv2d(3, c1, kernel_size=5, padding=2),  # conv1 (B, 48, 24, 24)
        nn.ReLU(inplace=True),
        down(),  # (B, 48, 12, 12)
        *norm(),
        nn.Conv2d(c1, c2, kernel_size=5, padding=2, groups=g),  # conv2
        nn.ReLU(inplace=True),
        down(),  # (B, 48, 6, 6)
        *norm(),
        nn.Conv2d(c2, c3, kernel_size=3, padding=1),  # conv3: across the towers
        nn.ReLU(inplace=True),
        nn.Conv2d(c3, c4, kernel_size=3, padding=1, groups=g),  # conv4
        nn.ReLU(inplace=True),
        nn.Conv2d(c4, c5, kernel_size=3, padding=1, groups=g),  # conv5
        nn.ReLU(inplace=True),
        down(),  # (B, 64, 3, 3)
    )
    head = _fc_head(_flat_width(features, input_size), 512, num_classes, dropout, paper_order=True)
    name = (
        "mini"
        + ("" if lrn else "-nolrn")
        + ("" if (z, st) == (3, 2) else "-pool2" if (z, st) == (2, 2) else f"-pool{z}s{st}")
        + ("" if towers == 2 else "-half")
    )
    return he_init_(AlexNet(features, head, variant=name, towers=towers))


def _mini_nolrn(
    num_classes: int = 10, *, dropout: float = recipe.DROPOUT, input_size: int = 24
) -> AlexNet:
    """``mini`` without its two LRN layers (the ablation of Paper section 3.3)."""
    return _mini(num_classes, dropout=dropout, lrn=False, input_size=input_size)


def _mini_pool2(
    num_classes: int = 10, *, dropout: float = recipe.DROPOUT, input_size: int = 24
) -> AlexNet:
    """``mini`` with non-overlapping pooling z=2, s=2 (the ablation of Paper section 3.4)."""
    return _mini(num_classes, dropout=dropout, pool=(2, 2), input_size=input_size)


def _mini_half(
    num_classes: int = 10, *, dropout: float = recipe.DROPOUT, input_size: int = 24
) -> AlexNet:
    """``mini`` as one tower with half the kernels in conv1-conv4 (Paper section 3.2)."""
    return _mini(num_classes, dropout=dropout, towers=1, input_size=input_size)


def _flat_width(features: nn.Sequential, size: int) -> int:
    """The number of features ``features`` leaves for one ``size`` x ``size`` image (a shape-only
    pass on the meta device: no memory, no arithmetic)."""
    if not isinstance(size, int) or size < 1:
        raise SettingsError(f"input_size must be a positive whole number of pixels, got {size!r}")
    shapes = {n: torch.empty_like(p, device="meta") for n, p in features.named_parameters()}
    try:
        out = torch.func.functional_call(
            features, shapes, (torch.empty(1, 3, size, size, device="meta"),)
        )
    except (RuntimeError, ValueError) as exc:
        raise SettingsError(
            f"a {size}x{size} input shrinks to nothing in these conv layers "
            f"({str(exc).splitlines()[0]})"
        ) from None
    return out[0].numel()


def paper_head(
    input_size: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    *,
    hidden: int = recipe.FC_WIDTH,
    dropout: float = recipe.DROPOUT,
) -> AlexNet:
    """The paper's fully-connected classifier alone (fc6 -> ReLU -> dropout -> fc7 -> ReLU ->
    dropout -> fc8) applied straight to the flattened image: no conv layers.

    A cheap stand-in for studying dropout (Paper: section 4.2) on small images: it has the same
    layer pattern as AlexNet's head, and memorises a small training set in a few epochs.
    Layers are named fc1, fc2, fc3 (there are no conv layers before them).

    Shapes: (B, C, H, W) -> (B, C*H*W) -> (B, hidden) -> (B, hidden) -> (B, num_classes).
    """
    if len(input_size) != 3:
        raise ValueError(f"input_size is (channels, height, width), got {tuple(input_size)}")
    c, h, w = input_size
    head = _fc_head(c * h * w, hidden, num_classes, dropout, paper_order=True)
    return AlexNet(nn.Sequential(), head, variant="paper-head")


_BUILDERS: dict[str, Callable[..., AlexNet]] = {
    "paper": _paper,
    "paper-code": _paper_code,
    "half": _half,
    "onegpu2014": _onegpu2014,
    "bn": _bn,
    "cifar4": _cifar4,
    "paper-nolrn": _paper_nolrn,
    "paper-pool2": _paper_pool2,
    "mini": _mini,
    "mini-nolrn": _mini_nolrn,
    "mini-pool2": _mini_pool2,
    "mini-half": _mini_half,
}
VARIANTS: tuple[str, ...] = tuple(_BUILDERS)


def build(variant: str, num_classes: int | None = None, **kw) -> AlexNet:
    """Build the AlexNet variant ``variant`` (one of ``VARIANTS``) for ``num_classes`` classes.

    ``num_classes`` defaults to 1000 (ImageNet), or 10 for ``cifar4``. Keyword options:
    ``dropout`` (p, default 0.5; 0.0 for ``cifar4``), ``init`` (apply the paper's init; on by
    default for ``paper``, ``paper-code`` and ``half``), for ``cifar4`` also ``activation``
    ("relu" | "tanh") and ``hidden``, for ``bn`` also ``dropout_features``, for ``paper`` also
    ``lrn`` (bool) and ``pool`` ((size, stride), default (3, 2)).

    Paper: section 3.
    """
    takes = options(variant)  # an unknown variant is a SettingsError
    unknown = sorted(set(kw) - set(takes))
    if unknown:
        raise UnknownSettingError(
            f"build({variant!r}) got unknown option(s) {unknown}; {variant} takes: {takes}"
        )
    if num_classes is not None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise SettingsError(f"num_classes must be a positive int, got {num_classes!r}")
        kw["num_classes"] = num_classes
    return _BUILDERS[variant](**kw)


# The input convention each variant's initialisation expects (see alexlib.augment.INPUTS): the
# paper's nets start from N(0, 0.01) weights sized for mean-subtracted pixels in [-128, 128];
# cifar4 (PyTorch's default initialisation) and mini (he_init_) are sized for inputs of unit
# variance.
_INPUTS = {v: "standardise" for v in ("cifar4", "mini", "mini-nolrn", "mini-pool2", "mini-half")}


def expected_inputs(variant: str) -> str:
    """``"mean-image"`` (the paper's 0-255 pixels minus the mean image) or ``"standardise"``
    (per-channel unit variance): the input convention ``variant`` is trained with by default."""
    options(variant)  # an unknown variant is a SettingsError
    return _INPUTS.get(variant, "mean-image")


def options(variant: str) -> list[str]:
    """The keyword options :func:`build` takes for ``variant`` (besides ``num_classes``); the
    one check of a variant's name (a :class:`SettingsError` listing the known ones)."""
    if variant not in _BUILDERS:
        raise SettingsError(
            f"unknown variant {variant!r}; the known variants are: {', '.join(VARIANTS)}"
        )
    return [p for p in inspect.signature(_BUILDERS[variant]).parameters if p != "num_classes"]


def input_sizes(variant: str, sizes=range(8, 513), **kw) -> list[int]:
    """The square input sizes (from ``sizes``) that ``variant`` can take: the net is built on the
    meta device (shapes only, no memory) and each size is passed through it. A variant with an
    ``input_size`` option (``cifar4``) is built for each size, its fc layer sized to the maps."""
    sized = "input_size" in options(variant)
    fits = []
    net = None
    for size in sizes:
        try:
            with torch.device("meta"):
                if sized or net is None:
                    net = build(variant, **({**kw, "input_size": size} if sized else kw))
                    net.eval()  # BatchNorm in training mode cannot take the probe's one image
                net(torch.empty(1, 3, size, size))
            fits.append(size)
        except (RuntimeError, ValueError):  # SettingsError is a ValueError
            continue
    return fits


def _ranges(values: list[int]) -> str:
    """[224, 225, 226, 300] -> "224-226, 300"."""
    spans: list[list[int]] = []
    for v in values:
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in spans)


def check_input_size(variant: str, size: int, **kw) -> None:
    """Raise a :class:`SettingsError` naming the sizes ``variant`` can take if it cannot take a
    ``size`` x ``size`` input (checked on the meta device, in milliseconds)."""
    if size in input_sizes(variant, [size], **kw):
        return
    fits = input_sizes(variant, **kw)
    can = f"it takes {_ranges(fits)} pixels" if fits else "it takes no size from 8 to 512 pixels"
    raise SettingsError(
        f"the {variant} variant cannot take {size}x{size} inputs: {can} "
        "(set --crop, or choose another --variant)"
    )


# ----------------------------------------------------------------------------------------------
# Naming layers, towers


_PREFIX = [
    (EdgePad, "pad"),
    (nn.Conv2d, "conv"),
    (nn.Linear, "fc"),
    (nn.ReLU, "relu"),
    (nn.Tanh, "tanh"),
    (nn.LocalResponseNorm, "lrn"),
    ((nn.MaxPool2d, nn.AvgPool2d), "pool"),
    (nn.AdaptiveAvgPool2d, "avgpool"),
    ((nn.BatchNorm1d, nn.BatchNorm2d), "bn"),
    (nn.Dropout, "drop"),
]


def layer_names(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The leaf layers of an :class:`AlexNet` in forward order, with the paper's names.

    Conv and fc layers are numbered in order (conv1..conv5, fc6..fc8); every other layer takes the
    number of the conv/fc layer before it (relu1, lrn1, pool1, ...; torchvision's dropout in
    front of fc6 is drop5). ``nn.Identity`` slots are skipped. Names are unique.
    """
    if not isinstance(model, AlexNet):
        raise TypeError(
            f"layer_names() needs an alexlib AlexNet (from build()), got {type(model).__name__}"
        )
    leaves = list(model.features) + [model.avgpool] + list(model.classifier)
    named: list[tuple[str, nn.Module]] = []
    seen: dict[str, int] = {}
    number = 0
    for module in leaves:
        if isinstance(module, nn.Identity):
            continue
        prefix = next(
            (p for t, p in _PREFIX if isinstance(module, t)), type(module).__name__.lower()
        )
        if prefix in ("conv", "fc"):
            number += 1
        if prefix in ("pad", "avgpool"):
            name = prefix
        else:
            name = f"{prefix}{number}"
        if name in seen:  # e.g. two dropouts after one layer
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        named.append((name, module))
    return named


def get_layer(model: nn.Module, name: str) -> nn.Module:
    """The layer called ``name`` in :func:`layer_names` (e.g. ``"conv2"``, ``"lrn1"``)."""
    names = layer_names(model)
    for n, m in names:
        if n == name:
            return m
    raise KeyError(
        f"{model.variant} has no layer {name!r}; its layers are: {', '.join(n for n, _ in names)}"
    )


def _need_towers(model: nn.Module) -> None:
    if not isinstance(model, AlexNet) or model.towers < 2:
        variant = getattr(model, "variant", type(model).__name__)
        raise ValueError(
            f"{variant} has a single tower; only the two-GPU variants ('paper', 'paper-code', "
            "'paper-nolrn', 'paper-pool2') have two"
        )


def conv1_towers(model: nn.Module) -> tuple[torch.Tensor, ...]:
    """The conv1 kernels of each tower (GPU): for ``paper``, two (48, 3, 11, 11) tensors.

    Output channels 0-47 are GPU 1's kernels, 48-95 GPU 2's (Paper: section 6.1, Figure 3).
    Detached views of the weights.
    """
    _need_towers(model)
    weight = get_layer(model, "conv1").weight.detach()  # (96, 3, 11, 11)
    return tuple(weight.chunk(model.towers, dim=0))  # 2 x (48, 3, 11, 11)


@torch.no_grad()
def tower_activations(
    model: nn.Module, images: torch.Tensor, layer: str = "relu1"
) -> tuple[torch.Tensor, ...]:
    """The output of ``layer`` (a name from :func:`layer_names`) for ``images``, split per tower.

    For ``paper`` with (B, 3, 224, 224) input and ``layer="relu1"``: two (B, 48, 55, 55) tensors,
    the rectified responses of GPU 1's and GPU 2's conv1 kernels. Runs the model in eval mode
    up to ``layer`` only. Paper: section 3.2.
    """
    _need_towers(model)
    target = get_layer(model, layer)
    if target in list(model.classifier):
        raise ValueError(
            f"{layer!r} is a fully-connected layer; the towers only exist in the conv layers"
        )
    was_training = model.training
    model.eval()
    try:
        x = images
        for module in model.features:
            x = module(x)
            if module is target:
                break
    finally:
        model.train(was_training)
    return tuple(x.chunk(model.towers, dim=1))


# ----------------------------------------------------------------------------------------------
# Layer summary


@dataclass(frozen=True)
class LayerRow:
    """One row of :func:`layer_summary`: a layer's output shape (one image), its parameters, its
    multiply-accumulates per image and the memory of its output activations per image (float32)."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    activation_bytes: int


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (weights and biases) of ``model``."""
    return sum(p.numel() for p in model.parameters())


def _macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """Multiply-accumulates of one image through ``module`` (conv and fc only; other layers 0)."""
    if isinstance(module, nn.Conv2d):
        # each output element: (C_in / groups) * kh * kw multiply-adds
        per_output = (
            (module.in_channels // module.groups) * module.kernel_size[0] * module.kernel_size[1]
        )
        return out[0].numel() * per_output
    if isinstance(module, nn.Linear):
        return module.in_features * module.out_features
    return 0


@torch.no_grad()
def layer_summary(
    model: nn.Module, input_size: tuple[int, int, int] = (3, 224, 224)
) -> list[LayerRow]:
    """Push one zero image of ``input_size`` (C, H, W) through ``model`` and tabulate every layer.

    Returns one :class:`LayerRow` per layer (names from :func:`layer_names`), in forward order,
    with the output shape for one image (C, H, W) or (F,), parameters, multiply-accumulates
    (conv and fc layers) and output activation bytes (float32). Runs in eval mode on the
    model's device. Paper: section 3.5 (Figure 2).
    """
    if len(input_size) != 3 or input_size[0] != 3:
        raise ValueError(
            f"input_size is (channels, height, width) with 3 channels, got {tuple(input_size)}"
        )
    named = layer_names(model)
    records: dict[nn.Module, tuple[torch.Tensor, torch.Tensor]] = {}
    hooks = [
        m.register_forward_hook(lambda m, i, o: records.__setitem__(m, (i[0], o))) for _, m in named
    ]
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        model(torch.zeros(1, *input_size, device=device))
    finally:
        model.train(was_training)
        for h in hooks:
            h.remove()
    rows = []
    for name, module in named:
        inp, out = records[module]
        rows.append(
            LayerRow(
                name=name,
                kind=type(module).__name__,
                output_shape=tuple(out.shape[1:]),
                params=sum(p.numel() for p in module.parameters()),
                macs=_macs(module, inp, out),
                activation_bytes=out[0].numel() * 4,
            )
        )
    return rows


def format_summary(
    model: nn.Module | list[LayerRow], input_size: tuple[int, int, int] = (3, 224, 224)
) -> str:
    """The layer table of :func:`layer_summary` as text, ending with the total parameter count.

    ``model`` is a model (summarised at ``input_size``) or rows already computed. The last line
    reads ``parameters: 60,965,224`` for ``build("paper")``.
    """
    if isinstance(model, nn.Module):
        rows = layer_summary(model, input_size)
        total = count_parameters(model)
    else:
        rows = list(model)
        total = sum(r.params for r in rows)
    header = (
        f"{'layer':<9} {'type':<18} {'output':>15} {'params':>12} {'MACs':>13} {'activations':>12}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        shape = "x".join(str(s) for s in r.output_shape)
        lines.append(
            f"{r.name:<9} {r.kind:<18} {shape:>15} {r.params:>12,} {r.macs:>13,} "
            f"{_kib(r.activation_bytes):>12}"
        )
    lines.append("-" * len(header))
    macs = sum(r.macs for r in rows)
    lines.append(f"multiply-accumulates per image: {macs:,} ({macs / 1e9:.3f} G)")
    lines.append(f"parameters: {total:,}")
    return "\n".join(lines)


def _kib(n: int) -> str:
    return f"{n / 1024:,.1f} KiB"
