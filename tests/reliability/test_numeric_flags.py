"""Numeric flags: 0 is a value (never dropped), and a meaningless value is a usage error (exit 2).

Before: ``flag_overrides`` skipped every value equal to False, so ``--epochs 0`` trained the
recipe's 40 epochs and ``--seed 0`` kept the config's seed; ``predict --batch-size 0``
exited 0 with no predictions, ``analyze tokens --units 0`` was a traceback.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mlpmixer.cli import cli
from mlpmixer.cli.train import flag_overrides
from mlpmixer.errors import ConfigError
from mlpmixer.train import load_config
from mlpmixer.train.presets import resolve_config


def test_zero_flags_reach_the_config():
    overrides = flag_overrides(epochs=0, seed=0, lr=0.0, batch_size=0, skip_bad_images=False)
    assert overrides == [
        ("train.epochs", 0),
        ("train.seed", 0),
        ("optim.lr", 0.0),
        ("train.batch_size", 0),
    ]


def test_seed_zero_replaces_the_configs_seed(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  seed: 7\n")
    base = load_config(config)
    assert resolve_config(base, overrides=flag_overrides(seed=0)).train.seed == 0


@pytest.mark.parametrize(
    ("flag", "value"),
    [("epochs", 0), ("lr", 0.0), ("batch_size", 0), ("steps", 0), ("seed", 2**70)],
)
def test_meaningless_values_are_config_errors(flag, value):
    with pytest.raises(ConfigError, match=flag):
        resolve_config(overrides=flag_overrides(**{flag: value}))


MISSING = "/nonexistent/model"
COMMANDS = [
    ["train", "--epochs", "0"],
    ["train", "--batch-size", "-1"],
    ["train", "--lr", "nan"],
    ["train", "--seed", str(2**70)],
    ["eval", "--checkpoint", MISSING, "--dataset", "digits", "--batch-size", "0"],
    ["eval", "--checkpoint", MISSING, "--dataset", "digits", "--crop-pct", "0"],
    ["predict", "x.png", "--checkpoint", MISSING, "--batch-size", "0"],
    ["predict", "x.png", "--checkpoint", MISSING, "--batch-size", "-1"],
    ["predict", "x.png", "--checkpoint", MISSING, "--top-k", "0"],
    ["fewshot", "--checkpoint", MISSING, "--dataset", "digits", "--seeds", "0"],
    ["analyze", "tokens", "--checkpoint", MISSING, "--units", "0"],
    ["analyze", "cka", "--checkpoint", MISSING, "--num-images", "0"],
    ["analyze", "permutation", "--epochs", "0"],
    ["bench", "--model", "mixer_t2_8", "--batch-size", "0"],
    ["bench", "--model", "mixer_t2_8", "--repeats", "0"],
    ["bench", "--model", "mixer_t2_8", "--min-time", "-1"],
    ["info", MISSING, "--img-size", "0", "8"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:1] + a[-2:]))
def test_a_meaningless_numeric_flag_is_a_usage_error_naming_it(args):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    flag = args[-2] if args[-2].startswith("--") else args[-3]
    assert flag in result.output, result.output
    assert "Traceback" not in result.output


@settings(max_examples=30, deadline=None)
@given(value=st.one_of(st.integers(max_value=0), st.sampled_from(["nan", "inf", "-0", "x"])))
def test_fuzz_batch_size_flag(value):
    args = ["predict", "x.png", "--checkpoint", MISSING, "--batch-size", str(value)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--batch-size" in result.output, result.output
