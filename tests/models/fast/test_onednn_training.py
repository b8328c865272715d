"""oneDNN products in fp32 CPU training (onednn.training_linear) against the ATen path."""

from __future__ import annotations

import pytest
import torch

from mixer_testing import EPYC, XEON, needs_onednn, randomised, record_results
from mlpmixer import MixerConfig, MlpMixer
from mlpmixer.cpu_kind import parse_cpuinfo
from mlpmixer.models.fast import onednn, pieces
from mlpmixer.models.plain import PlainMixer

CONFIG = MixerConfig(
    img_size=(32, 32), patch_size=(4, 4), in_chans=3, num_classes=10, hidden_dim=48,
    num_blocks=2, tokens_mlp_dim=24, channels_mlp_dim=96,
)  # fmt: skip


def _run_on(monkeypatch, cpuinfo: str) -> None:
    """Make the process believe it runs on the CPU ``cpuinfo`` describes, and decide again by
    the rules (the suite's policy is every piece on)."""
    monkeypatch.setattr(pieces, "effective_cpu", lambda: parse_cpuinfo(cpuinfo))
    pieces.set_policy("auto")


@pytest.fixture(autouse=True)
def on_amd(monkeypatch):
    """The tests below check the oneDNN path itself: run them as on the AMD EPYC, where it is
    taken; the real CPU's decision is made again afterwards (conftest)."""
    _run_on(monkeypatch, EPYC)


@pytest.fixture
def calls(monkeypatch):
    """Record whether each channel-MLP product took the oneDNN training path."""
    return record_results(monkeypatch, onednn, "training_linear")


def _loss_and_grads(model, images):
    model.zero_grad()
    logits = model(images)
    (logits * torch.linspace(-1, 1, logits.shape[-1])).sum().backward()
    return logits, {n: p.grad.clone() for n, p in model.named_parameters()}


def _images():
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@needs_onednn
@pytest.mark.parametrize("weight_grad_in_onednn", [True, False])
def test_fp32_gradients_match_float64_plain(weight_grad_in_onednn, calls, monkeypatch):
    monkeypatch.setattr(onednn, "_WEIGHT_GRAD_IN_ONEDNN", weight_grad_in_onednn)
    model = randomised(MlpMixer(CONFIG), seed=2).train()
    logits, grads = _loss_and_grads(model, _images())
    assert calls and all(calls)  # every channel product went through oneDNN
    plain = PlainMixer.from_model(model).double().train()
    ref_logits, ref = _loss_and_grads(plain, _images().double())
    ref = {name.replace("plain.", ""): g for name, g in ref.items()}
    torch.testing.assert_close(logits.double(), ref_logits, rtol=1e-5, atol=1e-5)
    for name, grad in grads.items():
        scale = ref[name].abs().max().clamp_min(1.0)  # some true gradients are ~0 (1e-18)
        assert (grad.double() - ref[name]).abs().max() / scale < 1e-5, name


@needs_onednn
def test_switch_and_other_dtypes_take_aten(calls, monkeypatch):
    model = randomised(MlpMixer(CONFIG), seed=2).train()
    monkeypatch.setenv("MLPMIXER_ONEDNN", "0")
    pieces.reset()
    _loss_and_grads(model, _images())
    monkeypatch.delenv("MLPMIXER_ONEDNN")
    pieces.reset()
    _loss_and_grads(model.double(), _images().double())  # float64: ATen
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model.float()(_images()).sum().backward()  # autocast: ATen
    with torch.no_grad():
        model(_images())  # inference: the inference path, not this one
    assert not any(calls)


def _products_run(model) -> set[str]:
    """The product ops one fp32 training step of ``model`` runs."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        _loss_and_grads(model, _images())
    names = {event.name for event in prof.events()}
    return names & {"mkldnn::_linear_pointwise", "aten::addmm", "aten::mm"}


@needs_onednn
@pytest.mark.parametrize(
    "cpuinfo, in_onednn", [(XEON, False), (EPYC, True)], ids=["intel-xeon", "amd-epyc"]
)
def test_fp32_training_products_follow_the_cpu_rule(cpuinfo, in_onednn, calls, monkeypatch):
    """On an Intel Xeon (MKL has AVX-512) the products stay in ATen; on an AMD EPYC with
    AVX-512 (MKL has only AVX2 there) they run in oneDNN (`cpu_kind.onednn_fp32_training`)."""
    _run_on(monkeypatch, cpuinfo)
    ran = _products_run(randomised(MlpMixer(CONFIG), seed=2).train())
    assert (calls and all(calls)) if in_onednn else not calls
    assert ("mkldnn::_linear_pointwise" in ran) is in_onednn
    assert ran & {"aten::addmm", "aten::mm"}  # the token products are ATen's on both kinds
    if not in_onednn:
        plain = PlainMixer.from_model(randomised(MlpMixer(CONFIG), seed=2)).train()
        assert ran == _products_run(plain)  # the same ATen products as the plain model


@needs_onednn
def test_double_backward_is_refused_not_wrong():
    x = torch.randn(5, 48, requires_grad=True)
    layer = torch.nn.Linear(48, 8)
    (out,) = (onednn.training_linear(layer, x),)
    (grad,) = torch.autograd.grad(out.square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError):
        grad.sum().backward()


@needs_onednn
def test_torch_func_transforms_take_aten(monkeypatch):
    """torch.func wraps tensors; the autograd Function has no functorch rules, so ATen runs,
    and the path stays on for ordinary training afterwards (it must not count as a failure)."""
    monkeypatch.setattr(onednn, "failed", set())
    layer = torch.nn.Linear(48, 8)
    x = torch.randn(5, 48)
    seen = []

    def loss(x):
        out = onednn.training_linear(layer, x)
        seen.append(out is not None)
        return layer(x).square().sum() if out is None else out.square().sum()

    grad = torch.func.grad(loss)(x)
    expected = 2 * layer(x) @ layer.weight
    torch.testing.assert_close(grad, expected.detach(), rtol=1e-5, atol=1e-5)
    assert seen == [False]
    assert not onednn.failed
    assert onednn.training_linear(layer, x.requires_grad_()) is not None
