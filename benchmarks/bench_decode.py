"""JPEG decoding on the CPU: torchvision's deprecated decoder against the ones alexlib uses, side by
side in one run.

    python benchmarks/bench_decode.py                # 300 Imagenette JPEGs from the data root
    python benchmarks/bench_decode.py --images 50    # fewer
    python benchmarks/bench_decode.py --tiny         # CI size: a few synthetic JPEGs, no data root

torchvision 0.29 deprecates its image decoders (``torchvision.io.decode_jpeg``), superseded by
torchcodec's. :func:`alexlib.data.decode_image` decodes a JPEG with torchcodec and anything else
(or everything, where torchcodec does not load) with Pillow; :func:`alexlib.data.decode_jpegs`
hands a batch to torchcodec (nvJPEG on CUDA). This script decodes the same encoded files, already
in memory, with each decoder present, in alternating rounds on one thread, and prints images/s
(best round) and each rate's ratio to torchvision's; it also checks that every decoder gives the
same pixels (the largest difference in grey levels). Compare numbers from one run only: a shared
machine's speed drifts between runs, and alternating rounds spread a drift over all decoders.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
import warnings
from pathlib import Path

import torch

from alexlib import data


def _torchvision():
    from torchvision.io import ImageReadMode, decode_jpeg

    def decode(buf: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return decode_jpeg(buf, mode=ImageReadMode.RGB)

    return decode


def _pillow():
    # alexlib's Pillow path (what decode_image falls back to), bytes to a (3, H, W) view
    return lambda buf: data._decode_pillow(buf.numpy().tobytes())


def _torchcodec():
    decode_jpeg = data._torchcodec_jpeg()
    return None if decode_jpeg is None else (lambda buf: decode_jpeg(buf, mode="RGB"))


def _alexlib():
    # the library's decoder: torchcodec for a JPEG (after a look at the file's first two bytes)
    return lambda buf: data.decode_image(buf.numpy().tobytes())


DECODERS = {
    "torchvision.io.decode_jpeg (deprecated)": _torchvision,
    "Pillow": _pillow,
    "torchcodec.decoders.decode_jpeg": _torchcodec,
    "alexlib.data.decode_image": _alexlib,
}


def real_files(n: int, root: str | None) -> tuple[list[torch.Tensor], str]:
    """The encoded bytes of ``n`` Imagenette training JPEGs (a seeded, class-balanced subset)."""
    split = data.open_split("imagenette", "train", root=root)
    pick = data.balanced_indices(split.labels, max(1, -(-n // len(split.classes))), seed=0)[:n]
    files = [torch.frombuffer(bytearray(split.read_bytes(int(i))), dtype=torch.uint8) for i in pick]
    return files, f"{len(files)} Imagenette JPEGs from {split.location}"


def synthetic_files(n: int) -> tuple[list[torch.Tensor], str]:
    """``n`` small JPEGs of smooth random colour fields (CI size)."""
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    files = []
    for _ in range(n):
        field = torch.rand(3, 8, 8, generator=g) * 255
        im = torch.nn.functional.interpolate(field[None], size=(96, 128), mode="bilinear")[0]
        pixels = im.clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
        out = io.BytesIO()
        Image.fromarray(pixels).save(out, "JPEG", quality=90)
        files.append(torch.frombuffer(bytearray(out.getvalue()), dtype=torch.uint8))
    return files, f"{n} synthetic 128x96 JPEGs"


def measure(files: list[torch.Tensor], rounds: int) -> dict:
    """Images per second of each decoder present (best of ``rounds`` alternating rounds), its
    ratio to torchvision's, and its largest pixel difference from torchvision's output."""
    decoders = {name: make() for name, make in DECODERS.items()}
    decoders = {name: fn for name, fn in decoders.items() if fn is not None}
    reference = [decoders[next(iter(decoders))](f) for f in files]
    best = dict.fromkeys(decoders, float("inf"))
    for _ in range(rounds):
        for name, fn in decoders.items():
            start = time.perf_counter()
            for f in files:
                fn(f)
            best[name] = min(best[name], time.perf_counter() - start)
    base = len(files) / best[next(iter(decoders))]
    out = {}
    for name, fn in decoders.items():
        diff = max(int((fn(f).int() - r.int()).abs().max()) for f, r in zip(files, reference))
        rate = len(files) / best[name]
        out[name] = {"images_per_s": rate, "ratio": rate / base, "max_diff": diff}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300, help="how many JPEGs (default 300)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--root", help="data root (default: $ALEXLIB_DATA, else the cache)")
    parser.add_argument("--tiny", action="store_true", help="CI size: 8 synthetic JPEGs")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # one decode per thread, as in a DataLoader worker
    if args.tiny:
        files, what = synthetic_files(8)
        args.rounds = 2
    else:
        files, what = real_files(args.images, args.root)
    results = measure(files, args.rounds)
    print(f"{what}, best of {args.rounds} rounds, 1 thread, torch {torch.__version__}")
    for name, r in results.items():
        print(
            f"  {name:42s} {r['images_per_s']:8.0f} images/s  {r['ratio']:.2f}x  "
            f"(largest pixel difference: {r['max_diff']})"
        )
    report = {"files": what, "rounds": args.rounds, "decoders": results}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    try:
        main()
    except data.DataError as exc:
        sys.exit(f"error: {exc}")
