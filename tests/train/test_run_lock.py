"""A run directory is locked while a process trains in it.

Before: two ``mlpmixer train --out SAME`` overwrote each other's files and both exited 0.
Now the second is refused (exit 2) with the first one's pid, and so is a resume of a run
that is being trained; the lock goes away with the process, however it ends.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from mlpmixer.cli import cli

TINY = ["--set", "model.overrides.hidden_dim=8", "--set", "model.overrides.num_blocks=1",
        "--set", "model.overrides.tokens_mlp_dim=4", "--set", "model.overrides.channels_mlp_dim=8",
        "--set", "train.threads=1", "--set", "run.progress=none", "--set", "run.plot=false",
        "--set", "data.num_workers=0"]  # fmt: skip


@pytest.fixture
def held_by_another_process(tmp_path):
    """Start a process that holds the lock of a directory; yield (holder, directory)."""

    def hold(run_dir):
        code = textwrap.dedent(f"""
            import fcntl, os, time
            from pathlib import Path
            run_dir = Path({str(run_dir)!r})
            run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(run_dir / ".lock", os.O_RDWR | os.O_CREAT)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.ftruncate(fd, 0)  # as the library does: a longer earlier pid must not remain
            os.write(fd, f"{{os.getpid()}}\\n".encode())
            print("held", flush=True)
            time.sleep(60)
        """)
        holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        assert holder.stdout.readline().strip() == "held"
        holders.append(holder)
        return holder

    holders: list[subprocess.Popen] = []
    yield hold
    for holder in holders:
        holder.kill()
        holder.wait()


def _train(out, *extra):
    args = ["train", "--model", "mixer_t2_8", "--steps", "2", "--batch-size", "16"]
    return CliRunner().invoke(cli, [*args, "--out", str(out), *TINY, *extra])


def test_a_second_train_into_a_locked_directory_is_refused(tmp_path, held_by_another_process):
    out = tmp_path / "run"
    holder = held_by_another_process(out)
    result = _train(out)
    assert result.exit_code == 2, result.output
    assert f"pid {holder.pid}" in result.output and "in use" in result.output, result.output
    assert not (out / "config.yaml").exists()


def test_resume_of_a_run_being_trained_is_refused(tmp_path, held_by_another_process):
    out = tmp_path / "run"
    assert _train(out).exit_code == 0
    holder = held_by_another_process(out)
    result = CliRunner().invoke(cli, ["train", "--resume", str(out)])
    assert result.exit_code == 2, result.output
    assert f"pid {holder.pid}" in result.output, result.output
    holder.kill()
    holder.wait()  # the lock dies with its process: the directory is usable again
    from mlpmixer.train.lock import run_dir_lock

    with run_dir_lock(out):
        pass


def test_the_lock_is_exclusive_and_released(tmp_path):
    from mlpmixer.train.lock import RunDirInUseError, run_dir_lock

    with (
        run_dir_lock(tmp_path / "r"),
        pytest.raises(RunDirInUseError, match="in use by another mlpmixer process"),
        run_dir_lock(tmp_path / "r"),
    ):
        pass
    with run_dir_lock(tmp_path / "r"):
        pass
