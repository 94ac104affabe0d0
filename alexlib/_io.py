"""Shared input/output: atomic writes, JSON files, provenance, and the repository's folders.

Every file the library writes (decode and statistics caches, checkpoints, metrics, ledger JSON,
executed chapters) goes through :func:`atomic_write`, so a crash at any moment leaves either the old
file or the new one, never a torn one. Every stored result carries :func:`provenance`.

Where the book's repository is, is said once: in the book's ``_config.yml`` (``repository``'s
``url`` and ``branch``), where the launch buttons read it and from which ``make book`` writes every
chapter's Colab setup cell (``tools/book.py``; ``tests/test_colab.py`` checks them). A wheel of
``alexlib`` carries the repository's ``results/`` folder inside the package (``alexlib/_results``,
see ``pyproject.toml``), so a chapter run outside a checkout (Colab, ``pip install``) reads the same
stored results as the book.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from .errors import BookError, StorageError

__all__ = [
    "atomic_write",
    "atomic_save",
    "atomic_write_text",
    "write_json",
    "sha256_file",
    "parse_sha256sums",
    "provenance",
    "repo_root",
    "results_dir",
    "packaged_results",
]

# Environment: another results folder than the checkout's; the commit of a copy without .git.
RESULTS_ENV = "ALEXLIB_RESULTS"
COMMIT_ENV = "ALEXLIB_COMMIT"


def atomic_write(path: str | os.PathLike, write) -> None:
    """Write a file so that a crash at any moment leaves either the old file or the new one:
    ``write(f)`` fills a temporary file in the same folder, which is flushed to disk and then
    renamed over ``path``. A disk that is full (or any other refusal by the operating system) is
    a :class:`StorageError` naming the file, with the old file left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    f = None
    try:
        with open(tmp, "wb") as raw:
            f = _Refusals(raw)
            write(f)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        raise _storage_error(path, exc) from exc
    except RuntimeError as exc:  # torch.save reports a failed write as its own RuntimeError
        if f is None or f.refusal is None:
            raise
        raise _storage_error(path, f.refusal) from exc
    finally:
        tmp.unlink(missing_ok=True)


class _Refusals:
    """A file whose ``write`` remembers the operating system's refusal before passing it on, so
    that a writer that wraps it in another error (``torch.save``) can still be told apart."""

    def __init__(self, raw):
        self._raw, self.refusal = raw, None

    def write(self, data) -> int:
        try:
            return self._raw.write(data)
        except OSError as exc:
            self.refusal = exc
            raise

    def __getattr__(self, name):
        return getattr(self._raw, name)


def _storage_error(path: Path, exc: OSError) -> StorageError:
    why = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free some space (or write to another folder) and run again"
    else:
        fix = "check that the folder is writable and run again"
    return StorageError(
        f"could not write {path}: {why}; the file that was there before is unchanged: {fix}"
    )


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_write`."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex (read a megabyte at a time)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def parse_sha256sums(text: str) -> dict[str, str]:
    """A ``sha256sum`` listing (``<hex>  ./<path>`` per line) as ``{path: lower-case hex}``, in
    the listing's order; ``./`` prefixes dropped, blank lines skipped."""
    sums = {}
    for line in text.splitlines():
        if line.strip():
            digest, path = line.split(maxsplit=1)
            sums[path.strip().removeprefix("./")] = digest.lower()
    return sums


def write_json(path: str | os.PathLike, obj) -> None:
    """``obj`` as indented JSON at ``path`` (atomically)."""
    atomic_write_text(path, json.dumps(obj, indent=1))


def provenance() -> dict:
    """Where and with what a result was made: date, host, CPU or GPU, core count, versions,
    commit."""
    info = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": _cpu_model(),
        "cpu_bf16": cpu_has_bf16(),
        "cores": os.cpu_count(),
        "device": (
            torch.cuda.get_device_name()
            if torch.cuda.is_available()
            else f"cpu ({torch.get_num_threads()} thread{'s' * (torch.get_num_threads() != 1)})"
        ),
    }
    commit = _code_commit()
    if commit:
        info["commit"] = commit
    return info


@functools.cache
def _code_commit() -> str | None:
    """The commit of the code this process runs, read once, on the first call (a long run records
    the commit it started from, not whatever the checkout holds when it finishes):
    ``$ALEXLIB_COMMIT`` (see :data:`COMMIT_ENV`) when set, since the side that copied the working
    tree knows its commit better than a git folder copied with it (a GPU machine's copy holds the
    last landed commit's git folder under a newer working tree: it reads as that commit
    "+dirty"); else ``git rev-parse HEAD``, with ``+dirty`` for uncommitted changes to tracked
    files; else ``None``."""
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV]
    try:
        repo = Path(__file__).resolve().parents[1]
        git = ["git", "-C", str(repo)]
        commit = subprocess.run(
            [*git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if commit.returncode == 0:
            return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return None


_code_commit()  # at import: the commit of the code this process loaded


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (the ``avx512_bf16`` or ``amx_bf16`` flags of
    ``/proc/cpuinfo``; False where there is no such file). Two machines that both call themselves
    "AMD EPYC" can differ here by five times in a laptop run's speed."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = {word for line in f if line.startswith("flags") for word in line.split()}
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _checkout(
    start: Path | None = None, marks: tuple[str, ...] = ("_toc.yml", "_config.yml")
) -> Path | None:
    """The folder holding every file of ``marks``, upwards from ``start`` (default: the working
    directory), then from this package's folder; ``None`` outside a checkout."""
    for base in (Path(start or Path.cwd()).resolve(), Path(__file__).resolve().parent):
        for folder in (base, *base.parents):
            if all((folder / m).is_file() for m in marks):
                return folder
    return None


def repo_root(start: Path | None = None) -> Path:
    """The checkout of the book's repository (the folder with ``_toc.yml``)."""
    root = _checkout(start)
    if root is None:
        raise BookError("no _toc.yml found: run this from a checkout of the book's repository.")
    return root


def packaged_results() -> Path:
    """The copy of ``results/`` that a wheel of alexlib carries (``alexlib/_results``; it may be
    absent, e.g. in a checkout that was never built into a wheel)."""
    return Path(__file__).resolve().parent / "_results"


def results_dir() -> Path:
    """The stored runs with their provenance: ``$ALEXLIB_RESULTS`` when set (a trial run's own
    folder, e.g. the GPU script's CPU rehearsal); else the ``results/`` folder next to ``_toc.yml``
    in a checkout of the repository (found upwards from the working directory, then from this
    package); outside a checkout (an installed wheel, e.g. in Colab) the copy the wheel carries;
    else ``results/`` in the working directory."""
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV])
    root = _checkout(marks=("_toc.yml",))
    if root is not None:
        return root / "results"
    if packaged_results().is_dir():
        return packaged_results()
    return Path.cwd() / "results"
