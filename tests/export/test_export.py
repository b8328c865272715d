"""Exported files compute the same logits as PyTorch, at batch sizes other than the example's."""

from __future__ import annotations

import json

import pytest
import torch

from mixer_testing import randomised
from mlpmixer import ConfigError, create_model
from mlpmixer.export import export_model, resolve_format, run_exported


@pytest.fixture(scope="module")
def model():
    # a non-square grid and 3 channels exercise the patchify reshape in the exported graph
    return randomised(create_model("mixer_t2_8", img_size=(8, 12), in_chans=3, num_blocks=2))


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """Each format exported once (with verification) for the whole module: path, report."""
    cache = {}

    def get(fmt, suffix):
        if fmt not in cache:
            path = tmp_path_factory.mktemp(fmt) / f"mixer{suffix}"
            cache[fmt] = path, export_model(model, path)
        return cache[fmt]

    return get


def _pytorch_logits(model, images):
    with torch.no_grad():
        return model(images)


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [
        pytest.param("onnx", ".onnx", marks=pytest.mark.slow),
        ("torchscript", ".ts"),
        pytest.param("exported-program", ".pt2", marks=pytest.mark.slow),
    ],
)
def test_export_reproduces_pytorch_at_any_batch_size(model, exported, fmt, suffix):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    path, report = exported(fmt, suffix)
    assert report.format == fmt and path.stat().st_size == report.bytes
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-4
    assert report.input_shape == ["batch", 3, 8, 12]
    for batch in (1, 4, 7):  # none of these is the example batch (2) used at export
        images = torch.randn(batch, 3, 8, 12, generator=torch.Generator().manual_seed(batch))
        expected = _pytorch_logits(model, images)
        got = run_exported(path, fmt, images)
        assert got.shape == (batch, 10)
        assert expected.abs().max() > 0.1  # random weights: the comparison is not of zeros
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


@pytest.mark.slow
def test_onnx_runs_in_onnxruntime_and_carries_the_config(model, exported):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from mlpmixer.export import read_onnx_config

    path, _ = exported("onnx", ".onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "images" and isinstance(inp.shape[0], str)  # symbolic batch dimension
    images = torch.randn(5, 3, 8, 12)
    (logits,) = session.run(None, {"images": images.numpy()})
    assert abs(torch.from_numpy(logits) - _pytorch_logits(model, images)).max() <= 1e-4
    assert read_onnx_config(path)["img_size"] == [8, 12]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_and_program_carry_the_config(exported):
    path, _ = exported("torchscript", ".ts")
    extra = {"config.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["config.json"])["in_chans"] == 3
    path, _ = exported("exported-program", ".pt2")
    extra = {"config.json": ""}
    torch.export.load(str(path), extra_files=extra)
    assert json.loads(extra["config.json"])["img_size"] == [8, 12]


def test_format_comes_from_the_suffix_or_is_refused():
    from pathlib import Path

    assert resolve_format(Path("a.pt2"), None) == "exported-program"
    assert resolve_format(Path("a.bin"), "onnx") == "onnx"
    with pytest.raises(ConfigError, match=r"a\.bin"):
        resolve_format(Path("a.bin"), None)
    with pytest.raises(ConfigError, match="tflite"):
        resolve_format(Path("a.onnx"), "tflite")
