"""Where int8 cannot help (no method beats fp32 on this machine): what to use instead.

Two candidates, both measured rather than assumed: the fp32 checkpoint as it is (our fast
layers: what every command runs by default) and ONNX Runtime int8 (``mlpmixer export --int8
dynamic``: its own int8 kernels, MLAS, 2× our fp32 at batch 32 on the docs' mnist5k model
with VNNI, docs/deploy.md; MLAS ignores the oneDNN/ATen ISA caps, and issue 29 measured it at
1.17× our fp32 on an AVX2-only Zen 1, so it is timed here, never assumed). ONNX Runtime int8
is advised only where it measured faster than our fp32 at every batch size judged.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from ..models.base import MlpFamilyModel
from .choose import describe_ratios
from .speed import best_times, speedups


def onnx_int8_session(model: MlpFamilyModel, folder: Path):  # -> Callable[[Tensor], Tensor]
    """``model`` as an ONNX Runtime int8 (dynamic, per-channel) session on one thread, as a
    function of images; `MissingExtraError` without onnx/onnxruntime."""
    from ..export.onnx import _require, export_onnx
    from ..export.onnx_int8 import _quantize

    ort = _require("onnxruntime")
    cfg = model.config
    fp32, int8 = folder / "fp32.onnx", folder / "int8.onnx"
    export_onnx(model, fp32, torch.zeros(2, cfg.in_chans, *cfg.img_size), None)
    _quantize(fp32, int8, "dynamic", None)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(int8), options, providers=["CPUExecutionProvider"])
    return lambda x: torch.from_numpy(session.run(None, {"images": x.numpy()})[0])


def onnx_int8_ratios(model: MlpFamilyModel, batch_sizes: Iterable[int]) -> dict[int, float] | str:
    """ONNX Runtime int8's speed-up over ``model`` in fp32 by batch size, or why it could not
    be measured (onnxruntime or the exporter missing, a model the exporter refuses)."""
    from ..errors import MixerError

    cfg = model.config
    with tempfile.TemporaryDirectory() as tmp:
        try:
            session = onnx_int8_session(model.eval(), Path(tmp))
        except ImportError:  # MissingExtraError included
            return "pip install 'mlpmixer[export]'"
        except MixerError as error:
            return str(error)
        ratios = {}
        for batch in sorted(set(batch_sizes)):
            images = torch.randn(batch, cfg.in_chans, *cfg.img_size)
            times = best_times({"fp32": model, "onnx": session}, images, rounds=3,
                               calls=max(3, 32 // batch))  # fmt: skip
            ratios[batch] = speedups(times, "fp32")["onnx"]
    return ratios


def advice(checkpoint: str, ratios: Mapping[int, float] | str) -> str:
    """What to use instead of a torch int8 model, given ONNX Runtime int8's measured
    ``ratios`` (a string: why it was not measured)."""
    export = f"mlpmixer export --checkpoint {checkpoint} --int8 dynamic --out model-int8.onnx"
    fp32 = "keep the fp32 checkpoint (its fast path is what every command runs)"
    if isinstance(ratios, str):
        return f"{fp32}; ONNX Runtime int8 was not measured ({ratios})"
    if min(ratios.values()) >= 1.0:
        return f"use ONNX Runtime int8 instead, measured {describe_ratios(ratios)}: {export}"
    return f"{fp32}; ONNX Runtime int8 is no faster either (measured {describe_ratios(ratios)})"
