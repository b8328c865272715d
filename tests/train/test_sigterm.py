"""Issue 27 item 5: SIGTERM during training, alone or sent by torchrun after a peer died.

Before, SIGTERM ended a run with exit 143 and no word (the complete checkpoint was kept, but
nobody said so), and a torchrun rank killed with -9 ended in torchrun's ``ChildFailedError``
traceback only: torchrun SIGTERMs the survivors at once, so the documented ``lost rank(s) 1
of 2`` line never came.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlpmixer.errors import Terminated
from mlpmixer.train import TrainConfig, loop, train

from .conftest import tiny_config

TRAIN = ["-m", "mlpmixer", "train", "--dataset", "digits", "--epochs", "30",
         "--set", "train.threads=1"]  # fmt: skip
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MLPMIXER_PROGRESS": "0"}


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not path.is_file():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"no {path} after {seconds} s"
        time.sleep(0.1)


def _rank_pid(launcher: int, rank: int) -> int:
    """The pid of torchrun's worker of ``rank`` (a grandchild: torchrun runs under python -m)."""
    for _ in range(100):
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                environ = (entry / "environ").read_bytes().split(b"\0")
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if (
                f"RANK={rank}".encode() in environ
                and b"TORCHELASTIC_RUN_ID" in b" ".join(environ)
                and _descends_from(int(stat[1]), launcher)
            ):
                return int(entry.name)
        time.sleep(0.1)
    raise AssertionError(f"no rank {rank} under pid {launcher}")


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            return False
    return False


def test_a_sigterm_just_after_the_checkpoint_is_written_still_names_it(tmp_path, monkeypatch):
    """SIGTERM between ``last.pt``'s rename and the trainer noting the save (the test below
    sends it as soon as the file appears, so it can land there): the line said no checkpoint
    had been written, beside a complete ``last.pt``."""
    real_save = loop.save_train_state

    def save_then_sigterm(*args, **kwargs):
        real_save(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # handled before the trainer records the save

    monkeypatch.setattr(loop, "save_train_state", save_then_sigterm)
    config = tiny_config(train={"steps": 6, "checkpoint_every_steps": 2})
    with pytest.raises(Terminated) as stopped:
        train(TrainConfig.from_dict(config), overrides=[f"run.out={tmp_path}"])
    assert f"the last checkpoint {tmp_path}/checkpoints/last.pt (global step 2)" in str(
        stopped.value
    )


@pytest.mark.slow  # a few epochs of digits: ~5-10 s on a busy machine
def test_sigterm_says_the_checkpoint_is_kept_and_exits_143(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, *TRAIN, "--out", str(run)], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_for(run / "checkpoints" / "last.pt", proc)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-3000:]
    (line,) = [x for x in err.splitlines() if x.startswith("error:")]
    assert line.startswith("error: terminated (SIGTERM) at global step ")
    assert f"the last checkpoint {run}/checkpoints/last.pt (global step " in line
    assert line.endswith(f"continue with: mlpmixer train --resume {run}")


@pytest.mark.slow  # torchrun with 2 gloo processes: ~15 s on a busy machine
def test_a_rank_killed_under_torchrun_is_named_by_the_survivor(tmp_path):
    run = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--standalone", *TRAIN, "--out", str(run)]  # fmt: skip
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)  # fmt: skip
    try:
        _wait_for(run / "checkpoints" / "last.pt", proc)
        os.kill(_rank_pid(proc.pid, 1), signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    lines = [x for x in err.splitlines() if x.startswith("error: rank 0:")]
    assert len(lines) == 1, err[-4000:]
    assert "lost rank(s) 1 of 2: the process ended or was killed" in lines[0]
    assert f"{run}/checkpoints/last.pt (global step " in lines[0] and "--resume" in lines[0]
