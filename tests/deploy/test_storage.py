"""The int8 file format: round trip, no pickles, and clear refusals."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from deploy_testing import FAMILIES, METHOD_PARAMS, images, needs_torchao, tiny
from mlpmixer.deploy import detect, load_quantized, quantize, save_quantized
from mlpmixer.deploy.storage import MANIFEST, TENSORS
from mlpmixer.errors import CheckpointError

pytestmark = needs_torchao


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", METHOD_PARAMS)
def test_loaded_model_gives_the_same_logits_as_the_one_saved(family, method, tmp_path):
    q = quantize(tiny(family), method, calibration=images(64, seed=2))
    save_quantized(q, tmp_path / "q")
    loaded = load_quantized(tmp_path / "q")
    x = images(9, seed=5)
    with torch.no_grad():
        assert torch.equal(loaded(x), q(x))
    assert (loaded.method, loaded.kept_in_float, loaded.quantized) == (
        q.method, q.kept_in_float, q.quantized,
    )  # fmt: skip
    assert loaded.config == q.config


def test_the_folder_holds_int8_tensors_and_json_only(tmp_path):
    q = quantize(tiny(), "static", calibration=images(16))
    save_quantized(q, tmp_path / "q")
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == [MANIFEST, TENSORS]
    tensors = load_file(tmp_path / "q" / TENSORS)
    int8 = [k for k, v in tensors.items() if v.dtype == torch.int8]
    assert len(int8) == len(q.quantized)
    # no float copy of a quantized weight is left behind
    float_bytes = sum(v.numel() * 4 for v in tiny().state_dict().values())
    assert (tmp_path / "q" / TENSORS).stat().st_size < 0.5 * float_bytes
    manifest = json.loads((tmp_path / "q" / MANIFEST).read_text())
    assert manifest["method"] == "static" and manifest["kept_in_float"] == ["stem.proj", "head"]
    assert manifest["activations"] and manifest["calibration_images"] == 16


def test_detect(tmp_path):
    save_quantized(quantize(tiny(), "weight-only"), tmp_path / "q")
    assert detect(tmp_path / "q")
    assert not detect(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / MANIFEST).write_text('{"format": "something-else"}')
    assert not detect(tmp_path / "other")
    (tmp_path / "other" / MANIFEST).write_text("{not json")
    assert not detect(tmp_path / "other")


def test_a_tensor_that_does_not_fit_is_refused_by_name(tmp_path):
    save_quantized(quantize(tiny(), "dynamic"), tmp_path / "q")
    path = tmp_path / "q" / TENSORS
    tensors = load_file(path)
    tensors["blocks.0.channel_mixing.fc1.weight::qdata"] = torch.zeros(3, 3, dtype=torch.int8)
    save_file(tensors, path)
    with pytest.raises(CheckpointError, match=r"blocks\.0\.channel_mixing\.fc1\.weight::qdata"):
        load_quantized(tmp_path / "q")


def test_a_missing_tensor_a_bad_manifest_and_no_folder_are_refused(tmp_path):
    save_quantized(quantize(tiny(), "weight-only"), tmp_path / "q")
    tensors = load_file(tmp_path / "q" / TENSORS)
    del tensors["head.weight"]
    save_file(tensors, tmp_path / "q" / TENSORS)
    with pytest.raises(CheckpointError, match="missing"):
        load_quantized(tmp_path / "q")
    (tmp_path / "q" / MANIFEST).write_text('{"format": "mlpmixer-int8", "method": "int4"}')
    with pytest.raises(CheckpointError):
        load_quantized(tmp_path / "q")
    with pytest.raises(CheckpointError, match="no such"):
        load_quantized(tmp_path / "absent")
