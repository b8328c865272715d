"""AS-MLP: costs against the paper, outputs against a reference written from the paper's
equations and the official shift kernel's definition, official key names, timm's API.

The reference below shares no code with the model: it reads the weights by their official
names from a plain dict, shifts with explicit index loops, and writes GroupNorm, GELU, the 1x1
convs, the patch stem and the patch merging as arithmetic.
"""

from __future__ import annotations

import math

import pytest
import torch

from mlpmixer.errors import ConfigError, InputShapeError
from mlpmixer.models.as_mlp import (
    VARIANTS,
    AsMlp,
    AsMlpConfig,
    axial_shift,
    macs_per_image,
    param_count,
)
from zoo_counting import hooked_counts

# The paper's Table 1 / the official README: params (M) and FLOPs (G) at 224.
PAPER = {"asmlp_tiny": (28, 4.4), "asmlp_small": (50, 8.5), "asmlp_base": (88, 15.2)}
# The paper counts FLOPs with the official code's ``flops()`` (Swin's counter: the
# multiply-adds of the 1x1 convs, the stem and the head, plus one per element for each norm and
# for the branch sum, plus Swin's pooling term), written out in `official_counter` below. It
# gives 4.36 / 8.52 / 15.14 G: T and S round to the printed 4.4 and 8.5, but B's printed 15.2
# is above what its own code counts (15.1 rounded). `macs_per_image` counts the multiply-adds
# alone (4.35 / 8.51 / 15.13 G).
OFFICIAL_COUNTER_G = {"asmlp_tiny": 4.4, "asmlp_small": 8.5, "asmlp_base": 15.1}

TINY = AsMlpConfig(embed_dim=8, depths=(1, 2, 1, 1), num_classes=5, img_size=(32, 64))


def test_every_paper_variant_is_registered() -> None:
    assert set(VARIANTS) == set(PAPER)


def official_counter(config: AsMlpConfig) -> int:
    """The official ``AS_MLP.flops()``, term by term (read from models/as_mlp.py)."""
    p, c, k = config.patch_size, config.embed_dim, config.num_classes
    h, w = config.img_size[0] // p, config.img_size[1] // p
    grid = h * w
    total = grid * c * config.in_chans * p * p + grid * c  # PatchEmbed: conv, norm
    for level, depth in enumerate(config.depths):
        n = h * w
        shift = n * c * c + n * c + 2 * n * c * c + n * c + n * c + n * c * c
        block = n * c + shift + 2 * n * c * c * config.mlp_ratio + n * c
        total += depth * block
        if level < len(config.depths) - 1:  # PatchMerging
            total += n * c + (h // 2) * (w // 2) * 4 * c * 2 * c
            h, w, c = h // 2, w // 2, 2 * c
    return int(total + c * grid // 2 ** len(config.depths) + c * k)


@pytest.mark.parametrize("name", sorted(PAPER))
def test_params_and_flops_match_the_paper(name: str) -> None:
    config = VARIANTS[name]
    with torch.device("meta"):
        model = AsMlp(config)
    built = sum(p.numel() for p in model.parameters())
    assert param_count(config) == built
    assert param_count(config, include_head=False) == built - model.head.weight.numel() - 1000
    assert macs_per_image(config) == hooked_counts(model, config.img_size).macs
    params_m, flops_g = PAPER[name]
    assert round(built / 1e6) == params_m
    counted = official_counter(config)
    assert round(counted / 1e8) == round(OFFICIAL_COUNTER_G[name] * 10)
    assert abs(counted / 1e9 - flops_g) < 0.07  # B: 15.14 counted, 15.2 printed


def test_macs_count_the_convs_of_the_tiny_model() -> None:
    """The analytic count equals the hooked one, on other allowed sizes too."""
    model = AsMlp(TINY)
    for size in [TINY.img_size, (96, 32)]:
        assert macs_per_image(TINY.replace(img_size=size)) == hooked_counts(model, size).macs


# --- the reference -------------------------------------------------------------------------


def ref_shift(x: torch.Tensor, shift_size: int, axis: int, dilation: int = 1) -> torch.Tensor:
    """Channel c of group g = c // ceil(C/shift_size) reads position i + (shift_size//2 - g)·d
    along ``axis`` (2 rows, 3 columns), zero where that falls outside."""
    out = torch.zeros_like(x)
    channels, n = x.shape[1], x.shape[axis]
    group = math.ceil(channels / shift_size)
    for c in range(channels):
        s = (shift_size // 2 - c // group) * dilation
        for i in range(n):
            if 0 <= i + s < n:
                if axis == 2:
                    out[:, c, i, :] = x[:, c, i + s, :]
                else:
                    out[:, c, :, i] = x[:, c, :, i + s]
    return out


def ref_gn(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    var = ((x - mean) ** 2).mean(dim=(1, 2, 3), keepdim=True)
    w, b = sd[f"{name}.weight"], sd[f"{name}.bias"]
    return (x - mean) / torch.sqrt(var + 1e-5) * w[:, None, None] + b[:, None, None]


def ref_pixel_linear(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    w = sd[f"{name}.weight"][:, :, 0, 0]
    y = torch.einsum("bchw,oc->bohw", x, w)
    bias = sd.get(f"{name}.bias")
    return y if bias is None else y + bias[:, None, None]


def gelu(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def ref_block(x: torch.Tensor, sd: dict, name: str, shift_size: int) -> torch.Tensor:
    a = f"{name}.axial_shift"
    y = ref_gn(x, sd, f"{name}.norm1")
    y = gelu(ref_gn(ref_pixel_linear(y, sd, f"{a}.conv1"), sd, f"{a}.norm1"))
    lr = gelu(ref_pixel_linear(ref_shift(y, shift_size, 3), sd, f"{a}.conv2_1"))
    td = gelu(ref_pixel_linear(ref_shift(y, shift_size, 2), sd, f"{a}.conv2_2"))
    x = x + ref_pixel_linear(ref_gn(lr + td, sd, f"{a}.norm2"), sd, f"{a}.conv3")
    y = ref_gn(x, sd, f"{name}.norm2")
    y = gelu(ref_pixel_linear(y, sd, f"{name}.mlp.fc1"))
    return x + ref_pixel_linear(y, sd, f"{name}.mlp.fc2")


def ref_merge(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    b, c, h, w = x.shape
    out = torch.empty(b, 4 * c, h // 2, w // 2)
    for k, (dy, dx) in enumerate([(0, 0), (1, 0), (0, 1), (1, 1)]):
        for i in range(h // 2):
            for j in range(w // 2):
                out[:, k * c : (k + 1) * c, i, j] = x[:, :, 2 * i + dy, 2 * j + dx]
    return ref_pixel_linear(ref_gn(out, sd, f"{name}.norm"), sd, f"{name}.reduction")


def ref_forward(images: torch.Tensor, sd: dict, config: AsMlpConfig) -> torch.Tensor:
    p = config.patch_size
    b, cin, hh, ww = images.shape
    patches = images.reshape(b, cin, hh // p, p, ww // p, p)
    x = torch.einsum("bihpwq,oipq->bohw", patches, sd["patch_embed.proj.weight"])
    x = ref_gn(x + sd["patch_embed.proj.bias"][:, None, None], sd, "patch_embed.norm")
    for i, depth in enumerate(config.depths):
        if i:
            x = ref_merge(x, sd, f"layers.{i - 1}.downsample")
        for j in range(depth):
            x = ref_block(x, sd, f"layers.{i}.blocks.{j}", config.shift_size)
    pooled = ref_gn(x, sd, "norm").mean(dim=(2, 3))
    return pooled @ sd["head.weight"].T + sd["head.bias"]


def official_keys(config: AsMlpConfig) -> set[str]:
    """The state-dict keys the official ``AS_MLP`` registers (read from models/as_mlp.py)."""
    params = ["patch_embed.proj.weight", "patch_embed.proj.bias", "patch_embed.norm.weight",
              "patch_embed.norm.bias", "norm.weight", "norm.bias", "head.weight", "head.bias"]  # fmt: skip
    wb = ("weight", "bias")
    for i, depth in enumerate(config.depths):
        for j in range(depth):
            blk = f"layers.{i}.blocks.{j}"
            for mod in ("norm1", "norm2", "mlp.fc1", "mlp.fc2", "axial_shift.conv1",
                        "axial_shift.conv2_1", "axial_shift.conv2_2", "axial_shift.conv3",
                        "axial_shift.norm1", "axial_shift.norm2"):  # fmt: skip
                params += [f"{blk}.{mod}.{t}" for t in wb]
        if i < len(config.depths) - 1:
            ds = f"layers.{i}.downsample"
            params += [f"{ds}.norm.weight", f"{ds}.norm.bias", f"{ds}.reduction.weight"]
    return set(params)


def random_official_state(config: AsMlpConfig, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights under the official names (norm weights near 1, so activations are tame)."""
    shapes = {k: v.shape for k, v in AsMlp(config).state_dict().items()}
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in sorted(official_keys(config)):
        t = torch.randn(shapes[key], generator=g) * 0.2
        out[key] = t + 1 if "norm" in key and key.endswith("weight") else t
    return out


# --- the tests against it ------------------------------------------------------------------


@pytest.mark.parametrize("shift_size,dilation", [(5, 1), (3, 1), (3, 2), (7, 1), (1, 1)])
@pytest.mark.parametrize("axis", [2, 3])
def test_axial_shift_equals_the_kernel_definition(shift_size, dilation, axis) -> None:
    x = torch.randn(2, 13, 6, 7)  # 13 channels: groups of ceil(13/5)=3, the last one 1 channel
    expected = ref_shift(x, shift_size, axis, dilation)
    assert torch.equal(axial_shift(x, shift_size, axis, dilation), expected)


def test_axial_shift_moves_the_first_group_up_and_fills_zeros() -> None:
    """A hand case: 5 channels, shift 5: channel 0 reads 2 rows below, channel 4 2 rows above."""
    x = torch.arange(5 * 4, dtype=torch.float32).reshape(1, 5, 4, 1).repeat(1, 1, 1, 1)
    out = axial_shift(x, 5, 2)[0, :, :, 0]
    assert out[0].tolist() == [2.0, 3.0, 0.0, 0.0]
    assert out[2].tolist() == x[0, 2, :, 0].tolist()
    assert out[4].tolist() == [0.0, 0.0, 16.0, 17.0]


def test_state_dict_keys_are_the_official_ones() -> None:
    assert set(AsMlp(TINY).state_dict()) == official_keys(TINY)
    with torch.device("meta"):
        full = AsMlp(VARIANTS["asmlp_tiny"])
    assert set(full.state_dict()) == official_keys(VARIANTS["asmlp_tiny"])


def test_official_state_dict_loads_strict_and_equals_the_reference() -> None:
    sd = random_official_state(TINY)
    model = AsMlp(TINY).eval()
    model.load_state_dict(sd, strict=True)
    images = torch.randn(2, 3, *TINY.img_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model(images)
        expected = ref_forward(images, sd, TINY)
    assert got.shape == (2, 5)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_output_depends_on_the_shift() -> None:
    """The reference check is not vacuous: no shift (size 1) gives another output."""
    sd = random_official_state(TINY)
    images = torch.randn(1, 3, *TINY.img_size)
    model = AsMlp(TINY).eval()
    model.load_state_dict(sd)
    unshifted = AsMlp(TINY.replace(shift_size=1)).eval()
    unshifted.load_state_dict(sd)
    with torch.no_grad():
        assert not torch.allclose(model(images), unshifted(images), atol=1e-3)


# --- timm's API and sizes ------------------------------------------------------------------


def test_intermediates_per_level_any_allowed_size() -> None:
    model = AsMlp(TINY).eval()
    for size in [(32, 64), (64, 32), (96, 96), (35, 67)]:  # 35//4 = 8: the conv floors
        images = torch.randn(1, 3, *size)
        final, levels = model.forward_intermediates(images)
        gh, gw = size[0] // 4, size[1] // 4
        assert [tuple(t.shape) for t in levels] == [
            (1, 8 * 2**i, gh // 2**i, gw // 2**i) for i in range(4)
        ]
        assert final.shape == levels[-1].shape
        torch.testing.assert_close(final, model.forward_features(images))
        assert model(images).shape == (1, 5)
    info = model.feature_info
    assert [f["num_chs"] for f in info] == [8, 16, 32, 64]
    assert [f["reduction"] for f in info] == [4, 8, 16, 32]
    assert [f["module"] for f in info] == ["layers.0", "layers.1", "layers.2", "layers.3"]
    names = dict(model.named_modules())
    assert all(f["module"] in names for f in info)


def test_intermediates_options() -> None:
    model = AsMlp(TINY).eval()
    images = torch.randn(2, 3, 32, 32)
    every = model.forward_intermediates(images, intermediates_only=True)
    two = model.forward_intermediates(images, indices=[0, -1], intermediates_only=True)
    assert torch.equal(two[0], every[0]) and torch.equal(two[1], every[3])
    last = model.forward_intermediates(images, indices=1, norm=True, intermediates_only=True)
    torch.testing.assert_close(last[0], model.forward_features(images))
    nhwc = model.forward_intermediates(images, indices=[1], output_fmt="NHWC")[1][0]
    assert torch.equal(nhwc, every[1].permute(0, 2, 3, 1))
    with pytest.raises(ConfigError, match="out of range"):
        model.forward_intermediates(images, indices=[4])
    with pytest.raises(ConfigError, match="output_fmt"):
        model.forward_intermediates(images, output_fmt="NLC")


def test_sizes_the_merges_cannot_halve_are_refused() -> None:
    model = AsMlp(TINY)
    with pytest.raises(InputShapeError, match=r"\(36, 64\)"):
        model(torch.zeros(1, 3, 36, 64))
    with pytest.raises(InputShapeError, match="expected images"):
        model(torch.zeros(1, 4, 32, 64))
    with pytest.raises(ConfigError, match="img_size|image size"):
        AsMlpConfig(img_size=(100, 224))


def test_reset_classifier_and_head() -> None:
    model = AsMlp(TINY).eval()
    images = torch.randn(2, 3, 32, 64)
    model.reset_classifier(7)
    assert model.num_classes == 7 and model.config.num_classes == 7
    assert torch.equal(model(images), torch.zeros(2, 7))
    assert model.get_classifier() is model.head
    model.reset_classifier(0)
    pooled = model(images)
    assert pooled.shape == (2, model.num_features) == (2, 64)
    torch.testing.assert_close(pooled, model.forward_features(images).mean(dim=(2, 3)))
    torch.testing.assert_close(
        model.forward_head(model.forward_features(images), pre_logits=True), pooled
    )


# --- the config ----------------------------------------------------------------------------


def test_config_round_trip_and_refusals() -> None:
    config = VARIANTS["asmlp_base"]
    assert AsMlpConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["depths"] == [2, 2, 18, 2]
    with pytest.raises(ConfigError, match="widht"):
        AsMlpConfig.from_dict({**config.to_dict(), "widht": 3})
    with pytest.raises(ConfigError, match="shift_size must be odd, got 4"):
        AsMlpConfig(shift_size=4)
    with pytest.raises(ConfigError, match="depths"):
        AsMlpConfig(depths=(2, 2, 6))
    with pytest.raises(ConfigError, match="mlp_ratio must be a positive number, got True"):
        AsMlpConfig(mlp_ratio=True)
    with pytest.raises(ConfigError, match="family"):
        AsMlpConfig(family="mixer")
    with pytest.raises(ConfigError, match="drop_path_rate"):
        AsMlpConfig(drop_path_rate=1.5)


def test_training_mode_runs_with_drop_path() -> None:
    model = AsMlp(TINY.replace(drop_path_rate=0.3, drop_rate=0.1)).train()
    out = model(torch.randn(2, 3, 32, 64))
    out.sum().backward()
    assert model.patch_embed.proj.weight.grad is not None
