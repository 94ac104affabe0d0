"""benchmarks/bench_cpu.py runs in its CI size, both forms compute the same function, and the
printed ratios are the ratios of the rates (not a timing test: a shared CPU's rates mean nothing
here)."""

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_cpu.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_cpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_compares_the_same_nets(bench, tmp_path, capsys):
    result = bench.main(["--tiny", "--json", str(tmp_path / "cpu.json")])
    printed = capsys.readouterr().out
    assert set(result["nets"]) == set(result["eval"]) == {"cifar4", "mini", "paper"}
    for variant, got in [*result["nets"].items(), *result["eval"].items()]:
        plain, fast = got["plain"], got["alexlib"]
        assert math.isfinite(plain["images_per_s"]) and plain["images_per_s"] > 0
        # channels-last and the banded LRN change the arithmetic's order, not the function
        assert fast["first_loss"] == pytest.approx(plain["first_loss"], rel=1e-4), variant
        assert got["ratio"] == pytest.approx(fast["images_per_s"] / plain["images_per_s"])
        assert f"({got['ratio']:.2f}x)" in printed
        for form in ("plain bf16", "alexlib bf16"):  # bf16 rounds: the same function, roughly
            assert got[form]["first_loss"] == pytest.approx(plain["first_loss"], rel=2e-2)
            ratio = got[form]["images_per_s"] / plain["images_per_s"]
            assert got["ratios"][form] == pytest.approx(ratio)
            assert f"({ratio:.2f}x)" in printed
            # and it is bf16, on every CPU (emulated where there are no bf16 instructions): a
            # column that quietly timed fp32 again would give fp32's loss to the last digit
            assert got[form]["first_loss"] != plain["first_loss"], (variant, form)
    assert result["threads"] >= 1 and "threads" in printed
    stored = json.loads((tmp_path / "cpu.json").read_text())
    assert stored["provenance"]["cpu"] and stored["provenance"]["torch"] == torch.__version__
    assert stored["cpu_bf16"] in (True, False) and stored["wall_s"] > 0
    assert ("bf16 instructions: yes" in printed) == stored["cpu_bf16"]
