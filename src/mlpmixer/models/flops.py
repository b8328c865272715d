"""Analytic cost of a family model from its config: parameters and multiply-adds per image.

Every layer is a dense product, so counts are exact. Shapes: S tokens, C channels, D_S / D_C
the token / channel MLP widths (for gMixer the first layer's, twice the gated width; for
gMLP D = ``channels_mlp_dim``). Per block:

* Mixer:  2·C·S·D_S (token MLP) + 2·S·C·D_C (channel MLP);
* gMixer: C·S·D_S·3/2 + S·C·D_C·3/2 (second layers read D/2);
* ResMLP: C·S² (one token Linear) + 2·S·C·D_C;
* gMLP:   S·C·D (fc1) + (D/2)·S² (spatial gate) + S·(D/2)·C (fc2).

Plus the stem S·(in·P²)·C and the head C·classes. Mixer-B/16 at 224: 12.6 G multiply-adds, as
in the paper. FLOPs = 2 × MACs. Norms, activations, gating products, bias and residual adds
are left out (about 1% of the total, and not matmul work).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: config.py imports this module to bound model sizes
    from .config import MixerConfig


def _block_macs(config: MixerConfig) -> int:
    s, c = config.num_tokens, config.hidden_dim
    d_s, d_c = config.tokens_mlp_dim, config.channels_mlp_dim
    if config.family == "mixer":
        return 2 * c * s * d_s + 2 * s * c * d_c
    if config.family == "gmixer":
        return c * s * (d_s + d_s // 2) + s * c * (d_c + d_c // 2)
    if config.family == "resmlp":
        return c * s * s + 2 * s * c * d_c
    return s * c * d_c + d_c // 2 * s * s + s * d_c // 2 * c  # gmlp


def _linear_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def _block_params(config: MixerConfig) -> int:
    s, c = config.num_tokens, config.hidden_dim
    d_s, d_c = config.tokens_mlp_dim, config.channels_mlp_dim
    if config.family == "mixer":  # two LayerNorms, two MLPs
        return (
            4 * c
            + _linear_params(s, d_s)
            + _linear_params(d_s, s)
            + _linear_params(c, d_c)
            + _linear_params(d_c, c)
        )
    if config.family == "gmixer":
        return (
            4 * c
            + _linear_params(s, d_s)
            + _linear_params(d_s // 2, s)
            + _linear_params(c, d_c)
            + _linear_params(d_c // 2, c)
        )
    if config.family == "resmlp":  # two Affines, two LayerScales
        return 6 * c + _linear_params(s, s) + _linear_params(c, d_c) + _linear_params(d_c, c)
    # gmlp: LayerNorm, fc1, the gate's LayerNorm over D/2 and S x S projection, fc2
    return 2 * c + _linear_params(c, d_c) + d_c + _linear_params(s, s) + _linear_params(d_c // 2, c)


def macs_per_image(config: MixerConfig, include_head: bool = True) -> int:
    """Multiply-accumulates of one forward pass of one image."""
    s, c = config.num_tokens, config.hidden_dim
    stem = s * config.in_chans * config.patch_size[0] * config.patch_size[1] * c
    head = c * config.num_classes if include_head else 0
    return stem + config.num_blocks * _block_macs(config) + head


def flops_per_image(config: MixerConfig, include_head: bool = True) -> int:
    """Forward FLOPs of one image (2 per multiply-add). Training step ≈ 3× this."""
    return 2 * macs_per_image(config, include_head)


def param_count(config: MixerConfig, include_head: bool = True) -> int:
    """Number of parameters, without building the model."""
    c = config.hidden_dim
    stem = config.in_chans * config.patch_size[0] * config.patch_size[1] * c + c
    head = (c + 1) * config.num_classes if include_head else 0
    return stem + config.num_blocks * _block_params(config) + 2 * c + head
