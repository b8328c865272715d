"""The scripts of benchmarks/: what their --help says to a user."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_help_mentions_no_internal_issue_number(script):
    # argparse's description is the docstring's first paragraph (mixer_suite said "issue 5")
    first = (ast.get_docstring(ast.parse(script.read_text())) or "").split("\n\n")[0]
    assert not re.search(r"\bissue[- ]?#?\d", first, re.IGNORECASE), first


def test_mixer_suite_help_runs_and_describes_the_suite():
    out = subprocess.run(
        [sys.executable, str(BENCHMARKS / "mixer_suite.py"), "--help"],
        capture_output=True, text=True, timeout=300, check=True,
    ).stdout  # fmt: skip
    assert "The performance suite: Mixer-S/16" in out and "issue" not in out.lower()


def test_vs_timm_table_lists_every_cell_and_marks_the_slow_ones(tmp_path):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import vs_timm_table
    finally:
        sys.path.remove(str(BENCHMARKS))
    run = {"model": "mixer_s16_224", "precision": "bf16-autocast", "mode": "infer",
           "vs": {"timm": {"cpu": 1.5}, "timm-erf": {"cpu": 0.69}}, "gemm_share_cpu_time": 1.7,
           "cpu_ms": {"mlpmixer": 170.0, "timm-erf": 150.0, "gemm": 100.0},
           "steps": {"mlpmixer": 2}}  # fmt: skip
    machine = {"threads": 1, "isa_caps": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"machine": machine, "runs": [run]}))
    lines = vs_timm_table.table(vs_timm_table.cells([path]), 1.05).splitlines()
    assert len(lines) == 2 + 2 * 3 * 2 * 2 * 2  # header + models × CPUs × threads × dtypes × modes
    (row,) = [line for line in lines if "run.json" in line]
    assert (
        "| S16 | AVX2 caps | 1 | bf16-autocast | infer | 1.50x | **0.69x** | 1.70 / 1.50 |" in row
    )
    assert sum("not measured" in line for line in lines) == len(lines) - 3


def test_vs_timm_table_takes_each_cell_from_the_later_date_not_the_later_file(tmp_path):
    # a fresh checkout gives every result file the same modification time: the JSON's date
    # decides which run of a cell the table shows, not the file's age or name
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import vs_timm_table
    finally:
        sys.path.remove(str(BENCHMARKS))
    machine = {"threads": 1, "isa_caps": {"ONEDNN_MAX_CPU_ISA": "AVX2"}}
    paths = []
    for name, date, ratio in (("b-new.json", "2026-12-07T23:00:00+00:00", 7.7),
                              ("a-old.json", "2026-12-07T19:00:00+00:00", 0.96)):  # fmt: skip
        run = {"model": "mixer_s16_224", "precision": "bf16-autocast", "mode": "train",
               "vs": {"timm": {"cpu": ratio}}, "cpu_ms": {}, "steps": {"mlpmixer": 1}}  # fmt: skip
        path = tmp_path / name
        path.write_text(json.dumps({"date": date, "machine": machine, "runs": [run]}))
        paths.append(path)
    os.utime(paths[0], (1_000, 1_000))  # the later-dated file is the older one on disk
    os.utime(paths[1], (2_000, 2_000))
    (run,) = vs_timm_table.cells(paths).values()
    assert run["file"] == "b-new.json"


def test_vs_timm_switched_off_runs_a_step_with_the_piece_off_then_restores(monkeypatch):
    """``--switched-off VAR``: ours with ``VAR=0`` during its step only (before/after a fast
    piece in the same interleaved rounds)."""
    import os

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import vs_timm

    monkeypatch.delenv("MLPMIXER_LAYOUTS", raising=False)
    seen = []
    vs_timm.switched_off(
        lambda: seen.append(os.environ.get("MLPMIXER_LAYOUTS")), "MLPMIXER_LAYOUTS"
    )()
    assert seen == ["0"] and "MLPMIXER_LAYOUTS" not in os.environ
    args = vs_timm.parse_args(["--switched-off", "MLPMIXER_LAYOUTS", "--switched-off", "X"])
    assert args.switched_off == ["MLPMIXER_LAYOUTS", "X"]


def test_vs_timm_table_takes_the_later_run_of_a_cell_by_its_date_not_the_file_mtime(tmp_path):
    # a git checkout gives both files one mtime: the table showed whichever sorted last by name
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import vs_timm_table
    finally:
        sys.path.remove(str(BENCHMARKS))
    machine = {"threads": 1, "isa_caps": {}}
    paths = []
    for name, date, ratio in (("b-later.json", "2026-12-07T20:11:43+00:00", 1.08),
                              ("c-earlier.json", "2026-12-07T19:54:08+00:00", 0.96)):  # fmt: skip
        run = {"model": "mixer_b16_224", "precision": "fp32", "mode": "train",
               "vs": {"timm": {"cpu": ratio}}, "cpu_ms": {"mlpmixer": 1.0}, "steps": {"mlpmixer": 2}}  # fmt: skip
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps({"date": date, "machine": machine, "runs": [run]}))
    found = vs_timm_table.cells(paths)
    assert found[("mixer_b16_224", "native", 1, "fp32", "train")]["file"] == "b-later.json"
