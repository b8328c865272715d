"""CycleMLP: cost against the paper's table, Cycle FC against deform_conv2d's definition,
outputs against a plain reference, the official state-dict names, timm's feature API."""

from __future__ import annotations

import pytest
import torch

import zoo_reference as ref
from mlpmixer.errors import ConfigError, InputShapeError
from mlpmixer.models.cyclemlp import (
    VARIANTS,
    CycleFC,
    CycleMlpConfig,
    CycleNet,
    macs_per_image,
    paper_flops,
    param_count,
)
from mlpmixer.models.features import FeatureGetter

# The paper's Table (and the official README's model zoo): params (M), FLOPs (G). The FLOPs
# are fvcore's count (main.py --flops: "fvcore MAdds"), which is `paper_flops`.
PAPER = {
    "cyclemlp_b1": (15, 2.1),
    "cyclemlp_b2": (27, 3.9),
    "cyclemlp_b3": (38, 6.9),
    "cyclemlp_b4": (52, 10.1),
    "cyclemlp_b5": (76, 12.3),
}

TINY = CycleMlpConfig(
    img_size=32, num_classes=5, depths=(1, 1, 2, 1), embed_dims=(8, 12, 16, 20),
    mlp_ratios=(2, 2, 1.5, 1), qkv_bias=True, skip_lam=2.0,
)  # fmt: skip


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_params_and_flops_match_the_table(name):
    config = VARIANTS[name]
    with torch.device("meta"):
        model = CycleNet(config)
    assert param_count(config) == sum(p.numel() for p in model.parameters())
    params_m, gflops = PAPER[name]
    assert round(param_count(config) / 1e6) == params_m
    assert round(paper_flops(config) / 1e9, 1) == gflops


def test_paper_flops_counts_layer_norms_as_fvcore_does():
    # B3, B4, B5: the products alone round to 6.8, 10.0, 12.2 G, one below the table.
    rounded = [round(macs_per_image(VARIANTS[f"cyclemlp_b{i}"]) / 1e9, 1) for i in (3, 4, 5)]
    assert rounded == [6.8, 10.0, 12.2]


@pytest.mark.parametrize("size", [(32, 32), (40, 56)])
def test_macs_equal_the_products_a_forward_pass_runs(size):
    config = TINY.replace(img_size=size)
    model = CycleNet(config).eval()
    per_unit = {CycleFC: lambda m: m.weight.shape[1]}  # a 1×1 convolution after the shift
    images = torch.randn(2, 3, *size)
    assert macs_per_image(config) == ref.count_product_macs(model, images, per_unit)


# --------------------------------------------------------------------------- Cycle FC


def official_offsets(channels: int, kernel_size: tuple[int, int]) -> torch.Tensor:
    """The offsets CycleFC.gen_offset (ShoufaChen/CycleMLP) registers, restated: along the
    kernel's long side channel c moves by 0, +1, -1, 0, +1, -1, ... (for k = 3); (Δy, Δx)
    of channel c at 2c, 2c+1; shape (1, 2C, 1, 1)."""
    cycle = [0, 1, -1]
    out = torch.zeros(1, 2 * channels, 1, 1)
    for c in range(channels):
        out[0, 2 * c + (0 if kernel_size[0] == 3 else 1)] = cycle[c % 3]
    return out


@pytest.mark.parametrize("kernel_size", [(1, 3), (3, 1)])
def test_cycle_fc_is_deform_conv2d_with_the_fixed_offsets(kernel_size):
    torch.manual_seed(0)
    layer = CycleFC(7, 5, kernel_size)
    with torch.no_grad():
        layer.bias.normal_()
        layer.weight.normal_()
    assert torch.equal(layer.offset, official_offsets(7, kernel_size))
    x = torch.randn(2, 7, 5, 6)  # NCHW, as torchvision's op takes it
    offset = layer.offset.expand(2, -1, 5, 6)
    expected = ref.deform_conv2d(x, offset, layer.weight, layer.bias)
    with torch.no_grad():
        got = layer(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # the check can fail: offsets of the opposite sign give another output
    flipped = ref.deform_conv2d(x, -offset, layer.weight, layer.bias)
    assert not torch.allclose(got, flipped, atol=1e-3)


def test_deform_reference_interpolates_between_pixels():
    # The reference itself, at a half-pixel offset: the mean of two neighbours, 0 beyond the map.
    x = torch.arange(4.0).reshape(1, 1, 1, 4)
    offset = torch.zeros(1, 2, 1, 4)
    offset[0, 1] = 0.5
    out = ref.deform_conv2d(x, offset, torch.ones(1, 1, 1, 1), torch.zeros(1))
    torch.testing.assert_close(out.flatten(), torch.tensor([0.5, 1.5, 2.5, 1.5]))


# --------------------------------------------------------------------------- the reference


def cycle_fc(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    """A Cycle FC by the deformable convolution it is defined as, (B, H, W, C) in and out."""
    b, h, w, _ = x.shape
    offset = sd[f"{name}.offset"].expand(b, -1, h, w)
    out = ref.deform_conv2d(x.permute(0, 3, 1, 2), offset, sd[f"{name}.weight"], sd[f"{name}.bias"])
    return out.permute(0, 2, 3, 1)


def reference_cyclemlp(sd: dict, config: CycleMlpConfig, images: torch.Tensor) -> torch.Tensor:
    """CycleMLP's forward from the paper's equations, reading the official key names."""
    eps, lam = config.norm_eps, config.skip_lam
    x = ref.conv2d(images.permute(0, 2, 3, 1), sd["patch_embed.proj.weight"],
                   sd["patch_embed.proj.bias"], stride=4, padding=2)  # fmt: skip
    slot = 0
    for stage, depth in enumerate(config.depths):
        for j in range(depth):
            p = f"network.{slot}.{j}"
            y = ref.layer_norm(x, sd, f"{p}.norm1", eps)
            branches = [cycle_fc(y, sd, f"{p}.attn.sfc_h"), cycle_fc(y, sd, f"{p}.attn.sfc_w"),
                        ref.dense(y, sd, f"{p}.attn.mlp_c")]  # fmt: skip
            mixed = ref.dense(ref.reweight(branches, sd, f"{p}.attn.reweight"), sd,
                              f"{p}.attn.proj")  # fmt: skip
            x = x + mixed / lam
            x = x + ref.mlp(ref.layer_norm(x, sd, f"{p}.norm2", eps), sd, f"{p}.mlp") / lam
        slot += 1
        if stage < len(config.depths) - 1:
            x = ref.conv2d(x, sd[f"network.{slot}.proj.weight"], sd[f"network.{slot}.proj.bias"],
                           stride=2, padding=1)  # fmt: skip
            slot += 1
    return ref.head(x, sd, eps)


@pytest.mark.parametrize("size", [(32, 32), (40, 56)])  # a multiple of 32 and not
def test_outputs_equal_the_reference(size):
    config = TINY.replace(img_size=size)
    model = CycleNet(config).eval()
    sd = ref.randomised(model)
    images = torch.randn(2, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference_cyclemlp(sd, config, images),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip


# --------------------------------------------------------------------------- official names


def official_keys(config: CycleMlpConfig) -> set[str]:
    """The state-dict keys ShoufaChen/CycleMLP's CycleNet registers (cycle_mlp.py, without
    fork_feat): patch_embed.proj; network = [stage, Downsample, stage, Downsample, stage,
    Downsample, stage]; blocks norm1, attn.mlp_c (bias only with qkv_bias), attn.sfc_h and
    attn.sfc_w (weight, bias, the offset buffer), attn.reweight.fc1/fc2, attn.proj, norm2,
    mlp.fc1/fc2; norm; head."""
    keys = {"patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias",
            "head.weight", "head.bias"}  # fmt: skip
    linear = ["attn.reweight.fc1", "attn.reweight.fc2", "attn.proj", "mlp.fc1", "mlp.fc2"]
    for stage, depth in enumerate(config.depths):
        for j in range(depth):
            p = f"network.{2 * stage}.{j}"
            for name in ["norm1", "norm2", *linear]:
                keys |= {f"{p}.{name}.weight", f"{p}.{name}.bias"}
            keys.add(f"{p}.attn.mlp_c.weight")
            if config.qkv_bias:
                keys.add(f"{p}.attn.mlp_c.bias")
            for sfc in ("sfc_h", "sfc_w"):
                keys |= {f"{p}.attn.{sfc}.{t}" for t in ("weight", "bias", "offset")}
        if stage < len(config.depths) - 1:
            keys |= {f"network.{2 * stage + 1}.proj.weight", f"network.{2 * stage + 1}.proj.bias"}
    return keys


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_state_dict_names_are_the_official_ones(name):
    with torch.device("meta"):
        model = CycleNet(VARIANTS[name])
    sd = model.state_dict()
    assert set(sd) == official_keys(VARIANTS[name])
    assert tuple(sd["network.0.0.attn.sfc_h.weight"].shape) == (
        64 if name != "cyclemlp_b5" else 96,
    ) * 2 + (1, 1)
    assert tuple(sd["network.1.proj.weight"].shape)[2:] == (3, 3)


def official_state_dict(config: CycleMlpConfig, seed: int = 1) -> dict[str, torch.Tensor]:
    """Random weights under the official names, the offsets as the official code makes them."""
    gen = torch.Generator().manual_seed(seed)
    shapes = {k: v.shape for k, v in CycleNet(config).state_dict().items()}
    sd = {}
    for key in sorted(official_keys(config)):
        if key.endswith(".offset"):
            kernel = (1, 3) if ".sfc_h." in key else (3, 1)
            sd[key] = official_offsets(shapes[key][1] // 2, kernel)
        else:
            sd[key] = torch.randn(shapes[key], generator=gen) * 0.2
    return sd


def test_an_official_state_dict_loads_strict_and_reproduces_outputs():
    sd = official_state_dict(TINY)
    model = CycleNet(TINY).eval()
    model.load_state_dict(sd, strict=True)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference_cyclemlp(sd, TINY, images),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip


def test_other_offsets_are_refused_on_load():
    sd = official_state_dict(TINY)
    sd["network.0.0.attn.sfc_w.offset"] = -sd["network.0.0.attn.sfc_w.offset"]
    with pytest.raises(RuntimeError, match=r"network\.0\.0\.attn\.sfc_w\.offset"):
        CycleNet(TINY).load_state_dict(sd, strict=True)


# --------------------------------------------------------------------------- timm's API


@pytest.mark.parametrize(
    ("size", "grids"),
    [
        ((64, 96), [(16, 24), (8, 12), (4, 6), (2, 3)]),
        ((50, 70), [(12, 17), (6, 9), (3, 5), (2, 3)]),
    ],
)
def test_any_input_size_and_pyramid_levels(size, grids):
    model = CycleNet(TINY).eval()  # built for 32 x 32
    images = torch.randn(1, 3, *size)
    with torch.no_grad():
        final, levels = model.forward_intermediates(images)
        assert [tuple(t.shape[2:]) for t in levels] == grids
        assert [t.shape[1] for t in levels] == [8, 12, 16, 20]
        torch.testing.assert_close(final, model.forward_features(images))
        assert model(images).shape == (1, 5)
    assert [i["reduction"] for i in model.feature_info] == [4, 8, 16, 32]
    assert [i["module"] for i in model.feature_info] == [f"network.{i}" for i in (0, 2, 4, 6)]
    getter = FeatureGetter(CycleNet(TINY).eval(), out_indices=(1, 2, 3))
    with torch.no_grad():
        assert [tuple(t.shape[2:]) for t in getter(images)] == grids[1:]
    assert len(getter.model.network) == 7


def test_reset_classifier_and_pooled_features():
    model = CycleNet(TINY).eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(images), pre_logits=True)
        model.reset_classifier(3)
        assert model(images).shape == (2, 3) and model.get_classifier().out_features == 3
        model.reset_classifier(0)
        torch.testing.assert_close(model(images), pooled)


def test_input_and_config_refusals():
    model = CycleNet(TINY)
    with pytest.raises(InputShapeError, match=r"\(2, 1, 32, 32\)"):
        model(torch.randn(2, 1, 32, 32))
    assert model.pretrained_cfg["fixed_input_size"] is False
    config = VARIANTS["cyclemlp_b3"]
    assert CycleMlpConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="transitions"):
        CycleMlpConfig.from_dict({**config.to_dict(), "transitions": [True] * 4})
    with pytest.raises(ConfigError, match="mlp_ratios"):
        config.replace(mlp_ratios=(4, 4))


def test_grad_checkpointing_gives_the_same_gradients():
    images = torch.randn(2, 3, 32, 32)
    grads = []
    for enable in (False, True):
        torch.manual_seed(0)
        model = CycleNet(TINY.replace(drop_path_rate=0.0)).train()
        model.set_grad_checkpointing(enable)
        model(images).square().sum().backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6)
    assert "network.0.0.attn.sfc_h.bias" in model.no_weight_decay()
    assert "network.0.0.attn.sfc_h.weight" not in model.no_weight_decay()
