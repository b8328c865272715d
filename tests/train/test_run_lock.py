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


# Issue 27 item 13: the lock dies with the process that took it, not with its last child.

FORKING_HOLDER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from mlpmixer.train.lock import run_dir_lock
    with run_dir_lock(Path(sys.argv[1])):
        child = os.fork()  # as a DataLoader worker is forked while the run trains
        if child == 0:
            time.sleep(60)  # an orphaned worker takes seconds to notice; this one never does
            os._exit(0)
        print(child, flush=True)
        time.sleep(60)
""")


def test_the_lock_dies_with_its_process_not_with_forked_workers(tmp_path):
    """Before: a resume right after ``kill -9`` was refused for ~3 s, naming the dead pid,
    because the data-loading workers, forked with the lock's file description, held it."""
    import os
    import signal

    from mlpmixer.train.lock import run_dir_lock

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", FORKING_HOLDER, str(run)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    child = int(holder.stdout.readline())
    try:
        holder.kill()  # kill -9: no cleanup runs in the holder
        holder.wait()
        os.kill(child, 0)  # the forked child is still alive...
        with run_dir_lock(run):  # ...and the run can be taken over at once
            pass
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_lock_outliving_its_recorded_owner_names_the_live_holder(tmp_path):
    """If a lock is still held although the pid in the file is dead, the refusal names the
    process that holds it (alive), never only the dead one."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    code = textwrap.dedent(f"""
        import fcntl, os, time
        os.makedirs({str(run)!r}, exist_ok=True)
        fd = os.open({str(run / ".lock")!r}, os.O_RDWR | os.O_CREAT)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"{dead.pid}\\n")
        print("held", flush=True)
        time.sleep(60)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        from mlpmixer.train.lock import RunDirInUseError, run_dir_lock

        with pytest.raises(RunDirInUseError) as caught, run_dir_lock(run):
            pass
        message = str(caught.value)
        assert (
            f"locked by pid(s) {holder.pid}," in message
            and f"(pid {dead.pid}) has ended" in message
        )
    finally:
        holder.kill()
        holder.wait()


def _digits_shards(root):
    """600 digits as PNGs in class folders, packed into shards (a data set read by workers)."""
    import numpy as np
    from PIL import Image

    from mlpmixer.data.builtin import load_digits_arrays
    from mlpmixer.data.pack import pack_shards

    images, labels = load_digits_arrays("train")["train"]
    for i in range(600):
        folder = root / "tree" / str(int(labels[i]))
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (images[i, 0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    pack_shards(str(root / "tree"), root / "shards", samples_per_shard=100)
    return root / "shards"


@pytest.mark.slow  # a short training run on shards with workers, killed and resumed: ~20 s
def test_resume_right_after_kill_9_is_not_refused(tmp_path):
    """The issue's reproduction: train on shards with data-loading workers, ``kill -9`` the
    trainer 1.5 s after its first checkpoint, resume at once."""
    import os
    import signal
    import time

    shards = _digits_shards(tmp_path)
    run = tmp_path / "run"
    small = [f"--set=model.overrides.{k}" for k in ("hidden_dim=8", "num_blocks=1",
             "tokens_mlp_dim=4", "channels_mlp_dim=8")]  # fmt: skip
    args = [sys.executable, "-m", "mlpmixer", "train", "--dataset", str(shards), "--model",
            "mixer_t2_8", "--img-size", "16", "--batch-size", "32", "--epochs", "20",
            "--workers", "2", "--set", "train.threads=1", *small, "--out", str(run)]  # fmt: skip
    env = {**os.environ, "MLPMIXER_PROGRESS": "0"}
    trainer = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not (run / "checkpoints" / "last.pt").is_file():
            assert trainer.poll() is None, trainer.communicate()[1][-3000:]
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)
        assert trainer.poll() is None, "the run ended before it could be killed"
        os.kill(trainer.pid, signal.SIGKILL)
        trainer.wait()
    finally:
        if trainer.poll() is None:
            trainer.kill()
            trainer.wait()
    # at once, to the run's own length: an --epochs shorter than what the run had done by
    # the kill is refused (4 epochs of 16 steps were over in 1.5 s on a quiet machine)
    resumed = subprocess.run([sys.executable, "-m", "mlpmixer", "train", "--resume", str(run),
                              "--set", "train.threads=1"], env=env,
                             capture_output=True, text=True, timeout=300)  # fmt: skip
    assert "in use" not in resumed.stderr and "locked" not in resumed.stderr, resumed.stderr
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (run / "summary.json").is_file()
