"""kill -9 in the middle of a CPU run, --resume, and the final weights are bitwise identical."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mlpmixer.train import TrainConfig, train
from mlpmixer.train.state import load_train_state

from .conftest import tiny_config


def _random_everything() -> dict:
    """Dropout, stochastic depth, augmentation, mixup and EMA: every RNG consumer is on."""
    return tiny_config(
        model={"overrides": {"hidden_dim": 16, "channels_mlp_dim": 32, "tokens_mlp_dim": 8,
                             "num_blocks": 2, "drop_rate": 0.1, "drop_path_rate": 0.2}},
        augment={"affine_translate": 0.125, "affine_degrees": 10.0, "mixup_alpha": 0.2},
        train={"epochs": 3, "checkpoint_every_steps": 7, "ema_decay": 0.9},
    )  # fmt: skip


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "mlpmixer", *args]


@pytest.mark.slow
def test_sigkill_then_resume_gives_bitwise_identical_weights(tmp_path):
    data = _random_everything()
    config_file = tmp_path / "tiny.yaml"
    config_file.write_text(yaml.safe_dump(data))
    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    process = subprocess.Popen(_cli("train", "--config", str(config_file), "--out", str(killed)),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)  # fmt: skip
    checkpoint = killed / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read().decode()
    assert not (killed / "summary.json").exists()  # it really stopped mid-run
    step_at_kill = load_train_state(killed)["progress"]["global_step"]
    total = 3 * (1438 // 64)
    assert 0 < step_at_kill < total

    resumed = subprocess.run(
        _cli("train", "--resume", str(killed), "--json"), capture_output=True, env=env, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr.decode()

    reference = train(TrainConfig.from_dict(data), overrides=[f"run.out={tmp_path / 'reference'}"])
    for folder in ("model", "model_ema"):
        got = load_file(killed / folder / "model.safetensors")
        want = load_file(tmp_path / "reference" / folder / "model.safetensors")
        assert got.keys() == want.keys()
        assert all(torch.equal(got[k], want[k]) for k in want), folder
    assert reference.summary["steps"] == total

    # the metrics of the epochs replayed after the crash are the uninterrupted run's
    def losses(run):
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [(r["epoch"], r["train_loss"], r["test_top1"]) for r in map(yaml.safe_load, lines)]

    assert losses("killed") == losses("reference")
