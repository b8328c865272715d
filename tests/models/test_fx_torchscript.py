"""torch.fx traces of our models compile with TorchScript (issue 27 item 12).

timm's ``test_model_forward_fx_torchscript`` traces each model (through torchvision's
create_feature_extractor) and scripts the traced module. torch.fx writes the root forward's
annotations into the code it generates; ours were strings (``from __future__ import
annotations``) and came out as ``images : _torch_Tensor_``, a name TorchScript does not know,
on every family. This reproduces that without torchvision: `torch.fx.symbolic_trace`, then
`torch.jit.script`, on the registered small models and one small model of each family, and
the scripted trace gives the eager outputs.
"""

from __future__ import annotations

import pytest
import torch

import mlpmixer
from timm_adapter import FAMILIES, build_ours

SMALL = ["mixer_t2_8", "mixer_t4_28", "mixer_s4_32"]


def _model(which: str) -> mlpmixer.MlpFamilyModel:
    torch.manual_seed(0)
    if which in SMALL:
        return mlpmixer.create_model(which, num_classes=5)
    return build_ours(which)  # 32x32 RGB, 8x8 patches, 4 blocks


def _images(model: mlpmixer.MlpFamilyModel) -> torch.Tensor:
    return torch.randn(2, model.config.in_chans, *model.config.img_size)


@pytest.mark.parametrize("which", SMALL + list(FAMILIES))
def test_fx_trace_scripts_and_gives_the_eager_logits(which):
    model = _model(which).eval()
    scripted = torch.jit.script(torch.fx.symbolic_trace(model))
    x = _images(model)
    torch.testing.assert_close(scripted(x), model(x), rtol=1e-4, atol=1e-5)


def test_fx_trace_of_the_feature_model_scripts():
    model = mlpmixer.create_model("mixer_t2_8", features_only=True, out_indices=(1, 3)).eval()
    scripted = torch.jit.script(torch.fx.symbolic_trace(model))
    x = torch.randn(2, 1, 8, 8)
    for got, want in zip(scripted(x), model(x), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
