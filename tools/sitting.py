"""One GPU sitting in one command: the most valuable work first, each result sent back as it exists.

A GPU machine comes rarely, for 15 minutes of machine time in all (its start, every command, the
transfers, idle time), one command of at most 10 minutes, 64 MiB carried with each command, and at
most 8 files of 16 MiB sent back from ``$OUT``. So the sitting is one command, and everything it
finishes is in ``$OUT`` by the time the next job starts, so that a cut at any moment loses only the
jobs still running.

Here, before the sitting (the checkout's data root, ``$ALEXLIB_DATA``)::

    .venv/bin/python tools/sitting.py plan --budget 900

packs all JPEG bytes of CIFAR-10 (train and test) into one file, ``_build/sitting/cifar10.pack``
(53.6 MiB: 52.7 MiB of JPEG bytes and their index, where the two zips take 59.3 MiB), adds the
checkout's size to it and refuses more than 62 MiB, and prints the command and its ``timeout_s``
for the machine time left (``--budget``, seconds). There, the command is::

    PYTHONUNBUFFERED=1 python3 tools/sitting.py run --out $OUT --budget 540

It rebuilds the two zips in ``/tmp`` (each entry checked against its CRC), decodes them once into
the decode cache, and then, until ``--budget`` seconds are spent:

1. alone on the GPU (timings): ``bench`` (torchvision's ``alexnet``, alexlib's paper net, the
   paper net with reference layers, and the two no-LRN yardsticks; batch 512, bf16, channels-last,
   compiled), each row stored as it is measured; then ``profile``, a training step of torchvision's
   net and alexlib's, kernel by kernel;
2. then up to ``--workers`` processes at once sharing the GPU (under NVIDIA's multi-process service
   when it starts, so that their kernels run side by side), in this order: the correctness check
   of the fast forms (TF32 off); Figure 1 at full scale on all of CIFAR-10 (seed 0 of both regimes,
   then seeds 1 and 2); the CIFAR-10 ledger trained to the end (``ledger-cifar10-gpu``: base and
   no-LRN at seeds 0-4, a short fp16 run with its gradient scaler, then the other ablations); the
   CUDA tests last;
3. if the shared jobs end with time to spare, the LRN forms' timings (``lrn-sweep``), alone again.

A job whose result is already stored under ``results/`` is skipped, so the next sitting goes on
where this one stopped. Every job runs in its own process group, killed whole at the deadline. A
packer rewrites ``$OUT/results.tar.gz`` (the results of every finished job, checkpoints left out),
``$OUT/logs.tar.gz`` and ``$OUT/summary.json`` every few seconds and after each job, each by an
atomic rename, so a command cut at any moment returns all that had finished.

Back here::

    .venv/bin/python tools/sitting.py unpack /path/to/files   # results into results/

``--tiny`` rehearses the whole command on the CPU at smoke scale (tests/test_sitting.py runs it,
and cuts it at several moments).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the GPU machine runs the checkout without installing it, and this script imports the tooling
# (tools.bench) as a package of the checkout: the repository root comes first on the path
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CARRY = Path("_build") / "sitting"
PACK_NAME = "cifar10.pack"
PACK_MAGIC = b"ALEXLIB-PACK-1\n"
ZIPS = ("cifar10-jpeg/train.zip", "cifar10-jpeg/test.zip")
# the tool takes 64 MiB a command; 2 MiB of margin. The CIFAR-10 pack is 53.6 MiB, so the checkout
# may grow to about 8 MiB (4.7 MiB today): tests/test_sitting.py fails first when it grows past
MAX_CARRY_MIB = 62.0
# left out of what comes back: checkpoints, Figure 1's per-epoch state, and the CIFAR-10 GPU
# column's validation probabilities (0.9 MB a base run; its ensemble.json is made there from them)
NOT_PACKED = ("checkpoint.pt", "state.pt")
START_S = 150.0  # a machine's start and the upload, counted against the budget
RETURN_S = 30.0  # sending $OUT back
SPARE_S = 90.0  # kept unplanned
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20

BENCH_ROWS = (
    "torchvision alexnet",
    "paper, alexlib",
    "paper, reference layers",
    "paper without LRN, groups=2",
    "paper without LRN, groups=1",
)
# the LRN forms the first sitting did not time (the yardstick first, so each row has its ratio)
LRN_SWEEP_ROWS = ("torchvision alexnet", "paper, LRN=banded", "paper, LRN=triton")
LEDGER = "ledger-cifar10-gpu"
LEDGER_6B = "ledger-cifar10-gpu-6b"  # claim 6b's runs at a constant rate
# Imagenette (142 MB of zips) cannot travel in one command: three commands carry one part each,
# sent back to back while the machine is warm (30 s); the last one trains
IMAGENETTE_CARRY = Path("_build") / "sitting-imagenette"
IMAGENETTE_PARTS = {
    "val": ("imagenette-224/val.zip", "imagenette-224/classes.json"),
    "train-1": ("imagenette-224/train-1.zip",),
    "train-2": ("imagenette-224/train-2.zip",),
}
IMAGENETTE_ABLATIONS = ("no-lrn", "pool2", "half", "no-pca", "no-dropout")
FP16_RUN = "gpu/fp16-mini-cifar10-s0"
FIRST_ABLATIONS = ("base", "no-lrn")
OTHER_ABLATIONS = ("pool2", "no-dropout", "no-pca", "half")
# the CUDA tests, cheapest and riskiest first (each name takes all its parameters)
CUDA_TESTS = (
    "test_gpu_loader_test_views_are_the_cpu_paths_pixels",
    "test_gpu_loader_training_batches_are_the_cpu_transforms_pixels",
    "test_gpu_jpeg_decoding_matches_the_cpu_decoder",
    "test_gpu_jpeg_decoding_runs_on_the_gpu",
    "test_resumed_cuda_run_equals_an_uninterrupted_one_exactly",
    "test_resumed_cuda_run_of_the_mini_net_matches_an_uninterrupted_one",
    "test_one_process_nccl_run_equals_a_plain_run",
    "test_ddp_with_nccl_equals_a_plain_step",
    "test_lrn_forms_match_reference",
    "test_conv_forms_match_reference",
    "test_fast_net_is_the_reference_function_in_float64",
    "test_fast_layers_match_the_reference_in_float32",
    "test_fast_net_under_bf16_is_as_accurate_as_the_reference",
    "test_triton_lrn_compiled",
    "test_triton_lrn_backward_of_a_transposed_gradient",
    "test_compiled_paper_net_has_no_graph_break",
)


class SittingError(Exception):
    """Bad input to the sitting: one line that says what is wrong and what to do."""


# ----------------------------------------------------------------------------------- plan (here)


def _sums(data_root: Path) -> dict[str, str]:
    from alexlib._io import parse_sha256sums

    path = data_root / "SHA256SUMS"
    if not path.is_file():
        raise SittingError(
            f"no SHA256SUMS in {data_root}: point --data (or $ALEXLIB_DATA) at the offline data"
        )
    return parse_sha256sums(path.read_text())


def write_pack(data_root: Path, target: Path) -> dict:
    """All entries of the CIFAR-10 zips in one file: a JSON index (each entry's name, offset, size
    and CRC-32, and the zips' SHA-256) and the entries' bytes back to back."""
    from alexlib._io import sha256_file

    sums = _sums(data_root)
    index: dict = {"zips": {}, "sha256": {}}
    payload = io.BytesIO()
    for name in ZIPS:
        source = data_root / name
        if not source.is_file() or name not in sums:
            raise SittingError(f"{source} is missing or not listed in SHA256SUMS")
        if sha256_file(source) != sums[name]:
            raise SittingError(f"{source} does not match its SHA256SUMS line: copy it again")
        entries = []
        with zipfile.ZipFile(source) as z:
            for info in z.infolist():
                data = z.read(info)
                entries.append([info.filename, payload.tell(), len(data), info.CRC])
                payload.write(data)
        index["zips"][name] = entries
        index["sha256"][name] = sums[name]
    head = zlib.compress(json.dumps(index).encode(), 9)  # 60,022 names: 3 MB, 0.6 MB packed
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(PACK_MAGIC + len(head).to_bytes(8, "little") + head)
        f.write(payload.getbuffer())
    os.replace(tmp, target)
    return index


def read_pack(pack: Path, data_dir: Path) -> dict[str, int]:
    """Rebuild the zips of ``pack`` under ``data_dir``, every entry checked against its CRC-32.
    Returns the number of entries per zip; a damaged pack is a :class:`SittingError`."""
    with open(pack, "rb") as f:
        if f.read(len(PACK_MAGIC)) != PACK_MAGIC:
            raise SittingError(f"{pack} is not a sitting pack: run `tools/sitting.py plan` here")
        index = json.loads(zlib.decompress(f.read(int.from_bytes(f.read(8), "little"))))
        start = f.tell()
        counts = {}
        for name, entries in index["zips"].items():
            target = data_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".tmp")
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
                for member, offset, size, crc in entries:
                    f.seek(start + offset)
                    data = f.read(size)
                    if len(data) != size or zlib.crc32(data) != crc:
                        raise SittingError(f"{pack}: {member} arrived damaged; send the pack again")
                    z.writestr(member, data)
            os.replace(tmp, target)
            counts[name] = len(entries)
    return counts


def checkout_bytes(root: Path = ROOT) -> int:
    """What the tool sends of a checkout: tracked files, and untracked ones git does not ignore."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    total = 0
    for rel in filter(None, listed):
        path = root / os.fsdecode(rel)
        if path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def plan(data_root: Path, budget_s: float, root: Path = ROOT, checkout: int | None = None) -> dict:
    """Write the carried folder and return the device call that fits ``budget_s`` seconds of
    machine time: ``{"command", "carry", "timeout_s", "run_s", "mib", "schedule"}``."""
    from alexlib._io import provenance

    carry = root / CARRY
    carry.mkdir(parents=True, exist_ok=True)
    pack = carry / PACK_NAME
    write_pack(data_root, pack)
    (carry / "COMMIT").write_text((provenance().get("commit") or "unknown") + "\n")
    carried = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file())
    checkout = checkout_bytes(root) if checkout is None else checkout
    mib = (carried + checkout) / 2**20
    if mib > MAX_CARRY_MIB:
        raise SittingError(
            f"the command would carry {mib:.1f} MiB (checkout {checkout / 2**20:.1f} + data "
            f"{carried / 2**20:.1f}), over the {MAX_CARRY_MIB:.0f} MiB this plan allows: move "
            "large files out of the checkout (git-ignored) or carry less"
        )
    return schedule(budget_s) | {"carry": [str(CARRY)], "mib": round(mib, 1)}


def plan_imagenette(
    data_root: Path, budget_s: float, root: Path = ROOT, checkout: int | None = None
) -> list[dict]:
    """Write the three carried folders of an Imagenette sitting (one part of the data each, every
    file's SHA-256 beside it) and return its three device calls: two that only leave their part
    in ``/tmp`` and a last one that brings the third and trains."""
    from alexlib._io import provenance, sha256_file

    sums = _sums(data_root)
    every = [f for files in IMAGENETTE_PARTS.values() for f in files]
    missing = [f for f in every if f not in sums or not (data_root / f).is_file()]
    if missing:
        raise SittingError(f"{', '.join(missing)} missing from {data_root} or its SHA256SUMS")
    checkout = checkout_bytes(root) if checkout is None else checkout
    commit = (provenance().get("commit") or "unknown") + "\n"
    calls = []
    for part, files in IMAGENETTE_PARTS.items():
        folder = root / IMAGENETTE_CARRY / part
        shutil.rmtree(folder, ignore_errors=True)
        for name in files:
            target = folder / "data" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data_root / name, target)
            if sha256_file(target) != sums[name]:
                raise SittingError(f"{data_root / name} does not match its SHA256SUMS line")
        # every part's sums, so the last command can check what the first two left
        (folder / "SHA256SUMS").write_text("".join(f"{sums[n]}  {n}\n" for n in every))
        (folder / "COMMIT").write_text(commit)
        carried = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        mib = (carried + checkout) / 2**20
        if mib > MAX_CARRY_MIB:
            raise SittingError(
                f"the {part} command would carry {mib:.1f} MiB, over {MAX_CARRY_MIB:.0f} MiB"
            )
        rel = str(IMAGENETTE_CARRY / part)
        command = f"python3 tools/sitting.py stage {rel}"
        calls.append(
            {
                "step": part,
                "carry": [rel],
                "mib": round(mib, 1),
                "timeout_s": 60,
                "command": command,
            }
        )
    last = schedule(budget_s - 2 * 60)  # the two staging calls: about a minute each, warm
    calls[-1]["command"] = last["command"] + f" --imagenette {calls[-1]['carry'][0]}"
    calls[-1]["timeout_s"] = last["timeout_s"]
    return calls


def stage(carry: Path, data_dir: Path) -> dict[str, str]:
    """Copy a carried part's files into ``data_dir``, each checked against its SHA-256. Returns
    ``{file: "ok" | why not}``."""
    from alexlib._io import parse_sha256sums, sha256_file

    sums = parse_sha256sums((carry / "SHA256SUMS").read_text())
    status = {}
    for source in sorted((carry / "data").rglob("*")):
        if not source.is_file():
            continue
        name = str(source.relative_to(carry / "data"))
        if sha256_file(source) != sums.get(name):
            status[name] = "damaged in transfer: not used (send this command again)"
            continue
        target = data_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        status[name] = "ok"
    return status


def imagenette_missing(carry: Path, data_dir: Path) -> list[str]:
    """The Imagenette files not (or not intact) in ``data_dir``, by the carried SHA256SUMS."""
    from alexlib._io import parse_sha256sums, sha256_file

    sums = parse_sha256sums((carry / "SHA256SUMS").read_text())
    return [
        n
        for n, digest in sums.items()
        if not (data_dir / n).is_file() or sha256_file(data_dir / n) != digest
    ]


def schedule(budget_s: float) -> dict:
    """The one command's time within ``budget_s`` seconds of machine time: the start and upload,
    the run, the return, and at least :data:`SPARE_S` to spare; its ``timeout_s`` sits 30 s above
    the run's own deadline."""
    run_s = min(540.0, budget_s - START_S - RETURN_S - SPARE_S - 30)
    if run_s < 120:
        raise SittingError(
            f"{budget_s:.0f} s of machine time leaves {max(run_s, 0):.0f} s to run in, under the "
            "120 s a sitting needs (its start and transfers take about 3 minutes)"
        )
    timeout_s = int(run_s + 30)
    return {
        "command": "PYTHONUNBUFFERED=1 python3 tools/sitting.py run --out $OUT "
        f"--budget {run_s:.0f}",
        "timeout_s": timeout_s,
        "run_s": run_s,
        "schedule": {
            "start_and_upload_s": START_S,
            "run_s": run_s,
            "timeout_margin_s": 30,
            "return_s": RETURN_S,
            "spare_s": budget_s - START_S - timeout_s - RETURN_S,
        },
    }


# ------------------------------------------------------------------------------- jobs (there)


@dataclass
class Job:
    """One process of the sitting: ``argv`` after ``tools/sitting.py job``; ``outputs``: the paths
    under ``results/`` it makes (packed once it has ended well, or at once when ``live``);
    ``cap_s``: at most this long."""

    name: str
    argv: list[str]
    outputs: list[str] = field(default_factory=list)
    cap_s: float | None = None
    live: bool = False
    after: str | None = None  # a job that must have finished first (else this one is skipped)
    status: str = "waiting"
    seconds: float | None = None
    started_at: float | None = None


def figure1_folder(regime: str, activation: str, seed: int, tiny: bool) -> str:
    from alexlib.config import preset

    scale = "smoke" if tiny else "full"
    lr = preset("figure1", scale)["lrs"][regime][activation][0]
    return f"figure1/{scale}-{regime}-{activation}-lr{lr:g}-s{seed}"


def _cifar10_gpu(path: Path) -> bool:
    """Whether ``path`` lies in a CIFAR-10 GPU ledger folder (whose val_probs.pt stay there)."""
    return any(part.startswith("cifar10-gpu") for part in path.parts)


def ledger_folder(ablation: str, seed: int, tiny: bool, experiment: str = LEDGER) -> str:
    from alexlib.ledger import ledger_dir

    # a smoke run never goes straight under a results folder (the ledger refuses it)
    folder = ledger_dir(Path("smoke" if tiny else ""), "full", experiment)
    return f"{folder.as_posix()}/{ablation}/seed{seed}"


def plan_jobs(
    results: Path, stamp: str, tiny: bool, slug: str
) -> tuple[list[Job], list[Job], list[Job]]:
    """The jobs that need the GPU to themselves (timings: the bench, the profile), the ones that
    share it, most valuable first, and the timings left for the end (started only if the shared
    ones finish early); each left out when its result is already stored under ``results``."""
    exclusive, shared = [], []
    if not _bench_done(results, BENCH_ROWS):
        bench = f"bench/{stamp}-{slug}.json"
        exclusive.append(
            Job(
                "bench",
                ["bench", bench, *BENCH_ROWS],
                [bench],
                cap_s=60 if tiny else 200,
                live=True,
            )
        )
        shared.append(Job("check", ["check", bench], [bench], cap_s=120))
    profile = f"bench/profile/{slug}.json"
    if not (results / profile).is_file():
        exclusive.append(Job("profile", ["profile", profile], [profile], cap_s=60 if tiny else 150))
    fig1 = []
    for seed in (0, 1) if tiny else (0, 1, 2):
        for regime in ("paper", "today"):
            for activation in ("relu", "tanh"):
                folder = figure1_folder(regime, activation, seed, tiny)
                if not (results / folder / "metrics.jsonl").is_file():
                    fig1.append(
                        Job(
                            f"figure1-{regime}-{activation}-s{seed}",
                            ["figure1", regime, activation, str(seed)],
                            [folder],
                        )
                    )
    shared += fig1
    seeds = (0, 1) if tiny else (0, 1, 2, 3, 4)
    for ablations in (FIRST_ABLATIONS, OTHER_ABLATIONS):
        if ablations is OTHER_ABLATIONS and not (results / FP16_RUN / "metrics.jsonl").is_file():
            # the fp16 path (a T4's) with its gradient scaler, once on a GPU: a short run
            shared.append(Job("fp16", ["fp16", FP16_RUN], [FP16_RUN]))
        for seed in seeds:
            for ablation in ablations:
                folder = ledger_folder(ablation, seed, tiny)
                if not (results / folder / "summary.json").is_file():
                    outputs = [folder] + (
                        [folder.rsplit("/", 1)[0] + "/ensemble.json"] if ablation == "base" else []
                    )
                    shared.append(
                        Job(f"ledger-{ablation}-s{seed}", ["ledger", ablation, str(seed)], outputs)
                    )
    # claim 6b: base and no-dropout at a constant rate, where dropout alone decides convergence
    for seed in seeds:
        for ablation in ("base", "no-dropout"):
            folder = ledger_folder(ablation, seed, tiny, LEDGER_6B)
            if not (results / folder / "summary.json").is_file():
                argv = ["ledger", ablation, str(seed), "6b"]
                shared.append(Job(f"ledger6b-{ablation}-s{seed}", argv, [folder]))
    shared.append(Job("cuda-tests", ["tests"], [], cap_s=None))
    last = []
    if not _bench_done(results, LRN_SWEEP_ROWS):
        sweep = f"bench/{stamp}-{slug}-lrn-sweep.json"
        last.append(
            Job("lrn-sweep", ["bench", sweep, *LRN_SWEEP_ROWS], [sweep], cap_s=180, live=True)
        )
    return exclusive, shared, last


def plan_imagenette_jobs(results: Path, stamp: str, tiny: bool, slug: str) -> list[Job]:
    """The Imagenette sitting's shared jobs: the paper net's base run at seed 0 (its checkpoint
    kept for Figure 4), Figure 4 from it once it has finished, the other ablations at seed 0, then
    the base at seeds 1 and 2 and the rest."""
    scale = "smoke" if tiny else "full"
    prefix = "smoke/" if tiny else ""
    jobs = []
    order = [("base", 0), *[(a, 0) for a in IMAGENETTE_ABLATIONS], ("base", 1), ("base", 2)]
    order += [(a, k) for k in (1, 2) for a in IMAGENETTE_ABLATIONS]
    for ablation, seed in order:
        folder = f"{prefix}ledger/{ablation}/seed{seed}"
        if (results / folder / "summary.json").is_file():
            continue
        outputs = [folder]
        if ablation == "base":
            outputs += [
                f"{prefix}ledger/base/ensemble.json",
                f"{prefix}figure3/{scale}-paper-s{seed}",
            ]
        jobs.append(
            Job(f"imagenette-{ablation}-s{seed}", ["imagenette", ablation, str(seed)], outputs)
        )
        if (ablation, seed) == ("base", 0):
            figure4 = f"{prefix}figure4/{scale}-s0"
            if not (results / figure4 / "figure4.json").is_file():
                jobs.append(Job("figure4", ["figure4"], [figure4], after=jobs[-1].name))
    return jobs


def _bench_done(results: Path, rows: tuple[str, ...]) -> bool:
    """Whether one stored GPU bench run measured all of ``rows``."""
    for path in (results / "bench").glob("*.json"):
        try:
            run = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        measured = {r["name"] for r in run.get("rows", []) if "error" not in r}
        if run.get("versions", {}).get("gpu") and set(rows) <= measured:
            return True
    return False


def run_job(argv: list[str], tiny: bool) -> int:
    """One job in this process (the driver starts each in its own process group)."""
    import torch

    from alexlib._io import provenance, results_dir, write_json

    kind, args = argv[0], argv[1:]
    device = "cpu" if tiny else "cuda"
    if not tiny and not torch.cuda.is_available():
        raise SittingError(
            "no CUDA device here: the sitting's jobs need one (rehearse with --tiny)"
        )
    results = results_dir()
    if kind == "warm":  # the decodes the jobs need, side by side in processes of their own
        me = [sys.executable, str(Path(__file__).resolve()), "job"]
        decodes = {
            "cifar10": (("train", "none"), ("train", "32"), ("val", "32")),
            "imagenette": (("train", "256"), ("val", "256")),
        }[args[0] if args else "cifar10"]
        children = [
            subprocess.Popen(
                [*me, "warm-one", args[0] if args else "cifar10", split, size]
                + (["--tiny"] if tiny else [])
            )
            for split, size in decodes
        ]
        return max(c.wait() for c in children)
    if kind == "warm-one":
        from alexlib.data import load

        name, split, size = args[0], args[1], None if args[2] == "none" else int(args[2])
        # a rehearsal's jobs decode their own small subsets: it only shows this step runs
        images = load(name, split, size=size, per_class=10 if tiny else None, progress=False)
        print(f"{name}/{split} at {size}: {tuple(images.images.shape)}", flush=True)
        return 0
    if kind == "profile":
        return _profile(results / args[0], torch.device(device), tiny)
    if kind == "bench":
        from tools import bench

        path, names = results / args[0], args[1:]
        dev = torch.device(device)
        batch, steps, warmup = (2, 2, 1) if tiny else (512, 20, 8)
        rows_by_name = {r.name: r for r in bench.bench_rows(True, triton=True)}
        result = {
            "rows": [],
            "checks": [],
            "settings": {
                "device": str(dev),
                "batch_size": batch,
                "steps": steps,
                "warmup": warmup,
                "compile": not tiny,
                "amp": not tiny,
                "channels_last": not tiny,
                "sweep": False,
                "tiny": tiny,
                "input": [3, 224, 224],
                "part": None,
                "rows_in_order": list(names),
            },
            "versions": bench.versions(dev),
            "provenance": provenance(),
        }
        base = None
        for name in names:
            torch._dynamo.reset()
            try:
                row = bench.measure(
                    rows_by_name[name],
                    device=dev,
                    batch_size=batch,
                    steps=steps,
                    warmup=warmup,
                    compile=not tiny,
                )
            except Exception as exc:  # noqa: BLE001 - one failing row never costs the others
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                row = {"name": name, "net": rows_by_name[name].net, "error": first}
            if row.get("net") == "torchvision" and "error" not in row:
                base = row
            if base is not None and "error" not in row:
                row["vs_torchvision"] = row["images_per_s"] / base["images_per_s"]
            result["rows"].append(row)
            write_json(path, result)  # each row stored as it is measured
            print(bench.format_table(result), flush=True)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
        return 0
    if kind == "check":
        from alexlib.fast import triton_available
        from tools import bench

        torch.backends.cuda.matmul.allow_tf32 = False  # a correct form must read "yes"
        torch.backends.cudnn.allow_tf32 = False
        path = results / args[0]
        checks = bench.correctness(
            device=torch.device(device), triton=triton_available() and not tiny
        )
        result = json.loads(path.read_text()) if path.is_file() else None
        if result is None:
            print(f"check: no bench result at {path}; the checks alone are printed", flush=True)
        else:
            result["checks"] = checks
            result["settings"]["checks_tf32"] = False
            write_json(path, result)
        failed = [f"{c['layer']} {c['impl']}" for c in checks if not c["equal"]]
        print(bench.format_checks({"checks": checks}), flush=True)
        print("forms that fail the check:", failed or "none", flush=True)
        return 0
    if kind == "figure1":
        from alexlib.experiments import run_figure1

        regime, activation, seed = args[0], args[1], int(args[2])
        run_figure1(
            "smoke" if tiny else "full",
            regime=regime,
            store=results / "figure1",
            state_dir=Path("/tmp/alexlib-state/figure1") if not tiny else results.parent / "state",
            device=device,
            only=(activation, seed),
            progress=True,
        )
        return 0
    if kind == "ledger":
        from alexlib.ledger import run_ledger

        ablation, seed = args[0], int(args[1])
        for job in run_ledger(
            "smoke" if tiny else "full",
            experiment=LEDGER_6B if args[2:] == ["6b"] else LEDGER,
            seeds=[seed],
            only=[ablation],
            out=results / "smoke" if tiny else results,
            device=device,
            keep_checkpoints=False,
            progress=True,
        ):
            print(json.dumps(job), flush=True)
        return 0
    if kind == "imagenette":  # the paper's net on Imagenette: the ledger's full column
        from alexlib.ledger import run_ledger

        ablation, seed = args[0], int(args[1])
        for job in run_ledger(
            "smoke" if tiny else "full",
            seeds=[seed],
            only=[ablation],
            out=results / "smoke" if tiny else results,
            device=device,
            keep_checkpoints=(ablation, seed) == ("base", 0),  # Figure 4 reads it
            progress=True,
        ):
            print(json.dumps(job), flush=True)
        return 0
    if kind == "figure4":  # from the finished base net only, never from an unfinished one
        from alexlib.experiments import run_figure4, save_figure4
        from alexlib.ledger import ledger_dir, read_run
        from alexlib.train import read_metrics

        scale = "smoke" if tiny else "full"
        root = results / "smoke" if tiny else results
        folder = ledger_dir(root, scale) / "base" / "seed0"
        run = read_run(folder, scale)
        if not run.get("ok") or not (folder / "checkpoint.pt").is_file():
            raise SittingError(
                f"figure4: the base net in {folder} is not finished with its checkpoint kept "
                f"({run.get('reason') or 'no checkpoint.pt'})"
            )
        trained = {"out": str(folder), "metrics": read_metrics(folder)}
        result = run_figure4(scale, 0, trained=trained, device=device)
        print("stored in", save_figure4(result, base=root / "figure4", tag=scale), flush=True)
        return 0
    if kind == "fp16":
        from alexlib.train import RunSettings, train_run

        settings = RunSettings(
            dataset="cifar10",
            variant="mini",
            epochs=1 if tiny else 4,
            lr=0.01,
            precision="fp16",
            pca_colour=True,
            train_per_class=10 if tiny else None,
            val_per_class=10 if tiny else None,
            batch_size=32 if tiny else 128,
            device=device,
        )
        last = train_run(settings, results / args[0], progress=True)
        print(json.dumps(last), flush=True)
        return 0
    if kind == "tests":
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-v",
            "-rs",
            "-p",
            "no:cacheprovider",
            "-m",
            "cuda",
        ]
        command += [f"tests/test_cuda.py::{name}" for name in CUDA_TESTS]
        return subprocess.call(command, cwd=ROOT)
    raise SittingError(f"unknown job {kind!r}")


def _profile(path: Path, device, tiny: bool) -> int:
    """Where a training step's GPU time goes: torchvision's ``alexnet`` and alexlib's paper net
    (compiled, bf16, channels-last, batch 512, as the bench trains them), each profiled over five
    steps after warm-up; the kernels by their share of the step, stored at ``path``."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from alexlib._io import provenance, write_json
    from alexlib.engine import sgd_paper, train_step
    from tools import bench

    cuda = device.type == "cuda"
    batch, steps = (2, 2) if tiny else (512, 5)
    result = {"batch_size": batch, "steps": steps, "nets": {}, "provenance": provenance()}
    for name in ("torchvision alexnet", "paper, alexlib"):
        torch._dynamo.reset()
        spec = next(r for r in bench.bench_rows(True, triton=False) if r.name == name)
        net = bench.build_net(spec).to(device)
        fmt = torch.channels_last if cuda else torch.contiguous_format
        net = net.to(memory_format=fmt).train()
        step_net = torch.compile(net) if cuda else net
        optimizer = sgd_paper(net, lr=0.01)
        x = torch.randn(batch, 3, 224, 224, device=device).contiguous(memory_format=fmt)
        y = torch.randint(0, 1000, (batch,), device=device)
        for _ in range(3):
            train_step(step_net, x, y, optimizer, amp=cuda)
        if cuda:
            torch.cuda.synchronize()
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities) as prof:
            for _ in range(steps):
                train_step(step_net, x, y, optimizer, amp=cuda)
            if cuda:
                torch.cuda.synchronize()
        averaged = list(prof.key_averages())
        if cuda:  # the kernels themselves (an operator's device time is its kernels' again)
            events = [e for e in averaged if str(getattr(e, "device_type", "")).endswith("CUDA")]
            events = events or [e for e in averaged if e.self_device_time_total > 0]
            key = lambda e: e.self_device_time_total  # noqa: E731
        else:
            events = [e for e in averaged if e.self_cpu_time_total > 0]
            key = lambda e: e.self_cpu_time_total  # noqa: E731
        total = sum(key(e) for e in events) or 1.0
        top = sorted(events, key=key, reverse=True)[:40]
        result["nets"][name] = {
            "ms_per_step": total / steps / 1000,
            "kernels": [
                {
                    "name": e.key[:200],
                    "ms_per_step": key(e) / steps / 1000,
                    "share": key(e) / total,
                    "calls_per_step": e.count / steps,
                }
                for e in top
            ],
        }
        where = "GPU" if cuda else "CPU"
        print(name, f"{total / steps / 1000:.2f} ms of {where} time a step", flush=True)
        for k in result["nets"][name]["kernels"][:15]:
            print(f"  {k['share']:6.1%} {k['ms_per_step']:7.3f} ms  {k['name'][:100]}", flush=True)
        write_json(path, result)
        del net, step_net, optimizer
        if cuda:
            torch.cuda.empty_cache()
    return 0


# ------------------------------------------------------------------------------ run (there)


class Sitting:
    """The driver: runs the jobs, kills each at its limit, packs what has finished."""

    def __init__(self, out: Path, budget_s: float, workers: int, tiny: bool, env: dict):
        self.out, self.tiny, self.env, self.workers = out, tiny, env, workers
        self.started = time.monotonic()
        self.deadline = self.started + budget_s
        self.results = Path(env["ALEXLIB_RESULTS"])
        self.logs = Path(env["SITTING_LOGS"])
        self.jobs: list[Job] = []
        self.lock = threading.Lock()
        self.events: list[str] = []
        self.budget_s = budget_s

    def say(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f} s] {text}"
        print(line, flush=True)
        with self.lock:
            self.events.append(line)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def start(self, job: Job) -> subprocess.Popen:
        log = open(self.logs / f"{job.name}.txt", "w")
        command = [sys.executable, str(ROOT / "tools" / "sitting.py"), "job", *job.argv]
        command += ["--tiny"] if self.tiny else []
        job.status, job.started_at = "running", time.monotonic()
        self.say(f"start {job.name}")
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: killed whole, compilers included
        )
        proc._log = log  # type: ignore[attr-defined]
        proc._job = job  # type: ignore[attr-defined]
        return proc

    def limit(self, job: Job) -> float:
        until = self.deadline - 5
        if job.cap_s is not None:
            until = min(until, job.started_at + job.cap_s)
        return until

    def finish(self, proc: subprocess.Popen, killed: str | None = None) -> None:
        job = proc._job  # type: ignore[attr-defined]
        if killed:
            _kill_group(proc)
            job.status = killed
        else:
            job.status = "done" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        proc._log.close()  # type: ignore[attr-defined]
        job.seconds = round(time.monotonic() - job.started_at, 1)
        self.say(f"{job.name}: {job.status} after {job.seconds} s")
        self.pack()

    def run_exclusive(self, jobs: list[Job]) -> None:
        for job in jobs:
            if self.left() < 30:
                job.status = "skipped: no time left"
                continue
            proc = self.start(job)
            while proc.poll() is None:
                if time.monotonic() > self.limit(job):
                    self.finish(proc, killed="stopped at its time limit")
                    break
                time.sleep(0.5)
            else:
                self.finish(proc)

    def run_shared(self, jobs: list[Job]) -> None:
        waiting, running = list(jobs), []
        last_pack = time.monotonic()
        status = {j.name: j for j in self.jobs}
        while (waiting or running) and self.left() > 5:
            for job in list(waiting):  # a job whose prerequisite ended badly never starts
                first = status.get(job.after) if job.after else None
                if first is not None and first.status not in ("waiting", "running", "done"):
                    job.status = f"skipped: {job.after} did not finish ({first.status})"
                    waiting.remove(job)
            ready = [
                j
                for j in waiting
                if not j.after or j.after not in status or status[j.after].status == "done"
            ]
            while ready and len(running) < self.workers and self.left() > 20:
                job = ready.pop(0)
                waiting.remove(job)
                running.append(self.start(job))
            for proc in list(running):
                if proc.poll() is not None:
                    running.remove(proc)
                    self.finish(proc)
                elif time.monotonic() > self.limit(proc._job):  # type: ignore[attr-defined]
                    running.remove(proc)
                    self.finish(proc, killed="stopped at its time limit")
            if time.monotonic() - last_pack > 15:
                self.pack()
                last_pack = time.monotonic()
            if not waiting and not running:
                break
            time.sleep(0.5)
        for proc in running:
            self.finish(proc, killed="stopped at the sitting's deadline (resumable next time)")
        for job in waiting:
            job.status = "not started: no time left"

    def pack(self) -> None:
        """Rewrite results.tar.gz, logs.tar.gz and summary.json in ``out``, each atomically."""
        with self.lock:
            files = []
            for job in self.jobs:
                if job.status == "done" or (job.live and job.status != "waiting"):
                    for rel in job.outputs:
                        path = self.results / rel
                        if path.is_dir():
                            files += [
                                p
                                for p in sorted(path.rglob("*"))
                                if p.is_file()
                                and p.name not in NOT_PACKED
                                and not p.name.startswith(".")
                                and not (p.name == "val_probs.pt" and _cifar10_gpu(p))
                            ]
                        elif path.is_file():
                            files.append(path)
            _atomic_tar(
                self.out / "results.tar.gz",
                [(p, "results/" + str(p.relative_to(self.results))) for p in dict.fromkeys(files)],
            )
            _atomic_tar(
                self.out / "logs.tar.gz",
                [(p, "logs/" + p.name) for p in sorted(self.logs.glob("*.txt"))],
                tail=4 * 2**20,
            )
            summary = {
                "budget_s": self.budget_s,
                "elapsed_s": round(time.monotonic() - self.started, 1),
                "tiny": self.tiny,
                "commit": self.env.get("ALEXLIB_COMMIT"),
                "jobs": [
                    {
                        "job": j.name,
                        "status": j.status,
                        "seconds": j.seconds,
                        "started_s": None
                        if j.started_at is None
                        else round(j.started_at - self.started, 1),
                    }
                    for j in self.jobs
                ],
                "events": self.events[-400:],
            }
            tmp = self.out / "summary.json.tmp"
            tmp.write_text(json.dumps(summary, indent=1))
            os.replace(tmp, self.out / "summary.json")


def _start_mps(sitting: Sitting, env: dict) -> bool:
    """Start NVIDIA's multi-process service, so that the shared jobs' kernels run side by side
    instead of taking turns; kept only if a CUDA process then starts within 60 s."""
    try:
        started = subprocess.run(
            ["nvidia-cuda-mps-control", "-d"], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError) as exc:
        sitting.say(f"MPS: not started ({exc}); the jobs take turns on the GPU")
        return False
    if started.returncode != 0:
        sitting.say(f"MPS: not started ({started.stderr.strip()[:200]}); jobs take turns")
        return False
    probe = [sys.executable, "-c", "import torch; print(float(torch.ones(2).cuda().sum()))"]
    try:
        ok = subprocess.run(probe, env=env, capture_output=True, timeout=60).returncode == 0
    except subprocess.SubprocessError:
        ok = False
    if not ok:
        _stop_mps(sitting)
        sitting.say("MPS: a CUDA process could not start under it; stopped, jobs take turns")
        return False
    sitting.say("MPS: on (the shared jobs' kernels run side by side)")
    return True


def _stop_mps(sitting: Sitting) -> None:
    try:
        subprocess.run(
            ["nvidia-cuda-mps-control"], input="quit\n", text=True, timeout=20, capture_output=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        sitting.say(f"MPS: could not stop it ({exc})")


def _kill_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=3)
            if sig == signal.SIGTERM:
                os.killpg(proc.pid, signal.SIGKILL)  # whatever it left behind in its group
        except (subprocess.TimeoutExpired, ProcessLookupError):
            continue


def _atomic_tar(target: Path, members: list[tuple[Path, str]], tail: int | None = None) -> None:
    tmp = target.with_name(target.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for path, arcname in members:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if tail is not None and len(data) > tail:
                data = b"[... start cut ...]\n" + data[-tail:]
            info = tarfile.TarInfo(arcname)
            info.size, info.mtime = len(data), int(time.time())
            tar.addfile(info, io.BytesIO(data))
    os.replace(tmp, target)


def run(
    out: Path,
    budget_s: float,
    workers: int,
    tiny: bool,
    data_dir: Path,
    only: list[str] | None,
    pack: Path | None = None,
    imagenette: Path | None = None,
) -> dict:
    """The sitting: CIFAR-10's (the pack) or, with ``imagenette`` (the last part's carried
    folder), Imagenette's, whose first two parts earlier commands left in ``data_dir``."""
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    commit = (ROOT / imagenette if imagenette else ROOT / CARRY) / "COMMIT"
    if commit.is_file():
        env["ALEXLIB_COMMIT"] = commit.read_text().strip()
    results = Path(
        env.get("ALEXLIB_RESULTS")
        or (ROOT / ("_build/sitting-tiny/results" if tiny else "results"))
    )
    env["ALEXLIB_RESULTS"] = str(results)
    env["ALEXLIB_DATA"] = str(data_dir)
    env.setdefault("ALEXLIB_CACHE", str(data_dir.parent / "alexlib-cache"))
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    logs = Path(env.get("SITTING_LOGS") or "/tmp/alexlib-sitting-logs")
    logs.mkdir(parents=True, exist_ok=True)
    env["SITTING_LOGS"] = str(logs)
    sitting = Sitting(out, budget_s, workers, tiny, env)
    complete = False
    if imagenette is not None:
        carry = ROOT / imagenette
        sitting.say(f"data: {stage(carry, data_dir)}")
        missing = imagenette_missing(carry, data_dir)
        complete = not missing
        if missing:
            sitting.say(
                f"Imagenette is incomplete here (missing or damaged: {', '.join(missing)}): the "
                "machine went cold between the commands. The Imagenette jobs must be repeated in "
                "a later sitting, its three commands back to back; this one runs what needs no data"
            )
    else:
        pack = pack or ROOT / CARRY / PACK_NAME
        if pack.is_file():
            counts = read_pack(pack, data_dir)
            sitting.say(f"data rebuilt from {pack.name}: {counts}")
        elif not all((data_dir / z).is_file() for z in ZIPS):
            raise SittingError(
                f"no {pack} and no CIFAR-10 zips in {data_dir}: run `tools/sitting.py plan` here"
            )
    # the GPU's name from a process of its own: the driver never holds a CUDA context, so that the
    # multi-process service can start later with every CUDA process its client
    probe = (
        "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu')"
    )
    named = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    gpu = (named.stdout.strip().splitlines() or ["cpu"])[-1]
    slug = "".join(ch if ch.isalnum() else "-" for ch in gpu.lower().replace("nvidia ", "")).strip(
        "-"
    )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    exclusive, shared, last = plan_jobs(results, stamp, tiny, slug)
    warm = Job("warm", ["warm", "cifar10"], [], cap_s=120)
    if imagenette is not None:  # the timings go last; the CIFAR-10 jobs have no data here
        cifar = ("check", "figure1", "ledger", "ledger6b", "fp16", "cuda")
        shared = [j for j in shared if j.name.split("-")[0] not in cifar]
        last = [*exclusive, *last, Job("cuda-tests", ["tests"], [], cap_s=None)]
        exclusive = []
        shared = plan_imagenette_jobs(results, stamp, tiny, slug) if complete else []
        warm = Job("warm", ["warm", "imagenette"], [], cap_s=180)
        if not complete:
            warm.status = "skipped: no Imagenette data"
    if only:
        exclusive, shared, last = (
            [j for j in group if j.name.split("-")[0] in only]
            for group in (exclusive, shared, last)
        )
    sitting.jobs = [warm, *exclusive, *shared, *last]
    sitting.say(
        f"{gpu}; {len(exclusive) + len(shared) + len(last)} jobs; budget {budget_s:.0f} s; "
        f"commit {env.get('ALEXLIB_COMMIT', '?')}"
    )
    sitting.pack()
    sitting.run_exclusive([warm, *exclusive] if warm.status == "waiting" else exclusive)
    mps = False if tiny else _start_mps(sitting, env)
    sitting.run_shared(shared)
    if mps:
        _stop_mps(sitting)
    if last and sitting.left() > 150:
        sitting.run_exclusive(last)
    else:
        for job in last:
            job.status = "not started: no time left"
    sitting.pack()
    sitting.say(f"sitting over after {time.monotonic() - started:.0f} s")
    sitting.pack()
    return json.loads((out / "summary.json").read_text())


# ------------------------------------------------------------------------------ unpack (here)


def unpack(folder: Path, root: Path = ROOT) -> dict:
    """Extract ``results.tar.gz`` from a sitting's files into ``root/results`` (only paths below
    it) and return its summary."""
    archive = Path(folder) / "results.tar.gz"
    if not archive.is_file():
        raise SittingError(f"no results.tar.gz in {folder}: nothing finished in that sitting")
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for m in members:
            parts = Path(m.name).parts
            if not m.isfile() or parts[0] != "results" or ".." in parts:
                raise SittingError(f"{archive} holds {m.name!r}, which is not a results file")
        tar.extractall(root, members=members, filter="data")
    summary_path = Path(folder) / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary["unpacked"] = [m.name for m in members]
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tools/sitting.py", description=__doc__.split("\n\n")[0])
    verbs = p.add_subparsers(dest="verb", required=True)
    q = verbs.add_parser("plan", help="pack the data here and print the device command")
    q.add_argument("--data", default=os.environ.get("ALEXLIB_DATA"), help="the offline data root")
    q.add_argument("--budget", type=float, default=900, help="machine time left, seconds")
    q.add_argument(
        "--imagenette", action="store_true", help="the Imagenette sitting's three commands"
    )
    q = verbs.add_parser("stage", help="leave a carried part's data in /tmp (on the GPU machine)")
    q.add_argument("carry")
    q.add_argument("--data-dir", default="/tmp/alexlib-data")
    q = verbs.add_parser("run", help="the sitting (on the GPU machine)")
    q.add_argument("--out", required=True)
    q.add_argument("--budget", type=float, default=540)
    q.add_argument("--workers", type=int, default=10)
    q.add_argument("--data-dir", default="/tmp/alexlib-data")
    q.add_argument(
        "--only", nargs="*", help="job kinds: bench profile check figure1 ledger cuda lrn"
    )
    q.add_argument("--pack", help=f"the data pack (default {CARRY / PACK_NAME})")
    q.add_argument(
        "--imagenette", help="the Imagenette sitting: the last part's carried folder (plan says)"
    )
    q.add_argument("--tiny", action="store_true")
    q = verbs.add_parser("job", help="one job (the driver starts these)")
    q.add_argument("argv", nargs="+")
    q.add_argument("--tiny", action="store_true")
    q = verbs.add_parser("unpack", help="a sitting's files into results/")
    q.add_argument("folder")
    args = p.parse_args(argv)
    try:
        if args.verb == "plan":
            if not args.data:
                raise SittingError("say where the offline data is: --data DIR or $ALEXLIB_DATA")
            if args.imagenette:
                calls = plan_imagenette(Path(args.data), args.budget)
                print("Send these back to back (the machine stays warm 30 s after each):")
                print(json.dumps(calls, indent=1))
            else:
                print(json.dumps(plan(Path(args.data), args.budget), indent=1))
        elif args.verb == "stage":
            status = stage(ROOT / args.carry, Path(args.data_dir))
            print(json.dumps(status, indent=1))
            return 0 if all(v == "ok" for v in status.values()) else 2
        elif args.verb == "run":
            summary = run(
                Path(args.out),
                args.budget,
                args.workers,
                args.tiny,
                Path(args.data_dir),
                args.only,
                pack=Path(args.pack) if args.pack else None,
                imagenette=Path(args.imagenette) if args.imagenette else None,
            )
            for j in summary["jobs"]:
                print(f"  {j['job']}: {j['status']} ({j['seconds']} s)")
        elif args.verb == "job":
            return run_job(args.argv, args.tiny)
        else:
            summary = unpack(Path(args.folder))
            for j in summary.get("jobs", []):
                print(f"  {j['job']}: {j['status']} ({j['seconds']} s)")
            print(f"{len(summary['unpacked'])} results files unpacked")
    except SittingError as exc:
        print(f"sitting: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
