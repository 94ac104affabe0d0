"""The command line: ``python -m alexlib info``, ``data``, ``summary`` and ``figure``."""

from __future__ import annotations

import subprocess
import sys

import pytest

from alexlib.cli import main
from alexlib.config import preset
from alexlib.model import VARIANTS


def test_data_reports_the_shared_counts(shared_data, capsys):
    assert main(["data", "--root", str(shared_data)]) == 0
    out = capsys.readouterr().out
    lines = {
        line.split()[0]: line
        for line in out.splitlines()
        if line and not line.startswith("data root")
    }
    assert "50000/10000" in lines["cifar10"] and "train 50000" in lines["cifar10"]
    assert "9469/3925" in lines["imagenette"] and "val 3925" in lines["imagenette"]
    assert "not found" in lines["imagenet"]


def test_data_on_an_empty_root_lists_where_it_looked(tmp_path, capsys):
    assert main(["data", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"data root: {tmp_path} (argument)" in out
    assert "cifar10" in out and "looked for cifar10-jpeg" in out


def test_info_runs_as_a_module(shared_data):
    result = subprocess.run(
        [sys.executable, "-m", "alexlib", "info", "--root", str(shared_data)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "torch" in result.stdout and "device" in result.stdout
    if "no CUDA GPU seen" in result.stdout:
        from alexlib.engine import cpu_has_bf16

        said = "bf16 instructions: yes" if cpu_has_bf16() else "bf16 instructions: no"
        assert said in result.stdout
    assert f"present: {shared_data / 'imagenette-224'}" in result.stdout


@pytest.mark.parametrize("has_bf16", [True, False])
def test_info_s_own_lines_fit_chapter_0_s_output_box(monkeypatch, capsys, tmp_path, has_bf16):
    # chapter 0 prints this; its output box holds about 90 characters a line (the book test's
    # chromium check failed CI at 105). Lines carrying a path vary with the machine; the rest
    # are the library's words and must fit on every machine.
    from alexlib import cli

    monkeypatch.setattr(cli, "cpu_has_bf16", lambda: has_bf16)
    cli.print_info(str(tmp_path))
    for line in capsys.readouterr().out.splitlines():
        if str(tmp_path) not in line and "/" not in line:
            assert len(line) <= 88, line


def test_a_damaged_dataset_is_reported_not_a_traceback(tmp_path):
    folder = tmp_path / "imagenette-224"
    folder.mkdir()
    for name in ("train.zip", "val.zip"):
        (folder / name).write_bytes(b"PK\x03\x04 cut short")
    result = subprocess.run(
        [sys.executable, "-m", "alexlib", "data", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr + result.stdout
    assert "problem:" in result.stdout and "truncated or corrupt" in result.stdout


@pytest.mark.parametrize("command", ["data", "info"])
def test_a_data_root_that_is_a_file_is_one_error_line(command, tmp_path, capsys):
    afile = tmp_path / "cifar10.zip"
    afile.write_bytes(b"not a folder")
    assert main([command, "--root", str(afile)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: the data root ")
    assert "is a file, not a folder" in err[0]


@pytest.mark.parametrize("variant", VARIANTS)
def test_summary_runs_for_every_registered_variant(variant, capsys):
    # The size probe once ran BatchNorm in training mode on one image, so `bn` had "no size".
    assert main(["summary", "--variant", variant]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("parameters: ")


def test_summary_prints_the_layer_table_and_the_parameter_count(capsys):
    assert main(["summary", "--variant", "paper"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "parameters: 60,965,224"
    assert main(["summary", "--variant", "onegpu2014", "--image-size", "227"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "parameters: 61,100,840"
    assert main(["summary", "--variant", "cifar4"]) == 0  # 32x32 and 10 classes by default
    assert capsys.readouterr().out.strip().splitlines()[-1] == "parameters: 89,578"
    assert (
        main(["summary", "--variant", "cifar4", "--image-size", "24"]) == 0
    )  # fc sized to the maps
    assert capsys.readouterr().out.strip().splitlines()[-1] == "parameters: 85,098"
    assert main(["summary", "--variant", "paper", "--image-size", "32"]) == 2
    assert "cannot take 32x32 inputs: it takes 64-512 pixels" in capsys.readouterr().err


def test_every_train_flag_is_a_flag_of_the_train_command_and_a_run_setting():
    import dataclasses

    from alexlib.cli import _parser
    from alexlib.parallel import train_command
    from alexlib.train import TRAIN_FLAGS, RunSettings

    fields = {f.name for f in dataclasses.fields(RunSettings)}
    assert set(TRAIN_FLAGS) <= fields
    train = _parser()._subparsers._group_actions[0].choices["train"]
    dests = {a.dest for a in train._actions}
    assert set(TRAIN_FLAGS) <= dests
    # what train_command writes, the train command parses back to the same values
    cmd = train_command("out", epochs=3, image_size=32, data_root="/data", precision="fp32")
    args = _parser().parse_args(cmd[cmd.index("train") :])
    assert (args.epochs, args.image_size, args.data_root, args.precision) == (
        3,
        32,
        "/data",
        "fp32",
    )


def test_the_figure_command_runs_each_figure_s_jobs_in_the_book_s_order(monkeypatch, tmp_path):
    import alexlib.cli as cli

    calls = []

    def figure1(scale, *, regime, search, first_seeds=None, state_dir, **kw):
        calls.append(("figure1", scale, regime, search, first_seeds, state_dir))
        return []

    monkeypatch.setattr(cli, "run_figure1", figure1)
    monkeypatch.setattr(cli, "summarise_figure1", lambda runs: {})
    monkeypatch.setattr(cli, "format_figure1", lambda summary: "")
    monkeypatch.setattr(cli, "load", lambda *a, **kw: "cifar10 train")
    monkeypatch.setattr(
        cli, "backfill_activations", lambda scale, regime, *a: calls.append(("acts", regime))
    )
    monkeypatch.setattr(cli, "figure3_net", lambda variant, *a: calls.append((variant,) + a[:3]))
    monkeypatch.setattr(cli, "figure4_result", lambda *a: calls.append(("figure4",) + a))
    runs = tmp_path / "runs"
    assert cli.main(["figure", "1", "--scale", "laptop", "--runs", str(runs)]) == 0
    # each regime's first seed, then its other seeds, then each regime's rate search
    assert [c[2:5] for c in calls[:6]] == [
        ("paper", False, 1),
        ("today", False, 1),
        ("paper", False, None),
        ("today", False, None),
        ("paper", True, None),
        ("today", True, None),
    ]
    assert {c[1] for c in calls[:6]} == {"laptop"} and calls[0][5] == runs / "figure1"
    assert calls[6:] == [("acts", "paper"), ("acts", "today")]
    calls.clear()
    assert cli.main(["figure", "3", "--scale", "smoke", "--tag", "t", "--runs", str(runs)]) == 0
    s = preset("figure3", "smoke")
    first = s["seeds"][0]
    want = [("paper", "smoke", seed, "t") for seed in s["seeds"]]
    assert calls == want + [(variant, "smoke", first, "t") for variant in s["variants"]]
    calls.clear()
    assert cli.main(["figure", "4", "--scale", "smoke", "--runs", str(runs)]) == 0
    assert calls == [("figure4", "smoke", "smoke", runs, None)]
