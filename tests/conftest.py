"""Shared test fixtures.

Real data: tests that need the offline datasets read them from ``$ALEXLIB_DATA`` (CI points it at
``../shared/data``). Where they are absent these tests are skipped, unless
``ALEXLIB_REQUIRE_DATA=1`` (set by CI), which turns the skip into a failure so a missing data folder
can never pass silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_report_header(config):
    """The free disk where the suite writes: its temporary folders (the Colab-like venv of about
    6 GB, and each running chapter's downloaded and decoded data, about 1 GB) and the checkout's
    ``_build`` cache. A CI run that ran out of disk can be told from this line."""
    import shutil
    import tempfile

    where = {"temporary folders": Path(tempfile.gettempdir()), "checkout": REPO}
    free = ", ".join(
        f"{shutil.disk_usage(p).free / 2**30:.1f} GB free for the {name} ({p})"
        for name, p in where.items()
    )
    return f"disk: {free}"


@pytest.fixture(scope="session")
def http_server():
    """``serve(folder) -> URL``: an HTTP server on 127.0.0.1 for ``folder`` (standing in for a
    dataset's host or a data mirror), shut down at the end of the test session."""
    import functools
    import http.server
    import threading

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    servers = []

    def serve(folder: Path) -> str:
        server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()


@pytest.fixture(autouse=True)
def _no_download_default(monkeypatch):
    """Each test starts without $ALEXLIB_DOWNLOAD, and what a test's get_config(download=...)
    sets is undone after it."""
    monkeypatch.delenv("ALEXLIB_DOWNLOAD", raising=False)
    monkeypatch.delenv("ALEXLIB_RESULTS", raising=False)  # a test sets its own, or none


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Keep the decode cache of the test run out of the user's own cache folder."""
    if not os.environ.get("ALEXLIB_CACHE"):
        os.environ["ALEXLIB_CACHE"] = str(REPO / "_build" / "test-cache")
    yield


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real offline datasets (``$ALEXLIB_DATA``, else ``../shared/data``)."""
    candidates = [os.environ.get("ALEXLIB_DATA"), str(REPO.parent / "shared" / "data")]
    for c in candidates:
        if c and (Path(c) / "imagenette-224").is_dir():
            return Path(c).resolve()
    message = f"the offline datasets were not found (looked at $ALEXLIB_DATA and {candidates[1]})"
    if os.environ.get("ALEXLIB_REQUIRE_DATA") == "1":
        pytest.fail(message)
    pytest.skip(message)
