"""Adversarial ``train --out`` / ``--resume`` (issue 16 items 2-4): every attempt to write over
a user's folder or to resume a run with something that is not that run is refused with exit 2
and a message naming the problem, and nothing on disk changes (hashes before and after).

Before: ``--out`` over a user's folder replaced its config.yaml/summary.json (exit 0), ``--out .``
trained into the working directory, ``--resume`` took ``--dataset``/``--seed``, an edited
config.yaml or another run's ``last.pt`` and mixed two runs (exit 0), ignored ``--out``, and
an optimizer changed in config.yaml ended in ``KeyError`` ("this looks like a bug").
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mlpmixer.cli import cli

TINY = {
    "model": {"name": "mixer_t2_8", "overrides": {"hidden_dim": 8, "channels_mlp_dim": 8,
                                                  "tokens_mlp_dim": 4, "num_blocks": 1}},
    "data": {"dataset": "digits", "num_workers": 0},
    "train": {"steps": 4, "batch_size": 32, "threads": 1},
    "run": {"progress": "none", "plot": False, "tensorboard": False},
}  # fmt: skip


def _invoke(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _tree(root: Path) -> dict[str, str]:
    """Every file and folder under ``root`` with the SHA-256 of its bytes (folders: "dir")."""
    out = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        out[key] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two finished tiny runs, ``base`` (4 steps) and ``other`` (3 steps), trained once."""
    root = tmp_path_factory.mktemp("runs")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    for name, steps in (("base", 4), ("other", 3)):
        done = _invoke("train", "--config", root / "tiny.yaml", "--out", root / name,
                       "--steps", steps)  # fmt: skip
        assert done.exit_code == 0, done.output
    return root


@pytest.fixture
def run(runs, tmp_path) -> Path:
    """A fresh copy of the finished run ``base``."""
    return Path(shutil.copytree(runs / "base", tmp_path / "run"))


def _refused(args, root: Path, *words: str) -> str:
    """Invoke; assert exit 2, every word in the message, and no change under ``root``."""
    before = _tree(root)
    result = _invoke(*args)
    assert result.exit_code == 2, result.output
    message = result.stderr
    assert message.startswith("error: ") and "looks like a bug" not in message, message
    for word in words:
        assert word in message, message
    assert _tree(root) == before
    return message


def _users_folder(path: Path) -> Path:
    path.mkdir()
    for name, text in (("config.yaml", "mine: 1\n"), ("summary.json", "{}"), ("curves.png", "x")):
        (path / name).write_text(text)
    return path


def test_out_over_a_users_folder_is_refused(runs, tmp_path):
    folder = _users_folder(tmp_path / "mine")
    args = ("train", "--config", runs / "tiny.yaml", "--out", folder)
    _refused(args, tmp_path, "holds no mlpmixer run", "config.yaml", "--out")


def test_out_dot_in_a_users_folder_is_refused(runs, tmp_path, monkeypatch):
    monkeypatch.chdir(_users_folder(tmp_path / "work"))
    _refused(("train", "--config", runs / "tiny.yaml", "--out", "."), tmp_path, "not empty")


def test_out_over_a_finished_run_says_resume(runs, run):
    args = ("train", "--config", runs / "tiny.yaml", "--out", run)
    _refused(args, run.parent, f"--resume {run}")


@pytest.mark.parametrize(
    ("flags", "key", "old", "new"),
    [
        (["--dataset", "mnist5k"], "data.dataset", '"digits"', '"mnist5k"'),
        (["--seed", "9", "--steps", "5"], "train.seed", "0", "9"),
        (["--batch-size", "16"], "train.batch_size", "32", "16"),
        (["--set", "optim.name=sgd"], "optim.name", '"adamw"', '"sgd"'),
    ],
)
def test_resume_with_a_disagreeing_flag_is_refused(run, flags, key, old, new):
    message = _refused(("train", "--resume", run, *flags), run.parent, key, old, new)
    assert "start a new run" in message


@pytest.mark.parametrize(
    ("key", "value"), [("optim.lr", 0.5), ("train.batch_size", 16), ("train.seed", 7),
                       ("optim.name", "sgd")]
)  # fmt: skip
def test_resume_of_an_edited_config_yaml_is_refused(run, key, value):
    config = yaml.safe_load((run / "config.yaml").read_text())
    section, name = key.split(".")
    config[section][name] = value
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    _refused(("train", "--resume", run), run.parent, "config.yaml was edited", key, str(value))


def test_resume_with_a_last_pt_of_another_run_is_refused(runs, run):
    shutil.copy(runs / "other" / "checkpoints" / "last.pt", run / "checkpoints" / "last.pt")
    _refused(("train", "--resume", run), run.parent, "belongs to another run")


def test_resume_with_another_out_is_refused(run, tmp_path):
    _refused(("train", "--resume", run, "--out", tmp_path / "elsewhere"), tmp_path, "--out")


def test_resume_of_a_users_folder_is_refused(tmp_path):
    folder = _users_folder(tmp_path / "mine")
    _refused(("train", "--resume", folder), tmp_path, "not a run directory")


def test_resume_shorter_than_done_is_refused(run):
    _refused(("train", "--resume", run, "--steps", "2"), run.parent, "4 steps")


def test_extending_a_run_is_allowed_and_said(run):
    result = _invoke("train", "--resume", run, "--steps", "6", "--json")
    assert result.exit_code == 0, result.output
    assert "train.steps changed from 4 to 6" in result.stderr
    summary = yaml.safe_load((run / "summary.json").read_text())
    assert summary["steps"] == 6 and summary["resumed"]
    assert summary["run_id"] == yaml.safe_load((run / "run.json").read_text())["run_id"]
    # the new length is the run's now: resuming again needs no flag
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 6
    again = _invoke("train", "--resume", run, "--json")
    assert again.exit_code == 0, again.output
