"""What a built wheel carries: the recipes of configs/ (mlpmixer/configs) and the GELU kernel source."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_wheel_ships_every_recipe(tmp_path):
    source = tmp_path / "src-tree"
    source.mkdir()
    keep = ("pyproject.toml", "README.md", "LICENSE", "src", "configs")
    for name in keep:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(
                path,
                source / name,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )
        elif path.exists():
            shutil.copy2(path, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "dist"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("mlpmixer-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for recipe in sorted((ROOT / "configs").glob("*.yaml")):
        assert f"mlpmixer/configs/{recipe.name}" in names
    # models/fast/gelu.py compiles this source on first use; a wheel without it falls back to ATen
    assert "mlpmixer/models/fast/gelu_kernel.c" in names
