"""The oneDNN linear(+GELU) path of CPU inference against the ATen path and the reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mixer_reference import mixer_logits
from mixer_testing import needs_onednn, needs_onednn_bf16, randomised, record_results
from mlpmixer import MixerConfig, MlpMixer
from mlpmixer.checkpoints.official import state_to_official
from mlpmixer.models.fast import onednn, pieces
from mlpmixer.models.plain import PlainMixer

CONFIG = MixerConfig(
    img_size=(32, 32), patch_size=(4, 4), in_chans=3, num_classes=10, hidden_dim=48,
    num_blocks=3, tokens_mlp_dim=24, channels_mlp_dim=96,
)  # fmt: skip


@pytest.fixture
def calls(monkeypatch):
    """Count the channel MLPs the oneDNN path actually ran."""
    return record_results(monkeypatch, onednn, "run_mlp")


def _images(batch: int = 6) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@needs_onednn
@pytest.mark.parametrize("gelu", ["tanh", "none"])
def test_fp32_logits_match_numpy_reference_and_aten_path(gelu, calls, monkeypatch):
    model = randomised(MlpMixer(CONFIG.replace(gelu=gelu)), seed=4).eval()
    images = _images()
    params = state_to_official(model.state_dict(), model.config.num_blocks)
    expected = mixer_logits(params, images.permute(0, 2, 3, 1).numpy(), gelu)
    with torch.no_grad():
        fused = model(images)
    assert calls and all(calls)  # the oneDNN path ran, for every channel MLP
    np.testing.assert_allclose(fused.numpy(), expected, atol=1e-5, rtol=0)
    monkeypatch.setenv("MLPMIXER_ONEDNN", "0")
    pieces.reset()  # (the switch is read when the pieces are decided)
    calls.clear()
    with torch.no_grad():
        aten = model(images)
    assert not calls
    torch.testing.assert_close(fused, aten, atol=1e-5, rtol=0)


@needs_onednn_bf16
def test_bf16_autocast_and_bf16_weights_within_2e_2(calls):
    model = randomised(MlpMixer(CONFIG), seed=4).eval()
    images = _images()
    with torch.no_grad():
        expected = PlainMixer.from_model(model).eval()(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = model(images)
        bf16 = MlpMixer.from_state_dict(model.state_dict(), CONFIG).eval().bfloat16()
        weights_bf16 = bf16(images.bfloat16())
    assert calls and all(calls)
    assert autocast.dtype == weights_bf16.dtype == torch.bfloat16
    for out in (autocast, weights_bf16):
        assert ((out.float() - expected).abs().max() / expected.abs().max()).item() < 2e-2


def test_not_used_in_training_or_when_disabled(calls, monkeypatch):
    model = randomised(MlpMixer(CONFIG), seed=4)
    model(_images(2)).sum().backward()  # training: autograd needs the ATen products
    assert not calls
    monkeypatch.setenv("MLPMIXER_ONEDNN", "0")
    pieces.reset()
    with torch.no_grad():
        model.eval()(_images(2))
    assert not calls
    assert {d.why for d in pieces.decisions() if d.piece == onednn.INFERENCE} == {
        "off: MLPMIXER_ONEDNN=0"
    }


def test_fp16_weights_use_aten(calls):
    """fp16 has no oneDNN path: the channel MLPs of an fp16 model never run `run_mlp`, and
    give the fp32 model's logits within fp16's precision."""
    model = randomised(MlpMixer(CONFIG), seed=4).eval()
    images = _images()
    with torch.no_grad():
        expected = PlainMixer.from_model(model).eval()(images)
        half = MlpMixer.from_state_dict(model.state_dict(), CONFIG).eval().half()
        out = half(images.half())
    assert not calls and out.dtype == torch.float16
    assert ((out.float() - expected).abs().max() / expected.abs().max()).item() < 1e-2
    x = torch.randn(4, 10, 48)
    mlp = model.blocks[0].channel_mixing
    with torch.no_grad():
        assert onednn.linear(x.half(), mlp.fc1.weight.half(), mlp.fc1.bias.half()) is None


def _bf16_logits(model, images):
    with torch.no_grad():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = model(images)
        bf16 = MlpMixer.from_state_dict(model.state_dict(), CONFIG).eval().bfloat16()
        return autocast, bf16(images.bfloat16())


def test_bf16_without_onednn_support_takes_aten(calls, monkeypatch):
    """A CPU where oneDNN has no bf16 inner product (AVX2 only): bf16 inference runs in ATen,
    within 2e-2 of fp32, without trying oneDNN (no failing call, no warning)."""
    monkeypatch.setattr(onednn, "supports", lambda dtype: dtype == torch.float32)
    monkeypatch.setattr(onednn, "failed", set())
    model = randomised(MlpMixer(CONFIG), seed=4).eval()
    images = _images()
    with torch.no_grad():
        expected = PlainMixer.from_model(model).eval()(images)
    for out in _bf16_logits(model, images):
        assert out.dtype == torch.bfloat16
        assert ((out.float() - expected).abs().max() / expected.abs().max()).item() < 2e-2
    assert not any(calls) and not onednn.failed


@needs_onednn
def test_a_failed_bf16_call_switches_off_bf16_only_quietly(calls, monkeypatch, caplog):
    """Issue 25: one failed bf16 oneDNN call switched oneDNN off for the whole process, fp32
    included, with a warning. Now only that op in that dtype goes to ATen, logged at debug."""
    monkeypatch.setattr(onednn, "supports", lambda dtype: True)
    monkeypatch.setattr(onednn, "failed", set())
    real = onednn.pointwise

    def no_bf16(x, *args):
        if x.dtype == torch.bfloat16:
            raise RuntimeError("could not create a primitive descriptor for the inner product")
        return real(x, *args)

    monkeypatch.setattr(onednn, "pointwise", no_bf16)
    model = randomised(MlpMixer(CONFIG), seed=4).eval()
    images = _images()
    with torch.no_grad():
        expected = PlainMixer.from_model(model).eval()(images)
    with caplog.at_level("DEBUG", logger="mlpmixer"):
        for out in _bf16_logits(model, images):
            assert ((out.float() - expected).abs().max() / expected.abs().max()).item() < 2e-2
        assert onednn.failed == {("linear+gelu", torch.bfloat16)}
        calls.clear()
        with torch.no_grad():
            torch.testing.assert_close(model(images), expected, atol=1e-5, rtol=0)
    assert calls and all(calls)  # fp32 still runs in oneDNN
    logged = [r.levelname for r in caplog.records if "failed" in r.getMessage()]
    assert logged and set(logged) == {"DEBUG"}
