"""Load the golden outputs of big_vision's own ops (tests/fixtures/bigvision/*.npz).

benchmarks/bigvision_goldens.py writes them: each distinct array once (images as PNG bytes),
with ``keys``/``index`` saying which key holds which.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

import numpy as np
from PIL import Image

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bigvision"


@functools.cache
def goldens(stem: str) -> dict[str, np.ndarray]:
    """``{key: array}`` of ``tests/fixtures/bigvision/{stem}.npz``."""
    with np.load(FIXTURES / f"{stem}.npz") as data:
        stored = {name: data[name] for name in data.files}
    out = {}
    for key, i in zip(stored["keys"], stored["index"], strict=True):
        if f"png|{i}" in stored:
            out[str(key)] = np.asarray(Image.open(io.BytesIO(stored[f"png|{i}"].tobytes())))
        else:
            out[str(key)] = stored[f"array|{i}"]
    return out
