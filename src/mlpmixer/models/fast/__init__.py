"""CPU speed machinery, beside the models: drop-in fast layers and the fused GELU kernel.

A model picks its layers once, at construction (``MlpMixer(config, fast=False)`` for the plain
ones; like timm's ``mlp_layer=``/``act_layer=``): `layer_set` gives `FAST` unless ``fast`` is
False, or None and the process default is off (`set_fast_layers`, or ``MLPMIXER_FAST=0`` in
the environment). The fast layers keep the plain layers' parameters and state dicts, so a
state dict moves freely between the two; inside, each path still steps aside where it does not
apply (other devices, compile/export/tracing/scripting/FX: `aside`). Which pieces run on
this machine is decided once per piece, dtype, mode (inference / training) and shape class,
and each layer resolves the answer at its first call in a case (`pieces`: a rule on the CPUs
they were measured on, a probe elsewhere, ``MLPMIXER_PIECES`` to change that;
``MLPMIXER_FUSED_GELU=0`` / ``MLPMIXER_ONEDNN=0`` switch single pieces off; every variable is
read when deciding, never per forward pass).

Modules: `layers` (the drop-ins), `gelu` (+ ``gelu_kernel.c``: the fused tanh-GELU as a
registered op), `kernel_cache` (building and verifying the kernel), `onednn` (oneDNN
products), `layouts` (bf16 training products in the layouts an emulating CPU is fast at),
`autocast_cache` (weights cast once under CPU autocast), `token_linear` (the token
products' forms), `aside` (when to step aside), `pieces` (which piece runs here, and why), `survey`
(the decisions for a model's shapes: ``mlpmixer info --fast``).
"""

from __future__ import annotations

from ..layers import PLAIN, LayerSet
from .gelu import GELU
from .layers import ChannelMlp, PatchEmbed, TokenMlp
from .pieces import switched_off

FAST = LayerSet(patch_embed=PatchEmbed, mlp=ChannelMlp, token_mlp=TokenMlp, act=GELU)

_default: bool | None = None


def set_fast_layers(enable: bool | None = True) -> None:
    """Whether models built from now on use `FAST` (None: back to ``MLPMIXER_FAST``)."""
    global _default
    _default = enable


def fast_layers_enabled() -> bool:
    """The process default: `set_fast_layers`, else ``MLPMIXER_FAST`` (default on)."""
    if _default is not None:
        return _default
    return not switched_off("MLPMIXER_FAST")


def layer_set(fast: bool | None = None) -> LayerSet:
    """`FAST` or the plain `LayerSet` (``fast=None``: the process default)."""
    return FAST if (fast_layers_enabled() if fast is None else fast) else PLAIN


__all__ = ["FAST", "fast_layers_enabled", "layer_set", "set_fast_layers"]
