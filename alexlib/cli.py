"""``python -m alexlib``: the book's command line.

    python -m alexlib info                      torch, device, data root, datasets present
    python -m alexlib data [--root DIR]         every dataset found, with split sizes
    python -m alexlib summary --variant paper   the layer table of a model variant
    python -m alexlib book [--scale smoke]      execute every chapter and build the HTML book
"""

from __future__ import annotations

import argparse
import platform
import sys


def _info(args) -> int:
    print_info(args.root)
    return 0


def print_info(root: str | None = None) -> None:
    """Print the library and torch versions, the device torch will use, the data root and the datasets present."""
    import torch
    import torchvision

    from alexlib import __version__
    from alexlib.config import resolve_device
    from alexlib.data import cache_dir, data_root, find, DATASETS

    print(f"alexlib      {__version__}")
    print(f"python       {platform.python_version()} ({sys.executable})")
    print(f"torch        {torch.__version__} (torchvision {torchvision.__version__})")
    device = resolve_device("auto")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        print(f"device       cuda: {name} ({torch.cuda.device_count()} GPU(s))")
    else:
        print(f"device       {device.type} ({torch.get_num_threads()} threads; no CUDA GPU seen)")
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
    """Print every dataset found under the data root, with its split sizes, and where the missing ones were sought."""
    from alexlib.data import data_root, survey, search_locations

    base, how = data_root(root)
    print(f"data root: {base} ({how})")
    missing = []
    for row in survey(root):
        if not row["found"]:
            missing.append(row["name"])
            continue
        sizes = "  ".join(f"{split} {n}" for split, n in row["splits"].items())
        counts = "/".join(str(n) for n in row["splits"].values())
        print(f"{row['name']:17s} {counts:12s} {sizes}  ({row.get('classes', '?')} classes; {row['format']}; "
              f"{row['location']})")
        if "error" in row:
            print(f"  problem: {row['error']}")
    for name in missing:
        places = ", ".join(str(p.relative_to(base)) for p, _ in search_locations(name, base))
        print(f"{name:17s} not found (looked for {places} under the data root)")


def _summary(args) -> int:
    from alexlib.model import build, format_summary

    model = build(args.variant, num_classes=args.num_classes)
    print(format_summary(model, input_size=(3, args.image_size, args.image_size)))
    return 0


def _book(args) -> int:
    from alexlib.book import main_job

    return main_job(scale=args.scale, execute=not args.no_execute, check=args.check, only=args.only)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alexlib", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="torch, device, data root, which datasets are present")
    p.add_argument("--root", help="data root (default: $ALEXLIB_DATA, else the per-user cache folder)")
    p.set_defaults(run=_info)

    p = sub.add_parser("data", help="each dataset found, with its split sizes")
    p.add_argument("--root", help="data root (default: $ALEXLIB_DATA, else the per-user cache folder)")
    p.set_defaults(run=_data)

    p = sub.add_parser("summary", help="the layer table of a model variant")
    p.add_argument("--variant", default="paper")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--num-classes", type=int, default=1000)
    p.set_defaults(run=_summary)

    p = sub.add_parser("book", help="execute every chapter with papermill and build the HTML book")
    p.add_argument("--scale", choices=("smoke", "full"), default="smoke")
    p.add_argument("--no-execute", action="store_true", help="build from the chapters executed last time")
    p.add_argument("--check", action="store_true", help="then check every page in headless Chromium")
    p.add_argument("--only", nargs="*", help="execute only these chapters (file stems, e.g. 00_how_to_use)")
    p.set_defaults(run=_book)

    args = parser.parse_args(argv)
    from alexlib.book import BookError
    from alexlib.data import DataError

    try:
        return args.run(args)
    except (DataError, BookError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
