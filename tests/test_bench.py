"""python -m tools.bench (project tooling, tools/bench.py): runs end to end at CI size on the CPU,
and its ratios are its rates' ratios.

Not a timing test: CPU rates say nothing about a GPU. It checks that every row trains the real nets,
that the table's ratios are computed from the measured rates, that the layer-by-layer equality check
runs on every fast form, and that bad requests get a clear message.
"""

import json

import pytest

from tools import bench


@pytest.fixture(scope="module")
def tiny():
    return bench.run(device="cpu", tiny=True, progress=lambda *_: None)


def test_tiny_run_measures_the_three_nets(tiny):
    names = [r["name"] for r in tiny["rows"]]
    assert names == ["torchvision alexnet", "paper, reference layers", "paper, alexlib"]
    for r in tiny["rows"]:
        assert r["images_per_s"] > 0 and abs(r["images_per_s"] * r["ms_per_step"] / 1000 - 2) < 1e-6
    assert tiny["settings"]["batch_size"] == 2 and not tiny["settings"]["compile"]
    assert tiny["versions"]["gpu"] is None and "torch" in tiny["versions"]
    assert "date" in tiny["provenance"]


def test_table_ratios_are_the_rates_ratios(tiny):
    table = bench.format_table(tiny)
    base = tiny["rows"][0]["images_per_s"]
    for r in tiny["rows"]:
        assert (
            f"| {r['name']} | {r['images_per_s']:,.0f} | {r['images_per_s'] / base:.2f}x |" in table
        )
    lines = bench.summary_lines(tiny)
    assert any(line.startswith("alexlib's paper net / torchvision alexnet") for line in lines)
    assert not any("goal" in line or "milestone" in line for line in lines)  # no project talk
    assert any("not how fast a GPU trains" in line for line in lines)


def test_every_fast_form_is_checked_against_the_reference(tiny):
    forms = {(c["layer"], c["impl"]) for c in tiny["checks"]}
    assert {
        ("conv1", "s2d"),
        ("lrn1", "shift"),
        ("lrn2", "banded"),
        ("conv2", "dense"),
        ("conv5", "split"),
    } <= forms
    assert all(c["equal"] for c in tiny["checks"])


def test_sweep_rows_include_the_milestone_yardsticks():
    names = [c.name for c in bench.bench_rows(True, triton=True)]
    assert "paper without LRN, groups=1" in names and "paper, LRN=triton" in names
    assert "paper, LRN=triton" not in [c.name for c in bench.bench_rows(True, triton=False)]
    net = bench.build_net(bench.Row("g1", net="paper-nolrn-g1"))
    assert all(m.groups == 1 for m in net.modules() if hasattr(m, "groups"))


def test_cli_bench_saves_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = bench.main(
        [
            "--tiny",
            "--device",
            "cpu",
            "--only",
            "torchvision alexnet",
            "paper, alexlib",
            "--no-check",
            "--save",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    saved = json.loads(out.read_text())
    assert [r["name"] for r in saved["rows"]] == ["torchvision alexnet", "paper, alexlib"]
    assert "| paper, alexlib |" in printed and f"saved {out}" in printed


def test_cli_bench_rejects_unknown_rows(capsys):
    assert bench.main(["--tiny", "--device", "cpu", "--only", "resnet"]) == 2
    assert "unknown row(s) ['resnet']" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--device", "cpu", "--tiny", "--part", "x"], "--part must look like 1/3"),
        (["--device", "cpu", "--batch-size", "0"], "batch_size must be a whole"),
        (["--batch-size", "abc"], "invalid int value"),
    ],
)
def test_bad_arguments_give_one_line(argv, expected, capsys):
    try:
        code = bench.main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.startswith("error: ") and expected in err.splitlines()[0], err


def test_parts_split_the_rows_and_each_keeps_the_yardstick():
    names = [c.name for c in bench.bench_rows(True, triton=False)]
    seen = []
    for i in (1, 2, 3):
        result = bench.run(
            device="cpu", tiny=True, sweep=False, part=(i, 3), check=False, progress=lambda *_: None
        )
        assert result["rows"][0]["name"] == "torchvision alexnet"
        seen += [r["name"] for r in result["rows"][1:]]
        assert result["settings"]["part"] == [i, 3]
    assert seen == [
        "paper, reference layers",
        "paper, alexlib",
    ]  # the third slice holds only the yardstick
    assert len(names) == len(set(names))
    with pytest.raises(ValueError, match="part must be"):
        bench.run(device="cpu", tiny=True, part=(4, 3), progress=lambda *_: None)


def test_merged_latest_joins_the_parts_of_the_newest_gpu_run(tiny):
    # stand-in GPU runs made from the CPU run: only the merging is under test, nothing is stored
    def fake(date, commit, names):
        rows = [
            dict(r, name=n)
            for r, n in zip([tiny["rows"][0]] + [tiny["rows"][2]] * (len(names) - 1), names)
        ]
        return {
            **tiny,
            "rows": rows,
            "versions": {**tiny["versions"], "gpu": "Test GPU"},
            "provenance": {**tiny["provenance"], "date": date, "commit": commit},
        }

    old = fake("2026-01-01", "aaa", ["torchvision alexnet", "paper, alexlib"])
    part1 = fake("2026-02-01", "bbb", ["torchvision alexnet", "paper, LRN=shift"])
    part2 = fake("2026-02-02", "bbb", ["torchvision alexnet", "paper, towers=dense"])
    merged = bench.merged_latest([tiny, old, part1, part2])
    assert merged["parts"] == 2
    assert [r["name"] for r in merged["rows"]] == [
        "torchvision alexnet",
        "paper, LRN=shift",
        "paper, towers=dense",
    ]
    assert [r["run"] for r in merged["rows"]] == [0, 0, 1]
    assert bench.merged_latest([tiny]) is None  # a CPU run is never shown as a GPU benchmark


def test_fastest_forms_picks_each_axis_from_its_own_sweep_row():
    def row(name, fast, ratio, mode="default"):
        return {
            "name": name,
            "net": "paper",
            "fast": fast,
            "vs_torchvision": ratio,
            "compile_mode": mode,
        }

    ref = {"lrn": "reference", "conv": "native", "conv1": "native"}
    rows = [
        {"name": "torchvision alexnet", "net": "torchvision", "fast": None, "vs_torchvision": 1.0},
        row("paper, reference layers", None, 0.40),
        row("paper, LRN=shift", {**ref, "lrn": "shift"}, 0.55),
        row("paper, LRN=banded", {**ref, "lrn": "banded"}, 0.60),
        row("paper, towers=dense", {**ref, "conv": "dense"}, 0.35),  # slower: native stays
        row("paper, conv1=s2d", {**ref, "conv1": "s2d"}, 0.45),
        # a combination and another compile mode say nothing about one axis alone
        row("paper, LRN=shift + towers=dense", {"lrn": "shift", "conv": "dense"}, 0.9),
        row("paper, alexlib, max-autotune", {**ref, "lrn": "triton"}, 0.99, "max-autotune"),
    ]
    gpu = {"rows": rows, "settings": {"amp": True}}
    assert bench.fastest_forms(gpu) == {"lrn": "banded", "conv": "native", "conv1": "s2d"}
    assert bench.fastest_forms({**gpu, "settings": {"amp": False}}) is None  # not a GPU run
    assert bench.fastest_forms({**gpu, "rows": rows[:3]}) is None  # no sweep of every axis
