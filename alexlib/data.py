"""Datasets: where they live, how they are listed, decoded once, and cached.

Every chapter gets its images through two calls:

- ``open_split(name, split)`` lists a split without decoding it (a :class:`Split`): file names,
  labels, class names, and ``read_bytes(i)`` / ``decode(i)`` for one image. Cheap even for ImageNet.
- ``load(name, split, size=..., per_class=...)`` decodes a split (or a seeded, class-balanced
subset)
  into one uint8 tensor ``(N, 3, H, W)`` and caches it on disk, so later runs and later epochs never
  decode a JPEG again (:class:`ImageTensors`).

Where the data root is: the ``root`` argument, else ``$ALEXLIB_DATA``, else the per-user cache
folder (``~/.cache/alexlib/data``). Known datasets and the layouts searched under that root:

========================  =====================================================================
``cifar10``               ``cifar10-jpeg/{train,test}.zip`` or ``.../{train,test}/`` (one folder per
                          class), or torchvision's official ``cifar-10-batches-py/``
``imagenette``            ``imagenette-224/train*.zip`` + ``val.zip`` (or folders), or torchvision's
                          ``imagenette2``, ``imagenette2-320``, ``imagenette2-160`` folders
``imagenet``              ``imagenet/`` or ``ILSVRC2012/`` with ``train/<wnid>/`` and
``val/<wnid>/``
``imagenet-samples``      ``imagenet-samples/images/<wnid>_<name>.JPEG`` (one split, ``all``)
any folder or ``.zip``    ImageFolder layout: ``[split/]<class>/<image>``
========================  =====================================================================

``download=True`` fetches a missing dataset: CIFAR-10 and Imagenette (320px) through
torchvision from their public hosts; the ImageNet sample photos from the public repository
EliSchwartz/imagenet-sample-images (one photo of each ILSVRC-2012 class; every 10th class is kept,
shorter side reduced to 256 pixels). With ``$ALEXLIB_DATA_URL`` set, every dataset is fetched from
there instead: a web server holding a data root (the layouts above) and a ``SHA256SUMS`` file that
lists its files (``find . -type f ! -name SHA256SUMS | xargs sha256sum > SHA256SUMS``), e.g. a lab's
copy of the data for Colab or GPU machines. ``download`` left unset follows ``$ALEXLIB_DOWNLOAD``
(``1``: fetch), which a chapter's ``get_config(..., download=DOWNLOAD)`` sets for the whole kernel
and the processes it starts (the training runs of the library read data themselves).

Images are decoded to RGB (JPEGs by torchcodec, other formats by Pillow, which also stands in
where torchcodec does not load): greyscale and CMYK are converted (the paper replicated greyscale
into three channels), palette images are expanded, and an alpha channel is dropped.
:func:`decode_jpegs` decodes a batch of JPEG files on a device (nvJPEG on CUDA).

Paper: section 2 (the dataset) and section 4.1 (images are rescaled to 256x256).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import shutil
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from torchvision.datasets import CIFAR10, Imagenette
from torchvision.models import AlexNet_Weights
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from ._io import atomic_save, atomic_write, atomic_write_text, parse_sha256sums, sha256_file
from .config import DOWNLOAD_ENV
from .errors import DataError

DATA_ENV = "ALEXLIB_DATA"
CACHE_ENV = "ALEXLIB_CACHE"
DATA_URL_ENV = "ALEXLIB_DATA_URL"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm")
DATASETS = ("cifar10", "imagenette", "imagenet", "imagenet-samples")

# WordNet ids of Imagenette's ten classes and their ImageNet names (fast.ai's subset).
IMAGENETTE_CLASSES = {
    "n01440764": "tench",
    "n02102040": "English springer",
    "n02979186": "cassette player",
    "n03000684": "chain saw",
    "n03028079": "church",
    "n03394916": "French horn",
    "n03417042": "garbage truck",
    "n03425413": "gas pump",
    "n03445777": "golf ball",
    "n03888257": "parachute",
}
# The ImageNet sample photos: EliSchwartz/imagenet-sample-images holds one photo of each of the
# 1000 ILSVRC-2012 classes, named <wnid>_<name>.JPEG, and a gallery.md listing each class's index,
# name and WordNet id. Pinned to a commit, so the photos cannot change under the book.
SAMPLES_URL = (
    "https://raw.githubusercontent.com/EliSchwartz/imagenet-sample-images/"
    "bc69043e2862758a1906c6a24a792bb28c6bb2ff/"
)
SAMPLES_EVERY = 10  # keep the photo of classes 0, 10, 20, ...: 100 photos
SAMPLES_SIZE = 256  # shorter side (larger photos are reduced; smaller ones keep their size)
_GALLERY_ROW = re.compile(
    r"!\[[^\]]*\]\((n\d{8}_[^)\s]+\.JPEG)\)\s*<br/>\s*\*\*(.+?) \((\d+)\)\*\*\s*<br/>\s*`(n\d{8})`"
)
_SPLIT_ALIASES = {"val": ("val", "test", "valid", "validation"), "test": ("test", "val")}


# ----------------------------------------------------------------------------------- locations


def cache_dir() -> Path:
    """The per-user cache folder: ``$ALEXLIB_CACHE``, else ``$XDG_CACHE_HOME/alexlib``, else
    ``~/.cache/alexlib``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "alexlib"


def data_root(root: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The data root and where it came from: the argument, else ``$ALEXLIB_DATA``, else the cache
    folder."""
    if root is not None:
        base, how = Path(root).expanduser(), "argument"
    elif os.environ.get(DATA_ENV):
        base, how = Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV}"
    else:
        return cache_dir() / "data", "per-user cache folder (no argument, no $ALEXLIB_DATA)"
    if base.exists() and not base.is_dir():
        given = "--root / data_root" if how == "argument" else f"${DATA_ENV}"
        raise DataError(
            f"the data root {base} is a file, not a folder: point {given} at the folder that "
            "holds the datasets (python -m alexlib data lists what it finds there)"
        )
    return base, how


# ----------------------------------------------------------------------------------- the split


@dataclass
class Split:
    """One split of a dataset, listed but not decoded.

    ``files[i]`` is ``(source, member)``: a zip file and the member name inside it, or a folder and
    the path relative to it. ``labels[i]`` indexes ``classes`` (human-readable names) and
    ``class_ids`` (folder names, e.g. WordNet ids).
    """

    name: str
    split: str
    files: list[tuple[Path, str]]
    labels: torch.Tensor  # (N,) int64
    classes: list[str]
    class_ids: list[str]
    location: str = ""
    arrays: torch.Tensor | None = None  # (N, 3, H, W) uint8, for datasets shipped as pixel arrays
    _zips: dict = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self, i: int) -> str:
        if self.arrays is not None:
            return f"{self.location} [image {i}]"
        source, member = self.files[i]
        return f"{source}:{member}" if source.suffix == ".zip" else str(source / member)

    def _zip(self, path: Path) -> zipfile.ZipFile:
        # One handle per process and zip: a forked DataLoader worker must not share a file offset.
        key = (os.getpid(), path)
        with self._lock:
            if key not in self._zips:
                self._zips[key] = _open_zip(path)
            return self._zips[key]

    def read_bytes(self, i: int) -> bytes:
        """The encoded file of image ``i`` (e.g. JPEG bytes), for decoding elsewhere (e.g. on a
        GPU)."""
        if self.arrays is not None:
            raise DataError(
                f"{self.location} stores decoded pixels, not encoded files; use decode(i)."
            )
        source, member = self.files[i]
        try:
            if source.suffix == ".zip":
                return self._zip(source).read(member)
            return (source / member).read_bytes()
        except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
            raise DataError(
                f"cannot read {self.describe(i)}: {exc}. The archive or file is damaged; "
                "download or copy it again (with the shared data, check `sha256sum -c SHA256SUMS`)."
            ) from None

    def decode(self, i: int) -> torch.Tensor:
        """Image ``i`` as an RGB uint8 tensor ``(3, H, W)`` at the file's own size."""
        if self.arrays is not None:
            return self.arrays[i]
        return decode_image(self.read_bytes(i), self.describe(i))

    def subset(self, indices) -> Split:
        """The images at ``indices``, in that order, with the same class list."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return Split(
            name=self.name,
            split=self.split,
            files=[self.files[i] for i in idx.tolist()] if self.arrays is None else [],
            labels=self.labels[idx],
            classes=self.classes,
            class_ids=self.class_ids,
            location=self.location,
            arrays=None if self.arrays is None else self.arrays[idx],
        )

    def counts(self) -> list[int]:
        """Number of images per class."""
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(
            f"{path} is not a readable zip archive ({exc}); it is probably truncated or corrupt. "
            "Download or copy it again (with the shared data, check `sha256sum -c SHA256SUMS`)."
        ) from None


# ----------------------------------------------------------------------------------- decoding


def decode_image(data: bytes, where: str = "image") -> torch.Tensor:
    """Decode encoded image bytes to an RGB uint8 tensor ``(3, H, W)``: a channels-first view of
    the decoder's ``(H, W, 3)`` pixels, as torchvision's decoder gave (copying it to contiguous
    memory would cost a third of the decode; the copy into a batch does that anyway).

    Greyscale, CMYK and palette images become RGB; an alpha channel is dropped. A corrupt or
    truncated file raises :class:`DataError` naming it (never a partly grey image). A JPEG is
    decoded by torchcodec (libjpeg-turbo; about twice Pillow's speed, see
    ``benchmarks/bench_decode.py``); any other format, a JPEG that torchcodec refuses, or every
    file where torchcodec does not load, by Pillow. Both give the same pixels.
    """
    decode_jpeg = _torchcodec_jpeg() if data[:2] == b"\xff\xd8" else None
    if decode_jpeg is not None:
        try:
            return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        except RuntimeError:
            pass  # Pillow decodes it, or says what is wrong with it
    return _decode_pillow(data, where)


def _decode_pillow(data: bytes, where: str = "image") -> torch.Tensor:
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()  # raises on truncated data (PIL does not pad truncated images by default)
            if im.mode != "RGB":
                im = im.convert("RGB")
            array = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8)
            return array.view(im.height, im.width, 3).permute(2, 0, 1)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"cannot decode {where}: {exc}. The file is corrupt, truncated or not an image; "
            "delete or replace it (or re-extract its archive) and run again."
        ) from None


@functools.cache
def _torchcodec_jpeg():
    """torchcodec's JPEG decoder (RGB output by default), or None where torchcodec is missing or
    does not load with this torch (its wheels are built for one torch release)."""
    try:
        from torchcodec.decoders import decode_jpeg
    except (ImportError, OSError, RuntimeError):
        return None
    return decode_jpeg


def _nvjpeg_torchvision(tensors: list[torch.Tensor], device: torch.device):
    """The batch decoded by torchvision's nvJPEG decoder, or None where it is missing or refuses
    the batch (Pillow then decodes file by file, and names a file that is not a JPEG)."""
    try:
        from torchvision.io import ImageReadMode, decode_jpeg
    except ImportError:
        return None
    try:
        return decode_jpeg(tensors, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return None


def decode_jpegs(files: Sequence[torch.Tensor | bytes], device=None) -> list[torch.Tensor]:
    """Decode a batch of JPEG files (1-D uint8 tensors or bytes) to RGB uint8 tensors
    ``(3, H_i, W_i)`` on ``device``.

    With torchcodec the batch goes to its decoder in one call: nvJPEG on a CUDA device,
    libjpeg-turbo on the CPU (greyscale and CMYK converted by the decoder). Where torchcodec does
    not load, a CUDA batch goes to torchvision's nvJPEG decoder instead (an environment with an
    older torch, such as a GPU machine's own image), and otherwise Pillow decodes each file and the
    result is copied to the device: the same pixels, more slowly. A file that is not a valid JPEG
    raises :class:`DataError`.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    decode_jpeg = _torchcodec_jpeg()
    tensors = [
        f if torch.is_tensor(f) else torch.frombuffer(bytearray(f), dtype=torch.uint8)
        for f in files
    ]
    if decode_jpeg is None and device.type == "cuda":
        images = _nvjpeg_torchvision(tensors, device)
        if images is not None:
            return images
    if decode_jpeg is not None:
        try:
            return decode_jpeg(tensors, mode="RGB", device=device)
        except RuntimeError as exc:
            raise DataError(
                f"decoding a batch of {len(files)} JPEG files failed ({exc}); one of them is not a "
                "valid JPEG. Decode them one by one with alexlib.data.decode_image to find it "
                "(that decoder also reads PNG and other formats)."
            ) from None
    images = []
    for k, f in enumerate(files):
        data = f.numpy().tobytes() if torch.is_tensor(f) else bytes(f)
        images.append(_decode_pillow(data, f"file {k} of the batch").to(device))
    return images


def resize_center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Rescale so the shorter side is ``size``, then take the central ``size x size`` crop.

    ``(3, H, W)`` uint8 -> ``(3, size, size)`` uint8. Paper: section 2 ("we down-sampled the images
    to a fixed resolution of 256 x 256": shorter side to 256, then the central patch).
    """
    if image.shape[-2:] != (size, size):
        if min(image.shape[-2:]) != size:
            image = TF.resize(image, size, antialias=True)
        image = TF.center_crop(image, [size, size])
    return image


# ----------------------------------------------------------------------------------- listing


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS) and not Path(name).name.startswith(".")


def _walk(folder: Path) -> tuple[list[str], set[str]]:
    """Image files and sub-folders below ``folder``, as ``/``-separated relative paths (one pass, no
    stat per file: ImageNet's training split has 1.28 million files)."""
    files: list[str] = []
    dirs: set[str] = set()
    for here, subdirs, names in os.walk(folder):
        rel = os.path.relpath(here, folder).replace(os.sep, "/")
        prefix = "" if rel == "." else rel + "/"
        subdirs[:] = [d for d in subdirs if not d.startswith(".")]
        dirs.update(prefix + d for d in subdirs)
        files.extend(prefix + n for n in names if _is_image(n))
    return sorted(files), dirs


def _members(source: Path, split: str | None) -> tuple[Path, list[str], set[str]]:
    """The image members and folder names of one source (a zip, or a folder), relative to the part
    of it that holds ``split``: a folder's ``split/`` subfolder when it has one."""
    if source.suffix == ".zip":
        names = _open_zip(source).namelist()
        dirs = {m.rstrip("/") for m in names if m.endswith("/")}
        members = [m for m in names if not m.endswith("/")]
        # folders implied by member paths (zips need not store folder entries)
        dirs |= {m.rsplit("/", 1)[0] for m in members if "/" in m}
        return source, members, dirs
    if split is not None and (source / split).is_dir():
        source = source / split
    members, dirs = _walk(source)
    return source, members, dirs


def _split_entries(
    sources: list[Path], split: str | None
) -> tuple[list[tuple[Path, str]], list[str], set[str]]:
    """All ``(source, member)`` images of ``split`` in ImageFolder layout, their class folder names,
    and every class folder seen (empty ones included). ``split=None``: ``<class>/<image>`` at the
    top (or under one enclosing folder)."""
    entries: list[tuple[Path, str]] = []
    names: list[str] = []
    all_classes: set[str] = set()
    loose: list[str] = []
    for source in sources:
        base, members, dirs = _members(source, split)
        if base != source:  # a folder's split subfolder: its members are already relative to it
            prefix = ""
        else:
            prefix = _find_prefix(members, dirs, split)
        if prefix is None:
            continue
        for d in dirs:
            rest = d[len(prefix) :]
            if d.startswith(prefix) and rest and "/" not in rest:
                all_classes.add(rest)
        for m in members:
            if not m.startswith(prefix) or not _is_image(m):
                continue
            rest = m[len(prefix) :].split("/")
            if len(rest) == 1:
                loose.append(f"{base}:{m}" if base.suffix == ".zip" else str(base / m))
                continue
            entries.append((base, m))
            names.append(rest[0])
            all_classes.add(rest[0])
    if loose and not entries:
        raise DataError(
            f"found images directly in the split folder ({loose[0]} and {len(loose) - 1} more) but "
            "no class folders. Expected the ImageFolder layout [<split>/]<class>/<image>: put "
            "each image in a folder named after its class."
        )
    return entries, names, all_classes


def _find_prefix(members: list[str], dirs: set[str], split: str | None) -> str | None:
    """The member-name prefix under which ``split``'s class folders sit (e.g. ``"train/"`` or
    ``"imagenette2-320/train/"``), or None if this source has no such split."""
    if split is None:
        tops = {m.split("/", 1)[0] for m in members if "/" in m}
        if len(tops) == 1 and all(m.count("/") >= 2 for m in members if _is_image(m)):
            return tops.pop() + "/"  # a zip of one enclosing folder: top/<class>/<image>
        return ""
    candidates = set()
    for m in members[:: max(1, len(members) // 2000)] + sorted(dirs):
        parts = m.split("/")
        for k, part in enumerate(parts[:-1]):
            if part == split:
                candidates.add("/".join(parts[: k + 1]) + "/")
                break
    if not candidates:
        return None
    return min(candidates, key=len)


def _folder_split(
    name: str,
    location: Path,
    sources: list[Path],
    split: str,
    class_names: dict | None = None,
    reference: list[str] | None = None,
) -> Split:
    entries, names, all_classes = _split_entries(sources, split)
    if not entries:
        raise DataError(
            f"{name}: no images for split {split!r} in {', '.join(map(str, sources))}. Expected "
            f"the layout {split}/<class>/<image> (in a folder or a zip)."
        )
    empty = sorted(all_classes - set(names))
    if empty:
        raise DataError(
            f"{name}: class folder(s) {empty} in split {split!r} hold no images. An empty class "
            f"would shift "
            "the labels of every class after it: remove the folder(s) or put their images back."
        )
    class_ids = reference if reference is not None else sorted(set(names))
    index = {c: i for i, c in enumerate(class_ids)}
    unknown = sorted(set(names) - set(index))
    if unknown:
        raise DataError(
            f"{name}: split {split!r} has class folder(s) {unknown} that the training split does "
            "not have; labels would not match. Make both splits hold the same class folders."
        )
    order = sorted(range(len(entries)), key=lambda i: (names[i], entries[i][1]))
    files = [entries[i] for i in order]
    labels = torch.tensor([index[names[i]] for i in order], dtype=torch.long)
    classes = [class_names.get(c, c) if class_names else c for c in class_ids]
    return Split(name, split, files, labels, classes, class_ids, location=str(location))


# ----------------------------------------------------------------------------------- datasets


@dataclass
class Found:
    """A dataset located on disk: how to open each of its splits."""

    name: str
    location: Path
    format: str
    splits: tuple[str, ...]


def _zips_or_folder(folder: Path, split: str) -> list[Path]:
    """``split.zip``, ``split-*.zip`` or the folder ``split/`` inside ``folder``."""
    zips = sorted(folder.glob(f"{split}.zip")) + sorted(folder.glob(f"{split}-*.zip"))
    if zips:
        return zips
    if (folder / split).is_dir():
        return [folder]
    return []


def search_locations(name: str, root: Path) -> list[tuple[Path, str]]:
    """Where each known dataset may be under ``root``, with the format it would have there."""
    if name == "cifar10":
        return [
            (root / "cifar10-jpeg", "image folders (train/test)"),
            (root / "cifar10", "image folders (train/test)"),
            (root / "cifar-10-batches-py", "torchvision official"),
            (root / "cifar10" / "cifar-10-batches-py", "torchvision official"),
        ]
    if name == "imagenette":
        return [
            (root / "imagenette-224", "image folders (train/val)"),
            (root / "imagenette", "image folders (train/val)"),
        ] + [
            (root / d, "torchvision Imagenette")
            for d in ("imagenette2", "imagenette2-320", "imagenette2-160")
        ]
    if name == "imagenet":
        return [
            (root / d, "ILSVRC-2012 image folders (train/val)")
            for d in ("imagenet", "ILSVRC2012", "ilsvrc2012")
        ]
    if name == "imagenet-samples":
        return [(root / "imagenet-samples" / "images", "ImageNet sample photos")]
    raise DataError(
        f"unknown dataset {name!r}: known are {', '.join(DATASETS)}, or give a path to a folder or "
        f"zip."
    )


def find(name: str, root: str | os.PathLike | None = None) -> Found | None:
    """Locate dataset ``name`` under the data root without reading it; None if it is not there."""
    base, _ = data_root(root)
    for location, fmt in search_locations(name, base):
        if fmt == "torchvision official":
            if (location / "batches.meta").is_file():
                return Found(name, location, fmt, ("train", "test"))
        elif fmt == "ImageNet sample photos":
            if location.is_dir() and any(_is_image(p.name) for p in location.iterdir()):
                return Found(name, location, fmt, ("all",))
        elif location.is_dir():
            splits = ("train", "test") if name == "cifar10" else ("train", "val")
            if all(_zips_or_folder(location, s) for s in splits):
                return Found(name, location, fmt, splits)
    return None


def _not_found(name: str, root) -> DataError:
    base, how = data_root(root)
    places = "\n".join(f"  - {p}  ({fmt})" for p, fmt in search_locations(name, base))
    download = {
        "cifar10": "load(..., download=True) (or DOWNLOAD = True in a chapter) fetches it through "
        "torchvision",
        "imagenette": "load(..., download=True) (or DOWNLOAD = True in a chapter) fetches the "
        "320px release through torchvision",
        "imagenet": "ImageNet cannot be downloaded automatically: get ILSVRC-2012 from "
        "image-net.org and put train/<wnid>/ and val/<wnid>/ folders under <root>/imagenet",
        "imagenet-samples": "load(..., download=True) (or DOWNLOAD = True in a chapter) fetches "
        "the 100 photos from EliSchwartz/imagenet-sample-images on GitHub",
    }[name]
    return DataError(
        f"dataset {name!r} was not found under the data root {base} ({how}). Looked in:\n{places}\n"
        f"To fix it, either\n  1. {download}, or\n  2. point the library at a folder that has it: "
        f"set {DATA_ENV}=/path/to/data (or pass root=... / --root ...)."
    )


def _resolve_split(found: Found, split: str) -> str:
    if split in found.splits:
        return split
    for alias in _SPLIT_ALIASES.get(split, ()):
        if alias in found.splits:
            return alias
    raise DataError(f"{found.name} has splits {list(found.splits)}, not {split!r}.")


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, OSError) as exc:
        raise DataError(
            f"{path} is not valid JSON ({exc}); restore the file or delete it."
        ) from None


def _imagenet_names(location: Path, class_ids: list[str]) -> dict[str, str]:
    """Human-readable ImageNet names: a ``classes.json`` beside the data, else torchvision's list
    (which follows the sorted WordNet ids, so it applies only to the full 1000-class set)."""
    for path in (location / "classes.json", location.parent / "classes.json"):
        table = _read_json(path)
        if isinstance(table, list):
            return {row["wnid"]: row["name"] for row in table}
        if isinstance(table, dict):
            return table
    if len(class_ids) == 1000:
        return dict(zip(class_ids, AlexNet_Weights.IMAGENET1K_V1.meta["categories"]))
    return {}


def download_default() -> bool:
    """Whether a dataset that is not found is fetched when ``download`` is not given:
    ``$ALEXLIB_DOWNLOAD`` set to anything but ``0`` (see the module docstring)."""
    return os.environ.get(DOWNLOAD_ENV, "0") not in ("", "0")


def open_split(
    name: str,
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    download: bool | None = None,
) -> Split:
    """List one split of a dataset (see the module docstring for names and layouts).

    ``name`` may also be a path to any ImageFolder-style folder or zip
    (``[split/]<class>/<image>``).
    ``download=True`` fetches a dataset that is absent into the data root (see the module
    docstring: CIFAR-10, Imagenette, the ImageNet sample photos, or anything ``$ALEXLIB_DATA_URL``
    serves).
    """
    if name not in DATASETS:
        return _open_path(name, split)
    if download is None:
        download = download_default()
    found = find(name, root)
    if found is None and download:
        found = _download(name, root)
    if found is None:
        raise _not_found(name, root)
    split = _resolve_split(found, split)
    if found.format == "torchvision official":
        return _cifar_official(found, split)
    if found.format == "ImageNet sample photos":
        return _imagenet_samples(found)
    names = None
    if name == "imagenette":
        names = _read_json(found.location / "classes.json") or IMAGENETTE_CLASSES
    train = _folder_split(
        name, found.location, _zips_or_folder(found.location, found.splits[0]), found.splits[0]
    )
    if name == "imagenet":
        names = _imagenet_names(found.location, train.class_ids)
    if split == found.splits[0]:
        if names:
            train.classes = [names.get(c, c) for c in train.class_ids]
        return train
    return _folder_split(
        name,
        found.location,
        _zips_or_folder(found.location, split),
        split,
        names,
        reference=train.class_ids,
    )


def _open_path(path: str, split: str) -> Split:
    location = Path(path).expanduser()
    if not location.exists():
        raise DataError(
            f"{path!r} is neither a known dataset ({', '.join(DATASETS)}) nor an existing folder "
            "or zip file."
        )
    sources = [location]
    entries, _, _ = _split_entries(sources, split)
    if entries:
        train_split = "train" if _split_entries(sources, "train")[0] else split
        reference = _folder_split(location.name, location, sources, train_split)
        if train_split == split:
            return reference
        return _folder_split(location.name, location, sources, split, reference=reference.class_ids)
    if split in ("all", "train"):
        return _folder_split(location.name, location, sources, None)
    raise DataError(
        f"{location} has no {split!r} split (expected {split}/<class>/<image> inside it)."
    )


def _cifar_official(found: Found, split: str) -> Split:
    try:
        ds = CIFAR10(str(found.location.parent), train=(split == "train"), download=False)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise DataError(
            f"torchvision could not read CIFAR-10 in {found.location} ({exc}). Delete that folder "
            "and download it again (download=True)."
        ) from None
    arrays = (
        torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    )  # (N, 32, 32, 3) -> (N, 3, 32, 32)
    labels = torch.tensor(ds.targets, dtype=torch.long)
    return Split(
        "cifar10",
        split,
        [],
        labels,
        list(ds.classes),
        list(ds.classes),
        str(found.location),
        arrays=arrays,
    )


_SAMPLE_NAME = re.compile(r"^(n\d{8})[_-]")


def _imagenet_samples(found: Found) -> Split:
    names = _imagenet_names(found.location, [])
    files = sorted(p.name for p in found.location.iterdir() if _is_image(p.name))
    wnids = []
    for f in files:
        match = _SAMPLE_NAME.match(f)
        if not match:
            raise DataError(
                f"{found.location / f}: sample file names must start with the WordNet id "
                f"(n01440764_tench.JPEG)."
            )
        wnids.append(match.group(1))
    class_ids = sorted(names) if names else sorted(set(wnids))
    index = {c: i for i, c in enumerate(class_ids)}
    labels = torch.tensor([index[w] for w in wnids], dtype=torch.long)
    classes = [names.get(c, c) for c in class_ids]
    return Split(
        "imagenet-samples",
        "all",
        [(found.location, f) for f in files],
        labels,
        classes,
        class_ids,
        str(found.location),
    )


def _download(name: str, root) -> Found | None:
    """Fetch a missing dataset into the data root: from ``$ALEXLIB_DATA_URL`` when it is set,
    else CIFAR-10 (official format) or Imagenette (320px) through torchvision, or the ImageNet
    sample photos from GitHub. ImageNet itself has no public download (None)."""
    base, _ = data_root(root)
    mirror = os.environ.get(DATA_URL_ENV)
    if not mirror and name not in ("cifar10", "imagenette", "imagenet-samples"):
        return None
    base.mkdir(parents=True, exist_ok=True)
    try:
        if mirror:
            _download_mirror(name, base, mirror)
        elif name == "cifar10":
            for train in (True, False):
                CIFAR10(str(base), train=train, download=True)
        elif name == "imagenette":
            for split in ("train", "val"):
                Imagenette(str(base), split=split, size="320px", download=True)
        else:
            _download_samples(base / "imagenet-samples")
    except (OSError, RuntimeError, DataError) as exc:  # URLError is an OSError
        where = f" from {mirror} (${DATA_URL_ENV})" if mirror else ""
        raise DataError(
            f"downloading {name}{where} into {base} failed ({exc}).\n{_not_found(name, root)}"
        ) from None
    return find(name, root)


def _open_url(url: str):
    try:
        return urllib.request.urlopen(url, timeout=60)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DataError(f"{url}: {getattr(exc, 'reason', exc)}") from None


def _fetch(url: str) -> bytes:
    """The body of ``url`` (a small file)."""
    with _open_url(url) as response:
        return response.read()


def _download_samples(folder: Path, url: str | None = None) -> None:
    """The ImageNet sample photos into ``folder``: ``classes.json`` (index, wnid, name of all 1000
    classes, from the repository's gallery) and ``images/`` (the photo of every
    :data:`SAMPLES_EVERY`-th class, RGB, shorter side reduced to :data:`SAMPLES_SIZE` with bicubic
    filtering, JPEG quality 90). The photos go to ``images.partial/`` first and are renamed at the
    end, so an interrupted download never looks like a complete one."""
    url = url or SAMPLES_URL
    gallery = _fetch(url + "gallery.md").decode("utf-8")
    rows = sorted(
        (
            (int(i), wnid, label.replace("_", " "), file)
            for file, label, i, wnid in _GALLERY_ROW.findall(gallery)
        ),
    )
    if [r[0] for r in rows] != list(range(1000)):
        raise DataError(f"{url}gallery.md does not list the 1000 ImageNet classes once each")
    partial = folder / "images.partial"
    partial.mkdir(parents=True, exist_ok=True)
    keep = [r for r in rows if r[0] % SAMPLES_EVERY == 0]

    def one(row) -> None:
        file = row[3]
        if (partial / file).is_file():  # left by an interrupted download
            return
        data = _fetch(url + urllib.parse.quote(file))
        try:
            with Image.open(io.BytesIO(data)) as im:
                im = im.convert("RGB")
                short = min(im.size)
                if short > SAMPLES_SIZE:
                    k = SAMPLES_SIZE / short
                    im = im.resize(
                        (round(im.width * k), round(im.height * k)), Image.Resampling.BICUBIC
                    )
                out = io.BytesIO()
                im.save(out, "JPEG", quality=90)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{url}{file} is not a readable photo ({exc})") from None
        atomic_write(partial / file, lambda f: f.write(out.getvalue()))

    with ThreadPoolExecutor(8) as pool:
        list(tqdm(pool.map(one, keep), total=len(keep), desc="imagenet-samples", leave=False))
    table = [{"index": i, "wnid": wnid, "name": label} for i, wnid, label, _ in rows]
    atomic_write_text(folder / "classes.json", json.dumps(table, indent=0))
    images = folder / "images"
    if images.exists():
        shutil.rmtree(images)
    os.replace(partial, images)


def _download_mirror(name: str, base: Path, url: str) -> None:
    """Every file of dataset ``name`` that the data root at ``url`` lists in its ``SHA256SUMS``,
    into ``base`` at the same relative path, each checked against its SHA-256."""
    url = url if url.endswith("/") else url + "/"
    listing = _fetch(url + "SHA256SUMS").decode("utf-8")
    tops = {p.relative_to(base).parts[0] for p, _ in search_locations(name, base)}
    wanted = [
        (path, digest)
        for path, digest in parse_sha256sums(listing).items()
        if path.split("/", 1)[0] in tops and ".." not in path.split("/")
    ]
    if not wanted:
        raise DataError(
            f"{url}SHA256SUMS lists no file under {', '.join(sorted(tops))}/, so that server "
            f"does not hold {name}"
        )
    for path, digest in tqdm(wanted, desc=f"{name} from {url}", leave=False):
        target = base / path
        if target.is_file() and sha256_file(target) == digest:
            continue

        def write(f, path=path, digest=digest):
            h = hashlib.sha256()
            with _open_url(url + urllib.parse.quote(path)) as response:
                while chunk := response.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
            if h.hexdigest() != digest:
                raise DataError(f"{url}{path} does not match its SHA-256 in SHA256SUMS")

        atomic_write(target, write)


# ----------------------------------------------------------------------------------- decoded
# tensors


@dataclass
class ImageTensors(torch.utils.data.Dataset):
    """A decoded split: ``images`` (N, 3, H, W) uint8 and ``labels`` (N,) int64, on the CPU.

    Indexing gives ``(image, label)``, so it is also a ``torch.utils.data.Dataset``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    name: str = ""
    split: str = ""
    class_ids: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return self.images[i], self.labels[i]

    def __repr__(self) -> str:
        n, c, h, w = self.images.shape
        return (
            f"ImageTensors({self.name}/{self.split}: {n} images {c}x{h}x{w} uint8, "
            f"{len(self.classes)} classes)"
        )


def balanced_indices(labels: torch.Tensor, per_class: int, seed: int = 0) -> torch.Tensor:
    """A seeded, class-balanced subset: ``per_class`` random indices of each class (all of a class
    that has fewer), sorted. The same labels and seed always give the same subset."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    generator = torch.Generator().manual_seed(seed)
    labels = torch.as_tensor(labels)
    picked = []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        picked.append(members[torch.randperm(len(members), generator=generator)[:per_class]])
    return torch.cat(picked).sort().values


def _fingerprint(split: Split, size: int | None) -> str:
    h = hashlib.sha1()
    sources = (
        sorted({s for s, _ in split.files}) if split.arrays is None else [Path(split.location)]
    )
    for s in sources:
        st = s.stat()
        h.update(f"{s.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    h.update(f"{split.name}|{split.split}|{size}".encode())
    h.update("\n".join(m for _, m in split.files).encode())
    h.update(split.labels.numpy().tobytes())
    return h.hexdigest()[:16]


def decode_all(
    split: Split, size: int | None = None, workers: int | None = None, progress: bool = True
) -> torch.Tensor:
    """Decode every image of ``split`` into one uint8 tensor ``(N, 3, S, S)``.

    ``size=None`` keeps the images' own size (they must all have one); ``size=S`` rescales each so
    its shorter side is S and takes the central S x S crop (:func:`resize_center_crop`).
    """
    if split.arrays is not None:
        images = split.arrays
        if size is not None:
            images = (
                torch.stack([resize_center_crop(im, size) for im in images])
                if len(images)
                else images
            )
        return images
    workers = workers or min(8, os.cpu_count() or 1)
    first = split.decode(0) if len(split) else None
    if first is None:
        raise DataError(f"{split.name}/{split.split} is empty.")
    shape = (3, size, size) if size else tuple(first.shape)
    out = torch.empty((len(split), *shape), dtype=torch.uint8)

    def one(i: int) -> None:
        image = split.decode(i)
        if size:
            image = resize_center_crop(image, size)
        elif tuple(image.shape) != shape:
            raise DataError(
                f"{split.describe(i)} is {tuple(image.shape[1:])} but the first image is "
                f"{shape[1:]}; the images "
                "differ in size, so pass size=... (e.g. size=256) to rescale and centre-crop them."
            )
        out[i] = image

    with ThreadPoolExecutor(workers) as pool:
        jobs = pool.map(one, range(len(split)))
        for _ in tqdm(
            jobs,
            total=len(split),
            desc=f"decoding {split.name}/{split.split}",
            disable=not progress,
            leave=False,
        ):
            pass
    return out


def load(
    name: str,
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    size: int | None = None,
    per_class: int | None = None,
    seed: int = 0,
    indices: Sequence[int] | torch.Tensor | None = None,
    download: bool | None = None,
    cache: bool = True,
    progress: bool = True,
) -> ImageTensors:
    """Decode a split (or a seeded, balanced ``per_class`` subset) into an :class:`ImageTensors`.

    ``indices``: decode only the images at these positions of that split or subset, in that order
    (what a stored result that names image positions needs to redraw its figures, without
    decoding the rest).

    The decoded tensor is cached under ``cache_dir()/decoded``, keyed by the source files, the
    subset and ``size``, so the second call costs a file read instead of thousands of JPEG decodes.
    """
    listing = open_split(name, split, root=root, download=download)
    if per_class is not None:
        listing = listing.subset(balanced_indices(listing.labels, per_class, seed))
    if indices is not None:
        idx = torch.as_tensor(indices, dtype=torch.long).flatten()
        if len(idx) and not (0 <= int(idx.min()) and int(idx.max()) < len(listing)):
            raise DataError(
                f"{name}/{split} has {len(listing)} images here, so indices run from 0 to "
                f"{len(listing) - 1}; got {int(idx.min())} to {int(idx.max())}. The result that "
                "named them was made with another subset (per_class, seed) or another copy."
            )
        listing = listing.subset(idx)
    path = (
        cache_dir() / "decoded" / f"{listing.name}-{listing.split}-{_fingerprint(listing, size)}.pt"
    )
    if cache and path.is_file():
        try:
            saved = torch.load(path, weights_only=True)
            return ImageTensors(
                saved["images"],
                saved["labels"],
                listing.classes,
                listing.name,
                listing.split,
                listing.class_ids,
            )
        except Exception as exc:  # a damaged cache file is rebuilt, never trusted
            warnings.warn(f"ignoring unreadable cache file {path} ({exc}); decoding again")
    images = decode_all(listing, size, progress=progress)
    if cache:
        try:
            atomic_save({"images": images, "labels": listing.labels}, path)
        except OSError as exc:
            warnings.warn(f"could not write the decode cache {path} ({exc}); continuing without it")
    return ImageTensors(
        images, listing.labels, listing.classes, listing.name, listing.split, listing.class_ids
    )


# ----------------------------------------------------------------------------------- overview


def survey(root: str | os.PathLike | None = None) -> list[dict]:
    """Every known dataset under the data root, with its location and split sizes (for the CLI)."""
    rows = []
    for name in DATASETS:
        found = find(name, root)
        if found is None:
            rows.append({"name": name, "found": False})
            continue
        row = {
            "name": name,
            "found": True,
            "location": str(found.location),
            "format": found.format,
            "splits": {},
        }
        try:
            for split in found.splits:
                listing = open_split(name, split, root=root)
                row["splits"][split] = len(listing)
                row["classes"] = len(listing.classes)
        except DataError as exc:
            row["error"] = str(exc)
        rows.append(row)
    return rows
