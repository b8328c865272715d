"""Tiny models of each family for the int8 tests (a second each to quantize)."""

from __future__ import annotations

import pytest
import torch

from mixer_testing import randomised
from mlpmixer.models import MixerConfig, build_model

FAMILIES = ("mixer", "gmixer", "resmlp", "gmlp")
# static is export + prepare + convert: seconds per model on a busy machine
METHOD_PARAMS = ("weight-only", "dynamic", pytest.param("static", marks=pytest.mark.slow))

needs_torchao = pytest.mark.skipif(
    __import__("importlib").util.find_spec("torchao") is None,
    reason="torchao is not installed (pip install 'mlpmixer[int8]')",
)


def tiny(family: str = "mixer", seed: int = 0) -> torch.nn.Module:
    """A randomised 2-block model of ``family`` on 1-channel 8x8 images, 5 classes."""
    config = MixerConfig(
        family=family, img_size=(8, 8), patch_size=(2, 2), in_chans=1, num_classes=5,
        hidden_dim=32, num_blocks=2, tokens_mlp_dim=16, channels_mlp_dim=64,
    )  # fmt: skip
    return randomised(build_model(config), seed)


def images(count: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(count, 1, 8, 8, generator=torch.Generator().manual_seed(seed))
