"""Analytic cost of a model from its config: parameters and multiply-adds per image.

Each family declares its own formulas in its `FamilySpec` (``params``, ``macs``); the
functions here look them up, so an unknown family is a `ConfigError` naming it, never another
family's number. The Mixer families share the isotropic shape ``stem -> N blocks -> norm ->
head`` on S tokens of C channels: `stacked_params` / `stacked_macs` add stem, norm and head
to a family's per-block count (their model files give the blocks'). Every layer is a dense
product, so counts are exact. Mixer-B/16 at 224: 12.6 G multiply-adds, as in the paper.
FLOPs = 2 × MACs. Norms, activations, gating products, bias and residual adds are left out
(about 1% of the total, and not matmul work).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .spec import family_spec

if TYPE_CHECKING:  # annotations only: config.py imports this module to bound model sizes
    from .config import MixerConfig


def linear_params(n_in: int, n_out: int) -> int:
    """Weight and bias of a Linear(n_in, n_out)."""
    return n_in * n_out + n_out


def stacked_macs(
    config: MixerConfig, block_macs: Callable[[MixerConfig], int], include_head: bool = True
) -> int:
    """MACs of an isotropic model: stem S·(in·P²)·C, N blocks, head C·classes."""
    s, c = config.num_tokens, config.hidden_dim
    stem = s * config.in_chans * config.patch_size[0] * config.patch_size[1] * c
    head = c * config.num_classes if include_head else 0
    return stem + config.num_blocks * block_macs(config) + head


def stacked_params(
    config: MixerConfig, block_params: Callable[[MixerConfig], int], include_head: bool = True
) -> int:
    """Parameters of an isotropic model: stem, N blocks, a final norm (2·C), head."""
    c = config.hidden_dim
    stem = config.in_chans * config.patch_size[0] * config.patch_size[1] * c + c
    head = (c + 1) * config.num_classes if include_head else 0
    return stem + config.num_blocks * block_params(config) + 2 * c + head


def macs_per_image(config: Any) -> int:
    """Multiply-accumulates of one forward pass of one image (the family's formula)."""
    return family_spec(config.family).macs(config)


def flops_per_image(config: Any) -> int:
    """Forward FLOPs of one image (2 per multiply-add). Training step ≈ 3× this."""
    return 2 * macs_per_image(config)


def param_count(config: Any, include_head: bool = True) -> int:
    """Number of parameters, without building the model (the family's formula)."""
    return family_spec(config.family).params(config, include_head=include_head)
