"""The shape of the library, checked: the import order ``alexlib/__init__.py`` states, one training
loop and one top-k, the reader's package apart from the project's tooling (``tools/``: not in the
package, not in the wheel, imported by no chapter), and the linter and formatter (ruff, line limit
100) on the whole code base."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import alexlib

PACKAGE = Path(alexlib.__file__).parent
REPO = PACKAGE.parent
# modules that belong to a neighbour in the stated order
PART_OF = {"_lrn_triton": "fast", "__main__": "cli"}


def stated_order() -> list[str]:
    arrows = re.findall(r"^\s+(?:\w+ )?->.*$|^\s+\w+ -> .*$", alexlib.__doc__, re.M)
    names = re.findall(r"\w+", " ".join(arrows))
    assert names, "alexlib/__init__.py's docstring states no module order"
    return names


def module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    top = rel.parts[0]
    return PART_OF.get(top, top)


def imported(path: Path) -> set[str]:
    """The alexlib modules ``path`` imports from, anywhere in the file."""
    tree = ast.parse(path.read_text())
    depth = len(path.relative_to(PACKAGE).parts) - 1  # 0 for alexlib/x.py, 1 for alexlib/pkg/x.py
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = (node.module or "").split(".")
                if node.level - 1 < depth:  # an import inside the same subpackage
                    continue
                names = [parts[0]] if parts[0] else [a.name for a in node.names]
            elif node.module and node.module.startswith("alexlib."):
                names = [node.module.split(".")[1]]
            elif node.module == "alexlib":
                names = [a.name for a in node.names]
            else:
                continue
            found.update(PART_OF.get(n, n) for n in names if n != "__version__")
    return found


def test_each_module_imports_only_from_its_left():
    order = stated_order()
    files = sorted(
        p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE
    )
    for path in files:
        me = module_of(path)
        assert me in order, (
            f"{path.relative_to(REPO)} is missing from the order in alexlib/__init__.py"
        )
        for other in imported(path) - {me}:
            assert other in order, (
                f"{path.relative_to(REPO)} imports {other}, not in the stated order"
            )
            assert order.index(other) < order.index(me), (
                f"{path.relative_to(REPO)} ({me}) imports {other}, which comes after it in the "
                f"order stated in alexlib/__init__.py: {' -> '.join(order)}"
            )


def test_one_training_loop_and_one_top_k():
    sources = {p: p.read_text() for p in PACKAGE.rglob("*.py")}
    backward = [p.name for p, s in sources.items() if ".backward()" in s]
    assert backward == ["engine.py"], backward
    topk_defs = [p.name for p, s in sources.items() if re.search(r"^def topk", s, re.M)]
    assert sorted(topk_defs) == ["engine.py", "engine.py"][: len(topk_defs)] and topk_defs, (
        topk_defs
    )
    # every top-k count goes through engine.topk_hits: no module ranks class scores itself
    rankers = [p.name for p, s in sources.items() if re.search(r"\.topk\(.*\)\.indices", s)]
    assert rankers == ["engine.py"], rankers


def test_every_error_a_user_can_cause_is_an_alexlib_error():
    from alexlib import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.AlexlibError)
    # no module defines an exception class of its own outside alexlib.errors
    for path in PACKAGE.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                assert not bases & {"Exception", "RuntimeError", "ValueError"}, (
                    f"{path.name}: {node.name} is an exception class outside alexlib.errors"
                )


# --------------------------------------------------------------------------- the package vs tools/

# a line that imports the project's tooling: `import tools.book`, `from tools import bench`, and the
# old place, `from alexlib.tools import bench`, `from alexlib import tools`
_IMPORTS_TOOLS = re.compile(
    r"^\s*(?:from\s+(?:alexlib\.)?tools\b|import\s+(?:alexlib\.)?tools\b"
    r"|from\s+alexlib\s+import\s+.*\btools\b)",
    re.M,
)


def test_the_package_holds_no_tooling():
    assert not (PACKAGE / "tools").exists(), "alexlib/tools/: the project's tooling is in tools/"
    for path in PACKAGE.rglob("*.py"):
        assert not _IMPORTS_TOOLS.search(path.read_text()), (
            f"{path.relative_to(REPO)} imports the project's tooling (tools/)"
        )
    listed = re.search(r"^packages = \[(.*)\]$", (REPO / "pyproject.toml").read_text(), re.M)
    assert listed and "tools" not in listed.group(1), listed


def test_no_chapter_imports_the_tooling():
    chapters = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert chapters
    for path in chapters:
        cells = json.loads(path.read_text())["cells"]
        for cell in cells:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and _IMPORTS_TOOLS.search(source):
                pytest.fail(f"{path.name} imports the project's tooling: {source[:200]!r}")


def test_the_wheel_ships_no_tooling(tmp_path):
    """A wheel built from the files a clone has (the ``tools/`` folder included) holds ``alexlib``
    and its stored results, and nothing of ``tools/``."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "alexlib", "results", "tools"],
        capture_output=True,
        text=True,
        check=True,
    )
    files = [p for p in listed.stdout.split("\0") if p and (REPO / p).is_file()]
    on_disk = [*PACKAGE.rglob("*.py"), *(REPO / "tools").glob("*.py")]  # not yet committed too
    files += [str(p.relative_to(REPO)) for p in on_disk]
    source = tmp_path / "clone"
    for rel in {*files, "pyproject.toml", "README.md"}:
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, source / rel)
    assert (source / "tools" / "book.py").is_file()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["--disable-pip-version-check", str(source), "-w", str(tmp_path / "wheel")],
        capture_output=True,
        check=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "wheel").glob("alexlib-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "alexlib/bench_results.py" in names and "alexlib/cli.py" in names
    shipped = [n for n in names if n.startswith(("tools/", "alexlib/tools/"))]
    assert not shipped, f"the wheel ships the project's tooling: {shipped}"
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"alexlib"}, top


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command):
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "alexlib", "tests", "benchmarks", "tools"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


# a parameter whose default is one of the paper's numbers must read it from alexlib.recipe
RECIPE_DEFAULTS = {
    "alpha": "LRN_ALPHA",
    "beta": "LRN_BETA",
    "k": "LRN_K",
    "momentum": "MOMENTUM",
    "weight_decay": "WEIGHT_DECAY",
    "dropout": "DROPOUT",
    "epochs": "EPOCHS",
    "std": "INIT_STD",
    "hidden": "FC_WIDTH",
}


def test_the_papers_numbers_are_written_once_in_recipe():
    from alexlib import recipe

    restated = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "recipe.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.AnnAssign):  # a dataclass field
                pairs = [(getattr(node.target, "id", ""), node.value)]
            elif isinstance(node, ast.FunctionDef):
                a = node.args
                plain = a.posonlyargs + a.args
                pairs = list(
                    zip([p.arg for p in plain[len(plain) - len(a.defaults) :]], a.defaults)
                )
                pairs += [(p.arg, d) for p, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            else:
                continue
            for name, default in pairs:
                if name in RECIPE_DEFAULTS and isinstance(default, ast.Constant):
                    if default.value == getattr(recipe, RECIPE_DEFAULTS[name]):
                        restated.append(f"{path.relative_to(REPO)}:{default.lineno} {name}")
    assert not restated, f"the paper's numbers restated instead of read from recipe: {restated}"
