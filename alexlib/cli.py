"""``python -m alexlib``: the book's command line.

    python -m alexlib info                      torch, device, data root, datasets present
    python -m alexlib data [--root DIR]         every dataset found, with split sizes
    python -m alexlib summary --variant paper   the layer table of a model variant
    python -m alexlib train --dataset imagenette --variant paper --scale smoke --out runs/x
    python -m alexlib train ... --out runs/x --resume
    python -m alexlib train --dataset cifar10 --variant cifar4 --scale full --out runs/c
    python -m alexlib evaluate --checkpoint runs/x/checkpoint.pt [--ten-crop]
    python -m alexlib ledger run --scale full   the paper-claims ledger's ablations (resumable)
    python -m alexlib ledger table              the ledger, generated from results/
    python -m alexlib figure 1 --scale laptop   one figure's runs at a scale (1, 3 or 4; resumable)

The project's own tooling is not part of this package: from a checkout of the repository,
``python -m tools.book`` builds the book, ``python -m tools.laptop`` runs every laptop-scale
result, ``python -m tools.bench`` measures training speed (``tools/__init__.py``).

Every error a user can cause (:class:`alexlib.errors.AlexlibError`, or a bad argument) is printed
as one line, ``error: ...``, with exit status 2; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import textwrap
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torchvision

from . import __version__
from ._io import results_dir
from .augment import INPUTS
from .config import SCALES, preset, resolve_device
from .data import DATASETS, cache_dir, data_root, find, load, search_locations, survey
from .engine import PRECISIONS, cpu_has_bf16
from .errors import AlexlibError, TrainingError
from .evaluate import predict, topk_errors
from .experiments import (
    REGIMES,
    backfill_activations,
    figure3_net,
    figure4_result,
    format_figure1,
    run_figure1,
    summarise_figure1,
)
from .ledger import add_arguments as add_ledger_arguments
from .model import VARIANTS, build, check_input_size, format_summary, options
from .train import TRAIN_FLAGS, RunSettings, load_checkpoint, model_from_checkpoint, train_run

__all__ = ["main", "print_info", "print_data"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: ...``, exit status 2), like the library's own."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _info(args) -> int:
    print_info(args.root)
    return 0


def print_info(root: str | None = None) -> None:
    """Print the library and torch versions, the device torch will use, the data root and the
    datasets present."""
    print(f"alexlib      {__version__}")
    print(f"python       {platform.python_version()} ({sys.executable})")
    print(f"torch        {torch.__version__} (torchvision {torchvision.__version__})")
    device = resolve_device("auto")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        print(f"device       cuda: {name} ({torch.cuda.device_count()} GPU(s))")
    else:
        print(f"device       {device.type} ({torch.get_num_threads()} threads; no CUDA GPU seen)")
        print(
            "cpu          "
            + (
                "bf16 instructions: yes (bf16 runs compute in it natively)"
                if cpu_has_bf16()
                else "bf16 instructions: no (bf16 runs train in fp32 here)"
            )
        )
    base, how = data_root(root)
    print(f"data root    {base} ({how}){'' if base.is_dir() else '  [does not exist]'}")
    print(f"cache        {cache_dir()}")
    for name in DATASETS:
        found = find(name, root)
        print(f"  {name:17s} {'present: ' + str(found.location) if found else 'not found'}")


def _data(args) -> int:
    print_data(args.root)
    return 0


def print_data(root: str | None = None) -> None:
    """Print every dataset found under the data root, with its split sizes, and where the missing
    ones were sought."""
    base, how = data_root(root)
    print(f"data root: {base} ({how})")
    missing = []
    for row in survey(root):
        if not row["found"]:
            missing.append(row["name"])
            continue
        sizes = "  ".join(f"{split} {n}" for split, n in row["splits"].items())
        counts = "/".join(str(n) for n in row["splits"].values())
        where = Path(row["location"])
        where = where.relative_to(base) if where.is_relative_to(base) else where
        print(f"{row['name']:17s} {counts:12s} {sizes}  ({row.get('classes', '?')} classes)")
        print(f"{'':17s} {row['format']}; in {where}")
        if "error" in row:
            print(f"  problem: {row['error']}")  # one line, as every error is
    for name in missing:
        places = ", ".join(str(p.relative_to(base)) for p, _ in search_locations(name, base))
        print(
            textwrap.fill(
                f"{name:17s} not found (looked for {places} under the data root)",
                88,
                subsequent_indent=" " * 18,
            )
        )


def _summary(args) -> int:
    takes = options(args.variant)  # an unknown variant is a SettingsError
    size = args.image_size or (32 if args.variant == "cifar4" else 224)
    kw = {"input_size": size} if "input_size" in takes else {}
    check_input_size(args.variant, size, **kw)
    model = build(args.variant, num_classes=args.num_classes, **kw)
    print(format_summary(model, input_size=(3, size, size)))
    return 0


def _train(args) -> int:
    overrides = {k: getattr(args, k) for k in TRAIN_FLAGS}
    overrides.update(
        dataset=args.dataset,
        variant=args.variant,
        compile=args.compile or None,
        fast=False if args.reference_layers else None,
    )
    settings = RunSettings.for_scale(args.scale, **overrides)
    distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ  # launched by torchrun
    if distributed:
        backend = "nccl" if settings.device != "cpu" and torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        if backend == "nccl":
            local = int(os.environ.get("LOCAL_RANK", 0))
            if local >= torch.cuda.device_count():
                raise TrainingError(
                    "torchrun started more processes on this machine than it has GPUs "
                    f"({torch.cuda.device_count()}): use --nproc_per_node equal to the number of "
                    "GPUs, or --device cpu for a CPU (gloo) run."
                )
            torch.cuda.set_device(local)
            settings.device = f"cuda:{local}"
    try:
        result = train_run(settings, args.out, resume=args.resume, progress=not args.quiet)
    finally:
        if distributed:
            dist.destroy_process_group()
    if not distributed or int(os.environ["RANK"]) == 0:
        print(
            f"done: val top-1 error {result['val_top1_err']:.2f}%, top-5 "
            f"{result['val_top5_err']:.2f}% "
            f"after epoch {result['epoch']}; run folder {result['out']}"
        )
    return 0


def _evaluate(args) -> int:
    checkpoint = load_checkpoint(args.checkpoint)
    model, settings, _ = model_from_checkpoint(checkpoint)
    device = resolve_device(args.device)
    model.to(device)
    val = settings.load_split("val", root=args.root)
    views = ["center"] + (["ten"] if args.ten_crop else [])
    print(
        f"{settings.variant} on {settings.dataset} val ({len(val)} images), epoch "
        f"{checkpoint['epoch']}, {settings.inputs} inputs"
    )
    for v in views:
        # the model carries the statistics it was trained with: its own preprocessing, always
        errors = topk_errors(
            predict(model, val.images, views=v, crop=settings.crop, device=device), val.labels
        )
        print(
            f"  {v + ' crop' if v == 'center' else 'ten views':12s} top-1 error "
            f"{errors['top1_err']:6.2f}%   top-5 error {errors['top5_err']:6.2f}%"
        )
    return 0


def _figure(args) -> int:
    """Run one figure's experiment at a scale and store it under ``results/`` with provenance;
    what is stored already is read back, and a stopped run continues from its checkpoint."""
    started = time.perf_counter()
    runs_dir = Path(args.runs)
    tag = args.tag or args.scale
    if args.number == "1":
        store = results_dir() / "figure1"
        regimes = [args.regime] if args.regime else sorted(REGIMES)
        # every regime's first seed, then its further seeds (at the first-guess rates), then
        # every regime's rate search
        for first_seeds, search in ((1, False), (None, False), (None, True)):
            for regime in regimes:
                runs = run_figure1(
                    args.scale,
                    regime=regime,
                    data_root=args.data_root,
                    store=store,
                    state_dir=runs_dir / "figure1",
                    search=search,
                    first_seeds=first_seeds,
                )
                print(f"\n{regime} regime:\n" + format_figure1(summarise_figure1(runs)))
        data = load("cifar10", "train", root=args.data_root, progress=False)
        for regime in regimes:
            backfill_activations(args.scale, regime, store, runs_dir / "figure1", data)
        print("stored in", store)
    elif args.number == "3":
        s = preset("figure3", args.scale)
        jobs = [("paper", seed) for seed in s["seeds"]]
        jobs += [(variant, s["seeds"][0]) for variant in s["variants"]]
        for variant, seed in jobs:
            figure3_net(variant, args.scale, seed, tag, runs_dir, args.data_root)
    else:
        figure4_result(args.scale, tag, runs_dir, args.data_root)
    print(f"figure {args.number} at {args.scale} scale: {time.perf_counter() - started:.0f} s")
    return 0


def _train_arguments(p: argparse.ArgumentParser, root_help: str) -> None:
    """The ``train`` command's flags: what to train, where, and each setting a run may change."""
    p.add_argument(
        "--dataset", default="imagenette", help="cifar10, imagenette, imagenet, or a folder/zip"
    )
    p.add_argument("--variant", default="paper", help=f"one of: {', '.join(VARIANTS)}")
    p.add_argument("--scale", choices=SCALES, default="smoke")
    p.add_argument(
        "--out", required=True, help="run folder: settings.json, metrics.jsonl, checkpoint.pt"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--schedule", choices=("plateau", "fixed", "constant"))
    p.add_argument("--train-per-class", type=int)
    p.add_argument("--val-per-class", type=int)
    p.add_argument("--dropout", type=float)
    p.add_argument(
        "--image-size",
        type=int,
        help="images are rescaled and centre-cropped to this (default 256; CIFAR-10: 32)",
    )
    p.add_argument(
        "--crop", type=int, help="training patches and test views (default 224; CIFAR-10: 24)"
    )
    p.add_argument(
        "--inputs",
        choices=INPUTS,
        help="input convention (default: the variant's; mean-image for the paper's nets)",
    )
    p.add_argument("--device")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="the arithmetic on CUDA (default auto: bf16 where the GPU has it, compute capability "
        "8.0+; fp16 with a gradient scaler below, such as Colab's T4; fp32 on the CPU)",
    )
    p.add_argument("--root", dest="data_root", help=root_help)
    p.add_argument("--compile", action="store_true", help="torch.compile the network")
    p.add_argument(
        "--checkpoint-minutes",
        type=float,
        help="at most one checkpoint every this many minutes, always one after the last epoch "
        "(default 0: after every epoch)",
    )
    p.add_argument(
        "--reference-layers",
        action="store_true",
        help="train with PyTorch's stock layers on CUDA too (default: alexlib.fast's equal, faster "
        "forms)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m alexlib", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    root_help = "data root (default: $ALEXLIB_DATA, else the per-user cache folder)"

    p = sub.add_parser("info", help="torch, device, data root, which datasets are present")
    p.add_argument("--root", help=root_help)
    p.set_defaults(run=_info)

    p = sub.add_parser("data", help="each dataset found, with its split sizes")
    p.add_argument("--root", help=root_help)
    p.set_defaults(run=_data)

    p = sub.add_parser("summary", help="the layer table of a model variant")
    p.add_argument("--variant", default="paper", help=f"one of: {', '.join(VARIANTS)}")
    p.add_argument("--image-size", type=int, help="default: 224, or 32 for cifar4")
    p.add_argument("--num-classes", type=int, help="default: 1000 (ImageNet), 10 for cifar4")
    p.set_defaults(run=_summary)

    p = sub.add_parser("train", help="train a variant with the paper's recipe (resumable)")
    _train_arguments(p, root_help)
    p.set_defaults(run=_train)

    p = sub.add_parser(
        "evaluate", help="top-1/top-5 error of a checkpoint, centre crop (and ten views)"
    )
    p.add_argument("--checkpoint", required=True)
    p.add_argument(
        "--ten-crop", action="store_true", help="also average the softmax over the ten test views"
    )
    p.add_argument("--root", help="data root (default: the run's, else $ALEXLIB_DATA)")
    p.add_argument("--device", default="auto")
    p.set_defaults(run=_evaluate)

    p = sub.add_parser(
        "figure",
        help="one figure's experiment at a scale, stored under results/ (resumable)",
        description="1: ReLU against tanh (Figure 1); 3: the two towers' conv1 kernels (Figure 3); "
        "4: the last hidden layer's nearest neighbours (Figure 4, from Figure 3's paper net)",
    )
    p.add_argument("number", choices=("1", "3", "4"), help="the paper's figure")
    p.add_argument("--scale", default="full", choices=SCALES)
    p.add_argument(
        "--regime", choices=sorted(REGIMES), help="figure 1: the regime to run (default: both)"
    )
    p.add_argument("--tag", help="results folder prefix (default: the scale)")
    p.add_argument("--root", dest="data_root", help=root_help)
    p.add_argument("--runs", default="runs", help="folder for the training runs' checkpoints")
    p.set_defaults(run=_figure)

    add_ledger_arguments(sub)  # ledger run|table: the paper-claims ledger
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except AlexlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
