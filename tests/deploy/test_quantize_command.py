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
from mlpmixer.deploy import choose, instead, load_quantized

pytestmark = needs_torchao

AVX2_ONLY = CpuKind("amd", "AVX2 CPU", frozenset({"avx", "avx2", "fma"}))
VNNI = CpuKind("intel", "VNNI CPU", frozenset({"avx2", "avx512f", "avx512_vnni"}))


@pytest.fixture
def checkpoint(tmp_path):
    model = tiny()
    save_model(model, tmp_path / "model")
    return model, str(tmp_path / "model")


def _times(monkeypatch, **ratios):
    """Make the speed measurement report ``ratios`` (speed-up over fp32) per method: a number
    (every batch size) or a dict by batch size."""

    def ratio(name, batch):
        r = ratios.get(name.replace("-", "_"), 1.0)
        return r[batch] if isinstance(r, dict) else r

    def fake(models, images, rounds=3, calls=5):  # fmt: skip
        return {name: 1.0 / ratio(name, images.shape[0]) for name in models}

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
    assert report["why"] == (
        "measured 0.80x fp32 at batch 1, 0.80x at batch 32 (slower than fp32 at batch 1, 32)"
    )
    assert report["speedups"] == {"1": 0.8, "32": 0.8} and report["batch_sizes"] == [1, 32]
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
    assert "method weight-only: measured 1.30x fp32 at batch 1, 1.30x at batch 32" in result.output
    assert (
        "also weighed dynamic: measured 1.10x fp32 at batch 1, 1.10x at batch 32" in result.output
    )
    assert load_quantized(out).method == "weight-only"


def test_auto_refuses_when_nothing_beats_fp32(checkpoint, tmp_path, monkeypatch):
    _, path = checkpoint
    _times(monkeypatch, weight_only=0.9, dynamic=0.3)
    monkeypatch.setattr(instead, "onnx_int8_ratios", lambda model, batches: "stubbed")
    monkeypatch.setattr(choose, "effective_cpu", lambda: AVX2_ONLY)
    result = CliRunner().invoke(
        cli,
        ["quantize", "--checkpoint", path, "--calibration", "digits", "--out", str(tmp_path / "q")],
    )
    assert result.exit_code == 2
    assert "int8 cannot help on this machine: no method beats fp32" in result.output
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


# --- the batch sizes judged (#29 item 3): faster at 32 but slower at 1 is slower -------------

FAST_AT_32_ONLY = {1: 0.8, 32: 1.3}


def test_auto_refuses_a_method_faster_at_32_but_slower_at_1(checkpoint, tmp_path, monkeypatch):
    _, path = checkpoint
    _times(monkeypatch, weight_only=FAST_AT_32_ONLY, dynamic=0.3)
    monkeypatch.setattr(choose, "effective_cpu", lambda: AVX2_ONLY)
    monkeypatch.setattr(instead, "onnx_int8_ratios", lambda model, batches: "stubbed")
    out = tmp_path / "int8"
    result = CliRunner().invoke(cli, ["quantize", "--checkpoint", path, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert (
        "weight-only: measured 0.80x fp32 at batch 1, 1.30x at batch 32 "
        "(slower than fp32 at batch 1)" in result.output
    )
    assert not out.exists()


def test_auto_judges_only_the_batch_sizes_asked(checkpoint, tmp_path, monkeypatch):
    _, path = checkpoint
    _times(monkeypatch, weight_only=FAST_AT_32_ONLY, dynamic=0.3)
    monkeypatch.setattr(choose, "effective_cpu", lambda: AVX2_ONLY)
    out = tmp_path / "int8"
    args = ["quantize", "--checkpoint", path, "--batch-size", "32", "--out", str(out), "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{") :])
    assert report["method"] == "weight-only" and report["speedups"] == {"32": 1.3}
    assert report["why"] == "measured 1.30x fp32 at batch 32"
    weighed = {v["method"]: v for v in report["verdicts"]}
    assert weighed["dynamic"]["fast"] is False and weighed["dynamic"]["speedups"] == {"32": 0.3}
    assert weighed["static"]["fast"] is False and "no VNNI or AMX" in weighed["static"]["reason"]


def test_an_explicit_method_slower_at_batch_1_is_refused_unless_forced(
    checkpoint, tmp_path, monkeypatch
):
    _, path = checkpoint
    _times(monkeypatch, weight_only=FAST_AT_32_ONLY)
    args = ["quantize", "--checkpoint", path, "--method", "weight-only"]
    result = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "a")])
    assert result.exit_code == 2
    assert (
        "weight-only int8 would be slower than fp32 here: measured 0.80x fp32 at batch 1, "
        "1.30x at batch 32 (slower than fp32 at batch 1); use --force" in result.output
    )
    result = CliRunner().invoke(cli, [*args, "--force", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "measured 0.80x fp32 at batch 1, 1.30x at batch 32" in result.output
    assert "(forced)" in result.output


def test_auto_takes_the_method_with_the_best_worst_ratio(checkpoint, tmp_path, monkeypatch):
    # weight-only is the faster at 32, dynamic the faster where it is slowest: latency counts
    _, path = checkpoint
    _times(monkeypatch, weight_only={1: 1.05, 32: 2.0}, dynamic={1: 1.2, 32: 1.3})
    monkeypatch.setattr(choose, "effective_cpu", lambda: AVX2_ONLY)
    out = tmp_path / "int8"
    result = CliRunner().invoke(cli, ["quantize", "--checkpoint", path, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "method dynamic: measured 1.20x fp32 at batch 1, 1.30x at batch 32" in result.output


def test_every_method_has_a_rule():
    from mlpmixer.deploy.methods import METHODS

    assert set(choose.RULES) == set(METHODS)


# --- where int8 cannot help (#29 item 4): the command says what to use instead ---------------


@pytest.mark.parametrize(
    ("onnx", "said"),
    [
        ({1: 3.0, 32: 2.1}, "use ONNX Runtime int8 instead, measured 3.00x fp32 at batch 1, "
         "2.10x at batch 32: mlpmixer export --checkpoint {path} --int8 dynamic"),
        ({1: 3.0, 32: 0.9}, "keep the fp32 checkpoint (its fast path is what every command "
         "runs); ONNX Runtime int8 is no faster either (measured 3.00x fp32 at batch 1, 0.90x "
         "at batch 32)"),
        ("pip install 'mlpmixer[export]'", "keep the fp32 checkpoint (its fast path is what "
         "every command runs); ONNX Runtime int8 was not measured (pip install"),
    ],
)  # fmt: skip
def test_where_int8_cannot_help_the_command_says_what_to_use_instead(
    checkpoint, tmp_path, monkeypatch, onnx, said
):
    _, path = checkpoint
    _times(monkeypatch, weight_only=0.7, dynamic=0.3)
    monkeypatch.setattr(choose, "effective_cpu", lambda: AVX2_ONLY)
    monkeypatch.setattr(instead, "onnx_int8_ratios", lambda model, batches: onnx)
    result = CliRunner().invoke(
        cli, ["quantize", "--checkpoint", path, "--out", str(tmp_path / "q")]
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())  # the error may wrap
    assert "int8 cannot help on this machine: no method beats fp32" in text
    assert "static: this CPU (as oneDNN may use it) has no VNNI or AMX int8 units" in text
    assert said.format(path=path) in text


def test_auto_without_calibration_on_a_vnni_cpu_asks_for_it(checkpoint, tmp_path, monkeypatch):
    # int8 *can* help here (static): the command must not say it cannot, nor advise ONNX
    _, path = checkpoint
    _times(monkeypatch, weight_only=0.7, dynamic=0.3)
    monkeypatch.setattr(choose, "effective_cpu", lambda: VNNI)
    monkeypatch.setattr(instead, "onnx_int8_ratios", lambda model, batches: pytest.fail("timed"))
    result = CliRunner().invoke(
        cli, ["quantize", "--checkpoint", path, "--out", str(tmp_path / "q")]
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "static would: give --calibration DATA" in text
    assert "cannot help" not in text


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("onnxruntime") is None, reason="needs onnxruntime"
)
def test_onnx_int8_is_measured_against_fp32_at_each_batch_size(monkeypatch):
    from deploy_testing import tiny

    model = tiny()
    seen = []

    def fake(models, images, rounds=3, calls=5):  # fmt: skip
        x = images
        seen.append(x.shape[0])
        with torch.no_grad():  # the session is the model in int8: close logits
            assert (models["onnx"](x) - models["fp32"](x)).abs().max() < 0.1 * models["fp32"](
                x
            ).abs().max()
        return {"fp32": 1.0, "onnx": 0.5}

    monkeypatch.setattr(instead, "best_times", fake)
    assert instead.onnx_int8_ratios(model, (32, 1)) == {1: 2.0, 32: 2.0}
    assert seen == [1, 32]
