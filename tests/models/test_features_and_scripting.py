"""timm's feature extraction, TorchScript (script and trace) and FX on every family (issue 17).

Before: no ``feature_info``; ``create_model(..., features_only=True)`` was a ConfigError; no
``prune_intermediate_layers``; ``torch.jit.script`` failed on every model (the fast path's
Python checks, gMixer's ``nn.Module`` annotation), ``torch.jit.trace`` failed its own check
("Graphs differed across invocations"), ``torch.fx.symbolic_trace`` failed on the input check.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import mlpmixer
from mixer_testing import randomised

# one registered model of each family, shrunk to a few blocks (same structure)
NAMES = {
    "mixer_s16_224": dict(num_blocks=3, hidden_dim=32, tokens_mlp_dim=16, channels_mlp_dim=64,
                          img_size=64, gelu="tanh"),
    "gmixer_12_224": dict(num_blocks=3, hidden_dim=32, tokens_mlp_dim=32, channels_mlp_dim=64,
                          img_size=64),
    "resmlp_12_224": dict(num_blocks=3, hidden_dim=32, channels_mlp_dim=64, img_size=64,
                          gelu="tanh"),
    "gmlp_ti16_224": dict(num_blocks=3, hidden_dim=32, channels_mlp_dim=64, img_size=64),
}  # fmt: skip


def _model(name: str, **kw) -> torch.nn.Module:
    return randomised(mlpmixer.create_model(name, num_classes=7, **NAMES[name], **kw), seed=1)


def _images(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 64, 64, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings about shapes turned into constants
        yield


@pytest.mark.parametrize("name", NAMES)
def test_feature_info_in_timms_form(name):
    model = _model(name)
    info = model.feature_info
    assert info == [{"module": f"blocks.{i}", "num_chs": 32, "reduction": 16} for i in range(3)]
    for entry in info:  # each names a real module
        model.get_submodule(entry["module"])


@pytest.mark.parametrize("name", NAMES)
def test_features_only_returns_the_block_outputs(name):
    model = _model(name).eval()
    images = _images()
    with torch.no_grad():
        expected = model.forward_intermediates(images, indices=[0, 2], intermediates_only=True)
    options = dict(num_classes=7, features_only=True, out_indices=(0, -1), **NAMES[name])
    features = randomised(mlpmixer.create_model(name, **options), seed=1).eval()
    assert features.feature_info.channels() == [32, 32]
    assert features.feature_info.reduction() == [16, 16]
    assert features.feature_info.module_name() == ["blocks.0", "blocks.2"]
    with torch.no_grad():
        out = features(images)
    assert [o.shape for o in out] == [(2, 32, 4, 4)] * 2  # NCHW maps at stride 16
    for got, want in zip(out, expected, strict=True):
        torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    # timm's default: the last 3 blocks; NLC on request
    nlc = mlpmixer.create_model(name, features_only=True, output_fmt="NLC", **NAMES[name])
    assert [o.shape for o in nlc(_images())] == [(2, 16, 32)] * 3


@pytest.mark.parametrize("name", NAMES)
def test_prune_intermediate_layers_keeps_the_taken_blocks(name):
    model = _model(name).eval()
    images = _images()
    with torch.no_grad():
        before = model.forward_intermediates(images, indices=[1], intermediates_only=True)
        assert model.prune_intermediate_layers([1], prune_norm=True) == [1]
        after = model.forward_intermediates(images, indices=[1], intermediates_only=True)
    assert len(model.blocks) == 2 and isinstance(model.norm, torch.nn.Identity)
    assert isinstance(model.head, torch.nn.Identity)
    torch.testing.assert_close(after[0], before[0], atol=0, rtol=0)


def test_feature_options_without_features_only_are_refused():
    with pytest.raises(mlpmixer.ConfigError, match="features_only"):
        mlpmixer.create_model("mixer_s16_224", out_indices=2)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_jit_script_gives_the_eager_outputs(name, mode):
    model = _model(name).train(mode == "train")
    scripted = torch.jit.script(model)
    images = _images()
    torch.manual_seed(0)
    with torch.no_grad():
        torch.testing.assert_close(scripted(images), model(images), atol=1e-5, rtol=0)
    # the fast layers step aside in the scripted copy only: the eager model keeps them
    assert model.fast_layers and "mlpmixer.models.fast" in type(model.stem).__module__
    assert "mlpmixer::" not in str(scripted.inlined_graph)


@pytest.mark.parametrize("name", NAMES)
def test_jit_trace_with_its_default_checks_gives_the_eager_outputs(name):
    model = _model(name).eval()
    images = _images()
    traced = torch.jit.trace(model, (images,))  # check_trace=True: re-traces and compares
    with torch.no_grad():
        torch.testing.assert_close(traced(images), model(images), atol=1e-5, rtol=0)
    graph = str(traced.inlined_graph)
    assert "mlpmixer::" not in graph and "mkldnn" not in graph  # plain ATen ops only


@pytest.mark.parametrize("name", NAMES)
def test_fx_symbolic_trace_gives_the_eager_outputs(name):
    model = _model(name).eval()
    images = _images()
    graph_module = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        torch.testing.assert_close(graph_module(images), model(images), atol=1e-5, rtol=0)
    targets = {str(node.target) for node in graph_module.graph.nodes}
    assert not [t for t in targets if "mlpmixer" in t or "mkldnn" in t], targets
    # and a features_only model traces too (torchvision's create_feature_extractor is FX)
    features = mlpmixer.create_model(name, features_only=True, **NAMES[name]).eval()
    assert len(torch.fx.symbolic_trace(features)(images)) == 3


def test_a_wrong_input_is_still_refused_in_eager_code():
    model = _model("mixer_s16_224")
    with pytest.raises(mlpmixer.InputShapeError):
        model(torch.randn(1, 3, 32, 32))
