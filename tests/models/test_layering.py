"""The model package stands alone: no CLI, no checkpoint formats, no download code.

The model mixin `ModelIO` (models/io.py) keeps huggingface_hub's `PyTorchModelHubMixin`
(``save_pretrained``, ``push_to_hub``), and that mixin loads huggingface_hub's HTTP client;
that is the one network library the model package touches, and only through that one import.
The checkpoint formats (and through them the download code) are imported by plain imports in
the bodies of the methods that read or write files (models/io.py) and of ``create_model``
with weights (models/registry.py), at the call; never when the package is imported, and never
for ``from_state_dict`` or ``resize`` (no callback table: models/storage.py is gone).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import mlpmixer

MODELS = Path(mlpmixer.__file__).parent / "models"
FORBIDDEN = ("mlpmixer.cli", "mlpmixer.checkpoints", "mlpmixer.download", "click", "rich")

# Import mlpmixer.models without running mlpmixer/__init__.py (which re-exports everything),
# then list what got imported.
PROBE = """
import json, sys, types
package = types.ModuleType("mlpmixer")
package.__path__ = [sys.argv[1]]
sys.modules["mlpmixer"] = package
import mlpmixer.models
print(json.dumps(sorted(sys.modules)))
"""


@pytest.mark.slow
def test_importing_the_model_package_loads_no_cli_checkpoint_or_download_code():
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(MODELS.parent)],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    loaded = json.loads(out)
    assert "mlpmixer.models.mixer" in loaded  # the probe did import the package
    bad = [m for m in loaded if m.startswith(FORBIDDEN)]
    assert not bad, bad


PACKAGE = MODELS.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (never run)."""
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def _in_functions(tree: ast.AST) -> set[int]:
    """ids of the nodes inside function bodies (run at a call, not at import)."""
    functions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
    return {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, functions)
        for n in ast.walk(node)
        if n is not node
    }


def imports(path: Path, module_name: str | None = None, at_call: bool = True) -> list[str]:
    """Absolute names of every import in a module that can run, inside functions too
    (``at_call=False``: only those run when the module is imported).

    ``from .x import y`` gives ``pkg.x.y``; imports under ``if TYPE_CHECKING:`` are left out.
    """
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree) | (set() if at_call else _in_functions(tree))
    module = (module_name or _module_name(path)).split(".")
    package = module if path.name == "__init__.py" else module[:-1]
    names = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the module's package
                parent = package[: len(package) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


# The model modules whose methods import the checkpoint formats at the call (file I/O).
CALLS_UP_TO_CHECKPOINTS = {"io.py", "registry.py"}


def test_the_model_package_imports_huggingface_hub_only_for_the_hub_mixin():
    hub = {}
    for path in sorted(MODELS.rglob("*.py")):
        for name in imports(path, at_call=False):
            assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"
        for name in imports(path):
            assert not name.startswith(("urllib", "requests", "httpx")), f"{path.name}: {name}"
            if name.startswith("huggingface_hub"):
                hub.setdefault(path.name, []).append(name)
            if name.startswith(FORBIDDEN):  # at a call: only file I/O, only to checkpoints/
                assert path.name in CALLS_UP_TO_CHECKPOINTS, f"{path.name} imports {name}"
                assert name.startswith("mlpmixer.checkpoints."), f"{path.name} imports {name}"
    assert hub == {"io.py": ["huggingface_hub.PyTorchModelHubMixin"]}


MODELS_WITHOUT_CHECKPOINTS = """
import sys
import torch
import mlpmixer.models as m
config = m.model_config("mixer_t2_8", num_blocks=1)
model = m.build_model(config)
copy = m.MlpFamilyModel.from_state_dict(model.state_dict(), config)
images = torch.randn(2, 1, 8, 8)
assert torch.equal(copy(images), model(images))
bigger = model.resize(16)
assert bigger.config.img_size == (16, 16)
loaded = sorted(k for k in sys.modules if k.startswith("mlpmixer.checkpoints"))
assert not loaded, loaded
print("ok")
"""


@pytest.mark.slow
def test_state_dicts_and_resize_work_without_the_checkpoint_package():
    """Issue 28: ``from_state_dict`` (and so ``resize``) reached the state check through a
    callback table that checkpoints/__init__ filled (models/storage.py), importing
    checkpoints/ by name at the first call."""
    out = subprocess.run(
        [sys.executable, "-c", MODELS_WITHOUT_CHECKPOINTS],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert out.strip() == "ok"


def package_graph(at_call: bool = True) -> dict[str, set[str]]:
    """Which of mlpmixer's subpackages and top-level modules import which (any import;
    ``at_call=False``: only imports that run when a module is imported)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = _module_name(path).split(".")
        if len(parts) < 2:
            continue  # mlpmixer/__init__.py re-exports everything: above every package
        for name in imports(path, at_call=at_call):
            dst = name.split(".")[1] if name.startswith("mlpmixer.") else None
            if dst and dst != parts[1]:
                graph.setdefault(parts[1], set()).add(dst)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


# Package edges allowed inside a circle, each only at a call (an import in a function body):
# a model's file I/O methods (save, save_pretrained, from_pretrained; create_model with
# weights) call up into the checkpoint formats, which build on the models. Moving those
# methods off the model classes would break the hub API (``model.save_pretrained``).
KNOWN_PACKAGE_EDGES_IN_A_CIRCLE: set[tuple[str, str]] = {("models", "checkpoints")}


def test_no_import_cycles_between_packages():
    """models -> checkpoints -> ... -> models was one; imports inside functions count too,
    except the edges named above, which must be at a call only."""
    at_import = package_graph(at_call=False)
    assert _cycle(at_import) is None, " -> ".join(_cycle(at_import) or [])
    graph = package_graph()
    for src, dst in KNOWN_PACKAGE_EDGES_IN_A_CIRCLE:
        assert dst in graph.get(src, set()), f"{src} -> {dst} is gone: update this test"
        assert dst not in at_import.get(src, set()), f"{src} imports {dst} when imported"
        graph[src].discard(dst)
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def module_graph(root: Path, prefix: str) -> dict[str, set[str]]:
    """Module-to-module imports (any import) among the modules under ``root``."""
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        src = _module_name(path)
        for name in imports(path):
            for dst in (name, name.rpartition(".")[0]):
                is_module = (PACKAGE.parent / (dst.replace(".", "/") + ".py")).exists()
                if dst.startswith(prefix) and dst != src and is_module:
                    graph.setdefault(src, set()).add(dst)
    return graph


def test_no_import_cycles_between_the_model_modules():
    """models/config <-> models/flops was one (through an import inside a function)."""
    cycle = _cycle(module_graph(MODELS, "mlpmixer.models."))
    assert cycle is None, " -> ".join(cycle)


def test_the_walk_sees_imports_inside_functions(tmp_path):
    """The check itself: an import in a function body is found (it was not, before)."""
    fake = tmp_path / "m.py"
    fake.write_text("def f():\n    from ..checkpoints import load_model\n")
    assert imports(fake, "mlpmixer.models.m") == ["mlpmixer.checkpoints.load_model"]
    graph = {"models": {"checkpoints"}, "checkpoints": {"train"}, "train": {"models"}}
    assert _cycle(graph) == ["checkpoints", "train", "models", "checkpoints"]


def test_no_import_cycles_between_any_modules():
    """checkpoints/timm_format <-> checkpoints/model_card was one (closed by run_model.py).
    The models' calls up into checkpoints/ (KNOWN_PACKAGE_EDGES_IN_A_CIRCLE, at a call only,
    from CALLS_UP_TO_CHECKPOINTS: see the tests above) are left out."""
    graph = module_graph(PACKAGE, "mlpmixer.")
    for src in graph:
        if src.startswith("mlpmixer.models."):
            graph[src] = {d for d in graph[src] if not d.startswith("mlpmixer.checkpoints.")}
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)
