"""gMixer, ResMLP and gMLP export like the Mixer: every format reproduces PyTorch's logits."""

from __future__ import annotations

import pytest
import torch

from mixer_testing import randomised
from mlpmixer.export.export import DEFAULT_SUFFIX, export_model
from mlpmixer.models import MixerConfig, build_model


@pytest.mark.parametrize("fmt", [pytest.param("onnx", marks=pytest.mark.slow), "exported-program"])
@pytest.mark.parametrize("family", ["gmixer", "resmlp", "gmlp"])
def test_family_exports_reproduce_pytorch(family, fmt, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnxscript")
    config = MixerConfig(
        family=family, img_size=(8, 12), patch_size=(2, 3), num_classes=5, hidden_dim=16,
        num_blocks=2, tokens_mlp_dim=8, channels_mlp_dim=32, gelu="none",
    )  # fmt: skip
    model = randomised(build_model(config))
    report = export_model(model, tmp_path / f"m{DEFAULT_SUFFIX[fmt]}", fmt)
    assert report.verified_batch_sizes == [1, 3]
    assert report.max_abs_diff < 1e-4
    with torch.no_grad():  # the randomised model is not trivially constant
        assert model(torch.randn(2, 3, 8, 12)).std() > 0.1
