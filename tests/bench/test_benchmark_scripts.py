"""The scripts of benchmarks/: what their --help says to a user."""

from __future__ import annotations

import ast
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
