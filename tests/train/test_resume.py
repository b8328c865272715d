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

from mlpmixer.checkpoints.train_state import load_train_state
from mlpmixer.train import TrainConfig, train

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


@pytest.mark.parametrize("where", ["model", "optimizer"])
def test_a_stride_0_tensor_in_last_pt_is_refused_before_use(tmp_path, where):
    """Issue 9 item 6 for training checkpoints: a tensor viewing more than its storage (stride
    0: 16 MB here, terabytes in a hostile file) was accepted on resume and when last.pt is
    loaded as a model; .pth files already refused it. Checked before the checksum is computed."""
    import mlpmixer
    from mlpmixer.checkpoints import train_state as state_module
    from mlpmixer.errors import CheckpointError

    huge = torch.zeros(1).expand(2000, 2000)
    if where == "model":
        content = {"model": {"stem.weight": huge}}
    else:
        content = {"model": {}, "optimizer": {"state": {0: {"exp_avg": [torch.ones(2), huge]}}}}
    full = {"format": state_module.FORMAT, "version": state_module.VERSION, **content}
    full["sha256"] = state_module.state_digest(full)  # a valid file in every other respect
    path = state_module.checkpoint_path(tmp_path)
    path.parent.mkdir(parents=True)
    torch.save(full, path)
    assert torch.load(path, weights_only=True)["sha256"] == full["sha256"]
    with pytest.raises(CheckpointError, match=r"last\.pt: tensor .* \(stride 0 or overlapping\)"):
        load_train_state(tmp_path)
    (tmp_path / "config.yaml").write_text("{}\n")  # a run directory: last.pt loads as a model
    with pytest.raises(CheckpointError, match=r"stride 0 or overlapping"):
        mlpmixer.load_model(path)
