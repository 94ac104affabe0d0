"""What each chapter costs, measured: a small table on every chapter's page, below its parameters
cell, made when the book is staged (``tools/book.py``), never typed.

One row per scale. The scale the page was executed at shows the executed copy's own wall time and
machine (``metadata.alexlib`` of ``_build/executed/<scale>/<chapter>.ipynb``); the other scales
show the training time of the stored runs the chapter reads (``results/``), summed over the runs,
with the machines their provenance names; "not measured yet" where there are none.
"""

from __future__ import annotations

from pathlib import Path

from alexlib.config import SCALES
from alexlib.ledger import ABLATIONS
from alexlib.train import machine_name, run_arithmetic, stored_runs

__all__ = ["SOURCES", "chapter_costs", "costs_markdown"]


def _ledger(*ablations: str) -> dict[str, list[tuple[str, str]]]:
    return {
        "laptop": [(f"ledger-laptop/{a}", "seed") for a in ablations],
        "full": [(f"cifar10-gpu/ledger/{a}", "seed") for a in ablations],
    }


# chapter (its file's two-digit number) -> scale -> the stored runs it reads, as
# (folder under results/, run-name prefix)
SOURCES: dict[str, dict[str, list[tuple[str, str]]]] = {
    "03": _ledger("base", "no-lrn"),
    "04": _ledger("base", "pool2"),
    "06": _ledger("base", "no-dropout"),
    "07": _ledger("base", "no-pca"),
    "08": {"laptop": [("figure3", "laptop-paper")], "full": [("figure3", "full-paper")]},
    "09": {
        "laptop": [("figure3", "laptop-paper"), ("ledger-laptop/base", "seed")],
        "full": [("cifar10-gpu/ledger/base", "seed")],
    },
    "10": {
        "laptop": [("figure1", "laptop-"), ("figure1-cpu-bf16", "laptop-")],
        "full": [("figure1", "full-")],
    },
    "11": {"laptop": [("figure3", "laptop-")], "full": [("figure3", "full-")]},
    "12": {"laptop": [("figure4", "laptop-")], "full": [("figure4", "full-")]},
    "13": _ledger("base", "half"),
    "14": _ledger(*ABLATIONS),
}


def _duration(seconds: float) -> str:
    """3725 -> "1 h 2 min"; 95 -> "1 min 35 s"; 42.3 -> "42 s"."""
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h} h {m} min"
    return f"{m} min {s} s" if m else f"{s} s"


def chapter_costs(chapter: str, executed: dict | None, base: Path | None = None) -> list[dict]:
    """The rows of ``chapter``'s table (``"08"``), one per scale: ``scale``, ``time``, ``machine``
    and ``what``. ``executed``: the executed copy's ``metadata.alexlib`` (its ``scale``,
    ``seconds`` and ``machine``), or None. ``base``: the results folder (default: the
    checkout's)."""
    rows = []
    for scale in SCALES:
        if executed and executed.get("scale") == scale and executed.get("seconds"):
            rows.append(
                {
                    "scale": scale,
                    "time": _duration(executed["seconds"]),
                    "machine": executed.get("machine", "not recorded"),
                    "what": "this page, run from top to bottom",
                }
            )
            continue
        runs = [
            run
            for kind, prefix in SOURCES.get(chapter, {}).get(scale, [])
            for run in stored_runs(kind, prefix, base=None if base is None else base / kind)
        ]
        if not runs:
            rows.append({"scale": scale, "time": "not measured yet", "machine": "", "what": ""})
            continue
        machines = ", ".join(sorted({machine_name(r["provenance"]) for r in runs}))
        # the arithmetic decides the time as much as the machine (CPU bf16 or fp32)
        said = sorted({a for a in map(run_arithmetic, runs) if a})
        rows.append(
            {
                "scale": scale,
                "time": _duration(sum(r["wall_s"] for r in runs)),
                "machine": f"{machines}, in {' and '.join(said)}" if said else machines,
                "what": (
                    f"the training of the {len(runs)} stored runs this page reads, added up"
                    if len(runs) > 1
                    else "the training of the stored run this page reads"
                ),
            }
        )
    return rows


def costs_markdown(rows: list[dict]) -> str:
    """The table as the page shows it, under a small heading."""
    lines = [
        "**What this chapter costs**, measured:",
        "",
        "| scale | wall time | machine | of what |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['scale']} | {r['time']} | {r['machine']} | {r['what']} |" for r in rows]
    return "\n".join(lines)
