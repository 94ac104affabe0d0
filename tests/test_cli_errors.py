"""Every subcommand of ``python -m alexlib`` given bad arguments: one line, ``error: ...``, a
non-zero exit status, never a traceback. Also the first-contact commands a new user types."""

from __future__ import annotations

import argparse
import errno
import json
import os
import subprocess
import sys

import pytest
import torch

from alexlib.cli import main


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


BAD = {
    # argparse: a missing command, an unknown command, a missing or malformed value
    "no command": ([], "required: command"),
    "unknown command": (["nonsense"], "invalid choice: 'nonsense'"),
    "info without a root": (["info", "--root"], "expected one argument"),
    "data with an unknown flag": (["data", "--bogus"], "unrecognized arguments: --bogus"),
    "summary with a word for a size": (["summary", "--image-size", "abc"], "invalid int value"),
    "summary of an unknown variant": (
        ["summary", "--variant", "alexnet9000"],
        "unknown variant 'alexnet9000'; the known variants are: paper,",
    ),
    "summary of a size the net cannot take": (
        ["summary", "--variant", "paper", "--image-size", "32"],
        "cannot take 32x32 inputs: it takes 64-512 pixels",
    ),
    "summary with no classes": (
        ["summary", "--num-classes", "0"],
        "num_classes must be a positive int",
    ),
    "train without --out": (
        ["train", "--dataset", "cifar10"],
        "the following arguments are required: --out",
    ),
    "train an unknown variant": (
        ["train", "--variant", "alexnet9000", "--out", "{tmp}/a"],
        "unknown variant 'alexnet9000'",
    ),
    "train at an unknown scale": (
        ["train", "--scale", "huge", "--out", "{tmp}/a"],
        "invalid choice: 'huge'",
    ),
    "train the paper net on 24-pixel crops": (
        [
            "train",
            "--dataset",
            "cifar10",
            "--variant",
            "paper",
            "--out",
            "{tmp}/a",
            "--root",
            "{data}",
        ],
        "the paper variant cannot take 24x24 inputs: it takes 64-512 pixels",
    ),
    "train with a crop larger than the image": (
        [
            "train",
            "--dataset",
            "cifar10",
            "--variant",
            "cifar4",
            "--crop",
            "40",
            "--out",
            "{tmp}/a",
        ],
        "crop (40) cannot be larger than image_size (32)",
    ),
    "train with a negative lr": (
        ["train", "--lr", "-1", "--out", "{tmp}/a"],
        "lr must be a positive number",
    ),
    "train for no epochs": (
        ["train", "--epochs", "0", "--out", "{tmp}/a"],
        "epochs must be a positive whole",
    ),
    "train on an unknown device": (
        [
            "train",
            "--dataset",
            "cifar10",
            "--variant",
            "cifar4",
            "--device",
            "banana",
            "--out",
            "{tmp}/a",
        ],
        "unknown device 'banana'",
    ),
    "train on a dataset that is not there": (
        [
            "train",
            "--dataset",
            "cifar10",
            "--variant",
            "cifar4",
            "--root",
            "{tmp}/empty",
            "--out",
            "{tmp}/a",
        ],
        "dataset 'cifar10' was not found",
    ),
    "train with an unknown input convention": (
        ["train", "--inputs", "raw", "--out", "{tmp}/a"],
        "invalid choice: 'raw'",
    ),
    "evaluate a missing checkpoint": (
        ["evaluate", "--checkpoint", "{tmp}/none.pt"],
        "no checkpoint at",
    ),
    "evaluate a file that is not a checkpoint": (
        ["evaluate", "--checkpoint", "{tmp}/junk.pt"],
        "is not a readable checkpoint",
    ),
    "figure with a number the paper's figures are not": (["figure", "2"], "invalid choice: '2'"),
    "figure at an unknown scale": (["figure", "1", "--scale", "huge"], "invalid choice: 'huge'"),
    "ledger without a subcommand": (["ledger"], "required: ledger_command"),
    "ledger with an unknown ablation": (
        ["ledger", "run", "--scale", "smoke", "--only", "nope", "--out", "{tmp}/l"],
        "unknown ablation(s) ['nope']",
    ),
    "ledger with no seeds": (
        ["ledger", "run", "--scale", "smoke", "--seeds", "0", "--out", "{tmp}/l"],
        "seeds must be a positive whole number",
    ),
    "ledger with a count and a list of seeds": (
        ["ledger", "run", "--seeds", "2", "--seed", "3", "--out", "{tmp}/l"],
        "argument --seed: not allowed with argument --seeds",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_arguments_give_one_line(case, tmp_path, capsys, shared_data):
    argv, expected = BAD[case]
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "empty").mkdir()
    argv = [a.format(tmp=tmp_path, data=shared_data) for a in argv]
    code, _, err = run(argv, capsys)
    assert code not in (0, None), f"{case}: exit status {code}"
    line = one_error_line(err)
    assert expected in line, f"{case}: {line}"


def test_every_subcommand_is_covered():
    from alexlib.cli import _parser

    (sub,) = [a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)]
    parser_commands = set(sub.choices)
    assert {"train", "evaluate", "figure", "ledger"} <= parser_commands
    covered = {argv[0] for argv, _ in BAD.values() if argv}
    assert parser_commands <= covered, parser_commands - covered


def test_a_figure_without_its_data_is_one_line_and_stores_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ALEXLIB_RESULTS", str(tmp_path / "results"))
    (tmp_path / "empty").mkdir()
    argv = ["figure", "3", "--scale", "smoke", "--root", str(tmp_path / "empty")]
    code, _, err = run([*argv, "--runs", str(tmp_path / "runs")], capsys)
    assert code == 2
    assert "dataset 'imagenette' was not found" in one_error_line(err)
    assert not (tmp_path / "results").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU can train on cuda")
def test_asking_for_a_gpu_that_is_not_there(tmp_path, capsys):
    code, _, err = run(
        [
            "train",
            "--dataset",
            "cifar10",
            "--variant",
            "cifar4",
            "--device",
            "cuda",
            "--out",
            str(tmp_path / "a"),
        ],
        capsys,
    )
    assert code == 2 and "torch sees no CUDA GPU" in one_error_line(err)


def test_an_existing_run_is_not_overwritten(tmp_path, capsys, shared_data):
    argv = [
        "train",
        "--dataset",
        "cifar10",
        "--variant",
        "cifar4",
        "--epochs",
        "1",
        "--train-per-class",
        "4",
        "--val-per-class",
        "2",
        "--batch-size",
        "8",
        "--root",
        str(shared_data),
        "--out",
        str(tmp_path / "r"),
        "--quiet",
    ]
    assert run(argv, capsys)[0] == 0
    code, _, err = run(argv, capsys)
    assert code == 2 and "already holds a run" in one_error_line(err)


def test_cifar10_trains_from_the_command_line(tmp_path, shared_data):
    """The first command of the engine issue, as a new user types it (smoke: 20 images per
    class)."""
    out = tmp_path / "a"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alexlib",
            "train",
            "--dataset",
            "cifar10",
            "--variant",
            "cifar4",
            "--scale",
            "smoke",
            "--epochs",
            "2",
            "--out",
            str(out),
            "--root",
            str(shared_data),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
    settings = json.loads((out / "settings.json").read_text())
    s = settings["settings"]
    assert (s["image_size"], s["crop"], s["inputs"], s["pca_colour"]) == (
        32,
        24,
        "standardise",
        False,
    )
    assert "commit" in settings["provenance"] and "cpu" in settings["provenance"]
    evaluated = subprocess.run(
        [
            sys.executable,
            "-m",
            "alexlib",
            "evaluate",
            "--checkpoint",
            str(out / "checkpoint.pt"),
            "--ten-crop",
            "--root",
            str(shared_data),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert evaluated.returncode == 0, evaluated.stderr
    centre = evaluated.stdout.splitlines()[1].split()
    assert float(centre[4].rstrip("%")) == pytest.approx(metrics[-1]["val_top1_err"], abs=1e-6)
    assert "ten views" in evaluated.stdout


def test_an_unknown_variant_is_one_line_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "alexlib", "summary", "--variant", "alexnet9000"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: unknown variant")


class _FullDisk:
    """A file on a disk that fills up after ``room`` bytes: writes past it fail as the operating
    system fails them (ENOSPC)."""

    def __init__(self, raw, room: int):
        self._raw, self._room = raw, room

    def write(self, data) -> int:
        if len(data) > self._room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self._room -= len(data)
        return self._raw.write(data)

    def __getattr__(self, name):
        return getattr(self._raw, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._raw.close()


def test_a_full_disk_while_a_checkpoint_is_written(tmp_path, capsys, shared_data, monkeypatch):
    """One ``error:`` line, and the previous checkpoint still loads and resumes."""
    import alexlib._io

    out = tmp_path / "r"
    argv = ["train", "--dataset", "cifar10", "--variant", "cifar4", "--epochs", "1"]
    argv += ["--train-per-class", "4", "--val-per-class", "2", "--batch-size", "8"]
    argv += ["--root", str(shared_data), "--out", str(out), "--quiet"]
    assert run(argv, capsys)[0] == 0
    before = (out / "checkpoint.pt").read_bytes()

    def full_disk_open(file, mode="r", *args, **kw):
        raw = open(file, mode, *args, **kw)
        return _FullDisk(raw, room=4096) if "checkpoint.pt" in str(file) else raw

    monkeypatch.setattr(alexlib._io, "open", full_disk_open, raising=False)
    code, _, err = run([*argv[:6], "2", *argv[7:], "--resume"], capsys)
    line = one_error_line(err)
    assert code == 2 and "No space left on device" in line and "checkpoint.pt" in line
    assert "is unchanged" in line
    assert (out / "checkpoint.pt").read_bytes() == before
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]

    monkeypatch.undo()  # space freed: the same command resumes from the kept checkpoint
    assert run([*argv[:6], "2", *argv[7:], "--resume"], capsys)[0] == 0
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in metrics] == [1, 2]
