"""The laptop scale's CPU training step (and evaluation pass) against plain eager PyTorch, side by
side in one run.

    python benchmarks/bench_cpu.py                 # batch 128, the nets the laptop runs train
    python benchmarks/bench_cpu.py --tiny          # CI size: a few steps of small batches

For each net the laptop-scale runs train (``cifar4``: Figure 1 on 32x32 images; ``mini``: the
ledger's net on 24x24 crops; ``paper`` at 128 pixels: the Imagenette net) it times one SGD step
(forward, backward, update, through :func:`alexlib.engine.train_step`) on a batch already in
memory, two ways, alternating, in the same process:

* **plain**: the net as built, contiguous (NCHW) tensors, PyTorch's own LRN;
* **alexlib**: what ``alexlib.train.train_run`` and ``alexlib.experiments.train_resident`` do on a
  CPU: channels-last weights and batches, and LRN as one banded matmul
  (``alexlib.fast.speed_up(model, lrn="banded")``).

It then times the evaluation pass the same two ways (eval mode, no gradients: what the ten-view
scoring and Figure 4's features run), with :func:`alexlib.fast.for_device` as the alexlib form.

Each form is timed twice: in fp32, and under CPU autocast to bf16 (``--precision bf16`` of
``python -m alexlib train``; ``run_figure1(precision="bf16")``), which runs the convolutions and
matrix products in bf16: natively where the CPU has bf16 instructions (AVX512-BF16, AMX), emulated
(and slower) where it has none. The bf16 columns always measure bf16, emulated or not: on a CPU
without those instructions they show what the library avoids there (its training falls back to
fp32, ``alexlib.engine.precision_for``). The thread count and whether the CPU has bf16
instructions are printed (``--threads`` sets the count); ``--json`` stores the numbers with the
machine, commit and date.

Both compute the same function (the test checks the losses agree); the ratio alexlib / plain is
what the laptop runs gain. Compare only numbers from the same run: a shared machine's speed drifts
between runs, and rounds alternate the two forms so that a drift hits both.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

import torch

from alexlib._io import provenance
from alexlib.engine import train_step
from alexlib.fast import for_device
from alexlib.model import build

# (name, variant, build options, input side)
NETS = (
    ("cifar4 (Figure 1)", "cifar4", {}, 32),
    ("mini (ledger)", "mini", {}, 24),
    ("paper at 128 px (Imagenette)", "paper", {"input_size": 128, "num_classes": 10}, 128),
)


# (name, alexlib's CPU form?, arithmetic): the same net four ways
FORMS = (
    ("plain", False, "fp32"),
    ("alexlib", True, "fp32"),
    ("plain bf16", False, "bf16"),
    ("alexlib bf16", True, "bf16"),
)


def _prepared(variant: str, options: dict, fast: bool, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build(variant, **options)
    return for_device(model, "cpu") if fast else model


def _arithmetic(amp: str):
    """CPU autocast to bf16 for ``"bf16"``, whether or not the CPU has bf16 instructions (the
    library's own ``alexlib.engine.autocast`` would fall back to fp32 there, and the column would
    time fp32 twice); nothing for ``"fp32"``."""
    if amp == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def measure(
    variant: str,
    options: dict,
    side: int,
    *,
    batch: int,
    steps: int,
    warmup: int,
    rounds: int,
    mode: str = "train",
) -> dict:
    """Images per second of both forms (best round of ``rounds``, each ``steps`` timed steps after
    ``warmup``), and each form's first loss (the same weights and batch: they agree). ``mode``:
    ``"train"`` times SGD steps, ``"eval"`` forward passes in eval mode without gradients."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, side, side, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    forms = {}
    for name, fast, amp in FORMS:
        model = _prepared(variant, options, fast, seed=0)
        xb = x.contiguous(memory_format=torch.channels_last) if fast else x
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        forms[name] = {"model": model, "x": xb, "opt": opt, "best": 0.0, "loss": None, "amp": amp}
    for state in forms.values():
        state["model"].eval()  # dropout off: every form sees the same function
        with torch.no_grad(), _arithmetic(state["amp"]):
            state["loss"] = torch.nn.functional.cross_entropy(state["model"](state["x"]), y).item()
        state["model"].train(mode == "train")

    def step(state):
        with _arithmetic(state["amp"]):
            if mode == "train":
                train_step(state["model"], state["x"], y, state["opt"])
            else:
                with torch.no_grad():
                    state["model"](state["x"])

    for state in forms.values():
        for _ in range(warmup):
            step(state)
    for _ in range(rounds):
        for state in forms.values():
            started = time.perf_counter()
            for _ in range(steps):
                step(state)
            rate = steps * batch / (time.perf_counter() - started)
            state["best"] = max(state["best"], rate)
    return {name: {"images_per_s": s["best"], "first_loss": s["loss"]} for name, s in forms.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="CI size: batch 8, 1 step, 1 round")
    parser.add_argument("--json", help="also write the numbers to this file")
    parser.add_argument("--threads", type=int, help="torch's CPU threads (default: its own)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.tiny:
        args.batch_size, args.steps, args.warmup, args.rounds = 8, 1, 1, 1
    started = time.perf_counter()
    made = provenance()
    native = made["cpu_bf16"]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, "
        f"best of {args.rounds} rounds of {args.steps} steps"
    )
    print(
        f"CPU: {made['cpu']}, {torch.backends.cpu.get_cpu_capability()}; bf16 instructions: "
        + (
            "yes (the bf16 columns are native bf16)"
            if native
            else "no (the bf16 columns are emulated bf16; --precision bf16 trains in fp32 here)"
        )
    )
    result = {
        "provenance": made,
        "cpu_bf16": native,
        "batch_size": args.batch_size,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "nets": {},
        "eval": {},
    }
    names = [name for name, _, _ in FORMS]
    for mode, key in (("train", "nets"), ("eval", "eval")):
        print(
            f"\n{'training step' if mode == 'train' else 'evaluation pass (no gradients)'}: "
            "images/s (each form / plain fp32)"
        )
        print(f"{'net':>29} " + " ".join(f"{n:>18}" for n in names))
        for label, variant, options, side in NETS:
            got = measure(
                variant,
                options,
                side,
                batch=args.batch_size,
                steps=args.steps,
                warmup=args.warmup,
                rounds=args.rounds,
                mode=mode,
            )
            base = got["plain"]["images_per_s"]
            ratios = {n: got[n]["images_per_s"] / base for n in names}
            result[key][variant] = {**got, "ratio": ratios["alexlib"], "ratios": ratios}
            cells = [f"{got[n]['images_per_s']:>10.0f} ({ratios[n]:.2f}x)" for n in names]
            print(f"{label:>29} " + " ".join(f"{c:>18}" for c in cells))
    result["wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
