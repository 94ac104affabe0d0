"""Figure 4: what the network learned: top-5 predictions and nearest neighbours in fc7 (Paper:
section 6.1)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import recipe
from .._io import atomic_write_text, provenance, results_dir, write_json
from ..augment import center_crop
from ..config import preset, resolve_device
from ..data import load
from ..engine import train_one_epoch
from ..evaluate import features, predict
from ..fast import for_device
from ..model import get_layer
from ..train import load_checkpoint, model_from_checkpoint, read_metrics, stored_runs
from .figure3 import train_for_kernels

# ==============================================================================================
# Figure 4: what the network learned: top-5 and nearest neighbours in fc7 (Paper: section 6.1)

# The settings per scale are the registry's "figure4" presets (alexlib.config.PRESETS).


def _check_search(queries: torch.Tensor, database: torch.Tensor, k: int, width: str) -> None:
    """Queries (Q, width) and database (N, width) of one width, and 1 <= k <= N, or a clear
    error."""
    if queries.dim() != 2 or database.dim() != 2 or queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"want queries (Q, {width}) and database (N, {width}) with the same {width}; got "
            f"{tuple(queries.shape)} and {tuple(database.shape)}"
        )
    if not 1 <= k <= len(database):
        raise ValueError(f"k must be between 1 and the database size {len(database)}, got {k}")


@torch.no_grad()
def nearest_neighbours(
    queries: torch.Tensor, database: torch.Tensor, k: int, *, device="auto", chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` rows of ``database`` (N, D) nearest to each row of ``queries`` (Q, D) in Euclidean
    distance, computed on ``device`` as batched matrix products, ``chunk`` database rows at a time
    (each chunk is converted to float32 there, so a uint8 pixel database stays small in memory).
    Returns ``(indices (Q, k) int64, distances (Q, k) float32)`` on the CPU, nearest first.
    Paper: section 6.1, Figure 4 (right).
    """
    _check_search(queries, database, k, "D")
    device = resolve_device(device)
    q = queries.to(device).float()  # (Q, D)
    q_sq = q.pow(2).sum(dim=1, keepdim=True)  # (Q, 1)
    best_d = torch.full((len(q), 0), float("inf"), device=device)
    best_i = torch.zeros((len(q), 0), dtype=torch.long, device=device)
    for start in range(0, len(database), chunk):
        d = database[start : start + chunk].to(device).float()  # (C, D)
        # |q - d|^2 = |q|^2 - 2 q.d + |d|^2, for every (query, row) pair at once
        dist = (q_sq - 2 * q @ d.T + d.pow(2).sum(dim=1)[None, :]).clamp_min_(0)  # (Q, C)
        idx = torch.arange(start, start + len(d), device=device).expand(len(q), -1)  # (Q, C)
        all_d, all_i = torch.cat([best_d, dist], dim=1), torch.cat([best_i, idx], dim=1)
        best_d, pos = all_d.topk(min(k, all_d.shape[1]), dim=1, largest=False)  # (Q, k), sorted
        best_i = all_i.gather(1, pos)
    return best_i.cpu(), best_d.sqrt().cpu()


class BinaryAutoencoder(nn.Module):
    """An auto-encoder that squeezes a feature vector (D,) through ``bits`` binary units:
    encoder D -> hidden -> bits (a sign), decoder bits -> hidden -> D.

    While training, the code is 0/1 in the forward pass and the sigmoid's gradient flows through in
    the backward pass (a straight-through estimator), so the decoder learns from the very codes
    that retrieval will use. Paper: section 6.1 (the suggested binary codes for retrieval).
    """

    def __init__(self, dim: int = 4096, bits: int = 128, hidden: int = 1024):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, bits))
        self.decoder = nn.Sequential(nn.Linear(bits, hidden), nn.ReLU(), nn.Linear(hidden, dim))

    def code(self, x: torch.Tensor) -> torch.Tensor:
        """The binary code (N, bits) as a bool tensor: bit = (encoder output > 0)."""
        return self.encoder(x) > 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        soft = torch.sigmoid(self.encoder(x))  # (N, bits) in (0, 1)
        # forward: hard 0/1 bits; backward: the sigmoid's gradient (straight through)
        hard = (soft > 0.5).float()
        code = hard + soft - soft.detach()  # (N, bits)
        return self.decoder(code)  # (N, D)


def train_autoencoder(
    feats: torch.Tensor,
    bits: int,
    *,
    epochs: int = 60,
    lr: float = 1e-3,
    batch_size: int = 256,
    hidden: int = 1024,
    seed: int = 0,
    device="auto",
) -> tuple[BinaryAutoencoder, dict]:
    """Fit a :class:`BinaryAutoencoder` to ``feats`` (N, D) (e.g. fc7 vectors) with Adam, minimising
    the mean squared reconstruction error of the features centred on their mean and scaled to unit
    mean norm (so the code spends its bits on what tells images apart, not on what they share).
    Returns the model (on the CPU, eval mode) and ``{"mean" (D,), "scale", "loss"}``: pass both to
    :func:`binary_codes`."""
    device = resolve_device(device)
    torch.manual_seed(seed)
    x_all = feats.to(device).float()
    mean = x_all.mean(dim=0)  # (D,)
    x_all = x_all - mean
    scale = 1.0 / x_all.norm(dim=1).mean().clamp_min(1e-12).item()
    x_all = x_all * scale
    model = BinaryAutoencoder(x_all.shape[1], bits, hidden).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)

    def batches():  # (x, target) pairs: the auto-encoder's target is its input
        order = torch.randperm(len(x_all), generator=generator).to(device)
        for start in range(0, len(x_all), batch_size):
            x = x_all[order[start : start + batch_size]]  # (B, D)
            yield x, x

    loss = float("nan")
    for _ in range(epochs):
        loss = train_one_epoch(model, batches(), optimizer, loss_fn=F.mse_loss, ks=())["loss"]
    return model.cpu().eval(), {"mean": mean.cpu(), "scale": scale, "loss": loss}


@torch.no_grad()
def binary_codes(model: BinaryAutoencoder, info: dict, feats: torch.Tensor) -> torch.Tensor:
    """The binary codes (N, bits) bool of ``feats`` (N, D) under a model from
    :func:`train_autoencoder` (``info``: its centring and scale)."""
    return model.code((feats.float() - info["mean"]) * info["scale"])


@torch.no_grad()
def hamming_neighbours(
    query_codes: torch.Tensor, database_codes: torch.Tensor, k: int, *, device="auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` database codes nearest to each query code in Hamming distance (the number of bits
    that differ), ties broken by database order. Codes: bool or 0/1 (Q, bits) and (N, bits).
    Returns ``(indices (Q, k), distances (Q, k))`` on the CPU."""
    _check_search(query_codes, database_codes, k, "bits")
    device = resolve_device(device)
    q = query_codes.to(device).float()  # (Q, bits)
    d = database_codes.to(device).float()  # (N, bits)
    # hamming(q, d) = q.(1 - d) + (1 - q).d: the bits set in one code and not the other
    dist = q @ (1 - d).T + (1 - q) @ d.T  # (Q, N), whole numbers
    order = dist.argsort(dim=1, stable=True)[:, :k]  # (Q, k)
    return order.cpu(), dist.gather(1, order).round().long().cpu()


def neighbour_recall(found: torch.Tensor, true: torch.Tensor) -> float:
    """The mean share of the true neighbours (Q, k) that ``found`` (Q, k') retrieved."""
    hits = (found[:, :, None] == true[:, None, :]).any(dim=1).float()  # (Q, k)
    return hits.mean().item()


def class_precision(
    neighbours: torch.Tensor, query_labels: torch.Tensor, database_labels: torch.Tensor
) -> float:
    """The share of retrieved neighbours (Q, k) whose class is the query's (precision at k)."""
    return (database_labels[neighbours] == query_labels[:, None]).float().mean().item()


def _picked(n: int, count: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count].sort().values


def _trained_net(trained, s: dict, scale: str, seed: int, data, data_root, device, progress):
    """The net Figure 4 reads, with its input statistics: ``trained`` (a result of
    :func:`train_for_kernels`, holding the model or naming its kept run folder), else a ``paper``
    net trained now on ``data`` with the figure's preset ``s``. Returns (trained, model, stats)."""
    size, crop = s.get("image_size", recipe.IMAGE_SIZE), s.get("crop", recipe.CROP)
    if trained is None:
        trained = train_for_kernels(
            "paper",
            scale,
            seed,
            data=data,
            data_root=data_root,
            device=str(device),
            progress=progress,
            epochs=s["epochs"],
            batch_size=s["batch_size"],
            train_per_class=s["train_per_class"],
            val_per_class=s["val_per_class"],
            **({"image_size": size, "crop": crop} if "image_size" in s else {}),
        )
    if "model" in trained:
        model, stats = trained["model"], trained["stats"]
    else:  # a kept run folder, e.g. figure 3's full-scale paper net
        model, _, stats = model_from_checkpoint(
            load_checkpoint(Path(trained["out"]) / "checkpoint.pt")
        )
    return trained, model, stats


def run_figure4(
    scale: str = "smoke",
    seed: int = 0,
    *,
    trained: dict | None = None,
    data=None,
    data_root=None,
    device="auto",
    progress: bool = False,
    **overrides,
) -> dict:
    """Figure 4's experiment on Imagenette: train the ``paper`` net (or take ``trained``, a result
    of :func:`train_for_kernels`), then

    - ``top5``: for eight validation images, the five most probable classes and their probabilities;
    - ``neighbours``: for five validation queries, the six training images nearest in fc7 (the
      4096-d output of the ReLU after fc7, centre view) and in raw pixels (the 224 centre crop);
    - ``retrieval``: over all validation images as queries, the same-class precision at k of
      pixel, fc7 and binary-code neighbours, and the share of the fc7 neighbours the codes recover.

    Returns plain lists and numbers (JSON-ready) plus ``"val"``/``"train"`` (the data) for drawing.
    Paper: section 6.1, Figure 4.
    """
    s = preset("figure4", scale, **overrides)
    size, crop = s.get("image_size", recipe.IMAGE_SIZE), s.get("crop", recipe.CROP)
    device = resolve_device(device)
    if data is None:
        train, val = (
            load(
                s["dataset"],
                split,
                root=data_root,
                size=size,
                per_class=s[f"{split}_per_class"],
                seed=seed,
                progress=progress,
            )
            for split in ("train", "val")
        )
    else:
        train, val = data
    trained, model, stats = _trained_net(
        trained, s, scale, seed, (train, val), data_root, device, progress
    )
    for_device(model, device)  # the layout it trained in: same outputs, faster
    stats = stats.to(device)

    shown = _picked(len(val), 8, seed)
    probs = predict(model, val.images[shown], stats, crop=crop, device=device)  # (8, C)
    top_p, top_c = probs.topk(min(5, probs.shape[1]), dim=1)

    queries = _picked(len(val), 5, seed + 1)
    nn_fc7, nn_pix, retrieval = _retrieval(model, stats, train, val, s, crop, seed, device)
    return {
        "top5": {
            "images": shown.tolist(),
            "classes": top_c.tolist(),
            "probs": top_p.tolist(),
            "labels": val.labels[shown].tolist(),
        },
        "neighbours": {
            "queries": queries.tolist(),
            "fc7": nn_fc7[queries].tolist(),
            "pixels": nn_pix[queries].tolist(),
        },
        "retrieval": retrieval,
        "k": s["k"],
        "classes": list(train.classes),
        "train_images": len(train),
        "val_images": len(val),
        "metrics": trained["metrics"],
        "settings": {**s, "scale": scale, "seed": seed},
        "val": val,
        "train": train,
    }


def _retrieval(model, stats, train, val, s: dict, crop: int, seed: int, device):
    """Every validation image's ``k`` nearest training images in fc7 and in pixels, and the
    same-class precision at ``k`` of those and of each code length's Hamming neighbours."""
    fc7 = get_layer(model, "relu7")
    f_train = features(model, train.images, stats, fc7, crop=crop, device=device)  # (N, 4096)
    f_val = features(model, val.images, stats, fc7, crop=crop, device=device)  # (M, 4096)
    k = s["k"]
    nn_fc7, _ = nearest_neighbours(f_val, f_train, k, device=device)  # (M, k)
    pixels_train = center_crop(train.images, crop).flatten(1)  # (N, 3*crop*crop) uint8
    pixels_val = center_crop(val.images, crop).flatten(1)
    nn_pix, _ = nearest_neighbours(pixels_val, pixels_train, k, device=device)

    retrieval = {
        "pixels": {
            "precision": class_precision(nn_pix, val.labels, train.labels),
            "code_bytes": 3 * crop * crop,
        },
        "fc7": {"precision": class_precision(nn_fc7, val.labels, train.labels)},
    }
    for bits in s["bits"]:
        ae, info = train_autoencoder(f_train, bits, epochs=s["ae_epochs"], seed=seed, device=device)
        codes_train = binary_codes(ae, info, f_train)  # (N, bits) bool
        codes_val = binary_codes(ae, info, f_val)
        nn_code, _ = hamming_neighbours(codes_val, codes_train, k, device=device)
        retrieval[f"{bits}-bit codes"] = {
            "precision": class_precision(nn_code, val.labels, train.labels),
            "fc7_recall": neighbour_recall(nn_code, nn_fc7),
            "ae_loss": info["loss"],
            "code_bytes": bits // 8,
        }
    return nn_fc7, nn_pix, retrieval


def format_retrieval(retrieval: dict, k: int) -> str:
    """:func:`run_figure4`'s retrieval scores as a text table."""
    lines = [
        f"{'space':>16} {'bytes/image':>12} {f'same class @{k}':>15} {'fc7 neighbours found':>21}"
    ]
    for space, r in retrieval.items():
        # pixels: 3 x crop x crop bytes (224 unless stored); fc7: 4096 float32
        size = r.get("code_bytes") or {"pixels": 3 * 224 * 224, "fc7": 4096 * 4}[space]
        recall = f"{100 * r['fc7_recall']:.1f}%" if "fc7_recall" in r else "-"
        lines.append(f"{space:>16} {size:>12,} {100 * r['precision']:>14.1f}% {recall:>21}")
    return "\n".join(lines)


def save_figure4(result: dict, base: Path | None = None, tag: str = "full") -> Path:
    """Store :func:`run_figure4`'s numbers (``figure4.json``: indices into the deterministic data
    splits, probabilities, retrieval scores) with ``settings.json`` (settings and provenance) and
    ``metrics.jsonl`` (training) under ``<base>/<tag>-s<seed>/`` (``base``: ``results/figure4``)."""
    base = Path(base) if base is not None else results_dir() / "figure4"
    folder = base / f"{tag}-s{result['settings']['seed']}"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(
        folder / "settings.json", {"settings": result["settings"], "provenance": provenance()}
    )
    atomic_write_text(
        folder / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in result["metrics"])
    )
    write_json(
        folder / "figure4.json",
        {k: v for k, v in result.items() if k not in ("val", "train", "metrics")},
    )
    return folder


def stored_figure4(tag: str = "full") -> list[dict]:
    """The stored results of :func:`save_figure4` (``stored_runs`` dicts with ``figure4`` added)."""
    runs = []
    for run in stored_runs("figure4", f"{tag}-"):
        path = results_dir() / "figure4" / run["name"] / "figure4.json"
        if path.is_file():
            runs.append({**run, "figure4": json.loads(path.read_text())})
    return runs


def shown_images(result: dict, data_root=None, download: bool | None = None):
    """The images a stored Figure 4 result draws, decoded alone: the top-5 images and the
    neighbour queries from the validation split, their neighbours from the training split, at
    the result's image size and from its subsets (``per_class``, ``seed``), instead of both whole
    splits (about 9,500 + 3,900 JPEGs for all of Imagenette). Returns ``(result, train, val)``,
    the result a copy whose image positions point into the two small sets, ready for
    :func:`alexlib.figures.figure4_figures`."""
    s, n = result["settings"], result["neighbours"]
    kw = dict(
        root=data_root,
        size=s.get("image_size", recipe.IMAGE_SIZE),
        seed=s["seed"],
        download=download,
        progress=False,
    )
    val_at = sorted({*result["top5"]["images"], *n["queries"]})
    train_at = sorted({i for space in ("fc7", "pixels") for row in n[space] for i in row})
    val = load(s["dataset"], "val", per_class=s["val_per_class"], indices=val_at, **kw)
    train = load(s["dataset"], "train", per_class=s["train_per_class"], indices=train_at, **kw)
    in_val = {i: k for k, i in enumerate(val_at)}
    in_train = {i: k for k, i in enumerate(train_at)}
    neighbours = {
        space: [[in_train[i] for i in row] for row in n[space]] for space in ("fc7", "pixels")
    }
    remapped = {
        **result,
        "top5": {**result["top5"], "images": [in_val[i] for i in result["top5"]["images"]]},
        "neighbours": {**n, "queries": [in_val[i] for i in n["queries"]], **neighbours},
    }
    return remapped, train, val


def figure4_result(scale: str, tag: str, runs_dir: Path, data_root=None) -> Path | None:
    """Figure 4 from the first seed's Figure 3 paper net (its run folder under ``runs_dir``,
    trained there by :func:`alexlib.experiments.figure3.figure3_net`; trained here when missing),
    stored under ``results/figure4/<tag>-s<seed>``. None when it is stored already."""
    seed = preset("figure3", scale)["seeds"][0]
    if (results_dir() / "figure4" / f"{tag}-s{seed}").is_dir():
        print(f"figure4 seed {seed}: stored before")
        return None
    folder = Path(runs_dir) / f"figure3-{tag}-paper-s{seed}"
    trained = None
    if (folder / "checkpoint.pt").is_file():
        trained = {"out": str(folder), "metrics": read_metrics(folder)}
    result = run_figure4(scale, seed, trained=trained, data_root=data_root, progress=True)
    print(json.dumps(result["retrieval"], indent=1))
    where = save_figure4(result, tag=tag)
    print("stored in", where)
    return where
