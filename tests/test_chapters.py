"""Every chapter runs under papermill at smoke scale; then the book builds with -W and every page
loads in headless Chromium with its images shown and no broken internal link.

The tests run in file order: first each chapter (one test each), then the book build, which reuses
the executed chapters (a chapter is executed again only if its source changed).
"""

from __future__ import annotations

import pytest

from tools.book import (
    build_html,
    chapters,
    check_html,
    execute_chapter,
    is_fresh,
    repo_root,
    toc_files,
    unlisted_chapters,
)

ROOT = repo_root()
CHAPTERS = chapters(ROOT)


def test_every_chapter_is_in_the_toc_and_numbered():
    assert CHAPTERS, "no chapters found"
    assert not unlisted_chapters(ROOT), f"add these chapters to _toc.yml: {unlisted_chapters(ROOT)}"
    assert CHAPTERS[0].name == "00_how_to_use.ipynb"
    for nb in CHAPTERS:
        assert nb.stem[:2].isdigit() and nb.stem[2] == "_", (
            f"{nb.name}: chapters are named NN_slug.ipynb"
        )


def test_chapters_are_stored_without_outputs():
    import nbformat

    for path in CHAPTERS:
        nb = nbformat.read(path, as_version=4)
        dirty = [
            i
            for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and (c.outputs or c.execution_count)
        ]
        assert not dirty, f"{path.name}: cells {dirty} have outputs; clear them before committing"
        tags = [c.metadata.get("tags", []) for c in nb.cells]
        assert sum("parameters" in t for t in tags) == 1, (
            f"{path.name}: needs exactly one 'parameters' cell"
        )


@pytest.mark.chapters
@pytest.mark.parametrize("notebook", CHAPTERS, ids=[p.stem for p in CHAPTERS])
def test_chapter_runs_at_smoke_scale(notebook, shared_data, monkeypatch):
    monkeypatch.setenv("ALEXLIB_DATA", str(shared_data))
    seconds = execute_chapter(ROOT, notebook, "smoke")
    assert is_fresh(ROOT, notebook, "smoke")
    print(f"{notebook.name}: {seconds:.1f} s")


@pytest.mark.book
def test_book_builds_and_every_page_checks_out_in_chromium(shared_data, monkeypatch):
    monkeypatch.setenv("ALEXLIB_DATA", str(shared_data))
    for notebook in CHAPTERS:  # reuses the runs of the test above
        execute_chapter(ROOT, notebook, "smoke")
    html = build_html(ROOT, "smoke")
    reports = check_html(ROOT, html, screenshots=ROOT / "_build" / "screenshots")
    assert [r.page for r in reports] == toc_files(ROOT)
    problems = {r.page: r.problems for r in reports if r.problems}
    assert not problems, problems
    by_page = {r.page: r for r in reports}
    assert by_page["notebooks/00_how_to_use"].images >= 3, "chapter 0 should show real images"
    assert all(r.links > 0 for r in reports)


@pytest.mark.book
def test_the_built_book_prints_to_one_pdf():
    """make pdf's printer on the book the test above built: pages in toc order, the first
    chapter's title as text, a picture on the pages of every chapter that draws one."""
    import json
    import re

    from pypdf import PdfReader

    from tools.book import book_pdf

    html = ROOT / "_build" / "html"
    reader = PdfReader(book_pdf(ROOT, html))
    assert len(reader.pages) > len(CHAPTERS)
    starts = [reader.get_destination_page_number(item) for item in reader.outline]
    assert len(starts) == len(toc_files(ROOT)) and starts == sorted(starts)
    ends = starts[1:] + [len(reader.pages)]
    first = json.loads(CHAPTERS[0].read_text())["cells"][0]["source"][0].lstrip("# ").strip()
    text = " ".join(reader.pages[n].extract_text() for n in range(len(reader.pages)))
    assert first in text, first
    for page, start, end in zip(toc_files(ROOT), starts, ends):
        built = (html / f"{page}.html").read_text()
        if re.search(r'<img[^>]*src="[^"]*_images/', built):  # a chapter that draws a figure
            images = sum(len(p.images) for p in reader.pages[start:end])
            assert images >= 1, f"{page}: no picture on its {end - start} PDF pages"
