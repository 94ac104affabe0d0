"""Images per second of the input pipelines and of a training step, measured side by side in one
run.

    python benchmarks/bench_pipeline.py                      # the device's defaults (a GPU if any)
    python benchmarks/bench_pipeline.py --tiny --device cpu  # CI size: seconds on a laptop CPU

What it measures, on one device, in one process (compare only numbers from the same run):

* **GPU pipeline** (``alexlib.augment.GPULoader``): the dataset resident on the device as uint8
  256x256, each batch cropped, reflected, mean-subtracted and colour-shifted there with tensor ops;
* **CPU pipeline** (``alexlib.augment.cpu_loader``): the same transforms one image at a time in
  ``DataLoader`` workers (torchvision transforms v2), each batch then copied to the device;
* **stream pipeline** (``alexlib.augment.StreamLoader``): Imagenette's JPEG files read by workers,
  decoded in batches on the device (torchcodec, via ``alexlib.data.decode_jpegs``), rescaled,
  cropped and augmented there (skipped when Imagenette is not under $ALEXLIB_DATA or --data);
* **training step** of the paper's net (``alexlib.model.build("paper")`` with
``alexlib.fast.speed_up``,
  as ``train_run`` trains it): forward, backward and an SGD step on a batch already on the device;
  bf16 autocast and channels-last on CUDA by default. (``python -m tools.bench`` compares that
  step with torchvision's ``alexnet``.)

The resident pipelines read synthetic uint8 images (their speed does not depend on the pixels); the
stream pipeline reads real JPEGs (decoding speed does). Each rate is images per second after warm-up
batches. The input never holds training up when the pipeline delivers images well ahead of the
training step; the summary line says whether the GPU pipeline does, with a margin of 3x.

Results (one run each; add a block with machine, torch version, date and the table for each GPU
run):

    2026-11-22, development VM, 2 shared CPU cores, torch 2.14.1, no GPU
    `--device cpu --batch-size 16 --steps 4 --warmup 1 --workers 2 --images 128`
      GPU pipeline (resident uint8 on cpu)     2,639 images/s
      CPU pipeline (DataLoader, per image)     1,696 images/s
      stream pipeline (JPEG bytes)               927 images/s
      training step (paper, fp32)                 20 images/s
    (a CPU trains the net so slowly that any pipeline keeps up; the numbers only show it runs.)

    H100: not measured yet (no GPU was available when this script was written; the CUDA code paths
    -- resident batches on the GPU, nvJPEG batch decode, bf16 channels-last training step -- have
    not been run).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import torch

try:
    import alexlib  # noqa: F401  (installed, e.g. pip install -e .)
except ImportError:  # run from a checkout without installing: use the repository's copy
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alexlib import augment as A  # noqa: E402
from alexlib import recipe  # noqa: E402
from alexlib.config import resolve_device  # noqa: E402
from alexlib.data import open_split  # noqa: E402
from alexlib.engine import sgd_paper, train_step  # noqa: E402
from alexlib.errors import DataError  # noqa: E402
from alexlib.fast import speed_up  # noqa: E402
from alexlib.model import build  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(batches, device: torch.device, warmup: int, steps: int, consume=None) -> float:
    """Images per second over ``steps`` batches of an iterator, after ``warmup`` batches."""
    it = iter(batches)
    for _ in range(warmup):
        x = next(it)[0]
        if consume:
            consume(x)
    _sync(device)
    n, start = 0, time.perf_counter()
    for _ in range(steps):
        x = next(it)[0]
        if consume:
            consume(x)
        n += len(x)
    _sync(device)
    return n / (time.perf_counter() - start)


def _cycle(loader):
    """Batches from ``loader``, epoch after epoch."""
    while True:
        yield from loader


def bench_gpu_pipeline(images, labels, stats, args, device) -> float:
    loader = A.GPULoader(
        images,
        labels,
        stats,
        batch_size=args.batch_size,
        crop=args.crop,
        device=device,
        dtype=torch.float32,
    )
    return _rate(_cycle(loader), device, args.warmup, args.steps)


def _worker_counts(args) -> tuple[int, int]:
    """Warm-up and timed batches for a loader with workers. Each worker prepares 2 batches ahead
    (``prefetch_factor``); those are drained untimed, and at least as many again are timed, so that
    the rate is the workers' steady rate, not the speed of reading a full queue."""
    ahead = 2 * args.workers
    return args.warmup + ahead, max(args.steps, ahead)


def bench_cpu_pipeline(images, labels, stats, args, device) -> float:
    loader = A.cpu_loader(
        images, labels, stats, batch_size=args.batch_size, crop=args.crop, num_workers=args.workers
    )

    def to_device(x):  # the training step needs the batch where the model is
        x.to(device, non_blocking=True)

    return _rate(_cycle(loader), device, *_worker_counts(args), consume=to_device)


def bench_stream_pipeline(stats, args, device) -> float | None:
    try:
        split = open_split("imagenette", "train", root=args.data)
    except DataError as exc:
        print(f"stream pipeline skipped: {str(exc).splitlines()[0]}", file=sys.stderr)
        return None
    warmup, steps = _worker_counts(args)
    needed = (warmup + steps) * args.batch_size
    if len(split) > needed:  # a random sample of the files, so each class and size is represented
        split = split.subset(
            torch.randperm(len(split), generator=torch.Generator().manual_seed(0))[:needed]
        )
    loader = A.StreamLoader(
        split,
        stats,
        batch_size=args.batch_size,
        crop=args.crop,
        device=device,
        num_workers=args.workers,
    )
    return _rate(_cycle(loader), device, warmup, steps)


def bench_train_step(args, device) -> float:
    model = build(args.model).to(device)
    cuda = device.type == "cuda"
    memory_format = (
        torch.channels_last if cuda and not args.no_channels_last else torch.contiguous_format
    )
    model = model.to(memory_format=memory_format)
    speed_up(model, device=device)  # as alexlib.train.train_run trains it (a no-op on the CPU)
    step_model = torch.compile(model) if args.compile else model
    optimiser = sgd_paper(model, lr=0.01)  # fused on CUDA
    x = torch.randn(args.batch_size, 3, args.crop, args.crop, device=device).to(
        memory_format=memory_format
    )
    y = torch.randint(0, 1000, (args.batch_size,), device=device)

    def step(_):  # the engine's training step, as train_run takes it
        train_step(step_model, x, y, optimiser, amp=cuda and not args.fp32)

    return _rate(itertools.repeat((x, y)), device, args.warmup, args.steps, consume=step)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="auto", help="auto (cuda, then cpu), cuda or cpu")
    p.add_argument(
        "--images", type=int, default=None, help="images resident for the GPU/CPU pipelines"
    )
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--steps", type=int, default=None, help="timed batches per measurement")
    p.add_argument("--warmup", type=int, default=None, help="untimed batches first")
    p.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default: all cores)"
    )
    p.add_argument("--crop", type=int, default=recipe.CROP)
    p.add_argument(
        "--model", default="paper", help="alexlib.model.build variant for the training step"
    )
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the model for the training step"
    )
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument(
        "--data", default=None, help="data root with imagenette (default: $ALEXLIB_DATA)"
    )
    p.add_argument("--no-stream", action="store_true", help="skip the JPEG stream measurement")
    p.add_argument(
        "--tiny",
        action="store_true",
        help="CI size: a few small batches, no workers; seconds on a CPU",
    )
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    cuda = resolve_device(args.device).type == "cuda"
    # (tiny, cuda, cpu) defaults
    defaults = {
        "images": (8, 4096, 256),
        "batch_size": (2, 256, 32),
        "steps": (1, 20, 4),
        "warmup": (1, 3, 1),
        "workers": (0, os.cpu_count() or 1, os.cpu_count() or 1),
    }
    for name, (tiny, on_cuda, on_cpu) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else on_cuda if cuda else on_cpu)
    for name in ("images", "batch_size", "steps", "warmup"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.images < args.batch_size:
        p.error(f"--images ({args.images}) must be at least --batch-size ({args.batch_size})")
    return args


def main(argv=None) -> dict:
    """Run every measurement; print a table and the ratios; return them as a dict."""
    args = parse_args(argv)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    images = torch.randint(
        0, 256, (args.images, 3, recipe.IMAGE_SIZE, recipe.IMAGE_SIZE), dtype=torch.uint8
    )
    labels = torch.randint(0, 1000, (args.images,))
    stats = A.dataset_stats(images, cache=False)

    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU ({os.cpu_count()} cores)"
    )
    print(
        f"device: {name}; torch {torch.__version__}; batch {args.batch_size}; crop {args.crop}; "
        f"{args.steps} timed batches after {args.warmup}; {args.workers} DataLoader workers"
    )
    rates = {
        "gpu_pipeline": bench_gpu_pipeline(images, labels, stats, args, device),
        "cpu_pipeline": bench_cpu_pipeline(images, labels, stats, args, device),
        "stream_pipeline": None if args.no_stream else bench_stream_pipeline(stats, args, device),
        "train_step": bench_train_step(args, device),
    }
    labels_ = {
        "gpu_pipeline": f"GPU pipeline (resident uint8 on {device.type}, batch ops)",
        "cpu_pipeline": "CPU pipeline (DataLoader, per image)",
        "stream_pipeline": "stream pipeline (JPEG bytes, batch decode)",
        "train_step": f"training step ({args.model}{', compiled' if args.compile else ''})",
    }
    for key, rate in rates.items():
        print(f"  {labels_[key]:<46} {'skipped' if rate is None else f'{rate:12,.0f} images/s'}")
    train = rates["train_step"]
    ratios = {
        f"{k}/train_step": v / train
        for k, v in rates.items()
        if v is not None and k != "train_step"
    }
    ratios["gpu_pipeline/cpu_pipeline"] = rates["gpu_pipeline"] / rates["cpu_pipeline"]
    for key, r in ratios.items():
        print(f"  ratio {key:<40} {r:8.2f}x")
    keeps_up = ratios["gpu_pipeline/train_step"] >= 3
    print(
        f"  GPU pipeline >= 3x the training step (input never holds training up): "
        f"{'yes' if keeps_up else 'no'} on {name}"
        + ("" if device.type == "cuda" else " (a CPU trains so slowly that this says little)")
    )
    result = {
        "device": name,
        "torch": torch.__version__,
        "args": vars(args),
        "images_per_s": rates,
        "ratios": ratios,
        "keeps_up": keeps_up,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
