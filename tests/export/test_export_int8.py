"""``mlpmixer export --int8``: ONNX Runtime int8 files of a float checkpoint, checked against
the float model; the check is redone here with onnxruntime directly, and a file whose logits
do not follow the float model's is refused."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from mixer_testing import randomised
from mlpmixer.cli import cli
from mlpmixer.errors import RunError
from mlpmixer.export import onnx_int8
from mlpmixer.export.onnx import run_onnx
from mlpmixer.models import MixerConfig, build_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def float_model(tmp_path_factory):
    """A randomised 2-block Mixer for scikit-learn's digits, saved as a native folder."""
    config = MixerConfig(
        img_size=(8, 8), patch_size=(2, 2), in_chans=1, num_classes=10,
        hidden_dim=32, num_blocks=2, tokens_mlp_dim=16, channels_mlp_dim=64,
    )  # fmt: skip
    model = randomised(build_model(config), 0).eval()
    folder = tmp_path_factory.mktemp("float") / "model"
    model.save_pretrained(folder)
    return model, folder


def _export(*args: str) -> tuple[int, str]:
    run = CliRunner().invoke(cli, ["export", *args])
    return run.exit_code, run.output


def _independent_check(model, path) -> tuple[float, float]:
    images = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = model(images)
    got = run_onnx(path, images)
    return (got.argmax(1) == expected.argmax(1)).float().mean().item(), (
        (got - expected).abs().max().item()
    )


def test_dynamic_int8_follows_the_float_model(float_model, tmp_path):
    model, folder = float_model
    out = tmp_path / "m.onnx"
    code, output = _export("--checkpoint", str(folder), "--int8", "dynamic", "--out", str(out),
                           "--json")  # fmt: skip
    assert code == 0, output
    report = json.loads(output[output.index("{") :])
    assert report["method"] == "dynamic" and report["top1_agreement"] >= 0.9
    assert 0 < report["max_abs_diff"] < 0.2
    agreement, diff = _independent_check(model, out)
    assert agreement >= 0.9 and 0 < diff < 0.2  # int8: close, and not the float file
    import onnx

    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops, ops


@pytest.mark.slow
def test_static_int8_is_calibrated_on_the_training_images(float_model, tmp_path):
    model, folder = float_model
    out = tmp_path / "s.onnx"
    code, output = _export("--checkpoint", str(folder), "--int8", "static", "--calibration",
                           "digits", "--calibration-images", "64", "--out", str(out))  # fmt: skip
    assert code == 0, output
    assert "top-1 agreement with the float model" in output and "on 64 images" in output
    agreement, diff = _independent_check(model, out)
    assert agreement >= 0.9 and 0 < diff < 0.5
    import onnx

    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops, ops


def test_a_file_that_does_not_follow_the_float_model_is_refused(float_model, tmp_path, monkeypatch):
    model, _ = float_model
    monkeypatch.setattr(onnx_int8, "run_onnx", lambda path, images: -run_onnx(path, images))
    with pytest.raises(RunError, match="agrees with the float model on"):
        onnx_int8.export_onnx_int8(model, tmp_path / "bad.onnx", "dynamic")
    assert not (tmp_path / "bad.onnx").exists()


def test_static_without_calibration_and_another_format_are_refused(float_model, tmp_path):
    _, folder = float_model
    code, output = _export("--checkpoint", str(folder), "--int8", "static",
                           "--out", str(tmp_path / "x.onnx"))  # fmt: skip
    assert code == 2 and "static int8 needs --calibration DATA" in output
    code, output = _export("--checkpoint", str(folder), "--int8", "dynamic", "--format",
                           "torchscript", "--out", str(tmp_path / "x.ts"))  # fmt: skip
    assert code == 2 and "--int8 writes ONNX" in output
