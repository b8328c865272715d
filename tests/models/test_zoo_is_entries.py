"""The all-MLP zoo is entries, not branches: the generic code knows no zoo family by name.

Issue 28 asked that adding the zoo touch only the zoo's model files, their spec entries and
their checkpoint-format entries. The history cannot be rewritten (the zoo's arrival fixed
generic code that assumed flat Mixer blocks), so this test holds the property on the code as
it is: outside the zoo's own files, a zoo family or module is named only in the three
registration lists (the family imports in models/registry.py, the format list in
choices.py, the published-weights table in models/pretrained.py). Any `if family ==
"cyclemlp"` or import of a zoo module elsewhere fails here, naming the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mlpmixer
from mlpmixer.models.spec import family_names

PACKAGE = Path(mlpmixer.__file__).parent
ZOO_MODULES = ("vip", "cyclemlp", "as_mlp", "wave_mlp", "hire_mlp", "staged")
ZOO_FAMILIES = ("vip", "cyclemlp", "asmlp", "wavemlp", "hiremlp")
OWN_FILES = {f"models/{m}.py" for m in ZOO_MODULES} | {"checkpoints/formats/zoo.py"}
# The registration lists: file -> the only zoo names it may hold.
REGISTRATIONS = {
    "models/registry.py": set(ZOO_MODULES) - {"staged"},  # `from . import <families>`
    "choices.py": {"zoo"},  # CHECKPOINT_FORMATS' entry
    "models/pretrained.py": set(ZOO_FAMILIES),  # the published weights' rows
}


def _docstring_ids(tree: ast.AST) -> set[int]:
    """ids of docstring constants (prose, not code)."""
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, kinds)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def zoo_names_in(path: Path) -> list[tuple[int, str]]:
    """(line, name) of each zoo module imported and each zoo family named in code."""
    tree = ast.parse(path.read_text(), filename=str(path))
    prose = _docstring_ids(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            modules = [node.module or ""] + [alias.name for alias in node.names]
            found += [(node.lineno, m.split(".")[-1]) for m in modules if m]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[-1]) for alias in node.names]
        elif (
            isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose
        ):
            text = node.value.lower()
            found += [(node.lineno, f) for f in ZOO_FAMILIES if f in text]
            if text == "zoo":
                found.append((node.lineno, "zoo"))
    zoo = set(ZOO_MODULES) | set(ZOO_FAMILIES) | {"zoo"}
    return [(line, name) for line, name in found if name in zoo]


def test_the_zoo_families_are_registered():
    assert set(ZOO_FAMILIES) <= set(family_names())


def test_outside_its_own_files_the_zoo_is_named_only_in_the_registration_lists():
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE).as_posix()
        if relative in OWN_FILES:
            continue
        allowed = REGISTRATIONS.get(relative, set())
        offending += [
            f"{relative}:{line}: {name}" for line, name in zoo_names_in(path) if name not in allowed
        ]
    assert not offending, "zoo named in generic code:\n" + "\n".join(offending)


def test_the_check_sees_a_branch_on_a_zoo_family(tmp_path):
    """The test can fail: a family branch and a zoo import in a generic file are found."""
    planted = tmp_path / "generic.py"
    planted.write_text(
        '"""Docstrings may talk about CycleMLP."""\n'
        "from mlpmixer.models import wave_mlp\n"
        "def cost(config):\n"
        '    if config.family == "cyclemlp":\n'
        "        return 1\n"
    )
    assert zoo_names_in(planted) == [(2, "wave_mlp"), (4, "cyclemlp")]
