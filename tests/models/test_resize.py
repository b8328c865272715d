"""Another resolution: exact block-diagonal tiling for integer multiples of the patch grid,
resampled token weights for any other grid (issue 17 item 4)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import mlpmixer
from mixer_testing import randomised
from mlpmixer import MixerConfig, MlpMixer
from mlpmixer.models import build_model
from mlpmixer.models.resize import window_token_index

BASE = {
    "img_size": (8, 12), "patch_size": (2, 3), "in_chans": 3, "num_classes": 5, "hidden_dim": 16,
    "num_blocks": 2, "tokens_mlp_dim": 6, "channels_mlp_dim": 32,
}  # fmt: skip


@pytest.mark.parametrize(("kh", "kw"), [(2, 2), (3, 3), (2, 3)])
def test_tiled_image_gives_the_original_logits(kh, kw):
    model = randomised(MlpMixer(MixerConfig(**BASE)))
    images = torch.randn(3, 3, 8, 12)
    big = model.resize((8 * kh, 12 * kw))
    assert big.config.tokens_mlp_dim == 6 * kh * kw and big.config.num_tokens == 16 * kh * kw
    tiled = images.repeat(1, 1, kh, kw)  # the image tiled kh x kw
    with torch.no_grad():
        expected = model(images)
        torch.testing.assert_close(big(tiled), expected, atol=1e-5, rtol=0)
        # Not trivially true: a non-tiled image of the new size gives other logits.
        other = torch.randn(3, 3, 8 * kh, 12 * kw)
        assert (big(other) - expected).abs().max() > 1e-2


def test_token_mixing_becomes_block_diagonal_over_windows():
    model = randomised(MlpMixer(MixerConfig(**BASE)))
    big = model.resize((16, 24))
    w1 = big.blocks[0].token_mixing.fc1.weight  # (4 * 6, 64)
    index = window_token_index((4, 4), (2, 2))
    original = model.blocks[0].token_mixing.fc1.weight
    for window in range(4):
        rows = slice(6 * window, 6 * (window + 1))
        torch.testing.assert_close(w1[rows][:, index[window]], original, atol=0, rtol=0)
        outside = torch.ones(64, dtype=torch.bool)
        outside[index[window]] = False
        assert torch.count_nonzero(w1[rows][:, outside]) == 0
    # Window (0, 1) of a 8x8 patch grid of 4x4 windows: rows 0-3, columns 4-7.
    assert index[1].tolist()[:4] == [4, 5, 6, 7] and index[1].tolist()[4] == 12


FAMILIES = ("mixer", "gmixer", "resmlp", "gmlp")


def family_config(family: str, **changes) -> MixerConfig:
    """A small config of ``family``: a 4 × 4 grid of 2 × 3 patches, 3 channels."""
    tokens = 16 if family in ("resmlp", "gmlp") else 6
    return MixerConfig(**{**BASE, "family": family, "tokens_mlp_dim": tokens, **changes})


def smooth_token_weights(model, seed: int = 0):
    """Token weights that vary smoothly over the patch grid (as trained ones roughly do):
    bilinear images of a random 2 × 2 field. The rest stays randomised."""
    from mlpmixer.models.resize import resample_grid, token_resize  # new with resampling

    g = torch.Generator().manual_seed(seed)
    grid = model.config.grid_size

    def field(*lead, dim):
        shape = list(lead)
        shape.insert(dim % (len(lead) + 1), 4)
        return resample_grid(torch.randn(shape, generator=g), (2, 2), grid, dim=dim)

    with torch.no_grad():
        for block in model.blocks:
            for name in block.resized_token_weights(
                token_resize(model.config, model.config.img_size)
            ):
                p = block.get_parameter(name)
                s = grid[0] * grid[1]
                if p.ndim == 1 and p.shape[0] == s:  # a per-token bias
                    p.copy_(field(dim=0) * 0.3)
                elif p.ndim == 2 and p.shape == (s, s):
                    square = resample_grid(torch.randn(4, 4, generator=g), (2, 2), grid, dim=0)
                    p.copy_(resample_grid(square, (2, 2), grid, dim=1) / s)
                elif p.ndim == 2 and p.shape[1] == s:  # reading the tokens
                    p.copy_(field(p.shape[0], dim=1) / s)
                elif p.ndim == 2:  # writing the tokens
                    p.copy_(field(p.shape[1], dim=0) / p.shape[1] ** 0.5)
    return model


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [(12, 18), (6, 9), (10, 12), (8, 9)])
def test_any_multiple_of_the_patch_size_resamples(family, size):
    model = randomised(build_model(family_config(family)))
    resized = model.resize(size)
    grid = (size[0] // 2, size[1] // 3)
    assert resized.config.img_size == size and resized.config.grid_size == grid
    tokens = grid[0] * grid[1]
    expected_dim = tokens if family in ("resmlp", "gmlp") else 6  # D_S kept when resampling
    assert resized.config.tokens_mlp_dim == expected_dim
    assert resized.token_mixing_weight(0).shape[-1] == tokens
    with torch.no_grad():
        out = resized(torch.randn(2, 3, *size))
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    assert (
        resized.config.replace(img_size=(8, 12), tokens_mlp_dim=model.config.tokens_mlp_dim)
        == model.config
    )


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [(12, 18), (6, 9), (10, 15)])
def test_a_constant_image_keeps_its_logits_when_resampled(family, size):
    """With smooth token weights, a spatially constant image gives nearly the same logits at
    the new size: the first layer's weights are densities (× S/S'), the second's values."""
    model = smooth_token_weights(randomised(build_model(family_config(family)), seed=3))
    colour = torch.tensor([0.3, -0.5, 0.8]).view(1, 3, 1, 1)
    with torch.no_grad():
        before = model(colour.expand(1, 3, 8, 12))
        after = model.resize(size)(colour.expand(1, 3, *size))
    assert before.abs().max() > 0.1
    error = ((after - before).abs().max() / before.abs().max()).item()
    assert error < 0.003, error  # without the S/S' scale: 0.016 to 0.047 (next test)


@pytest.mark.parametrize("family", FAMILIES)
def test_without_the_density_scale_the_constant_image_property_fails(monkeypatch, family):
    """The test above can fail: resampling the first layer without S/S' changes the logits."""
    from mlpmixer.models.resize import TokenResize

    model = smooth_token_weights(randomised(build_model(family_config(family)), seed=3))
    colour = torch.tensor([0.3, -0.5, 0.8]).view(1, 3, 1, 1)
    monkeypatch.setattr(TokenResize, "density_scale", property(lambda self: 1.0))
    with torch.no_grad():
        before = model(colour.expand(1, 3, 8, 12))
        after = model.resize((12, 18))(colour.expand(1, 3, 12, 18))
    assert ((after - before).abs().max() / before.abs().max()).item() > 0.01


@pytest.mark.parametrize("family", FAMILIES)
def test_resampling_up_and_back_returns_smooth_weights(family):
    model = smooth_token_weights(randomised(build_model(family_config(family))), seed=1)
    back = model.resize((12, 18)).resize((8, 12))  # 4x4 -> 6x6 -> 4x4, both resampled
    assert back.config == model.config
    for block in range(2):
        original = model.token_mixing_weight(block)
        error = (back.token_mixing_weight(block) - original).abs().max() / original.abs().max()
        assert error < 0.2, (block, error.item())  # random (not smooth) weights: 0.5 to 0.8


@pytest.mark.parametrize("family", FAMILIES)
def test_resize_to_the_same_size_changes_nothing(family):
    model = randomised(build_model(family_config(family)))
    same = model.resize((8, 12))
    for (name, a), b in zip(model.state_dict().items(), same.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, atol=0, rtol=0, msg=name)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("size", [(16, 24), (10, 15)])  # tiled, resampled
def test_a_resized_model_saves_and_reloads_exactly(tmp_path, family, size):
    model = randomised(build_model(family_config(family))).resize(size)  # in eval mode
    model.save(tmp_path / "m")
    loaded = mlpmixer.load_model(tmp_path / "m").eval()  # as `model`: a module in training
    assert loaded.config == model.config  # mode takes the plain path (dropout), even in no_grad
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)


@pytest.mark.parametrize("size", [(9, 24), (8, 13), (1, 3)])
def test_sizes_the_patch_does_not_divide_are_refused(size):
    model = MlpMixer(MixerConfig(**BASE))
    with pytest.raises(mlpmixer.ConfigError, match="must divide the new size"):
        model.resize(size)


def test_an_absurd_size_is_refused_before_anything_is_allocated():
    model = MlpMixer(MixerConfig(**BASE))
    with pytest.raises(mlpmixer.ConfigError, match="more than the limit"):
        model.resize((100000, 150000))  # 5e4 x 5e4 patches: 1.5e10 token weights


def test_resize_works_after_a_bare_import_of_the_models():
    """``import mlpmixer`` is lazy (the CLI's --help runs without torch), so nothing imports
    mlpmixer.checkpoints before a model needs the file format: resize raised RuntimeError."""
    code = (
        "import mlpmixer.models as m\n"
        "model = m.build_model(m.MixerConfig(img_size=(8, 12), patch_size=(2, 3), num_classes=3,"
        " hidden_dim=8, num_blocks=1, tokens_mlp_dim=4, channels_mlp_dim=8))\n"
        "print(model.resize((16, 24)).config.num_tokens)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "64"  # (16/2) x (24/3) tokens
