"""End to end: a library planted in the kernel cache never runs and never changes a prediction.

Before (issue 16, item 1): a shared library at ``$MLPMIXER_CACHE/ops/gelu_kernel-<hash>.so``
was loaded by every command: its constructor ran and its ``gelu_fwd_f32`` changed every output
(eval exit 0, top-1 0.10); a hanging ``$CC`` hung ``predict``. Here ``mlpmixer predict`` runs
as a user would, in its own process, against a cache holding a hostile library.

Issue 25 item 6: the same library with a matching ``.sha256`` beside it — all a plain digest
asks for — was loaded, its constructor run inside ``dlopen``. Tags are now keyed (HMAC under a
key outside the cache folder, see models/fast/kernel_cache.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mlpmixer import create_model

CC = shutil.which(os.environ.get("CC") or "cc") or shutil.which("gcc")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CC is None, reason="no C compiler: nothing is ever built"),
]

HOSTILE = """
#include <stdio.h>
#include <stdint.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen("MARKER", "w"); if (f) { fputs("ran", f); fclose(f); } }
#define K(s, T) \\
void gelu_fwd_##s(const T *x, T *y, int64_t n, int t) { for (int64_t i = 0; i < n; ++i) y[i] = 42; } \\
void gelu_bwd_##s(const T *g, const T *x, T *d, int64_t n, int t) { for (int64_t i = 0; i < n; ++i) d[i] = 42; }
K(f32, float)
K(bf16, uint16_t)
K(f64, double)
"""


def _predict(folder: Path, checkpoint: Path, env: dict[str, str]) -> tuple[list, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mlpmixer", "predict", str(folder), "--checkpoint", str(checkpoint),
         "--json", "--top-k", "3", "--out", str(folder.parent / "out")],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


@pytest.fixture
def setup(tmp_path):
    """A tanh-GELU model, three images, and a cache where the real kernel was built once."""
    model = create_model("mixer_t2_8", num_classes=10, in_chans=3, gelu="tanh")
    for p in model.parameters():  # non-zero head: predictions depend on every GELU
        p.data.normal_(0, 0.5)
    checkpoint = tmp_path / "model"
    model.save_pretrained(checkpoint)
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(images / f"{i}.png")
    env = {"MLPMIXER_CACHE": str(tmp_path / "cache"), "MLPMIXER_FUSED_GELU": "1",
           "XDG_CONFIG_HOME": str(tmp_path / "config")}  # fmt: skip
    reference, _ = _predict(images, checkpoint, {**env, "MLPMIXER_FUSED_GELU": "0"})
    _predict(images, checkpoint, env)  # builds the real kernel into the cache
    (so,) = (tmp_path / "cache" / "ops").glob("gelu_kernel-*.so")
    return images, checkpoint, env, reference, so


def _plant(so: Path, marker: Path) -> None:
    src = so.parent.parent / "hostile.c"
    src.write_text(HOSTILE.replace("MARKER", str(marker)))
    so.unlink()
    subprocess.run([CC, "-shared", "-fPIC", str(src), "-o", str(so)], check=True)


def _same(a: object, b: object) -> bool:
    """Equal structure and labels, numbers within float32 noise (the ATen path is the reference)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 1e-4
    return a == b


def test_predict_with_a_planted_library_neither_runs_it_nor_changes_outputs(setup, tmp_path):
    images, checkpoint, env, reference, so = setup
    marker = tmp_path / "constructor-ran"
    _plant(so, marker)
    out, stderr = _predict(images, checkpoint, env)
    assert not marker.exists(), "the planted library's constructor ran"
    assert _same(out, reference), (out, reference)
    assert "Traceback" not in stderr


def test_predict_with_a_planted_library_and_its_sha256_never_runs_it(setup, tmp_path):
    images, checkpoint, env, reference, so = setup
    marker = tmp_path / "constructor-ran"
    _plant(so, marker)
    digest = hashlib.sha256(so.read_bytes()).hexdigest()
    for suffix in (".sha256", ".hmac"):  # the old digest file, and a plain digest as the tag
        so.with_name(so.name + suffix).write_text(digest)
    out, stderr = _predict(images, checkpoint, env)
    assert not marker.exists(), "the planted library's constructor ran"
    assert _same(out, reference), (out, reference)
    assert "warning:" not in stderr  # rebuilt over and used, quietly


def test_predict_in_a_shared_cache_folder_falls_back_with_one_warning(setup, tmp_path):
    images, checkpoint, env, reference, so = setup
    marker = tmp_path / "constructor-ran"
    _plant(so, marker)
    so.with_name(so.name + ".sha256").write_text(hashlib.sha256(so.read_bytes()).hexdigest())
    so.parent.chmod(0o777)  # a shared folder: anyone could have written file and digest
    out, stderr = _predict(images, checkpoint, env)
    assert not marker.exists()
    assert _same(out, reference)
    assert stderr.count("warning:") == 1 and "writable by others" in stderr, stderr


def test_predict_with_a_hanging_compiler_finishes(setup, tmp_path):
    images, checkpoint, _, reference, _ = setup
    cc = tmp_path / "hang-cc"
    cc.write_text("#!/bin/sh\nsleep 600\n")
    cc.chmod(0o755)
    env = {"MLPMIXER_CACHE": str(tmp_path / "other-cache"), "CC": str(cc),
           "MLPMIXER_CC_TIMEOUT": "3", "MLPMIXER_FUSED_GELU": "1"}  # fmt: skip
    out, stderr = _predict(images, checkpoint, env)
    assert _same(out, reference)
    assert stderr.count("warning:") == 1 and "MLPMIXER_CC_TIMEOUT" in stderr, stderr
