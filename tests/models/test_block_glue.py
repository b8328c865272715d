"""The Mixer block's fused bf16 inference glue (`block_glue`) against the ATen ops it replaces.

Kernels: against the unfused ATen sequence in bfloat16 (the residual stream bit for bit) and a
float64 reference; the model: fused against unfused and against the fp32 plain model
(`PlainMixer`), and every case that must keep the ATen path.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mixer_testing import randomised
from mlpmixer import MixerConfig, MlpMixer
from mlpmixer.models import block_glue, gelu
from mlpmixer.models.gmixer import GMixer
from mlpmixer.models.plain import PlainMixer

needs_kernel = pytest.mark.skipif(not gelu.fused_available(), reason="no C compiler")
CONFIG = MixerConfig(
    img_size=(32, 32), patch_size=(4, 4), in_chans=3, num_classes=10, hidden_dim=48,
    num_blocks=3, tokens_mlp_dim=24, channels_mlp_dim=96,
)  # fmt: skip


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(batch: int = 6) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=_gen(1))


@needs_kernel
def test_bias_gelu_matches_aten_and_float64():
    h = (3 * torch.randn(3, 20, 37, generator=_gen())).bfloat16()
    b = torch.randn(20, generator=_gen(2)).bfloat16()
    aten = F.gelu(h + b[:, None], approximate="tanh")
    # float64 GELU of the bf16-rounded sum (the input ATen's bf16 GELU sees)
    exact = F.gelu((h + b[:, None]).double(), approximate="tanh")
    fused = block_glue.bias_gelu_(h.clone(), b)
    assert (fused.float() - aten.float()).abs().max() <= 2**-7 * aten.float().abs().max()
    assert ((fused.double() - exact).abs() <= 2**-7 * exact.abs() + 1e-6).all()


@needs_kernel
def test_bias_residual_layer_norm_matches_aten():
    t = torch.randn(4, 20, 48, generator=_gen()).bfloat16()
    x = torch.randn(4, 20, 48, generator=_gen(1)).bfloat16()
    b = torch.randn(20, generator=_gen(2)).bfloat16()
    norm = torch.nn.LayerNorm(48, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_(generator=_gen(3))
        norm.bias.normal_(generator=_gen(4))
    stream = (t + b[:, None]) + x  # ATen, rounding to bf16 after each add
    exact = F.layer_norm(stream.double(), (48,), norm.weight.double(), norm.bias.double(), 1e-6)
    fused_stream, fused_norm = block_glue.bias_residual_layer_norm(t.clone(), b, x, norm)
    assert torch.equal(fused_stream, stream)
    assert (fused_norm.double() - exact).abs().max() <= 2**-7 * exact.abs().max()


@pytest.fixture(scope="module")
def models():
    fast = randomised(MlpMixer(CONFIG), seed=3).eval()
    return fast, PlainMixer.from_model(fast).eval()


def _count_fused_calls(monkeypatch) -> list[int]:
    calls = [0]
    real = block_glue.bias_residual_layer_norm

    def counting(*args):
        calls[0] += 1
        return real(*args)

    monkeypatch.setattr(block_glue, "bias_residual_layer_norm", counting)
    return calls


@needs_kernel
@pytest.mark.parametrize("precision", ["autocast", "bf16-weights"])
def test_fused_logits_within_2e_2_of_fp32_plain_and_close_to_unfused(
    models, precision, monkeypatch
):
    fast, plain = models
    model, images = fast, _images()
    if precision == "bf16-weights":
        model, images = randomised(MlpMixer(CONFIG), seed=3).eval().bfloat16(), images.bfloat16()
    calls = _count_fused_calls(monkeypatch)
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16, enabled=precision == "autocast"):
        fused = model(images)
        monkeypatch.setenv("MLPMIXER_BLOCK_GLUE", "0")
        unfused = model(images)
        reference = plain(_images())
    assert calls[0] == CONFIG.num_blocks  # the fused path ran, once per block, then not
    scale = reference.abs().max()
    assert (fused.float() - reference).abs().max() / scale < 2e-2
    assert (fused.float() - unfused.float()).abs().max() / scale < 2e-2


@needs_kernel
def test_aten_path_kept_where_the_glue_does_not_apply(models, monkeypatch):
    fast, _ = models
    calls = _count_fused_calls(monkeypatch)
    images = _images()
    with torch.autocast("cpu", torch.bfloat16):
        fast(images)  # grad enabled
        with torch.no_grad():
            fast.train()
            fast(images)
            fast.eval()
            with FlopCounterMode(display=False) as counter:
                fast(images)  # the counter must see the ATen products
            assert counter.get_total_flops() > 0
    with torch.no_grad():
        fast(images)  # fp32
        randomised(GMixer(CONFIG.replace(family="gmixer")), seed=3).eval().bfloat16()(
            images.bfloat16()
        )
        erf = MlpMixer(CONFIG.replace(gelu="none")).eval().bfloat16()
        erf(images.bfloat16())
        monkeypatch.setenv("MLPMIXER_FUSED_GELU", "0")
        with torch.autocast("cpu", torch.bfloat16):
            fast(images)
    assert calls[0] == 0


@needs_kernel
def test_hooks_on_the_block_layers_still_fire(models, monkeypatch):
    fast, _ = models
    calls, seen = _count_fused_calls(monkeypatch), []
    handle = fast.blocks[0].channel_norm.register_forward_hook(lambda *a: seen.append(1))
    try:
        with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
            fast(_images())
    finally:
        handle.remove()
    assert seen == [1]
    assert calls[0] == CONFIG.num_blocks - 1  # the hooked block took the ATen path
