"""Training from shards: kill -9 mid-epoch, --resume, bitwise the same final weights, with one
process and with two gloo processes (each reading its share of every global batch); another
number of processes: tests/train/test_shard_resume_any_count.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mlpmixer.checkpoints.train_state import load_train_state
from mlpmixer.train import TrainConfig, train
from shard_helpers import make_shards

from .conftest import TINY_MODEL

HERE = Path(__file__).parent
CRASH_DRIVER = HERE.parent / "reliability" / "crash_driver.py"
WORKER = HERE / "ddp_worker.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
# 36 training samples in shards of 5, batch 8: 4 steps per epoch, 12 in all; checkpoints at
# steps 3, 6 and 9, so the kill after step 6 stops the run in the middle of epoch 2
STEPS_PER_EPOCH, EVERY = 4, 3


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("shards"))


def _config(shards: Path, workers: int) -> dict:
    return {
        "model": {"name": "mixer_t2_8", "img_size": 8,
                  "overrides": {**TINY_MODEL, "drop_path_rate": 0.1}},
        "data": {"dataset": str(shards), "num_workers": workers},
        # worker side (uint8, seeded per sample): inception crop, flip, RandAugment;
        # device side: affine, mixup
        "augment": {"random_resized_crop": True, "hflip": True, "randaugment_n": 2,
                    "randaugment_m": 15, "affine_translate": 0.125, "mixup_alpha": 0.2},
        "optim": {"name": "sgd", "lr": 0.05},
        "train": {"epochs": 3, "batch_size": 8, "threads": 1, "checkpoint_every_steps": EVERY},
        "run": {"progress": "none", "plot": False},
    }  # fmt: skip


def _same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():
        assert torch.equal(got[key], value), key


@pytest.mark.slow
def test_kill_mid_epoch_then_resume_is_bitwise_identical(shards, tmp_path):
    data = _config(shards, workers=2)
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "killed"
    args = ["train", "--config", str(config_file), "--out", str(out)]
    # checkpoints at steps 3, 4 (epoch end), 6, 8: SIGKILL while the step-8 one is half
    # written, so the step-6 one (mid-epoch 2) is kept
    crashed = subprocess.run([sys.executable, str(CRASH_DRIVER), "kill-in-checkpoint-write", "4",
                              "--", *args], capture_output=True, text=True, env=ENV, timeout=300)  # fmt: skip
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    progress = load_train_state(out)["progress"]
    assert progress["global_step"] == 2 * EVERY and progress["step_in_epoch"] == 2  # mid-epoch
    resume = [sys.executable, "-m", "mlpmixer", "train", "--resume", str(out)]
    order = json.loads((out / "data_order.json").read_text())
    assert order == {"order": "global-batches", "lanes": 16, "world_size": 1}
    resumed = subprocess.run(resume, capture_output=True, text=True, env=ENV, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    # the reference reads without workers: the samples do not depend on the worker count
    reference = train(TrainConfig.from_dict(data),
                      overrides=[f"run.out={tmp_path / 'ref'}", "data.num_workers=0"])  # fmt: skip
    assert reference.summary["steps"] == 3 * STEPS_PER_EPOCH
    _same(load_file(out / "model" / "model.safetensors"), reference.model.state_dict())


def _torchrun(config_file: Path, out: Path, *flags: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", str(WORKER), str(config_file), str(out), *flags]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)


@pytest.mark.slow
def test_two_processes_kill_mid_epoch_then_resume_is_bitwise_identical(shards, tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text(yaml.safe_dump(_config(shards, workers=2)))
    whole = _torchrun(config_file, tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    crashed = _torchrun(config_file, tmp_path / "killed", "--kill-after-checkpoint", str(2 * EVERY))
    assert crashed.returncode != 0
    progress = load_train_state(tmp_path / "killed" / "run")["progress"]
    assert progress["global_step"] == 2 * EVERY and progress["step_in_epoch"] == 2
    assert not (tmp_path / "killed" / "run" / "summary.json").exists()
    resumed = _torchrun(config_file, tmp_path / "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    want = load_file(tmp_path / "whole" / "rank0.safetensors")
    _same(load_file(tmp_path / "whole" / "rank1.safetensors"), want)
    for rank in (0, 1):
        _same(load_file(tmp_path / "killed" / f"rank{rank}.safetensors"), want)


def test_a_run_read_in_the_older_per_process_order_resumes_with_a_warning(tmp_path, caplog):
    """Such a run used to be refused mid-epoch on another process count; now every count
    continues, and only a run from before the global-batch order is warned about."""
    from mlpmixer.train.sampler import StreamBatchPlan
    from mlpmixer.train.stream_order import bind_stream_order

    plan = StreamBatchPlan.__new__(StreamBatchPlan)
    order_file = tmp_path / "data_order.json"
    order_file.write_text(json.dumps({"world_size": 2, "lanes": 16}))  # the older record
    with caplog.at_level("WARNING", logger="mlpmixer"):
        bind_stream_order(plan, tmp_path, 1, True, epoch=1, step_in_epoch=2)
    assert "older mlpmixer that read shards in another order" in caplog.text
    assert json.loads(order_file.read_text()) == {"order": "global-batches", "lanes": 16,
                                                  "world_size": 1}  # fmt: skip
    caplog.clear()
    with caplog.at_level("WARNING", logger="mlpmixer"):
        bind_stream_order(plan, tmp_path, 3, True, epoch=1, step_in_epoch=2)
    assert not caplog.text  # this version's order: any count, no warning
