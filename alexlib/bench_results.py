"""What chapter 8 shows of the training-speed benchmark: the stored runs read back and formatted,
and the layer-by-layer check that :mod:`alexlib.fast`'s forms compute what the reference layers do.

The benchmark itself (it builds, compiles and times the nets) is project tooling, outside the
installed package: ``python -m tools.bench`` from a checkout of the repository. It stores each GPU
run under ``results/bench/``, which a wheel of alexlib carries, so a chapter reads the same runs
in Colab as in the book. Imports: ``_io``, ``model``, ``fast``.
"""

from __future__ import annotations

import copy
import json
import sys

import torch

from . import fast
from ._io import results_dir
from .model import build, layer_names

__all__ = ["saved_runs", "format_table", "summary_lines", "correctness", "format_checks"]


def saved_runs() -> list[dict]:
    """The benchmark runs stored under ``results/bench/``, oldest first (each with its ``path``)."""
    runs = []
    for path in sorted((results_dir() / "bench").glob("*.json")):
        try:
            runs.append({**json.loads(path.read_text()), "path": str(path)})
        except (OSError, json.JSONDecodeError) as exc:
            print(f"skipping {path}: {exc}", file=sys.stderr)
    return sorted(runs, key=lambda r: r["provenance"].get("date", ""))


def format_table(result: dict) -> str:
    """The benchmark's rows as a Markdown table, with each row's ratio to torchvision's alexnet."""
    rows = result["rows"]
    lines = [
        "| training step | images/s | vs torchvision alexnet | ms/step | peak GiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error']} | | | |")
            continue
        ratio = f"{r['vs_torchvision']:.2f}x" if "vs_torchvision" in r else ""
        mem = f"{r['peak_memory_gib']:.1f}" if r.get("peak_memory_gib") is not None else ""
        lines.append(
            f"| {r['name']} | {r['images_per_s']:,.0f} | {ratio} | {r['ms_per_step']:.1f} | {mem} |"
        )
    return "\n".join(lines)


def summary_lines(result: dict) -> list[str]:
    """The run's headline ratios, in words: alexlib's paper net against torchvision's alexnet,
    against the same net with PyTorch's stock layers, and against the net without LRN and
    towers."""
    by = {r["name"]: r for r in result["rows"] if "error" not in r}
    out = []
    tv = by.get("torchvision alexnet")
    ours = by.get("paper, alexlib")
    naive = by.get("paper, reference layers")
    gpu = result["settings"]["amp"]  # bf16 on CUDA: the setting a speed claim is about
    if tv and ours and "vs_torchvision" in ours:
        out.append(f"alexlib's paper net / torchvision alexnet: {ours['vs_torchvision']:.2f}x")
    same_run = lambda a, b: a.get("run", 0) == b.get("run", 0)
    if naive and ours and same_run(naive, ours):
        out.append(
            f"alexlib's paper net / the same net with reference layers: "
            f"{ours['images_per_s'] / naive['images_per_s']:.2f}x"
        )
    g1 = by.get("paper without LRN, groups=1")
    if g1 and ours and same_run(g1, ours):
        out.append(
            f"alexlib's paper net / paper net without LRN, groups=1: "
            f"{ours['images_per_s'] / g1['images_per_s']:.2f}x"
        )
    if not gpu:
        out.append(
            "(not a GPU in bf16: these numbers show the code runs, not how fast a GPU trains)"
        )
    return out


def correctness(*, device: torch.device, triton: bool, batch_size: int = 2) -> list[dict]:
    """Every fast form against the reference layers, layer by layer (float32, eval mode)."""
    torch.manual_seed(0)
    reference = build("paper", num_classes=1000).to(device)
    paper_name = {id(m): n for n, m in layer_names(reference)}
    module_of = dict(reference.named_modules())
    x = torch.randn(batch_size, 3, 224, 224, generator=torch.Generator().manual_seed(1)).to(device)
    lrns = ["shift", "banded"] + (["triton"] if triton else [])
    rows = []
    combos = [{"lrn": impl, "conv": "dense", "conv1": "s2d"} for impl in lrns]
    combos += [
        {"lrn": "shift", "conv": "split"},
    ]
    for combo in combos:
        net = fast.speed_up(copy.deepcopy(reference), **combo)
        for name, r in fast.check_equal(reference, net, x).items():
            if r["impl"] == "native":
                continue
            rows.append({"layer": paper_name.get(id(module_of[name]), name), **r})
    # one row per (layer, form): the combinations repeat conv1 and the towers
    seen, unique = set(), []
    for r in rows:
        if (r["layer"], r["impl"]) not in seen:
            seen.add((r["layer"], r["impl"]))
            unique.append(r)
    order = {n: i for i, (n, _) in enumerate(layer_names(reference))}
    return sorted(
        unique, key=lambda r: order.get(r["layer"], len(order))
    )  # forward order, stable per layer


def format_checks(result: dict) -> str:
    """:func:`correctness`'s rows (``result["checks"]``) as a Markdown table."""
    lines = [
        "| layer | form | output | input grad | param grad | equal |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in result["checks"]:
        lines.append(
            f"| {r['layer']} | {r['impl']} | {r['output']:.1e} | {r['input grad']:.1e} | "
            f"{r['param grad']:.1e} | {'yes' if r['equal'] else 'NO'} |"
        )
    return "\n".join(lines)
