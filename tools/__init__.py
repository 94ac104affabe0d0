"""The project's own tooling, kept out of the installed package (``alexlib``, the reader's library):

- :mod:`tools.book`: execute every chapter, build the HTML book, check it in headless Chromium,
  print it to PDF (``make book``, ``make html``, ``make pdf``; ``python -m tools.book``);
- :mod:`tools.bench`: the training-speed benchmark (``python -m tools.bench``), whose stored runs
  chapter 8 reads through :mod:`alexlib.bench_results`;
- :mod:`tools.laptop`: every laptop-scale result the book shows (``make laptop``;
  ``python -m tools.laptop``);
- :mod:`tools.sphinx_mathjax`: the Sphinx extension that serves MathJax from the built book;
- ``tools/sitting.py``: one GPU sitting (``make gpu-plan``; run as a script on the GPU machine).

Run them from the repository root (``python -m tools.NAME``); they import ``alexlib`` from the
checkout. No chapter imports them (``tests/test_layout.py``), and the wheel does not ship them.
"""

from __future__ import annotations

import argparse
import sys

from alexlib.errors import AlexlibError

__all__ = ["Parser", "run_command"]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: ...``, exit status 2), like ``python -m alexlib``."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def run_command(parser: argparse.ArgumentParser, run, argv: list[str] | None = None) -> int:
    """Parse ``argv`` and call ``run(args)``; an :class:`~alexlib.errors.AlexlibError` is printed
    as one line, ``error: ...``, with exit status 2, never a traceback."""
    args = parser.parse_args(argv)
    try:
        return run(args)
    except AlexlibError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
