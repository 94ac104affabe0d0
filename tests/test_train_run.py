"""The full training run: the loss falls, kill -9 then --resume equals an uninterrupted run, a
diverging loss stops the run keeping the last good checkpoint, a run stuck at chance is reported,
DDP with two CPU processes equals one process on the same global batch, and the command line works
end to end.

Small and fast: the ``cifar4`` net on 32x32 CIFAR-10 images (no crop), a few hundred real images.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings

import pytest
import torch

from alexlib import engine
from alexlib import train as train_module
from alexlib.train import RunSettings, TrainingError, load_checkpoint, read_metrics, train_run

# pixel-unit inputs (the paper's convention), which lr 0.002 was chosen for
CIFAR = dict(
    dataset="cifar10",
    variant="cifar4",
    image_size=32,
    crop=32,
    batch_size=32,
    lr=0.002,
    train_per_class=20,
    val_per_class=5,
    schedule="constant",
    inputs="mean-image",
)


def cifar_args(out, epochs, *extra, per_class=20):
    return [
        sys.executable,
        "-m",
        "alexlib",
        "train",
        "--dataset",
        "cifar10",
        "--variant",
        "cifar4",
        "--image-size",
        "32",
        "--crop",
        "32",
        "--batch-size",
        "32",
        "--lr",
        "0.002",
        "--schedule",
        "constant",
        "--inputs",
        "mean-image",
        "--train-per-class",
        str(per_class),
        "--val-per-class",
        "5",
        "--epochs",
        str(epochs),
        "--out",
        str(out),
        "--device",
        "cpu",
        "--quiet",
        *extra,
    ]


def test_smoke_run_trains_and_its_loss_falls(shared_data, tmp_path):
    settings = RunSettings(
        **{**CIFAR, "train_per_class": 50}, epochs=6, data_root=str(shared_data), device="cpu"
    )
    result = train_run(settings, tmp_path / "run", progress=False)
    metrics = read_metrics(tmp_path / "run")
    assert [m["epoch"] for m in metrics] == list(range(1, 7))
    losses = [m["train_loss"] for m in metrics]
    assert losses[-1] < 0.85 * losses[0], losses
    assert metrics[-1]["train_top1_err"] < metrics[0]["train_top1_err"]
    for key in (
        "val_top1_err",
        "val_top5_err",
        "lr",
        "images_per_s",
        "seconds",
        "train_top5_err",
        "val_loss",
    ):
        assert key in result
    meta = json.loads((tmp_path / "run" / "settings.json").read_text())
    assert meta["provenance"]["torch"] == torch.__version__ and meta["settings"]["seed"] == 0
    assert meta["settings"]["precision"] == "auto" and meta["arithmetic"] == "fp32"  # the CPU's
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint.pt")  # weights_only=True
    trainer_state = {"model", "optimizer", "schedule", "rng", "history", "scaler"}
    assert trainer_state < set(checkpoint)  # the Trainer's format, as Figure 1's runs keep
    assert checkpoint["epoch"] == 6 and checkpoint["history"] == metrics
    assert checkpoint["scaler"] is None  # no gradient scaler outside fp16


def test_paper_variant_runs_a_real_epoch(shared_data, tmp_path):
    settings = RunSettings(
        dataset="imagenette",
        variant="paper",
        epochs=1,
        batch_size=10,
        train_per_class=2,
        val_per_class=1,
        data_root=str(shared_data),
        device="cpu",
    )
    result = train_run(settings, tmp_path / "paper", progress=False)
    assert result["epoch"] == 1 and 0 <= result["val_top1_err"] <= 100
    checkpoint = load_checkpoint(tmp_path / "paper" / "checkpoint.pt")
    assert checkpoint["model"]["features.1.weight"].shape == (96, 3, 11, 11)
    assert checkpoint["stats"]["mean"].shape == (3, 256, 256)


def test_kill_9_then_resume_equals_an_uninterrupted_run(shared_data, tmp_path):
    env = {**os.environ, "ALEXLIB_DATA": str(shared_data)}
    epochs = 6
    whole = subprocess.run(
        cifar_args(tmp_path / "whole", epochs, per_class=60),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert whole.returncode == 0, whole.stderr
    epoch_seconds = min(m["seconds"] for m in read_metrics(tmp_path / "whole"))

    killed = subprocess.Popen(
        cifar_args(tmp_path / "killed", epochs, per_class=60),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and killed.poll() is None:
        if metrics.exists() and metrics.read_text().count("\n") >= 1:
            break
        time.sleep(0.01)
    # somewhere in epoch 2 (or while it writes its checkpoint): at most one epoch after the first
    # ended
    time.sleep(random.uniform(0.0, epoch_seconds))
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, (
        "the run ended before it could be killed; make it longer"
    )
    done_before = len(read_metrics(tmp_path / "killed"))
    assert 1 <= done_before < epochs

    resumed = subprocess.run(
        cifar_args(tmp_path / "killed", epochs, "--resume", per_class=60),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    drop = ("seconds", "images_per_s")
    a = [{k: v for k, v in m.items() if k not in drop} for m in read_metrics(tmp_path / "whole")]
    b = [{k: v for k, v in m.items() if k not in drop} for m in read_metrics(tmp_path / "killed")]
    assert a == b  # exactly: same seed, same device, same numbers
    wa = load_checkpoint(tmp_path / "whole" / "checkpoint.pt")["model"]
    wb = load_checkpoint(tmp_path / "killed" / "checkpoint.pt")["model"]
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=0, atol=0)


def test_checkpoint_minutes_writes_fewer_checkpoints_and_always_the_last(
    shared_data, tmp_path, monkeypatch
):
    saved = []
    real_save = train_module.atomic_save
    monkeypatch.setattr(
        train_module,
        "atomic_save",
        lambda obj, path: (saved.append(obj["epoch"]), real_save(obj, path)),
    )
    base = dict(**CIFAR, epochs=3, data_root=str(shared_data), device="cpu")
    train_run(RunSettings(**base), tmp_path / "every", progress=False)
    assert saved == [1, 2, 3]
    saved.clear()
    train_run(RunSettings(**base, checkpoint_minutes=60), tmp_path / "sparse", progress=False)
    assert saved == [3]  # the run takes seconds: only the final checkpoint is due
    assert [m["epoch"] for m in read_metrics(tmp_path / "sparse")] == [
        1,
        2,
        3,
    ]  # metrics still every epoch
    assert load_checkpoint(tmp_path / "sparse" / "checkpoint.pt")["history"] == read_metrics(
        tmp_path / "sparse"
    )
    # a longer run may resume with another interval: it changes when, not what, is saved
    train_run(
        RunSettings(**{**base, "epochs": 4}, checkpoint_minutes=0),
        tmp_path / "sparse",
        resume=True,
        progress=False,
    )
    assert saved == [3, 4]
    with pytest.raises(ValueError, match="checkpoint_minutes"):
        RunSettings(**base, checkpoint_minutes=-1)


def test_an_existing_run_is_never_overwritten(shared_data, tmp_path):
    settings = RunSettings(**CIFAR, epochs=1, data_root=str(shared_data), device="cpu")
    train_run(settings, tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "checkpoint.pt").read_bytes()
    with pytest.raises(TrainingError, match="already holds a run.*--resume"):
        train_run(settings, tmp_path / "run", progress=False)
    changed = RunSettings(
        **{**CIFAR, "lr": 0.1}, epochs=1, data_root=str(shared_data), device="cpu"
    )
    with pytest.raises(TrainingError, match="different settings.*lr"):
        train_run(changed, tmp_path / "run", resume=True, progress=False)
    assert (tmp_path / "run" / "checkpoint.pt").read_bytes() == before


def test_a_diverging_loss_stops_and_keeps_the_last_good_checkpoint(
    shared_data, tmp_path, monkeypatch
):
    real = engine.F.cross_entropy
    calls = {"n": 0}
    steps_per_epoch = 200 // 32

    def poisoned(logits, target, *args, **kwargs):
        calls["n"] += 1
        loss = real(logits, target, *args, **kwargs)
        return (
            loss * float("nan") if calls["n"] > steps_per_epoch + 2 else loss
        )  # NaN early in epoch 2

    monkeypatch.setattr(engine.F, "cross_entropy", poisoned)
    settings = RunSettings(**CIFAR, epochs=3, data_root=str(shared_data), device="cpu")
    with pytest.raises(
        TrainingError, match=r"became nan in epoch 2.*epoch 1\) is kept.*--lr 0\.0002"
    ):
        train_run(settings, tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["epoch"] == 1
    assert len(read_metrics(tmp_path / "run")) == 1


def test_a_run_stuck_at_chance_is_reported(shared_data, tmp_path, monkeypatch):
    real_build = train_module.build

    def dead_build(
        *args, **kwargs
    ):  # a last layer of zeros: every image gets the same scores, loss = ln(10)
        net = real_build(*args, **kwargs)
        torch.nn.init.zeros_(net.classifier[-1].weight)
        return net

    monkeypatch.setattr(train_module, "build", dead_build)
    settings = RunSettings(
        **{**CIFAR, "lr": 1e-9}, epochs=2, chance_epochs=2, data_root=str(shared_data), device="cpu"
    )
    with pytest.warns(UserWarning, match=r"stayed at ln\(10\).*initialisation"):
        train_run(settings, tmp_path / "run", progress=False)
    assert read_metrics(tmp_path / "run")[-1]["warning"] == "stuck at chance"
    # a run that learns is not reported
    monkeypatch.setattr(train_module, "build", real_build)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train_run(
            RunSettings(
                **CIFAR, epochs=2, chance_epochs=2, data_root=str(shared_data), device="cpu"
            ),
            tmp_path / "learns",
            progress=False,
        )
    assert "warning" not in read_metrics(tmp_path / "learns")[-1]


def test_out_of_memory_says_which_batch_size_to_try(shared_data, tmp_path, monkeypatch):
    real_build = train_module.build

    def build(*args, **kwargs):
        net = real_build(*args, **kwargs)

        def boom(*a, **k):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

        net.forward = boom
        return net

    monkeypatch.setattr(train_module, "build", build)
    settings = RunSettings(**CIFAR, epochs=1, data_root=str(shared_data), device="cpu")
    with pytest.raises(TrainingError, match="out of memory at batch size 32.*--batch-size 16"):
        train_run(settings, tmp_path / "run", progress=False)


def test_ddp_two_cpu_processes_match_one_process(shared_data, tmp_path):
    env = {**os.environ, "ALEXLIB_DATA": str(shared_data), "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        cifar_args(tmp_path / "one", 2), env=env, capture_output=True, text=True, timeout=600
    )
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
            *cifar_args(tmp_path / "two", 2)[1:],
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    assert json.loads((tmp_path / "two" / "settings.json").read_text())["world_size"] == 2
    for a, b in zip(one, two):
        assert a["val_top1_err"] == pytest.approx(
            b["val_top1_err"], abs=2.1
        )  # at most one of 50 images flips
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-3)
    wa = load_checkpoint(tmp_path / "one" / "checkpoint.pt")["model"]
    wb = load_checkpoint(tmp_path / "two" / "checkpoint.pt")["model"]
    for name in wa:
        torch.testing.assert_close(wa[name], wb[name], rtol=1e-3, atol=1e-5)


def test_evaluate_command_reports_centre_and_ten_crop(shared_data, tmp_path):
    env = {**os.environ, "ALEXLIB_DATA": str(shared_data)}
    run = subprocess.run(
        cifar_args(tmp_path / "run", 1), env=env, capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "alexlib",
            "evaluate",
            "--checkpoint",
            str(tmp_path / "run" / "checkpoint.pt"),
            "--ten-crop",
            "--device",
            "cpu",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert "center crop" in result.stdout and "ten views" in result.stdout
    last = read_metrics(tmp_path / "run")[-1]
    assert (
        f"top-1 error {last['val_top1_err']:6.2f}%" in result.stdout
    )  # the centre crop the run measured


def test_bad_resume_is_a_message(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "alexlib", "evaluate", "--checkpoint", str(tmp_path / "none.pt")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        result.returncode == 2
        and "no checkpoint at" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_too_few_images_for_one_batch_is_a_message(shared_data, tmp_path):
    settings = RunSettings(
        **{**CIFAR, "train_per_class": 2}, epochs=1, data_root=str(shared_data), device="cpu"
    )
    with pytest.raises(TrainingError, match="make no full batch of 32.*--batch-size 10"):
        train_run(settings, tmp_path / "run", progress=False)
