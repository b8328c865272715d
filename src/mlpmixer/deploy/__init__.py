"""Deployment: int8 Mixers on CPU, fp8 on GPUs (issue 29).

One concept per module: `methods` (the method names and what each keeps in float), `extra`
(the optional torchao dependency), `plain` (the float model the quantizers start from),
`weights` (torchao weight-only and dynamic int8), `static` (PT2E static int8 with
calibration), `quantize` (the entry point and the `QuantizedMixer` it returns), `storage`
(the pickle-free file format: safetensors + a JSON manifest), `calibration` (images from a
data set), `accuracy` (quantized against fp32), `sensitivity` (which layers hurt, by kind), `speed`
(measured ratios against fp32), `choose` (``--method auto``) and `fp8` (fp8 on GPUs of compute
capability >= 8.9, and what to use where neither fp8 nor int8 helps).
"""

from __future__ import annotations

from .methods import METHODS
from .quantize import QuantizedMixer, quantize
from .storage import FORMAT_NAME, detect, load_quantized, save_quantized

__all__ = [
    "FORMAT_NAME",
    "METHODS",
    "QuantizedMixer",
    "detect",
    "load_quantized",
    "quantize",
    "save_quantized",
]
