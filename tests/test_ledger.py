"""alexlib.ledger: the table generated from result folders (spread over seeds, direction, refusals
of smoke and unfinished runs, unmeasured rows with reasons), claims 1 and 9 through
alexlib.experiments, the bar chart, the command line, and a CPU smoke run of the runner on real
images."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import torch

from alexlib import ledger
from alexlib.cli import main as cli_main
from alexlib.config import PRESETS
from alexlib.figures import effects_figure
from alexlib.ledger import (
    CLAIMS,
    LedgerError,
    converged_epoch,
    ledger_markdown,
    ledger_rows,
    read_run,
    run_ledger,
    settings_for,
)

PROVENANCE = {
    "date": "2026-11-22T10:00:00Z",
    "device": "NVIDIA H100 80GB HBM3",
    "commit": "abc1234567def",
    "torch": "2.x",
}


def fake_run(
    root: Path,
    ablation: str,
    seed: int,
    val: list[tuple[float, float]],
    *,
    scale: str = "full",
    train_top1: float = 10.0,
    epochs: int | None = None,
    summary: bool = True,
    train_eval: float | None = None,
    lr_drop_at: int | None = None,
) -> Path:
    """A run folder as the runner writes it, with one metrics line per (val top-1, val top-5)
    pair; the learning rate is 0.01, and 0.001 from epoch ``lr_drop_at`` on."""
    folder = ledger.ledger_dir(root, scale if scale != "smoke" else "full") / ablation
    folder = folder / f"seed{seed}"
    folder.mkdir(parents=True)
    preset_scale = scale if scale != "smoke" else "full"
    settings = {
        **settings_for(ablation, preset_scale, seed).__dict__,
        "epochs": epochs or len(val),
    }
    settings["fixed_drops"] = list(settings["fixed_drops"])
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "settings": settings,
                "provenance": PROVENANCE,
                "train_images": 9469,
                "val_images": 3925,
            }
        )
    )
    rows = [
        {
            "epoch": e + 1,
            "train_loss": 1.0,
            "train_top1_err": train_top1,
            "train_top5_err": 1.0,
            "val_loss": 1.0,
            "val_top1_err": t1,
            "val_top5_err": t5,
            "lr": 0.001 if lr_drop_at and e + 1 >= lr_drop_at else 0.01,
            "images_per_s": 1000.0,
            "seconds": 2.0,
        }
        for e, (t1, t5) in enumerate(val)
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if summary:
        extra = {} if train_eval is None else {"train_eval": {"top1_err": train_eval}}
        (folder / "summary.json").write_text(
            json.dumps({"scale": scale, "final": rows[-1], "epochs": len(rows), **extra})
        )
    return folder


def row(rows, claim_id):
    return next(r for r in rows if r.id == claim_id)


def test_the_laptop_column_is_the_same_claims_on_cifar10_with_the_mini_net(tmp_path):
    base = settings_for("base", "laptop", 0)
    assert (base.variant, base.dataset, base.pca_colour) == ("mini", "cifar10", True)
    assert (base.image_size, base.crop, base.inputs) == (32, 24, "standardise")
    switched = {a: settings_for(a, "laptop", 0).variant for a in ("no-lrn", "pool2", "half")}
    assert switched == {"no-lrn": "mini-nolrn", "pool2": "mini-pool2", "half": "mini-half"}
    assert settings_for("no-pca", "laptop", 0).pca_colour is False
    assert settings_for("no-dropout", "laptop", 0).dropout == 0.0
    # laptop runs live in ledger-laptop/ and count only in the laptop column
    for seed in range(3):
        fake_run(
            tmp_path,
            "base",
            seed,
            [(30.0, 5.0), (20.0 + seed, 3.0)],
            scale="laptop",
            train_eval=12.0,
        )
        fake_run(
            tmp_path,
            "no-dropout",
            seed,
            [(30.0, 5.0), (23.0 + seed, 4.0)],
            scale="laptop",
            train_eval=2.0,
        )
    fake_run(tmp_path, "base", 0, [(40.0, 18.0)], scale="full")
    laptop, full = ledger_rows(tmp_path, "laptop"), ledger_rows(tmp_path, "full")
    gap = row(laptop, "6a")
    # over-fitting gap from the eval-mode training error: (23+s - 2) - (20+s - 12) = 13
    assert gap.measured and gap.values["gap"] == pytest.approx([13.0, 13.0, 13.0])
    assert "cifar10, mini, laptop scale" in gap.measured_on
    assert not row(full, "6a").measured and "no-dropout" in row(full, "6a").status
    assert not row(laptop, "2").measured
    assert "laptop-scale run" in row(laptop, "2").status and "on a CPU" in row(laptop, "2").status
    table = ledger.ledger_columns(laptop, full)
    assert "| laptop scale (CPU) | full scale (GPU) |" in table
    assert "13% -> 11%" in table  # the paper's own CIFAR-10 number beside claim 2
    assert "ledger-laptop/no-dropout/" in ledger.ledger_details(laptop)
    with pytest.raises(LedgerError, match="full and a laptop column"):
        ledger_rows(tmp_path, "smoke")
    # a laptop run in progress is unfinished, not a run of another scale
    fake_run(tmp_path, "no-lrn", 0, [(30.0, 5.0)], scale="laptop", epochs=16, summary=False)
    status = row(ledger_rows(tmp_path, "laptop"), "2").status
    assert "seed0: unfinished (1 of 16 epochs)" in status and "full-scale" not in status
    # a chapter's own rows: both columns, and where the measured ones came from
    mine = ledger.claim_rows(["6a", "2"], tmp_path)
    assert [[r.id for r in mine[s]] for s in ("laptop", "full")] == [["2", "6a"], ["2", "6a"]]
    text = ledger.claims_markdown(mine)
    assert text.count("\n| 6a |") == 1 and "13% -> 11%" in text
    assert "Measured at laptop scale" in text and "ledger-laptop/no-dropout/" in text
    assert "Measured at full scale" not in text  # nothing finished there
    # the third column, the CIFAR-10 GPU runs (none stored under tmp_path): named, unmeasured
    assert [r.id for r in mine["cifar10-gpu"]] == ["2", "6a"]
    assert "| CIFAR-10, GPU |" in text and "Measured on CIFAR-10, GPU" not in text
    fake_run(tmp_path / "cifar10-gpu", "base", 0, [(25.0, 2.0)], train_eval=22.0)
    fake_run(tmp_path / "cifar10-gpu", "no-dropout", 0, [(23.0, 2.0)], train_eval=19.0)
    text = ledger.claims_markdown(ledger.claim_rows(["6a"], tmp_path))
    assert "Measured on CIFAR-10, GPU:" in text and "results/cifar10-gpu/ledger/base/" in text
    with pytest.raises(LedgerError, match="no claim \\['6c'\\] in the ledger"):
        ledger.claim_rows(["6c"], tmp_path)


# ---------------------------------------------------------------------------------------------
# the ablations


def test_ablations_switch_one_thing_each():
    base = settings_for("base", "full", 0).__dict__
    assert (base["variant"], base["dataset"], base["epochs"], base["batch_size"]) == (
        "paper",
        "imagenette",
        90,
        128,
    )
    assert base["train_per_class"] is None and base["pca_colour"] and base["dropout"] is None
    expected = {
        "no-lrn": {"variant": "paper-nolrn"},
        "pool2": {"variant": "paper-pool2"},
        "half": {"variant": "half"},
        "no-pca": {"pca_colour": False},
        "no-dropout": {"dropout": 0.0},
    }
    for name, switch in expected.items():
        s = settings_for(name, "full", 2).__dict__
        assert {k: v for k, v in s.items() if base[k] != v and k != "seed"} == switch
        assert s["seed"] == 2
    with pytest.raises(LedgerError, match="the ablations are: base, no-lrn"):
        settings_for("no-relu", "full", 0)


def test_every_claim_of_the_issue_has_a_row():
    assert [c.id for c in CLAIMS] == ["1", "2", "3", "4", "5", "6a", "6b", "7", "8", "9"]
    assert {c.paper_values.get("val_top1_err") for c in CLAIMS if c.id in "2345"} == {
        1.4,
        0.4,
        1.7,
        1.0,
    }


# ---------------------------------------------------------------------------------------------
# the table from fake result folders


def test_empty_results_give_every_row_unmeasured_with_the_reason(tmp_path):
    rows = ledger_rows(tmp_path)
    assert len(rows) == 10
    for r in rows:
        assert not r.measured and r.status.startswith("unmeasured: no GPU run stored yet")
        assert "python -m alexlib ledger run --scale full" in r.status
        assert r.ours == "-" and r.values == {}
    text = ledger_markdown(rows)
    assert text.count("\n") == 11  # header, separator, ten rows
    assert "unmeasured: no GPU run stored yet (nothing under results/ledger/{base,no-lrn})" in text


def test_a_row_names_its_arithmetic_seed_by_seed_where_the_seeds_differ(tmp_path):
    def arithmetic(folder: Path, said: str | None, device: str | None = None) -> None:
        meta = json.loads((folder / "settings.json").read_text())
        if said:
            meta["arithmetic"] = said
        if device:
            meta["provenance"] = {**meta["provenance"], "device": device}
        (folder / "settings.json").write_text(json.dumps(meta))

    for seed in range(3):
        for ablation in ("base", "no-lrn"):
            folder = fake_run(tmp_path, ablation, seed, [(60.0, 30.0), (40.0 + seed, 18.0)])
            arithmetic(folder, "bf16" if seed < 2 else "fp32")
    lrn = row(ledger_rows(tmp_path), "2")
    assert ", in bf16 (seeds 0, 1) and fp32 (seed 2);" in lrn.measured_on
    for seed in range(3):  # one arithmetic: said once
        for ablation in ("base", "no-lrn"):
            arithmetic(ledger.ledger_dir(tmp_path, "full") / ablation / f"seed{seed}", "bf16")
    assert " a run, in bf16; NVIDIA H100" in row(ledger_rows(tmp_path), "2").measured_on
    # runs from before the record: a CPU's were fp32; a GPU's are not guessed
    for seed in range(3):
        for ablation in ("base", "no-lrn"):
            folder = ledger.ledger_dir(tmp_path, "full") / ablation / f"seed{seed}"
            meta = json.loads((folder / "settings.json").read_text())
            del meta["arithmetic"]
            (folder / "settings.json").write_text(json.dumps(meta))
    assert ", in " not in row(ledger_rows(tmp_path), "2").measured_on
    for seed in range(3):
        for ablation in ("base", "no-lrn"):
            folder = ledger.ledger_dir(tmp_path, "full") / ablation / f"seed{seed}"
            arithmetic(folder, None, device="cpu (2 threads)")
    assert ", in fp32;" in row(ledger_rows(tmp_path), "2").measured_on


def test_paired_effect_spread_and_direction(tmp_path):
    base = [(40.0, 18.0), (41.0, 18.5), (42.0, 19.0)]
    no_lrn = [(42.0, 19.0), (42.5, 19.8), (43.9, 20.0)]
    for seed, ((b1, b5), (n1, n5)) in enumerate(zip(base, no_lrn)):
        fake_run(tmp_path, "base", seed, [(60.0, 30.0), (b1, b5)])
        fake_run(tmp_path, "no-lrn", seed, [(61.0, 31.0), (n1, n5)])
    # pool2 better than base in every seed: the paper's direction is not reproduced
    for seed in range(3):
        fake_run(
            tmp_path, "pool2", seed, [(60.0, 30.0), (base[seed][0] - 1.0, base[seed][1] - 0.5)]
        )
    rows = ledger_rows(tmp_path)
    lrn = row(rows, "2")
    assert lrn.measured and lrn.seeds == [0, 1, 2]
    effects1 = [n[0] - b[0] for b, n in zip(base, no_lrn)]  # 2.0, 1.5, 1.9
    effects5 = [n[1] - b[1] for b, n in zip(base, no_lrn)]
    assert lrn.values["val_top1_err"] == pytest.approx(effects1)
    assert lrn.values["val_top5_err"] == pytest.approx(effects5)
    mean, sd = statistics.fmean(effects1), statistics.stdev(effects1)
    half = 4.303 * sd / 3**0.5  # Student's t, 2 degrees of freedom
    assert f"top-1 +{mean:.2f} [+{mean - half:.2f}, +{mean + half:.2f}]" in lrn.ours
    assert "(95% interval, n = 3 seeds)" in lrn.ours
    assert lrn.direction == "agrees"
    assert "imagenette, paper and paper-nolrn, full scale, 2 epochs, 9,469 images" in (
        lrn.measured_on
    )
    assert "NVIDIA H100" in lrn.measured_on and "abc1234567" in lrn.measured_on
    pool = row(rows, "3")
    assert pool.values["val_top1_err"] == pytest.approx([-1.0] * 3)
    assert pool.direction.startswith("disagrees")
    # claims that need other ablations stay unmeasured
    assert not row(rows, "4").measured and "half" in row(rows, "4").status


def test_an_effect_its_interval_cannot_tell_from_zero_says_how_many_seeds_would(tmp_path):
    for seed, (b, n) in enumerate([(40.0, 43.0), (41.0, 40.0), (42.0, 43.0)]):
        fake_run(tmp_path, "base", seed, [(b, 18.0)])
        fake_run(tmp_path, "no-pca", seed, [(n, 18.5)])
    r = row(ledger_rows(tmp_path), "5")
    assert r.values["val_top1_err"] == pytest.approx([3.0, -1.0, 1.0])
    # mean 1, sd 2: t(17) * 2 / sqrt(18) = 0.995 < 1 <= t(16) * 2 / sqrt(17)
    assert r.direction == (
        "cannot tell yet (about 18 seeds would decide, if the effect stays as measured); "
        "top-5: agrees"
    )
    assert "within the seed spread" not in r.direction


def test_the_three_verdicts_on_made_up_effects():
    from alexlib.ledger import verdict

    agrees = verdict([1.0, 1.2, 0.9, 1.1])
    assert agrees.word == "agrees" and agrees.low > 0 and agrees.n == 4
    assert verdict([-1.0, -1.2, -0.9]).word == "disagrees"  # the other way, clearly
    assert verdict([-1.0, -1.2, -0.9], expect=-1).word == "agrees"
    unsure = verdict([0.68 + d for d in (-0.9, 0.8, 0.1)])
    assert unsure.word == "cannot tell yet" and unsure.low < 0 < unsure.high
    assert unsure.seeds_needed is not None and unsure.seeds_needed > 3
    # a ratio: the interval of its logarithm; "about 6" reaches from 4 to 9
    assert verdict([6.0, 7.0, 6.5], ratio=True, about=6.0).word == "agrees"
    too_big = verdict([20.0, 21.0, 19.5], ratio=True, about=6.0)
    assert too_big.word == "disagrees" and "about 6" in too_big.why
    assert verdict([0.9, 1.05, 0.95], ratio=True, about=2.0).word == "disagrees"  # under 1.33
    # near 1 and short of 1.33: more seeds would decide against "about 2" long before they could
    # tell the ratio from 1 (log mean 0.094, sd 0.111: 4 seeds put the interval under 1.33, while
    # excluding 1 would take 8)
    near_one = verdict([16 / 15, 1.0, 46 / 37], ratio=True, about=2.0)
    assert near_one.word == "cannot tell yet" and near_one.high > 4 / 3
    assert near_one.seeds_needed == 4
    assert verdict([16 / 15, 1.0, 46 / 37], ratio=True).seeds_needed == 8
    assert verdict([1.0], ratio=False).word == "cannot tell yet"  # one seed


def test_one_seed_has_no_spread(tmp_path):
    fake_run(tmp_path, "base", 0, [(40.0, 18.0)])
    fake_run(tmp_path, "half", 0, [(41.7, 19.2)])
    r = row(ledger_rows(tmp_path), "4")
    assert r.direction == "cannot tell yet (one seed: no spread)"
    assert r.ours == "top-1 +1.70 / top-5 +1.20 (1 seed: no spread)"


def test_smoke_and_unfinished_runs_are_refused(tmp_path):
    fake_run(tmp_path, "base", 0, [(40.0, 18.0)], scale="smoke")
    fake_run(tmp_path, "no-lrn", 0, [(42.0, 19.0)], scale="smoke")
    fake_run(
        tmp_path, "base", 1, [(40.0, 18.0)] * 3, epochs=90, summary=False
    )  # stopped after 3 of 90 epochs
    fake_run(tmp_path, "no-lrn", 1, [(42.0, 19.0)])
    rows = ledger_rows(tmp_path)
    r = row(rows, "2")
    assert not r.measured
    assert "base/seed0: smoke-scale run (smoke numbers never enter the ledger)" in r.status
    # no-lrn has a finished seed (1): what is missing is a finished base run
    assert r.status.startswith("unmeasured: no finished full-scale run of base (base/seed0")
    assert "base/seed1: unfinished (3 of 90 epochs)" in r.status
    assert read_run(tmp_path / "ledger" / "no-lrn" / "seed1")["ok"]
    assert not read_run(tmp_path / "ledger" / "base" / "seed0")["ok"]


def test_ten_views_and_ensembles_from_eval_files(tmp_path):
    for seed, (c, t) in enumerate(
        [((40.0, 18.0), (38.0, 17.0)), ((41.0, 19.0), (39.5, 17.5)), ((40.5, 18.4), (39.0, 17.0))]
    ):
        folder = fake_run(tmp_path, "base", seed, [c])
        (folder / "views.json").write_text(
            json.dumps(
                {
                    "center": {"top1_err": c[0], "top5_err": c[1]},
                    "ten": {"top1_err": t[0], "top5_err": t[1]},
                }
            )
        )
    rows = ledger_rows(tmp_path)
    assert row(rows, "7").values["top1"] == pytest.approx([2.0, 1.5, 1.5])
    assert row(rows, "7").values["top5"] == pytest.approx([1.0, 1.5, 1.4])
    assert row(rows, "8").status.startswith("unmeasured: ensemble.json missing")
    single = {
        "0": {"top1_err": 40.0, "top5_err": 18.0},
        "1": {"top1_err": 41.0, "top5_err": 19.0},
        "2": {"top1_err": 40.5, "top5_err": 18.4},
    }
    ens = {
        "scale": "full",
        "seeds": [0, 1, 2],
        "center": {"single": single, "ensemble": {"top1_err": 38.0, "top5_err": 17.0}},
    }
    path = tmp_path / "ledger" / "base" / "ensemble.json"
    path.write_text(json.dumps({**ens, "scale": "smoke"}))
    assert "smoke scale" in row(ledger_rows(tmp_path), "8").status
    path.write_text(json.dumps(ens))
    r = row(ledger_rows(tmp_path), "8")
    assert r.values["top1"] == pytest.approx([2.0, 3.0, 2.5]) and r.direction == "agrees"


def test_dropout_rows(tmp_path):
    # with dropout: converges (within 1 point of its best) at epoch 4; without: at epoch 2
    with_dropout = [(70.0, 30.0), (60.0, 25.0), (50.0, 20.0), (40.5, 18.0), (40.0, 18.0)]
    without = [(60.0, 30.0), (45.5, 20.0), (45.0, 20.0), (45.2, 20.0), (45.0, 20.0)]
    for seed in range(2):
        fake_run(tmp_path, "base", seed, with_dropout, train_top1=30.0, lr_drop_at=4)
        fake_run(tmp_path, "no-dropout", seed, without, train_top1=5.0, lr_drop_at=3)
    assert (
        converged_epoch([v for v, _ in with_dropout]) == 4
        and converged_epoch([v for v, _ in without]) == 2
    )
    rows = ledger_rows(tmp_path)
    # gap = (val - train): without 45 - 5 = 40, with 40 - 30 = 10
    assert row(rows, "6a").values["gap"] == pytest.approx([30.0, 30.0])
    assert row(rows, "6b").values["ratio"] == pytest.approx([2.0, 2.0])
    assert row(rows, "6b").direction == "agrees"
    assert row(rows, "6b").ours == "2.00x [2.00, 2.00] (95% interval, n = 2 seeds)"
    with pytest.raises(ValueError):
        converged_epoch([])


def test_a_run_still_improving_bounds_the_convergence_ratio(tmp_path):
    # the laptop runs stop after 16 epochs: a plateau run whose lr never dropped had not converged
    with_dropout = [(70.0, 30.0), (60.0, 25.0), (50.0, 20.0), (40.5, 18.0), (40.0, 18.0)]
    without = [(60.0, 30.0), (45.5, 20.0), (45.0, 20.0), (45.2, 20.0), (45.0, 20.0)]
    fake_run(tmp_path, "base", 0, with_dropout)
    fake_run(tmp_path, "no-dropout", 0, without, lr_drop_at=3)
    fake_run(tmp_path, "base", 1, with_dropout, lr_drop_at=5)
    fake_run(tmp_path, "no-dropout", 1, without, lr_drop_at=3)
    table = ledger.runs_markdown(tmp_path, "full").splitlines()
    assert (
        table[2] == "| base/seed0 | 5 | 40.00 | 18.00 | - | never | 0 min | NVIDIA H100 80GB HBM3 |"
    )
    assert table[3].startswith("| base/seed1 | 5 | 40.00 | 18.00 | - | 5 |")
    assert table[5].startswith("| no-dropout/seed1 | 5 | 45.00 | 20.00 | - | 3 |")
    assert ledger.runs_markdown(tmp_path, "laptop").startswith("no finished laptop-scale")
    r = row(ledger_rows(tmp_path), "6b")
    assert r.ours == (
        "2.00x [2.00, 2.00] (95% interval, n = 2 seeds); a lower bound: with dropout the "
        "validation error "
        "was still falling at the last epoch (the lr never dropped) in 1 of 2 seeds"
    )
    fake_run(tmp_path, "no-dropout", 2, without)
    fake_run(tmp_path, "base", 2, with_dropout, lr_drop_at=5)
    r = row(ledger_rows(tmp_path), "6b")
    assert r.ours.endswith(
        "; not yet a convergence ratio: without dropout the validation error was still falling "
        "at the last epoch (the lr never dropped) in 1 of 3 seeds"
    )


def test_a_fixed_schedule_does_not_measure_the_convergence_claim(tmp_path):
    # the GPU column's runs divide the lr at fixed epochs: both nets converge when it says, so
    # their ratio (here 2.0, as in test_dropout_rows) must not become a verdict
    with_dropout = [(70.0, 30.0), (60.0, 25.0), (50.0, 20.0), (40.5, 18.0), (40.0, 18.0)]
    without = [(60.0, 30.0), (45.5, 20.0), (45.0, 20.0), (45.2, 20.0), (45.0, 20.0)]
    for seed in range(3):
        for ablation, val in (("base", with_dropout), ("no-dropout", without)):
            folder = fake_run(tmp_path, ablation, seed, val, lr_drop_at=4)
            path = folder / "settings.json"
            stored = json.loads(path.read_text())
            stored["settings"]["schedule"] = "fixed"
            path.write_text(json.dumps(stored))
    r = row(ledger_rows(tmp_path), "6b")
    assert r.values["ratio"] == pytest.approx([2.0, 2.0, 2.0])
    assert r.direction.startswith("cannot tell yet")
    assert "a fixed schedule divides the learning rate at the same epochs (4)" in r.ours


def test_the_gpu_column_reads_claim_6b_from_its_constant_rate_runs(tmp_path):
    def constant_run(root, ablation, seed, val):
        folder = fake_run(root, ablation, seed, [(v, 2.0) for v in val], train_eval=20.0)
        path = folder / "settings.json"
        stored = json.loads(path.read_text())
        stored["settings"]["schedule"] = "constant"
        path.write_text(json.dumps(stored))

    # within a point of the best from epoch 6 with dropout, from epoch 3 without: 2.0
    with_dropout = [60, 50, 40, 35, 32, 29.5, *[29.0] * 12]
    without = [50, 40, 28.8, *[28.0] * 15]
    gpu6b = tmp_path / "cifar10-gpu-6b"
    fixed = {r.id: r for r in ledger.cifar10_gpu_rows(tmp_path)}
    assert "--experiment ledger-cifar10-gpu-6b" in fixed["6b"].status
    for seed in range(3):
        constant_run(gpu6b, "base", seed, with_dropout)
        constant_run(gpu6b, "no-dropout", seed, without)
    r = next(r for r in ledger.cifar10_gpu_rows(tmp_path) if r.id == "6b")
    assert r.values["ratio"] == pytest.approx([2.0, 2.0, 2.0]) and r.direction == "agrees"
    assert r.files == "`results/cifar10-gpu-6b/ledger/no-dropout/`, " + (
        "`results/cifar10-gpu-6b/ledger/base/`"
    )
    # a net still improving near the end has not converged: no verdict from it
    constant_run(gpu6b, "base", 3, [60, 50, 40, 35, 32, 31, 30, 29.5, 29.2, 29.0])
    constant_run(gpu6b, "no-dropout", 3, without)
    r = next(r for r in ledger.cifar10_gpu_rows(tmp_path) if r.id == "6b")
    assert r.direction.startswith("cannot tell yet")
    assert "1 of 8 runs had not stayed within a point of their best for 10 epochs" in r.ours


def test_the_laptop_column_reads_claim_6b_from_its_constant_rate_runs_once_stored(tmp_path):
    def constant_run(root, ablation, seed, val):
        folder = fake_run(root, ablation, seed, [(v, 2.0) for v in val], scale="laptop")
        path = folder / "settings.json"
        stored = json.loads(path.read_text())
        stored["settings"]["schedule"] = "constant"
        path.write_text(json.dumps(stored))

    # the plateau runs: no convergence ratio, and the row names the runs that give one
    for seed in range(3):
        fake_run(tmp_path, "base", seed, [(60.0, 9.0), (50.0, 8.0)], scale="laptop")
        fake_run(tmp_path, "no-dropout", seed, [(60.0, 9.0), (40.0, 8.0)], scale="laptop")
    plateau = row(ledger_rows(tmp_path, "laptop"), "6b")
    assert "--experiment ledger-laptop-6b --only base no-dropout" in plateau.ours
    # within a point of the best from epoch 6 with dropout, from epoch 3 without: 2.0
    with_dropout = [60, 50, 40, 35, 32, 29.5, *[29.0] * 12]
    without = [50, 40, 28.8, *[28.0] * 15]
    for seed in range(3):
        constant_run(tmp_path / ledger.LAPTOP_6B, "base", seed, with_dropout)
        constant_run(tmp_path / ledger.LAPTOP_6B, "no-dropout", seed, without)
    r = row(ledger_rows(tmp_path, "laptop"), "6b")
    assert r.values["ratio"] == pytest.approx([2.0, 2.0, 2.0]) and r.direction == "agrees"
    assert "`results/laptop-6b/ledger-laptop/base/`" in r.files
    assert "ledger-laptop-6b" not in r.ours
    assert ledger.ledger_dir(tmp_path, "laptop", "ledger-laptop-6b") == (
        tmp_path / "laptop-6b" / "ledger-laptop"
    )


# ---------------------------------------------------------------------------------------------
# claims 1 and 9 through alexlib.experiments' stored results


def _fig1_run(activation, lr, seed, role, errors, scale="full"):
    history = [
        {
            "epoch": e,
            "train_err": v,
            "batch_err": v,
            "train_loss": 1.0,
            "seconds": 1.0,
            "diverged": False,
        }
        for e, v in enumerate(errors)
    ]
    return {
        "activation": activation,
        "lr": lr,
        "seed": seed,
        "role": role,
        "history": history,
        "settings": {
            "scale": scale,
            "regime": "paper",
            "thresholds": (25.0,),
            "images": 50000,
            "epochs": len(errors) - 1,
        },
    }


def test_claim1_reads_figure1_runs(tmp_path):
    from alexlib.experiments import epochs_to_reach, save_figure1

    relu = [[90, 50, 20], [90, 40, 10]]
    tanh = [[90, 80, 70, 60, 50, 40, 30, 20], [90, 85, 70, 60, 50, 40, 35, 30, 20]]
    runs = [
        _fig1_run("relu", 0.01, 0, "search", relu[0]),
        _fig1_run("tanh", 0.01, 0, "search", tanh[0]),
        _fig1_run("relu", 0.01, 1, "seed", relu[1]),
        _fig1_run("tanh", 0.01, 1, "seed", tanh[1]),
    ]
    save_figure1(runs, base=tmp_path / "figure1", tag="smoke")
    assert "smoke-scale run" in row(ledger_rows(tmp_path), "1").status
    save_figure1(runs, base=tmp_path / "figure1", tag="full")
    r = row(ledger_rows(tmp_path), "1")
    expected = [epochs_to_reach(t, 25.0) / epochs_to_reach(u, 25.0) for u, t in zip(relu, tanh)]
    assert r.measured and r.values["ratio"] == pytest.approx(expected)
    # two seeds whose ratios differ: t with one degree of freedom leaves the interval wide
    assert r.direction.startswith("cannot tell yet (about 3 seeds would decide")
    assert r.seeds == [0, 1]


def test_claim9_reads_figure3_kernels(tmp_path):
    from alexlib.experiments import save_figure3

    gen = torch.Generator().manual_seed(0)
    for seed in range(2):
        run = fake_run(tmp_path / "runs", "base", seed, [(40.0, 18.0)])
        grey = torch.randn(48, 1, 11, 11, generator=gen).expand(
            48, 3, 11, 11
        )  # R = G = B: colour-agnostic
        colour = torch.randn(48, 3, 11, 11, generator=gen)
        colour = colour - colour.mean(dim=1, keepdim=True)  # no grey component: colour-specific
        save_figure3(
            "paper",
            seed,
            {"out": str(run), "conv1": torch.cat([grey, colour])},
            base=tmp_path / "figure3",
            tag="full",
        )
    r = row(ledger_rows(tmp_path), "9")
    assert r.measured and r.values["separation"] == pytest.approx([1.0, 1.0])
    assert (
        r.direction == "agrees (2 of 2 runs split)"
        and r.ours == "1.00 ± 0.00 sd (mean ± sd, n = 2 runs)"
    )
    # at laptop scale both two-tower nets count: Figure 3's paper net (Imagenette) and the
    # ledger's mini base nets (CIFAR-10)
    for variant, seed in (("paper", 0), ("mini", 0), ("mini", 1)):
        scale = "full" if variant == "paper" else "laptop"  # fake_run's paper net is full-scale
        run = fake_run(tmp_path / f"runs-{variant}", "base", seed, [(40.0, 18.0)], scale=scale)
        kernels = torch.cat([grey, colour]) if variant == "paper" else torch.randn(96, 3, 5, 5)
        save_figure3(
            variant,
            seed,
            {"out": str(run), "conv1": kernels},
            base=tmp_path / "figure3",
            tag="laptop",
        )
    rows = ledger_rows(tmp_path, "laptop")
    r = row(rows, "9")
    assert r.measured and len(r.values["separation"]) == 3 and "n = 3 runs" in r.ours
    assert "mini and paper" in r.measured_on


# ---------------------------------------------------------------------------------------------
# the chart and the command line


def test_effects_figure_draws_means_spread_and_paper(tmp_path):
    for seed, (b, n) in enumerate([(40.0, 42.0), (41.0, 42.5), (42.0, 43.9)]):
        fake_run(tmp_path, "base", seed, [(b, 18.0)])
        fake_run(tmp_path, "no-lrn", seed, [(n, 19.0)])
    rows = ledger_rows(tmp_path)
    fig = effects_figure(rows)
    ax = fig.axes[0]
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([statistics.fmean([2.0, 1.5, 1.9]), 1.0])
    red = [line for line in ax.lines if line.get_color() == "tab:red"]
    assert [line.get_ydata()[0] for line in red] == pytest.approx([1.4, 1.2])
    dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert list(dots[0].get_ydata()) == pytest.approx([2.0, 1.5, 1.9])
    assert ax.get_title() == "claim 2: LRN (3 seeds)"
    empty = effects_figure(ledger_rows(tmp_path / "nothing"))
    assert "No full-scale result stored yet" in empty.axes[0].texts[0].get_text()


def test_command_line_table_and_errors(tmp_path, capsys):
    fake_run(tmp_path, "base", 0, [(40.0, 18.0)])
    fake_run(tmp_path, "no-lrn", 0, [(41.0, 18.5)])
    assert cli_main(["ledger", "table", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| # | claim") and "top-1 +1.00" in out
    assert (
        cli_main(["ledger", "run", "--scale", "smoke", "--only", "no-relu", "--out", str(tmp_path)])
        == 2
    )
    assert "unknown ablation(s) ['no-relu']" in capsys.readouterr().err
    # the same commands again, with other arguments
    assert cli_main(["ledger", "table", "--results", str(tmp_path)]) == 0
    assert "top-1 +1.00" in capsys.readouterr().out
    assert (
        cli_main(["ledger", "run", "--scale", "smoke", "--seeds", "0", "--out", str(tmp_path)]) == 2
    )
    assert "seeds must be a positive whole number" in capsys.readouterr().err


def test_smoke_runs_never_go_under_results(monkeypatch, tmp_path):
    monkeypatch.setattr(ledger, "results_dir", lambda: tmp_path / "results")
    with pytest.raises(LedgerError, match="smoke runs never go under"):
        run_ledger("smoke", out=tmp_path / "results", only=["base"])
    assert ledger.smoke_root() == tmp_path / "_build" / "ledger-smoke"


# ---------------------------------------------------------------------------------------------
# the runner itself, at smoke scale on real images (a few per class, one epoch, one seed)


def test_smoke_runner_writes_resumes_and_is_refused(shared_data, tmp_path, monkeypatch):
    # the smoke preset with fewer images (the chapter runs the preset itself)
    monkeypatch.setitem(
        PRESETS["ledger"],
        "smoke",
        dict(PRESETS["ledger"]["smoke"], train_per_class=2, val_per_class=1, batch_size=10),
    )
    out = tmp_path / "smoke"
    kw = dict(
        out=out, only=["no-lrn", "base"], data_root=str(shared_data), device="cpu", progress=False
    )
    paused = run_ledger("smoke", budget_s=0, **kw)
    assert [j["status"] for j in paused] == ["paused"] and not (
        out / "ledger" / "no-lrn" / "seed0" / "summary.json"
    ).exists()
    report = run_ledger("smoke", **kw)
    assert [(j["ablation"], j["status"]) for j in report] == [("no-lrn", "done"), ("base", "done")]
    base = out / "ledger" / "base" / "seed0"
    summary = json.loads((base / "summary.json").read_text())
    assert (
        summary["scale"] == "smoke"
        and summary["epochs"] == 1
        and len(summary["checkpoint_sha256"]) == 64
    )
    assert not (base / "checkpoint.pt").exists()  # smoke checkpoints are not kept; the hash is
    settings = json.loads((base / "settings.json").read_text())
    assert settings["settings"]["train_per_class"] == 2 and "device" in settings["provenance"]
    views = json.loads((base / "views.json").read_text())
    assert set(views["center"]) == {"top1_err", "top5_err"} and views["val_images"] == 10
    assert (out / "figure3" / "smoke-paper-s0" / "conv1.pt").is_file()
    assert torch.load(out / "figure3" / "smoke-paper-s0" / "conv1.pt", weights_only=True).shape == (
        96,
        3,
        11,
        11,
    )
    again = run_ledger("smoke", **kw)
    assert {j["status"] for j in again} == {"done before"}
    rows = ledger_rows(out)
    assert not any(r.measured for r in rows)
    assert "smoke-scale run (smoke numbers never enter the ledger)" in row(rows, "2").status
    assert "smoke-scale run" in row(rows, "9").status


def test_a_claim_6b_run_stores_no_views_and_no_ensemble(shared_data, tmp_path, monkeypatch):
    # the constant-rate runs measure claim 6b alone: a base run there keeps its metrics and
    # summary, not the ten-view probabilities (860 KB a seed at laptop scale) nor an ensemble
    tiny = dict(train_per_class=2, val_per_class=1, batch_size=10)
    monkeypatch.setitem(
        PRESETS["ledger-laptop-6b"], "smoke", dict(PRESETS["ledger-laptop-6b"]["smoke"], **tiny)
    )
    out = tmp_path / "six_b"
    kw = dict(only=["base"], data_root=str(shared_data), device="cpu", progress=False)
    report = run_ledger("smoke", out=out, seeds=2, experiment="ledger-laptop-6b", **kw)
    assert [j["status"] for j in report] == ["done", "done"]
    base = ledger.ledger_dir(out, "smoke", "ledger-laptop-6b") / "base"
    stored = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
    assert stored == [
        f"seed{k}/{name}"
        for k in (0, 1)
        for name in ("metrics.jsonl", "settings.json", "summary.json")
    ]


def test_chunked_training_equals_one_go(shared_data, tmp_path, monkeypatch):
    # a run trained one epoch per resume step ends with the numbers of a run trained in one go
    tiny = dict(
        PRESETS["ledger"]["smoke"], epochs=2, batch_size=10, train_per_class=2, val_per_class=1
    )
    results = {}
    for chunk in (1, 2):
        monkeypatch.setitem(PRESETS["ledger"], "smoke", dict(tiny, chunk_epochs=chunk))
        out = tmp_path / f"chunk{chunk}"
        run_ledger(
            "smoke",
            out=out,
            only=["half"],
            data_root=str(shared_data),
            device="cpu",
            progress=False,
        )
        results[chunk] = ledger.read_metrics(out / "ledger" / "half" / "seed0")
        settings = json.loads((out / "ledger" / "half" / "seed0" / "settings.json").read_text())[
            "settings"
        ]
        assert settings["epochs"] == 2
    assert len(results[1]) == len(results[2]) == 2
    for a, b in zip(results[1], results[2]):
        for key in (
            "train_loss",
            "train_top1_err",
            "val_loss",
            "val_top1_err",
            "val_top5_err",
            "lr",
        ):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def test_a_run_paused_between_chunks_reads_its_own_length(shared_data, tmp_path, monkeypatch):
    # a run trained in chunks keeps its own length in settings.json while it is unfinished
    tiny = dict(
        PRESETS["ledger"]["smoke"],
        epochs=3,
        batch_size=10,
        train_per_class=2,
        val_per_class=1,
        chunk_epochs=1,
    )
    monkeypatch.setitem(PRESETS["ledger"], "smoke", tiny)
    clock = iter([0.0, 0.0])  # the deadline, the check before chunk 1; then past it

    monkeypatch.setattr(ledger.time, "monotonic", lambda: next(clock, 100.0))
    out = tmp_path / "paused"
    kw = dict(only=["half"], data_root=str(shared_data), device="cpu", progress=False)
    report = run_ledger("smoke", out=out, budget_s=10.0, **kw)
    assert [(j["status"], j["epochs"]) for j in report] == [("paused", 1)]
    folder = out / "ledger" / "half" / "seed0"
    run = read_run(folder, "smoke")
    assert not run["ok"] and run["reason"] == "seed0: unfinished (1 of 3 epochs)"
    assert json.loads((folder / "settings.json").read_text())["settings"]["epochs"] == 3
    assert not (folder / "plan.json").exists()
    monkeypatch.undo()
    monkeypatch.setitem(PRESETS["ledger"], "smoke", tiny)
    assert [j["status"] for j in run_ledger("smoke", out=out, **kw)] == ["done"]
    assert read_run(folder, "smoke")["ok"]


def test_claim8_says_how_many_base_nets_it_has(tmp_path):
    status = row(ledger_rows(tmp_path, "laptop"), "8").status
    assert "nothing under results/ledger-laptop/base" in status
    assert status.endswith("`python -m alexlib ledger run --scale laptop --only base`")
    fake_run(tmp_path, "base", 0, [(30.0, 5.0)], scale="laptop")
    assert row(ledger_rows(tmp_path, "laptop"), "8").status == (
        "unmeasured: 1 finished laptop-scale base run (seed 0); an average needs 2 or more. Run "
        "on a CPU: `python -m alexlib ledger run --scale laptop --only base`"
    )
    # a second seed in progress is named; the pooling row lacks only its pool2 runs
    fake_run(tmp_path, "base", 1, [(30.0, 5.0)], scale="laptop", epochs=16, summary=False)
    rows = ledger_rows(tmp_path, "laptop")
    assert row(rows, "8").status.startswith(
        "unmeasured: 1 finished laptop-scale base run (seed 0) (base/seed1: unfinished (1 of 16 "
        "epochs)); an average needs 2 or more."
    )
    assert row(rows, "3").status.startswith(
        "unmeasured: no laptop-scale run stored yet (nothing under results/ledger-laptop/pool2)"
    )


def test_finished_runs_by_ablation_and_seed_leave_out_smoke_and_unfinished(tmp_path):
    fake_run(tmp_path, "base", 1, [(40.0, 18.0), (38.0, 17.0)], scale="laptop", lr_drop_at=2)
    fake_run(tmp_path, "base", 0, [(41.0, 18.0)] * 2, scale="laptop", train_eval=39.5)
    fake_run(tmp_path, "no-lrn", 0, [(42.0, 19.0)] * 3, scale="laptop", epochs=16, summary=False)
    fake_run(tmp_path, "no-lrn", 1, [(42.0, 19.0)], scale="smoke")
    runs = ledger.finished_runs(tmp_path, "laptop")
    assert list(runs) == list(ledger.ABLATIONS)
    assert list(runs["base"]) == [0, 1]  # in seed order, whatever the folders' order
    assert runs["base"][1]["lr_drops"] == [2] and runs["base"][0]["lr_drops"] == []
    assert runs["base"][0]["train_eval"] == {"top1_err": 39.5}
    assert runs["no-lrn"] == {}  # 3 of 16 epochs
    # the smoke run sits under ledger/, the full scale's folder, and is refused there
    assert ledger.finished_runs(tmp_path, "full") == {name: {} for name in ledger.ABLATIONS}


def test_the_cifar10_gpu_column_reads_its_own_folder(tmp_path):
    """The third column: runs of the ledger-cifar10-gpu preset under results/cifar10-gpu/ledger
    give claim 2's effect there, and nothing of the full (Imagenette) column; before any run is
    stored, its rows name that folder and the command that fills it."""
    empty = ledger.cifar10_gpu_rows(tmp_path)
    assert [r.id for r in empty] == ["2", "3", "4", "5", "6a", "6b", "7", "8"]
    assert all(not r.measured for r in empty)
    assert "results/cifar10-gpu/ledger/{base,no-lrn}" in row(empty, "2").status
    assert "--experiment ledger-cifar10-gpu" in row(empty, "2").status
    assert settings_for("base", "full", 0, "ledger-cifar10-gpu").variant == "mini"
    gpu_root = tmp_path / ledger.CIFAR10_GPU
    for seed, (base, no_lrn) in enumerate([(20.0, 21.0), (19.0, 20.5), (20.5, 21.0)]):
        for ablation, err in (("base", base), ("no-lrn", no_lrn)):
            fake_run(gpu_root, ablation, seed, [(40.0, 9.0), (err, 2.0)])
    rows = ledger.cifar10_gpu_rows(tmp_path)
    assert row(rows, "2").measured
    assert row(rows, "2").values["val_top1_err"] == pytest.approx([1.0, 1.5, 0.5])
    assert not row(ledger.ledger_rows(tmp_path, "full"), "2").measured  # not the full column
    table = ledger.ledger_columns(
        ledger.ledger_rows(tmp_path, "laptop"), ledger.ledger_rows(tmp_path, "full"), rows
    )
    assert "| CIFAR-10, GPU |" in table.splitlines()[0]


def test_a_seed_s_runs_share_the_arithmetic_its_first_run_trained_in(tmp_path, monkeypatch):
    # a seed begun on one machine and finished on another: its pair must not compare bf16 with
    # fp32 as well as the ablation
    trained = []
    monkeypatch.setattr(ledger._Jobs, "data_for", lambda self, settings: None)
    monkeypatch.setattr(ledger, "_train_chunked", lambda s, *rest: trained.append(s) or False)
    out = tmp_path / "runs"
    kw = dict(only=["no-lrn"], device="cpu", progress=False, out=out)
    assert run_ledger("smoke", **kw)[0]["status"] == "paused"
    assert trained[-1].precision == settings_for("no-lrn", "smoke", 0).precision  # the preset's
    base = ledger.ledger_dir(out, "smoke") / "base" / "seed0"
    base.mkdir(parents=True)
    (base / "metrics.jsonl").write_text('{"epoch": 1}\n')  # a run folder as train_run leaves it
    (base / "settings.json").write_text(json.dumps({"settings": {}, "arithmetic": "fp32"}))
    run_ledger("smoke", **kw)
    assert trained[-1].precision == "fp32"
    # an arithmetic this machine cannot train in: one clear error, nothing trained
    (base / "settings.json").write_text(json.dumps({"settings": {}, "arithmetic": "bf16"}))
    monkeypatch.setattr(ledger, "precision_for", lambda device, amp: "fp32")
    with pytest.raises(LedgerError, match=r"seed 0's stored runs trained in bf16, which cpu "):
        run_ledger("smoke", **kw)
    assert len(trained) == 2
    # the command line names the seeds themselves: seed 4 alone, in the preset's arithmetic
    monkeypatch.undo()
    monkeypatch.setattr(ledger._Jobs, "data_for", lambda self, settings: None)
    monkeypatch.setattr(ledger, "_train_chunked", lambda s, *rest: trained.append(s) or False)
    argv = ["ledger", "run", "--scale", "smoke", "--only", "no-lrn", "--seed", "4"]
    assert cli_main([*argv, "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    assert trained[-1].seed == 4 and trained[-1].precision == trained[0].precision
