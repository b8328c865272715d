"""Vision Permutator: cost against the tables, outputs against a plain reference written from
the paper's equations, the official state-dict names, timm's feature API."""

from __future__ import annotations

import pytest
import torch

import zoo_reference as ref
from mlpmixer.errors import ConfigError, InputShapeError
from mlpmixer.models.features import FeatureGetter
from mlpmixer.models.vip import (
    VARIANTS,
    VipConfig,
    VisionPermutator,
    macs_per_image,
    paper_flops,
    param_count,
)

# Params (M): the official README prints 25/55/88M for S/7, M/7, L/7; 30M for Small/14 is the
# paper's. FLOPs (G): ViP's README prints none; 6.9/16.3/24.4G are the figures other papers'
# comparison tables (CycleMLP's) print for ViP, quoted without the table text at hand here;
# all three agree to the printed digit with fvcore's count (`paper_flops`), which CycleMLP's
# own table uses. ViP-Small/14: no published FLOPs known here (fvcore count 6.87G).
PAPER = {
    "vip_s14": (30, None),
    "vip_s7": (25, 6.9),
    "vip_m7": (55, 16.3),
    "vip_l7": (88, 24.4),
}

# Two stages, a 2×2 transition, a 4×4 then 2×2 grid; biases on the branches, skip_lam != 1.
TINY = VipConfig(
    img_size=16, patch_size=4, num_classes=5, depths=(1, 2), embed_dims=(8, 12),
    transitions=(True,), segment_dims=(4, 2), mlp_ratios=(3, 2), qkv_bias=True, skip_lam=2.0,
)  # fmt: skip
# A width change without a transition: a 1×1 Downsample, the same grid in both stages.
TINY_1X1 = VipConfig(
    img_size=12, patch_size=4, num_classes=3, depths=(1, 1), embed_dims=(6, 9),
    transitions=(False,), segment_dims=(3, 3), mlp_ratios=(2, 2),
)  # fmt: skip


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_params_and_flops_match_the_tables(name):
    config = VARIANTS[name]
    with torch.device("meta"):
        model = VisionPermutator(config)
    assert param_count(config) == sum(p.numel() for p in model.parameters())
    params_m, gflops = PAPER[name]
    assert round(param_count(config) / 1e6) == params_m
    if gflops is not None:
        assert round(paper_flops(config) / 1e9, 1) == gflops


def test_paper_flops_counts_layer_norms_as_fvcore_does():
    # vip_l7: products alone give 24.34 G (prints 24.3); with fvcore's 5 per LayerNorm element
    # 24.40 G, the 24.4 printed: the count is fvcore's.
    config = VARIANTS["vip_l7"]
    assert round(macs_per_image(config) / 1e9, 1) == 24.3
    assert round(paper_flops(config) / 1e9, 1) == 24.4


@pytest.mark.parametrize("config", [TINY, TINY_1X1])
def test_macs_equal_the_products_a_forward_pass_runs(config):
    model = VisionPermutator(config).eval()
    images = torch.randn(2, 3, *config.img_size)
    assert macs_per_image(config) == ref.count_product_macs(model, images)


# --------------------------------------------------------------------------- the reference


def permute_mix(x: torch.Tensor, weight: torch.Tensor, bias, segments: int, axis: str):
    """The paper's height (or width) permutation with explicit loops.

    For each column w (row h) and channel segment g, the vector v[i·S + s] =
    x[i, w, g·S + s] over the H (W) positions i is mixed by the C×C weight and written back.
    """
    b, h, w, c = x.shape
    s = c // segments
    out = torch.empty_like(x)
    lines = w if axis == "height" else h
    length = h if axis == "height" else w
    assert length * s == c
    for line in range(lines):
        for g in range(segments):
            v = torch.empty(b, c)
            for i in range(length):
                cell = x[:, i, line] if axis == "height" else x[:, line, i]
                v[:, i * s : (i + 1) * s] = cell[:, g * s : (g + 1) * s]
            y = v @ weight.T + (0 if bias is None else bias)
            for i in range(length):
                target = y[:, i * s : (i + 1) * s]
                if axis == "height":
                    out[:, i, line, g * s : (g + 1) * s] = target
                else:
                    out[:, line, i, g * s : (g + 1) * s] = target
    return out


def reference_vip(sd: dict, config: VipConfig, images: torch.Tensor) -> torch.Tensor:
    """ViP's forward from the paper's equations, reading the official key names."""
    eps, lam = config.norm_eps, config.skip_lam
    x = ref.patch_conv(images.permute(0, 2, 3, 1), sd["patch_embed.proj.weight"],
                       sd["patch_embed.proj.bias"])  # fmt: skip
    slot = 0
    for stage, depth in enumerate(config.depths):
        seg = config.segment_dims[stage]
        for j in range(depth):
            p = f"network.{slot}.{j}"
            y = ref.layer_norm(x, sd, f"{p}.norm1", eps)
            h = permute_mix(y, sd[f"{p}.attn.mlp_h.weight"], sd.get(f"{p}.attn.mlp_h.bias"),
                            seg, "height")  # fmt: skip
            w = permute_mix(y, sd[f"{p}.attn.mlp_w.weight"], sd.get(f"{p}.attn.mlp_w.bias"),
                            seg, "width")  # fmt: skip
            c = ref.dense(y, sd, f"{p}.attn.mlp_c")
            mixed = ref.dense(ref.reweight([h, w, c], sd, f"{p}.attn.reweight"), sd,
                              f"{p}.attn.proj")  # fmt: skip
            x = x + mixed / lam
            x = x + ref.mlp(ref.layer_norm(x, sd, f"{p}.norm2", eps), sd, f"{p}.mlp") / lam
        slot += 1
        if f"network.{slot}.proj.weight" in sd:
            x = ref.patch_conv(
                x, sd[f"network.{slot}.proj.weight"], sd[f"network.{slot}.proj.bias"]
            )
            slot += 1
    return ref.head(x, sd, eps)


@pytest.mark.parametrize("config", [TINY, TINY_1X1])
def test_outputs_equal_the_reference(config):
    model = VisionPermutator(config).eval()
    sd = ref.randomised(model)
    images = torch.randn(3, 3, *config.img_size)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference_vip(sd, config, images),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip


def test_reference_sees_a_wrong_permutation():
    # The test can fail: the same model with the height and width weights swapped differs.
    model = VisionPermutator(TINY).eval()
    sd = ref.randomised(model)
    swapped = dict(sd)
    for key in [k for k in sd if k.endswith("attn.mlp_h.weight")]:
        other = key.replace("mlp_h", "mlp_w")
        swapped[key], swapped[other] = sd[other], sd[key]
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert not torch.allclose(model(images), reference_vip(swapped, TINY, images), atol=1e-3)


# --------------------------------------------------------------------------- official names


def official_keys(config: VipConfig) -> set[str]:
    """The state-dict keys houqb/VisionPermutator's VisionPermutator registers (models/vip.py):
    patch_embed.proj; network = [stage, (Downsample), stage, ...] where a Downsample follows
    stage i when transitions[i] or the width changes; blocks norm1, attn.{mlp_c, mlp_h,
    mlp_w} (bias only with qkv_bias), attn.reweight.fc1/fc2, attn.proj, norm2, mlp.fc1/fc2;
    norm; head."""
    keys = {"patch_embed.proj.weight", "patch_embed.proj.bias", "norm.weight", "norm.bias",
            "head.weight", "head.bias"}  # fmt: skip
    linear = ["attn.reweight.fc1", "attn.reweight.fc2", "attn.proj", "mlp.fc1", "mlp.fc2"]
    branches = ["attn.mlp_c", "attn.mlp_h", "attn.mlp_w"]
    slot = 0
    for stage, depth in enumerate(config.depths):
        for j in range(depth):
            for name in ["norm1", "norm2", *linear]:
                keys |= {f"network.{slot}.{j}.{name}.weight", f"network.{slot}.{j}.{name}.bias"}
            for name in branches:
                keys.add(f"network.{slot}.{j}.{name}.weight")
                if config.qkv_bias:
                    keys.add(f"network.{slot}.{j}.{name}.bias")
        slot += 1
        last = stage == len(config.depths) - 1
        if not last and (config.transitions[stage] or
                         config.embed_dims[stage] != config.embed_dims[stage + 1]):  # fmt: skip
            keys |= {f"network.{slot}.proj.weight", f"network.{slot}.proj.bias"}
            slot += 1
    return keys


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_state_dict_names_are_the_official_ones(name):
    with torch.device("meta"):
        model = VisionPermutator(VARIANTS[name])
    assert set(model.state_dict()) == official_keys(VARIANTS[name])


def test_vip_m7_network_layout_is_the_official_one():
    # vip_m7: transitions [False, True, False, False] -> the Downsample is network.2
    with torch.device("meta"):
        model = VisionPermutator(VARIANTS["vip_m7"])
    assert model.stage_slots == (0, 1, 3, 4)
    assert tuple(model.state_dict()["network.2.proj.weight"].shape) == (512, 256, 2, 2)
    assert tuple(model.state_dict()["network.3.0.attn.mlp_h.weight"].shape) == (512, 512)


def test_an_official_state_dict_loads_strict_and_reproduces_outputs():
    # A state dict made only from the official names and shapes (no model of ours involved).
    gen = torch.Generator().manual_seed(1)
    shapes = {k: v.shape for k, v in VisionPermutator(TINY).state_dict().items()}
    sd = {k: torch.randn(shapes[k], generator=gen) * 0.2 for k in sorted(official_keys(TINY))}
    model = VisionPermutator(TINY).eval()
    model.load_state_dict(sd, strict=True)
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference_vip(sd, TINY, images),
                                   rtol=1e-5, atol=1e-5)  # fmt: skip


# --------------------------------------------------------------------------- timm's API


def test_forward_intermediates_and_features_only_shapes():
    model = VisionPermutator(TINY).eval()
    images = torch.randn(2, 3, 16, 16)
    final, levels = model.forward_intermediates(images)
    assert final.shape == (2, 2, 2, 12)
    assert [tuple(t.shape) for t in levels] == [(2, 8, 4, 4), (2, 12, 2, 2)]
    assert [i["reduction"] for i in model.feature_info] == [4, 8]
    assert [i["module"] for i in model.feature_info] == ["network.0", "network.2"]
    with torch.no_grad():
        torch.testing.assert_close(final, model.forward_features(images))
        nhwc = model.forward_intermediates(images, indices=[0], output_fmt="NHWC",
                                           intermediates_only=True)  # fmt: skip
        assert tuple(nhwc[0].shape) == (2, 4, 4, 8)
        early, _ = model.forward_intermediates(images, indices=[0], stop_early=True)
        torch.testing.assert_close(early, nhwc[0])
    getter = FeatureGetter(VisionPermutator(TINY).eval(), out_indices=(0, 1))
    assert [tuple(t.shape) for t in getter(images)] == [(2, 8, 4, 4), (2, 12, 2, 2)]
    assert getter.feature_info.channels() == [8, 12]


def test_reset_classifier_and_pooled_features():
    model = VisionPermutator(TINY).eval()
    images = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(images), pre_logits=True)
        model.reset_classifier(7)
        assert model(images).shape == (2, 7) and model.num_classes == 7
        assert model.get_classifier().out_features == 7
        model.reset_classifier(0)
        torch.testing.assert_close(model(images), pooled)
    assert model.config.num_classes == 0


def test_input_size_is_fixed_by_the_segment_dims():
    model = VisionPermutator(TINY)
    with pytest.raises(InputShapeError, match=r"\(2, 3, 20, 20\)"):
        model(torch.randn(2, 3, 20, 20))
    with pytest.raises(ConfigError, match="segment_dims"):
        TINY.replace(img_size=20)  # a 5x5 grid against 4 segments
    assert model.pretrained_cfg["fixed_input_size"] is True


def test_config_round_trip_and_refusals():
    config = VARIANTS["vip_m7"]
    assert VipConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="segments"):
        VipConfig.from_dict({**config.to_dict(), "segments": 3})
    with pytest.raises(ConfigError, match="transitions"):
        config.replace(transitions=(True,))
    with pytest.raises(ConfigError, match=r"embed_dims\[0\]=7 is not divisible"):
        TINY_1X1.replace(embed_dims=(7, 9))
