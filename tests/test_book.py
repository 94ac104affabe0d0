"""The book's build and its browser check, on small inputs: what the static page keeps of an
executed chapter (progress bars dropped, text kept in the order it was printed), the 88-column limit
of the chapters' code, and the Chromium check failing on crafted pages with each problem it looks
for (so it cannot pass silently). The full build and the check of every page are in
tests/test_chapters.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from alexlib.errors import BookError
from tools.book import check_pages, clean_outputs, repo_root
from tools.sphinx_mathjax import copy_mathjax

ROOT = repo_root()
COLUMNS = 88

# TEMPORARY allow-list: chapters whose code was still wider than 88 columns when the limit came in.
# Their test is an expected failure until they fit (then it passes like any other); delete each name
# once its chapter is wrapped, and this list with the last one.


# --------------------------------------------------------------------------- what a page keeps


def _stream(name: str, text: str) -> dict:
    return {"output_type": "stream", "name": name, "text": text}


def _figure() -> dict:
    return {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"}}


def _progress_widget(text: str) -> dict:
    view = {"model_id": "abc", "version_major": 2, "version_minor": 0}
    data = {"application/vnd.jupyter.widget-view+json": view, "text/plain": text}
    return {"output_type": "display_data", "data": data, "metadata": {}}


def test_clean_outputs_drops_progress_bars_and_keeps_the_printed_order():
    interactive = {
        "output_type": "execute_result",
        "data": {
            "application/vnd.jupyter.widget-view+json": {"model_id": "def"},
            "text/plain": "interactive(children=(FloatSlider(value=2.0),))",
        },
    }
    nb = {
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}}},
        "cells": [
            {"cell_type": "markdown", "source": "text"},
            {
                "cell_type": "code",
                "outputs": [
                    _stream("stdout", "half: 48 kernels\n"),
                    _progress_widget(
                        "decoding cifar10/train:   0%|          | 0/260 [00:00<?, ?it/s]"
                    ),
                    _stream("stderr", "\repoch 1/2:  50%|#####     | 3/6 [00:01<00:01, 2.9it/s]"),
                    _stream("stderr", "\r                                   \r"),
                    _stream("stdout", "seed 0\n"),
                    _figure(),
                    _stream("stdout", "onegpu2014: 64 kernels\n"),
                    _stream("stderr", "12it [00:00, 1234.56it/s]\nUserWarning: a real warning\n"),
                    _figure(),
                    interactive,
                ],
            },
        ],
    }
    out = clean_outputs(nb)["cells"][1]["outputs"]
    shown = [(o["output_type"], o.get("name"), o.get("text")) for o in out]
    assert shown == [
        ("stream", "stdout", "half: 48 kernels\nseed 0\n"),  # joined across the dropped bars
        ("display_data", None, None),
        ("stream", "stdout", "onegpu2014: 64 kernels\n"),  # still between its two figures
        ("stream", "stderr", "UserWarning: a real warning\n"),
        ("display_data", None, None),
        ("execute_result", None, None),  # a real widget stays: its cell's tags decide
    ]
    assert "widgets" not in nb["metadata"]


# --------------------------------------------------------------------------- 88 columns


def _code_lines(path) -> list[tuple[int, str]]:
    """(cell index, line) for every line of a chapter's code: code cells, and fenced blocks in its
    markdown cells."""
    nb = json.loads(path.read_text())
    lines = []
    for i, cell in enumerate(nb["cells"]):
        source = "".join(cell["source"]).split("\n")
        if cell["cell_type"] == "code":
            lines += [(i, line) for line in source]
        elif cell["cell_type"] == "markdown":
            fence = None
            for line in source:
                mark = re.match(r"\s*(```+|~~~+)", line)
                if fence is None and mark:
                    fence = mark.group(1)
                elif fence is not None and line.strip().startswith(fence):
                    fence = None
                elif fence is not None:
                    lines.append((i, line))
    return lines


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_code_fits_88_columns(path):
    long = [(i, len(line)) for i, line in _code_lines(path) if len(line) > COLUMNS]
    assert not long, (
        f"{path.name}: lines wider than {COLUMNS} columns (cell index, length): {long}; the book "
        "cuts a wider line off"
    )


# --------------------------------------------------------------------------- the book's config


def test_config_serves_its_own_mathjax_and_css():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    sphinx = config["sphinx"]["config"]
    assert "tools.sphinx_mathjax" in config["sphinx"]["extra_extensions"]
    assert sphinx["mathjax_path"] == "mathjax/tex-mml-chtml.js"
    assert sphinx["smartquotes"] is False  # "--scale" must not become an en dash
    assert sphinx["nb_merge_streams"] is False  # it reorders text and figures
    for folder in sphinx["html_static_path"]:
        for css in sphinx["html_css_files"]:
            assert (ROOT / folder / css).is_file()


# --------------------------------------------------------------------------- the Chromium check


def _cell(code: str, outputs: str = "") -> str:
    shown = f'<div class="cell_output">{outputs}</div>' if outputs else ""
    return f'<div class="cell"><div class="cell_input"><pre>{code}</pre></div>{shown}</div>'


_SVG = '<svg width="20" height="20"><rect width="20" height="20" fill="black"/></svg>'


PAGES = {
    # typeset by the MathJax the book ships; TeX in code and in an output is not maths
    "clean": (
        '<script defer src="_static/mathjax/tex-mml-chtml.js"></script>'
        '<p>Inline <span class="math">\\(k^\\beta\\)</span>, and displayed:</p>'
        '<div class="math">\\[ b = a / (k + \\alpha \\sum_j a_j^2)^\\beta \\]</div>'
        + _cell('print("short")', '<div class="output stream"><pre>short</pre></div>')
        + _cell("x = 1", f'<div class="output">{_SVG}</div>')
        + "<pre>pattern = r'\\(' + '$$'  # in code: not maths</pre>"
    ),
    "raw-maths": (
        '<p>Write <span class="math">\\(a^i_{x,y}\\)</span> for the activity.</p>'
        '<div class="math">\\[ b = a \\]</div><p>$$ k + \\alpha $$</p>'
        "<p>with $\\beta = 0.75$ chosen on a validation set, for $5 a coffee.</p>"
    ),
    "empty-output": (
        _cell(
            "lrn_explorer(maps)",
            '<script type="application/vnd.jupyter.widget-view+json">{"model_id": "x"}</script>',
        )
        + _cell("bar()", '<div class="output stream"><pre>  </pre></div>')
        + _cell("print(1)", '<div class="output stream"><pre>1</pre></div>')
    ),
    "clipped-code": (
        '<div style="width: 500px">'
        + _cell("x = " + " + ".join(["1"] * 60))
        + _cell("y = 2", '<div class="output"><pre>' + "wide output " * 30 + "</pre></div>")
        + "</div>"
    ),
    "broken": '<img src="missing.png"><a href="nowhere.html">a link</a>',
    # the theme's top bar and the sidebar each with a search field; a closed dialog's does not count
    "two-searches": (
        '<header><button class="search-button-field">Search Ctrl+K</button></header>'
        '<nav><button class="search-button-field">Search</button></nav>'
        '<dialog><input type="search"></dialog>'
    ),
}


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    html = tmp_path_factory.mktemp("crafted")
    copy_mathjax(html)
    for name, body in PAGES.items():
        (html / f"{name}.html").write_text(
            f'<!doctype html><html><head><meta charset="utf-8"><title>{name}</title></head>'
            f"<body>{body}</body></html>"
        )
    return {r.page: r.problems for r in check_pages(html, list(PAGES))}


def test_check_passes_a_clean_page(crafted):
    assert crafted["clean"] == []


def test_check_fails_on_raw_maths(crafted):
    raw = [p for p in crafted["raw-maths"] if p.startswith("raw maths")]
    assert len(raw) == 4, crafted["raw-maths"]  # \( \[ $$ and $...\beta...$, not "$5"


def test_check_fails_on_empty_outputs(crafted):
    empty = [p for p in crafted["empty-output"] if p.startswith("empty output")]
    assert len(empty) == 2, crafted["empty-output"]
    assert "lrn_explorer(maps)" in empty[0]


def test_check_fails_on_clipped_code_and_wide_outputs(crafted):
    problems = crafted["clipped-code"]
    assert len(problems) == 2, problems
    assert problems[0].startswith("clipped code: a code cell")
    assert problems[1].startswith("clipped output: an output")
    assert 'cell starting "y = 2"' in problems[1]


def test_check_fails_on_two_search_fields(crafted):
    assert crafted["two-searches"] == ["2 search fields on the page (one expected)"]


def test_check_fails_on_broken_images_and_links(crafted):
    problems = crafted["broken"]
    assert any(p.startswith("image not displayed") for p in problems), problems
    assert any(p.startswith("broken link: nowhere.html") for p in problems), problems


def test_a_chapter_is_executed_again_when_the_stored_results_change(tmp_path, monkeypatch):
    # the chapters lead with results/: a new stored run must not leave an old executed copy fresh
    from tools.book import _digest

    monkeypatch.setenv("ALEXLIB_RESULTS", str(tmp_path))
    chapter = repo_root() / "notebooks" / "10_figure1_relu_vs_tanh.ipynb"
    (tmp_path / "figure1" / "run").mkdir(parents=True)
    (tmp_path / "figure1" / "run" / "metrics.jsonl").write_text('{"epoch": 1}\n')
    before = _digest(chapter, "smoke")
    (tmp_path / "figure1" / "run" / "checkpoint.pt").write_bytes(b"weights")  # not a result
    assert _digest(chapter, "smoke") == before
    (tmp_path / "figure1" / "run" / "metrics.jsonl").write_text('{"epoch": 2}\n')
    assert _digest(chapter, "smoke") != before


def _notebook(path: Path, *sources: str) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    nb.cells = [nbformat.v4.new_code_cell('SCALE = "smoke"', metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_a_cell_that_hangs_is_run_once_more_then_refused(tmp_path, capsys):
    # a hang (nbclient#312) costs one cell timeout and a second run, not the whole CI budget
    from tools.book import execute_chapter, executed_path

    once = _notebook(
        tmp_path / "once.ipynb",
        "import pathlib, time\n"
        "flag = pathlib.Path('hung-once')\n"
        "if not flag.exists():\n"
        "    flag.write_text('1')\n"
        "    time.sleep(120)\n"
        "print('ran')",
    )
    execute_chapter(tmp_path, once, "smoke", cell_timeout_s=4)
    assert "once.ipynb: a cell ran past 4 s at smoke scale; running the chapter once more" in (
        capsys.readouterr().err
    )
    outputs = json.loads(executed_path(tmp_path, once, "smoke").read_text())["cells"][-1]
    assert "".join(outputs["outputs"][0]["text"]) == "ran\n"
    always = _notebook(tmp_path / "always.ipynb", "import time\ntime.sleep(120)")
    with pytest.raises(BookError, match="always.ipynb: a cell ran past 4 s at smoke scale, twice"):
        execute_chapter(tmp_path, always, "smoke", cell_timeout_s=4)


def test_references_quote_torchvisions_own_record_of_its_alexnet():
    # the references page's torchvision figures are the ones torchvision ships with the weights
    from torchvision.models import AlexNet_Weights

    page = (repo_root() / "book" / "references.md").read_text()
    record = AlexNet_Weights.IMAGENET1K_V1.meta["_metrics"]["ImageNet-1K"]
    top1, top5 = record["acc@1"], record["acc@5"]
    quoted = f"documented at {top1:.3f}% top-1 and {top5:.3f}% top-5 accuracy, that is"
    errors = f"{100 - top1:.2f}% and {100 - top5:.2f}% error"
    assert quoted in page.replace("\n", " ") and errors in page.replace("\n", " ")


def test_the_book_command_refuses_an_unknown_scale(capsys):
    from tools.book import main

    with pytest.raises(SystemExit) as exc:  # argparse's own error, as one line
        main(["--scale", "huge"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("error: ") and "invalid choice: 'huge'" in err


# --------------------------------------------------------------------------- the PDF


def test_the_pdf_holds_every_page_in_order_with_its_figures_and_formulas(tmp_path):
    """make pdf's printer on a small built book: pages in the order given, a bookmark per page, the
    first page's title as text, each figure page's picture as an image, the maths typeset."""
    import io

    from PIL import Image
    from pypdf import PdfReader

    from tools.book import print_pdf

    html = tmp_path / "html"
    copy_mathjax(html)
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(picture, format="PNG")
    (html / "figure.png").write_bytes(picture.getvalue())
    mathjax = '<script defer src="_static/mathjax/tex-mml-chtml.js"></script>'
    long_text = "<p>" + "The paper's net trains on two GPUs. " * 40 + "</p>"
    bodies = {
        "first": "<h1>1. The first chapter</h1>"
        + mathjax
        + '<p class="math">\\[ a^2 \\]</p>'
        + long_text * 12,
        "figures": '<h1>2. A figure chapter</h1><img src="figure.png" width="320">',
    }
    for name, body in bodies.items():
        (html / f"{name}.html").write_text(
            f'<!doctype html><html><head><meta charset="utf-8"><title>{name}</title></head>'
            f"<body>{body}</body></html>"
        )
    out = print_pdf(html, list(bodies), tmp_path / "pdf" / "book.pdf")
    reader = PdfReader(out)
    assert len(reader.pages) > len(bodies)  # the first chapter runs over more than one page
    starts = {item.title: reader.get_destination_page_number(item) for item in reader.outline}
    assert list(starts) == ["first", "figures"] and starts["first"] == 0
    assert "1. The first chapter" in reader.pages[0].extract_text()
    assert "\\[" not in reader.pages[0].extract_text()  # MathJax typeset the formula
    figure_pages = reader.pages[starts["figures"] :]
    assert any(len(p.images) >= 1 for p in figure_pages)
    assert "2. A figure chapter" in figure_pages[0].extract_text()


# --------------------------------------------------------------------------- cost tables


def _stored(folder: Path, provenance: dict, seconds: list[float]) -> None:
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(
        json.dumps({"settings": {"seed": 0}, "provenance": provenance})
    )
    rows = [{"epoch": i + 1, "seconds": s} for i, s in enumerate(seconds)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_chapters_cost_table_is_made_from_what_was_measured(tmp_path):
    from tools.costs import chapter_costs, costs_markdown

    cpu = {"device": "cpu (2 threads)", "cpu": "AMD EPYC", "cores": 2}
    _stored(tmp_path / "ledger-laptop" / "base" / "seed0", cpu, [60.0, 30.0])
    _stored(tmp_path / "ledger-laptop" / "no-lrn" / "seed0", cpu, [3600.0, 300.0])
    _stored(tmp_path / "ledger-laptop" / "pool2" / "seed0", cpu, [9999.0])  # not chapter 3's
    executed = {"scale": "smoke", "seconds": 83.4, "machine": "a test machine"}
    rows = {r["scale"]: r for r in chapter_costs("03", executed, base=tmp_path)}
    assert (rows["smoke"]["time"], rows["smoke"]["machine"]) == ("1 min 23 s", "a test machine")
    assert rows["laptop"]["time"] == "1 h 6 min"  # 90 s + 3,900 s, the two runs chapter 3 reads
    # with the arithmetic they trained in: a CPU run without a record was fp32
    assert rows["laptop"]["machine"] == "AMD EPYC (2 cores, 2 threads), in fp32"
    assert "2 stored runs" in rows["laptop"]["what"]
    assert rows["full"]["time"] == "not measured yet"
    table = costs_markdown(list(rows.values()))
    assert "| laptop | 1 h 6 min | AMD EPYC (2 cores, 2 threads), in fp32 |" in table
    meta = json.loads((tmp_path / "ledger-laptop/base/seed0/settings.json").read_text())
    meta["arithmetic"] = "bf16"
    (tmp_path / "ledger-laptop/base/seed0/settings.json").write_text(json.dumps(meta))
    rows = {r["scale"]: r for r in chapter_costs("03", executed, base=tmp_path)}
    assert rows["laptop"]["machine"].endswith(", in bf16 and fp32")
    # a chapter with no stored runs, executed at another scale: nothing is made up
    rows = chapter_costs("01", {"scale": "laptop", "seconds": 5.0}, base=tmp_path)
    assert [r["time"] for r in rows] == ["not measured yet", "5 s", "not measured yet"]


def test_the_cost_table_goes_right_below_the_parameters(tmp_path):
    from tools.book import add_costs

    nb = {
        "metadata": {"alexlib": {"scale": "smoke", "seconds": 12.0, "machine": "m"}},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": "# 3. A chapter"},
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "SCALE = 1"},
            {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": ""},
            {"cell_type": "code", "metadata": {}, "source": "print(SCALE)"},
        ],
    }
    add_costs(nb, "03")
    assert nb["cells"][3]["id"] == "alexlib-costs"
    assert "| smoke | 12 s | m |" in nb["cells"][3]["source"]
    assert nb["cells"][4]["source"] == "print(SCALE)"
