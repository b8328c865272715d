"""Higher-resolution fine-tuning: block-diagonal token mixing and the tiling property."""

from __future__ import annotations

import pytest
import torch

import mlpmixer
from mixer_testing import randomised
from mlpmixer import MixerConfig, MlpMixer
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


def test_resized_model_saves_and_reloads(tmp_path):
    model = randomised(MlpMixer(MixerConfig(**BASE))).resize((16, 24))
    model.save(tmp_path / "big")
    loaded = mlpmixer.load_model(tmp_path / "big")
    assert loaded.config == model.config
    x = torch.randn(2, 3, 16, 24)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)


@pytest.mark.parametrize("size", [(12, 12), (16, 18), (9, 24)])
def test_non_multiple_sizes_are_refused(size):
    model = MlpMixer(MixerConfig(**BASE))
    with pytest.raises(mlpmixer.ConfigError, match="must be an integer multiple of"):
        model.resize(size)
