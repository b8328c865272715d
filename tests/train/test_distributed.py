"""Two CPU processes with gloo (torchrun): identical weights on both ranks, equal to one process.

The two-process run uses gradient accumulation 2 (4 micro-batches of 16 per step in all)
and the single process none (one batch of 64): the same 64 examples per step, so only the
order of floating-point sums differs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mlpmixer.train import TrainConfig, train

from .conftest import tiny_config

WORKER = Path(__file__).with_name("ddp_worker.py")


def _sgd_config(**train_options) -> dict:
    # SGD keeps differences at rounding level; Adam divides tiny gradient differences by tiny
    # second moments in the first steps and would need a looser tolerance.
    return tiny_config(
        optim={"name": "sgd", "lr": 0.05, "weight_decay": 0.0},
        train={"epochs": 1, "steps": 8, "batch_size": 64, **train_options},
    )


def _torchrun(config: dict, out: Path) -> None:
    out.mkdir(parents=True)
    config_file = out / "config.yaml"
    config_file.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
               str(WORKER), str(config_file), str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr.decode()[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_two_processes_match_one(tmp_path, parallel):
    _torchrun(_sgd_config(grad_accum=2, parallel=parallel), tmp_path / "two")
    rank0 = load_file(tmp_path / "two" / "rank0.safetensors")
    rank1 = load_file(tmp_path / "two" / "rank1.safetensors")
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)  # ranks hold identical weights
    for rank in (0, 1):  # the group was freed, its threads joined: none can abort the exit
        assert (tmp_path / "two" / f"gloo-threads-rank{rank}.txt").read_text() == ""
    single = train(TrainConfig.from_dict(_sgd_config()), overrides=[f"run.out={tmp_path / 'one'}"])
    reference = single.model.state_dict()
    for key, value in rank0.items():
        torch.testing.assert_close(value, reference[key], rtol=1e-5, atol=1e-6, msg=key)
    assert rank0["head.weight"].abs().sum() > 0  # the zero-initialised head was trained
    summary = yaml.safe_load((tmp_path / "two" / "run" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 8
    assert summary["test_top1"] == pytest.approx(single.summary["test_top1"], abs=1 / 359)
