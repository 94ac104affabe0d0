"""The book's main job: execute every chapter with papermill, build the HTML book, check it in
Chromium.

    python -m tools.book                  # smoke scale (CPU, minutes), then jupyter-book build -W
    python -m tools.book --scale full     # the paper's schedule (a GPU)
    python -m tools.book --check          # ... then load every page in headless Chromium

The chapters in ``notebooks/`` are stored without outputs. Executed copies go to
``_build/executed/<scale>/``; the book is built from a staged copy of the sources in which each
chapter is replaced by its executed copy (``_build/stage/``), so the repository's notebooks stay
clean. A chapter whose source, scale and library code have not changed since its last successful run
is not executed again.

This module is project tooling: it works on a checkout of the repository (it needs ``_toc.yml``)
and is not part of the installed package. ``make book`` and ``make html`` run it.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import inspect
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import alexlib
from alexlib._io import atomic_write, atomic_write_text, provenance, repo_root, results_dir
from alexlib.config import SCALES
from alexlib.errors import BookError
from alexlib.train import machine_name

from . import Parser, run_command
from .costs import chapter_costs, costs_markdown

__all__ = [
    "BookError",
    "repo_root",
    "repository",
    "install_spec",
    "sync_setup_cells",
    "toc_files",
    "chapters",
    "unlisted_chapters",
    "executed_path",
    "is_fresh",
    "execute_chapter",
    "stage",
    "build_html",
    "PageReport",
    "chromium_path",
    "check_html",
    "check_pages",
    "clean_outputs",
    "print_pdf",
    "book_pdf",
    "main_job",
    "main",
]

# yaml, papermill and playwright are imported where they are used: they belong to the book's tool
# chain (requirements.txt), not to the library, and a GPU machine running `python -m alexlib train`
# or `python -m tools.bench` has none of them.


# ------------------------------------------------------------------------------ the repository


def repository(root: Path) -> tuple[str, str]:
    """The book's repository URL and branch, said once: ``_config.yml``'s ``repository`` (the
    launch buttons read it there; :func:`sync_setup_cells` writes it into the chapters)."""
    import yaml

    config = yaml.safe_load((root / "_config.yml").read_text())["repository"]
    return config["url"].rstrip("/"), config.get("branch", "main")


def install_spec(root: Path) -> str:
    """What a chapter's Colab setup cell hands to pip when alexlib is missing."""
    url, branch = repository(root)
    return f"alexlib @ git+{url}@{branch}"


# the setup cell's one line that names the repository (copy the cell of 00_how_to_use.ipynb)
_SETUP_REPO = re.compile(r'^REPO = "git\+[^"]*"$', re.M)


def sync_setup_cells(root: Path) -> list[str]:
    """Write ``_config.yml``'s repository into every chapter's Colab setup cell (its first code
    cell's ``REPO = "git+URL@BRANCH"`` line), so that a fork sets its URL in one place; returns the
    names of the chapters changed (none when they already say it). A notebook is rewritten only
    when its line differs."""
    url, branch = repository(root)
    line = f'REPO = "git+{url}@{branch}"'
    changed = []
    for notebook in chapters(root):
        nb = json.loads(notebook.read_text())
        cell = next((c for c in nb["cells"] if c["cell_type"] == "code"), None)
        source = "".join(cell["source"]) if cell else ""
        if not _SETUP_REPO.search(source):
            raise BookError(
                f"{notebook.name}: its first code cell is not the Colab setup cell (no line "
                'REPO = "git+URL@BRANCH"): copy the setup cell of 00_how_to_use.ipynb'
            )
        new = _SETUP_REPO.sub(line, source)
        if new != source:
            cell["source"] = new.splitlines(keepends=True)
            atomic_write_text(notebook, json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
            changed.append(notebook.name)
    return changed


# ----------------------------------------------------------------------------------- the chapters


def toc_files(root: Path) -> list[str]:
    """Every page of ``_toc.yml`` in reading order, as paths without extension
    (``notebooks/00_how_to_use``)."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pages = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                pages.append(node["file"])
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key, []) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk({k: v for k, v in toc.items() if k != "root"})
    return [re.sub(r"\.(ipynb|md)$", "", p) for p in pages]


def chapters(root: Path) -> list[Path]:
    """The notebooks of the book, in toc order."""
    return [root / f"{p}.ipynb" for p in toc_files(root) if (root / f"{p}.ipynb").is_file()]


def unlisted_chapters(root: Path) -> list[str]:
    """Notebooks in ``notebooks/`` that ``_toc.yml`` does not list (a test requires none)."""
    return sorted(p.name for p in set((root / "notebooks").glob("*.ipynb")) - set(chapters(root)))


def _digest(path: Path, scale: str) -> str:
    """What a chapter's outputs depend on: its source, the scale, the library's code (every module
    of ``alexlib``, subpackages included), the stored results the chapters lead with, and how
    :func:`execute_chapter` runs it. The project's tooling (``tools/``: this file's staging, the
    build, the Chromium check) does not change what a chapter prints, so editing it does not send
    every chapter back to papermill."""
    package = Path(alexlib.__file__).resolve().parent
    h = hashlib.sha256(path.read_bytes() + scale.encode())
    for module in sorted(package.rglob("*.py")):
        h.update(str(module.relative_to(package)).encode() + module.read_bytes())
    results = results_dir()
    for stored in sorted(results.rglob("*")) if results.is_dir() else ():
        if stored.is_file() and stored.name != "checkpoint.pt":
            h.update(str(stored.relative_to(results)).encode() + stored.read_bytes())
    h.update(inspect.getsource(execute_chapter).encode())
    return h.hexdigest()[:16]


def executed_path(root: Path, notebook: Path, scale: str) -> Path:
    return root / "_build" / "executed" / scale / notebook.name


def is_fresh(root: Path, notebook: Path, scale: str) -> bool:
    """True when the executed copy ran this exact source at this scale and finished."""
    out = executed_path(root, notebook, scale)
    if not out.is_file():
        return False
    meta = json.loads(out.read_text()).get("metadata", {}).get("alexlib", {})
    return meta.get("source_digest") == _digest(notebook, scale) and meta.get("ok") is True


# A smoke-scale cell takes seconds (the slowest chapter runs in about 80 s). nbclient can wait
# forever on a cell that displays a widget when a kernel message goes missing
# (jupyter/nbclient#312): seen here once, under load, in a cell that had run hundreds of times.
# So a smoke cell gets this long, and a chapter that runs past it is run once more.
SMOKE_CELL_TIMEOUT_S = 600


def execute_chapter(
    root: Path,
    notebook: Path,
    scale: str = "smoke",
    force: bool = False,
    cell_timeout_s: float | None = None,
) -> float:
    """Execute one chapter with papermill at ``scale``; returns its wall time in seconds (0 when
    reused).

    ``cell_timeout_s``: the most one cell may take (default: :data:`SMOKE_CELL_TIMEOUT_S` at smoke
    scale, no limit at the others, whose cells train for an hour). A chapter whose cell runs past
    it is executed once more from the start; a second overrun is an error.
    A failed run leaves its partly executed copy at ``_build/executed/<scale>/<name>.failed.ipynb``.
    """
    import papermill
    from nbclient.exceptions import CellTimeoutError

    if not force and is_fresh(root, notebook, scale):
        return 0.0
    out = executed_path(root, notebook, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    failed = out.with_suffix(".failed.ipynb")
    if cell_timeout_s is None and scale == "smoke":
        cell_timeout_s = SMOKE_CELL_TIMEOUT_S
    for attempt in (1, 2):
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(notebook),
                str(failed),
                parameters={"SCALE": scale},
                kernel_name="python3",
                cwd=str(notebook.parent),
                progress_bar=False,
                execution_timeout=cell_timeout_s,
            )
            break
        except papermill.PapermillExecutionError as exc:
            raise BookError(
                f"{notebook.name} failed at {scale} scale in cell {exc.exec_count}: {exc.ename}: "
                f"{exc.evalue}\nthe executed copy with the traceback is {failed}"
            ) from None
        except CellTimeoutError:
            if attempt == 2:
                raise BookError(
                    f"{notebook.name}: a cell ran past {cell_timeout_s:g} s at {scale} scale, "
                    f"twice; the executed copy (the cell marked running) is {failed}"
                ) from None
            print(
                f"{notebook.name}: a cell ran past {cell_timeout_s:g} s at {scale} scale; "
                "running the chapter once more",
                file=sys.stderr,
            )
    seconds = time.perf_counter() - start
    nb = json.loads(failed.read_text())
    for cell in nb["cells"]:
        # At smoke scale papermill's injected cell repeats the chapter's own defaults: hide it. At
        # full scale it stays visible, so the page says which values it really ran with.
        tags = cell.get("metadata", {}).get("tags", [])
        if scale == "smoke" and "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
    nb.setdefault("metadata", {})["alexlib"] = {
        "source_digest": _digest(notebook, scale),
        "scale": scale,
        "ok": True,
        "seconds": round(seconds, 1),
        "machine": machine_name(provenance()),
    }
    atomic_write_text(out, json.dumps(nb, indent=1))
    failed.unlink()
    return seconds


# A tqdm progress bar as it reads once the bar is frozen: "decoding cifar10/train:   0%|    | 0/260
# [00:00<?, ?it/s]", "12it [00:00, 1234.56it/s]". In a notebook tqdm draws it as a widget whose
# text/plain copy is this line; on a terminal, as this line rewritten after each carriage return.
_PROGRESS_LINE = re.compile(
    r"^.*?(?:\d{1,3}%\|.*\| *)?[\d.]+[a-zA-Z]*(?:/[\d.?]+[a-zA-Z]*)? "
    r"\[\d+:\d\d(?::\d\d)?(?:<[^\]]*)?(?:, [^\]]*)?\]\s*$"
)
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else value


def _as_shown(text: str) -> str:
    """A stream's text as a terminal leaves it: what follows the last carriage return of each line,
    without the lines that a progress bar cleared or drew."""
    lines = []
    for line in text.split("\n"):
        if "\r" in line:
            kept = [part for part in line.split("\r") if part]
            line = kept[-1] if kept else ""
            if not line.strip():
                continue
        if not _PROGRESS_LINE.match(line):
            lines.append(line)
    return "\n".join(lines)


def _is_progress_bar(output: dict) -> bool:
    data = output.get("data", {})
    return _WIDGET_VIEW in data and bool(_PROGRESS_LINE.match(_text(data.get("text/plain", ""))))


def clean_outputs(nb: dict) -> dict:
    """What the static book shows of an executed chapter (``nb`` is changed in place and returned).

    - Progress bars go: tqdm's notebook widgets (frozen at "0%" in a page without a kernel) and its
      terminal bars in stream text. ``TQDM_DISABLE`` cannot do this: alexlib passes ``disable=``
      explicitly, and tqdm lets an argument win over the environment.
    - Neighbouring stream outputs of the same name are joined, and empty ones dropped, so a cell's
      text stays in one box per stretch between its figures, in the order it was printed (unlike
      myst-nb's ``nb_merge_streams``, which moves all of a cell's text above its first figure).
    - The saved widget state goes: the book has no kernel, so a widget in it would be a control that
      does nothing, and drawing even that needs scripts from a CDN. Widget cells are tagged
      ``remove-output`` and stand next to a static twin; the Chromium check fails on a widget output
      left in a page (it renders as an empty box).
    """
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        kept: list[dict] = []
        for output in cell.get("outputs", []):
            if _is_progress_bar(output):
                continue
            if output.get("output_type") == "stream":
                text = _as_shown(_text(output.get("text", "")))
                if not text.strip():
                    continue
                last = kept[-1] if kept else {}
                if last.get("output_type") == "stream" and last["name"] == output["name"]:
                    joiner = "" if last["text"].endswith("\n") else "\n"
                    last["text"] += joiner + text
                    continue
                output = {**output, "text": text}
            kept.append(output)
        cell["outputs"] = kept
    return nb


def add_costs(nb: dict, chapter: str) -> dict:
    """``nb`` with its cost table (:mod:`tools.costs`) as a Markdown cell right after its
    parameters cell (changed in place and returned; a chapter without one is left as it is)."""
    cells = nb.get("cells", [])
    tagged = [
        i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if not tagged:
        return nb
    rows = chapter_costs(chapter, nb.get("metadata", {}).get("alexlib"))
    table = {
        "cell_type": "markdown",
        "id": "alexlib-costs",
        "metadata": {},
        "source": costs_markdown(rows),
    }
    after = tagged[0] + 1
    # papermill puts its injected-parameters cell right after the parameters cell
    while after < len(cells) and "injected-parameters" in cells[after].get("metadata", {}).get(
        "tags", []
    ):
        after += 1
    cells.insert(after, table)
    return nb


def stage(root: Path, scale: str, *, dest: Path | None = None, stale_ok: bool = False) -> Path:
    """Copy the book's sources to ``dest`` (default ``_build/stage``) with each chapter replaced by
    its executed copy, cleaned for the page (:func:`clean_outputs`).

    A chapter whose executed copy is older than its source or the library is refused, unless
    ``stale_ok`` (``python -m tools.book --no-execute``), which builds from it with a warning.
    """
    dest = dest or root / "_build" / "stage"
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        if (root / name).is_file():
            shutil.copy2(root / name, dest / name)
    for folder in ("book", "results"):
        if (root / folder).is_dir():
            shutil.copytree(root / folder, dest / folder)
    (dest / "notebooks").mkdir()
    for notebook in chapters(root):
        executed = executed_path(root, notebook, scale)
        if not is_fresh(root, notebook, scale):
            if not (stale_ok and executed.is_file()):
                raise BookError(
                    f"{notebook.name} has not been executed at {scale} scale since it (or the "
                    "library) last changed: python -m tools.book --only " + notebook.stem
                )
            print(
                f"warning: {notebook.name}: building from an executed copy older than its source "
                "or the library",
                flush=True,
            )
        nb = add_costs(clean_outputs(json.loads(executed.read_text())), notebook.name[:2])
        (dest / "notebooks" / notebook.name).write_text(json.dumps(nb, indent=1))
    for extra in (root / "notebooks").iterdir():  # images or data files the chapters refer to
        if extra.suffix != ".ipynb" and extra.is_file():
            shutil.copy2(extra, dest / "notebooks" / extra.name)
    return dest


def build_html(
    root: Path, scale: str = "smoke", *, stale_ok: bool = False, build: Path | None = None
) -> Path:
    """``jupyter-book build -W`` of the staged sources; returns the folder of the HTML book
    (``<build>/html``; ``build`` defaults to ``_build``)."""
    build = build or root / "_build"
    staged = stage(root, scale, dest=build / "stage", stale_ok=stale_ok)
    jb = Path(sys.executable).with_name("jupyter-book")
    command = [
        str(jb) if jb.exists() else "jupyter-book",
        "build",
        str(staged),
        "-W",
        "--keep-going",
    ]
    # Sphinx imports the book's extension (_config.yml: tools.sphinx_mathjax) from the checkout
    paths = [str(root), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    result = subprocess.run(command, cwd=root, env=env)
    if result.returncode != 0:
        raise BookError(
            f"jupyter-book build failed (exit {result.returncode}); its warnings are printed above."
        )
    html = build / "html"
    if html.exists():
        shutil.rmtree(html)
    shutil.copytree(staged / "_build" / "html", html)
    return html


# ----------------------------------------------------------------------------------- checking the
# HTML


@dataclass
class PageReport:
    page: str
    images: int = 0
    links: int = 0
    problems: list[str] = field(default_factory=list)


def chromium_path() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    raise BookError(
        "headless Chromium was not found. Install it (Debian/Ubuntu: `sudo apt-get install "
        "chromium`) or set CHROMIUM=/path/to/chrome."
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _serve(folder: Path):
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


_IMAGES_JS = """() => Array.from(document.images).map(i => ({src: i.currentSrc || i.src,
    ok: i.complete && i.naturalWidth > 0}))"""
_LINKS_JS = "() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"
# Resolves once MathJax has typeset the page: true, or false when its typesetting failed; null when
# the page loads no MathJax (a page without maths) or MathJax never started (its script is missing).
_MATHJAX_JS = """() => (window.MathJax && MathJax.startup && MathJax.startup.promise)
    ? MathJax.startup.promise.then(() => true, () => false) : null"""
# What a reader would see go wrong, page by page (each entry: one problem, in words):
# - raw maths: TeX delimiters left in the page's text, outside code (MathJax did not typeset it);
# - empty outputs: an output of a code cell that shows nothing (no text, no picture), e.g. a widget
#   without a kernel, or a progress bar's leftovers;
# - clipped code: a code block (a code cell's source, or a block in the prose) wider than its box,
#   so its right end is hidden behind a scroll bar. Outputs are exempt: wide ones scroll on purpose.
_READER_JS = r"""() => {
  const problems = [];
  const firstLine = el => {
    const code = el.closest('div.cell') && el.closest('div.cell').querySelector('.cell_input pre');
    return code ? ` (cell starting "${code.innerText.split('\n')[0].slice(0, 60)}")` : '';
  };
  const skip = 'pre, code, script, style, textarea, mjx-container, mjx-assistive-mml';
  const raw = /\\\(|\\\[|\$\$|\$[^$\n]*\\[A-Za-z]+[^$\n]*\$/;
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.parentElement.closest(skip) && raw.test(node.nodeValue)) {
      problems.push(`raw maths in the text: "${node.nodeValue.trim().slice(0, 80)}"`);
    }
  }
  const visual = 'img, svg, canvas, video, iframe, object, embed, table, mjx-container';
  const shows = el => {
    if (el.matches('script[type*="widget-view"]')) return false;
    if (el.matches(visual) || el.querySelector(visual)) return true;
    const texts = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    for (let node = texts.nextNode(); node; node = texts.nextNode()) {
      if (!node.parentElement.closest('script, style, template') && node.nodeValue.trim()) {
        return true;
      }
    }
    return false;
  };
  document.querySelectorAll('div.cell_output').forEach(out => {
    const parts = out.children.length ? Array.from(out.children) : [out];
    const empty = parts.filter(part => !shows(part)).length;
    if (empty) {
      problems.push(`empty output: ${empty} of ${parts.length} output(s) show nothing` +
                    firstLine(out));
    }
  });
  document.querySelectorAll('pre').forEach(pre => {
    if (pre.scrollWidth <= pre.clientWidth + 1) return;
    const longest = Math.max(...pre.innerText.split('\n').map(line => line.length));
    const output = pre.closest('div.cell_output');
    const what = output ? 'output' : pre.closest('div.cell_input') ? 'code cell' : 'code block';
    problems.push(`clipped ${output ? 'output: an' : 'code: a'} ${what} is ${pre.scrollWidth}px ` +
                  `wide in a ${pre.clientWidth}px box (longest line ${longest} characters)` +
                  firstLine(pre));
  });
  return problems;
}"""
# How many search fields a reader sees on the page (a second one, in a bar across the top, came from
# the theme's defaults): the visible search buttons and inputs, not the closed search dialog's.
_SEARCH_FIELDS_JS = """() => Array.from(document.querySelectorAll(
    '.search-button-field, input[type="search"], #searchbox input')).filter(el => {
  const box = el.getBoundingClientRect(), style = getComputedStyle(el);
  return box.width > 0 && box.height > 0 && style.visibility !== 'hidden';
}).length"""
# The window the check reads the book in: a common laptop screen. The theme's text column is then
# 786px wide, and book/_static/alexlib.css sizes code cells so 88 columns fit it.
VIEWPORT = {"width": 1440, "height": 900}


def check_html(root: Path, html: Path, screenshots: Path | None = None) -> list[PageReport]:
    """Load every toc page of the built book in headless Chromium (see :func:`check_pages`)."""
    return check_pages(html, toc_files(root), screenshots)


def check_pages(html: Path, pages: list[str], screenshots: Path | None = None) -> list[PageReport]:
    """Load each page (``pages``: paths under ``html`` without ``.html``) in headless Chromium, with
    every request that leaves the local server blocked, as a reader without a network would: the
    page loads; every image in it is decoded by the browser; every internal link points at a file
    (and anchor) that exists; MathJax typesets every formula (no TeX left in the text); no output
    of a code cell is empty; no code block and no printed output is wider than its box (at
    :data:`VIEWPORT`: the chapters print at most 88 columns); at most one search field is shown."""
    from playwright.sync_api import sync_playwright

    server = _serve(html)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    reports: list[PageReport] = []
    links_seen: dict[str, str] = {}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium_path(),
                headless=True,
                args=[
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-sync",
                    "--disable-component-update",
                    "--no-first-run",
                ],
            )
            page = browser.new_page(viewport=VIEWPORT)
            # Block everything that is not the local server (fonts or scripts from a CDN): offline
            # here.
            page.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(base) else route.abort()
                ),
            )
            for name in pages:
                report = PageReport(name)
                reports.append(report)
                response = page.goto(base + name + ".html", wait_until="load")
                if response is None or not response.ok:
                    report.problems.append(
                        f"page did not load (HTTP {response.status if response else '?'})"
                    )
                    continue
                if page.evaluate(_MATHJAX_JS) is False:
                    report.problems.append("MathJax failed to typeset the page")
                if screenshots is not None:
                    screenshots.mkdir(parents=True, exist_ok=True)
                    page.screenshot(
                        path=str(screenshots / (name.replace("/", "__") + ".png")), full_page=True
                    )
                for img in page.evaluate(_IMAGES_JS):
                    report.images += 1
                    if img["src"].startswith(base) or img["src"].startswith("data:"):
                        if not img["ok"]:
                            report.problems.append(f"image not displayed: {img['src'][:120]}")
                for href in page.evaluate(_LINKS_JS):
                    if href.startswith(base):
                        report.links += 1
                        links_seen.setdefault(href, name)
                report.problems += page.evaluate(_READER_JS)
                searches = page.evaluate(_SEARCH_FIELDS_JS)
                if searches > 1:
                    report.problems.append(f"{searches} search fields on the page (one expected)")
            browser.close()
        problems = _check_links(base, links_seen)
        for report in reports:
            report.problems += problems.get(report.page, [])
    finally:
        server.shutdown()
    return reports


# ----------------------------------------------------------------------------------- the PDF

# Resolves once every image of the page is decoded (or has failed): a page is printed as shown.
_IMAGES_LOADED_JS = """() => Promise.all(Array.from(document.images).map(i => i.complete
    ? null : new Promise(done => { i.onload = i.onerror = done; })))"""


def print_pdf(html: Path, pages: list[str], out: Path, titles: list[str] | None = None) -> Path:
    """Print ``pages`` (paths under ``html`` without ``.html``, in this order: the table of
    contents') to one PDF at ``out`` with the headless Chromium of :func:`check_pages`: each page
    loaded from a local server with every other request blocked, its images decoded and its
    formulas typeset by MathJax before it is printed (A4, the theme's print styles), then the pages
    joined with ``pypdf``, one bookmark per page (``titles``, default the page's own title)."""
    from playwright.sync_api import sync_playwright
    from pypdf import PdfReader, PdfWriter

    server = _serve(html)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    writer = PdfWriter()
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium_path(), headless=True, args=["--no-sandbox"]
            )
            page = browser.new_page(viewport=VIEWPORT)
            page.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(base) else route.abort()
                ),
            )
            for k, name in enumerate(pages):
                response = page.goto(base + name + ".html", wait_until="load")
                if response is None or not response.ok:
                    raise BookError(f"{name}.html did not load for the PDF")
                if page.evaluate(_MATHJAX_JS) is False:
                    raise BookError(f"{name}.html: MathJax failed to typeset the page")
                page.evaluate(_IMAGES_LOADED_JS)
                printed = page.pdf(format="A4", print_background=True)
                first = len(writer.pages)
                writer.append(PdfReader(io.BytesIO(printed)))
                title = titles[k] if titles else page.title().split(" — ")[0].strip()
                writer.add_outline_item(title or name, first)
            browser.close()
    finally:
        server.shutdown()
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    writer.write(buffer)
    atomic_write(out, lambda f: f.write(buffer.getvalue()))
    return out


def book_pdf(root: Path, html: Path) -> Path:
    """The whole built book as one PDF, pages in ``_toc.yml``'s order:
    ``_build/pdf/alexnet-executable.pdf`` (``make pdf``)."""
    return print_pdf(html, toc_files(root), root / "_build" / "pdf" / "alexnet-executable.pdf")


def _check_links(base: str, links: dict[str, str]) -> dict[str, list[str]]:
    """Fetch each internal link target once; check the anchor exists in it."""
    problems: dict[str, list[str]] = {}
    pages: dict[str, str | None] = {}
    for href, source in sorted(links.items()):
        url, _, fragment = href.partition("#")
        if url not in pages:
            try:
                with urllib.request.urlopen(url, timeout=10) as reply:
                    body = reply.read()
                    pages[url] = (
                        body.decode("utf-8", "replace") if url.endswith((".html", "/")) else ""
                    )
            except OSError:
                pages[url] = None
        if pages[url] is None:
            problems.setdefault(source, []).append(f"broken link: {href[len(base) :]}")
        elif (
            fragment
            and pages[url]
            and not re.search(f'id="{re.escape(urllib.parse.unquote(fragment))}"', pages[url])
        ):
            problems.setdefault(source, []).append(f"link to a missing anchor: {href[len(base) :]}")
    return problems


# ----------------------------------------------------------------------------------- the main job


def main_job(
    scale: str = "smoke",
    execute: bool = True,
    check: bool = False,
    only: list[str] | None = None,
    pdf: bool = False,
) -> int:
    root = repo_root()
    total = time.perf_counter()
    synced = sync_setup_cells(root)
    if synced:
        print(
            f"wrote the repository of _config.yml ({install_spec(root)}) into the Colab setup "
            f"cell of {len(synced)} chapter(s): commit them",
            flush=True,
        )
    if execute:
        for notebook in chapters(root):
            if only and notebook.stem not in only:
                continue
            print(f"executing {notebook.name} at {scale} scale ...", flush=True)
            seconds = execute_chapter(root, notebook, scale)
            print(f"  {'reused the last run' if seconds == 0 else f'{seconds:.1f} s'}", flush=True)
    html = build_html(root, scale, stale_ok=not execute)
    print(f"built the book: {html / 'index.html'}")
    if check:
        reports = check_html(root, html, screenshots=root / "_build" / "screenshots")
        bad = [r for r in reports if r.problems]
        for r in reports:
            print(
                f"  {r.page:45s} {r.images:3d} images {r.links:4d} internal links"
                f"{'  PROBLEMS: ' + '; '.join(r.problems) if r.problems else ''}"
            )
        if bad:
            raise BookError(f"{len(bad)} page(s) of the built book have problems (listed above).")
        print(
            f"checked {len(reports)} pages in headless Chromium: every image shown, no broken "
            f"internal link, every formula typeset, no empty output, no clipped code, one search "
            "field"
        )
    if pdf:
        print(f"printed the book to {book_pdf(root, html)}", flush=True)
    print(f"main job done in {time.perf_counter() - total:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m tools.book [--scale S] [--no-execute] [--check] [--only STEM ...]``:
    :func:`main_job`."""
    p = Parser(
        prog="python -m tools.book",
        description="execute every chapter with papermill and build the HTML book",
    )
    p.add_argument("--scale", choices=SCALES, default="smoke")
    p.add_argument(
        "--no-execute", action="store_true", help="build from the chapters executed last time"
    )
    p.add_argument(
        "--check", action="store_true", help="then check every page in headless Chromium"
    )
    p.add_argument(
        "--only", nargs="*", help="execute only these chapters (file stems, e.g. 00_how_to_use)"
    )

    p.add_argument(
        "--pdf",
        action="store_true",
        help="then print it to _build/pdf/alexnet-executable.pdf in headless Chromium",
    )

    def run(args) -> int:
        return main_job(
            scale=args.scale,
            execute=not args.no_execute,
            check=args.check,
            only=args.only,
            pdf=args.pdf,
        )

    return run_command(p, run, argv)


if __name__ == "__main__":
    sys.exit(main())
