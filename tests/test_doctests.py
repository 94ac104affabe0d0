"""Every example in an ``alexlib`` docstring runs and prints what the docstring says.

Every module of the package (subpackages included, ``__main__`` modules left out, since importing
one starts the command line) whose source has an example (``>>>``) is imported and searched for
them; each module that
has some is one test, which runs them with ``doctest`` and fails with doctest's report when an
output differs. A module whose examples need a GPU is skipped where there is none; a module that
cannot be imported for want of an optional package (Triton) is skipped with that reason.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import pkgutil
import re
from pathlib import Path

import pytest
import torch

import alexlib

OPTIONAL = {"triton"}  # packages a module may need that a CPU install can lack
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _module_names() -> list[str]:
    walked = pkgutil.walk_packages(alexlib.__path__, "alexlib.")
    return sorted(["alexlib"] + [m.name for m in walked if not m.name.endswith("__main__")])


def _may_have_examples(name: str) -> bool:
    # read the source before importing: importing every module at collection time would load
    # modules the other tests need unloaded (the Triton kernels, which test_fast.py runs in
    # Triton's interpreter, decide how they run when first imported)
    spec = importlib.util.find_spec(name)
    return bool(spec and spec.origin) and ">>>" in Path(spec.origin).read_text()


def _collect() -> list:
    """One pytest param per module with examples: (name, its doctests), or a skip mark."""
    params = []
    for name in _module_names():
        if not _may_have_examples(name):
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name not in OPTIONAL:
                raise
            why = f"{name} needs {exc.name}, which is not installed"
            params.append(pytest.param(name, [], marks=pytest.mark.skip(reason=why), id=name))
            continue
        tests = [t for t in doctest.DocTestFinder().find(module) if t.examples]
        if tests:
            params.append(pytest.param(name, tests, id=name))
    return params


PARAMS = _collect()
# code that puts something on the GPU: "cuda" / 'cuda:1' as a device, or .cuda(); not a comment
# an example that puts something on a GPU: .cuda(), .to("cuda"), device="cuda", torch.device("cuda")
# (a "cuda" that is only a value passed along, such as a device type to choose by, runs anywhere)
CUDA = re.compile(r"""\.cuda\(|(\.to\(|device=|torch\.device\()\s*["']cuda(:\d+)?["']""")


def _needs_cuda(tests: list[doctest.DocTest]) -> bool:
    code = (
        line.split("#")[0] for t in tests for ex in t.examples for line in ex.source.splitlines()
    )
    return any(CUDA.search(line) for line in code)


def test_the_modules_with_examples_are_all_found():
    # the walk reaches subpackages, so a new module's examples are tested without editing this file
    found = {p.values[0] for p in PARAMS}
    assert {
        "alexlib.config",
        "alexlib.layers",
        "alexlib.model",
        "alexlib.parallel",
        "alexlib.experiments.figure1",
    } <= found
    assert not any(name.endswith("__main__") for name in _module_names())
    cuda = doctest.DocTestParser().get_doctest(">>> x.to('cuda')  # on the GPU", {}, "x", None, 0)
    value = doctest.DocTestParser().get_doctest(
        '>>> choose_precision("auto", "cuda", (7, 5))', {}, "z", None, 0
    )
    assert not _needs_cuda([value])
    comment = doctest.DocTestParser().get_doctest(
        ">>> f(1)   # as in cuda-convnet", {}, "y", None, 0
    )
    assert _needs_cuda([cuda]) and not _needs_cuda([comment])


@pytest.mark.parametrize(("name", "tests"), PARAMS)
def test_docstring_examples(name, tests):
    if _needs_cuda(tests) and not torch.cuda.is_available():
        pytest.skip(f"{name}'s examples need a CUDA device")
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    torch.manual_seed(0)  # examples that draw random numbers see the same ones on every run
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    assert runner.tries == sum(len(t.examples) for t in tests)
