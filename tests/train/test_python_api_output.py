"""``mlpmixer.train(...)`` from Python says what it does, as the CLI does (issue 27 item 9).

Before: a script or notebook that set up no logging saw nothing at all (the library logs
INFO records, which Python drops without a handler): no first line, no progress, for the
whole run. Now the CLI's handler (`mlpmixer.progress.StderrLines`) shows them on stderr for
the call, and ``progress=False`` silences them. Each case runs in a fresh interpreter, as a
user's script would (pytest installs logging handlers of its own).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import sys
import mlpmixer
# scale_warmup=false: a 1-epoch run of the digits recipe would otherwise warn that its warmup
# is scaled (warnings are shown even with progress=False)
result = mlpmixer.train(overrides=["train.epochs=1", "run.out={out}", "run.plot=false",
                                   "run.tensorboard=false", "schedule.scale_warmup=false"]{extra})
print("top1", result.summary["test_top1"])
"""


def _stderr(tmp_path, extra: str = "") -> tuple[str, str]:
    tmp_path.mkdir(exist_ok=True)
    code = SCRIPT.format(out=tmp_path / "run", extra=extra)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr


@pytest.mark.slow
def test_a_script_sees_the_first_line_and_progress_and_can_silence_them(tmp_path):
    out, err = _stderr(tmp_path)
    assert "top1" in out
    first = next(line for line in err.splitlines() if "training " in line)
    assert "parameters) on digits: 1438 train / 359 test images" in first
    assert "batch size 64, 1 epochs = 22 steps" in first
    assert "... " in err and "epoch 1/1" in err, err  # a progress line (not a terminal)
    out, err = _stderr(tmp_path / "quiet", ", progress=False")
    assert "top1" in out and err == ""


def test_in_a_jupyter_kernel_the_run_shows_a_bar(monkeypatch):
    """A notebook's stderr is no terminal, yet it shows a bar (rich's widget); without
    ipywidgets rich would show only a warning, so the run logs progress lines there."""
    import io
    import types

    from mlpmixer.train import logs
    from mlpmixer.train.logs import Progress

    assert Progress("auto", 50, stream=io.StringIO()).mode == "log"
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    monkeypatch.setitem(sys.modules, "ipywidgets", types.ModuleType("ipywidgets"))
    assert Progress("auto", 50).mode == "bar"
    assert Progress("none", 50).mode == "none"  # progress=False stays silent there too
    monkeypatch.setattr(logs, "notebook_widgets", lambda: False)
    assert Progress("auto", 50).mode == "log"
