"""The book's main job: execute every chapter with papermill, build the HTML book, check it in
Chromium.

    python -m alexlib book                  # smoke scale (CPU, minutes), then jupyter-book build -W
    python -m alexlib book --scale full     # the paper's schedule (a GPU)
    python -m alexlib book --check          # ... then load every page in headless Chromium

The chapters in ``notebooks/`` are stored without outputs. Executed copies go to
``_build/executed/<scale>/``; the book is built from a staged copy of the sources in which each
chapter is replaced by its executed copy (``_build/stage/``), so the repository's notebooks stay
clean. A chapter whose source, scale and library code have not changed since its last successful run
is not executed again.

This module works on a checkout of the repository (it needs ``_toc.yml``), not on an installed
package.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
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

from .._io import atomic_write_text, repo_root
from ..errors import BookError

__all__ = [
    "BookError",
    "repo_root",
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
    "main_job",
]

# yaml, papermill and playwright are imported where they are used: they belong to the book's tool
# chain (requirements.txt), not to the library, and a GPU machine running `python -m alexlib train`
# or `bench` has none of them.


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
    """What a chapter's outputs depend on: its source, the scale, and the library's code."""
    h = hashlib.sha256(path.read_bytes() + scale.encode())
    for module in sorted(Path(__file__).parent.glob("*.py")):
        h.update(module.read_bytes())
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


def execute_chapter(root: Path, notebook: Path, scale: str = "smoke", force: bool = False) -> float:
    """Execute one chapter with papermill at ``scale``; returns its wall time in seconds (0 when
    reused).

    A failed run leaves its partly executed copy at ``_build/executed/<scale>/<name>.failed.ipynb``.
    """
    import papermill

    if not force and is_fresh(root, notebook, scale):
        return 0.0
    out = executed_path(root, notebook, scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    failed = out.with_suffix(".failed.ipynb")
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(failed),
            parameters={"SCALE": scale},
            kernel_name="python3",
            cwd=str(notebook.parent),
            progress_bar=False,
        )
    except papermill.PapermillExecutionError as exc:
        raise BookError(
            f"{notebook.name} failed at smoke scale in cell {exc.exec_count}: {exc.ename}: "
            f"{exc.evalue}\nthe executed copy with the traceback is {failed}"
        ) from None
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
    }
    atomic_write_text(out, json.dumps(nb, indent=1))
    failed.unlink()
    return seconds


def stage(root: Path, scale: str) -> Path:
    """Copy the book's sources to ``_build/stage`` with each chapter replaced by its executed
    copy."""
    dest = root / "_build" / "stage"
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
            raise BookError(
                f"{notebook.name} has not been executed at {scale} scale since it last changed."
            )
        shutil.copy2(executed, dest / "notebooks" / notebook.name)
    for extra in (root / "notebooks").iterdir():  # images or data files the chapters refer to
        if extra.suffix != ".ipynb" and extra.is_file():
            shutil.copy2(extra, dest / "notebooks" / extra.name)
    return dest


def build_html(root: Path, scale: str = "smoke") -> Path:
    """``jupyter-book build -W`` of the staged sources; returns the folder of the HTML book."""
    staged = stage(root, scale)
    jb = Path(sys.executable).with_name("jupyter-book")
    command = [
        str(jb) if jb.exists() else "jupyter-book",
        "build",
        str(staged),
        "-W",
        "--keep-going",
    ]
    result = subprocess.run(command, cwd=root)
    if result.returncode != 0:
        raise BookError(
            f"jupyter-book build failed (exit {result.returncode}); its warnings are printed above."
        )
    html = root / "_build" / "html"
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


def check_html(root: Path, html: Path, screenshots: Path | None = None) -> list[PageReport]:
    """Load every toc page of the built book in headless Chromium: the page loads, every image in it
    is decoded by the browser, and every internal link points at a file (and anchor) that exists."""
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
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            # Block everything that is not the local server (fonts or scripts from a CDN): offline
            # here.
            page.route(
                "**/*",
                lambda route: (
                    route.continue_() if route.request.url.startswith(base) else route.abort()
                ),
            )
            for name in toc_files(root):
                report = PageReport(name)
                reports.append(report)
                response = page.goto(base + name + ".html", wait_until="load")
                if response is None or not response.ok:
                    report.problems.append(
                        f"page did not load (HTTP {response.status if response else '?'})"
                    )
                    continue
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
            browser.close()
        problems = _check_links(base, links_seen)
        for report in reports:
            report.problems += problems.get(report.page, [])
    finally:
        server.shutdown()
    return reports


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
    scale: str = "smoke", execute: bool = True, check: bool = False, only: list[str] | None = None
) -> int:
    root = repo_root()
    total = time.perf_counter()
    if execute:
        for notebook in chapters(root):
            if only and notebook.stem not in only:
                continue
            print(f"executing {notebook.name} at {scale} scale ...", flush=True)
            seconds = execute_chapter(root, notebook, scale)
            print(f"  {'reused the last run' if seconds == 0 else f'{seconds:.1f} s'}", flush=True)
    html = build_html(root, scale)
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
            f"internal link"
        )
    print(f"main job done in {time.perf_counter() - total:.0f} s")
    return 0
