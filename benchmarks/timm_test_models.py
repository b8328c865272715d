"""Run timm's own tests/test_models.py on our models and on timm's, side by side.

timm's pip package does not ship its tests, and timm's code is not ours to commit, so the
file is fetched by hand (timm's repository, tests/test_models.py, e.g. at the release's tag)
and passed here. tests/timm_adapter.py registers, for each family, our small model
(``mlpmixer_<family>_t8_32``) and timm's at the same shape (``mlp_mixer_<family>_t8_32``)
in timm's registry; timm's file is run filtered to those names; the outcomes are written as
one JSON with the counts for ours and for timm's. Without the file it says so and exits 0.

    git -C TIMM_REPO show HEAD:tests/test_models.py > /tmp/timm-test-models.py
    .venv/bin/python benchmarks/timm_test_models.py /tmp/timm-test-models.py \
        --source "huggingface/pytorch-image-models@COMMIT" \
        --out benchmarks/results/timm-test-models.json

timm must be installed (``pip install --no-deps timm==1.0.31``; the torchvision stand-in in
benchmarks/standin is used when torchvision is missing). timm's FX tests need torchvision's
real ``models/feature_extraction.py``: without torchvision, the script takes that one file
from PyPI's torchvision wheel (``pip download --no-deps torchvision``, or ``--torchvision-wheel
FILE``) into a temporary copy of the stand-in; only if neither works are the FX tests left out
(said so in the JSON).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import importlib.util
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OURS, THEIRS = "mlpmixer_", "mlp_mixer_"
STANDIN_USED = importlib.util.find_spec("torchvision") is None
FEATURE_EXTRACTION = "torchvision/models/feature_extraction.py"  # inside torchvision's wheel
FX_NOT_RUN = (
    "timm's *_fx tests not run: they need torchvision.models.feature_extraction, and neither "
    "torchvision nor its wheel (for the one file) was available"
)


def torchvision_wheel(workdir: Path, given: Path | None) -> Path | None:
    """``given``, else PyPI's torchvision wheel downloaded into ``workdir`` (no dependencies:
    only one Python file of it is read), else None."""
    if given is not None:
        return given
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(workdir),
               "torchvision"]  # fmt: skip
    if subprocess.run(command, capture_output=True, text=True).returncode != 0:
        return None
    return next(iter(sorted(workdir.glob("torchvision-*.whl"))), None)


def standin_with_fx(workdir: Path, wheel: Path | None) -> tuple[Path, str | None]:
    """A copy of benchmarks/standin with torchvision's real feature_extraction.py beside its
    package (the stand-in loads it); returns the folder to put on the path and where the file
    came from (None: not available, the stand-in as it is)."""
    folder = workdir / "standin"
    shutil.copytree(ROOT / "benchmarks" / "standin", folder)
    wheel = torchvision_wheel(workdir, wheel)
    if wheel is None:
        return folder, None
    with zipfile.ZipFile(wheel) as archive:
        code = archive.read(FEATURE_EXTRACTION)
    (folder / "torchvision" / "feature_extraction.py").write_bytes(code)
    digest = hashlib.sha256(code).hexdigest()[:16]
    return folder, f"{wheel.name}:{FEATURE_EXTRACTION} (sha256 {digest}...)"


def run_pytest(
    test_file: Path, workdir: Path, standin: Path | None, with_fx: bool
) -> tuple[dict[str, dict], str]:
    """timm's file, filtered to the adapter's names, in a clean pytest config; the outcomes.
    ``standin``: the torchvision stand-in's folder (None: the real torchvision is installed);
    ``with_fx``: whether timm's *_fx tests can run."""
    outcomes = workdir / "outcomes.json"
    ini = workdir / "pytest.ini"
    ini.write_text("[pytest]\n")  # not our strict-markers config: timm's marks are its own
    env = dict(os.environ, TIMM_ADAPTER_OUTCOMES=str(outcomes))
    paths = [str(ROOT / "tests")]
    select = f"({OURS} or {THEIRS})"
    if standin is not None:  # timm imports torchvision; the stand-in will do
        paths.append(str(standin))
    if not with_fx:
        select += " and not _fx"
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    command = [
        sys.executable, "-m", "pytest", str(test_file), "-c", str(ini), "--rootdir",
        str(workdir), "-p", "timm_adapter", "-p", "no:cacheprovider", "-q", "-rfEs",
        "-k", select, "-W", "ignore::pytest.PytestUnknownMarkWarning",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=workdir)
    if not outcomes.exists():
        raise SystemExit(f"pytest did not run timm's tests:\n{done.stdout}\n{done.stderr}")
    return json.loads(outcomes.read_text()), done.stdout.strip().splitlines()[-1]


def side_by_side(outcomes: dict[str, dict]) -> dict:
    """Per test and family: our outcome next to timm's; counts for each side."""
    rows: dict[str, dict] = collections.defaultdict(dict)
    counts = {"ours": collections.Counter(), "timm": collections.Counter()}
    for test_id, entry in outcomes.items():
        function, _, params = test_id.partition("[")
        model = next(p for p in params.rstrip("]").split("-") if p.startswith(("mlp",)))
        side = "ours" if model.startswith(OURS) else "timm"
        family = model.removeprefix(OURS if side == "ours" else THEIRS)
        rows[f"{function}[{family}]"][side] = entry
        counts[side][entry["outcome"]] += 1
    worse = [k for k, v in rows.items() if v.get("timm", {}).get("outcome") == "passed"
             and v.get("ours", {}).get("outcome") != "passed"]  # fmt: skip
    return {
        "counts": {k: dict(v) for k, v in counts.items()},
        "passes_on_timm_not_on_ours": sorted(worse),
        "tests": dict(sorted(rows.items())),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("test_file", type=Path, help="timm's tests/test_models.py")
    parser.add_argument("--out", type=Path, help="write the results JSON here")
    parser.add_argument("--source", help="where the test file came from (recorded)")
    parser.add_argument("--torchvision-wheel", type=Path, default=None,
                        help="a torchvision wheel to take feature_extraction.py from (default: "
                        "pip download --no-deps torchvision)")  # fmt: skip
    args = parser.parse_args(argv)
    if not args.test_file.is_file():
        print(f"skipped: {args.test_file} not found (timm's tests/test_models.py, by hand)")
        return 0
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from timm_adapter import import_timm

    timm = import_timm()
    if timm is None:
        raise SystemExit("timm is not installed: pip install --no-deps timm==1.0.31")

    fx_source = "torchvision installed" if not STANDIN_USED else None
    with tempfile.TemporaryDirectory() as tmp:
        standin = None
        if STANDIN_USED:
            standin, fx_source = standin_with_fx(Path(tmp), args.torchvision_wheel)
        outcomes, summary = run_pytest(
            args.test_file.resolve(), Path(tmp), standin, with_fx=fx_source is not None
        )
    result = {
        "command": shlex.join(["python", *sys.argv]),
        "test_file_source": args.source,
        "test_file_sha256": hashlib.sha256(args.test_file.read_bytes()).hexdigest(),
        "timm": timm.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "pytest_summary": summary,
        "feature_extraction": fx_source,
        "not_run": FX_NOT_RUN if fx_source is None else None,
        "machine": platform.processor() or platform.machine(),
        **side_by_side(outcomes),
    }
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(json.dumps({k: result[k] for k in ("pytest_summary", "counts",
                                             "passes_on_timm_not_on_ours")}, indent=1))  # fmt: skip
    return 1 if result["passes_on_timm_not_on_ours"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
