"""A shard run stopped mid-epoch resumes on another number of processes (issue 26 item 5):
2 -> 1 and 1 -> 3 gloo processes continue the same global sample sequence (no sample of the
epoch repeated or skipped) and end with the weights of an uninterrupted run, up to the order
of floating-point sums. The 3-process resume is launched with the SLURM line of
docs/training.md (torchrun's c10d rendezvous at 127.0.0.1).

Before: such a resume was refused ("resume it with N"), the order being cut into one part per
process. Device-side draws (mixup, dropout, stochastic depth) are seeded per process, so the
config here has none; worker-side augmentation is seeded per sample and stays on.
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from mlpmixer.checkpoints.train_state import load_train_state
from shard_helpers import make_shards

from .conftest import TINY_MODEL

HERE = Path(__file__).parent
WORKER = HERE / "ddp_worker.py"
DOCS = HERE.parents[1] / "docs" / "training.md"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
# 36 training samples, global batch 12 (divisible by 1, 2 and 3): 3 steps per epoch, 6 in
# all; the kill after the step-4 checkpoint stops the run after step 1 of epoch 2
BATCH, STEPS, KILL_AT = 12, 6, 4


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("any-count")
    shards = make_shards(root)
    config = {
        "model": {"name": "mixer_t2_8", "img_size": 8, "overrides": dict(TINY_MODEL)},
        "data": {"dataset": str(shards), "num_workers": 0},
        "augment": {"random_resized_crop": True, "hflip": True, "randaugment_n": 2,
                    "randaugment_m": 15},
        "optim": {"name": "sgd", "lr": 0.05, "weight_decay": 0.0},
        "train": {"epochs": 2, "batch_size": BATCH, "threads": 1, "checkpoint_every_steps": 2},
        "run": {"progress": "none", "plot": False},
    }  # fmt: skip
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _standalone(processes: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
            "--standalone"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slurm_line(processes: int) -> list[str]:
    """The documented ``srun torchrun ...`` line for one node of ``processes`` GPUs, at
    127.0.0.1, up to its program (which must be ``-m mlpmixer train``)."""
    line = next(x for x in DOCS.read_text().splitlines() if x.startswith("srun torchrun "))
    values = {"SLURM_NNODES": "1", "SLURM_GPUS_ON_NODE": str(processes),
              "SLURM_JOB_ID": "test-job", "HEAD": "127.0.0.1"}  # fmt: skip
    line = re.sub(r"\$(\w+)", lambda m: values.get(m.group(1), m.group(0)), line)
    words = shlex.split(line.replace(":29500", f":{_free_port()}"))
    program = words.index("-m")
    assert words[program:] == ["-m", "mlpmixer", "train", "${START[@]}"], words
    assert "--rdzv-backend=c10d" in words and f"--nproc-per-node={processes}" in words
    assert any(w.startswith("--rdzv-endpoint=127.0.0.1:") for w in words), words
    return [sys.executable, "-m", "torch.distributed.run", *words[2:program]]


def _launch(launcher: list[str], config: Path, out: Path, *flags: str, ok: bool = True) -> None:
    command = [*launcher, str(WORKER), str(config), str(out), *flags]
    done = subprocess.run(command, capture_output=True, text=True, env=ENV, timeout=300)
    assert (done.returncode == 0) == ok, done.stderr[-3000:]


def _sequence(out: Path, name: str, processes: int, steps: int) -> list[str]:
    """The global sample sequence of ``steps`` steps as the ranks read it: rank r reads the
    r-th of W contiguous blocks of each global batch."""
    ranks = [(out / f"{name}-rank{r}.txt").read_text().splitlines() for r in range(processes)]
    share = BATCH // processes
    assert all(len(lines) >= steps * share for lines in ranks)
    return [ranks[o // share][step * share + o % share]
            for step in range(steps) for o in range(BATCH)]  # fmt: skip


def _weights(out: Path, rank: int = 0) -> dict[str, torch.Tensor]:
    return load_file(out / f"rank{rank}.safetensors")


def _close(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, value in want.items():  # SGD: differences stay at rounding level
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6, msg=key)


@pytest.fixture(scope="module")
def uninterrupted(config_file, tmp_path_factory) -> dict[int, tuple[list[str], dict]]:
    """{processes: (global sample sequence, final weights)} of whole runs on 1 and 2."""
    runs = {}
    for processes in (1, 2):
        out = tmp_path_factory.mktemp(f"whole{processes}")
        _launch(_standalone(processes), config_file, out, "--record-ids", "ids")
        runs[processes] = (_sequence(out, "ids", processes, STEPS), _weights(out))
    return runs


def _interrupted(config_file: Path, out: Path, processes: int) -> None:
    _launch(_standalone(processes), config_file, out, "--kill-after-checkpoint", str(KILL_AT),
            "--record-ids", "before", ok=False)  # fmt: skip
    progress = load_train_state(out / "run")["progress"]
    assert progress["global_step"] == KILL_AT and progress["step_in_epoch"] == 1  # mid-epoch


def _check(out: Path, before: int, after: int, uninterrupted: dict) -> None:
    whole, weights = uninterrupted[1]
    assert uninterrupted[2][0] == whole  # one global sequence for any count, from the start
    first = _sequence(out, "before", before, KILL_AT)
    rest = _sequence(out, "after", after, STEPS - KILL_AT)
    assert first + rest == whole  # nothing of epoch 2 repeated or skipped
    assert len(set(whole[: 3 * BATCH])) == 3 * BATCH  # an epoch holds each sample once
    _close(_weights(out), weights)
    _close(_weights(out), uninterrupted[2][1])


@pytest.mark.slow
def test_two_processes_resume_on_one(config_file, uninterrupted, tmp_path):
    _interrupted(config_file, tmp_path, 2)
    _launch(_standalone(1), config_file, tmp_path, "--resume", "--record-ids", "after")
    _check(tmp_path, 2, 1, uninterrupted)


@pytest.mark.slow
def test_one_process_resumes_on_three_with_the_documented_slurm_line(
    config_file, uninterrupted, tmp_path
):
    _interrupted(config_file, tmp_path, 1)
    _launch(_slurm_line(3), config_file, tmp_path, "--resume", "--record-ids", "after")
    _check(tmp_path, 1, 3, uninterrupted)
    for rank in (1, 2):  # every rank holds the same weights
        assert all(
            torch.equal(v, _weights(tmp_path)[k]) for k, v in _weights(tmp_path, rank).items()
        )
