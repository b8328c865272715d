"""Export and convert end to end against a failing model and a full disk (issue 16: 5, 12, 14).

Before: ``export --output g.onnx`` of a nan model over a good ``g.onnx`` exited 1 but left
the nan model in ``g.onnx`` beside a ``g.onnx.json`` describing the old one; TorchScript
export on a full disk aborted the process (exit 134, C++ frames, a ``.tmp`` left behind);
``convert`` to ``.pth``/``.safetensors`` on a full disk was "RuntimeError ... unexpected
pos ... this looks like a bug".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from full_disk import small_tmpfs
from mlpmixer import create_model
from mlpmixer.cli import cli

FORMATS = {"torchscript": ".ts", "exported-program": ".pt2", "onnx": ".onnx"}


def _model(hidden_dim: int = 8, channels: int = 8):
    return create_model("mixer_t2_8", num_blocks=1, hidden_dim=hidden_dim, tokens_mlp_dim=4,
                        channels_mlp_dim=channels, num_classes=3)  # fmt: skip


def _mlpmixer(*args: str, separate_process: bool = False) -> Any:
    """The command's result (returncode, stderr); in a child process where it may abort."""
    if separate_process:
        return subprocess.run([sys.executable, "-m", "mlpmixer", *map(str, args)],
                              capture_output=True, text=True, timeout=300)  # fmt: skip
    result = CliRunner().invoke(cli, list(map(str, args)))
    return SimpleNamespace(returncode=result.exit_code, stderr=result.stderr)


def _temporaries(directory):
    return [
        p.name for p in directory.iterdir() if p.name.endswith(".tmp") or ".mlpmixer-" in p.name
    ]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_failing_export_leaves_the_good_file_and_its_report(tmp_path, fmt):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    good, bad = tmp_path / "good", tmp_path / "bad"
    _model().save_pretrained(good)
    nan_model = _model()
    with torch.no_grad():
        nan_model.head.weight.fill_(float("nan"))
    nan_model.save_pretrained(bad)
    out = tmp_path / f"g{FORMATS[fmt]}"
    assert _mlpmixer("export", "--checkpoint", good, "--output", out).returncode == 0
    before = out.read_bytes(), out.with_name(out.name + ".json").read_text()
    assert json.loads(before[1])["checkpoint"] == str(good)

    failed = _mlpmixer("export", "--checkpoint", bad, "--output", out)
    assert failed.returncode == 1, failed.stderr
    assert (out.read_bytes(), out.with_name(out.name + ".json").read_text()) == before
    assert "not finite" in failed.stderr and "nothing was written" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert _temporaries(tmp_path) == []


def test_an_export_that_does_not_match_changes_nothing(tmp_path, monkeypatch):
    """A file whose logits differ from PyTorch's is refused before it replaces anything."""
    import mlpmixer.export.export as export_module

    out = tmp_path / "g.ts"
    export_module.export_model(_model(), out, report={"checkpoint": "a"})
    before = out.read_bytes(), (tmp_path / "g.ts.json").read_bytes()
    monkeypatch.setattr(export_module, "verify_export", lambda *args: 0.5)
    with pytest.raises(export_module.RunError, match="differ.*nothing was written"):
        export_module.export_model(_model(), out, report={"checkpoint": "b"})
    assert (out.read_bytes(), (tmp_path / "g.ts.json").read_bytes()) == before


def test_the_report_describes_the_file_beside_it(tmp_path):
    out = tmp_path / "g.ts"
    assert _mlpmixer("export", "--checkpoint", _saved(tmp_path), "--output", out).returncode == 0
    report = json.loads((tmp_path / "g.ts.json").read_text())
    assert report["bytes"] == out.stat().st_size and report["path"] == str(out)


def _saved(tmp_path, **size):
    path = tmp_path / "model"
    _model(**size).save_pretrained(path)
    return path


@pytest.mark.parametrize("fmt", ["torchscript", "exported-program"])
def test_export_on_a_full_disk_is_one_line_and_keeps_the_previous_file(tmp_path, fmt):
    checkpoint = _saved(tmp_path, hidden_dim=256, channels=512)  # ~2 MB of weights
    with small_tmpfs(tmp_path / "fs") as fs:
        out = fs / f"g{FORMATS[fmt]}"
        out.write_bytes(b"previous export")
        # in a child process: TorchScript aborted the whole process (exit 134) before
        done = _mlpmixer(
            "export", "--checkpoint", checkpoint, "--output", out, separate_process=True
        )
        assert done.returncode == 1, done.stderr
        assert "the disk is full; the previous" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "looks like a bug" not in done.stderr
        assert out.read_bytes() == b"previous export"
        assert _temporaries(fs) == []


def test_torchscript_export_with_enospc_injected_at_the_write(tmp_path, monkeypatch):
    """Where no tmpfs can be mounted: the write of the archive fails as a full disk does."""
    import errno
    from pathlib import Path

    from mlpmixer.errors import DiskFullError
    from mlpmixer.export import export_model

    real = Path.write_bytes

    def full(self, data):
        real(self, data[:100])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(DiskFullError, match="disk is full; nothing was written"):
        export_model(_model(), tmp_path / "g.ts")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".pth", ".safetensors", ".npz"])
def test_convert_on_a_full_disk_is_one_line(tmp_path, suffix):
    checkpoint = _saved(tmp_path, hidden_dim=256, channels=512)
    with small_tmpfs(tmp_path / "fs") as fs:
        done = _mlpmixer(
            "convert",
            checkpoint,
            fs / f"m{suffix}",
            "--to",
            "timm" if suffix != ".npz" else "official",
        )
        assert done.returncode == 1, done.stderr
        assert "disk is full; nothing was written" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and "looks like a bug" not in done.stderr
        assert _temporaries(fs) == [] and not (fs / f"m{suffix}").exists()
