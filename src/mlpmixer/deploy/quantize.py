"""`quantize`: a model of any family in int8, and the `QuantizedMixer` it returns."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .methods import check_method
from .plain import default_keep, has_free_linears, plain_copy


class QuantizedMixer(nn.Module):
    """A quantized Mixer: ``forward(images)`` (B, C, H, W) -> logits (B, num_classes).

    ``method``: how it was quantized; ``kept_in_float``: the modules left in float on top of
    the norms and activations (which no method quantizes); ``quantized``: the Linears that
    are int8; ``config``: the float model's config (preprocessing included), from which
    `storage.load_quantized` rebuilds it; ``calibration_images``: how many images fixed the
    activation ranges (static only, else 0); ``int8``: the marker export reads (it cannot
    import this package, which builds on it); ``activation_bits``: static's activation range,
    8 (0..255) or 7 (0..127, for CPUs without VNNI/AMX: `static.default_activation_bits`).
    """

    int8 = True

    def __init__(
        self,
        inner: nn.Module,
        method: str,
        config: Any,
        kept_in_float: Iterable[str],
        quantized: Iterable[str],
        calibration_images: int = 0,
        activation_bits: int = 8,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.method = method
        self.config = config
        self.kept_in_float = tuple(kept_in_float)
        self.quantized = tuple(quantized)
        self.calibration_images = calibration_images
        self.activation_bits = activation_bits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.inner(images)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the tokens before the head, (B, S, C): what `fewshot` reads."""
        return self._family_model().forward_features(images)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """(B, S, C) -> logits (B, num_classes), or the pooled (B, C) with ``pre_logits``."""
        return self._family_model().forward_head(tokens, pre_logits=pre_logits)

    def resize(self, *args: object, **kwargs: object) -> QuantizedMixer:
        """Refused: resizing rebuilds the token-mixing weights in float."""
        raise ConfigError(
            "an int8 model cannot be resized: its float weights are gone; resize the float "
            "checkpoint, then quantize it again"
        )

    def _family_model(self) -> Any:
        # weight-only and dynamic keep the family model (its Linears hold int8 weights);
        # static is one exported graph from images to logits, with no features to read
        if self.method != "static":
            return self.inner
        raise ConfigError(
            f"a {self.method} int8 model is one graph from images to logits and gives no "
            "features; use a weight-only or dynamic int8 model, or the float checkpoint"
        )

    def train(self, mode: bool = True) -> QuantizedMixer:
        """Inference only: ``eval()``/``train()`` leave the inner module as it is (an exported
        static graph refuses them; its dropout is already off)."""
        self.training = mode
        return self

    def describe(self) -> str:
        """One line: method, how many Linears are int8, what stays float."""
        kept = ", ".join(self.kept_in_float) or "nothing else"
        bits = f", {self.activation_bits}-bit activations" if self.method == "static" else ""
        return (
            f"{self.method} int8: {len(self.quantized)} layers int8{bits}; kept in float: "
            f"{kept} (and every norm, activation and residual add)"
        )


def quantize(
    model: nn.Module,
    method: str,
    calibration: torch.Tensor | None = None,
    keep_float: Iterable[str] | None = None,
    activation_bits: int | None = None,
) -> QuantizedMixer:
    """``model`` in int8 by ``method`` (``weight-only``, ``dynamic`` or ``static``).

    ``calibration``: normalised images (N, C, H, W) as the model takes them; required for
    ``static`` (they fix the activation ranges), unused otherwise. ``keep_float``: module
    names left in float (default `plain.default_keep`: the patch stem and the head; add
    Linears that `sensitivity.layer_sensitivity` shows to hurt). ``model`` itself is not
    changed. Static quantizes every Linear and convolution not kept (X86InductorQuantizer's
    choice); weight-only and dynamic only ``nn.Linear`` (torchao's), so a family whose mixing
    layers are 1x1 convolutions (AS-MLP, Wave-MLP, Hire-MLP) is refused for them
    (`ConfigError`): nothing of it would be int8. ``activation_bits`` (static): 8 or 7;
    default `static.default_activation_bits` of this CPU (7 without VNNI/AMX, where full-range
    int8 products saturate).
    """
    check_method(method)
    keep = default_keep(model) if keep_float is None else tuple(keep_float)
    plain = plain_copy(model)
    if method == "static":
        from .static import (
            ACTIVATION_BITS,
            default_activation_bits,
            quantize_static,
            quantized_layers,
        )

        if calibration is None or calibration.shape[0] == 0:
            raise ConfigError("static int8 needs calibration images (--calibration DATA)")
        bits = default_activation_bits() if activation_bits is None else activation_bits
        if bits not in ACTIVATION_BITS:
            raise ConfigError(f"activation bits must be 7 or 8, got {bits!r}")
        inner = quantize_static(plain, calibration, keep, reduce_range=bits == 7)
        done = quantized_layers(inner)
        return QuantizedMixer(
            inner, method, model.config, keep, done, calibration.shape[0], activation_bits=bits
        )
    from .weights import quantize_linears

    if not has_free_linears(plain, keep):
        family = getattr(model.config, "family", type(model).__name__)
        raise ConfigError(
            f"{method} int8 quantizes nn.Linear layers only (torchao), and this {family} model "
            f"has none outside those kept in float ({', '.join(keep)}): its mixing layers are "
            "convolutions; use --method static, which quantizes convolutions too"
        )
    done = quantize_linears(plain, method, keep)
    return QuantizedMixer(plain, method, model.config, keep, done)
