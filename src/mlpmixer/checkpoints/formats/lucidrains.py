"""lucidrains' ``mlp-mixer-pytorch`` state dicts (``MLPMixer(...)``, an ``nn.Sequential``).

Its layers are numbered: ``0`` einops patchify ``b c (h p1) (w p2) -> b (h w) (p1 p2 c)``,
``1`` the stem Linear (C, P·P·in) over that (p1 p2 c) order, ``2 .. N+1`` the blocks —
``<i>.0`` token mixing (``norm``, ``fn.0`` / ``fn.3``: Conv1d with kernel 1, weights
(D_S, S, 1) and (S, D_S, 1)), ``<i>.1`` channel mixing (``norm``, ``fn.0`` / ``fn.3``:
Linear) — then ``N+2`` the LayerNorm, ``N+3`` the mean, ``N+4`` the head. Every LayerNorm
has torch's default epsilon 1e-5 and the GELU is the exact erf one. Its hidden widths are
D_S = ``expansion_factor``·C and D_C = ``expansion_factor_token``·C.

The stem weight is permuted to this package's Conv2d layout (C, in, P, P) on load, so one
stem serves both. The (P, in) split of P·P·in is inferred: ``in_chans`` 3 if P·P·in / 3 is a
square, else 1 if it is a square; pass ``in_chans`` for anything else. Read only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import torch

from ...errors import CheckpointError
from .base import Candidate, Checkpoint, CheckpointFormat, in_torch_file

LUCIDRAINS_FIELDS = {"gelu": "none", "norm_eps": 1e-5}
_PART = {"0.norm": "token_norm", "0.fn.0": "token_mixing.fc1", "0.fn.3": "token_mixing.fc2",
         "1.norm": "channel_norm", "1.fn.0": "channel_mixing.fc1", "1.fn.3": "channel_mixing.fc2"}  # fmt: skip
_BLOCK_KEY = re.compile(r"^(\d+)\.([01]\.(?:norm|fn\.0|fn\.3))\.(weight|bias)$")


def is_lucidrains(state: Mapping[str, torch.Tensor]) -> bool:
    stem, token = state.get("1.weight"), state.get("2.0.fn.0.weight")
    return stem is not None and stem.ndim == 2 and token is not None and token.ndim == 3


def _detect(candidate: Candidate) -> bool:
    return candidate.holds_tensors and is_lucidrains(candidate.state)


def _read(candidate: Candidate) -> Checkpoint:
    return candidate.read_as(FORMAT, lucidrains_to_state(candidate.state, candidate.in_chans))


def split_patch(width: int, in_chans: int | None) -> tuple[int, int]:
    """(P, in_chans) with P·P·in_chans == ``width``, the stem Linear's input width."""
    candidates = (in_chans,) if in_chans else (3, 1)
    for chans in candidates:
        side = math.isqrt(width // chans) if width % chans == 0 else 0
        if side and side * side * chans == width:
            return side, chans
    raise CheckpointError(
        f"the stem reads {width} values per patch, which is not P·P·in_chans for in_chans "
        f"{' or '.join(map(str, candidates))}; pass in_chans"
    )


def lucidrains_to_state(
    state: Mapping[str, torch.Tensor], in_chans: int | None = None
) -> dict[str, torch.Tensor]:
    """lucidrains' numbered keys -> this package's names and layouts (see the module doc)."""
    indices = sorted({int(k.split(".")[0]) for k in state})
    depth = sum(1 for i in indices if f"{i}.0.fn.0.weight" in state)
    stem = state["1.weight"]
    patch, chans = split_patch(stem.shape[1], in_chans)
    out = {
        "stem.proj.weight": stem.reshape(stem.shape[0], patch, patch, chans).permute(0, 3, 1, 2),
        "stem.proj.bias": state["1.bias"],
    }
    top = {f"{depth + 2}": "norm", f"{depth + 4}": "head"}
    for key, value in state.items():
        if key.startswith("1."):
            continue
        m = _BLOCK_KEY.match(key)
        if m and 2 <= int(m.group(1)) < depth + 2:
            name = f"blocks.{int(m.group(1)) - 2}.{_PART[m.group(2)]}.{m.group(3)}"
            out[name] = value.squeeze(-1) if value.ndim == 3 else value
            continue
        layer, _, param = key.partition(".")
        if layer not in top:
            raise CheckpointError(f"unexpected key {key!r} in a mlp-mixer-pytorch state dict")
        out[f"{top[layer]}.{param}"] = value
    return {k: v.contiguous() for k, v in out.items()}


FORMAT = CheckpointFormat(
    name="lucidrains",
    detect=_detect,
    read=_read,
    defaults=LUCIDRAINS_FIELDS,
    tensors_only=in_torch_file,
)
