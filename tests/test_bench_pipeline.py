"""benchmarks/bench_pipeline.py runs end to end in its CI size and reports consistent numbers.

Not a timing test: the rates on a shared CPU mean nothing; the test checks that every measurement
runs through the real pipelines and model, and that the printed ratios are the ratios of the rates.
"""

import importlib.util
import json
import math
from pathlib import Path

import pytest
from torch.testing import assert_close

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_pipeline.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_pipeline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_on_cpu(bench, tmp_path, capsys, shared_data):
    out = tmp_path / "bench.json"
    result = bench.main(
        ["--tiny", "--device", "cpu", "--json", str(out), "--data", str(shared_data)]
    )
    printed = capsys.readouterr().out
    rates = result["images_per_s"]
    assert set(rates) == {"gpu_pipeline", "cpu_pipeline", "stream_pipeline", "train_step"}
    for key, rate in rates.items():  # the stream reads the shared data's Imagenette JPEGs
        assert math.isfinite(rate) and rate > 0, key
    for key, ratio in result["ratios"].items():
        top, bottom = key.split("/")
        assert_close(ratio, rates[top] / rates[bottom])
        assert f"ratio {key}" in printed
    assert set(result["ratios"]) == {
        "gpu_pipeline/train_step",
        "cpu_pipeline/train_step",
        "stream_pipeline/train_step",
        "gpu_pipeline/cpu_pipeline",
    }
    assert result["keeps_up"] == (result["ratios"]["gpu_pipeline/train_step"] >= 3)
    assert (
        "training step (paper)" in printed
        and "GPU pipeline" in printed
        and "CPU pipeline" in printed
    )
    assert json.loads(out.read_text())["ratios"] == pytest.approx(result["ratios"])


def test_runs_without_the_jpegs(bench, tmp_path, capsys):
    result = bench.main(["--tiny", "--device", "cpu", "--data", str(tmp_path), "--steps", "1"])
    assert result["images_per_s"]["stream_pipeline"] is None
    assert "stream pipeline skipped: dataset 'imagenette' was not found" in capsys.readouterr().err
    assert set(result["ratios"]) == {
        "gpu_pipeline/train_step",
        "cpu_pipeline/train_step",
        "gpu_pipeline/cpu_pipeline",
    }


def test_bad_arguments_are_explained(bench, capsys):
    with pytest.raises(SystemExit):
        bench.parse_args(["--tiny", "--images", "1", "--batch-size", "4"])
    assert "--images (1) must be at least --batch-size (4)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--steps", "0"])
    assert "--steps must be positive" in capsys.readouterr().err
