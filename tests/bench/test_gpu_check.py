"""benchmarks/gpu_check.py and gpu_check.sh off the GPU: their options and help, the targets,
the JSON's shape (dry run), test counts, the summary (issue 25 item 7: `make gpu-check` stays
ready for the first GPU lent)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0"
failures="1" skipped="2" tests="5"><testcase classname="tests.test_cuda" name="test_a"/>
<testcase classname="tests.test_cuda" name="test_b"><failure message="x"/></testcase>
</testsuite></testsuites>"""


def _script():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(impl, mode, compiled, ms, mfu):
    return {"impl": impl, "mode": mode, "compiled": compiled, "step_ms": ms, "mfu": mfu}


def test_the_targets_are_the_issues():
    assert _script().TARGETS == {"mfu_infer": 0.65, "mfu_train": 0.45, "vs_timm_compiled": 1.05}


def test_the_python_check_has_help_and_refuses_to_run_without_a_gpu(capsys):
    gpu = _script()
    with pytest.raises(SystemExit) as done:
        gpu.parse_args(["--help"])
    assert done.value.code == 0 and "--dry-run" in capsys.readouterr().out
    if gpu.torch.cuda.is_available():
        pytest.skip("a GPU is here: the check would run")
    with pytest.raises(SystemExit) as done:
        gpu.parse_args([])
    assert done.value.code == 2 and "no CUDA device" in capsys.readouterr().err
    args = gpu.parse_args(["--dry-run"])  # the CPU stand-in: tiny model, no compile
    assert (args.device, args.model, args.no_compile) == ("cpu", "mixer_t4_28", True)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_shell_script_has_help_and_refuses_unknown_options():
    script = str(ROOT / "benchmarks" / "gpu_check.sh")
    shown = subprocess.run(["bash", script, "--help"], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and "Usage:" in shown.stdout and "1.05x" in shown.stdout
    assert "set -euo" not in shown.stdout  # the header only
    wrong = subprocess.run(["bash", script, "--gpu"], capture_output=True, text=True, timeout=30)
    assert wrong.returncode == 2 and "usage:" in wrong.stderr


def test_makefile_runs_the_shell_script():
    makefile = (ROOT / "Makefile").read_text()
    assert "gpu-check:" in makefile and "bash benchmarks/gpu_check.sh" in makefile


def test_summary_takes_our_best_variant_against_timm_eager_and_compiled():
    gpu = _script()
    rows = [
        _row("mlpmixer", "infer", False, 100.0, 0.50),
        _row("mlpmixer", "infer", True, 80.0, 0.70),
        _row("timm", "infer", False, 120.0, 0.4),
        _row("timm", "infer", True, 88.0, 0.6),
        _row("mlpmixer", "train", False, 300.0, 0.40),
        _row("timm", "train", False, 330.0, 0.3),
    ]
    s = gpu.summarize(rows)
    assert s["infer"]["best"] == "compiled" and s["infer"]["mfu"] == 0.70
    assert s["infer"]["vs_timm"] == pytest.approx(1.5) and s["infer"]["vs_timm_compiled"] == 1.1
    assert s["infer"]["met"] == {"mfu": True, "vs_timm_compiled": True}
    assert s["train"]["vs_timm_compiled"] is None  # not measured: not claimed
    assert s["train"]["met"] == {"mfu": False, "vs_timm_compiled": None}


def test_test_counts_come_from_the_junit_report(tmp_path):
    path = tmp_path / "t.xml"
    path.write_text(JUNIT)
    counts = _script().test_counts(path)
    assert counts == {"passed": 2, "failed": 1, "errors": 0, "skipped": 2,
                      "failed_tests": ["tests.test_cuda::test_b"]}  # fmt: skip


def test_dry_run_writes_one_json_of_the_full_shape(tmp_path):
    out, junit = tmp_path / "check.json", tmp_path / "t.xml"
    junit.write_text(
        JUNIT.replace('failures="1"', 'failures="0"').replace('<failure message="x"/>', "")
    )
    assert _script().main(["--dry-run", "--junit", str(junit), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["check"] == "gpu-check" and result["dry_run"] is True
    assert {"machine", "matmul_peak", "tests", "runs", "summary", "date"} <= set(result)
    assert result["tests"]["passed"] == 3 and result["matmul_peak"]["dtype"] == "bf16"
    assert {(r["impl"], r["mode"]) for r in result["runs"]} >= {
        ("mlpmixer", "infer"),
        ("mlpmixer", "train"),
    }
    for row in result["runs"]:
        assert row["step_ms"] > 0 and row["mfu"] > 0 and row["compiled"] is False
    assert set(result["summary"]) == {"targets", "infer", "train"}
    # the fp8 step (issue 29 item 4) ran up to its refusal, then measured a bf16 stand-in
    step = result["fp8"]
    assert step["measured"] is False and "compute capability >= 8.9" in step["skipped"]
    assert step["stand_in"] and [row["compiled"] for row in step["rows"]] == [False]
    row = step["rows"][0]
    assert row["batch"] == 2 and row["bf16_ms"] > 0 and row["fp8_ms"] > 0
    assert row["top1_agreement"] == 1.0 and row["max_abs_dlogit"] == 0.0  # a copy of itself
    assert row["max_abs_logit"] > 0  # the head is random: zero logits would compare nothing


def test_a_failing_fp8_step_keeps_the_json_and_fails_the_check(tmp_path, monkeypatch):
    gpu = _script()
    monkeypatch.setattr(gpu, "time_variant", lambda *args: [])  # the bf16 rows: not the point

    def broken(model, args):
        raise RuntimeError("CUBLAS_STATUS_NOT_SUPPORTED")

    monkeypatch.setattr(gpu, "fp8_step", broken)
    out = tmp_path / "check.json"
    assert gpu.main(["--dry-run", "--out", str(out)]) == 1
    result = json.loads(out.read_text())
    assert result["fp8"]["error"] == "RuntimeError: CUBLAS_STATUS_NOT_SUPPORTED"


def test_on_a_gpu_without_fp8_the_step_is_skipped_with_the_reason(monkeypatch):
    gpu = _script()
    monkeypatch.setattr(gpu.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(gpu.torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(gpu.torch.cuda, "get_device_capability", lambda device=None: (8, 0))
    monkeypatch.setattr(gpu.torch.cuda, "get_device_name", lambda device=None: "NVIDIA A100")
    args = gpu.parse_args(["--no-compile"])  # a GPU "is here": the real settings
    step = gpu.fp8_step(gpu.create_model("mixer_t4_28"), args)  # nothing is moved to the GPU
    assert step == {"measured": False, "layers": {}, "skipped": step["skipped"]}
    assert "NVIDIA A100 is 8.0" in step["skipped"] and "use bf16" in step["skipped"]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_the_shell_script_dry_run_runs_the_cuda_tests_and_the_check(tmp_path):
    results = set((ROOT / "benchmarks" / "results").glob("gpu-check-*"))
    env = {"PATH": "/usr/bin:/bin", "VENV": str(Path(sys.executable).parents[1]),
           "TMPDIR": str(tmp_path)}  # fmt: skip
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    # without OUT, the stand-in's JSON goes to a temporary file, never into results/
    assert set((ROOT / "benchmarks" / "results").glob("gpu-check-*")) == results
    (out,) = tmp_path.glob("gpu-check-dry-run-*.json")
    result = json.loads(out.read_text())
    assert result["dry_run"] is True and result["tests"] is not None
