"""The commands in README.md and docs/ name options that exist (fast, on every test run).

`benchmarks/doc_commands.py` runs them all (~45 min); this checks, without running anything,
the error the docs are most prone to: a subcommand or ``--option`` that the CLI does not have
(docs/evaluation.md had ``[--split test] [--json]``, which bash passes as ``[--split``).
It also pins the extraction the script relies on.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from pathlib import Path

import click
import pytest

from mlpmixer.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location(
        "doc_commands", ROOT / "benchmarks" / "doc_commands.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("doc_commands", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


DOC = _script()
COMMANDS = [c for f in DOC.doc_files() for c in DOC.commands_in(f, str(f.relative_to(ROOT)))]


def _mlpmixer_args(command: str) -> list[str] | None:
    """The arguments given to mlpmixer (``mlpmixer ...``, ``-m mlpmixer ...``), else None."""
    words = shlex.split(command)
    for i, word in enumerate(words):
        if word == "mlpmixer" and (i == 0 or words[i - 1] == "-m" or "=" in words[i - 1]):
            return words[i + 1 :]
    return None


def _unknown_options(args: list[str]) -> list[str]:
    command: click.Command = cli
    known = {o for p in cli.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    for word in args:
        if isinstance(command, click.Group) and word in command.commands:
            command = command.commands[word]
            known |= {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        elif not word.startswith("-") and isinstance(command, click.Group):
            return [f"no subcommand {word!r}"]
    unknown = [w for w in args if w.startswith("-") and w.split("=")[0] not in known]
    return unknown + [w for w in args if w.startswith("[-")]  # "[--opt]": bash passes "[--opt"


MLPMIXER = [(c, a) for c in COMMANDS if (a := _mlpmixer_args(c.command)) is not None]


@pytest.mark.parametrize(("cmd", "args"), MLPMIXER, ids=[f"{c.file}:{c.line}" for c, _ in MLPMIXER])
def test_every_doc_command_names_existing_options(cmd, args):
    assert _unknown_options(args) == [], cmd.command


def test_the_option_check_can_fail():
    assert _unknown_options(shlex.split("eval --checkpoint x [--split test]")) == ["[--split"]
    assert _unknown_options(["train", "--epoch", "3"]) == ["--epoch"]
    assert _unknown_options(["analyse", "tokens"]) == ["no subcommand 'analyse'"]


def test_extraction_joins_continuations_and_keeps_comments_apart():
    text = "x\n```bash\nmlpmixer train --a 1 \\\n    --b '#2'   # ~6 min, top-1 98%\nls\n```\n"
    start, lang, lines = DOC.fenced_blocks(text)[0]
    assert lang == "bash"
    (cmd,) = DOC.shell_commands(start, lines, "f.md")
    assert (cmd.line, cmd.command) == (3, "mlpmixer train --a 1 --b '#2'")
    assert DOC.stated_time(cmd.comment) == ("~6 min", 360.0)


def test_the_docs_have_the_commands_the_results_speak_of():
    found = {(c.file, c.command) for c in COMMANDS}
    assert ("README.md", "make demo") in found and ("docs/training.md", "mlpmixer train") in found
    assert len(COMMANDS) > 60


def _option(args: list[str], name: str, default: str | None = None) -> str | None:
    for i, word in enumerate(args):
        if word == name and i + 1 < len(args):
            return args[i + 1]
        if word.startswith(f"{name}="):
            return word.split("=", 1)[1]
    return default


def _trained_on(run_dir: str) -> str | None:
    """The data set of the documented ``mlpmixer train --out RUN_DIR`` (digits by default)."""
    for _, args in MLPMIXER:
        if args[:1] == ["train"] and _option(args, "--out") == run_dir:
            return _option(args, "--dataset", "digits")
    return None


def test_the_fewshot_examples_probe_data_the_model_was_not_trained_on():
    """Issue 27 item 10: docs/evaluation.md probed a digits model on digits, so every shot
    count printed the same 99.44% ± 0. A probe of a documented run names another data set."""
    checked = []
    for cmd, args in MLPMIXER:
        if args[:1] != ["fewshot"]:
            continue
        run_dir = _option(args, "--checkpoint", "").removesuffix("/model")
        trained = _trained_on(run_dir)
        if trained is None:
            continue  # a placeholder (runs/<run>/model) or a hub id: no training data known
        checked.append(cmd.command)
        assert _option(args, "--dataset") != trained, f"{cmd.file}:{cmd.line}: {cmd.command}"
    assert checked, "no fewshot example of a documented run was found"
