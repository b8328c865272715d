"""The model package stands alone: no CLI, no checkpoint formats, no download code.

The family base `MlpFamilyModel` (models/base.py) keeps huggingface_hub's `PyTorchModelHubMixin` (``save_pretrained``,
``push_to_hub``), and that mixin loads huggingface_hub's HTTP client; that is the one network
library the model package touches, and only through that one import. The project's own
download code (`mlpmixer.download`) and the checkpoint formats are imported by the model's
loading methods at call time, never when the package is imported.
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


def imports(path: Path, module_name: str | None = None) -> list[str]:
    """Absolute names of every import in a module that can run, inside functions too.

    ``from .x import y`` gives ``pkg.x.y``; imports under ``if TYPE_CHECKING:`` are left out.
    """
    tree = ast.parse(path.read_text())
    skipped = _type_checking_only(tree)
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


def test_the_model_package_imports_huggingface_hub_only_for_the_hub_mixin():
    hub = {}
    for path in sorted(MODELS.rglob("*.py")):
        for name in imports(path):
            assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"
            assert not name.startswith(("urllib", "requests", "httpx")), f"{path.name}: {name}"
            if name.startswith("huggingface_hub"):
                hub.setdefault(path.name, []).append(name)
    assert hub == {"io.py": ["huggingface_hub.PyTorchModelHubMixin"]}


def package_graph() -> dict[str, set[str]]:
    """Which of mlpmixer's subpackages and top-level modules import which (any import)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = _module_name(path).split(".")
        if len(parts) < 2:
            continue  # mlpmixer/__init__.py re-exports everything: above every package
        for name in imports(path):
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


# Package edges allowed inside a circle (none: last.pt's format moved from train/ to
# checkpoints/train_state.py, which closed the last one, checkpoints -> train -> checkpoints).
KNOWN_PACKAGE_EDGES_IN_A_CIRCLE: set[tuple[str, str]] = set()


def test_no_import_cycles_between_packages():
    """models -> checkpoints -> ... -> models was one; imports inside functions count too."""
    graph = package_graph()
    for src, dst in KNOWN_PACKAGE_EDGES_IN_A_CIRCLE:
        assert dst in graph.get(src, set()), f"{src} -> {dst} is gone: update this test"
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
    """checkpoints/timm_format <-> checkpoints/model_card was one (closed by run_model.py)."""
    cycle = _cycle(module_graph(PACKAGE, "mlpmixer."))
    assert cycle is None, " -> ".join(cycle)
