"""benchmarks/load_time.py --build: worker processes, interleaved rounds, the JSON it writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("load_time", ROOT / "benchmarks" / "load_time.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_build_mode_times_ours_against_a_baseline_and_names_the_cpu(tmp_path, capsys):
    out = tmp_path / "build.json"
    argv = ["--build", "--models", "mixer_t2_8", "--rounds", "2", "--no-timm",
            "--baseline-src", str(ROOT / "src"), "--out", str(out)]  # fmt: skip
    assert _script().main(argv) == 0
    result = json.loads(out.read_text())
    assert result["rounds"] == 2 and result["machine"]["cpu"] and "cpu_family" in result["machine"]
    row = result["models"]["mixer_t2_8"]
    assert len(row["ours_cpu_s"]) == len(row["baseline_cpu_s"]) == 2
    assert row["baseline_over_ours"] > 0 and "timm_median_s" not in row
    assert "| mixer_t2_8 |" in capsys.readouterr().out


def test_the_table_leaves_unmeasured_cells_empty():
    rows = {"m": {"ours_median_s": 0.5, "timm_median_s": 0.6, "timm_over_ours": 1.2}}
    line = _script().markdown(rows).splitlines()[-1]
    assert line == "| m | 0.500 | 0.600 | 1.20x | - | - |"
