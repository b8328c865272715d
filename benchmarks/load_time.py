"""Time to load a Mixer-B/16 (60M parameters) from the native format, and to resize it.

Issue 9 item 11: loading used to initialise every weight randomly and then overwrite it.
Run from the repository root:  python benchmarks/load_time.py [--repeats 3]
Prints one JSON line: median seconds for save-free `load_model`, `from_pretrained`, `resize`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

import mlpmixer
from mlpmixer import MixerConfig, MlpMixer


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = MlpMixer(MixerConfig())  # Mixer-B/16 at 224
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "b16"
        model.save(folder)
        result = {
            "threads": torch.get_num_threads(),
            "load_model_s": _median_seconds(lambda: mlpmixer.load_model(folder), args.repeats),
            "from_pretrained_s": _median_seconds(
                lambda: MlpMixer.from_pretrained(folder), args.repeats
            ),
            "resize_448_s": _median_seconds(lambda: model.resize(448), args.repeats),
            "init_s": _median_seconds(lambda: MlpMixer(MixerConfig()), args.repeats),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
