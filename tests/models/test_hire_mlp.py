"""Hire-MLP: costs against the paper, outputs against a reference written from the paper's
equations (the hierarchical rearrangement as explicit loops over regions), official key
names, timm's API.

The reference shares no code with the model: it reads the weights by their official names
from a plain dict, gathers each region's rows one by one, and writes every convolution as a
sum over its taps and the norms, GELU and the reweighting as arithmetic.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlpmixer.errors import ConfigError
from mlpmixer.models.hire_mlp import (
    VARIANTS,
    HireMlp,
    HireMlpConfig,
    macs_per_image,
    param_count,
    rearranged,
    restored,
)
from mlpmixer.models.staged import level_sizes
from zoo_counting import hooked_counts

# The paper's Table 1 / the official README: params (M) and FLOPs (G) at 224. The README
# installs torchprofile to count FLOPs; the multiply-adds of the convs and the head (what
# `macs_per_image` counts) round to what it prints: 18.04 M / 2.14 G, 33.11 / 4.23,
# 58.23 / 8.11, 95.72 / 13.42.
PAPER = {
    "hiremlp_tiny": (18, 2.1),
    "hiremlp_small": (33, 4.2),
    "hiremlp_base": (58, 8.1),
    "hiremlp_large": (96, 13.4),
}

# regions of 3 on an odd map, steps 0/2/0 at level 0, a step larger than p at level 1
TINY = HireMlpConfig(embed_dims=(8, 12, 16, 20), depths=(3, 2, 1, 2), num_classes=5,
                     img_size=(43, 61), region_size=(3, 2, 4, 2), step_stride=(2, 2, 1, 2),
                     step_dilation=(2, 5, 1, 1))  # fmt: skip


def test_every_paper_variant_is_registered() -> None:
    assert set(VARIANTS) == set(PAPER)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_params_and_flops_match_the_paper(name: str) -> None:
    config = VARIANTS[name]
    with torch.device("meta"):
        model = HireMlp(config)
    built = sum(p.numel() for p in model.parameters())
    assert param_count(config) == built
    assert param_count(config, include_head=False) == built - model.head.weight.numel() - 1000
    assert macs_per_image(config) == hooked_counts(model, config.img_size).macs
    params_m, flops_g = PAPER[name]
    assert round(built / 1e6) == params_m
    assert round(macs_per_image(config) / 1e9, 1) == flops_g


def test_macs_count_the_convs_of_the_tiny_model() -> None:
    """The analytic counts equal the built model's, on odd sizes too."""
    model = HireMlp(TINY)
    assert param_count(TINY) == sum(p.numel() for p in model.parameters())
    for size in [TINY.img_size, (37, 100)]:
        assert macs_per_image(TINY.replace(img_size=size)) == hooked_counts(model, size).macs


def test_steps_follow_the_official_schedule() -> None:
    """Block j of a level shifts by (j mod step_stride)·step_dilation (level 2: 0, 1, 2, ...)."""
    with torch.device("meta"):
        model = HireMlp(VARIANTS["hiremlp_small"])
    steps = [[block.attn.step for block in model.network[2 * i]] for i in range(4)]
    assert steps == [[0, 2, 0], [0, 2, 0, 2], [0, 1, 2, 0, 1, 2, 0, 1, 2, 0], [0, 1, 0]]


# --- the reference -------------------------------------------------------------------------


def ref_conv(x: torch.Tensor, sd: dict, name: str, stride: int, pad: int) -> torch.Tensor:
    """A dense convolution as a sum over its taps."""
    weight = sd[f"{name}.weight"]
    kh, kw = weight.shape[2:]
    xp = F.pad(x, (pad, pad, pad, pad))
    ho = (x.shape[2] + 2 * pad - kh) // stride + 1
    wo = (x.shape[3] + 2 * pad - kw) // stride + 1
    out = torch.zeros(x.shape[0], weight.shape[0], ho, wo)
    for ky in range(kh):
        for kx in range(kw):
            window = xp[:, :, ky : ky + stride * ho : stride, kx : kx + stride * wo : stride]
            out += torch.einsum("bihw,oi->bohw", window, weight[:, :, ky, kx])
    bias = sd.get(f"{name}.bias")
    return out if bias is None else out + bias[:, None, None]


def ref_bn(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    """BatchNorm in eval mode, on (B, C, ...) with any number of trailing axes."""
    shape = (-1,) + (1,) * (x.ndim - 2)
    mean, var = sd[f"{name}.running_mean"].reshape(shape), sd[f"{name}.running_var"].reshape(shape)
    w, b = sd[f"{name}.weight"].reshape(shape), sd[f"{name}.bias"].reshape(shape)
    return (x - mean) / torch.sqrt(var + 1e-5) * w + b


def gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def ref_region_mlp(v: torch.Tensor, sd: dict, name: str, branch: str) -> torch.Tensor:
    """(B, C·p, L) region vectors -> (B, C·p, L): fc1, BN, ReLU, fc2."""
    w1 = sd[f"{name}.mlp_{branch}1.weight"][:, :, 0, 0]
    y = torch.relu(ref_bn(torch.einsum("bil,oi->bol", v, w1), sd, f"{name}.mlp_{branch}1_norm"))
    w2, b2 = sd[f"{name}.mlp_{branch}2.weight"][:, :, 0, 0], sd[f"{name}.mlp_{branch}2.bias"]
    return torch.einsum("bil,oi->bol", y, w2) + b2[:, None]


def ref_branch(x, sd, name, branch, p, step) -> torch.Tensor:
    """The paper's rearrangement, region by region, along the height (h) or the width (w)."""
    if branch == "w":  # the width branch is the height branch of the transposed map
        return ref_rows(x.transpose(2, 3), sd, name, "w", p, step).transpose(2, 3)
    return ref_rows(x, sd, name, "h", p, step)


def ref_rows(x, sd, name, branch, p, step) -> torch.Tensor:
    """Regions of p rows, shifted down by ``step`` circularly, each mixed by the branch's MLP."""
    b, c, n, m = x.shape
    mixed = torch.zeros(b, c, math.ceil(n / p) * p, m)  # rows of the shifted, completed map
    for g in range(math.ceil(n / p)):
        rows = [(g * p + r - step) % n for r in range(p)]  # after the shift down by step
        region = torch.stack([x[:, :, row, :] for row in rows], dim=2)  # (B, C, p, W)
        vector = region.reshape(b, c * p, m)  # channel c·p + r: row r of channel c
        out = ref_region_mlp(vector, sd, name, branch).reshape(b, c, p, m)
        for r in range(p):
            mixed[:, :, g * p + r, :] = out[:, :, r, :]
    # keep the first n rows of the shifted map, then undo the shift
    return torch.stack([mixed[:, :, (i + step) % n, :] for i in range(n)], dim=2)


def ref_mixer(x, sd, name, p, step) -> torch.Tensor:
    h = ref_branch(x, sd, f"{name}", "h", p, step)
    w = ref_branch(x, sd, f"{name}", "w", p, step)
    c = ref_conv(x, sd, f"{name}.mlp_c", 1, 0)
    pooled = (h + w + c).mean(dim=(2, 3))
    hidden = gelu(pooled @ sd[f"{name}.reweight.fc1.weight"][:, :, 0, 0].T
                  + sd[f"{name}.reweight.fc1.bias"])  # fmt: skip
    logits = hidden @ sd[f"{name}.reweight.fc2.weight"][:, :, 0, 0].T
    logits = logits + sd[f"{name}.reweight.fc2.bias"]
    out = torch.zeros_like(h)
    for ch in range(x.shape[1]):
        a = torch.softmax(logits[:, 3 * ch : 3 * ch + 3], dim=1)
        out[:, ch] = (a[:, 0, None, None] * h[:, ch] + a[:, 1, None, None] * w[:, ch]
                      + a[:, 2, None, None] * c[:, ch])  # fmt: skip
    return ref_conv(out, sd, f"{name}.proj", 1, 0)


def ref_forward(images: torch.Tensor, sd: dict, config: HireMlpConfig) -> torch.Tensor:
    x = torch.relu(ref_bn(ref_conv(images, sd, "patch_embed.proj", 4, 2), sd, "patch_embed.norm"))
    for i, depth in enumerate(config.depths):
        if i:
            down = f"network.{2 * i - 1}"
            x = torch.relu(ref_bn(ref_conv(x, sd, f"{down}.proj", 2, 1), sd, f"{down}.norm"))
        for j in range(depth):
            blk = f"network.{2 * i}.{j}"
            step = (j % config.step_stride[i]) * config.step_dilation[i]
            p = config.region_size[i]
            x = x + ref_mixer(ref_bn(x, sd, f"{blk}.norm1"), sd, f"{blk}.attn", p, step)
            y = gelu(ref_conv(ref_bn(x, sd, f"{blk}.norm2"), sd, f"{blk}.mlp.fc1", 1, 0))
            x = x + ref_conv(y, sd, f"{blk}.mlp.fc2", 1, 0)
    pooled = ref_bn(x, sd, "norm").mean(dim=(2, 3))
    return pooled @ sd["head.weight"].T + sd["head.bias"]


def official_keys(config: HireMlpConfig) -> set[str]:
    """The state-dict keys the official ``HireMLPNet`` registers (read from hire_mlp.py)."""
    keys: list[str] = []
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")

    def add(name: str, fields=("weight", "bias")) -> None:
        keys.extend(f"{name}.{f}" for f in fields)

    add("patch_embed.proj")
    add("patch_embed.norm", bn)
    for i, depth in enumerate(config.depths):
        if i:
            add(f"network.{2 * i - 1}.proj")
            add(f"network.{2 * i - 1}.norm", bn)
        for j in range(depth):
            blk = f"network.{2 * i}.{j}"
            add(f"{blk}.norm1", bn)
            add(f"{blk}.norm2", bn)
            for branch in ("h", "w"):
                add(f"{blk}.attn.mlp_{branch}1", ("weight",))
                add(f"{blk}.attn.mlp_{branch}1_norm", bn)
                add(f"{blk}.attn.mlp_{branch}2")
            for conv in ("mlp_c", "reweight.fc1", "reweight.fc2", "proj"):
                add(f"{blk}.attn.{conv}")
            add(f"{blk}.mlp.fc1")
            add(f"{blk}.mlp.fc2")
    add("norm", bn)
    add("head")
    return set(keys)


def random_official_state(config: HireMlpConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights and BatchNorm statistics under the official names."""
    template = HireMlp(config).state_dict()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(official_keys(config)):
        shape = template[key].shape
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("running_mean") or key.endswith("bias"):
            out[key] = torch.randn(shape, generator=g) * 0.1
        elif len(shape) == 1:  # a BatchNorm scale
            out[key] = torch.randn(shape, generator=g) * 0.1 + 1
        else:
            out[key] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
    return out


# --- the tests against it ------------------------------------------------------------------


@pytest.mark.parametrize("p,step", [(2, 0), (3, 1), (3, 2), (4, 5), (5, 3)])
@pytest.mark.parametrize("axis", [2, 3])
def test_rearrangement_round_trip_and_layout(p, step, axis) -> None:
    x = torch.randn(2, 3, 7, 8)
    y = rearranged(x, p, step, axis)
    n = x.shape[axis]
    assert y.shape[1] == 3 * p and y.shape[axis] == math.ceil(n / p)
    # channel c·p + r of region g holds position (g·p + r - step) mod n of channel c
    g, r, c = 1, p - 1, 2
    source = (g * p + r - step) % n
    if axis == 2:
        assert torch.equal(y[:, c * p + r, g, :], x[:, c, source, :])
    else:
        assert torch.equal(y[:, c * p + r, :, g], x[:, c, :, source])
    assert torch.equal(restored(y, p, step, axis, n), x)


def test_official_state_dict_loads_strict_and_equals_the_reference() -> None:
    assert set(HireMlp(TINY).state_dict()) == official_keys(TINY)
    sd = random_official_state(TINY)
    model = HireMlp(TINY).eval()
    model.load_state_dict(sd, strict=True)
    images = torch.randn(2, 3, *TINY.img_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model(images)
    expected = ref_forward(images, sd, TINY)
    assert got.shape == (2, 5)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_full_size_keys_are_the_official_ones() -> None:
    for name in ("hiremlp_tiny", "hiremlp_large"):
        config = VARIANTS[name]
        with torch.device("meta"):
            keys = set(HireMlp(config).state_dict())
        assert keys == official_keys(config), name


def test_the_step_matters() -> None:
    """The reference check is not vacuous: without the cross-region shift the output differs."""
    sd = random_official_state(TINY)
    images = torch.randn(1, 3, *TINY.img_size)
    model = HireMlp(TINY).eval()
    model.load_state_dict(sd)
    unshifted = HireMlp(TINY.replace(step_dilation=(1, 1, 1, 1), step_stride=(1, 1, 1, 1)))
    unshifted.eval().load_state_dict(sd)
    with torch.no_grad():
        assert not torch.allclose(model(images), unshifted(images), atol=1e-4)


# --- timm's API and sizes ------------------------------------------------------------------


def test_intermediates_per_level_any_size() -> None:
    model = HireMlp(TINY).eval()
    for size in [(43, 61), (32, 32), (3, 40), (100, 7)]:
        images = torch.randn(1, 3, *size)
        final, levels = model.forward_intermediates(images)
        expected = [(1, c, h, w) for c, (h, w) in zip(TINY.embed_dims, level_sizes(size),
                                                       strict=True)]  # fmt: skip
        assert [tuple(t.shape) for t in levels] == expected
        torch.testing.assert_close(final, model.forward_features(images))
    info = model.feature_info
    assert [f["num_chs"] for f in info] == list(TINY.embed_dims)
    assert [f["reduction"] for f in info] == [4, 8, 16, 32]
    assert [f["module"] for f in info] == ["network.0", "network.2", "network.4", "network.6"]
    assert all(f["module"] in dict(model.named_modules()) for f in info)


def test_reset_classifier_and_head() -> None:
    model = HireMlp(TINY).eval()
    images = torch.randn(2, 3, 32, 48)
    model.reset_classifier(7)
    assert model.num_classes == 7 and torch.equal(model(images), torch.zeros(2, 7))
    model.reset_classifier(0)
    pooled = model(images)
    assert pooled.shape == (2, model.num_features) == (2, 20)
    torch.testing.assert_close(pooled, model.forward_features(images).mean(dim=(2, 3)))


def test_config_round_trip_and_refusals() -> None:
    for config in VARIANTS.values():
        assert HireMlpConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="pixel"):
        HireMlpConfig.from_dict({"pixel": [4, 3, 3, 2]})
    with pytest.raises(ConfigError, match="region_size"):
        HireMlpConfig(region_size=(4, 3, 0, 2))
    with pytest.raises(ConfigError, match="embed_dims must be >= 4"):
        HireMlpConfig(embed_dims=(2, 8, 8, 8))


def test_training_step_runs() -> None:
    model = HireMlp(TINY.replace(drop_path_rate=0.2)).train()
    model(torch.randn(2, 3, 32, 48)).sum().backward()
    assert model.network[0][0].attn.mlp_h1.weight.grad is not None
