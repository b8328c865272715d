"""Crashes lose nothing: kills at chosen points, Ctrl-C, a full disk, damaged or hostile
training checkpoints, and bad configuration caught before any training step.

`tests/train/test_resume.py` already kills a run at a random moment and checks bitwise
equality after ``--resume``; here the kill points are the dangerous ones: in the middle of
a checkpoint write (the file half on disk, not yet renamed) and after the last checkpoint
but before the final model is written. Every resumed run must end with exactly the weights
of one uninterrupted run (same seed, CPU, one thread).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from safetensors.torch import load_file

import mlpmixer.checkpoints.train_state as state_module
from mlpmixer.checkpoints.train_state import checkpoint_path, load_train_state
from mlpmixer.cli import cli
from mlpmixer.errors import CheckpointError, RunError
from mlpmixer.train import TrainConfig, train

DRIVER = Path(__file__).with_name("crash_driver.py")
EVERY = 10  # checkpoint every 10 steps; digits train split = 22 steps of 64 per epoch
CONFIG = {
    "model": {
        "name": "mixer_t2_8",
        "overrides": {"hidden_dim": 16, "channels_mlp_dim": 32, "tokens_mlp_dim": 8,
                      "num_blocks": 2, "drop_path_rate": 0.1},
    },
    "data": {"dataset": "digits"},
    "optim": {"name": "adamw", "lr": 0.003, "weight_decay": 0.05},
    "schedule": {"name": "cosine", "warmup_steps": 3},
    "train": {"epochs": 2, "batch_size": 64, "threads": 1, "checkpoint_every_steps": EVERY},
    "run": {"progress": "none", "plot": False},
}  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "model" / "model.safetensors")


def _assert_same_weights(run_dir: Path, reference: dict[str, torch.Tensor]) -> None:
    got = _weights(run_dir)
    assert got.keys() == reference.keys()
    for key, value in reference.items():
        assert torch.equal(got[key], value), key


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, torch.Tensor]:
    """Final weights of the uninterrupted run."""
    out = tmp_path_factory.mktemp("ref") / "run"
    train(TrainConfig.from_dict({**CONFIG, "run": {**CONFIG["run"], "out": str(out)}}))
    return _weights(out)


def _crash(
    mode: str, n: int, config_file: Path, out: Path, *more: str
) -> subprocess.CompletedProcess:
    args = ["train", "--config", str(config_file), "--out", str(out), *more]
    command = [sys.executable, str(DRIVER), mode, str(n), "--", *args]
    return subprocess.run(
        command, capture_output=True, text=True, env=ENV, timeout=120, start_new_session=True
    )


def _resume(out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mlpmixer", "train", "--resume", str(out)]
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=120)


@pytest.mark.slow
def test_kill_during_a_checkpoint_write_keeps_the_previous_one(tmp_path, config_file, reference):
    out = tmp_path / "run"
    crashed = _crash("kill-in-checkpoint-write", 3, config_file, out)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    # the half-written third checkpoint was never renamed: the second one is intact
    assert load_train_state(out)["progress"]["global_step"] == 2 * EVERY
    assert not (out / "summary.json").exists()
    resumed = _resume(out)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_weights(out, reference)


@pytest.mark.slow
def test_kill_after_the_last_checkpoint_before_the_final_model(tmp_path, config_file, reference):
    out = tmp_path / "run"
    crashed = _crash("kill-before-outputs", 0, config_file, out)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert not (out / "model").exists() and not (out / "summary.json").exists()
    resumed = _resume(out)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_weights(out, reference)
    # nothing was left to train, yet the summary has the final test metrics
    import json

    last_epoch = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["test_top1"] == last_epoch["test_top1"]


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tmp_path, config_file, reference):
    out = tmp_path / "run"
    stopped = _crash("sigint-after-step", 13, config_file, out)
    assert stopped.returncode == 130, stopped.stderr
    assert "Traceback" not in stopped.stderr
    assert f"interrupted at global step 13; checkpoint saved to {checkpoint_path(out)}" in (
        stopped.stderr.replace("\n", "")
    )
    assert load_train_state(out)["progress"]["global_step"] == 13  # not the periodic 10
    assert not (out / "summary.json").exists()
    resumed = _resume(out)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_weights(out, reference)


@pytest.mark.slow
def test_ctrl_c_from_a_terminal_with_loader_workers(tmp_path, config_file):
    """The terminal sends SIGINT to the whole group: workers must keep serving batches."""
    from PIL import Image

    data = tmp_path / "data"
    for part, count in (("train", 12), ("val", 2)):
        for cls in ("a", "b"):
            (data / part / cls).mkdir(parents=True)
            for i in range(count):
                Image.new("L", (8, 8), 10 * i).save(data / part / cls / f"{i}.png")
    out = tmp_path / "run"
    more = ["--dataset", str(data), "--batch-size", "4", "--set", "model.img_size=8",
            "--set", "data.num_workers=2"]  # fmt: skip
    stopped = _crash("sigint-group-after-step", 3, config_file, out, *more)
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.count("interrupt: finishing the current step") == 1  # not per worker
    assert load_train_state(out)["progress"]["global_step"] == 3
    resumed = _resume(out)
    assert resumed.returncode == 0, resumed.stderr
    assert (out / "summary.json").is_file()


@pytest.mark.slow
def test_disk_full_while_saving_is_reported_and_the_previous_checkpoint_kept(
    tmp_path, monkeypatch, reference
):
    out = tmp_path / "run"
    real_save = torch.save
    calls = {"n": 0}

    def save(obj, file, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # (an open file object: see test_bad_output_and_disk for real ENOSPC)
            file.write(b"PK\x03\x04 partial")  # some bytes reach the temporary file, then ENOSPC
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, file, *args, **kwargs)

    monkeypatch.setattr(state_module.torch, "save", save)
    config = TrainConfig.from_dict({**CONFIG, "run": {**CONFIG["run"], "out": str(out)}})
    with pytest.raises(RunError, match=r"disk is full; the previous checkpoint is kept.*--resume"):
        train(config)
    assert load_train_state(out)["progress"]["global_step"] == EVERY
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt"]  # no temp left
    monkeypatch.setattr(state_module.torch, "save", real_save)
    train(resume=out)  # space freed: the run continues to the same end
    _assert_same_weights(out, reference)


# --- damaged and hostile training checkpoints -----------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, reference) -> Path:
    out = tmp_path_factory.mktemp("done") / "run"
    train(TrainConfig.from_dict({**CONFIG, "train": {**CONFIG["train"], "epochs": 1},
                                 "run": {**CONFIG["run"], "out": str(out)}}))  # fmt: skip
    return out


def _copy_run(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to)
    return to


@pytest.mark.slow
def test_a_changed_tensor_fails_the_checksum(tmp_path, finished_run):
    run = _copy_run(finished_run, tmp_path / "run")
    state = torch.load(checkpoint_path(run), weights_only=True)
    assert len(state["sha256"]) == 64
    next(iter(state["model"].values())).view(-1)[0] += 1e-3
    torch.save(state, checkpoint_path(run))
    with pytest.raises(CheckpointError, match="checksum does not match"):
        load_train_state(run)


def _tensor_records(path: Path) -> list[tuple[int, int]]:
    """(offset, size) of the stored tensor records in a torch zip file, largest first."""
    import zipfile

    records = []
    with zipfile.ZipFile(path) as archive, open(path, "rb") as f:
        for info in archive.infolist():
            if "/data/" in info.filename and info.file_size > 0:
                f.seek(info.header_offset + 26)  # local header: name and extra lengths
                name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
                records.append((info.header_offset + 30 + name_len + extra_len, info.file_size))
    return sorted(records, key=lambda r: -r[1])


@pytest.mark.slow
@pytest.mark.parametrize("record", [0, 1, 2])
def test_a_flipped_bit_in_tensor_data_or_a_truncation_is_refused(tmp_path, finished_run, record):
    run = _copy_run(finished_run, tmp_path / "run")
    path = checkpoint_path(run)
    offset, size = _tensor_records(path)[record]
    data = bytearray(path.read_bytes())
    data[offset + size // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(
        CheckpointError, match=r"last\.pt: (not a readable|the training checkpoint)"
    ):
        load_train_state(run)
    path.write_bytes(bytes(data[: offset + size // 2]))
    with pytest.raises(CheckpointError, match=r"last\.pt: not a readable training checkpoint"):
        load_train_state(run)


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {_Exploit.marker}",))


@pytest.mark.slow
def test_a_pickle_with_code_in_last_pt_is_never_run(tmp_path, finished_run):
    run = _copy_run(finished_run, tmp_path / "run")
    _Exploit.marker = tmp_path / "pwned"
    torch.save({"format": "mlpmixer-train-state", "model": _Exploit()}, checkpoint_path(run))
    result = CliRunner().invoke(cli, ["train", "--resume", str(run)])
    assert result.exit_code == 2
    assert "not a readable training checkpoint" in result.output
    assert not _Exploit.marker.exists()


# --- bad configuration: rejected before any training step -----------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "train.batch_sise=3"], r"unknown config key\(s\) train\.batch_sise; known keys"),
        (["--set", "optim.lr=fast"], r"optim\.lr must be float"),
        (["--set", "train.epochs=-1"], r"train\.epochs must be >= 1"),
        (["--set", "data.interpolation=cubic"], r"data\.interpolation must be 'nearest' \|"),
        (["--set", "model.overrides.hidden_dim=-4"], r"hidden_dim must be an int > 0, got -4"),
        (["--set", "model.overrides.patch_size=3"], r"not divisible by patch_size \(3, 3\)"),
        (["--batch-size", "5000"], r"train\.batch_size=5000 is larger than the training set"),
        (["--dataset", "/nonexistent/dir"], r"unknown data set '/nonexistent/dir'"),
        (["--config", "/nonexistent.yaml"], r"cannot read config file /nonexistent\.yaml"),
        (["--resume", "/nonexistent_run"], r"/nonexistent_run: not a run directory"),
    ],
)
def test_bad_configuration_is_rejected_before_training(tmp_path, monkeypatch, args, message):
    from mlpmixer.train.loop import Trainer

    def no_step(*a, **k):
        raise AssertionError("a training step ran")

    monkeypatch.setattr(Trainer, "train_step", no_step)
    out = tmp_path / "run"
    base = ["train", "--out", str(out), "--set", "train.threads=1", "--set", "run.progress=none"]
    result = CliRunner().invoke(cli, [*base, *args])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) <= 2 and "Traceback" not in result.output
    assert __import__("re").search(message, result.output.replace("\n", "")), result.output
    # nothing written: at most the directory and its lock file (held while the run starts)
    assert not out.exists() or not [p for p in out.iterdir() if p.name != ".lock"]


@pytest.mark.slow
def test_a_checkpoint_that_does_not_fit_the_model_is_a_clean_error(tmp_path, finished_run):
    run = _copy_run(finished_run, tmp_path / "run")
    state = torch.load(checkpoint_path(run), weights_only=True)
    state["model"]["head.weight"] = torch.zeros(3)  # absurd shape, with a valid checksum
    state["sha256"] = state_module.state_digest(state)
    torch.save(state, checkpoint_path(run))
    result = CliRunner().invoke(cli, ["train", "--resume", str(run)])
    assert result.exit_code == 2, result.output
    text = result.output.replace("\n", "")
    assert "last.pt does not fit this run's model or optimizer" in text
    assert "head.weight" in text and "config.yaml edited?" in text
    assert len(result.output.strip().splitlines()) <= 2 and "Traceback" not in result.output


@pytest.mark.slow
def test_disk_full_while_writing_the_final_model_is_one_line_and_resumable(
    tmp_path, monkeypatch, reference
):
    import mlpmixer.checkpoints.native as native_module

    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    real = native_module.write_native
    monkeypatch.setattr(native_module, "write_native", full)
    out = tmp_path / "run"
    args = ["train", "--out", str(out)]
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    result = CliRunner().invoke(cli, [*args, "--config", str(config)])
    assert result.exit_code == 1, result.output
    text = result.output.replace("\n", "")
    assert (
        f"No space left on device ({out / 'model'}); free space and continue with --resume" in text
    )
    assert "bug" not in text and "Traceback" not in text
    assert load_train_state(out)["progress"]["global_step"] == 2 * 22  # final: 1437 images // 64
    monkeypatch.setattr(native_module, "write_native", real)
    assert CliRunner().invoke(cli, ["train", "--resume", str(out)]).exit_code == 0
    _assert_same_weights(out, reference)


def test_nonfinite_loss_from_the_cli_exits_1_naming_the_step(tmp_path, monkeypatch):
    import mlpmixer.train.loop as loop_module

    real = loop_module.compute_loss
    calls = {"n": 0}

    def exploding(logits, targets, kind):
        calls["n"] += 1
        loss = real(logits, targets, kind)
        return loss * float("inf") if calls["n"] == 12 else loss

    monkeypatch.setattr(loop_module, "compute_loss", exploding)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    out = tmp_path / "run"
    result = CliRunner().invoke(cli, ["train", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "global step 12" in result.output.replace("\n", "")
    assert load_train_state(out)["progress"]["global_step"] == EVERY  # the last good one
    assert not (out / "model").exists()
