"""python -m alexlib bench: runs end to end at CI size on the CPU, and its ratios are its rates' ratios.

Not a timing test: CPU rates say nothing about a GPU. It checks that every row trains the real nets,
that the table's ratios are computed from the measured rates, that the layer-by-layer equality check
runs on every fast form, and that bad requests get a clear message.
"""

import json

import pytest

from alexlib import bench
from alexlib.cli import main as cli


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
        assert f"| {r['name']} | {r['images_per_s']:,.0f} | {r['images_per_s'] / base:.2f}x |" in table
    lines = bench.summary_lines(tiny)
    assert any(line.startswith("alexlib's paper net / torchvision alexnet") for line in lines)
    assert not any("goal:" in line for line in lines)  # goals are for a GPU; a CPU run does not claim them
    assert any("not how fast a GPU trains" in line for line in lines)


def test_every_fast_form_is_checked_against_the_reference(tiny):
    forms = {(c["layer"], c["impl"]) for c in tiny["checks"]}
    assert {("conv1", "s2d"), ("lrn1", "shift"), ("lrn2", "banded"), ("conv2", "dense"), ("conv5", "split")} <= forms
    assert all(c["equal"] for c in tiny["checks"])


def test_sweep_rows_include_the_milestone_yardsticks():
    names = [c.name for c in bench.configs(True, triton=True)]
    assert "paper without LRN, groups=1" in names and "paper, LRN=triton" in names
    assert "paper, LRN=triton" not in [c.name for c in bench.configs(True, triton=False)]
    net = bench.build_net(bench.Config("g1", net="paper-nolrn-g1"))
    assert all(m.groups == 1 for m in net.modules() if hasattr(m, "groups"))


def test_cli_bench_saves_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    code = cli(["bench", "--tiny", "--device", "cpu", "--only", "torchvision alexnet", "paper, alexlib",
                "--no-check", "--save", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    saved = json.loads(out.read_text())
    assert [r["name"] for r in saved["rows"]] == ["torchvision alexnet", "paper, alexlib"]
    assert "| paper, alexlib |" in printed and f"saved {out}" in printed


def test_cli_bench_rejects_unknown_rows(capsys):
    assert cli(["bench", "--tiny", "--device", "cpu", "--only", "resnet"]) == 2
    assert "unknown row(s) ['resnet']" in capsys.readouterr().err
