"""Atomic writes: a full disk is one clear error whatever the writer raised, the previous file is
kept, and temporaries of writers killed mid-save are removed by the next save.

Before: torch.save to a full disk raised ``RuntimeError ... unexpected pos`` (a "this looks
like a bug" exit, nothing said the previous file was kept), and ``kill -9`` during a save left
``.m.XXXX.tmp`` files and folders that nothing ever removed.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest
import torch

import mlpmixer.fileio as fileio
from full_disk import small_tmpfs
from mlpmixer.errors import DiskFullError
from mlpmixer.fileio import atomic_directory, atomic_path


def _leftovers(directory):
    return sorted(
        p.name for p in directory.iterdir() if p.name.endswith(".tmp") or ".mlpmixer-" in p.name
    )


def test_enospc_from_any_writer_is_disk_full_and_keeps_the_previous_file(tmp_path):
    target = tmp_path / "m.pth"
    target.write_bytes(b"previous")
    full = pytest.raises(DiskFullError, match="disk is full; the previous m.pth is kept")
    with full as err, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert err.value.errno == errno.ENOSPC and isinstance(err.value, OSError)
    assert target.read_bytes() == b"previous" and _leftovers(tmp_path) == []


def test_torch_runtime_error_on_a_full_disk_is_disk_full(tmp_path, monkeypatch):
    """torch's C++ writer says "unexpected pos"; with no space left, that is a full disk."""
    monkeypatch.setattr(fileio, "_free_bytes", lambda directory: 0)
    with (
        pytest.raises(DiskFullError, match="nothing was written"),
        atomic_path(tmp_path / "new.pt"),
    ):
        raise RuntimeError("[enforce fail at inline_container.cc] . unexpected pos 64 vs 0")
    assert not (tmp_path / "new.pt").exists()


def test_a_runtime_error_with_space_left_is_not_called_a_full_disk(tmp_path):
    with pytest.raises(RuntimeError, match="something else"), atomic_path(tmp_path / "x.pt"):
        raise RuntimeError("something else")


def test_torch_save_on_a_real_full_file_system(tmp_path):
    with small_tmpfs(tmp_path / "fs") as fs:
        target = fs / "last.pt"
        target.write_bytes(b"previous checkpoint")
        state = {"w": torch.zeros(1_000_000)}
        for to_file_object in (False, True):
            full = pytest.raises(DiskFullError, match="disk is full; the previous last.pt is kept")
            with full, atomic_path(target) as tmp:
                if to_file_object:
                    with open(tmp, "wb") as file:
                        torch.save(state, file)
                else:
                    torch.save(state, tmp)
            assert target.read_bytes() == b"previous checkpoint"
            assert _leftovers(fs) == []


def test_a_full_disk_in_a_folder_save_keeps_the_previous_folder(tmp_path):
    with small_tmpfs(tmp_path / "fs") as fs:
        (fs / "model").mkdir()
        (fs / "model" / "config.json").write_text("{}")
        full = pytest.raises(DiskFullError, match="the previous model is kept")
        with full, atomic_directory(fs / "model") as tmp:
            (tmp / "model.safetensors").write_bytes(b"\0" * 2_000_000)
        assert os.listdir(fs / "model") == ["config.json"] and _leftovers(fs) == []


def _killed_mid_save(directory, folder: bool) -> None:
    """A child that starts an atomic save and is killed with SIGKILL before it finishes."""
    code = (
        "import os, sys, signal\n"
        "from mlpmixer.fileio import atomic_directory, atomic_path\n"
        f"cm = {'atomic_directory' if folder else 'atomic_path'}(sys.argv[1])\n"
        "tmp = cm.__enter__()\n"
        "(tmp / 'w.bin' if tmp.is_dir() else tmp).write_bytes(b'x' * 1000)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(directory / "m")], check=False)


@pytest.mark.parametrize("folder", [False, True], ids=["file", "folder"])
def test_the_next_save_removes_temporaries_of_killed_writers(tmp_path, folder):
    _killed_mid_save(tmp_path, folder)
    assert len(_leftovers(tmp_path)) == 1  # what kill -9 leaves
    other = tmp_path / ".m.not-ours.tmp"  # a name we did not make is never touched
    other.write_bytes(b"")
    save = atomic_directory if folder else atomic_path
    with save(tmp_path / "m") as tmp:
        (tmp / "w.bin" if folder else tmp).write_bytes(b"new")
    assert _leftovers(tmp_path) == [other.name]


def test_temporaries_of_a_live_writer_are_kept(tmp_path):
    live = tmp_path / f"{fileio.temp_prefix(tmp_path / 'm')}abcd.tmp"  # this process: alive
    live.write_bytes(b"in progress")
    assert fileio.remove_stale_temps(tmp_path / "m") == []
    assert live.exists()


def test_a_pair_is_swapped_in_together_or_not_at_all(tmp_path):
    from mlpmixer.fileio import atomic_pair

    target, report = tmp_path / "g.onnx", tmp_path / "g.onnx.json"
    target.write_bytes(b"old")
    report.write_text("old report")
    failing = pytest.raises(ValueError, match="check failed")
    with failing, atomic_pair(target, report) as (tmp, tmp_report):
        tmp.write_bytes(b"new")
        tmp_report.write_text("new report")
        raise ValueError("check failed")
    assert (target.read_bytes(), report.read_text()) == (b"old", "old report")
    with atomic_pair(target, report) as (tmp, tmp_report):
        tmp.write_bytes(b"new")
        tmp_report.write_text("new report")
    assert (target.read_bytes(), report.read_text()) == (b"new", "new report")
    assert _leftovers(tmp_path) == []


def test_a_training_checkpoint_on_a_real_full_disk_keeps_the_previous_one(tmp_path):
    """checkpoints/train_state.py writes through this module: the run's message and exit code follow."""
    from mlpmixer.checkpoints.train_state import checkpoint_path, save_train_state
    from mlpmixer.errors import RunError

    with small_tmpfs(tmp_path / "fs") as run:
        previous = checkpoint_path(run)
        previous.parent.mkdir(parents=True)
        previous.write_bytes(b"previous checkpoint")
        with pytest.raises(RunError, match="the disk is full; the previous checkpoint is kept"):
            save_train_state(run, {"model": {"w": torch.zeros(1_000_000)}})
        assert previous.read_bytes() == b"previous checkpoint"
        assert _leftovers(previous.parent) == []
