"""The GPU sitting (tools/sitting.py), rehearsed on the CPU as the GPU machine would run it.

The rehearsal runs the one command at smoke scale with the packages the GPU machine lacks made
unimportable, copies its output folder at 20% and 50% of its budget (what a command cut then would
return: every file there is replaced by an atomic rename), kills it at 90%, and checks each time
that what is there unpacks into valid results of exactly the jobs that had finished, within the
limits on what the tool sends back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from tools import sitting

REPO = Path(__file__).resolve().parents[1]

BLOCKED = ("torchcodec", "papermill", "jupyter_book", "ipywidgets")


@pytest.fixture(scope="module")
def cifar_root(shared_data) -> Path:
    """The offline data root (conftest's: skipped, or failed under ALEXLIB_REQUIRE_DATA=1, when
    it is missing)."""
    return shared_data


@pytest.fixture(scope="module")
def pack(cifar_root, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("pack") / sitting.PACK_NAME
    sitting.write_pack(cifar_root, target)
    return target


def test_the_pack_rebuilds_every_zip_entry_and_names_a_damaged_one(pack, cifar_root, tmp_path):
    counts = sitting.read_pack(pack, tmp_path / "data")
    for name in sitting.ZIPS:
        with (
            zipfile.ZipFile(cifar_root / name) as a,
            zipfile.ZipFile(tmp_path / "data" / name) as b,
        ):
            assert [i.filename for i in a.infolist()] == [i.filename for i in b.infolist()]
            assert [i.CRC for i in a.infolist()] == [i.CRC for i in b.infolist()]
            assert counts[name] == len(a.infolist())
    # one byte changed in the middle of the images: named, not used
    damaged = tmp_path / "damaged.pack"
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    with pytest.raises(sitting.SittingError, match="arrived damaged"):
        sitting.read_pack(damaged, tmp_path / "again")


def test_plan_refuses_a_command_over_62_mib(cifar_root, tmp_path):
    # the pack alone is 53.6 MiB: with a 10 MiB checkout it is over the limit
    with pytest.raises(sitting.SittingError, match="over the 62 MiB"):
        sitting.plan(cifar_root, 900, root=tmp_path, checkout=10 * 2**20)
    call = sitting.plan(cifar_root, 900, root=tmp_path, checkout=2 * 2**20)
    assert call["mib"] <= sitting.MAX_CARRY_MIB and call["carry"] == [str(sitting.CARRY)]


def test_the_checkout_as_it_is_fits_beside_the_pack(pack):
    """What this commit would send, plus the pack, stays under the plan's 62 MiB: a stored result
    that grows the checkout past it fails here first, not on the GPU machine."""
    mib = (sitting.checkout_bytes(REPO) + pack.stat().st_size) / 2**20
    assert mib <= sitting.MAX_CARRY_MIB, f"{mib:.1f} MiB"


@pytest.mark.parametrize("budget", [900, 700, 520, 430])
def test_the_schedule_fits_the_machine_time_with_90_s_to_spare(budget):
    call = sitting.schedule(budget)
    used = sitting.START_S + call["timeout_s"] + sitting.RETURN_S
    assert used + 90 <= budget
    assert call["run_s"] < call["timeout_s"] <= 600  # the tool's limit for one command
    assert f"--budget {call['run_s']:.0f}" in call["command"]


def test_the_schedule_refuses_a_budget_too_short_to_start_a_machine():
    with pytest.raises(sitting.SittingError, match="under the 120 s"):
        sitting.schedule(380)


def test_a_bench_row_survives_a_failing_correctness_check(tmp_path, monkeypatch):
    from tools import bench

    monkeypatch.setenv("ALEXLIB_RESULTS", str(tmp_path))
    assert sitting.run_job(["bench", "bench/run.json", "torchvision alexnet"], tiny=True) == 0
    stored = json.loads((tmp_path / "bench" / "run.json").read_text())
    assert [r["name"] for r in stored["rows"]] == ["torchvision alexnet"]

    def broken(**kwargs):
        raise RuntimeError("a Triton compile error")

    monkeypatch.setattr(bench, "correctness", broken)
    with pytest.raises(RuntimeError, match="Triton"):
        sitting.run_job(["check", "bench/run.json"], tiny=True)
    after = json.loads((tmp_path / "bench" / "run.json").read_text())
    assert after["rows"] == stored["rows"] and after["rows"][0]["images_per_s"] > 0

    # a form that fails the check is recorded as failing, next to the rows
    def one_wrong(**kwargs):
        return [
            {
                "layer": "conv2",
                "impl": "dense",
                "output": 0.0,
                "input grad": 0.0,
                "param grad": 2.4e-4,
                "equal": False,
            }
        ]

    monkeypatch.setattr(bench, "correctness", one_wrong)
    assert sitting.run_job(["check", "bench/run.json"], tiny=True) == 0
    after = json.loads((tmp_path / "bench" / "run.json").read_text())
    assert after["rows"] == stored["rows"] and after["checks"][0]["equal"] is False


def test_every_bench_row_the_sitting_times_is_a_bench_row_and_a_failing_one_is_recorded(
    tmp_path, monkeypatch
):
    from tools import bench

    names = {r.name for r in bench.bench_rows(True, triton=True)}
    assert set(sitting.BENCH_ROWS) <= names and set(sitting.LRN_SWEEP_ROWS) <= names
    # the Triton LRN cannot run on this CPU: its row says why, and the rows after it still run
    monkeypatch.setenv("ALEXLIB_RESULTS", str(tmp_path))
    rows = ["torchvision alexnet", "paper, LRN=triton", "paper without LRN, groups=1"]
    assert sitting.run_job(["bench", "bench/sweep.json", *rows], tiny=True) == 0
    stored = json.loads((tmp_path / "bench" / "sweep.json").read_text())["rows"]
    assert [r["name"] for r in stored] == rows
    assert "images_per_s" in stored[0] and "images_per_s" in stored[2]
    assert "CUDA" in stored[1]["error"]


def _blocked_modules(folder: Path) -> Path:
    for name in BLOCKED:
        (folder / name).mkdir(parents=True)
        (folder / name / "__init__.py").write_text(
            f"raise ImportError('{name} is not on the GPU machine')\n"
        )
    return folder


def _check_out_folder(out: Path) -> None:
    """What the tool sends back: at most 8 files of at most 16 MiB, two folders deep."""
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= sitting.MAX_FILES
    assert all(p.stat().st_size <= sitting.MAX_FILE_BYTES for p in files)
    assert all(len(p.relative_to(out).parts) <= 3 for p in files)


def _check_unpacks_to_finished_jobs(out: Path, root: Path) -> list[str]:
    """Unpack ``out`` into ``root`` and check the results are those of the jobs its summary calls
    done, each one whole. Returns the names of those jobs."""
    summary = json.loads((out / "summary.json").read_text())
    done = {j["job"] for j in summary["jobs"] if j["status"] == "done"}
    if not (out / "results.tar.gz").is_file():
        assert not done - {"warm"}
        return []
    sitting.unpack(out, root=root)
    results = root / "results"
    with tarfile.open(out / "results.tar.gz") as tar:
        names = {m.name for m in tar.getmembers()}
    for job in done:
        if job.startswith("figure1-"):
            _, regime, activation, seed = job.split("-")
            folder = results / sitting.figure1_folder(regime, activation, int(seed[1:]), True)
            rows = [
                json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()
            ]
            assert rows and rows[0]["epoch"] == 0
            assert (
                json.loads((folder / "settings.json").read_text())["settings"]["regime"] == regime
            )
        elif job.startswith("ledger-"):
            ablation, seed = job[len("ledger-") :].rsplit("-s", 1)
            folder = results / sitting.ledger_folder(ablation, int(seed), True)
            summary_run = json.loads((folder / "summary.json").read_text())
            assert summary_run["ablation"] == ablation and summary_run["epochs"] >= 1
            assert not (folder / "checkpoint.pt").exists()
        elif job.startswith("ledger6b-"):
            ablation, seed = job[len("ledger6b-") :].rsplit("-s", 1)
            folder = results / sitting.ledger_folder(ablation, int(seed), True, sitting.LEDGER_6B)
            settings = json.loads((folder / "settings.json").read_text())["settings"]
            assert settings["schedule"] == "constant"
            assert settings["dropout"] == (None if ablation == "base" else 0.0)
        elif job in ("bench", "profile"):
            assert any(n.startswith("results/bench/") for n in names)
    # nothing of a job that had not finished: every packed run folder belongs to a done job
    for name in names:
        parts = Path(name).parts
        if parts[1] == "figure1":
            _, regime, activation, _lr, seed = parts[2].split("-")
            assert f"figure1-{regime}-{activation}-{seed}" in done, name
        elif parts[1:4] == ("smoke", "cifar10-gpu", "ledger") and parts[5].startswith("seed"):
            assert f"ledger-{parts[4]}-s{parts[5][4:]}" in done, name
        elif parts[1:4] == ("smoke", "cifar10-gpu-6b", "ledger") and parts[5].startswith("seed"):
            assert f"ledger6b-{parts[4]}-s{parts[5][4:]}" in done, name
    return sorted(done)


def test_claim_6b_runs_are_planned_until_stored(tmp_path):
    def names():
        exclusive, shared, last = sitting.plan_jobs(tmp_path, "stamp", False, "h200")
        return [j.name for j in shared]

    planned = [n for n in names() if n.startswith("ledger6b-")]
    assert planned[:2] == ["ledger6b-base-s0", "ledger6b-no-dropout-s0"] and len(planned) == 10
    assert names().index("ledger6b-no-dropout-s4") < names().index("cuda-tests")
    folder = tmp_path / sitting.ledger_folder("base", 0, False, sitting.LEDGER_6B)
    assert folder.as_posix().endswith("cifar10-gpu-6b/ledger/base/seed0")
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text("{}")
    assert "ledger6b-base-s0" not in names() and "ledger6b-no-dropout-s0" in names()


def test_the_rehearsal_cut_at_20_50_and_90_percent_returns_the_finished_jobs(pack, tmp_path):
    """The whole command at smoke scale, as the GPU machine runs it, cut at three moments."""
    budget = 150.0
    out = tmp_path / "out"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(_blocked_modules(tmp_path / "blocked"))
    env["ALEXLIB_RESULTS"] = str(tmp_path / "results")
    env["ALEXLIB_CACHE"] = str(tmp_path / "cache")
    env["SITTING_LOGS"] = str(tmp_path / "logs")
    command = [sys.executable, str(REPO / "tools" / "sitting.py"), "run", "--tiny"]
    command += ["--out", str(out), "--budget", str(budget), "--workers", "2"]
    command += ["--data-dir", str(tmp_path / "data"), "--pack", str(pack)]
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    finished_at = {}
    try:
        for share in (0.2, 0.5):
            time.sleep(max(0.0, started + share * budget - time.monotonic()))
            snapshot = tmp_path / f"cut-{share}"
            shutil.copytree(out, snapshot)  # a command cut now returns this
            finished_at[share] = snapshot
        time.sleep(max(0.0, started + 0.9 * budget - time.monotonic()))
        os.killpg(proc.pid, signal.SIGKILL)  # the tool's limit: everything in the group at once
        proc.wait(timeout=30)
        finished_at[0.9] = out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    log = proc.stdout.read()
    done = {}
    for share, folder in finished_at.items():
        _check_out_folder(folder)
        done[share] = _check_unpacks_to_finished_jobs(folder, tmp_path / f"unpacked-{share}")
    # the cuts return more the later they come, and by 90% Figure 1 jobs had finished
    assert set(done[0.2]) <= set(done[0.5]) <= set(done[0.9])
    assert any(j.startswith("figure1-") for j in done[0.9]), (done, log[-3000:])
    assert "bench" in done[0.9]


def test_the_imagenette_sitting_is_three_commands_each_within_the_carry_limit(
    shared_data, tmp_path, monkeypatch
):
    root = shared_data
    if not (root / "imagenette-224" / "train-2.zip").is_file():
        pytest.skip("no offline Imagenette zips")
    calls = sitting.plan_imagenette(root, 900, root=tmp_path, checkout=5 * 2**20)
    assert [c["step"] for c in calls] == ["val", "train-1", "train-2"]
    assert all(c["mib"] <= sitting.MAX_CARRY_MIB for c in calls)
    assert calls[0]["command"].startswith("python3 tools/sitting.py stage")
    assert "--imagenette" in calls[-1]["command"]
    # the machine's start, two staging calls, the last call and its return fit the 900 s
    assert sitting.START_S + 2 * 60 + calls[-1]["timeout_s"] + sitting.RETURN_S + 90 <= 900
    # the last command, sent to a machine that went cold: it says so and trains nothing
    monkeypatch.setenv("ALEXLIB_RESULTS", str(tmp_path / "results"))
    carry = tmp_path / sitting.IMAGENETTE_CARRY / "train-2"
    summary = sitting.run(
        tmp_path / "out", 60, 1, True, tmp_path / "data", only=["nothing"], imagenette=carry
    )
    said = "\n".join(summary["events"])
    assert "Imagenette is incomplete here" in said and "val.zip" in said and "train-1.zip" in said
    assert not [j for j in summary["jobs"] if j["job"].startswith("imagenette-")]


def test_figure4_waits_for_the_finished_base_net_and_is_skipped_if_it_failed(tmp_path):
    jobs = sitting.plan_imagenette_jobs(tmp_path, "stamp", False, "gpu")
    names = [j.name for j in jobs]
    assert names[:2] == ["imagenette-base-s0", "figure4"]
    assert jobs[1].after == "imagenette-base-s0"
    # a stored base run and Figure 4 are not run again
    (tmp_path / "ledger/base/seed0").mkdir(parents=True)
    (tmp_path / "ledger/base/seed0/summary.json").write_text("{}")
    (tmp_path / "figure4/full-s0").mkdir(parents=True)
    (tmp_path / "figure4/full-s0/figure4.json").write_text("{}")
    names = [j.name for j in sitting.plan_imagenette_jobs(tmp_path, "stamp", False, "gpu")]
    assert "imagenette-base-s0" not in names and "figure4" not in names
    # a job whose prerequisite failed never starts
    out, logs = tmp_path / "out", tmp_path / "logs"
    logs.mkdir()
    env = {**os.environ, "ALEXLIB_RESULTS": str(tmp_path / "r"), "SITTING_LOGS": str(logs)}
    driver = sitting.Sitting(out, 120, 2, True, env)
    out.mkdir()
    first = sitting.Job("first", ["no-such-job"])
    second = sitting.Job("second", ["warm-one", "cifar10", "val", "32"], after="first")
    driver.jobs = [first, second]
    driver.run_shared([first, second])
    assert first.status.startswith("failed")
    assert second.status == f"skipped: first did not finish ({first.status})"
