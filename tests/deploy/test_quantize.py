"""quantize(): every method on every family, checked against the float model and, for
weight-only, against int8 weights computed here independently."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from deploy_testing import FAMILIES, METHOD_PARAMS, images, needs_torchao, tiny
from mlpmixer.deploy import quantize
from mlpmixer.deploy.plain import plain_copy
from mlpmixer.errors import ConfigError

pytestmark = needs_torchao


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("method", METHOD_PARAMS)
def test_every_method_on_every_family_stays_close_to_float(family, method):
    model = tiny(family)
    x = images()
    with torch.no_grad():
        ref = model(x)
        q = quantize(model, method, calibration=images(64, seed=2))
        out = q(x)
    assert out.shape == ref.shape
    # int8 rounding moves logits, but a fraction of their spread, not more
    assert (out - ref).abs().max() < 0.1 * ref.abs().max()
    assert (out - ref).abs().max() > 0  # it did quantize something
    assert "head" not in q.quantized and "stem.proj" not in q.quantized
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "head"]
    assert sorted(q.quantized) == sorted(linears)


def _int8_rows(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric per-row int8 rounding of ``weight`` (out, in), dequantized: the reference.

    torchao's convention: the full signed range [-128, 127] with scale max|row| / 127.5 (so a
    row's largest positive value lands on 127 or is clamped there, its largest negative -128).
    """
    scale = weight.abs().amax(dim=1, keepdim=True) / 127.5
    # x * (1 / scale), as torchao rounds: x / scale differs in the last bit at a few ties
    return torch.clamp(torch.round(weight * (1.0 / scale)), -128, 127) * scale


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_only_equals_the_float_model_with_int8_rounded_weights(family):
    model = tiny(family)
    reference = plain_copy(model)
    with torch.no_grad():
        for name, module in reference.named_modules():
            if isinstance(module, nn.Linear) and name != "head":
                module.weight.copy_(_int8_rows(module.weight))
        x = images()
        expected = reference(x)
        got = quantize(model, "weight-only")(x)
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
        # and that reference is not the float model itself
        assert (model(x) - expected).abs().max() > 1e-4


def test_weights_are_int8_and_the_model_passed_in_is_untouched():
    model = tiny()
    before = copy.deepcopy(model.state_dict())
    q = quantize(model, "dynamic")
    weight = q.inner.blocks[0].channel_mixing.fc1.weight
    assert weight.qdata.dtype == torch.int8
    assert type(model.blocks[0].channel_mixing.fc1.weight) is nn.Parameter
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_keep_float_leaves_the_named_layer_in_float():
    model = tiny()
    q = quantize(model, "weight-only", keep_float=("head", "stem.proj", "blocks.0.token_mixing"))
    assert type(q.inner.blocks[0].token_mixing.fc1.weight) is nn.Parameter
    assert "blocks.0.token_mixing.fc1" not in q.quantized
    assert "blocks.1.token_mixing.fc1" in q.quantized


def test_static_keeps_the_batch_dynamic_and_records_calibration():
    q = quantize(tiny("gmlp"), "static", calibration=images(16))
    assert q.calibration_images == 16
    assert q(images(1)).shape == (1, 5) and q(images(7)).shape == (7, 5)
    q.eval()  # an exported graph refuses .eval(); the wrapper keeps it working


def test_static_without_calibration_and_an_unknown_method_are_refused():
    with pytest.raises(ConfigError, match="calibration"):
        quantize(tiny(), "static")
    with pytest.raises(ConfigError, match="'int4'"):
        quantize(tiny(), "int4")


@pytest.mark.slow  # one static quantization per Linear: ~25 s on a busy 2-core machine
def test_sensitivity_finds_the_layer_whose_input_has_an_outlier():
    from mlpmixer.deploy.sensitivity import layer_sensitivity

    model = tiny()
    with torch.no_grad():  # one huge channel into blocks.1.channel_mixing.fc1: per-row weight
        model.blocks[1].channel_norm.weight[3] = 200.0  # scales are fine, the activations not
    x = images(16)
    rows = layer_sensitivity(model, "static", x, calibration=x)
    assert rows[0].layer == "blocks.1.channel_mixing.fc1"
    assert rows[0].kind == "channel-mixing"
    assert rows[0].input_max > 100  # the outlier channel, seen in its input range
    assert {r.kind for r in rows} == {"token-mixing", "channel-mixing"}
