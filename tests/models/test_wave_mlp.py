"""Wave-MLP: costs against the paper, outputs against a reference written from the paper's
equations (with the official channel pairing of the token-mixing conv), official key names,
timm's API.

The reference shares no code with the model: it reads the weights by their official names
from a plain dict and writes every convolution as a sum over its taps, the norms, GELU and the
phase-aware token mixing as arithmetic.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mlpmixer.errors import ConfigError, InputShapeError
from mlpmixer.models.staged import level_sizes
from mlpmixer.models.wave_mlp import (
    VARIANTS,
    WaveMlp,
    WaveMlpConfig,
    macs_per_image,
    param_count,
)
from zoo_counting import hooked_counts

# The paper's Table 1 / the official README: params (M) and FLOPs (G) at 224. The paper
# truncates both (30.7 M prints as 30, 63.6 M as 63). Its FLOPs come from thop (the README
# installs it), which counts a conv's multiply-adds plus one add per output for its bias and
# two operations per element of a BatchNorm in eval mode: 2.177/2.477/4.539/7.903/10.244 G,
# truncated 2.1/2.4/4.5/7.9/10.2. `macs_per_image` counts the multiply-adds alone
# (2.163/2.462/4.522/7.872/10.215 G).
PAPER = {
    "wavemlp_t_dw": (15, 2.1),
    "wavemlp_t": (17, 2.4),
    "wavemlp_s": (30, 4.5),
    "wavemlp_m": (44, 7.9),
    "wavemlp_b": (63, 10.2),
}

TINY = WaveMlpConfig(embed_dims=(8, 12, 16, 20), depths=(1, 2, 1, 1), num_classes=5,
                     img_size=(40, 56))  # fmt: skip
TINY_GN = TINY.replace(norm="group", stem_norm=False, mlp_ratios=(2, 3, 4, 1.5))
TINY_DW = TINY.replace(theta_conv="depthwise", qkv_bias=True)


def test_every_paper_variant_is_registered() -> None:
    assert set(VARIANTS) == set(PAPER)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_params_and_flops_match_the_paper(name: str) -> None:
    config = VARIANTS[name]
    with torch.device("meta"):
        model = WaveMlp(config)
    built = sum(p.numel() for p in model.parameters())
    assert param_count(config) == built
    assert param_count(config, include_head=False) == built - model.head.weight.numel() - 1000
    counts = hooked_counts(model, config.img_size)
    assert macs_per_image(config) == counts.macs
    params_m, flops_g = PAPER[name]
    assert math.floor(built / 1e6) == params_m
    assert math.floor(counts.thop / 1e8) == round(flops_g * 10)  # truncated to 0.1 G


@pytest.mark.parametrize("config", [TINY, TINY_GN, TINY_DW], ids=["bn", "gn", "dw"])
def test_macs_count_the_convs_of_the_tiny_model(config: WaveMlpConfig) -> None:
    """The analytic counts equal the built model's, on odd sizes too."""
    model = WaveMlp(config)
    assert param_count(config) == sum(p.numel() for p in model.parameters())
    for size in [config.img_size, (37, 61)]:
        assert macs_per_image(config.replace(img_size=size)) == hooked_counts(model, size).macs


# --- the reference -------------------------------------------------------------------------


def ref_conv(x: torch.Tensor, sd: dict, name: str, stride: int, pad: int) -> torch.Tensor:
    """A dense convolution as a sum over its taps: out = Σ_{ky,kx} W[:, :, ky, kx] · x shifted."""
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


def ref_depthwise3(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Channel c: Σ over the 3x3 neighbourhood of W[c] · x[c], zero outside."""
    xp = F.pad(x, (1, 1, 1, 1))
    h, w = x.shape[2:]
    out = torch.zeros_like(x)
    for ky in range(3):
        for kx in range(3):
            out += weight[:, 0, ky, kx][:, None, None] * xp[:, :, ky : ky + h, kx : kx + w]
    return out


def ref_norm(x: torch.Tensor, sd: dict, name: str, kind: str) -> torch.Tensor:
    w, b = sd[f"{name}.weight"][:, None, None], sd[f"{name}.bias"][:, None, None]
    if kind == "batch":  # eval mode: the running statistics
        mean = sd[f"{name}.running_mean"][:, None, None]
        var = sd[f"{name}.running_var"][:, None, None]
    else:  # one group: statistics over C·H·W of each image
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * w + b


def gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def ref_phase(x: torch.Tensor, sd: dict, name: str, kind: str) -> torch.Tensor:
    if kind == "fc":
        y = ref_conv(x, sd, f"{name}.0", 1, 0)
    else:
        y = ref_depthwise3(x, sd[f"{name}.0.weight"])
    return torch.relu(ref_norm(y, sd, f"{name}.1", "batch"))


def ref_token_mix(z: torch.Tensor, weight: torch.Tensor, axis: int) -> torch.Tensor:
    """Output channel c = Σ_{m∈{0,1}} Σ_{k=-3..3} W[c, m, k] · z[2c+m] at offset k along axis.

    ``z`` (B, 2C, H, W) is [real parts; imaginary parts]; ``weight`` (C, 2, 7) its taps."""
    b, c2, h, w = z.shape
    c = c2 // 2
    out = torch.zeros(b, c, h, w)
    n = z.shape[axis]
    for ch in range(c):
        for m in range(2):
            for k in range(-3, 4):
                lo, hi = max(0, -k), min(n, n - k)  # output positions whose input i+k exists
                if lo >= hi:
                    continue
                src = z[:, 2 * ch + m]
                if axis == 3:
                    out[:, ch, :, lo:hi] += weight[ch, m, k + 3] * src[:, :, lo + k : hi + k]
                else:
                    out[:, ch, lo:hi, :] += weight[ch, m, k + 3] * src[:, lo + k : hi + k, :]
    return out


def ref_patm(x: torch.Tensor, sd: dict, name: str, config: WaveMlpConfig) -> torch.Tensor:
    branches = []
    for branch, axis in (("h", 3), ("w", 2)):
        amplitude = ref_conv(x, sd, f"{name}.fc_{branch}", 1, 0)
        theta = ref_phase(x, sd, f"{name}.theta_{branch}_conv", config.theta_conv)
        z = torch.cat([amplitude * torch.cos(theta), amplitude * torch.sin(theta)], dim=1)
        taps = sd[f"{name}.tfc_{branch}.weight"].reshape(x.shape[1], 2, 7)
        branches.append(ref_token_mix(z, taps, axis))
    h, w = branches
    c = ref_conv(x, sd, f"{name}.fc_c", 1, 0)
    pooled = (h + w + c).mean(dim=(2, 3))  # (B, C)
    hidden = gelu(pooled @ sd[f"{name}.reweight.fc1.weight"][:, :, 0, 0].T
                  + sd[f"{name}.reweight.fc1.bias"])  # fmt: skip
    logits = hidden @ sd[f"{name}.reweight.fc2.weight"][:, :, 0, 0].T
    logits = logits + sd[f"{name}.reweight.fc2.bias"]
    out = torch.zeros_like(h)
    for ch in range(x.shape[1]):
        a = torch.softmax(logits[:, 3 * ch : 3 * ch + 3], dim=1)  # (B, 3)
        out[:, ch] = (a[:, 0, None, None] * h[:, ch] + a[:, 1, None, None] * w[:, ch]
                      + a[:, 2, None, None] * c[:, ch])  # fmt: skip
    return ref_conv(out, sd, f"{name}.proj", 1, 0)


def ref_forward(images: torch.Tensor, sd: dict, config: WaveMlpConfig) -> torch.Tensor:
    kind = config.norm

    def maybe_norm(x, name):
        return ref_norm(x, sd, name, kind) if config.stem_norm else x

    x = maybe_norm(ref_conv(images, sd, "patch_embed.proj", 4, 2), "patch_embed.norm")
    for i, depth in enumerate(config.depths):
        if i:
            x = maybe_norm(ref_conv(x, sd, f"network.{2 * i - 1}.proj", 2, 1),
                           f"network.{2 * i - 1}.norm")  # fmt: skip
        for j in range(depth):
            blk = f"network.{2 * i}.{j}"
            x = x + ref_patm(ref_norm(x, sd, f"{blk}.norm1", kind), sd, f"{blk}.attn", config)
            y = gelu(ref_conv(ref_norm(x, sd, f"{blk}.norm2", kind), sd, f"{blk}.mlp.fc1", 1, 0))
            x = x + ref_conv(y, sd, f"{blk}.mlp.fc2", 1, 0)
    pooled = ref_norm(x, sd, "norm", kind).mean(dim=(2, 3))
    return pooled @ sd["head.weight"].T + sd["head.bias"]


def official_keys(config: WaveMlpConfig) -> set[str]:
    """The state-dict keys the official ``WaveNet`` registers (read from wave_mlp.py)."""
    keys: list[str] = []

    def norm(name: str, kind: str) -> None:
        keys.extend(f"{name}.{t}" for t in ("weight", "bias"))
        if kind == "batch":
            keys.extend(f"{name}.{t}" for t in ("running_mean", "running_var",
                                                 "num_batches_tracked"))  # fmt: skip

    def conv(name: str, bias: bool = True) -> None:
        keys.append(f"{name}.weight")
        if bias:
            keys.append(f"{name}.bias")

    conv("patch_embed.proj")
    if config.stem_norm:
        norm("patch_embed.norm", config.norm)
    for i, depth in enumerate(config.depths):
        if i:
            conv(f"network.{2 * i - 1}.proj")
            if config.stem_norm:
                norm(f"network.{2 * i - 1}.norm", config.norm)
        for j in range(depth):
            blk = f"network.{2 * i}.{j}"
            norm(f"{blk}.norm1", config.norm)
            norm(f"{blk}.norm2", config.norm)
            for fc in ("fc_h", "fc_w", "fc_c"):
                conv(f"{blk}.attn.{fc}", bias=config.qkv_bias)
            conv(f"{blk}.attn.tfc_h", bias=False)
            conv(f"{blk}.attn.tfc_w", bias=False)
            for name in ("reweight.fc1", "reweight.fc2", "proj"):
                conv(f"{blk}.attn.{name}")
            for theta in ("theta_h_conv", "theta_w_conv"):
                conv(f"{blk}.attn.{theta}.0", bias=config.theta_conv == "fc")
                norm(f"{blk}.attn.{theta}.1", "batch")
            conv(f"{blk}.mlp.fc1")
            conv(f"{blk}.mlp.fc2")
    norm("norm", config.norm)
    conv("head")
    return set(keys)


def random_official_state(config: WaveMlpConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights and BatchNorm statistics under the official names."""
    template = WaveMlp(config).state_dict()
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(official_keys(config)):
        shape = template[key].shape
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=g) + 0.5
        elif "norm" in key.split(".")[-2] or key.endswith(".1.weight"):  # norm scales near 1
            out[key] = torch.randn(shape, generator=g) * 0.1 + (1 if key.endswith("weight") else 0)
        elif key.endswith("running_mean") or key.endswith("bias"):
            out[key] = torch.randn(shape, generator=g) * 0.1
        else:  # a conv or Linear weight, scaled to keep activations (and so phases) moderate
            fan_in = math.prod(shape[1:])
            out[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in)
    return out


# --- the tests against it ------------------------------------------------------------------


@pytest.mark.parametrize("config", [TINY, TINY_GN, TINY_DW], ids=["bn", "gn", "dw"])
def test_official_state_dict_loads_strict_and_equals_the_reference(config) -> None:
    assert set(WaveMlp(config).state_dict()) == official_keys(config)
    sd = random_official_state(config)
    model = WaveMlp(config).eval()
    model.load_state_dict(sd, strict=True)
    images = torch.randn(2, 3, *config.img_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model(images)
    expected = ref_forward(images, sd, config)
    assert got.shape == (2, 5)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_full_size_keys_are_the_official_ones() -> None:
    for name in ("wavemlp_t", "wavemlp_m", "wavemlp_t_dw"):
        config = VARIANTS[name]
        with torch.device("meta"):
            keys = set(WaveMlp(config).state_dict())
        assert keys == official_keys(config), name


def test_the_phase_matters() -> None:
    """The reference check is not vacuous: zeroing the phase branch changes the output."""
    sd = random_official_state(TINY)
    model = WaveMlp(TINY).eval()
    model.load_state_dict(sd)
    images = torch.randn(1, 3, *TINY.img_size)
    with torch.no_grad():
        before = model(images)
        model.network[0][0].attn.theta_h_conv[1].bias.add_(1.0)
        assert not torch.allclose(model(images), before, atol=1e-4)


# --- timm's API and sizes ------------------------------------------------------------------


def test_intermediates_per_level_any_size() -> None:
    model = WaveMlp(TINY).eval()
    for size in [(40, 56), (33, 33), (7, 90), (224, 3)]:
        images = torch.randn(1, 3, *size)
        final, levels = model.forward_intermediates(images)
        expected = [
            (1, c, h, w) for c, (h, w) in zip(TINY.embed_dims, level_sizes(size), strict=True)
        ]
        assert [tuple(t.shape) for t in levels] == expected
        torch.testing.assert_close(final, model.forward_features(images))
        assert model(images).shape == (1, 5)
    info = model.feature_info
    assert [f["num_chs"] for f in info] == list(TINY.embed_dims)
    assert [f["reduction"] for f in info] == [4, 8, 16, 32]
    assert [f["module"] for f in info] == ["network.0", "network.2", "network.4", "network.6"]
    assert all(f["module"] in dict(model.named_modules()) for f in info)


def test_intermediates_options_and_bad_input() -> None:
    model = WaveMlp(TINY_GN).eval()
    images = torch.randn(2, 3, 40, 40)
    every = model.forward_intermediates(images, intermediates_only=True)
    two = model.forward_intermediates(images, indices=[0, -1], intermediates_only=True)
    assert torch.equal(two[0], every[0]) and torch.equal(two[1], every[3])
    last = model.forward_intermediates(images, indices=1, norm=True, intermediates_only=True)
    torch.testing.assert_close(last[0], model.forward_features(images))
    with pytest.raises(InputShapeError, match="expected images"):
        model(torch.zeros(2, 1, 40, 40))


def test_reset_classifier_and_head() -> None:
    model = WaveMlp(TINY).eval()
    images = torch.randn(2, 3, 40, 56)
    model.reset_classifier(7)
    assert model.num_classes == 7 and torch.equal(model(images), torch.zeros(2, 7))
    model.reset_classifier(0)
    pooled = model(images)
    assert pooled.shape == (2, model.num_features) == (2, 20)
    torch.testing.assert_close(pooled, model.forward_features(images).mean(dim=(2, 3)))


def test_config_round_trip_and_refusals() -> None:
    for config in VARIANTS.values():
        assert WaveMlpConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="nrom"):
        WaveMlpConfig.from_dict({"nrom": "batch"})
    with pytest.raises(ConfigError, match="norm must be one of"):
        WaveMlpConfig(norm="layer")
    with pytest.raises(ConfigError, match="theta_conv"):
        WaveMlpConfig(theta_conv="conv")
    with pytest.raises(ConfigError, match="mlp_ratios"):
        WaveMlpConfig(mlp_ratios=(4, 4, 0, 4))


def test_training_step_updates_batch_statistics() -> None:
    model = WaveMlp(TINY.replace(drop_path_rate=0.2)).train()
    model(torch.randn(2, 3, 40, 56)).sum().backward()
    assert model.patch_embed.norm.num_batches_tracked.item() == 1
    assert model.network[0][0].attn.tfc_h.weight.grad is not None
