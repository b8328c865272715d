"""Each fast piece is decided once: a rule on the CPUs it was measured on, a probe elsewhere."""

from __future__ import annotations

import pytest
import torch

from mixer_testing import EPYC, needs_onednn, randomised, record_results
from mlpmixer import MixerConfig, MlpMixer, measured_choice
from mlpmixer.cpu_kind import cap_flags, parse_cpuinfo
from mlpmixer.models.fast import gelu, onednn, pieces

AVX2_EPYC = cap_flags(parse_cpuinfo(EPYC), {"ONEDNN_MAX_CPU_ISA": "AVX2"})  # as issue 25's
CONFIG = MixerConfig(
    img_size=(16, 16), patch_size=(4, 4), in_chans=3, num_classes=5, hidden_dim=32,
    num_blocks=2, tokens_mlp_dim=16, channels_mlp_dim=64,
)  # fmt: skip


def _on(monkeypatch, kind) -> None:
    monkeypatch.setattr(pieces, "effective_cpu", lambda: kind)
    pieces.set_policy("auto")


def _fake_timings(monkeypatch, ms: dict[str, float]):
    """Probes "measure" these times (by candidate name); the candidates still run once."""
    seen = []

    def medians(candidates, rounds=5, clock=None, warmup=True):
        seen.append(list(candidates))
        return {name: ms.get(name, 1.0) for name in candidates}  # (nested: other pieces)

    monkeypatch.setattr(measured_choice, "medians", medians)
    return seen


def test_a_known_cpu_takes_the_rules_without_measuring(monkeypatch, cache):
    _on(monkeypatch, parse_cpuinfo(EPYC))
    seen = _fake_timings(monkeypatch, {})
    choice = onednn.inference_choice(torch.float32, 32, 64, "tanh", 200)
    assert choice == onednn.EPILOGUE and not seen
    (decision,) = pieces.decisions()
    assert decision.why == "rule: amd-avx512-bf16" and "32x64, many rows" in decision.case


@needs_onednn
def test_an_unknown_cpu_is_measured_and_the_piece_used_only_where_it_wins(monkeypatch, cache):
    """Issue 25: on an AVX2 EPYC oneDNN inference lost 6-9% and was used anyway; its GELU
    epilogue lost to our GELU between the products (253 against 200 ms)."""
    _on(monkeypatch, AVX2_EPYC)
    seen = _fake_timings(
        monkeypatch, {onednn.EPILOGUE: 253.0, onednn.SEPARATE: 200.0, onednn.ATEN: 210.0}
    )
    assert onednn.inference_choice(torch.float32, 32, 64, "tanh", 200) == onednn.SEPARATE
    assert seen[-1] == [onednn.EPILOGUE, onednn.SEPARATE, onednn.ATEN]  # (after the GELU's)
    decision = pieces.decisions()[-1]
    assert decision.why == "measured 1.05x"
    # a case where the plain op wins keeps the plain op, and says by how much the piece lost
    _fake_timings(monkeypatch, {onednn.EPILOGUE: 230.0, onednn.SEPARATE: 224.0, onednn.ATEN: 210.0})
    assert onednn.inference_choice(torch.float32, 32, 64, "tanh", 8) == onednn.ATEN
    assert pieces.decisions()[-1].why == "measured: slower (0.94x)"
    # decided once: the same case again neither probes nor changes
    seen.clear()
    assert onednn.inference_choice(torch.float32, 32, 64, "tanh", 200) == onednn.SEPARATE
    assert not seen


def test_a_decision_is_read_back_by_the_next_process(monkeypatch, cache):
    _on(monkeypatch, AVX2_EPYC)
    _fake_timings(monkeypatch, {"bmm, then the bias": 1.0, "baddbmm": 2.0})
    from mlpmixer.models.fast import token_linear

    after = token_linear.AFTER
    assert token_linear.form_choice(torch.bfloat16, False, 8, 16, 24) == after
    pieces.reset()
    measured_choice._memo.clear()  # a new process: the file answers
    seen = _fake_timings(monkeypatch, {"bmm, then the bias": 3.0, "baddbmm": 2.0})
    assert token_linear.form_choice(torch.bfloat16, False, 8, 16, 24) == after and not seen
    assert pieces.decisions()[-1].why == "measured 2.00x"


def test_a_candidate_that_computes_something_else_is_never_timed(monkeypatch, cache):
    _on(monkeypatch, AVX2_EPYC)
    seen = _fake_timings(monkeypatch, {"fused": 1.0, "ATen": 2.0})
    monkeypatch.setattr(gelu, "gelu_tanh", lambda x: x * 2)  # a broken kernel
    if gelu._library() is None:
        pytest.skip("no C compiler: the kernel is unavailable, nothing to probe")
    assert not gelu.use_fused(torch.float32)
    assert not seen and "fused differs by" in pieces.decisions()[-1].why


def test_switches_and_missing_support_are_decisions_too(monkeypatch, cache):
    _on(monkeypatch, AVX2_EPYC)
    monkeypatch.setattr(onednn, "supports", lambda dtype: dtype == torch.float32)
    assert onednn.inference_choice(torch.bfloat16, 32, 64, "tanh", 8) == onednn.ATEN
    assert pieces.decisions()[-1].why == (
        "unavailable: oneDNN has no bfloat16 inner product on this CPU"
    )
    monkeypatch.setenv("MLPMIXER_ONEDNN", "0")
    assert onednn.training_choice(32, 64, 8) == onednn.ATEN
    assert pieces.decisions()[-1].why == "off: MLPMIXER_ONEDNN=0"


def test_layers_resolve_once_per_case_and_never_decide_per_call(monkeypatch):
    """After the first call of a case, a forward pass asks no decision (nor the environment)."""
    model = randomised(MlpMixer(CONFIG), seed=1).eval()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        model(images)
    asked = record_results(monkeypatch, pieces, "decide")
    read = []
    monkeypatch.setattr(pieces, "switched_off", lambda name: read.append(name) or False)
    with torch.no_grad():
        for _ in range(3):
            model(images)
    assert not asked and not read
    pieces.reset()  # a switch changed: the layers resolve again, once
    with torch.no_grad():
        model(images)
        first = len(asked)
        model(images)
    assert first and len(asked) == first


def test_probes_of_a_small_model_are_cheap(monkeypatch, cache):
    """Every probe a Mixer meets (inference, autocast, training), on a CPU without rules."""
    _on(monkeypatch, AVX2_EPYC)
    model = randomised(MlpMixer(CONFIG), seed=1).eval()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        model(images)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(images)
    model.train()(images).sum().backward()
    measured = [d for d in pieces.decisions() if d.why.startswith("measured")]
    assert measured, pieces.decisions()
    assert sum(d.seconds for d in pieces.decisions()) < 2.0, pieces.decisions()


def test_info_fast_lists_each_piece_with_its_reason():
    import json

    from click.testing import CliRunner

    from mlpmixer.cli import cli

    result = CliRunner().invoke(cli, ["info", "--fast", "--model", "mixer_t2_8", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["policy"] == "on" and report["shapes_of"] == "mixer_t2_8"
    named = {d["piece"] for d in report["pieces"]}
    assert {onednn.INFERENCE, onednn.TRAINING, "autocast weight cache"} <= named
    assert all(d["choice"] and d["why"] for d in report["pieces"])
    table = CliRunner().invoke(cli, ["info", "--fast", "--model", "mixer_t2_8"])
    assert table.exit_code == 0 and "oneDNN products (inference)" in table.output
    assert CliRunner().invoke(cli, ["info"]).exit_code == 2  # a checkpoint, or --fast


def test_a_probe_asked_under_fake_tensors_and_autocast_runs_on_real_tensors(monkeypatch, cache):
    """The first GELU of a process may come under FakeTensorMode or autocast: the probe must
    still measure real fp32 tensors (a fake one has no value to compare)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    _on(monkeypatch, AVX2_EPYC)
    _fake_timings(monkeypatch, {"fused": 1.0, "ATen": 2.0})
    if gelu._library() is None:
        pytest.skip("no C compiler: the kernel is unavailable, nothing to probe")
    with FakeTensorMode(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = gelu.gelu(torch.empty(4, 5), "tanh")
    assert y.shape == (4, 5)
    assert pieces.decisions()[-1].why == "measured 2.00x"


def test_a_win_within_the_noise_keeps_the_plain_op(monkeypatch, cache):
    """A probe is noisy by a few percent: a piece 1% faster is not a win (`pieces.MARGIN`)."""
    _on(monkeypatch, AVX2_EPYC)
    from mlpmixer.models.fast import token_linear

    _fake_timings(monkeypatch, {"bmm, then the bias": 1.0, "baddbmm": 1.01})
    assert token_linear.form_choice(torch.bfloat16, False, 8, 16, 24) == token_linear.INSIDE
    assert pieces.decisions()[-1].why == "measured: within 2% (1.01x)"
