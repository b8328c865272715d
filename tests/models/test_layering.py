"""The model package stands alone: no CLI, no checkpoint formats, no download code.

`MlpMixer` keeps huggingface_hub's `PyTorchModelHubMixin` (``save_pretrained``,
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


def _module_level_imports(path: Path) -> list[str]:
    """Absolute names of the imports at a module's top level (not inside functions)."""
    tree = ast.parse(path.read_text())
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against mlpmixer.models
                parent = ["mlpmixer", "models"][: 3 - node.level]
                base = ".".join([*parent, base] if base else parent)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def test_the_model_package_imports_huggingface_hub_only_for_the_hub_mixin():
    hub = {}
    for path in sorted(MODELS.glob("*.py")):
        for name in _module_level_imports(path):
            assert not name.startswith(FORBIDDEN), f"{path.name} imports {name}"
            assert not name.startswith(("urllib", "requests", "httpx")), f"{path.name}: {name}"
            if name.startswith("huggingface_hub"):
                hub.setdefault(path.name, []).append(name)
    assert hub == {"mixer.py": ["huggingface_hub.PyTorchModelHubMixin"]}
