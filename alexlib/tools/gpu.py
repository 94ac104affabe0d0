"""``python -m alexlib gpu``: one GPU sitting, prepared so that none of it is spent on debugging.

A GPU machine comes rarely, for about 15 minutes, and takes at most 64 MiB with each command (the
checkout included). The datasets are 194 MB, so a sitting is four commands, one data zip each,
sent back to back while the machine is warm:

========  ==========================================  ============================================
step      carries                                     then runs, most valuable first
========  ==========================================  ============================================
cifar     ``cifar10-jpeg/`` train + test (62 MB)      the CUDA tests; ``bench`` (torchvision's
                                                      ``alexnet``, the naive paper net, alexlib's,
                                                      and the no-LRN yardsticks); Figure 1 on all
                                                      of CIFAR-10, both regimes, 3 seeds
val       ``imagenette-224/val.zip`` + classes.json   nothing more (the data waits for the rest)
train-1   ``imagenette-224/train-1.zip``              nothing more
train-2   ``imagenette-224/train-2.zip``              the paper net on Imagenette for 90 epochs
                                                      (ledger base, seed 0); Figure 4 from it; the
                                                      rest of Figure 1's seeds if the first step
                                                      ran out of time; the base's seeds 1 and 2;
                                                      Figure 1's learning-rate search; the other
                                                      ledger runs; the bench sweep
========  ==========================================  ============================================

Here, before the sitting::

    python -m alexlib gpu plan       # copies each step's zip into _build/gpu/<step>/, checks it
                                     # against SHA256SUMS, and prints the four device commands

On the GPU machine, one command per step (what ``plan`` prints)::

    python -m alexlib gpu run cifar --out $OUT

Each step first copies its zip out of the checkout into ``/tmp/alexlib-data`` (the next command on
the same machine still finds it there; the checkout is replaced by each command's copy) and checks
it against the ``SHA256SUMS`` it carries; a file that arrived damaged is named and not used. Then
it runs its jobs in order, each in its own process with what is left of the step's time budget as
its limit: every job is resumable (finished runs are stored as they finish, unfinished ones
continue from their last epoch), so a job stopped at the limit loses at most an epoch and the next
sitting goes on from there. A job that needs data this machine does not have (say the machine went
cold between commands) is skipped and says so. Last, the step packs everything it added under
``results/`` (no checkpoints) into ``$OUT``: ``results-<step>.tar.gz``, ``summary-<step>.json``
(each job's status and seconds, the data check) and ``log-<step>.txt``, within the tool's limits
(at most 8 files of at most 16 MB).

Back here::

    python -m alexlib gpu unpack /path/to/files   # results into results/, and what each job did

``--tiny`` rehearses a whole step on the CPU at smoke scale (the tests run it end to end), with
its results in ``_build/gpu-tiny/results`` rather than the checkout's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from .._io import (
    COMMIT_ENV,
    RESULTS_ENV,
    parse_sha256sums,
    provenance,
    repo_root,
    results_dir,
    sha256_file,
    write_json,
)
from ..errors import SettingsError

__all__ = ["STEPS", "JOBS", "plan", "run_step", "unpack", "add_arguments"]

#: Where each step leaves its data on the GPU machine: outside the checkout, which every command
#: replaces with its own copy.
DATA_DIR = Path("/tmp/alexlib-data")
#: The tool's limits on what comes back from one command.
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20
#: Seconds kept back at the end of a step for packing.
RESERVE_S = 20.0

DATASETS = {
    "cifar10": ("cifar10-jpeg/train.zip", "cifar10-jpeg/test.zip"),
    "imagenette": (
        "imagenette-224/classes.json",
        "imagenette-224/val.zip",
        "imagenette-224/train-1.zip",
        "imagenette-224/train-2.zip",
    ),
}


@dataclass(frozen=True)
class Job:
    """One job of a step: ``needs`` the datasets it reads; ``min_s``: not started with less time
    left; ``cap_s``: at most this long, so that the jobs after it get their turn."""

    name: str
    needs: tuple[str, ...]
    min_s: float
    cap_s: float | None
    what: str


JOBS = {
    j.name: j
    for j in (
        Job("tests", (), 20, 180, "the CUDA tests (pytest -m cuda)"),
        Job(
            "bench",
            (),
            45,
            150,
            "bench: torchvision alexnet, the paper net naive and fast, yardsticks",
        ),
        Job(
            "figure1", ("cifar10",), 30, None, "Figure 1, both regimes, 3 seeds at the chosen rates"
        ),
        Job(
            "imagenette",
            ("imagenette",),
            60,
            200,
            "the paper net on Imagenette, 90 epochs (seed 0)",
        ),
        Job("figure4", ("imagenette",), 20, 60, "Figure 4 from that net"),
        Job("ledger-base", ("imagenette",), 60, None, "the ledger's base run, seeds 1 and 2"),
        Job("figure1-search", ("cifar10",), 30, None, "Figure 1's learning-rate search"),
        Job("ledger", ("imagenette",), 60, None, "the other ledger runs (3 seeds each)"),
        Job("sweep", (), 60, None, "bench --sweep: each fast form alone"),
    )
}


@dataclass(frozen=True)
class Step:
    """One command of the sitting: the files it carries (paths under the data root) and its
    jobs, within ``budget_s`` seconds."""

    name: str
    files: tuple[str, ...]
    jobs: tuple[str, ...]
    budget_s: float


STEPS = {
    s.name: s
    for s in (
        Step("cifar", DATASETS["cifar10"], ("tests", "bench", "figure1"), 420),
        Step("val", ("imagenette-224/val.zip", "imagenette-224/classes.json"), (), 15),
        Step("train-1", ("imagenette-224/train-1.zip",), (), 15),
        Step(
            "train-2",
            ("imagenette-224/train-2.zip",),
            # Figure 1 again: it goes on where the first step's time ran out
            (
                "imagenette",
                "figure4",
                "figure1",
                "ledger-base",
                "figure1-search",
                "ledger",
                "sweep",
            ),
            270,
        ),
    )
}

# bench rows of the first sitting: the three of the main table and the two no-LRN yardsticks
BENCH_ROWS = (
    "torchvision alexnet",
    "paper, reference layers",
    "paper, alexlib",
    "paper without LRN, groups=2",
    "paper without LRN, groups=1",
)


def _carry_dir(root: Path, step: str) -> Path:
    return root / "_build" / "gpu" / step


# ----------------------------------------------------------------------------------- plan (here)


def plan(data_root: str | os.PathLike | None = None, root: Path | None = None) -> list[dict]:
    """Copy each step's files from ``data_root`` (default ``$ALEXLIB_DATA``) into
    ``_build/gpu/<step>/data/``, check them against the data root's ``SHA256SUMS``, write the
    sums and the checkout's commit beside them, and return one device command per step."""
    root = root or repo_root()
    data_root = Path(data_root or os.environ.get("ALEXLIB_DATA") or "")
    sums_file = data_root / "SHA256SUMS"
    if not sums_file.is_file():
        raise SettingsError(
            f"no SHA256SUMS in {data_root}: point --data (or $ALEXLIB_DATA) at the offline data "
            "root (its SHA256SUMS says which bytes each zip must have)"
        )
    sums = parse_sha256sums(sums_file.read_text())
    commit = provenance().get("commit", "unknown")
    commands = []
    for step in STEPS.values():
        folder = _carry_dir(root, step.name)
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "data").mkdir(parents=True)
        for name in step.files:
            source = data_root / name
            if name not in sums or not source.is_file():
                raise SettingsError(f"{source} is missing or not listed in {sums_file}")
            target = folder / "data" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            if sha256_file(target) != sums[name]:
                raise SettingsError(f"{source} does not match its SHA256SUMS line: recopy it")
        (folder / "SHA256SUMS").write_text("".join(f"{sums[n]}  ./{n}\n" for n in step.files))
        (folder / "COMMIT").write_text(commit + "\n")
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        carry = str(folder.relative_to(root))
        commands.append(
            {
                "step": step.name,
                "carry": [carry],
                "command": f"PYTHONUNBUFFERED=1 python3 -m alexlib gpu run {step.name} --out $OUT",
                # the budget, the data check and the packing, with room to spare
                "timeout_s": int(step.budget_s + 30),
                "mib": round(size / 2**20, 1),
            }
        )
    return commands


# ----------------------------------------------------------------------------- run (there)


def install(step: Step, root: Path, data_dir: Path) -> dict:
    """Copy the step's carried files into ``data_dir``, each checked against its carried sum.
    Returns ``{path: "ok" | "damaged ..." | "missing"}``."""
    folder = _carry_dir(root, step.name)
    sums = (
        parse_sha256sums((folder / "SHA256SUMS").read_text())
        if (folder / "SHA256SUMS").is_file()
        else {}
    )
    status = {}
    for name in step.files:
        carried, target = folder / "data" / name, data_dir / name
        if not carried.is_file():
            ok = target.is_file() and sha256_file(target) == sums.get(name)
            status[name] = "ok (installed before)" if ok else "missing: run gpu plan here first"
            continue
        digest = sha256_file(carried)
        if digest != sums.get(name):
            status[name] = f"damaged in transfer (sha256 {digest[:12]}...): not used"
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(carried, target)
        status[name] = "ok"
    return status


def datasets_present(data_dir: Path) -> dict[str, list[str]]:
    """For each dataset the jobs read, the files still missing under ``data_dir``."""
    return {
        name: [f for f in files if not (data_dir / f).is_file()] for name, files in DATASETS.items()
    }


def _results_files(base: Path) -> dict[str, float]:
    if not base.is_dir():
        return {}
    return {
        str(p.relative_to(base)): p.stat().st_mtime
        for p in base.rglob("*")
        if p.is_file() and p.name != "checkpoint.pt" and not p.name.startswith(".")
    }


def run_step(
    name: str,
    out: Path,
    *,
    budget_s: float | None = None,
    tiny: bool = False,
    data_dir: Path = DATA_DIR,
    jobs: list[str] | None = None,
    root: Path | None = None,
) -> dict:
    """Install step ``name``'s data, run its jobs within ``budget_s`` (default the step's), and
    pack what it added under ``results/`` into ``out``. Returns the summary it writes there."""
    if name not in STEPS:
        raise SettingsError(f"unknown step {name!r}; the steps are: {', '.join(STEPS)}")
    step = STEPS[name]
    started = time.monotonic()
    budget_s = step.budget_s if budget_s is None else budget_s
    deadline = started + budget_s
    root = root or repo_root()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    commit_file = _carry_dir(root, name) / "COMMIT"
    if commit_file.is_file():
        env[COMMIT_ENV] = commit_file.read_text().strip()
    if tiny:  # a rehearsal never writes into the checkout's results
        env.setdefault(RESULTS_ENV, str(root / "_build" / "gpu-tiny" / "results"))
    results = Path(env.get(RESULTS_ENV) or results_dir())
    env["ALEXLIB_DATA"] = str(data_dir)
    env.setdefault("ALEXLIB_CACHE", str(data_dir.parent / "alexlib-cache"))
    env["PYTHONUNBUFFERED"] = "1"
    before = _results_files(results)
    log_path = out / f"log-{name}.txt"
    summary: dict = {
        "step": name,
        "tiny": tiny,
        "budget_s": budget_s,
        "data": install(step, root, data_dir),
        "jobs": [],
    }
    missing = datasets_present(data_dir)
    with open(log_path, "w") as log:
        log.write(f"step {name}: data {json.dumps(summary['data'])}\n")
        for job_name in jobs if jobs is not None else step.jobs:
            job = JOBS[job_name]
            left = deadline - time.monotonic() - RESERVE_S
            record = {"job": job_name, "what": job.what}
            lacking = [d for d in job.needs if missing[d]]
            if lacking:
                record["status"] = "skipped: no " + ", ".join(
                    f"{d} (missing {', '.join(missing[d])})" for d in lacking
                )
            elif left < job.min_s:
                record["status"] = f"skipped: {left:.0f} s left, it needs at least {job.min_s:.0f}"
            else:
                limit = left if job.cap_s is None else min(left, job.cap_s)
                command = [sys.executable, "-m", "alexlib", "gpu", "job", job_name]
                command += ["--tiny"] if tiny else []
                command += ["--seconds", f"{limit:.0f}"]
                log.write(f"\n==== {job_name} (at most {limit:.0f} s): {' '.join(command)}\n")
                log.flush()
                t0 = time.monotonic()
                try:
                    done = subprocess.run(
                        command,
                        cwd=root,
                        env=env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        timeout=limit,
                    )
                    record["status"] = (
                        "done" if done.returncode == 0 else f"failed (exit {done.returncode})"
                    )
                except subprocess.TimeoutExpired:
                    record["status"] = (
                        "stopped at its time limit (resumable: the next sitting goes on)"
                    )
                record["seconds"] = round(time.monotonic() - t0, 1)
            log.write(f"---- {job_name}: {record['status']}\n")
            log.flush()
            summary["jobs"].append(record)
    after = _results_files(results)
    added = sorted(k for k, t in after.items() if before.get(k) != t)
    summary["results_added"] = added
    summary["seconds"] = round(time.monotonic() - started, 1)
    summary["provenance"] = provenance() | (
        {"commit": env[COMMIT_ENV]} if COMMIT_ENV in env else {}
    )
    _pack(results, added, out, name)
    write_json(out / f"summary-{name}.json", summary)
    _trim(log_path)
    files = [p for p in out.iterdir() if p.is_file()]
    too_big = [p.name for p in files if p.stat().st_size > MAX_FILE_BYTES]
    if len(files) > MAX_FILES or too_big:
        raise SettingsError(
            f"{out} holds more than the tool brings back: {len(files)} files {too_big}"
        )
    return summary


def _pack(results: Path, added: list[str], out: Path, step: str) -> None:
    """The files ``added`` under ``results`` as ``results-<step>.tar.gz`` (paths from
    ``results/``)."""
    with tarfile.open(out / f"results-{step}.tar.gz", "w:gz") as tar:
        for rel in added:
            tar.add(results / rel, arcname=f"results/{rel}")


def _trim(log: Path) -> None:
    """Keep a log within the size limit: its first and last parts."""
    size = log.stat().st_size
    if size > MAX_FILE_BYTES:
        data = log.read_bytes()
        half = MAX_FILE_BYTES // 2 - 1024
        log.write_bytes(data[:half] + b"\n[... log shortened ...]\n" + data[-half:])


# ------------------------------------------------------------------------------------- jobs


def _junit_summary(path: Path) -> dict:
    tests = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                outcome = "skipped" if kind == "skipped" else "failed"
                message = (node.get("message") or "")[:300]
        tests.append({"name": case.get("name"), "outcome": outcome, "message": message})
    return _report(tests)


def _report(tests: list[dict]) -> dict:
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "skipped")}
    return {"counts": counts, "tests": tests}


_OUTCOME = re.compile(r"^tests/\S+::(\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b", re.M)


def _verbose_summary(text: str) -> dict:
    """The outcomes a ``pytest -v`` run printed before it was stopped."""
    kinds = {"PASSED": "passed", "XPASS": "passed", "SKIPPED": "skipped", "XFAIL": "skipped"}
    tests = [
        {"name": name, "outcome": kinds.get(word, "failed"), "message": ""}
        for name, word in _OUTCOME.findall(text)
    ]
    return _report(tests)


def run_job(name: str, seconds: float, tiny: bool = False) -> int:
    """One job in this process (``python -m alexlib gpu job NAME``): the step runner starts each
    in its own process, stopped at ``seconds``."""
    import torch

    from ..experiments import run_figure1, run_figure4, save_figure4, summarise_figure1
    from ..ledger import run_ledger
    from ..train import read_metrics
    from . import bench

    deadline = time.monotonic() + seconds
    results = results_dir()
    scale = "smoke" if tiny else "full"
    device = "cpu" if tiny else "cuda"
    if not tiny and not torch.cuda.is_available():
        raise SettingsError("no CUDA device here: the GPU jobs need one (rehearse with --tiny)")
    # a rehearsal keeps its runs beside its results; a smoke-scale ledger never writes into a
    # results folder (run_ledger refuses), so it goes there too
    runs = results.parent / "runs" if tiny else Path("runs")
    ledger_out = results.parent / "ledger-smoke" if tiny else None
    if name == "tests":
        # -v: each outcome is printed as it comes, so a run stopped at its limit still says which
        # tests passed (the junit file is written only at the end)
        log = results.parent / "_cuda-tests.log" if tiny else Path("/tmp/alexlib-cuda-tests.log")
        xml = log.with_suffix(".xml")
        xml.unlink(missing_ok=True)
        command = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/test_cuda.py", "-v"]
        command += ["-rs", "-p", "no:cacheprovider", f"--junitxml={xml}"]
        stopped = False
        with open(log, "w") as f:
            try:
                subprocess.run(
                    command,
                    stdout=f,
                    stderr=subprocess.STDOUT,
                    timeout=max(1, deadline - time.monotonic() - 10),
                )
            except subprocess.TimeoutExpired:
                stopped = True
        report = _junit_summary(xml) if xml.is_file() else _verbose_summary(log.read_text())
        report |= {"stopped_at_time_limit": stopped, "provenance": provenance()}
        write_json(results / "gpu" / f"cuda-tests-{_stamp()}.json", report)
        print(log.read_text()[-20000:])
        print(json.dumps(report["counts"]))
        return 0 if report["counts"]["failed"] == 0 else 1
    if name in ("bench", "sweep"):
        # the sweep in six processes (each with its own yardstick), as many as time allows; a
        # rehearsal runs the first
        parts = [None] if name == "bench" else [(i, 6) for i in range(1, 2 if tiny else 7)]
        for part in parts:
            if time.monotonic() > deadline - 30:
                break
            result = bench.run(
                device=device,
                tiny=tiny,
                sweep=name == "sweep",
                part=part,
                only=list(BENCH_ROWS) if name == "bench" else None,
            )
            print(bench.format_table(result))
            for line in bench.summary_lines(result):
                print(line)
            write_json(bench.results_path(result), result)
        return 0
    if name in ("figure1", "figure1-search"):
        for regime in ("paper", "today"):
            stored = run_figure1(
                scale,
                regime=regime,
                store=results / "figure1",
                state_dir=runs / "figure1",
                device=device,
                search=name == "figure1-search",
                first_seeds=None if name == "figure1-search" else 3,
            )
            print(regime, summarise_figure1(stored)["by_threshold"])
        return 0
    if name in ("imagenette", "ledger-base", "ledger"):
        seeds = {"imagenette": 1, "ledger-base": 3, "ledger": None}[name]
        only = ["base"] if name != "ledger" else None
        if tiny:  # one seed of one ablation shows the rest would run
            seeds, only = 1, only or ["no-lrn"]
        for job in run_ledger(
            scale,
            seeds=seeds,
            only=only,
            out=ledger_out,
            device=device,
            compile=not tiny,
            budget_s=max(0.0, deadline - time.monotonic() - 60),
            keep_checkpoints=name == "imagenette",
            data_root=os.environ.get("ALEXLIB_DATA"),
            progress=False,
        ):
            print(f"ledger {job['ablation']} seed {job['seed']}: {job['status']}", flush=True)
        return 0
    if name == "figure4":
        from ..ledger import ledger_dir

        folder = ledger_dir(ledger_out or results, scale) / "base" / "seed0"
        if not (folder / "checkpoint.pt").is_file():
            print(f"figure4: no finished seed-0 base net in {folder} (the imagenette job first)")
            return 1
        trained = {"out": str(folder), "metrics": read_metrics(folder)}
        result = run_figure4(scale, 0, trained=trained, data_root=os.environ.get("ALEXLIB_DATA"))
        print("stored in", save_figure4(result, tag=scale))
        return 0
    raise SettingsError(f"unknown job {name!r}; the jobs are: {', '.join(JOBS)}")


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


# ------------------------------------------------------------------------------- unpack (here)


def unpack(folder: Path, root: Path | None = None) -> list[dict]:
    """Extract every ``results-*.tar.gz`` in ``folder`` into the checkout's ``results/`` (only
    paths below it) and return the steps' summaries."""
    root = root or repo_root()
    summaries = []
    for archive in sorted(Path(folder).glob("results-*.tar.gz")):
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for m in members:
                parts = Path(m.name).parts
                if not m.isfile() or parts[0] != "results" or ".." in parts:
                    raise SettingsError(f"{archive} holds {m.name!r}, which is not a results file")
            tar.extractall(root, members=members, filter="data")
    for path in sorted(Path(folder).glob("summary-*.json")):
        summaries.append(json.loads(path.read_text()))
    return summaries


# ------------------------------------------------------------------------------------ command


def add_arguments(sub) -> None:
    p = sub.add_parser("gpu", help="one GPU sitting: plan it here, run its steps there, unpack")
    verbs = p.add_subparsers(dest="verb", required=True)
    q = verbs.add_parser("plan", help="copy each step's data zip into _build/gpu/, print commands")
    q.add_argument("--data", help="the offline data root (default $ALEXLIB_DATA)")
    q.set_defaults(run=_cli_plan)
    q = verbs.add_parser("run", help="one step of the sitting (on the GPU machine)")
    q.add_argument("step", choices=list(STEPS))
    q.add_argument("--out", required=True, help="where the step's files go ($OUT there)")
    q.add_argument("--budget", type=float, help="seconds for the whole step (default: the step's)")
    q.add_argument("--data-dir", default=str(DATA_DIR), help=f"where the data goes ({DATA_DIR})")
    q.add_argument("--jobs", nargs="*", choices=list(JOBS), help="these jobs instead of the step's")
    q.add_argument("--tiny", action="store_true", help="rehearse on the CPU at smoke scale")
    q.set_defaults(run=_cli_run)
    q = verbs.add_parser("job", help="one job in this process (the step runner starts these)")
    q.add_argument("name", choices=list(JOBS))
    q.add_argument("--seconds", type=float, default=540.0)
    q.add_argument("--tiny", action="store_true")
    q.set_defaults(run=lambda a: run_job(a.name, a.seconds, a.tiny))
    q = verbs.add_parser("unpack", help="the files a sitting sent back, into results/")
    q.add_argument("folder")
    q.set_defaults(run=_cli_unpack)


def _cli_plan(args: argparse.Namespace) -> int:
    commands = plan(args.data)
    total = sum(s.budget_s for s in STEPS.values())
    print("Send these back to back (the machine stays warm about 30 s between commands):\n")
    for c in commands:
        print(f"{c['step']}: carry {c['carry']} ({c['mib']} MiB), timeout_s {c['timeout_s']}")
        print(f"    {c['command']}")
    print(f"\nthe steps' budgets: {total / 60:.1f} minutes, plus transfers and the machine's start")
    return 0


def _cli_run(args: argparse.Namespace) -> int:
    summary = run_step(
        args.step,
        Path(args.out),
        budget_s=args.budget,
        tiny=args.tiny,
        data_dir=Path(args.data_dir),
        jobs=args.jobs,
    )
    print(_format_summary(summary))
    return 0


def _format_summary(summary: dict) -> str:
    lines = [f"step {summary['step']} ({summary['seconds']} s of {summary['budget_s']:.0f}):"]
    lines += [f"  data {k}: {v}" for k, v in summary["data"].items()]
    for j in summary["jobs"]:
        took = f" in {j['seconds']} s" if "seconds" in j else ""
        lines.append(f"  {j['job']}: {j['status']}{took}")
    lines.append(f"  {len(summary['results_added'])} results files packed")
    return "\n".join(lines)


def _cli_unpack(args: argparse.Namespace) -> int:
    from . import bench

    for summary in unpack(Path(args.folder)):
        print(_format_summary(summary))
    latest = bench.merged_latest(bench.saved_runs())
    forms = bench.fastest_forms(latest) if latest else None
    if forms:
        print(f"\nfastest forms measured on {latest['versions']['gpu']}: {forms}")
        print("(alexlib.fast.DEFAULTS: set it to these, with the bench table, in one commit)")
    return 0
