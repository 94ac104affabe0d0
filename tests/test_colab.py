"""Every chapter runs as it would in Colab: a fresh environment with a network and alexlib
pip-installed, not a checkout of the repository.

The quick tests check what Colab depends on: the repository named in one place (``_config.yml``'s
``repository``), from which ``make book`` writes every chapter's setup cell; the wheel's package
list; stored results found outside a checkout.

The slow test (marked ``chapters`` and ``colab``) builds what a Colab runtime has: a new venv
(``python -m venv``, no system site-packages) with torch and torchvision, alexlib installed from a
wheel built from this checkout (``pip wheel --no-deps``) with its dependencies from the package
index, and Jupyter's kernel. Each chapter is copied into a temporary folder outside the repository
and executed there by papermill, with a home folder of its own (an empty data root and decode
cache, as on a new Colab machine) and ``$ALEXLIB_DATA_URL`` pointing at a local HTTP server that
serves the offline datasets, so each chapter downloads what it needs through alexlib's own
download code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alexlib import _io
from tools.book import chapters, install_spec, repo_root, repository, sync_setup_cells

ROOT = repo_root()
CHAPTERS = chapters(ROOT)
TORCH = ("torch==2.14.1", "torchvision==0.29.1")  # the pins of requirements.txt
COLAB_EXTRAS = ("ipykernel", "ipywidgets", "papermill")  # in Colab already, papermill excepted
DATASETS = ("cifar10-jpeg", "imagenette-224", "imagenet-samples")  # what the chapters download


# ----------------------------------------------------------------------------------- one place


def _setup_cell(path: Path) -> str:
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    return "".join(code[0]["source"]) if code else ""


def _installs(cell: str, monkeypatch) -> list[list[str]]:
    """The commands the setup cell runs in a kernel that has no alexlib (run with find_spec and
    subprocess.run stubbed: whatever the cell's formatting, what it would install)."""
    import importlib.util

    calls = []
    with monkeypatch.context() as m:
        m.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "alexlib" else 1)
        m.setattr(subprocess, "run", lambda args, **kw: calls.append([str(a) for a in args]))
        exec(compile(cell, "setup cell", "exec"), {})
    return calls


def test_the_repository_is_named_once(monkeypatch):
    """_config.yml names the repository; the launch buttons read it there, and every chapter's
    setup cell installs from it (make book writes it there: tools.book.sync_setup_cells)."""
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"].startswith("https://github.com/")
    assert config["html"]["use_repository_button"] and config["launch_buttons"]["colab_url"]
    spec = install_spec(ROOT)
    assert spec == f"alexlib @ git+{config['repository']['url']}@{config['repository']['branch']}"
    for path in CHAPTERS:
        calls = _installs(_setup_cell(path), monkeypatch)
        assert calls == [[sys.executable, "-m", "pip", "install", "-q", spec]], (
            f"{path.name}: its first code cell must pip-install {spec!r} (the repository of "
            f"_config.yml) when alexlib is missing: `make book` writes it there; it runs {calls}"
        )
    # one place: no other file of the package or the tooling names the repository
    url = config["repository"]["url"]
    for code in [*(ROOT / "alexlib").rglob("*.py"), *(ROOT / "tools").glob("*.py")]:
        assert url not in code.read_text(), f"{code.relative_to(ROOT)} names {url}"


def test_a_fork_sets_its_repository_in_config_only(tmp_path, monkeypatch):
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    config = (tmp_path / "_config.yml").read_text()
    fork = "https://github.com/someone/alexnet-fork"
    (tmp_path / "_config.yml").write_text(config.replace(repository(ROOT)[0], fork))
    assert sync_setup_cells(tmp_path) == [p.name for p in CHAPTERS]
    assert sync_setup_cells(tmp_path) == []  # written once
    for path in chapters(tmp_path):
        calls = _installs(_setup_cell(path), monkeypatch)
        assert calls == [
            [sys.executable, "-m", "pip", "install", "-q", f"alexlib @ git+{fork}@main"]
        ]
        # nothing else of the chapter changed
        before = json.loads((ROOT / "notebooks" / path.name).read_text())["cells"]
        after = json.loads(path.read_text())["cells"]
        setup = next(k for k, c in enumerate(before) if c["cell_type"] == "code")
        assert before[:setup] + before[setup + 1 :] == after[:setup] + after[setup + 1 :]


def test_the_wheel_lists_every_package():
    import tomllib

    listed = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "alexlib").rglob("__init__.py")
    }
    assert set(listed["packages"]) == on_disk | {"alexlib._results"}
    assert listed["package-dir"] == {"alexlib._results": "results"}


def test_results_outside_a_checkout_come_from_the_wheel(tmp_path, monkeypatch):
    shipped = tmp_path / "site-packages" / "alexlib" / "_results"
    (shipped / "figure1").mkdir(parents=True)
    monkeypatch.setattr(_io, "_checkout", lambda start=None, marks=(): None)  # no _toc.yml
    monkeypatch.setattr(_io, "packaged_results", lambda: shipped)
    assert _io.results_dir() == shipped
    monkeypatch.setattr(_io, "packaged_results", lambda: tmp_path / "nothing")
    monkeypatch.chdir(tmp_path)
    assert _io.results_dir() == tmp_path / "results"


# ----------------------------------------------------------------------------------- Colab-like


def _tracked(*paths: str) -> list[str]:
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", *paths], capture_output=True, text=True
    )
    return [p for p in listed.stdout.split("\0") if p and (ROOT / p).is_file()]


def _run(args: list, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kw)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-4000:]
        pytest.fail(f"{' '.join(map(str, args[:4]))} ... failed ({done.returncode}):\n{tail}")
    return done


@pytest.fixture(scope="session")
def colab_venv(tmp_path_factory) -> Path:
    """A fresh venv with torch, alexlib from a wheel of this checkout, and Jupyter's kernel.

    Building it takes minutes (torch's wheels). To work on one chapter, set
    ``ALEXLIB_COLAB_VENV=/some/folder``: the venv is built there once and reused by later runs
    (delete the folder after changing alexlib). CI leaves it unset and gets a fresh one."""
    keep = os.environ.get("ALEXLIB_COLAB_VENV")
    base = Path(keep) if keep else tmp_path_factory.mktemp("colab")
    venv = base / "venv"
    if keep and (venv / "bin" / "papermill").is_file():
        return venv
    start = time.perf_counter()
    _run([sys.executable, "-m", "venv", venv])
    pip = [venv / "bin" / "python", "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "install", "-q", *TORCH])
    # the wheel is built from the files a clone has (git ls-files), copied out of the checkout so
    # the build leaves nothing in it
    source = base / "clone"
    for rel in _tracked("alexlib", "results", "pyproject.toml", "README.md"):
        (source / rel).parent.mkdir(parents=True, exist_ok=True)
        (source / rel).write_bytes((ROOT / rel).read_bytes())
    shutil.rmtree(base / "wheel", ignore_errors=True)
    _run([*pip, "wheel", "-q", "--no-deps", source, "-w", base / "wheel"])
    wheel = next((base / "wheel").glob("alexlib-*.whl"))
    _run([*pip, "install", "-q", wheel, *COLAB_EXTRAS])
    print(f"colab venv: {time.perf_counter() - start:.0f} s")
    return venv


@pytest.fixture(scope="session")
def data_server(tmp_path_factory, shared_data, http_server):
    """A local HTTP server serving the offline datasets as a data root with a SHA256SUMS."""
    folder = tmp_path_factory.mktemp("served")
    lines = []
    for name in DATASETS:
        (folder / name).symlink_to(shared_data / name)
        for path in sorted((shared_data / name).rglob("*")):
            if path.is_file():
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                lines.append(f"{digest}  ./{path.relative_to(shared_data).as_posix()}")
    (folder / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return http_server(folder)


def _colab_env(venv: Path, home: Path, url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALEXLIB_", "JUPYTER", "PY"))}
    env.update(
        HOME=str(home),
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(venv),
        ALEXLIB_DATA_URL=url,
    )
    env.pop("XDG_CACHE_HOME", None)
    return env


@pytest.mark.chapters
@pytest.mark.colab
def test_installed_wheel_finds_the_stored_results(colab_venv, tmp_path):
    env = _colab_env(colab_venv, tmp_path, "http://127.0.0.1:9/")
    code = "from alexlib._io import results_dir; print(results_dir())"
    where = _run([colab_venv / "bin" / "python", "-c", code], cwd=tmp_path, env=env)
    found = Path(where.stdout.strip())
    assert found.name == "_results" and "site-packages" in found.parts
    stored = {Path(p).relative_to("results") for p in _tracked("results")}
    shipped = {p.relative_to(found) for p in found.rglob("*") if p.is_file()}
    assert stored <= shipped, f"missing from the wheel: {sorted(stored - shipped)[:5]}"


@pytest.mark.chapters
@pytest.mark.colab
@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_as_in_colab(notebook, colab_venv, data_server, tmp_path):
    work, home = tmp_path / "content", tmp_path / "home"  # Colab's working folder is /content
    work.mkdir()
    home.mkdir()
    source = work / notebook.name
    source.write_bytes(notebook.read_bytes())
    out = work / f"executed-{notebook.name}"
    start = time.perf_counter()
    done = subprocess.run(
        [
            colab_venv / "bin" / "papermill",
            source,
            out,
            "-k",
            "python3",
            "-p",
            "SCALE",
            "smoke",
            "--cwd",
            work,
            "--no-progress-bar",
        ],
        cwd=work,
        env=_colab_env(colab_venv, home, data_server),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    seconds = time.perf_counter() - start
    print(f"{notebook.name}: {seconds:.1f} s in a Colab-like venv")
    assert done.returncode == 0, f"{notebook.name} failed in Colab-like run:\n{done.stderr[-4000:]}"
    cells = json.loads(out.read_text())["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue")
    assert not any(ROOT in Path(p).parents for p in (work, home))  # ran outside the checkout
