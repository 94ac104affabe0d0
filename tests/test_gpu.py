"""The GPU sitting's script (``python -m alexlib gpu``), rehearsed on the CPU: its plan and data
check on made-up files, and every step end to end at smoke scale on the real data."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from alexlib.errors import SettingsError
from alexlib.tools import gpu

REPO = Path(__file__).resolve().parents[1]


def _fake_data_root(folder: Path) -> Path:
    """Every file a sitting carries, as a few made-up bytes, with their SHA256SUMS."""
    lines = []
    for step in gpu.STEPS.values():
        for name in step.files:
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(name.encode() * 3)
            lines.append(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  ./{name}\n")
    (folder / "SHA256SUMS").write_text("".join(lines))
    return folder


def test_plan_carries_one_step_of_data_each_within_the_tools_limit(tmp_path):
    data = _fake_data_root(tmp_path / "data")
    commands = gpu.plan(data, root=tmp_path)
    assert [c["step"] for c in commands] == list(gpu.STEPS)
    for c, step in zip(commands, gpu.STEPS.values()):
        assert c["carry"] == [f"_build/gpu/{step.name}"]
        carried = tmp_path / c["carry"][0]
        assert sorted(str(p.relative_to(carried / "data")) for p in (carried / "data").rglob("*.*"))
        assert (carried / "SHA256SUMS").read_text().count("\n") == len(step.files)
        assert f"gpu run {step.name} --out $OUT" in c["command"]
        assert c["timeout_s"] > step.budget_s
    # the real zips: each step's data, with the checkout, must stay under 64 MiB
    real = Path(gpu.__file__).resolve().parents[2].parent / "shared" / "data" / "SHA256SUMS"
    if real.is_file():
        for step in gpu.STEPS.values():
            size = sum((real.parent / f).stat().st_size for f in step.files)
            assert size < 62 * 2**20, step.name


def test_plan_refuses_a_root_without_sums_and_a_file_that_does_not_match(tmp_path):
    with pytest.raises(SettingsError, match="no SHA256SUMS"):
        gpu.plan(tmp_path, root=tmp_path)
    data = _fake_data_root(tmp_path / "data")
    (data / "imagenette-224" / "val.zip").write_bytes(b"changed")
    with pytest.raises(SettingsError, match="val.zip does not match"):
        gpu.plan(data, root=tmp_path)


def test_a_file_damaged_in_transfer_is_not_used_and_its_jobs_say_why(tmp_path, monkeypatch):
    monkeypatch.setenv("ALEXLIB_RESULTS", str(tmp_path / "results"))
    data = _fake_data_root(tmp_path / "data")
    gpu.plan(data, root=tmp_path)
    carried = tmp_path / "_build" / "gpu" / "val" / "data" / "imagenette-224" / "val.zip"
    carried.write_bytes(b"half a file")
    there = tmp_path / "there"
    val = gpu.run_step("val", tmp_path / "out-val", root=tmp_path, data_dir=there, jobs=[])
    assert val["data"]["imagenette-224/val.zip"].startswith("damaged in transfer")
    assert val["data"]["imagenette-224/classes.json"] == "ok"
    assert not (there / "imagenette-224" / "val.zip").exists()
    # the next command (same machine) finds what was installed, and names what is missing
    summary = gpu.run_step(
        "train-1",
        tmp_path / "out",
        root=tmp_path,
        data_dir=there,
        jobs=["figure4", "bench"],
        budget_s=0,
    )
    figure4, bench = summary["jobs"]
    assert "skipped: no imagenette" in figure4["status"] and "val.zip" in figure4["status"]
    assert "train-2.zip" in figure4["status"]
    assert bench["status"].startswith("skipped:") and "needs at least" in bench["status"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "log-train-1.txt",
        "results-train-1.tar.gz",
        "summary-train-1.json",
    ]


def test_unpack_takes_only_results_files(tmp_path):
    bad = tmp_path / "back"
    bad.mkdir()
    (tmp_path / "evil.txt").write_text("x")
    with tarfile.open(bad / "results-cifar.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "evil.txt", arcname="results/../evil.txt")
    with pytest.raises(SettingsError, match="not a results file"):
        gpu.unpack(bad, root=tmp_path / "checkout")


def test_every_step_runs_end_to_end_on_the_cpu_at_smoke_scale(shared_data, tmp_path, monkeypatch):
    """The whole sitting as the GPU machine would run it (four commands, one zip each), at smoke
    scale on the CPU, with the GPU machine's missing packages (torchcodec, the notebook stack)
    made unimportable; then its files unpacked into a checkout."""
    monkeypatch.setenv("ALEXLIB_RESULTS", str(tmp_path / "results"))
    block = tmp_path / "block"
    block.mkdir()
    (block / "sitecustomize.py").write_text(
        "import sys\n"
        "MISSING = {'torchcodec', 'ipywidgets', 'papermill', 'jupyter_book', 'playwright',\n"
        "           'nbformat', 'nbclient', 'IPython', 'ipykernel'}\n"
        "class Missing:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in MISSING:\n"
        "            raise ImportError(name + ' is not on the GPU machine')\n"
        "sys.meta_path.insert(0, Missing())\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(block))
    gpu.plan(shared_data, root=REPO)
    there = tmp_path / "there" / "data"
    outs = []
    for step, jobs in (
        ("cifar", None),
        ("val", None),
        ("train-1", None),
        ("train-2", ["imagenette", "figure4", "ledger"]),
    ):
        out = tmp_path / f"out-{step}"
        summary = gpu.run_step(step, out, tiny=True, data_dir=there, jobs=jobs, budget_s=900)
        outs.append(out)
        assert set(summary["data"].values()) == {"ok"}, summary["data"]
        assert [j["status"] for j in summary["jobs"]] == ["done"] * len(summary["jobs"]), summary
        files = list(out.iterdir())
        assert len(files) <= gpu.MAX_FILES and all(
            f.stat().st_size < gpu.MAX_FILE_BYTES for f in files
        )
        assert json.loads((out / f"summary-{step}.json").read_text())["step"] == step
    cifar = json.loads((outs[0] / "summary-cifar.json").read_text())
    added = cifar["results_added"]
    assert any(a.startswith("figure1/smoke-paper-relu") for a in added)
    assert any(a.startswith("figure1/smoke-today-tanh") for a in added)
    assert any(a.startswith("bench/") for a in added)
    tests = [a for a in added if a.startswith("gpu/cuda-tests-")]
    assert tests
    report = json.loads((tmp_path / "results" / tests[0]).read_text())
    assert report["counts"]["failed"] == 0  # without a GPU, skipped
    train2 = json.loads((outs[3] / "summary-train-2.json").read_text())
    assert "figure4/smoke-s0/figure4.json" in train2["results_added"]
    checkout = tmp_path / "checkout"
    for out in outs:
        gpu.unpack(out, root=checkout)
    assert (checkout / "results" / "figure4" / "smoke-s0" / "figure4.json").is_file()
    assert (checkout / "results" / tests[0]).is_file()


def test_a_cuda_test_run_stopped_at_its_limit_still_reports_what_ran():
    printed = (
        "tests/test_cuda.py::test_a[float32] PASSED      [  2%]\n"
        "tests/test_cuda.py::test_b SKIPPED (dry run: needs CUDA) [  4%]\n"
        "tests/test_cuda.py::test_c FAILED     [  6%]\n"
    )
    report = gpu._verbose_summary(printed)
    assert report["counts"] == {"passed": 1, "failed": 1, "skipped": 1}
    assert [t["name"] for t in report["tests"]] == ["test_a[float32]", "test_b", "test_c"]
