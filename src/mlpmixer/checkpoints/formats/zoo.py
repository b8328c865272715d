"""The all-MLP zoo's official checkpoint files: ViP, CycleMLP, AS-MLP, Wave-MLP, Hire-MLP.

The official repositories release their weights as their training scripts saved them: a dict
that wraps the state dict — ``model`` (DeiT's and Swin's scripts: CycleMLP, ViP, Hire-MLP,
AS-MLP), or ``state_dict`` and ``state_dict_ema`` (timm's train.py: Wave-MLP's
``.pth.tar``) — beside extras: the run's ``args`` (an ``argparse.Namespace``), a yacs
``config`` (Swin's scripts), optimizer state, the epoch. The key names inside are the
families' own: this package's zoo models keep the official module names, and each family's
spec has its marker keys (ViP ``attn.mlp_h.weight``, CycleMLP ``attn.sfc_h.offset``, AS-MLP
``axial_shift.conv2_1.weight``, Wave-MLP ``attn.tfc_h.weight``, Hire-MLP
``attn.mlp_h1_norm.weight``), so nothing is renamed. What this format adds is reading such a
file without unpickling it:

* ``torch.load(weights_only=True)``, which rebuilds tensors and plain values only, with the
  two containers of settings allowed under inert stand-ins (registered by name with
  ``torch.serialization.safe_globals``; neither argparse nor yacs is imported, no code of the
  file runs). ``argparse.Namespace`` is rebuilt as an `Ignored` object that keeps nothing. A
  yacs ``CfgNode`` (Swin's scripts: AS-MLP) is rebuilt as a plain ``OrderedDict``: torch's
  unpickler fills only exact ``dict`` / ``OrderedDict`` types (``SETITEMS``) and builds an
  ``OrderedDict``'s attributes into its ``__dict__`` (``BUILD``), and ``OrderedDict`` is
  already on torch's allowlist, so the stand-in adds a name, not a callable. The config, the
  optimizer and scheduler states are dropped with the rest of the wrapper. Any other class
  is refused, as weights_only refuses it. Tensor views are checked as for every torch file.
* the weights are ``state_dict``, else ``model``, else ``module`` (`torch_file.WRAPPERS`);
  a file with only ``state_dict_ema`` gives that. timm's loader takes ``state_dict`` unless
  asked for the EMA, and so does this one.
* the suffix ``.pth.tar`` (timm's) besides ``.pth`` / ``.pt`` / ``.bin``.

Read only: ``convert`` writes these weights in the project's format or as a bare state dict.
No checksums are published for these files.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError
from ...layout import TORCH_SUFFIXES
from ...models.spec import families
from ..torch_file import WRAPPERS, check_tensor_views, unwrap_state_dict
from .base import Candidate, Checkpoint, CheckpointFormat

ZOO_FAMILIES = ("vip", "cyclemlp", "asmlp", "wavemlp", "hiremlp")
NAMESPACE = "argparse.Namespace"
YACS = "yacs.config.CfgNode"
EMA = "state_dict_ema"


class Ignored:
    """What a training file's settings (an argparse Namespace) are read as: takes whatever
    state the pickle gives it and keeps nothing."""

    def __setstate__(self, state: Any) -> None:
        pass


def _is_torch_name(path: Path) -> bool:
    return path.suffix in TORCH_SUFFIXES or path.name.endswith(".pth.tar")


def read_training_file(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of an official training file (see the module docstring)."""
    # a yacs CfgNode is a dict subclass with its flags in __dict__; an OrderedDict is the one
    # type torch's unpickler both fills (SETITEMS) and gives attributes to (BUILD)
    stand_ins = [(Ignored, NAMESPACE), (OrderedDict, YACS)]
    try:
        with torch.serialization.safe_globals(stand_ins):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for hostile or corrupt pickles
        first = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(
            f"{path}: cannot be loaded as plain weights ({type(err).__name__}: {first}). "
            "Files that need to run code to load are refused"
        ) from err
    if isinstance(obj, Mapping) and EMA in obj and not any(k in obj for k in WRAPPERS):
        obj = obj[EMA]
    state = unwrap_state_dict(obj, path)
    check_tensor_views(state, path)
    return state


def is_zoo_state(state: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``state`` has the marker keys of a zoo family."""
    return any(spec.matches(state) for spec in families() if spec.name in ZOO_FAMILIES)


def _detect(candidate: Candidate) -> bool:
    path = candidate.path
    if path.is_dir() or not _is_torch_name(path):
        return False
    try:
        state = candidate.state
    except CheckpointError:
        # settings pickled beside the weights (or a .pth.tar): read past them, or say why not;
        # the error names the first class refused even with the stand-ins allowed
        state = read_training_file(path)
        candidate.contents = (state, {})  # what every later format and the reader see
    return is_zoo_state(state)


def _read(candidate: Candidate) -> Checkpoint:
    return candidate.read_as(FORMAT, dict(candidate.state))


FORMAT = CheckpointFormat(
    name="zoo",
    detect=_detect,
    read=_read,
    tensors_only=lambda path: _is_torch_name(path),
)
