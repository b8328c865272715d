"""One dialect across commands (issue 18 item 6): every command's option names are checked
against it, old spellings still work with one deprecation line, and what the docs, the
README and the library's messages tell users to type exists.

Before: output was --out (train, finetune, bench), --out-dir (eval, predict, fewshot,
analyze) or --output (export); --device defaulted to cpu in eval/predict/fewshot/bench;
bench said --dtype and eval/predict/fewshot had no precision; eval had no workers option;
--img-size took "H W" in convert/info and one number in finetune; finetune took only --from;
an error told users to pass --reset-head, which no command has.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mlpmixer.cli import cli

ROOT = Path(__file__).resolve().parents[1]
WRITES_OUTPUT = {"train", "finetune", "bench", "eval", "predict", "fewshot", "export", "quantize",
                 "analyze tokens", "analyze cka", "analyze permutation"}  # fmt: skip
HAS_PRECISION = {"train", "finetune", "bench", "eval", "predict", "fewshot"}
HAS_WORKERS = {"train", "finetune", "eval", "predict", "fewshot"}
CONFIG_DEFAULTS = {"train", "finetune"}
# the spellings replaced by the dialect (accepted for a while, with a warning)
DEPRECATED_OPTIONS = {
    "--out-dir": "--out",
    "--output": "--out",
    "--dtype": "--precision",
}  # None there: the config's value (train.device: auto)


def _commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    found = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.update(_commands(command, path + " "))
        else:
            found[path] = command
    return found


def _options(command: click.Command) -> dict[str, click.Option]:
    options = [p for p in command.params if isinstance(p, click.Option)]
    return {n: p for p in options for n in [*p.opts, *p.secondary_opts]}


COMMANDS = _commands()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_speaks_the_dialect(name):
    options = _options(COMMANDS[name])
    assert not set(options) & set(DEPRECATED_OPTIONS), f"{name}: an old spelling is an option"
    assert ("--out" in options) == (name in WRITES_OUTPUT), name
    assert ("--precision" in options) == (name in HAS_PRECISION), name
    assert ("--workers" in options) == (name in HAS_WORKERS), name
    if "--device" in options:
        default = options["--device"].default
        assert default == "auto" or (default is None and name in CONFIG_DEFAULTS), name
    if "--img-size" in options:
        option = options["--img-size"]  # one value: N or HxW
        assert option.nargs == 1, name
        assert option.type.convert("224x448", option, None) == (224, 448), name
        assert option.type.convert("32", option, None) == 32, name
    if "--precision" in options:
        assert list(options["--precision"].type.choices) == ["fp32", "bf16", "fp16"]


def test_finetune_takes_the_checkpoint_as_every_command_does():
    options = _options(COMMANDS["finetune"])
    assert options["--checkpoint"] is options["--from"]  # --from stays: the same option
    for name, command in COMMANDS.items():
        if "--checkpoint" in _options(command):
            assert _options(command)["--checkpoint"].name == "checkpoint", name


@pytest.mark.parametrize(
    ("args", "warning"),
    [
        (["eval", "--checkpoint", "/nonexistent/x", "--dataset", "digits", "--out-dir", "o"],
         "--out-dir is deprecated and will be removed; use --out"),
        (["export", "--checkpoint", "/nonexistent/x", "--output=m.onnx"],
         "--output is deprecated and will be removed; use --out"),
        (["bench", "--checkpoint", "/nonexistent/x", "--dtype", "bf16"],
         "--dtype is deprecated and will be removed; use --precision"),
        (["info", "/nonexistent/x", "--img-size", "8", "16"],
         "--img-size H W is deprecated and will be removed; use --img-size HxW"),
    ],
)  # fmt: skip
def test_old_spellings_still_work_with_one_warning_line(args, warning):
    result = CliRunner().invoke(cli, args)
    assert result.output.count(warning) == 1, result.output
    assert "No such option" not in result.output and "Got unexpected" not in result.output
    assert "/nonexistent/x" in result.output  # it went on to the real work (and its error)


def test_img_size_means_one_size_everywhere():
    from mlpmixer.cli.options import IMG_SIZE

    assert IMG_SIZE.convert("448", None, None) == 448
    assert IMG_SIZE.convert("224x448", None, None) == (224, 448)
    with pytest.raises(click.BadParameter, match="'0' is not a size"):
        IMG_SIZE.convert("0", None, None)


def test_analyze_permutation_set_is_trains_spelling():
    from mlpmixer.cli.analyze import parse_model_sets

    assert parse_model_sets(("model.overrides.hidden_dim=64",)) == [("hidden_dim", 64)]
    with pytest.raises(click.BadParameter, match="only model fields"):
        parse_model_sets(("optim.lr=1",))


def _known_options() -> set[str]:
    commands = [cli, *COMMANDS.values()]  # the group's own: --debug, --version
    params = [p for c in commands for p in c.params]
    return {n for p in params for n in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}


OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*(?!\w)")


def test_library_messages_name_only_real_options():
    allowed = _known_options() | set(DEPRECATED_OPTIONS) | {"--help"}
    for path in (ROOT / "src" / "mlpmixer").rglob("*.py"):
        unknown = set(OPTION.findall(path.read_text())) - allowed
        assert not unknown, f"{path.relative_to(ROOT)} names {sorted(unknown)}"


def _doc_commands() -> list[tuple[str, str]]:
    """(file, command line) of every ``mlpmixer ...`` command in the README and docs/."""
    lines = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            for match in re.finditer(r"(?:^|[`$ ])mlpmixer ((?:[a-z]+ ?)+.*?)(?:`|$|#)", line):
                lines.append((path.name, match.group(1)))
    return lines


def test_docs_use_the_dialect():
    for where, line in _doc_commands():
        words = line.split()
        command = " ".join(words[:2]) if " ".join(words[:2]) in COMMANDS else words[0]
        if command not in COMMANDS:
            continue
        known = set(_options(COMMANDS[command])) | {"--help", "-h"}
        used = set(OPTION.findall(line))
        assert used <= known, f"{where}: mlpmixer {line!r} uses {sorted(used - known)}"
