"""``mlpmixer --help``, ``--version``, a command's ``--help`` and usage errors answer without
importing torch (issue 27 item 11: the CLI imported torch and the whole library before it
parsed anything, 3.4 s of CPU for ``--help``, 22.8 s under load).

Each case runs the click app in a fresh interpreter and then lists whether torch was loaded;
commands that compute (``models`` reads the registry, whose models are torch modules) may.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
from mlpmixer.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "torch": "torch" in sys.modules}), file=sys.stderr)
"""

CASES = [
    (["--help"], 0),
    (["--version"], 0),
    (["train", "--help"], 0),
    (["analyze", "--help"], 0),
    (["train", "--epochs", "abc"], 2),  # a bad value
    (["eval", "--no-such-option"], 2),  # an unknown option
    (["no-such-command"], 2),
]


def _run(args: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("args", "code"), CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else str(v)
)
def test_answers_without_importing_torch(args, code):
    result = _run(args)
    assert result == {"code": code, "torch": False}


def test_import_mlpmixer_is_light_and_its_names_still_resolve():
    code = (
        "import sys, mlpmixer; light = 'torch' not in sys.modules; "
        "m = mlpmixer.create_model('mixer_t2_8'); "
        "print(light, type(m).__name__, mlpmixer.models.MlpMixer is type(m), "
        "'create_model' in dir(mlpmixer), callable(mlpmixer.train))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()  # fmt: skip
    assert out == ["True", "MlpMixer", "True", "True", "True"]
