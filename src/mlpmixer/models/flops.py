"""Analytic cost of a Mixer from its config: parameters and multiply-adds per image.

Every layer is a dense product, so counts are exact: the stem is S·(in·P²)·C MACs; each
block adds 2·C·S·D_S (token mixing) and 2·S·C·D_C (channel mixing); the head C·classes.
Mixer-B/16 at 224: 12.6 G multiply-adds, as in the paper. FLOPs = 2 × MACs. Norms, GELU,
bias and residual adds are left out (under 1% of the total, and not matmul work).
"""

from __future__ import annotations

from .config import MixerConfig


def macs_per_image(config: MixerConfig, include_head: bool = True) -> int:
    """Multiply-accumulates of one forward pass of one image."""
    s, c = config.num_tokens, config.hidden_dim
    stem = s * config.in_chans * config.patch_size[0] * config.patch_size[1] * c
    block = 2 * c * s * config.tokens_mlp_dim + 2 * s * c * config.channels_mlp_dim
    head = c * config.num_classes if include_head else 0
    return stem + config.num_blocks * block + head


def flops_per_image(config: MixerConfig, include_head: bool = True) -> int:
    """Forward FLOPs of one image (2 per multiply-add). Training step ≈ 3× this."""
    return 2 * macs_per_image(config, include_head)


def param_count(config: MixerConfig, include_head: bool = True) -> int:
    """Number of parameters, without building the model."""
    s, c = config.num_tokens, config.hidden_dim
    d_s, d_c = config.tokens_mlp_dim, config.channels_mlp_dim
    stem = config.in_chans * config.patch_size[0] * config.patch_size[1] * c + c
    block = 2 * 2 * c + (2 * s * d_s + d_s + s) + (2 * c * d_c + d_c + c)
    head = (c + 1) * config.num_classes if include_head else 0
    return stem + config.num_blocks * block + 2 * c + head
