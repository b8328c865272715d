"""``mlpmixer quantize``: what it writes, how it chooses, and what it refuses (exit 2)."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from click.testing import CliRunner

from deploy_testing import images, needs_torchao, tiny
from mlpmixer import save_model
from mlpmixer.cli import cli
from mlpmixer.cpu_kind import CpuKind
from mlpmixer.deploy import choose, load_quantized

pytestmark = needs_torchao

AVX2_ONLY = CpuKind("amd", "AVX2 CPU", frozenset({"avx", "avx2", "fma"}))
VNNI = CpuKind("intel", "VNNI CPU", frozenset({"avx2", "avx512f", "avx512_vnni"}))


@pytest.fixture
def checkpoint(tmp_path):
    model = tiny()
    save_model(model, tmp_path / "model")
    return model, str(tmp_path / "model")


def _times(monkeypatch, **ratios):
    """Make the speed measurement report ``ratios`` (speed-up over fp32) per method."""

    def fake(models, images, rounds=3, calls=5):  # fmt: skip
        return {name: 1.0 / ratios.get(name.replace("-", "_"), 1.0) for name in models}

    monkeypatch.setattr(choose, "best_times", fake)


def test_a_forced_method_is_written_and_loads_to_the_same_logits(checkpoint, tmp_path, monkeypatch):
    model, path = checkpoint
    _times(monkeypatch, weight_only=0.8)
    out = tmp_path / "int8"
    args = [
        "quantize",
        "--checkpoint",
        path,
        "--method",
        "weight-only",
        "--force",
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["method"] == "weight-only" and report["forced"] is True
    assert report["why"] == "measured 0.80x fp32 at batch 32"
    assert report["kept_in_float"] == ["stem.proj", "head"]
    loaded = load_quantized(out)
    x = images(4)
    with torch.no_grad():
        assert (loaded(x) - model(x)).abs().max() < 0.1 * model(x).abs().max()


def test_a_slower_method_is_refused_with_its_measured_ratio(checkpoint, tmp_path, monkeypatch):
    _, path = checkpoint
    _times(monkeypatch, dynamic=0.32)
    out = tmp_path / "int8"
    result = CliRunner().invoke(
        cli, ["quantize", "--checkpoint", path, "--method", "dynamic", "--out", str(out)]
    )
    assert result.exit_code == 2
    assert "dynamic int8 would be slower than fp32 here: measured 0.32x" in result.output
    assert "--force" in result.output
    assert not out.exists()


def test_auto_takes_the_fastest_measured_method_and_says_why(checkpoint, tmp_path, monkeypatch):
    _, path = checkpoint
    _times(monkeypatch, weight_only=1.3, dynamic=1.1)
    monkeypatch.setattr(choose, "effective_cpu", lambda: AVX2_ONLY)
    out = tmp_path / "int8"
    result = CliRunner().invoke(cli, ["quantize", "--checkpoint", path, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "method weight-only: measured 1.30x fp32 at batch 32" in result.output
    assert load_quantized(out).method == "weight-only"


def test_auto_refuses_when_nothing_beats_fp32(checkpoint, tmp_path, monkeypatch):
    _, path = checkpoint
    _times(monkeypatch, weight_only=0.9, dynamic=0.3)
    monkeypatch.setattr(choose, "effective_cpu", lambda: AVX2_ONLY)
    result = CliRunner().invoke(
        cli,
        ["quantize", "--checkpoint", path, "--calibration", "digits", "--out", str(tmp_path / "q")],
    )
    assert result.exit_code == 2
    assert "no int8 method beats fp32 on this machine" in result.output
    assert "weight-only: measured 0.90x" in result.output and "no VNNI or AMX" in result.output


def test_static_is_decided_from_the_cpu():
    assert choose.static_verdict(VNNI).fast
    assert not choose.static_verdict(AVX2_ONLY).fast


def test_static_without_calibration_and_without_torchao_are_refused(
    checkpoint, tmp_path, monkeypatch
):
    _, path = checkpoint
    args = ["quantize", "--checkpoint", path, "--out", str(tmp_path / "q")]
    result = CliRunner().invoke(cli, [*args, "--method", "static"])
    assert result.exit_code == 2 and "--calibration" in result.output
    monkeypatch.setitem(sys.modules, "torchao", None)
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "pip install 'mlpmixer[int8]'" in result.output


@pytest.mark.slow
def test_static_on_a_vnni_cpu_calibrates_on_the_data_given(checkpoint, tmp_path, monkeypatch):
    _, path = checkpoint
    monkeypatch.setattr(choose, "effective_cpu", lambda: VNNI)
    _times(monkeypatch)
    out = tmp_path / "int8"
    result = CliRunner().invoke(cli, [
        "quantize", "--checkpoint", path, "--calibration", "digits", "--calibration-images", "40",
        "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "method static: this CPU has int8 dot-product units (avx512_vnni)" in result.output
    assert load_quantized(out).calibration_images == 40


def test_a_folder_of_the_users_is_not_written_into(checkpoint, tmp_path):
    _, path = checkpoint
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    result = CliRunner().invoke(
        cli, ["quantize", "--checkpoint", path, "--method", "weight-only", "--out", str(mine)]
    )
    assert result.exit_code == 2
    assert str(mine) in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
