"""int8 for the zoo families (ViP, CycleMLP, AS-MLP, Wave-MLP, Hire-MLP): quantize, save,
load back bit for bit, logits near fp32; and the torchao methods refused in one line where a
family has no Linear to quantize (its mixing layers are 1x1 convolutions).

One tiny randomised config per family (the shapes of tests/test_zoo_commands.py), 1 channel,
5 classes. The tolerance: max |logit difference| to fp32, relative to the largest |fp32
logit|, under 0.05 for weight-only and dynamic, 0.1 for static (per-tensor activation
scales), and the same top-1 on at least 15 of 16 random images.
"""

from __future__ import annotations

import pytest
import torch

from deploy_testing import needs_torchao
from mlpmixer.deploy import load_quantized, quantize, save_quantized
from mlpmixer.errors import ConfigError
from mlpmixer.models import create_model

pytestmark = needs_torchao

ZOO = {
    "vip_s7": (8, {"patch_size": 4, "depths": [1, 1], "embed_dims": [8, 8],
                   "transitions": [False], "segment_dims": [2, 2], "mlp_ratios": [2, 2]}),
    "cyclemlp_b1": (8, {"depths": [1, 1, 1, 1], "embed_dims": [8, 8, 16, 16]}),
    "asmlp_tiny": (32, {"depths": [1, 1, 1, 1], "embed_dim": 8}),
    "wavemlp_t": (8, {"depths": [1, 1, 1, 1], "embed_dims": [8, 8, 16, 16]}),
    "hiremlp_tiny": (8, {"depths": [1, 1, 1, 1], "embed_dims": [8, 8, 16, 16]}),
}  # fmt: skip
LINEAR_MIXING = ("vip_s7", "cyclemlp_b1")  # the others mix with 1x1 convolutions
TOLERANCE = {"weight-only": 0.05, "dynamic": 0.05, "static": 0.1}


def tiny(name: str) -> torch.nn.Module:
    size, overrides = ZOO[name]
    model = create_model(
        name, img_size=size, in_chans=1, mean=(0.5,), std=(0.5,), num_classes=5, **overrides
    )
    return randomised(model, 0)


def randomised(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights everywhere (the defaults are too symmetric), each scaled by its fan-in
    (a 1x1 convolution's weight ends in 1, so `mixer_testing.randomised`'s last-dimension
    scale would blow the activations up)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.ndim > 1 else 1
            scale = 0.5 if p.ndim == 1 else 1 / fan_in**0.5
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def images(name: str, count: int, seed: int) -> torch.Tensor:
    size = ZOO[name][0]
    return torch.randn(count, 1, size, size, generator=torch.Generator().manual_seed(seed))


def cases() -> list:
    found = []
    for name in sorted(ZOO):
        methods = ("weight-only", "dynamic") if name in LINEAR_MIXING else ()
        for method in (*methods, "static"):
            # static is export + prepare + convert: 5-60 s per zoo model on a busy machine
            marks = pytest.mark.slow if method == "static" else ()
            found.append(pytest.param(name, method, marks=marks, id=f"{name}-{method}"))
    return found


@pytest.mark.parametrize(("name", "method"), cases())
def test_round_trip_is_exact_and_logits_are_near_fp32(name, method, tmp_path):
    model = tiny(name)
    q = quantize(model, method, calibration=images(name, 32, seed=2))
    assert q.kept_in_float == ("patch_embed.proj", "head")  # the stem and the classifier
    assert q.quantized and not any(n.startswith(("patch_embed.", "head")) for n in q.quantized)
    save_quantized(q, tmp_path / "q")
    loaded = load_quantized(tmp_path / "q")
    x = images(name, 16, seed=5)
    with torch.no_grad():
        out, reference = q(x), model(x)
        assert torch.equal(loaded(x), out)
    assert (loaded.method, loaded.kept_in_float, loaded.quantized) == (
        q.method, q.kept_in_float, q.quantized,
    )  # fmt: skip
    assert loaded.config == model.config
    relative = (out - reference).abs().max().item() / reference.abs().max().item()
    assert relative < TOLERANCE[method]
    assert (out.argmax(1) == reference.argmax(1)).sum().item() >= 15


@pytest.mark.parametrize("name", sorted(set(ZOO) - set(LINEAR_MIXING)))
@pytest.mark.parametrize("method", ["weight-only", "dynamic"])
def test_torchao_methods_refuse_a_family_without_linear_mixing(name, method):
    with pytest.raises(ConfigError, match=r"nn\.Linear layers only.*--method static"):
        quantize(tiny(name), method)


def test_the_zoo_features_are_read_through_a_weight_only_model():
    model = tiny("cyclemlp_b1")
    q = quantize(model, "weight-only")
    x = images("cyclemlp_b1", 4, seed=3)
    with torch.no_grad():
        features, reference = q.forward_features(x), model.forward_features(x)
    assert features.shape == reference.shape
    assert (features - reference).abs().max().item() < 0.05


def test_auto_does_not_time_torchao_methods_on_a_convolution_only_family():
    from mlpmixer.deploy.choose import auto_method

    _, verdicts = auto_method(tiny("wavemlp_t"), calibration=False)
    torchao = {v.method: v for v in verdicts if v.method != "static"}
    assert set(torchao) == {"weight-only", "dynamic"}
    assert all(not v.fast and "no nn.Linear" in v.reason for v in torchao.values())


def test_the_command_refuses_dynamic_for_as_mlp_in_one_line(tmp_path):
    from click.testing import CliRunner

    from mlpmixer import save_model
    from mlpmixer.cli import cli

    save_model(tiny("asmlp_tiny"), tmp_path / "model")
    args = ["quantize", "--checkpoint", str(tmp_path / "model"), "--method", "dynamic",
            "--out", str(tmp_path / "q")]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "nn.Linear layers only" in result.output and "asmlp" in result.output
    assert not (tmp_path / "q").exists()
