"""What timm's own tests/test_models.py checks on its Mixer family, on ours (issue 17 item 1).

timm's file is the reference for what "works" means; it is not shipped with timm and not ours
to commit, so benchmarks/timm_test_models.py runs it by hand (results in
benchmarks/results/timm-test-models.json) and this file keeps, offline, our own small version
of each of its checks that selects the family: forward (with grad checkpointing), backward,
the default cfg, the getter feature model, forward_intermediates and TorchScript. Each runs on
our model of each family (tests/timm_adapter.py: 32x32 RGB, 8x8 patches, 4 blocks) and, when
timm is installed, on the same model built through ``timm.create_model`` and on timm's own
model at that shape, so a check that timm's model fails is not asked of ours.

Before: ``create_model(..., features_only=True)`` gave a model without ``default_cfg``, which
timm's ``test_model_forward_intermediates_features`` reads (AttributeError on every family).
"""

from __future__ import annotations

import math

import pytest
import torch

from timm_adapter import FAMILIES, OURS, THEIRS, build_ours, import_timm, register

timm = import_timm()
if timm is not None:
    register(timm)
SIDES = ["ours"] + (["ours-in-timm", "timm"] if timm is not None else [])
B = 2


def make(side: str, family: str, **kwargs) -> torch.nn.Module:
    """Our model directly, ours through timm's registry, or timm's own (same shape)."""
    torch.manual_seed(0)
    if side == "ours":
        return build_ours(family, **kwargs)
    prefix = OURS if side == "ours-in-timm" else THEIRS
    return timm.create_model(f"{prefix}{family}_t8_32", pretrained=False, **kwargs)


def images(model: torch.nn.Module) -> torch.Tensor:
    cfg = model.default_cfg
    assert cfg["fixed_input_size"] and len(cfg["input_size"]) == 3
    return torch.randn(B, *cfg["input_size"])


pytestmark = [pytest.mark.parametrize("family", FAMILIES), pytest.mark.parametrize("side", SIDES)]


def test_forward_and_grad_checkpointing(side, family):
    model = make(side, family).eval()
    x = images(model)
    out = model(x)
    assert out.shape == (B, model.num_classes) and not out.isnan().any()
    model.set_grad_checkpointing()
    torch.testing.assert_close(model(x), out, rtol=1e-4, atol=1e-5)


def test_backward_reaches_every_parameter(side, family):
    model = make(side, family, num_classes=42).train()
    out = model(images(model))
    assert out.shape == (B, 42)
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_default_cfg_head_and_features(side, family):
    model = make(side, family).eval()
    cfg, state = model.default_cfg, model.state_dict()
    for key in ("input_size", "mean", "std", "interpolation", "crop_pct", "num_classes"):
        assert key in cfg, key
    assert f"{cfg['first_conv']}.weight" in state and f"{cfg['classifier']}.weight" in state
    assert model.num_features > 0 and model.head_hidden_size > 0
    x = images(model)
    features = model.forward_features(x)
    assert features.ndim == 3 and features.shape[-1] == model.num_features
    pre = model.forward_head(features, pre_logits=True)
    assert pre.shape == (B, model.head_hidden_size)
    model.reset_classifier(0)
    assert model.num_classes == 0 and model(x).shape == pre.shape
    assert make(side, family, num_classes=0).eval()(x).shape == (B, model.num_features)


def _check_maps(maps, channels, reductions, size) -> None:
    assert len(maps) == len(channels) >= 3
    for c, r, y in zip(channels, reductions, maps, strict=True):
        assert y.shape[:2] == (B, c) and not y.isnan().any()
        assert y.shape[2] <= math.ceil(size[0] / r) + 1 and y.shape[3] <= math.ceil(size[1] / r) + 1


def test_features_only_getter(side, family):
    model = make(side, family, features_only=True, feature_cls="getter").eval()
    x = images(model)  # the regression: timm reads default_cfg from the feature model
    info = model.feature_info
    _check_maps(model(x), info.channels(), info.reduction(), x.shape[-2:])


def test_forward_intermediates_and_feature_info(side, family):
    model = make(side, family).eval()
    info = model.feature_info
    assert len(info) == model.config.num_blocks if side != "timm" else len(info) >= 3
    x = images(model)
    out, maps = model.forward_intermediates(x, output_fmt="NCHW")
    _check_maps(maps, [e["num_chs"] for e in info], [e["reduction"] for e in info], x.shape[-2:])
    torch.testing.assert_close(out, model.forward_features(x), atol=0, rtol=0)
    model.set_grad_checkpointing()
    torch.testing.assert_close(model.forward_intermediates(x)[0], out, rtol=1e-4, atol=1e-5)


def test_torchscript_gives_the_eager_logits(side, family):
    if side == "ours":
        model = make(side, family).eval()
    else:
        with timm.set_scriptable(True):
            model = make(side, family).eval()
    x = images(model)
    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), model(x), rtol=1e-4, atol=1e-5)


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer with timm's leaf modules and wrapped functions, as timm's FX tests
    trace (through torchvision's create_feature_extractor, which the stand-in lacks)."""

    def __init__(self) -> None:
        leaves = timm.models.get_notrace_modules() if timm is not None else []
        functions = timm.models.get_notrace_functions() if timm is not None else []
        super().__init__(autowrap_functions=tuple(functions), param_shapes_constant=True)
        self.leaves = tuple(leaves)

    def is_leaf_module(self, m: torch.nn.Module, qualname: str) -> bool:
        return isinstance(m, self.leaves) or super().is_leaf_module(m, qualname)


@pytest.mark.parametrize("train", [False, True])
def test_fx_trace_gives_the_eager_outputs_and_gradients(side, family, train):
    model = make(side, family).train(train)
    x = images(model)
    traced = torch.fx.GraphModule(model, _Tracer().trace(model))
    torch.testing.assert_close(traced(x), model(x), rtol=1e-4, atol=1e-5)
    traced(x).mean().backward()
    assert all(p.grad is not None for p in model.parameters())
