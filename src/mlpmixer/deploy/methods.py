"""The int8 methods (for the CPU), fp8 (for GPUs), and the layers every method keeps in float.

* ``weight-only``: int8 weights (one scale per output row), float activations and products
  (torchao ``Int8WeightOnlyConfig``): 4x smaller Linears, no calibration.
* ``dynamic``: int8 weights and int8 activations whose scales are computed at run time, one
  per token row (torchao ``Int8DynamicActivationInt8WeightConfig``): int8 products, no
  calibration.
* ``static``: int8 weights (per output channel) and int8 activations with one scale and zero
  point per tensor fixed by calibration on the user's images (PT2E with
  ``X86InductorQuantizer``): what oneDNN's int8 kernels run once compiled.
* ``fp8`` (GPUs of compute capability >= 8.9 only, `GPU_METHODS`): float8 weights per output
  row and activations per token row (torchao), built from the float checkpoint at load time,
  never saved (`fp8`'s docstring says why); what is float above is bf16 there.

Kept in float by every method: LayerNorm / Affine, GELU, the residual adds (no method
quantizes them), the patch stem (a convolution on raw pixels, 1-3 input channels: little
work, most error) and the classifier head (the logits are what is compared).
"""

from __future__ import annotations

from ..choices import GPU_METHODS, INT8_METHODS

__all__ = ["ALWAYS_FLOAT", "DEFAULT_KEEP", "GPU_METHODS", "METHODS", "check_method"]

# the method names are written once, in `mlpmixer.choices`: the CLI lists them without torch
METHODS = INT8_METHODS
ALWAYS_FLOAT = ("norms", "activations", "residual adds")  # no method quantizes these
DEFAULT_KEEP = ("stem.proj", "head")  # module names kept in float unless asked otherwise


def check_method(method: str) -> str:
    """``method`` if it is one of `METHODS`; a `ConfigError` naming it otherwise."""
    from ..errors import ConfigError

    if method not in METHODS:
        raise ConfigError(f"unknown int8 method {method!r}; choose one of {', '.join(METHODS)}")
    return method
