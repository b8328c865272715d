"""oneDNN products in fp32 CPU training (onednn.training_linear) against the ATen path."""

from __future__ import annotations

import pytest
import torch

from mixer_testing import EPYC, XEON, needs_onednn, randomised, record_results
from mlpmixer import MixerConfig, MlpMixer, measured_choice
from mlpmixer.cpu_kind import cap_flags, parse_cpuinfo
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


def record_args(monkeypatch, module, name) -> list:
    """Wrap ``module.name`` (its last positional argument recorded per call)."""
    seen = []
    original = getattr(module, name)

    def recording(*args):
        seen.append(args[-1])
        return original(*args)

    monkeypatch.setattr(module, name, recording)
    return seen


def _loss_and_grads(model, images):
    model.zero_grad()
    logits = model(images)
    (logits * torch.linspace(-1, 1, logits.shape[-1])).sum().backward()
    return logits, {n: p.grad.clone() for n, p in model.named_parameters()}


def _images():
    return torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@needs_onednn
@pytest.mark.parametrize("choice", [onednn.ONEDNN_DW, onednn.MM_DW])
def test_fp32_gradients_match_float64_plain(choice, calls, monkeypatch):
    """Both oneDNN candidates: dW in oneDNN, and dW by ``torch.mm`` (forward and dX in oneDNN)."""
    monkeypatch.setattr(onednn, "training_choice", lambda dim, hidden, rows: choice)
    dw_in_onednn = record_args(monkeypatch, onednn, "_weight_grad")
    model = randomised(MlpMixer(CONFIG), seed=2).train()
    logits, grads = _loss_and_grads(model, _images())
    assert calls and all(calls)  # every channel product went through oneDNN
    assert dw_in_onednn == [choice == onednn.ONEDNN_DW] * len(calls)  # dW where the choice says
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


# --- the decision among oneDNN with dW in oneDNN, oneDNN with dW by torch.mm, ATen ------------

ZEN4 = EPYC.replace("cpu family\t: 26", "cpu family\t: 25")  # the machine the rule was measured on
S16, B16, L16 = (512, 2048), (768, 3072), (1024, 4096)  # channel MLP widths dim x hidden


@needs_onednn
@pytest.mark.parametrize(
    "cpuinfo, widths, expected",
    [
        (ZEN4, S16, onednn.ONEDNN_DW),  # dW in oneDNN won at S/16's widths (item 9)
        (ZEN4, B16, onednn.MM_DW),  # and lost at B/16's: its transposed copies cost more
        (EPYC, L16, onednn.MM_DW),
        (XEON, S16, onednn.ATEN),  # MKL has AVX-512 on Intel: ATen throughout
        (XEON, B16, onednn.ATEN),
    ],
    ids=["zen4-s16", "zen4-b16", "epyc-l16", "xeon-s16", "xeon-b16"],
)
def test_the_rule_takes_dw_by_mm_from_b16_widths_on_amd(cpuinfo, widths, expected, monkeypatch):
    _run_on(monkeypatch, cpuinfo)
    assert onednn.training_rule(parse_cpuinfo(cpuinfo), *widths) == expected
    assert onednn.training_choice(*widths, rows=16 * 196) == expected
    assert pieces.decisions()[-1].why.startswith("rule: ")


@needs_onednn
def test_the_switch_keeps_dw_in_onednn(monkeypatch):
    """``MLPMIXER_ONEDNN_DW_MM=0``: the previous behaviour (for side-by-side timings)."""
    monkeypatch.setenv(onednn.MM_DW_SWITCH, "0")
    pieces.reset()
    assert onednn.training_choice(*B16, rows=3136) == onednn.ONEDNN_DW
    monkeypatch.setenv("MLPMIXER_ONEDNN", "0")
    pieces.reset()
    assert onednn.training_choice(*B16, rows=3136) == onednn.ATEN


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPMIXER_CACHE", str(tmp_path))
    measured_choice._memo.clear()
    yield tmp_path
    measured_choice._memo.clear()


def _probing(monkeypatch, ms: dict[str, float]) -> list[list[str]]:
    """An unknown CPU (AVX2 caps) whose probes "measure" ``ms`` per candidate; each candidate
    still runs once and is checked against ATen first. Returns the candidates timed."""
    _run_on(monkeypatch, EPYC)
    kind = cap_flags(parse_cpuinfo(EPYC), {"ONEDNN_MAX_CPU_ISA": "AVX2"})
    monkeypatch.setattr(pieces, "effective_cpu", lambda: kind)
    seen = []

    def medians(candidates, rounds=5, clock=None, warmup=True):
        seen.append(list(candidates))
        return {name: ms.get(name, 1.0) for name in candidates}

    monkeypatch.setattr(measured_choice, "medians", medians)
    return seen


@needs_onednn
def test_an_unknown_cpu_probes_the_three_and_takes_the_fastest(monkeypatch, cache):
    seen = _probing(monkeypatch, {onednn.ONEDNN_DW: 1.0, onednn.MM_DW: 0.8, onednn.ATEN: 1.1})
    assert onednn.training_choice(48, 96, rows=3136) == onednn.MM_DW
    assert seen == [[onednn.ONEDNN_DW, onednn.MM_DW, onednn.ATEN]]
    assert pieces.decisions()[-1].why == "measured 1.38x"  # (over the plain op, ATen)
    # another shape class is decided on its own (here dW in oneDNN wins)
    _probing(monkeypatch, {onednn.ONEDNN_DW: 0.8, onednn.MM_DW: 1.0, onednn.ATEN: 1.1})
    assert onednn.training_choice(32, 64, rows=3136) == onednn.ONEDNN_DW


@needs_onednn
def test_a_wrong_weight_gradient_by_mm_is_never_timed(monkeypatch, cache):
    """The probe compares the output and both gradients with ATen's before timing."""
    seen = _probing(monkeypatch, {onednn.ONEDNN_DW: 0.5, onednn.MM_DW: 0.1})
    original = onednn._weight_grad
    monkeypatch.setattr(
        onednn,
        "_weight_grad",
        lambda g, x, in_onednn: (
            original(g, x, in_onednn) * 1.001 if not in_onednn else original(g, x, in_onednn)
        ),
    )
    assert onednn.training_choice(48, 96, rows=3136) == onednn.ONEDNN_DW
    assert seen == [[onednn.ONEDNN_DW, onednn.ATEN]]  # the wrong one was not timed


@needs_onednn
def test_a_choice_stored_before_dw_by_mm_existed_is_probed_again(monkeypatch, cache):
    """The cache key names the candidates: a choice stored among oneDNN and ATen (the switch,
    or an older version) does not answer for the three."""
    _probing(monkeypatch, {onednn.ONEDNN_DW: 1.0, onednn.ATEN: 2.0})
    monkeypatch.setenv(onednn.MM_DW_SWITCH, "0")
    assert onednn.training_choice(48, 96, rows=3136) == onednn.ONEDNN_DW
    monkeypatch.delenv(onednn.MM_DW_SWITCH)
    pieces.reset()
    measured_choice._memo.clear()  # a new process: the file answers what it stored
    stored = (cache / "choices.json").read_text()
    assert "among oneDNN / ATen" in stored and "dW by torch.mm" not in stored
    seen = _probing(monkeypatch, {onednn.ONEDNN_DW: 1.0, onednn.MM_DW: 0.5, onednn.ATEN: 2.0})
    assert onednn.training_choice(48, 96, rows=3136) == onednn.MM_DW
    assert seen == [[onednn.ONEDNN_DW, onednn.MM_DW, onednn.ATEN]]
    assert "among oneDNN / oneDNN, dW by torch.mm / ATen" in (cache / "choices.json").read_text()
