"""A Sphinx extension that serves MathJax from the built book instead of a CDN.

The book is read offline as often as online, and its Chromium check runs with every request off
the machine blocked: with MathJax on a CDN neither sees a formula rendered. This extension copies
the parts of MathJax 3 that the book uses (the ``tex-mml-chtml`` component, its TeX extensions, its
CHTML fonts and the menu's lazily loaded parts) into ``_static/mathjax/`` of the HTML output, and
``_config.yml`` points Sphinx's ``mathjax_path`` at ``mathjax/tex-mml-chtml.js``.

The files come from the PyPI package ``django-static-mathjax`` (pinned in ``requirements.txt``), a
plain copy of MathJax's own release (``mathjax-full`` 3.2.2, Apache 2.0) installed with the rest of
the book's tool chain by pip; nothing of it is committed to this repository. Despite its name the
package needs no Django: only its files are read.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

# what tex-mml-chtml.js loads, relative to MathJax's es5/ folder (about 8 MB of its 24)
PARTS = ["tex-mml-chtml.js", "input", "output/chtml", "ui", "a11y", "sre", "adaptors"]
PACKAGE = "django-static-mathjax"


def mathjax_es5() -> Path:
    """The ``es5/`` folder of the installed MathJax copy."""
    from sphinx.errors import ExtensionError

    spec = importlib.util.find_spec("mathjax")
    if spec is not None and spec.submodule_search_locations:
        es5 = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
        if (es5 / "tex-mml-chtml.js").is_file():
            return es5
    raise ExtensionError(
        f"MathJax for the book comes from the PyPI package {PACKAGE}, which is not installed: "
        f"pip install -r requirements.txt (or pip install {PACKAGE})"
    )


def copy_mathjax(outdir: Path) -> Path:
    """Copy MathJax's parts into ``outdir/_static/mathjax``; returns that folder."""
    es5 = mathjax_es5()
    dest = Path(outdir) / "_static" / "mathjax"
    for part in PARTS:
        source = es5 / part
        if source.is_dir():
            shutil.copytree(source, dest / part, dirs_exist_ok=True)
        else:
            (dest / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / part)
    licence = es5.parent / "LICENSE"
    if licence.is_file():
        shutil.copy2(licence, dest / "LICENSE")
    return dest


def _check_path(app, config) -> None:
    from sphinx.errors import ExtensionError

    path = config.mathjax_path or ""
    if not path.startswith("mathjax/"):
        raise ExtensionError(
            f"mathjax_path is {path!r}: set it to 'mathjax/tex-mml-chtml.js' (_config.yml, "
            "sphinx.config) so the book loads the MathJax this extension copies into _static"
        )
    mathjax_es5()  # fail before the build, not after it, when the package is missing


def _copy(app, exception) -> None:
    if exception is None and app.builder.format == "html":
        copy_mathjax(Path(app.outdir))


def setup(app):
    app.connect("config-inited", _check_path)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
