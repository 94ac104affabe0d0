"""``python -m tools.bench``: training throughput of the paper's net against torchvision's
``alexnet`` (project tooling, run from the repository root; not part of the installed package).

    python -m tools.bench                       # GPU: torchvision vs naive paper net vs alexlib's
    python -m tools.bench --sweep               # also each fast form alone: what each one buys
    python -m tools.bench --tiny --device cpu   # CI size: batch 2, no compile; checks, not speed

Every row is the same training step (forward, cross-entropy, backward, SGD with momentum and weight
decay) on the same synthetic batch of 224x224 images, one after the other in one process, so the
ratios compare like with like. On CUDA the step runs under bf16 autocast, in channels-last memory,
with the model compiled (``torch.compile``) and the fused SGD kernel.

Rows:

``torchvision alexnet``
    ``torchvision.models.alexnet``: the one-tower 64-192-384-256-256 net, no LRN. The yardstick.
``paper, reference layers``
    ``alexlib.model.build("paper")`` as the chapters build it: ``groups=2`` convolutions and
    PyTorch's LRN per tower. The naive faithful net.
``paper, alexlib``
    The same net after :func:`alexlib.fast.speed_up` with :data:`alexlib.fast.DEFAULTS`: what
    ``alexlib.train.train_run`` trains on a GPU.
``--sweep``
    Each fast form alone (and all together), the compiler's autotuning and CUDA-graph modes, and
    the yardsticks: the paper net without LRN, with ``groups=2`` and with ``groups=1``.

Then every fast form is checked against the reference layers, layer by layer, for equal outputs and
gradients (:func:`alexlib.fast.check_equal`). A CUDA run is saved with its provenance under
``results/bench/`` (``--save`` elsewhere; ``--no-save`` not at all), where chapter 8 finds it
(:mod:`alexlib.bench_results` reads and formats the stored runs).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from alexlib import fast
from alexlib._io import atomic_write_text, provenance, results_dir
from alexlib.bench_results import (  # the reader of stored runs, shared with chapter 8
    correctness,
    format_checks,
    format_table,
    saved_runs,
    summary_lines,
)
from alexlib.config import resolve_device
from alexlib.engine import sgd_paper, train_step
from alexlib.errors import SettingsError
from alexlib.fast import DEFAULTS, triton_available
from alexlib.model import AlexNet, _fc_head, _five_convs, build

from . import Parser, run_command

__all__ = [
    "Row",
    "bench_rows",
    "build_net",
    "measure",
    "versions",
    "run",
    "fastest_forms",
    "merged_latest",
    "parser",
    "main",
    # read back and formatted by alexlib.bench_results (chapter 8), re-exported for the sitting
    "correctness",
    "format_checks",
    "format_table",
    "saved_runs",
    "summary_lines",
]


@dataclass
class Row:
    """One row of the benchmark: which net, which fast forms, how it is compiled (the benchmark's
    sizes are its command-line options, not run settings)."""

    name: str
    net: str = "paper"  # "torchvision", "paper", "paper-nolrn", "paper-nolrn-g1"
    fast: dict | None = (
        None  # keyword arguments of alexlib.fast.speed_up; None: the reference layers
    )
    compile_mode: str | None = "default"  # None: eager
    group: str = "main"  # "main" rows always run; "sweep" rows with --sweep
    note: str = ""


def bench_rows(sweep: bool, *, triton: bool) -> list[Row]:
    """The rows to measure (``triton``: whether the Triton LRN can run here)."""
    rows = [
        Row(
            "torchvision alexnet",
            net="torchvision",
            note="64-192-384-256-256, no LRN (the yardstick)",
        ),
        Row("paper, reference layers", fast=None, note="groups=2 convs, PyTorch LRN per tower"),
        Row("paper, alexlib", fast=dict(DEFAULTS), note="fast.speed_up with fast.DEFAULTS"),
    ]
    if not sweep:
        return rows
    base = {"lrn": "reference", "conv": "native", "conv1": "native"}
    lrns = ["shift", "banded"] + (["triton"] if triton else [])
    for impl in lrns:
        rows.append(Row(f"paper, LRN={impl}", fast={**base, "lrn": impl}, group="sweep"))
    for impl in ("dense", "split"):
        rows.append(Row(f"paper, towers={impl}", fast={**base, "conv": impl}, group="sweep"))
    rows.append(Row("paper, conv1=s2d", fast={**base, "conv1": "s2d"}, group="sweep"))
    for impl in [i for i in ("shift", "triton") if i in lrns]:
        for towers in ("dense", "split"):
            rows.append(
                Row(
                    f"paper, LRN={impl} + towers={towers} + conv1=s2d",
                    fast={"lrn": impl, "conv": towers, "conv1": "s2d"},
                    group="sweep",
                )
            )
    rows.append(
        Row(
            "paper, alexlib, max-autotune",
            fast=dict(DEFAULTS),
            compile_mode="max-autotune-no-cudagraphs",
            group="sweep",
            note="compiler autotunes conv/matmul choices",
        )
    )
    rows.append(
        Row(
            "paper, alexlib, CUDA graphs",
            fast=dict(DEFAULTS),
            compile_mode="reduce-overhead",
            group="sweep",
            note="whole forward/backward replayed as a CUDA graph",
        )
    )
    rows.append(
        Row(
            "paper without LRN, groups=2",
            net="paper-nolrn",
            group="sweep",
            note="the paper's net without its two costly layer kinds",
        )
    )
    rows.append(
        Row(
            "paper without LRN, groups=1",
            net="paper-nolrn-g1",
            group="sweep",
            note="dense convs: more parameters, not the paper's net",
        )
    )
    return rows


def build_net(spec: Row, num_classes: int = 1000) -> nn.Module:
    """The (untrained) net of one row, on the CPU."""
    if spec.net == "torchvision":
        return torchvision.models.alexnet(num_classes=num_classes)
    if spec.net == "paper-nolrn-g1":
        features = _five_convs((96, 256, 384, 384, 256), (1, 1, 1, 1, 1), norm="none")
        net = AlexNet(
            features,
            _fc_head(9216, 4096, num_classes, 0.5, paper_order=True),
            variant="paper-nolrn-g1",
        )
    else:
        net = build(spec.net, num_classes=num_classes)
    if spec.fast is not None:
        fast.speed_up(net, **spec.fast)
    return net


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    spec: Row,
    *,
    device: torch.device,
    batch_size: int,
    steps: int,
    warmup: int,
    compile: bool = True,
    amp: bool = True,
) -> dict:
    """Images per second of the training step of one row (plus step time, peak memory, warm-up
    time)."""
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    net = build_net(spec).to(device)
    memory_format = torch.channels_last if cuda else torch.contiguous_format
    net = net.to(memory_format=memory_format)
    net.train()
    step_net = net
    mode = spec.compile_mode if compile else None
    if mode is not None:
        step_net = torch.compile(net, mode=mode)
    optimizer = sgd_paper(net, lr=0.01)  # fused into one kernel on CUDA
    gen = torch.Generator().manual_seed(0)
    x = (
        torch.randn(batch_size, 3, 224, 224, generator=gen)
        .to(device)
        .contiguous(memory_format=memory_format)
    )
    y = torch.randint(0, 1000, (batch_size,), generator=gen).to(device)

    def step() -> torch.Tensor:  # the engine's training step, as train_run takes it
        if (
            mode == "reduce-overhead"
        ):  # a new iteration: the CUDA graphs may reuse the last one's memory
            torch.compiler.cudagraph_mark_step_begin()
        return train_step(step_net, x, y, optimizer, amp=cuda and amp)[0]

    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    for _ in range(warmup):
        loss = step()
    _sync(device)
    warm_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(steps):
        loss = step()
    _sync(device)
    seconds = time.perf_counter() - started
    if not math.isfinite(loss.item()):
        raise RuntimeError(f"{spec.name}: the training loss became {loss.item()}")
    row = {
        "name": spec.name,
        "group": spec.group,
        "net": spec.net,
        "fast": spec.fast,
        "compile_mode": mode,
        "note": spec.note,
        "images_per_s": batch_size * steps / seconds,
        "ms_per_step": 1000 * seconds / steps,
        "warmup_s": warm_s,
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
    }
    return row


def versions(device: torch.device) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
    }
    if triton_available():
        import triton

        info["triton"] = triton.__version__
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    else:
        info["gpu"] = None
        info["cpu"] = (
            f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores, "
            f"{torch.get_num_threads()} threads)"
        )
    return info


def run(
    *,
    device: str | torch.device = "auto",
    batch_size: int | None = None,
    steps: int | None = None,
    warmup: int | None = None,
    sweep: bool = False,
    tiny: bool = False,
    compile: bool | None = None,
    only: list[str] | None = None,
    part: tuple[int, int] | None = None,
    check: bool = True,
    progress=print,
) -> dict:
    """Measure the rows in one process and return ``{"rows", "checks", "settings", "provenance"}``.

    Defaults: on CUDA batch 512, 20 timed steps after 8 warm-up steps (compilation happens there),
    compiled; ``tiny`` (or the CPU): batch 2, 2 steps after 1, eager. A row that fails (say, out of
    memory) is reported as failed and the others still run. ``part=(i, n)`` runs the i-th of n
    slices of the rows (each with the torchvision row, so every slice has its own yardstick): a
    sweep whose compilations do not fit in one sitting runs as n processes, and
    :func:`merged_latest` joins them.
    """
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    small = tiny or not cuda
    batch_size = batch_size if batch_size is not None else (2 if small else 512)
    steps = steps if steps is not None else (2 if small else 20)
    warmup = warmup if warmup is not None else (1 if small else 8)
    compile = (not small) if compile is None else compile
    for name, value, low in (
        ("batch_size", batch_size, 1),
        ("steps", steps, 1),
        ("warmup", warmup, 0),
    ):
        if not isinstance(value, int) or value < low:
            raise SettingsError(f"{name} must be a whole number >= {low}, got {value!r}")
    # the Triton kernel runs on CUDA; on the CPU the tests check it in Triton's interpreter (too
    # slow here)
    triton = triton_available() and cuda
    rows_to_run = bench_rows(sweep, triton=triton)
    if only:
        known = {c.name for c in bench_rows(True, triton=True)}
        unknown = [o for o in only if o not in known]
        if unknown:
            raise SettingsError(f"unknown row(s) {unknown}; the rows are: {sorted(known)}")
        rows_to_run = [c for c in bench_rows(True, triton=triton) if c.name in only]
    if part is not None:
        i, n = part
        if not (isinstance(i, int) and isinstance(n, int) and 1 <= i <= n):
            raise SettingsError(f"part must be i/n with 1 <= i <= n, got {i}/{n}")
        yardstick = [c for c in rows_to_run if c.net == "torchvision"]
        others = [c for c in rows_to_run if c.net != "torchvision"]
        rows_to_run = yardstick + others[i - 1 :: n]
    info = versions(dev)
    progress(
        f"device: {info.get('gpu') or info.get('cpu')}; torch {info['torch']}; batch {batch_size}; "
        f"{steps} timed steps after {warmup}; {'compiled' if compile else 'eager'}"
        f"{', bf16 autocast, channels-last' if cuda else ', float32'}"
    )
    rows = []
    for spec in rows_to_run:
        # forget earlier rows' compiled graphs: every row compiles AlexNet.forward again, and past
        # the compiler's recompilation limit it would silently run the rest eagerly
        torch._dynamo.reset()
        try:
            row = measure(
                spec, device=dev, batch_size=batch_size, steps=steps, warmup=warmup, compile=compile
            )
            progress(f"  {spec.name:<48} {row['images_per_s']:>10,.0f} images/s")
        except (RuntimeError, torch.OutOfMemoryError) as exc:  # keep the other rows
            first = (
                str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            )
            row = {
                "name": spec.name,
                "group": spec.group,
                "net": spec.net,
                "fast": spec.fast,
                "error": first,
            }
            progress(f"  {spec.name:<48} failed: {first}")
        if cuda:
            torch.cuda.empty_cache()
        rows.append(row)
    base = next((r for r in rows if r["net"] == "torchvision" and "error" not in r), None)
    for r in rows:  # each ratio from rows measured side by side in this process
        if base is not None and "error" not in r:
            r["vs_torchvision"] = r["images_per_s"] / base["images_per_s"]
    checks = correctness(device=dev, triton=triton) if check else []
    settings = {
        "device": str(dev),
        "batch_size": batch_size,
        "steps": steps,
        "warmup": warmup,
        "compile": compile,
        "amp": cuda,
        "channels_last": cuda,
        "sweep": sweep,
        "tiny": tiny,
        "input": [3, 224, 224],
        "part": list(part) if part else None,
    }
    return {
        "rows": rows,
        "checks": checks,
        "settings": settings,
        "versions": info,
        "provenance": provenance(),
    }


def fastest_forms(result: dict) -> dict[str, str] | None:
    """What :data:`alexlib.fast.DEFAULTS` should be on this GPU: for each of ``lrn``, ``conv`` and
    ``conv1``, the form whose sweep row (that form alone, the rest reference layers, compiled in
    the default mode) trained fastest, by its ratio to the torchvision row of its own process;
    the reference form where no other one beat it. None without a measured CUDA sweep."""
    if not result or not result["settings"].get("amp"):
        return None
    base = {"lrn": "reference", "conv": "native", "conv1": "native"}
    score: dict[str, dict[str, float]] = {k: {} for k in base}
    for row in result["rows"]:
        if row.get("net") != "paper" or "vs_torchvision" not in row:
            continue
        if row.get("compile_mode", "default") != "default":
            continue
        forms = {**base, **(row.get("fast") or {})}
        changed = [k for k in base if forms[k] != base[k]]
        if row.get("fast") is None:  # the reference layers: every axis's baseline
            for k in base:
                score[k][base[k]] = row["vs_torchvision"]
        elif len(changed) == 1:
            score[changed[0]][forms[changed[0]]] = row["vs_torchvision"]
    if not all(len(v) > 1 for v in score.values()):
        return None
    return {k: max(v, key=v.get) for k, v in score.items()}


def results_path(result: dict) -> Path:
    gpu = (result["versions"].get("gpu") or "cpu").replace("NVIDIA ", "")
    slug = "".join(ch if ch.isalnum() else "-" for ch in gpu.lower()).strip("-")
    stamp = result["provenance"]["date"].replace(":", "").replace("-", "")
    part = result["settings"].get("part")
    return (
        results_dir()
        / "bench"
        / f"{stamp}-{slug}{f'-part{part[0]}of{part[1]}' if part else ''}.json"
    )


def merged_latest(runs: list[dict]) -> dict | None:
    """The newest GPU benchmark: the runs of the newest (GPU, commit) pair joined into one result.

    Rows keep the ratio to torchvision's alexnet measured in their own process; each row gets
    ``run``, the index of the process it came from, so ratios between rows are taken only within one
    process.
    """
    gpu_runs = [r for r in runs if r["versions"].get("gpu")]
    if not gpu_runs:
        return None
    newest = gpu_runs[-1]
    key = (newest["versions"]["gpu"], newest["provenance"].get("commit"))
    group = [r for r in gpu_runs if (r["versions"]["gpu"], r["provenance"].get("commit")) == key]
    rows, seen = [], set()
    for index, run in enumerate(group):
        for row in run["rows"]:
            if row["name"] in seen and row["net"] == "torchvision":
                continue  # every part measures the yardstick; show it once
            seen.add(row["name"])
            rows.append({**row, "run": index})
    rows.sort(key=lambda r: (r.get("group") != "main", 0))
    return {**newest, "rows": rows, "parts": len(group), "checks": newest.get("checks", [])}


def parser() -> Parser:
    """The benchmark's command line (``python -m tools.bench --help``)."""
    p = Parser(
        prog="python -m tools.bench",
        description="training images/s: torchvision alexnet vs the paper net, reference and fast",
    )
    p.add_argument("--device", default="auto", help="auto (cuda, then cpu), cuda or cpu")
    p.add_argument("--batch-size", type=int, help="default 512 on CUDA, 2 on the CPU")
    p.add_argument(
        "--steps", type=int, help="timed steps per row (default 20 on CUDA, 2 on the CPU)"
    )
    p.add_argument(
        "--warmup", type=int, help="untimed steps first, compilation included (default 8 / 1)"
    )
    p.add_argument(
        "--sweep",
        action="store_true",
        help="also each fast form alone, compile modes, no-LRN yardsticks",
    )
    p.add_argument(
        "--only", nargs="*", metavar="ROW", help="run only these rows (names as printed)"
    )
    p.add_argument(
        "--part",
        help="I/N: run the I-th of N slices of the rows (the torchvision row in each), "
        "for a sweep that must be split across several sittings",
    )
    p.add_argument(
        "--tiny", action="store_true", help="CI size: batch 2, eager; shows the code runs"
    )
    p.add_argument("--eager", action="store_true", help="do not torch.compile")
    p.add_argument("--no-check", action="store_true", help="skip the layer-by-layer equality check")
    p.add_argument(
        "--save",
        help="write the result JSON here (default on CUDA: results/bench/<date>-<gpu>.json)",
    )
    p.add_argument("--no-save", action="store_true")
    return p


def _part(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    pieces = text.split("/")
    if len(pieces) != 2 or not all(p.strip().isdigit() for p in pieces):
        raise SettingsError(f"--part must look like 1/3, got {text!r}")
    return int(pieces[0]), int(pieces[1])


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.bench [options]``; returns the exit status (1 when a row failed or a fast
    form differs from the reference layers, 2 for a bad request)."""
    return run_command(parser(), _bench, argv)


def _bench(args) -> int:
    result = run(
        device=args.device,
        batch_size=args.batch_size,
        steps=args.steps,
        warmup=args.warmup,
        sweep=args.sweep,
        tiny=args.tiny,
        compile=False if args.eager else None,
        only=args.only,
        part=_part(args.part),
        check=not args.no_check,
    )
    print()
    print(format_table(result))
    print()
    for line in summary_lines(result):
        print(line)
    if result["checks"]:
        print()
        print("every fast form against the reference layers (relative difference, float32):")
        print(format_checks(result))
    v = result["versions"]
    print()
    print("versions: " + ", ".join(f"{k} {v[k]}" for k in v if v[k] is not None))
    path = (
        Path(args.save)
        if args.save
        else (results_path(result) if result["settings"]["amp"] else None)
    )
    if path is not None and not args.no_save:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(result, indent=1))
        print(f"saved {path}")
    bad = [c for c in result["checks"] if not c["equal"]]
    failed = [r for r in result["rows"] if "error" in r]
    return 1 if bad or failed else 0


if __name__ == "__main__":
    sys.exit(main())
