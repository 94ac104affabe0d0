"""The paper-claims ledger: an ablation runner, and a table of the paper's quantitative claims
generated from the result files under ``results/`` (never typed by hand).

    python -m alexlib ledger run --scale full --seeds 3 --budget-s 540   # on a GPU; resumable
    python -m alexlib ledger table                                      # the ledger, from results/

    from alexlib.ledger import run_ledger, ledger_rows, ledger_markdown
    from alexlib.figures import effects_figure
    rows = ledger_rows()                       # one LedgerRow per claim, measured or unmeasured
    print(ledger_markdown(rows))               # the table the claims chapter shows

The runner trains one base configuration (the ``paper`` net on Imagenette with the paper's recipe,
:class:`alexlib.train.RunSettings`) and one switch per claim (:data:`ABLATIONS`), each over several
seeds, with :func:`alexlib.train.train_run`. Every run is a folder::

    <results>/ledger/<ablation>/seed<k>/settings.json   settings + provenance (GPU, commit, date)
                                        metrics.jsonl   one line per epoch
                                        summary.json    scale, final metrics, wall time, sha256
                                        views.json      (base only) centre crop vs ten views
                                        checkpoint.pt   large: never committed
    <results>/ledger/base/ensemble.json                 the base seeds averaged (CNN ensembles)
    <results>/figure3/<scale>-paper-s<k>/conv1.pt       the base nets' conv1 kernels (Figure 3)
    <results>/figure1/<scale>-...                       ReLU vs tanh (Figure 1's runs)

Runs at smoke scale carry ``"scale": "smoke"`` in their ``summary.json`` and go elsewhere
(``_build/ledger-smoke`` by default): the ledger refuses them, so a smoke number can never be
shown as a measurement. Claims 1 and 9 are measured by :mod:`alexlib.experiments` (Figures 1 and 3).

Paper: sections 3.1-3.5, 4.1, 4.2 and 6 (every claim is listed with its section in :data:`CLAIMS`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ._io import packaged_results, provenance, results_dir, sha256_file, write_json
from .config import SCALES, preset, resolve_device
from .data import cache_dir
from .engine import precision_for
from .errors import LedgerError
from .evaluate import ensemble, predict, store_views, topk_errors
from .experiments import run_figure1, save_figure3, summarise_figure1, tower_split
from .model import get_layer
from .train import (
    RunSettings,
    load_checkpoint,
    machine_name,
    model_from_checkpoint,
    read_metrics,
    read_stored,
    run_arithmetic,
    stored_runs,
    train_run,
)

__all__ = [
    "Ablation",
    "ABLATIONS",
    "FIGURE_JOBS",
    "Claim",
    "CLAIMS",
    "LedgerRow",
    "LedgerError",
    "settings_for",
    "run_ledger",
    "smoke_root",
    "read_run",
    "ledger_rows",
    "ledger_markdown",
    "ledger_columns",
    "ledger_details",
    "ledger_dir",
    "CIFAR10_GPU",
    "cifar10_gpu_rows",
    "finished_runs",
    "overfit_gap",
    "runs_markdown",
    "add_arguments",
]


# ==============================================================================================
# The ablations: one base configuration, one switch per claim


@dataclass(frozen=True)
class Ablation:
    """One configuration of the runner: ``overrides`` of :class:`RunSettings` applied to the base.
    A model switch is a registered variant name per base variant (``variants``: the full-scale
    ``paper`` net's ``paper-nolrn``, the laptop-scale ``mini`` net's ``mini-nolrn``), so every run
    is a plain ``train_run`` that ``RunSettings(variant=...)`` can reproduce."""

    name: str
    overrides: dict
    what: str
    variants: dict[str, str] = field(default_factory=dict)


ABLATIONS: dict[str, Ablation] = {
    a.name: a
    for a in (
        Ablation(
            "base",
            {},
            "the paper's net and recipe: two towers, LRN, z=3 s=2 pooling, PCA colour, dropout",
        ),
        Ablation(
            "no-lrn",
            {},
            "without local response normalisation (section 3.3)",
            {"paper": "paper-nolrn", "mini": "mini-nolrn"},
        ),
        Ablation(
            "pool2",
            {},
            "non-overlapping pooling z=2, s=2 (section 3.4)",
            {"paper": "paper-pool2", "mini": "mini-pool2"},
        ),
        Ablation(
            "half",
            {},
            "one tower with half the conv kernels (section 3.2)",
            {"paper": "half", "mini": "mini-half"},
        ),
        Ablation("no-pca", {"pca_colour": False}, "without PCA colour augmentation (section 4.1)"),
        Ablation("no-dropout", {"dropout": 0.0}, "without dropout in fc6 and fc7 (section 4.2)"),
    )
}

# Jobs run by alexlib.experiments rather than by train_run (claim 1: Figure 1 on CIFAR-10).
FIGURE_JOBS: tuple[str, ...] = ("figure1",)

# The runner's settings per scale are the registry's "ledger" presets (alexlib.config.PRESETS).


#: The results folder of the ledger's third column, "CIFAR-10, GPU": the laptop column's CIFAR-10
#: claims trained to the end on a GPU (the ``ledger-cifar10-gpu`` preset). It is laid out as a
#: results folder of its own (``<results>/cifar10-gpu/ledger/<ablation>/seed<k>``), so the same
#: readers give its rows: ``ledger_rows(results / CIFAR10_GPU, "full")``.
CIFAR10_GPU = "cifar10-gpu"
#: Claim 6b's runs for that column (``ledger-cifar10-gpu-6b``: base and no-dropout at a constant
#: rate), laid out the same way under ``<results>/cifar10-gpu-6b``.
CIFAR10_GPU_6B = "cifar10-gpu-6b"
#: Claim 6b's constant-rate runs at laptop scale (``ledger-laptop-6b``), under
#: ``<results>/laptop-6b/ledger-laptop``: read by ``ledger_rows(results / LAPTOP_6B, "laptop")``.
LAPTOP_6B = "laptop-6b"
#: A run at a constant rate has converged when its validation error has stayed within a point of
#: its best for at least this many epochs before the run's end.
CONVERGED_FOR = 10
#: The experiments that measure claim 6b alone: their base runs store no ten-view probabilities
#: and no ensemble (claims 7 and 8 are read from the plateau runs).
SIX_B_ONLY = ("ledger-cifar10-gpu-6b", "ledger-laptop-6b")


def ledger_dir(root: Path, scale: str, experiment: str = "ledger") -> Path:
    """The folder of the ablation runs at ``scale`` under a results folder ``root``:
    ``<root>/ledger`` (full scale, and smoke runs outside ``results/``) or ``<root>/ledger-laptop``
    (laptop scale, the same claims measured on CIFAR-10). The ``"ledger-cifar10-gpu"`` experiment
    keeps its runs in ``<root>/cifar10-gpu/ledger`` (:data:`CIFAR10_GPU`), and its claim 6b runs
    (``"ledger-cifar10-gpu-6b"``) in ``<root>/cifar10-gpu-6b/ledger``; the laptop's claim 6b
    runs (``"ledger-laptop-6b"``) in ``<root>/laptop-6b/ledger-laptop``."""
    if experiment == "ledger-cifar10-gpu":
        return Path(root) / CIFAR10_GPU / "ledger"
    if experiment == "ledger-cifar10-gpu-6b":
        return Path(root) / CIFAR10_GPU_6B / "ledger"
    if experiment == "ledger-laptop-6b":
        return Path(root) / LAPTOP_6B / ("ledger-laptop" if scale == "laptop" else "ledger")
    if experiment != "ledger":
        raise LedgerError(f"unknown ledger experiment {experiment!r}")
    return Path(root) / ("ledger" if scale in ("full", "smoke") else f"ledger-{scale}")


def smoke_root() -> Path:
    """Where smoke-scale ledger runs go by default: ``_build/ledger-smoke`` next to ``results/``
    in a checkout, the per-user cache folder (``alexlib.data.cache_dir``) with an installed wheel
    (never under ``results/``, and refused by the ledger wherever they are)."""
    results = results_dir()
    if results == packaged_results():  # an installed package: no checkout to write next to
        return cache_dir() / "ledger-smoke"
    return results.parent / "_build" / "ledger-smoke"


def settings_for(
    ablation: str, scale: str, seed: int, experiment: str = "ledger", **kw
) -> RunSettings:
    """The :class:`RunSettings` of one run: the scale's preset of ``experiment``, the ablation's
    switch, ``seed``, and ``kw`` (``data_root``, ``device``, ``compile``, ...)."""
    if ablation not in ABLATIONS:
        raise LedgerError(
            f"unknown ablation {ablation!r}; the ablations are: {', '.join(ABLATIONS)}"
        )
    p = preset(experiment, scale)
    base = {k: v for k, v in p.items() if k not in ("seeds", "chunk_epochs")}
    ablation = ABLATIONS[ablation]
    switch = dict(ablation.overrides)
    if ablation.variants:
        switch["variant"] = ablation.variants[base["variant"]]
    return RunSettings(**{**base, "seed": seed, **switch, **kw})


# ==============================================================================================
# The runner


def _epochs_done(folder: Path) -> int:
    if not (folder / "checkpoint.pt").is_file() or not (folder / "metrics.jsonl").is_file():
        return 0
    return len(read_metrics(folder))


def _train_chunked(
    settings: RunSettings, folder: Path, data, deadline: float | None, chunk: int, progress: bool
) -> bool:
    """Train ``settings`` in ``folder`` up to its epochs, ``chunk`` epochs per resume step, stopping
    between steps once ``deadline`` (``time.monotonic()``) has passed. True when the run is
    complete."""
    done = _epochs_done(folder)
    if done == 0 and (folder / "metrics.jsonl").exists():
        # an interrupted first epoch left metrics but no checkpoint: start that run afresh
        (folder / "metrics.jsonl").unlink()
    while done < settings.epochs:
        if deadline is not None and time.monotonic() > deadline:
            return False
        target = min(settings.epochs, done + chunk)
        train_run(settings, folder, resume=done > 0, progress=progress, data=data, until=target)
        done = target
    return True


def _write_ensemble(root: Path, scale: str, experiment: str = "ledger") -> dict | None:
    """Average the stored validation probabilities of every finished base seed (claim 8) into
    ``<root>/ledger/base/ensemble.json``. None with fewer than two seeds."""
    base = ledger_dir(root, scale, experiment) / "base"
    stored = {}
    for folder in sorted(base.glob("seed*")):
        if (folder / "val_probs.pt").is_file() and (folder / "summary.json").is_file():
            stored[int(folder.name[4:])] = torch.load(folder / "val_probs.pt", weights_only=True)
    if len(stored) < 2:
        return None
    labels = next(iter(stored.values()))["labels"]
    if any(not torch.equal(s["labels"], labels) for s in stored.values()):
        raise LedgerError(
            f"the base seeds in {base} were evaluated on different images; rerun their evaluation"
        )
    result = {
        "scale": scale,
        "seeds": sorted(stored),
        "val_images": len(labels),
        "provenance": provenance(),
    }
    for views in ("center", "ten"):
        single = {str(k): topk_errors(s[views], labels) for k, s in stored.items()}
        result[views] = {
            "single": single,
            "ensemble": topk_errors(ensemble([s[views] for s in stored.values()]), labels),
        }
    write_json(base / "ensemble.json", result)
    return result


def _save_kernels(root: Path, scale: str, seed: int, folder: Path, model) -> None:
    """Store a base net's conv1 kernels in Figure 3's layout (``alexlib.experiments.save_figure3``),
    so that claim 9 is measured on the base runs without training another net."""
    trained = {"out": str(folder), "conv1": get_layer(model, "conv1").weight.detach().clone()}
    save_figure3(model.variant, seed, trained, base=root / "figure3", tag=scale)


def _train_error_eval_mode(model, settings: RunSettings, stats, train, device) -> dict:
    """The top-1/top-5 error of a trained net on its whole training set in eval mode (centre
    crops, dropout off): the training error that claim 6a's over-fitting gap needs, rather than
    the error counted on augmented, dropout-noised batches while training."""
    probs = predict(
        model.to(device), train.images, stats.to(device), crop=settings.crop, device=device
    )
    return topk_errors(probs, train.labels)


def _run_figure1(root: Path, scale: str, data_root, device, progress: bool) -> str:
    """Figure 1's experiment in both regimes, each run stored under ``<root>/figure1`` as it
    finishes (a second call reads the stored runs back and trains only what is missing)."""
    target = root / "figure1"
    before = {p.name for p in target.glob(f"{scale}-*")}
    for regime in ("paper", "today"):
        run_figure1(
            scale,
            regime=regime,
            data_root=data_root,
            device=device,
            progress=progress,
            store=target,
            state_dir=root / "runs" / "figure1",
        )
    return "done" if {p.name for p in target.glob(f"{scale}-*")} - before else "done before"


def run_ledger(
    scale: str = "full",
    *,
    seeds: int | Sequence[int] | None = None,
    only: Sequence[str] | None = None,
    experiment: str = "ledger",
    out: str | os.PathLike | None = None,
    budget_s: float | None = None,
    data_root=None,
    device: str = "auto",
    compile: bool = False,
    keep_checkpoints: bool | None = None,
    progress: bool = True,
) -> list[dict]:
    """Run the ablations (and the Figure 1 job) at ``scale`` over ``seeds`` seeds (0, 1, ...),
    writing each run under ``<out>/ledger/<ablation>/seed<k>/``.

    ``out``: the results folder (default: ``results/`` at full scale, :func:`smoke_root` at smoke
    scale; a smoke run is refused under ``results/``). ``only``: ablation names (and/or
    ``"figure1"``) to run. Runs go seed by seed (every ablation's seed 0 first), so a partial
    budget still gives every claim a first number. ``budget_s``: stop between resume steps after
    this many seconds; call again (same arguments) to go on: finished runs are skipped, unfinished
    ones resumed; a seed's runs all train in the arithmetic its first stored run recorded, on
    whatever machine resumes them (:meth:`_Jobs.seed_arithmetic`). ``keep_checkpoints``: keep
    ``checkpoint.pt`` of finished runs (default: at full scale only; its sha256 is in
    ``summary.json`` either way).

    ``seeds``: a count (seeds 0 to n-1) or the seeds themselves (say ``[3]``: one process of several
    that share a GPU). ``experiment``: the preset (``"ledger"``, or ``"ledger-cifar10-gpu"``, whose
    runs go to ``<out>/ledger-cifar10-gpu``).

    Returns one dict per job: ``ablation``, ``seed``, ``status`` ("done", "done before", "paused"),
    ``folder`` and the final metrics when done.
    """
    plan = preset(experiment, scale)
    seed_list = _seed_list(plan["seeds"] if seeds is None else seeds)
    names = list(only) if only else [*ABLATIONS, *(FIGURE_JOBS if experiment == "ledger" else ())]
    unknown = [n for n in names if n not in ABLATIONS and n not in FIGURE_JOBS]
    if unknown:
        raise LedgerError(
            f"unknown ablation(s) {unknown}; choose from: {', '.join([*ABLATIONS, *FIGURE_JOBS])}"
        )
    jobs = _Jobs(
        scale=scale,
        experiment=experiment,
        root=_root_for(out, scale),
        data_root=data_root,
        device=resolve_device(device),
        compile=compile,
        keep=(scale == "full") if keep_checkpoints is None else keep_checkpoints,
        deadline=None if budget_s is None else time.monotonic() + budget_s,
        chunk=plan["chunk_epochs"],
        progress=progress,
    )
    report: list[dict] = []
    for seed in seed_list:
        for name in (n for n in names if n in ABLATIONS):
            report.append(jobs.ablation(name, seed))
            if report[-1]["status"] == "paused":
                return report
        if "base" in names and experiment not in SIX_B_ONLY:
            _write_ensemble(jobs.root, scale, experiment)
    for name in (n for n in names if n in FIGURE_JOBS):
        report.append(jobs.figure(name))
        if report[-1]["status"] == "paused":
            return report
    return report


@dataclass
class _Jobs:
    """What :func:`run_ledger` runs its jobs with, and the jobs themselves."""

    scale: str
    experiment: str
    root: Path
    data_root: str | None
    device: torch.device
    compile: bool
    keep: bool  # the checkpoints of finished runs
    deadline: float | None  # time.monotonic() after which no new chunk starts
    chunk: int  # epochs per resume step
    progress: bool
    cache: dict = field(default_factory=dict)

    def data_for(self, settings: RunSettings):
        """The run's (train, val), decoded once per subset: at full scale every run shares the
        whole dataset."""
        key = (
            settings.train_per_class,
            settings.val_per_class,
            settings.seed if settings.train_per_class else None,
        )
        if key not in self.cache:
            self.cache.clear()
            self.cache[key] = tuple(
                settings.load_split(s, progress=self.progress) for s in ("train", "val")
            )
        return self.cache[key]

    def ablation(self, name: str, seed: int) -> dict:
        """Train (or go on with) one ablation's seed; its report line."""
        folder = ledger_dir(self.root, self.scale, self.experiment) / name / f"seed{seed}"
        job = {"ablation": name, "seed": seed, "folder": str(folder)}
        if (folder / "summary.json").is_file():
            return {**job, "status": "done before"}
        shared = self.seed_arithmetic(seed)
        settings = settings_for(
            name,
            self.scale,
            seed,
            self.experiment,
            data_root=self.data_root,
            device=str(self.device),
            compile=self.compile,
            **({"precision": shared} if shared else {}),
        )
        data = self.data_for(settings)
        started = time.perf_counter()
        if not _train_chunked(settings, folder, data, self.deadline, self.chunk, self.progress):
            return {**job, "status": "paused", "epochs": _epochs_done(folder)}
        metrics = _finish_run(folder, name, seed, data, self, started)
        if self.progress:
            print(
                f"[ledger {self.scale}] {name} seed {seed}: val top-1 "
                f"{metrics[-1]['val_top1_err']:.2f}%, "
                f"top-5 {metrics[-1]['val_top5_err']:.2f}% after {len(metrics)} epochs"
            )
        return {**job, "status": "done", **metrics[-1]}

    def seed_arithmetic(self, seed: int) -> str | None:
        """The arithmetic a stored run of ``seed`` (of any ablation, finished or not) trained in:
        a seed's runs share it, so that a paired effect compares the ablation alone and not bf16
        against fp32 (a seed begun on one machine may be finished on another). None before any."""
        folders = sorted(ledger_dir(self.root, self.scale, self.experiment).glob(f"*/seed{seed}"))
        runs = (r for r in map(read_stored, folders) if r is not None)
        said = next((r["arithmetic"] for r in runs if r["arithmetic"]), None)
        if said is None:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            here = precision_for(self.device, said)
        if here != said:
            raise LedgerError(
                f"seed {seed}'s stored runs trained in {said}, which {self.device} cannot (it "
                f"would train in {here}, and the pair would compare arithmetic too); finish seed "
                f"{seed} where {said} runs, or leave it out (--seed with the other seeds)"
            )
        return said

    def figure(self, name: str) -> dict:
        """A figure's job (Figure 1) unless the budget is spent; its report line."""
        job = {"ablation": name, "seed": None, "folder": str(self.root / name)}
        if self.deadline is not None and time.monotonic() > self.deadline:
            return {**job, "status": "paused"}
        status = _run_figure1(
            self.root, self.scale, self.data_root, str(self.device), self.progress
        )
        return {**job, "status": status}


def _seed_list(seeds) -> list[int]:
    """``seeds`` as a list: a count n is seeds 0 to n-1; a list of seeds stays as it is."""
    if isinstance(seeds, int) and seeds >= 1:
        return list(range(seeds))
    if (
        not isinstance(seeds, (int, str))
        and isinstance(seeds, Sequence)
        and seeds
        and all(isinstance(k, int) and k >= 0 for k in seeds)
    ):
        return list(seeds)
    raise LedgerError(
        f"seeds must be a positive whole number or a list of seeds (0, 1, ...), got {seeds!r}"
    )


def _root_for(out, scale: str) -> Path:
    """The results folder a ledger run writes under; smoke runs never go into ``results/``."""
    root = Path(out) if out is not None else (results_dir() if scale != "smoke" else smoke_root())
    if scale == "smoke" and root.resolve() == results_dir().resolve():
        raise LedgerError(
            f"smoke runs never go under {root} (the stored results); leave out --out or pick "
            "another folder"
        )
    return root


def _finish_run(
    folder: Path, name: str, seed: int, data, jobs: _Jobs, started: float
) -> list[dict]:
    """After a run's last epoch: its training error in eval mode, the base run's ten views and
    kernels (not in the claim 6b experiments, :data:`SIX_B_ONLY`), and ``summary.json`` (with
    the checkpoint's hash; the checkpoint itself is kept only if ``jobs.keep``). Returns the
    run's metrics."""
    scale, experiment, device, keep = jobs.scale, jobs.experiment, jobs.device, jobs.keep
    metrics = read_metrics(folder)
    model, run_settings, stats = model_from_checkpoint(load_checkpoint(folder / "checkpoint.pt"))
    train_eval = _train_error_eval_mode(model, run_settings, stats, data[0], device)
    if name == "base" and experiment not in SIX_B_ONLY:
        # claim 7 (centre crop against ten views) and the probabilities claim 8 averages
        store_views(folder, model, data[1], stats, crop=run_settings.crop, device=device)
        if experiment == "ledger":  # Figure 3's kernels come from the ledger proper
            _save_kernels(jobs.root, scale, seed, folder, model.cpu())
    del model
    ckpt = folder / "checkpoint.pt"
    summary = {
        "scale": scale,
        "experiment": experiment,
        "ablation": name,
        "seed": seed,
        "what": ABLATIONS[name].what,
        "epochs": len(metrics),
        "final": metrics[-1],
        "train_eval": train_eval,
        "wall_s": sum(m["seconds"] for m in metrics),
        "checkpoint_sha256": sha256_file(ckpt),
        "checkpoint_bytes": ckpt.stat().st_size,
        "checkpoint_kept": keep,
        "provenance": provenance(),
        "this_session_s": time.perf_counter() - started,
    }
    if not keep:
        ckpt.unlink()
    write_json(folder / "summary.json", summary)
    return metrics


# ==============================================================================================
# Reading the results


def _scale_of(folder: Path, settings: dict) -> str:
    """The scale of a stored run (``"smoke"``, ``"laptop"``, ``"full"``): its ``summary.json``
    says so; else the folder name's tag (``laptop-...``, the experiments' layout), or the runner's
    ``ledger-<scale>`` folder; else its settings' ``scale``; else a run on a subset
    (``train_per_class`` set) counts as smoke."""
    summary = folder / "summary.json"
    if summary.is_file():
        return json.loads(summary.read_text()).get("scale", "smoke")
    tag = folder.name.split("-")[0]
    if tag in SCALES:
        return tag
    # the runner's own layout: <root>/ledger-<scale>/<ablation>/seed<k> (a run still in progress
    # has no summary.json yet)
    runner = folder.parent.parent.name
    tag = runner.removeprefix("ledger-")
    if tag != runner and tag in SCALES:
        return tag
    if settings.get("scale") in SCALES:
        return settings["scale"]
    return (
        "smoke"
        if settings.get("train_per_class") is not None or settings.get("scale") == "smoke"
        else "full"
    )


def read_run(folder: Path, scale: str = "full") -> dict:
    """One ledger run folder as ``{"ok": bool, "reason": str, "final": metrics of the last epoch,
    "metrics": per epoch, "lr_drops": the epochs where the learning rate dropped, "provenance",
    "settings", "scale"}``. ``ok`` is False (with the reason) for a run of another scale than
    ``scale`` (a smoke run never counts), an unfinished run, or a folder that is not a run."""
    folder = Path(folder)
    stored = read_stored(folder)
    if stored is None:
        return {"ok": False, "reason": f"{folder.name}: no settings.json/metrics.jsonl"}
    settings, metrics = stored["settings"], stored["metrics"]
    found = _scale_of(folder, settings)
    summary = (
        json.loads((folder / "summary.json").read_text())
        if (folder / "summary.json").is_file()
        else {}
    )
    run = {
        **stored,
        "scale": found,
        "final": metrics[-1] if metrics else None,
        "train_eval": summary.get("train_eval"),
    }
    run["lr_drops"] = _lr_drops(run)
    if found != scale:
        return {**run, "ok": False, "reason": _wrong_scale(folder.name, found, scale)}
    planned = settings.get("epochs", 0)
    if not (folder / "summary.json").is_file() or len(metrics) < planned:
        return {
            **run,
            "ok": False,
            "reason": f"{folder.name}: unfinished ({len(metrics)} of {planned or '?'} epochs)",
        }
    return {**run, "ok": True, "reason": ""}


def _wrong_scale(name: str, found: str, scale: str) -> str:
    if found == "smoke":
        return f"{name}: smoke-scale run (smoke numbers never enter the ledger)"
    return f"{name}: {found}-scale run (this column is {scale} scale)"


def _runs(root: Path, ablation: str, scale: str = "full") -> tuple[dict[int, dict], list[str]]:
    """The usable runs of ``ablation`` at ``scale`` by seed, and the reasons the others were
    refused."""
    base = ledger_dir(root, scale) / ablation
    good, refused = {}, []
    if base.is_dir():
        for folder in sorted(p for p in base.iterdir() if p.is_dir() and p.name.startswith("seed")):
            run = read_run(folder, scale)
            if run["ok"]:
                good[int(run["settings"].get("seed", folder.name[4:]))] = run
            else:
                refused.append(f"{ablation}/{run['reason']}")
    return good, refused


# ==============================================================================================
# The claims


@dataclass
class Measurement:
    """Per-seed values of one claim's measure: ``values[metric] = [v_seed0, v_seed1, ...]``."""

    values: dict[str, list[float]]
    seeds: list[int]
    runs: list[dict]  # the runs read (for provenance)
    files: list[str]
    agrees_each: list[bool] | None = None  # claim 9: a verdict per run instead of a sign
    note: str = ""  # what limits the number, shown after it
    decides: bool = True  # False: not yet a measurement of the claim (the note says why)


@dataclass(frozen=True)
class Claim:
    """One quantitative claim of the paper and how the ledger measures it.

    ``paper``: the paper's number as text; ``paper_values``: the same per metric (None: no number);
    ``expect``: the sign our effect must have for the direction to agree (+1: positive);
    ``measure(root, scale) -> Measurement | str`` (a string: why it is unmeasured).
    ``laptop_reference``: the paper's own number for the laptop column's setting, where the paper
    has one (claim 2: its CIFAR-10 result)."""

    id: str
    text: str
    section: str
    paper: str
    paper_values: dict[str, float | None]
    unit: str
    chapter: str
    measure: Callable[[Path], Measurement | str]
    expect: int = 1
    sources: tuple[str, ...] = ()
    laptop_reference: str = ""


def _missing(
    scale: str,
    ablations: Sequence[str],
    refused: list[str],
    job: str,
    where: str | None = None,
) -> str:
    """Why a claim is unmeasured at ``scale``: the refused runs (smoke, another scale, unfinished)
    or no run at all, and the command."""
    on = _run_on(scale)
    if refused:
        shown = "; ".join(refused[:4]) + (
            f"; and {len(refused) - 4} more" if len(refused) > 4 else ""
        )
        return (
            f"unmeasured: no finished {scale}-scale run of {', '.join(ablations)} ({shown}). "
            f"Run {on}: `{job}`"
        )
    if where is None:
        folder = ledger_dir(Path(""), scale).name
        where = (
            f"{folder}/{{{','.join(ablations)}}}"
            if len(ablations) > 1
            else f"{folder}/{ablations[0]}"
        )
    what = "GPU run" if scale == "full" else f"{scale}-scale run"
    return f"unmeasured: no {what} stored yet (nothing under results/{where}). Run {on}: `{job}`"


def _run_on(scale: str) -> str:
    return "on a GPU" if scale == "full" else "on a CPU"


def _job(scale: str, *names: str) -> str:
    return f"python -m alexlib ledger run --scale {scale} --only {' '.join(names)}"


def _with_base(root: Path, ablation: str, scale: str):
    """The runs of ``base`` and of ``ablation`` by seed and the seeds both have, or, when they share
    none, the "unmeasured" result that says why."""
    base, refused_b = _runs(root, "base", scale)
    other, refused_o = _runs(root, ablation, scale)
    seeds = sorted(set(base) & set(other))
    if not seeds:
        # name what lacks a finished run (both, when their seeds do not meet), with its refusals
        lacking = [n for n, runs in (("base", base), (ablation, other)) if not runs]
        lacking = lacking or ["base", ablation]
        refused = [r for r in refused_b + refused_o if r.split("/")[0] in lacking]
        return _missing(scale, lacking, refused, _job(scale, "base", ablation))
    return base, other, seeds


def _error_effect(
    base: dict, other: dict, metrics: Sequence[str] = ("val_top1_err", "val_top5_err")
) -> dict:
    # effect = err(without the paper's feature) - err(with it), in percentage points
    return {m: other["final"][m] - base["final"][m] for m in metrics}


def _paired(ablation: str, effect: Callable[[dict, dict], dict[str, float]] = _error_effect):
    """A measure over the seeds run both as ``base`` and as ``ablation``: ``effect(base run,
    ablation run)`` gives one seed's numbers by metric. The default is the error of ``ablation``
    minus the error of ``base`` (positive: the paper's feature lowers the error)."""

    def measure(root: Path, scale: str = "full"):
        paired = _with_base(root, ablation, scale)
        if not isinstance(paired, tuple):
            return paired
        base, other, seeds = paired
        per_seed = [effect(base[s], other[s]) for s in seeds]
        values = {m: [e[m] for e in per_seed] for m in per_seed[0]}
        folder = ledger_dir(Path(""), scale).name
        return Measurement(
            values,
            seeds,
            [base[s] for s in seeds] + [other[s] for s in seeds],
            [f"{folder}/{ablation}/", f"{folder}/base/"],
        )

    return measure


def overfit_gap(run: dict) -> float:
    """Validation minus training top-1 error of a run's final net (claim 6a's measure)."""
    # gap = val top-1 error - train top-1 error of the trained net, the training error measured in
    # eval mode over the whole training set (summary.json "train_eval"); runs stored before that
    # was measured fall back to the error counted on the augmented, dropout-noised batches
    train = (run.get("train_eval") or {}).get("top1_err", run["final"]["train_top1_err"])
    return run["final"]["val_top1_err"] - train


# Over-fitting: (val - train) top-1 error at the last epoch, without dropout minus with it.
_dropout_gap = _paired(
    "no-dropout", lambda base, other: {"gap": overfit_gap(other) - overfit_gap(base)}
)


def converged_epoch(val_errors: Sequence[float], within: float = 1.0) -> int:
    """The first epoch (1-based) whose validation error is within ``within`` points of the run's
    best: our stand-in for "iterations required to converge" (Paper: section 4.2)."""
    if not val_errors:
        raise ValueError("converged_epoch() needs at least one epoch")
    best = min(val_errors)
    return next(i + 1 for i, v in enumerate(val_errors) if v <= best + within)


def _epochs_to_converge(run: dict) -> int:
    return converged_epoch([m["val_top1_err"] for m in run["metrics"]])


# Convergence: epochs to converge with dropout divided by epochs without (paper: about 2).
_dropout_ratio = _paired(
    "no-dropout",
    lambda base, other: {"ratio": _epochs_to_converge(base) / _epochs_to_converge(other)},
)


def _lr_drops(run: dict) -> list[int]:
    """The epochs whose learning rate is lower than the epoch's before."""
    metrics = run["metrics"]
    return [b["epoch"] for a, b in zip(metrics, metrics[1:]) if b["lr"] < a["lr"]]


def _stopped_improving(run: dict) -> bool | None:
    """Whether a run's validation error stopped improving before its end, by the paper's own rule:
    its plateau schedule divided the learning rate at least once. None for other schedules."""
    if run["settings"].get("schedule") != "plateau":
        return None
    return bool(run["lr_drops"])


def _dropout_speed(root: Path, scale: str = "full"):
    """Claim 6b, with what bounds it: a net whose validation error was still falling when its run
    ended has not converged, so its epochs to converge are a lower bound."""
    got = _dropout_ratio(root, scale)
    if not isinstance(got, Measurement):
        return got
    n = len(got.seeds)
    fixed = [r for r in got.runs if r["settings"].get("schedule") == "fixed"]
    if fixed:
        drops = sorted({e for r in fixed for e in r["lr_drops"]})
        got.note = (
            "not a measurement of this claim: a fixed schedule divides the learning rate at the "
            f"same epochs ({', '.join(map(str, drops))}) with and without dropout, so both nets "
            "converge when the schedule says; the claim needs the paper's plateau schedule"
        )
        got.decides = False
        return got
    constant = [r for r in got.runs if r["settings"].get("schedule") == "constant"]
    short = [r for r in constant if len(r["metrics"]) - _epochs_to_converge(r) < CONVERGED_FOR]
    if short:
        got.note = (
            f"not yet a convergence ratio: at a constant rate {len(short)} of {len(got.runs)} "
            f"runs had not stayed within a point of their best for {CONVERGED_FOR} epochs"
        )
        got.decides = False
        return got
    falling = [
        sum(_stopped_improving(r) is False for r in runs) for runs in (got.runs[:n], got.runs[n:])
    ]
    still = "the validation error was still falling at the last epoch (the lr never dropped)"
    if falling[1]:
        got.note = (
            f"not yet a convergence ratio: without dropout {still} in {falling[1]} of {n} seeds"
        )
        got.decides = False
    elif falling[0]:
        got.note = f"a lower bound: with dropout {still} in {falling[0]} of {n} seeds"
        got.decides = False
    return got


def _ten_views(root: Path, scale: str = "full"):
    """Centre-crop error minus ten-view error of each base net (``views.json``)."""
    base, refused = _runs(root, "base", scale)
    seeds = [s for s in sorted(base) if (base[s]["folder"] / "views.json").is_file()]
    if not seeds:
        return _missing(scale, ["base"], refused, _job(scale, "base"))
    views = {s: json.loads((base[s]["folder"] / "views.json").read_text()) for s in seeds}
    values = {
        f"top{k}": [
            views[s]["center"][f"top{k}_err"] - views[s]["ten"][f"top{k}_err"] for s in seeds
        ]
        for k in (1, 5)
    }
    folder = ledger_dir(Path(""), scale).name
    return Measurement(values, seeds, [base[s] for s in seeds], [f"{folder}/base/seed*/views.json"])


def _ensembles(root: Path, scale: str = "full"):
    """Each base net's centre-crop error minus the error of all base nets averaged
    (``ensemble.json``)."""
    base, refused = _runs(root, "base", scale)
    path = ledger_dir(root, scale) / "base" / "ensemble.json"
    if not path.is_file():
        if len(base) == 1:
            also = f" ({'; '.join(refused[:4])})" if refused else ""
            return (
                f"unmeasured: 1 finished {scale}-scale base run (seed {next(iter(base))}){also}; "
                f"an average needs 2 or more. Run {_run_on(scale)}: `{_job(scale, 'base')}`"
            )
        if len(base) < 2:
            return _missing(scale, ["base"], refused, _job(scale, "base"))
        return (
            "unmeasured: ensemble.json missing; rerun the runner (it averages the stored base "
            "predictions)"
        )
    ens = json.loads(path.read_text())
    if ens.get("scale") != scale:
        return f"unmeasured: ensemble.json was made at {ens.get('scale')} scale" + (
            "; smoke numbers never enter the ledger" if ens.get("scale") == "smoke" else ""
        )
    seeds = [int(s) for s in ens["center"]["single"] if int(s) in base]
    if len(seeds) < 2:
        return f"unmeasured: fewer than 2 finished {scale}-scale base seeds in ensemble.json"
    values = {
        f"top{k}": [
            ens["center"]["single"][str(s)][f"top{k}_err"]
            - ens["center"]["ensemble"][f"top{k}_err"]
            for s in seeds
        ]
        for k in (1, 5)
    }
    folder = ledger_dir(Path(""), scale).name
    return Measurement(values, seeds, [base[s] for s in seeds], [f"{folder}/base/ensemble.json"])


def _stored_experiment_runs(
    root: Path, kind: str, scale: str = "full"
) -> tuple[list[dict], list[str]]:
    """``<root>/<kind>/<tag>-*/`` folders of alexlib.experiments (settings.json, metrics.jsonl),
    split into runs at ``scale`` and refusal reasons (smoke runs; other scales are skipped)."""
    good, refused = [], []
    for run in stored_runs(kind, base=root / kind):
        found = _scale_of(run["folder"], run["settings"])
        if found == scale:
            good.append(run)
        elif found == "smoke":
            refused.append(f"{kind}/{_wrong_scale(run['name'], found, scale)}")
    return good, refused


def _relu_tanh(root: Path, scale: str = "full"):
    """Claim 1 through alexlib.experiments: epochs to 25% training error, tanh over ReLU, per
    seed, in the paper's regime (0-255 pixels minus the mean, the 2012 code's initialisation;
    runs stored before the regimes existed count as that regime's only if they say so)."""
    stored, refused = _stored_experiment_runs(root, "figure1", scale)
    stored = [r for r in stored if r["settings"].get("regime") == "paper"]
    job = (
        f"python -m alexlib ledger run --scale {scale} --only figure1 "
        f"(or python -m alexlib figure 1 --scale {scale})"
    )
    if not stored:
        return _missing(scale, ["figure1"], refused, job, where="figure1")
    runs = [
        {
            "activation": r["settings"]["activation"],
            "lr": r["settings"]["lr"],
            "seed": r["settings"]["seed"],
            "role": r["settings"]["role"],
            "history": r["metrics"],
            "settings": r["settings"],
        }
        for r in stored
    ]
    summary = summarise_figure1(runs, thresholds=(25.0,))
    row = summary["by_threshold"][25.0]
    pairs = [(s, r) for s, r in zip(row["seeds"], row["ratio"]) if r is not None]
    if not pairs:
        bounds = [b for b in row.get("above", []) if b is not None]
        if bounds:
            return (
                f"unmeasured: in {len(bounds)} seed(s) ReLU reached 25% training error and tanh "
                f"did not in the epochs it trained, so the ratio is above {min(bounds):.1f} "
                "there (see the Figure 1 chapter)"
            )
        return (
            "unmeasured: the stored Figure 1 runs never reached 25% training error with both "
            "activations (see the ReLU chapter's results)"
        )
    return Measurement(
        {"ratio": [r for _, r in pairs]}, [s for s, _ in pairs], stored, ["figure1/"]
    )


def _towers(root: Path, scale: str = "full"):
    """Claim 9 through alexlib.experiments: the colour-selectivity split of the two towers' conv1
    kernels (``tower_split``), per stored two-tower net at ``scale``: the ``paper`` net (Figure 3's
    own, on Imagenette) and the ledger's base variant (``mini`` at laptop scale, on CIFAR-10)."""
    stored, refused = _stored_experiment_runs(root, "figure3", scale)
    variants = {"paper", preset("ledger", scale)["variant"]}
    stored = [
        r
        for r in stored
        if r["settings"].get("variant") in variants and (r["folder"] / "conv1.pt").is_file()
    ]
    if not stored:
        job = (
            _job(scale, "base")
            + " (stores each base net's kernels under figure3/), or python -m alexlib figure 3 "
            f"--scale {scale}"
        )
        return _missing(scale, ["figure3"], refused, job, where="figure3")
    seps, agrees, seeds = [], [], []
    for r in stored:
        kernels = torch.load(r["folder"] / "conv1.pt", weights_only=True)  # (96, 3, 11, 11)
        split = tower_split(*kernels.chunk(2, dim=0))  # towers: the first and second half
        seps.append(split["separation"])
        agrees.append(bool(split["agrees"]))
        seeds.append(int(r["settings"].get("seed", 0)))
    return Measurement({"separation": seps}, seeds, stored, ["figure3/"], agrees_each=agrees)


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "1",
        "ReLU nets reach 25% training error about six times sooner (in epochs) than tanh nets "
        "(four-layer net, CIFAR-10)",
        "3.1",
        "about 6x",
        {"ratio": 6.0},
        "x (tanh epochs / ReLU epochs)",
        "10. Figure 1 (and 2. ReLU)",
        _relu_tanh,
        sources=("figure1",),
    ),
    Claim(
        "2",
        "Local response normalisation lowers top-1 / top-5 error",
        "3.3",
        "1.4 / 1.2 points",
        {"val_top1_err": 1.4, "val_top5_err": 1.2},
        "points of error (no LRN - LRN)",
        "3. Local response normalisation",
        _paired("no-lrn"),
        sources=("no-lrn", "base"),
        laptop_reference="CIFAR-10: 13% -> 11% test error (the paper's four-layer net)",
    ),
    Claim(
        "3",
        "Overlapping pooling (z=3, s=2) lowers error against z=2, s=2",
        "3.4",
        "0.4 / 0.3 points",
        {"val_top1_err": 0.4, "val_top5_err": 0.3},
        "points of error (z=2 - z=3)",
        "4. Overlapping pooling",
        _paired("pool2"),
        sources=("pool2", "base"),
    ),
    Claim(
        "4",
        "The two-tower net beats the one-GPU net with half the kernels",
        "3.2",
        "1.7 / 1.2 points",
        {"val_top1_err": 1.7, "val_top5_err": 1.2},
        "points of error (half - two towers)",
        "5. Architecture",
        _paired("half"),
        sources=("half", "base"),
    ),
    Claim(
        "5",
        "PCA colour augmentation lowers top-1 error by over 1 point",
        "4.1",
        "over 1 point top-1",
        {"val_top1_err": 1.0, "val_top5_err": None},
        "points of error (no PCA - PCA)",
        "7. Data augmentation",
        _paired("no-pca"),
        sources=("no-pca", "base"),
    ),
    Claim(
        "6a",
        "Dropout prevents substantial over-fitting",
        "4.2",
        "substantial (no number)",
        {"gap": None},
        "points of (val - train) top-1 gap (no dropout - dropout)",
        "6. Dropout",
        _dropout_gap,
        sources=("no-dropout", "base"),
    ),
    Claim(
        "6b",
        "Dropout roughly doubles the iterations needed to converge",
        "4.2",
        "about 2x",
        {"ratio": 2.0},
        "x (epochs to converge with / without dropout)",
        "6. Dropout",
        _dropout_speed,
        sources=("no-dropout", "base"),
    ),
    Claim(
        "7",
        "Ten test views (corners, centre, reflections) beat the centre crop",
        "4.1",
        "1.5 / 1.3 points (ILSVRC-2010 test: 39.02/18.30 centre, code's notes; 37.5/17.0 ten "
        "views)",
        {"top1": 1.52, "top5": 1.3},
        "points of error (centre - ten views)",
        "9. Evaluation",
        _ten_views,
        sources=("base",),
    ),
    Claim(
        "8",
        "Averaging several nets beats one",
        "6",
        "2.6 / 1.8 points (ILSVRC-2012 val: 1 CNN 40.7/18.2, 5 CNNs 38.1/16.4)",
        {"top1": 2.6, "top5": 1.8},
        "points of error (one net - average of the seeds)",
        "9. Evaluation",
        _ensembles,
        sources=("base",),
    ),
    Claim(
        "9",
        "The two towers' conv1 kernels split into colour-agnostic and colour-specific, in every "
        "run",
        "6.1",
        "a split in every run",
        {"separation": None},
        "separation of the towers' colour scores (0.5: none, 1: complete)",
        "11. Figure 3",
        _towers,
        sources=("figure3", "base"),
    ),
)


# ==============================================================================================
# The table


@dataclass
class LedgerRow:
    """One row of the ledger. ``values``: per-metric per-seed numbers when measured (else empty);
    ``status``: "measured" or the reason it is not (starting with "unmeasured")."""

    id: str
    claim: str
    section: str
    paper: str
    paper_values: dict[str, float | None]
    unit: str
    ours: str
    measured_on: str
    direction: str
    chapter: str
    files: str
    status: str
    values: dict[str, list[float]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)

    @property
    def measured(self) -> bool:
        return self.status == "measured"


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) >= 2 else None)


# a few words per claim for the chart's panel titles
CLAIM_NAMES = {
    "1": "ReLU vs tanh",
    "2": "LRN",
    "3": "overlapping pooling",
    "4": "two towers",
    "5": "PCA colour",
    "6a": "dropout: over-fitting",
    "6b": "dropout: convergence",
    "7": "ten views",
    "8": "averaged nets",
    "9": "tower colour split",
}

METRIC_LABELS = {
    "val_top1_err": "top-1",
    "val_top5_err": "top-5",
    "top1": "top-1",
    "top5": "top-5",
    "gap": "gap",
    "ratio": "ratio",
    "separation": "separation",
}


# Student's t distribution's 97.5th percentile by degrees of freedom 1-30: a 95% interval of a
# mean over n seeds is mean +- t(n-1) * sd / sqrt(n)
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip

#: How far "about X" reaches: a factor of this either side of X. A ratio whose 95% interval lies
#: wholly outside ``[X / ABOUT, X * ABOUT]`` disagrees with the paper's "about X" (claims 1, 6b).
ABOUT = 1.5

#: The three verdicts of a measured row.
VERDICTS = ("agrees", "disagrees", "cannot tell yet")


def t975(df: int) -> float:
    """Student's t 97.5th percentile for ``df`` degrees of freedom (beyond 30, within 0.2%)."""
    if df < 1:
        raise ValueError("a t interval needs at least two values")
    return _T975[df - 1] if df <= 30 else 1.960 + 2.4 / df


@dataclass(frozen=True)
class Verdict:
    """One metric's verdict: the mean effect over ``n`` seeds with its 95% interval (``low``,
    ``high``; None with one seed), and ``word`` (:data:`VERDICTS`). ``seeds_needed``: for
    "cannot tell yet", how many seeds would give a verdict if the mean and sd stayed as measured:
    an interval that excludes no effect, or, for a paper's "about X", lies outside X's reach
    (None where no number of seeds would, or it is over 100)."""

    word: str
    mean: float
    low: float | None
    high: float | None
    n: int
    seeds_needed: int | None = None
    why: str = ""


def verdict(
    values: Sequence[float], expect: int = 1, ratio: bool = False, about: float | None = None
) -> Verdict:
    """The verdict on per-seed effects ``values``: *agrees* when the 95% interval of their mean
    (Student's t; for a ratio, on its logarithm) excludes no effect on the paper's side
    (``expect``: +1, the effect is positive; for a ratio, above 1), *disagrees* when it excludes no
    effect on the other side, or, for a paper's "about X" (``about``), lies wholly outside X's
    reach (:data:`ABOUT`), else *cannot tell yet*.

    >>> verdict([1.0, 1.2, 0.9]).word, verdict([0.7, -0.3, 1.7]).word
    ('agrees', 'cannot tell yet')
    """
    xs = [math.log(v) for v in values] if ratio else [float(v) for v in values]
    n = len(xs)
    back = math.exp if ratio else (lambda v: v)
    mean = statistics.fmean(xs)
    if n < 2:
        return Verdict("cannot tell yet", back(mean), None, None, n, None, "one seed: no spread")
    sd = statistics.stdev(xs)
    reach = (
        (math.log(about / ABOUT), math.log(about * ABOUT)) if about is not None and ratio else None
    )

    def decided(half: float) -> tuple[str, str] | None:
        """The word (and why) of an interval of this half-width around the mean; None: none."""
        low, high = mean - half, mean + half
        if reach is not None and (high < reach[0] or low > reach[1]):
            reach_text = f"{about / ABOUT:g} to {about * ABOUT:g}"
            return "disagrees", f"the interval lies outside 'about {about:g}' ({reach_text})"
        if min(low * expect, high * expect) > 0:
            return "agrees", ""
        if max(low * expect, high * expect) < 0:
            return "disagrees", "the interval excludes no effect, the other way"
        return None

    half = t975(n - 1) * sd / math.sqrt(n)
    out = dict(mean=back(mean), low=back(mean - half), high=back(mean + half), n=n)
    if word := decided(half):
        return Verdict(word[0], **out, why=word[1])
    needed = None
    if sd > 0:
        needed = next(
            (m for m in range(n + 1, 101) if decided(t975(m - 1) * sd / math.sqrt(m))), None
        )
    return Verdict("cannot tell yet", **out, seeds_needed=needed)


def _metric_verdict(claim: Claim, metric: str, vals: Sequence[float]) -> Verdict:
    ratio = metric == "ratio"
    about = claim.paper_values.get(metric) if claim.paper.startswith("about") else None
    return verdict(vals, claim.expect, ratio=ratio, about=about)


def _describe(m: Measurement) -> str:
    """Each metric's mean effect with its 95% interval over the seeds, and n (a per-run measure,
    claim 9's: its mean and sd)."""
    parts = []
    for metric, vals in m.values.items():
        if m.agrees_each is not None:
            mean, sd = mean_sd(vals)
            parts.append(f"{mean:.2f}" + (f" ± {sd:.2f} sd" if sd is not None else ""))
            continue
        ratio = metric == "ratio"
        v = verdict(vals, ratio=ratio)
        fmt = "{:.2f}" if ratio else "{:+.2f}"
        text = f"{v.mean:.2f}x" if ratio else f"{METRIC_LABELS.get(metric, metric)} {v.mean:+.2f}"
        if v.low is not None:
            text += f" [{fmt.format(v.low)}, {fmt.format(v.high)}]"
        parts.append(text)
    # a per-run measure (claim 9) may hold two nets of the same seed: count runs, not seeds
    n, what = len(m.seeds), "run" if m.agrees_each is not None else "seed"
    spread = "95% interval" if m.agrees_each is None else "mean ± sd"
    return (
        " / ".join(parts)
        + (f" ({spread}, n = {n} {what}s)" if n > 1 else f" (1 {what}: no spread)")
        + (f"; {m.note}" if m.note else "")
    )


def _direction(claim: Claim, m: Measurement) -> str:
    """One of :data:`VERDICTS` for the row (its first metric's; another metric's word is added
    where it differs), with how many seeds would decide where three cannot."""
    if m.agrees_each is not None:
        k = sum(m.agrees_each)
        word = "agrees" if k == len(m.agrees_each) else "disagrees"
        return f"{word} ({k} of {len(m.agrees_each)} runs split)"
    if not m.decides:
        return "cannot tell yet (not yet a measurement of the claim: see the note)"
    verdicts = {metric: _metric_verdict(claim, metric, vals) for metric, vals in m.values.items()}
    first = next(iter(verdicts.values()))
    text = first.word
    if first.word == "cannot tell yet":
        text += (
            f" (about {first.seeds_needed} seeds would decide, if the effect stays as measured)"
            if first.seeds_needed
            else " (one seed: no spread)"
            if first.n < 2
            else f" ({first.n} seeds; the effect is too small against its spread)"
        )
    elif first.why:
        text += f" ({first.why})"
    others = [
        f"{METRIC_LABELS.get(k, k)}: {v.word}"
        for k, v in list(verdicts.items())[1:]
        if v.word != first.word
    ]
    return text + (f"; {', '.join(others)}" if others else "")


def _measured_on(m: Measurement, scale: str = "full") -> str:
    settings = m.runs[0]["settings"]
    devices = sorted({machine_name(r["provenance"]) for r in m.runs})
    commits = sorted({str(r["provenance"].get("commit", "?"))[:10] for r in m.runs})
    dates = sorted(r["provenance"].get("date", "?") for r in m.runs)
    runs_settings = [r["settings"] for r in m.runs]
    dataset = ", ".join(sorted({s.get("dataset", "cifar10") for s in runs_settings}))
    images = m.runs[0].get("train_images") or settings.get("images")
    # in numeric order ("9/16/30"), the same on every build (a set's own order is not)
    epochs = "/".join(
        sorted({str(s.get("epochs", "?")) for s in runs_settings}, key=lambda e: (len(e), e))
    )
    variant = " and ".join(sorted({s.get("variant", "cifar4") for s in runs_settings}))
    where = f"{dataset}, {variant}, {scale} scale, {epochs} epochs"
    if images:
        where += f", {images:,} images"
    walls = [r["wall_s"] for r in m.runs if r.get("wall_s")]
    if walls:
        wall = statistics.fmean(walls)
        where += f", {wall / 60:.0f} min a run" if wall >= 60 else f", {wall:.0f} s a run"
    where += _arithmetic_of(m.runs)
    return f"{where}; {', '.join(devices)}; commit {', '.join(commits)}; {dates[0][:10]}"


def _arithmetic_of(runs: list[dict]) -> str:
    """``", in bf16"`` when every run recorded one arithmetic; when the seeds differ (a row that
    gained seeds on another machine), each arithmetic with its seeds, so a reader sees the mix;
    empty where no run says (:func:`alexlib.train.run_arithmetic`)."""
    seeds: dict[str, set] = {}
    for r in runs:
        seeds.setdefault(run_arithmetic(r) or "unrecorded", set()).add(r["settings"].get("seed"))
    if set(seeds) == {"unrecorded"}:
        return ""
    if len(seeds) == 1:
        return f", in {next(iter(seeds))}"
    parts = [
        f"{a} (seed{'s' if len(s) > 1 else ''} {', '.join(str(x) for x in sorted(s))})"
        for a, s in sorted(seeds.items())
    ]
    return f", in {' and '.join(parts)}"


def ledger_rows(
    results: str | os.PathLike | None = None, scale: str = "full", *, constant_6b: bool = True
) -> list[LedgerRow]:
    """The ledger at ``scale`` (``"full"`` or ``"laptop"``): one :class:`LedgerRow` per claim in
    :data:`CLAIMS`, measured from the files under ``results`` (default: the repository's
    ``results/``), or marked unmeasured with the reason. Smoke-scale runs, runs of another scale
    and unfinished runs are refused. At laptop scale claim 6b is read from its constant-rate runs
    (``<results>/laptop-6b``, :data:`LAPTOP_6B`) once they are stored (``constant_6b``); until
    then its row names their command. Paper: the claims' sections."""
    if scale not in ("full", "laptop"):
        raise LedgerError(f"the ledger has a full and a laptop column; got scale {scale!r}")
    root = Path(results) if results is not None else results_dir()
    folder = ledger_dir(Path(""), scale).name
    rows = []
    for claim in CLAIMS:
        got = claim.measure(root, scale)
        files = ", ".join(
            f"`results/{f}`"
            for f in (
                got.files
                if isinstance(got, Measurement)
                else [f"{folder}/{s}/" if s in ABLATIONS else f"{s}/" for s in claim.sources]
            )
        )
        common = dict(
            id=claim.id,
            claim=claim.text,
            section=claim.section,
            paper=claim.paper,
            paper_values=claim.paper_values,
            unit=claim.unit,
            chapter=claim.chapter,
            files=files,
        )
        if isinstance(got, str):
            rows.append(LedgerRow(**common, ours="-", measured_on="-", direction="-", status=got))
        else:
            rows.append(
                LedgerRow(
                    **common,
                    ours=_describe(got),
                    measured_on=_measured_on(got, scale),
                    direction=_direction(claim, got),
                    status="measured",
                    values=got.values,
                    seeds=got.seeds,
                )
            )
    if scale == "laptop" and constant_6b:
        rows = [_laptop_6b(root, r) if r.id == "6b" else r for r in rows]
    return rows


def _laptop_6b(root: Path, row: LedgerRow) -> LedgerRow:
    """Claim 6b's laptop row: from the constant-rate runs when they are stored, where dropout
    alone decides when a net levels off; else the plateau runs' row, naming those runs' command."""
    constant = next(
        r for r in ledger_rows(root / LAPTOP_6B, "laptop", constant_6b=False) if r.id == "6b"
    )
    if constant.measured:
        files = constant.files.replace(
            "results/ledger-laptop/", f"results/{LAPTOP_6B}/ledger-laptop/"
        )
        return dataclasses.replace(constant, files=files)
    command = (
        "the runs that can: `python -m alexlib ledger run --scale laptop --experiment "
        "ledger-laptop-6b --only base no-dropout`"
    )
    if row.measured:
        return dataclasses.replace(row, ours=f"{row.ours}; {command}")
    return dataclasses.replace(row, status=f"{row.status} ({command})")


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def ledger_markdown(rows: Sequence[LedgerRow]) -> str:
    """The ledger as a Markdown table (MyST): claim, paper's number, ours with its spread, where it
    was measured, direction, chapter, result files. An unmeasured row says why in the "ours"
    column."""
    header = [
        "#",
        "claim (paper section)",
        "paper",
        "ours",
        "measured on",
        "direction",
        "chapter",
        "result files",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        ours = r.ours if r.measured else r.status
        cells = [
            r.id,
            f"{r.claim} ({r.section})",
            r.paper,
            ours,
            r.measured_on,
            r.direction,
            r.chapter,
            r.files,
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def _short(row: LedgerRow) -> str:
    # "ours (direction)" when measured; else the reason up to the command that would measure it
    if row.measured:
        return f"{row.ours}; {row.direction}"
    return row.status.split(". Run ")[0]


def ledger_columns(
    laptop: Sequence[LedgerRow],
    full: Sequence[LedgerRow],
    cifar_gpu: Sequence[LedgerRow] | None = None,
) -> str:
    """The columns side by side as a Markdown table narrow enough for a page: claim, the paper's
    number, then ours with its spread and direction at laptop scale (CPU, CIFAR-10), at full
    scale (GPU, Imagenette), and, given ``cifar_gpu`` (``ledger_rows(results / CIFAR10_GPU,
    "full")``), the laptop's CIFAR-10 claims trained to the end on a GPU ("-" for the claims
    measured by the experiments rather than by ablations: 1 and 9). Where the paper has a number
    for the CIFAR-10 setting (claim 2), it is given in the laptop column. :func:`ledger_details`
    lists where each measured number came from."""
    by_id = {r.id: r for r in full}
    gpu_by_id = {r.id: r for r in cifar_gpu or ()}
    claims = {c.id: c for c in CLAIMS}
    head = "| # | claim (section) | paper | laptop scale (CPU) | full scale (GPU) |"
    rule = "|---|---|---|---|---|"
    if cifar_gpu is not None:
        head, rule = head + " CIFAR-10, GPU |", rule + "---|"
    lines = [head, rule]
    for r in laptop:
        ref = claims[r.id].laptop_reference
        cells = [
            r.id,
            f"{r.claim} ({r.section})",
            r.paper,
            _short(r) + (f" (paper, {ref})" if ref else ""),
            _short(by_id[r.id]) if r.id in by_id else "-",
        ]
        if cifar_gpu is not None:
            gpu = gpu_by_id.get(r.id)
            cells.append(_short(gpu) if gpu is not None and r.id not in ("1", "9") else "-")
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)


def ledger_details(rows: Sequence[LedgerRow]) -> str:
    """One item per measured row, wrapped at 88 columns: what it was measured on (data, net,
    scale, machine, commit, date, wall time) and the result files it was read from."""
    out = [
        textwrap.fill(f"- {r.id}: {r.measured_on}; {r.files}", width=88, subsequent_indent="  ")
        for r in rows
        if r.measured
    ]
    return "\n".join(out) if out else "- nothing measured at this scale yet"


def finished_runs(
    results: str | os.PathLike | None = None, scale: str = "full"
) -> dict[str, dict[int, dict]]:
    """Every finished ledger run at ``scale`` under ``results`` (default: the repository's
    ``results/``) as ``{ablation: {seed: run}}``, each run as :func:`read_run` gives it; smoke
    and unfinished runs are left out, as the ledger leaves them out."""
    root = Path(results) if results is not None else results_dir()
    return {
        ablation: dict(sorted(_runs(root, ablation, scale)[0].items())) for ablation in ABLATIONS
    }


def runs_markdown(results: str | os.PathLike | None = None, scale: str = "laptop") -> str:
    """Every finished ledger run at ``scale`` as a Markdown table: its final validation errors,
    its training error measured in eval mode over the whole training set, the epochs where its
    learning rate dropped, its wall time (summed epoch times) and machine."""
    lines = [
        "| run | epochs | val top-1 % | val top-5 % | train top-1 % (eval mode) | lr dropped at "
        "epoch | wall time | machine |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ablation, runs in finished_runs(results, scale).items():
        for seed, run in runs.items():
            final = run["final"]
            train = (run["train_eval"] or {}).get("top1_err")
            cells = [
                f"{ablation}/seed{seed}",
                str(len(run["metrics"])),
                f"{final['val_top1_err']:.2f}",
                f"{final['val_top5_err']:.2f}",
                "-" if train is None else f"{train:.2f}",
                ", ".join(map(str, run["lr_drops"])) or "never",
                f"{run['wall_s'] / 60:.0f} min",
                machine_name(run["provenance"]),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if len(lines) == 2:
        folder = ledger_dir(Path(""), scale).name
        return f"no finished {scale}-scale ledger run is stored under results/{folder} yet"
    return "\n".join(lines)


def claim_rows(
    ids: Sequence[str], results: str | os.PathLike | None = None
) -> dict[str, list[LedgerRow]]:
    """Rows ``ids`` of the ledger (``"2"``, ``"6a"``, ...) in each column, ``{"laptop": [...],
    "full": [...], "cifar10-gpu": [...]}``: what a chapter shows of its own claims."""
    known = [c.id for c in CLAIMS]
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise LedgerError(f"no claim {unknown} in the ledger; its claims are {', '.join(known)}")
    rows = {scale: [r for r in ledger_rows(results, scale) if r.id in ids] for scale in SCALES[1:]}
    rows[CIFAR10_GPU] = [r for r in cifar10_gpu_rows(results) if r.id in ids]
    return rows


def cifar10_gpu_rows(results: str | os.PathLike | None = None) -> list[LedgerRow]:
    """The ledger's third column: the ablation claims (2-8) measured on the runs of the
    ``ledger-cifar10-gpu`` preset under ``<results>/cifar10-gpu`` (the laptop's CIFAR-10 claims
    trained to the end on a GPU). An unmeasured row names that folder and its command."""
    root = Path(results) if results is not None else results_dir()
    rows = []
    constant = next(r for r in ledger_rows(root / CIFAR10_GPU_6B, "full") if r.id == "6b")
    for row in ledger_rows(root / CIFAR10_GPU, "full"):
        if row.id in ("1", "9"):  # measured by the experiments, not by ablations
            continue
        folder = CIFAR10_GPU
        if row.id == "6b" and (constant.measured or not row.measured):
            row, folder = constant, CIFAR10_GPU_6B  # at a constant rate, dropout alone decides
        elif row.id == "6b" and row.measured:
            row = dataclasses.replace(
                row,
                ours=f"{row.ours}; the runs that can: `python -m alexlib ledger run --experiment "
                "ledger-cifar10-gpu-6b --only base no-dropout`",
            )
        row = dataclasses.replace(
            row,
            files=row.files.replace("results/ledger/", f"results/{folder}/ledger/"),
            measured_on=row.measured_on.replace("full scale, ", ""),
        )
        if not row.measured:
            reason = row.status.split(" Run ")[0].replace(
                "results/ledger/", f"results/{folder}/ledger/"
            )
            experiment = "ledger-cifar10-gpu"
            if folder == CIFAR10_GPU_6B:
                experiment += "-6b --only base no-dropout"
            row = dataclasses.replace(
                row,
                status=f"{reason} Run on a GPU: `python -m alexlib ledger run --experiment "
                f"{experiment}` (or the GPU sitting, tools/sitting.py)",
            )
        rows.append(row)
    return rows


def claims_markdown(rows: dict[str, Sequence[LedgerRow]]) -> str:
    """:func:`claim_rows`' rows as Markdown: the two columns' table, then for each scale where
    every measured number came from (:func:`ledger_details`)."""
    gpu = rows.get(CIFAR10_GPU) or None
    parts = [ledger_columns(rows["laptop"], rows["full"], gpu)]
    names = {"laptop": "at laptop scale", "full": "at full scale", CIFAR10_GPU: "on CIFAR-10, GPU"}
    for column, name in names.items():
        measured = [r for r in rows.get(column, ()) if r.measured]
        if measured:
            parts.append(f"Measured {name}:\n\n" + ledger_details(measured))
    return "\n\n".join(parts)


# ==============================================================================================
# Command line: ``python -m alexlib ledger run|table``


def add_arguments(subparsers) -> argparse.ArgumentParser:
    """Add the ``ledger`` command (with ``run`` and ``table``) to an argparse ``subparsers``."""
    p = subparsers.add_parser(
        "ledger", help="the paper-claims ledger: run the ablations, print the table"
    )
    sub = p.add_subparsers(dest="ledger_command", required=True)
    r = sub.add_parser("run", help="train the ablations (resumable; finished runs are skipped)")
    r.add_argument("--scale", choices=SCALES, default="full")
    r.add_argument(
        "--experiment",
        choices=("ledger", "ledger-cifar10-gpu", "ledger-cifar10-gpu-6b", "ledger-laptop-6b"),
        default="ledger",
        help="ledger: the paper net on Imagenette (full) or the mini net (laptop); "
        "ledger-cifar10-gpu: the mini net on CIFAR-10 trained to the end on a GPU; "
        "ledger-cifar10-gpu-6b: its claim 6b runs at a constant rate (--only base no-dropout); "
        "ledger-laptop-6b: the laptop's claim 6b runs at a constant rate (--scale laptop --only "
        "base no-dropout)",
    )
    which = r.add_mutually_exclusive_group()
    which.add_argument(
        "--seeds", type=int, help="seeds 0..N-1 (default: 3 at full scale, 1 at smoke)"
    )
    which.add_argument(
        "--seed",
        type=int,
        nargs="+",
        metavar="K",
        help="these seeds only (--seed 3 4: add seeds to a row, or finish one begun elsewhere)",
    )
    r.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        help=f"some of: {', '.join([*ABLATIONS, *FIGURE_JOBS])}",
    )
    r.add_argument(
        "--out",
        help="results folder (default: results/ at full scale, _build/ledger-smoke at smoke)",
    )
    r.add_argument(
        "--budget-s", type=float, help="stop between resume steps after this many seconds"
    )
    r.add_argument(
        "--root", dest="data_root", help="data root (default: $ALEXLIB_DATA, else the cache folder)"
    )
    r.add_argument("--device", default="auto")
    r.add_argument("--compile", action="store_true", help="torch.compile each network")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.set_defaults(run=_cli_run)
    t = sub.add_parser("table", help="the ledger table generated from the result files")
    t.add_argument("--results", help="results folder (default: the repository's results/)")
    t.set_defaults(run=_cli_table)
    return p


def _cli_run(args) -> int:
    started = time.perf_counter()
    report = run_ledger(
        args.scale,
        experiment=args.experiment,
        seeds=args.seed or args.seeds,
        only=args.only,
        out=args.out,
        budget_s=args.budget_s,
        data_root=args.data_root,
        device=args.device,
        compile=args.compile,
        progress=not args.quiet,
    )
    for job in report:
        seed = "" if job["seed"] is None else f" seed {job['seed']}"
        print(f"{job['ablation']}{seed}: {job['status']} ({job['folder']})")
    paused = any(j["status"] == "paused" for j in report)
    print(
        f"{'paused by the time budget: run the same command again to go on. ' if paused else ''}"
        f"{time.perf_counter() - started:.0f} s"
    )
    return 0


def _cli_table(args) -> int:
    laptop, full = ledger_rows(args.results, "laptop"), ledger_rows(args.results, "full")
    gpu = cifar10_gpu_rows(args.results)
    print(ledger_columns(laptop, full, gpu))
    for name, rows in (("laptop", laptop), ("full", full), ("CIFAR-10, GPU", gpu)):
        print(f"\nmeasured at {name} scale:\n{ledger_details(rows)}")
    for name in ("laptop", "full"):
        print(f"\nthe {name}-scale runs:\n{runs_markdown(args.results, name)}")
    return 0
