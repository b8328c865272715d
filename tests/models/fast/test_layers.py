"""The fast default forward pass of `MlpMixer` against the plain reference (`PlainMixer`).

The fast path changes how the products are laid out (batched token mixing with the bias
inside the product, the channel MLP over pieces of rows in inference, residuals added in
place), never what is computed; these tests hold it to the plain implementation's numbers
on random weights that went through the official .npz layout.
"""

from __future__ import annotations

import pytest
import torch

from mixer_testing import randomised
from mlpmixer import MixerConfig, MlpMixer
from mlpmixer.checkpoints import load_model, save_model
from mlpmixer.models.fast.layers import ChannelMlp
from mlpmixer.models.plain import PlainMixer

CONFIG = MixerConfig(
    img_size=(32, 32), patch_size=(4, 4), in_chans=3, num_classes=10, hidden_dim=48,
    num_blocks=3, tokens_mlp_dim=24, channels_mlp_dim=96,
)  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(fast, plain) with the same random weights, read back from an official-layout .npz."""
    path = tmp_path_factory.mktemp("official") / "mixer.npz"
    save_model(randomised(MlpMixer(CONFIG), seed=3), path, format="official")
    fast = load_model(path).eval()
    plain = PlainMixer.from_model(fast).eval()
    return fast, plain


def _images(batch: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.float() - b.float()).abs().max() / b.float().abs().max()).item()


def test_state_dicts_are_interchangeable(models):
    fast, plain = models
    assert fast.state_dict().keys() == plain.state_dict().keys()
    for key, value in plain.state_dict().items():
        assert value.shape == fast.state_dict()[key].shape, key


def test_inference_logits_equal_plain_fp32(models, monkeypatch):
    fast, plain = models
    images = _images()
    monkeypatch.setattr(ChannelMlp, "hidden_bytes_per_piece", 100_000)  # 5 pieces
    with torch.inference_mode():
        expected = plain(images)
        torch.testing.assert_close(fast(images), expected, atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(fast(images), expected, atol=1e-5, rtol=0)
    # the training layout of the products (grad enabled, no pieces) gives the same numbers
    torch.testing.assert_close(fast(images).detach(), expected, atol=1e-5, rtol=0)


def test_pieces_of_rows_do_not_change_features(models, monkeypatch):
    fast, _ = models
    images = _images(5)
    with torch.no_grad():
        whole = fast.forward_features(images)
        monkeypatch.setattr(ChannelMlp, "hidden_bytes_per_piece", 96 * 4 * 7)  # 7 rows
        torch.testing.assert_close(fast.forward_features(images), whole, atol=1e-6, rtol=0)


def test_bf16_logits_within_2e_2_of_fp32_plain(models):
    fast, plain = models
    images = _images()
    with torch.no_grad():
        expected = plain(images)
        fast_bf16 = MlpMixer.from_state_dict(fast.state_dict(), CONFIG).eval().bfloat16()
        plain_bf16 = PlainMixer.from_model(fast_bf16).eval()
        assert _relative(fast_bf16(images.bfloat16()), expected) < 2e-2
        assert _relative(plain_bf16(images.bfloat16()), expected) < 2e-2
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert _relative(fast(images), expected) < 2e-2
    # and the bf16 fast path is not accidentally running in fp32
    assert fast_bf16(images.bfloat16()).dtype == torch.bfloat16


@pytest.mark.parametrize("checkpointing", [False, True])
def test_gradients_equal_plain_in_float64(checkpointing):
    """Backward through the in-place residuals and batched products is the plain gradient."""
    fast = randomised(MlpMixer(CONFIG.replace(num_blocks=2)), seed=5).double().train()
    plain = PlainMixer.from_model(fast).double().train()
    fast.set_grad_checkpointing(checkpointing)
    images = _images(3).double()
    labels = torch.tensor([1, 4, 7])
    losses = []
    for model in (fast, plain):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        losses.append(loss.detach())
    torch.testing.assert_close(losses[0], losses[1], atol=1e-12, rtol=0)
    plain_grads = dict(plain.named_parameters())
    for name, param in fast.named_parameters():
        torch.testing.assert_close(param.grad, plain_grads[name].grad, atol=1e-10, rtol=1e-9)


def test_stochastic_depth_and_dropout_still_train(models):
    """In-place residual adds must keep working when the branch is a dropped/scaled copy."""
    model = MlpMixer(CONFIG.replace(drop_rate=0.1, drop_path_rate=0.2)).train()
    out = model(_images(4))
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_bf16_autocast_training_matches_plain(models):
    fast, _ = models
    fast = MlpMixer.from_state_dict(fast.state_dict(), CONFIG).train()
    plain = PlainMixer.from_model(fast).train()
    images, labels = _images(6), torch.arange(6)
    losses, grads = [], []
    for model in (fast, plain):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(images).float(), labels)
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert all(p.grad.dtype == torch.float32 for p in fast.parameters())
    assert abs(losses[0] - losses[1]) < 2e-2 * abs(losses[1])
    assert _relative(grads[0], grads[1]) < 5e-2


# ---------------------------------------------------------------- fused GELU on and off


@pytest.fixture(params=["fused", "aten"])
def gelu_path(request, monkeypatch):
    """Run a test with the fused tanh-GELU kernel, then with the ATen fallback; with the kernel,
    check afterwards that it really ran (a silent fallback would make the test vacuous)."""
    from mlpmixer.models.fast import gelu as gelu_module

    calls = []
    if request.param == "aten":
        monkeypatch.setenv("MLPMIXER_FUSED_GELU", "0")
        gelu_module.pieces.reset()  # (the switch is read when the pieces are decided)
    elif not gelu_module.fused_available():
        pytest.skip("no C compiler: the fused kernel is not built")
    forward = gelu_module._forward
    monkeypatch.setattr(gelu_module, "_forward", lambda *a: calls.append(1) or forward(*a))
    yield request.param
    assert bool(calls) == (request.param == "fused")


def test_gelu_paths_logits_equal_numpy_reference(gelu_path, tmp_path):
    """fp32 inference (in-place GELU, pieces of rows) vs the float64 NumPy reference: 1e-5."""
    import numpy as np

    from mixer_reference import mixer_logits
    from mlpmixer.checkpoints.official import state_to_official

    model = randomised(MlpMixer(CONFIG), seed=11).eval()
    images = _images(6, seed=2)
    params = state_to_official(model.state_dict(), model.config.num_blocks)
    expected = mixer_logits(params, images.permute(0, 2, 3, 1).numpy(), "tanh")
    with torch.no_grad():
        np.testing.assert_allclose(model(images).numpy(), expected, atol=1e-5, rtol=0)
    plain = PlainMixer.from_model(model).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images), plain(images), atol=1e-5, rtol=0)


def test_gelu_paths_gradients_equal_plain_in_float64(gelu_path):
    fast = randomised(MlpMixer(CONFIG.replace(num_blocks=2)), seed=5).double().train()
    plain = PlainMixer.from_model(fast).double().train()
    images, labels = _images(3).double(), torch.tensor([1, 4, 7])
    for model in (fast, plain):
        torch.nn.functional.cross_entropy(model(images), labels).backward()
    plain_grads = dict(plain.named_parameters())
    for name, param in fast.named_parameters():
        torch.testing.assert_close(param.grad, plain_grads[name].grad, atol=1e-10, rtol=1e-9)


def test_gelu_paths_bf16_within_2e_2_of_fp32_plain(gelu_path, models):
    fast, plain = models
    images = _images()
    with torch.no_grad():
        expected = plain(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert _relative(fast(images), expected) < 2e-2
        fast_bf16 = MlpMixer.from_state_dict(fast.state_dict(), CONFIG).eval().bfloat16()
        assert _relative(fast_bf16(images.bfloat16()), expected) < 2e-2
    # bf16 autocast training: loss and gradients against the plain fp32-weights model
    fast = MlpMixer.from_state_dict(fast.state_dict(), CONFIG).train()
    reference = PlainMixer.from_model(fast).train()
    grads = []
    for model in (fast, reference):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(model(images).float(), torch.arange(20) % 10)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert _relative(grads[0], grads[1]) < 5e-2
