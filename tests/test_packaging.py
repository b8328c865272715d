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
    assert "mlpmixer/data/jpeg_crop.c" in names  # TF's crop decode, built on first use


def test_help_of_the_package_is_short_and_covers_it():
    """Before: help(mlpmixer) was 7,217 lines (every inherited nn.Module method of each class)
    with a docstring about models and checkpoints only."""
    import pydoc

    import mlpmixer

    text = pydoc.render_doc(mlpmixer, renderer=pydoc.plaintext)
    assert len(text.splitlines()) < 200
    for topic in ("create_model", "load_model", "mlpmixer.train()", "mlpmixer.data", "MixerError"):
        assert topic in mlpmixer.__doc__, topic
    assert mlpmixer.MlpMixer and mlpmixer.MixerError  # still importable from the top


def test_benchmark_help_speaks_to_users_not_of_internal_issues():
    import re
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "mixer_suite.py"
    shown = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "performance suite" in shown and not re.search(r"issue[ -]?\d", shown), shown
