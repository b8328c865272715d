"""The official Google checkpoints (google-research/vision_transformer, big_vision): flat .npz.

Keys are flax parameter paths joined by '/': ``stem/kernel`` (HWIO: Ph, Pw, in, C),
``MixerBlock_<i>/{LayerNorm_0, token_mixing/Dense_0, token_mixing/Dense_1, LayerNorm_1,
channel_mixing/Dense_0, channel_mixing/Dense_1}/...``, ``pre_head_layer_norm/...`` and
``head/...``. Dense kernels are in × out (PyTorch's Linear is out × in); LayerNorm's
``scale`` is PyTorch's ``weight``. The official model uses flax's tanh GELU and LayerNorm
epsilon 1e-6, so models loaded from here use them too.
"""

from __future__ import annotations

import io
import math
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..fileio import atomic_path
from ..models.config import MixerConfig

# (official sub-path, our sub-path) inside one block; kernels are transposed, norms renamed.
_BLOCK_LAYERS = [
    ("LayerNorm_0", "token_norm"),
    ("token_mixing/Dense_0", "token_mixing.fc1"),
    ("token_mixing/Dense_1", "token_mixing.fc2"),
    ("LayerNorm_1", "channel_norm"),
    ("channel_mixing/Dense_0", "channel_mixing.fc1"),
    ("channel_mixing/Dense_1", "channel_mixing.fc2"),
]
_TOP_LAYERS = [("pre_head_layer_norm", "norm"), ("head", "head")]
_PARAM = {"kernel": "weight", "scale": "weight", "bias": "bias"}
_BLOCK_KEY = re.compile(r"MixerBlock_(\d+)/(.+)/(kernel|scale|bias)$")
_TOP_KEY = re.compile(r"(stem|pre_head_layer_norm|head)/(kernel|scale|bias)$")


def _layer_map(num_blocks: int) -> dict[str, str]:
    pairs = list(_TOP_LAYERS)
    for i in range(num_blocks):
        pairs += [
            (f"MixerBlock_{i}/{ours_o}", f"blocks.{i}.{ours}") for ours_o, ours in _BLOCK_LAYERS
        ]
    return dict(pairs)


def _to_torch(official: str, array: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if official == "stem/kernel":
        return tensor.permute(3, 2, 0, 1).contiguous()  # HWIO -> (C, in, Ph, Pw)
    if official.endswith("/kernel"):
        return tensor.t().contiguous()  # in x out -> out x in
    return tensor


MAX_NPZ_BYTES = 2**36  # 64 GiB unpacked; Mixer-H/14 in float32 is 1.7 GB
MAX_NPZ_RATIO = 20  # unpacked / packed; weights barely compress (np.savez does not at all)
NPZ_RATIO_SLACK = 64 * 2**20  # small archives may compress better (zero heads, tiny fixtures)
MAX_NPZ_MEMBERS = 100_000


def _check_expansion(path: str | Path, members: list[zipfile.ZipInfo]) -> None:
    """Refuse zip bombs: the sizes the archive declares are checked before anything is unpacked.

    A 2.5 MB .npz of compressed zeros unpacked to 2.2 GB. Real weights are stored
    uncompressed or barely compress, so a total over `MAX_NPZ_RATIO` times the packed size
    (plus a slack for small files) or over `MAX_NPZ_BYTES` is refused.
    """
    if len(members) > MAX_NPZ_MEMBERS:
        raise CheckpointError(
            f"{path}: {len(members):,} arrays is more than the limit of {MAX_NPZ_MEMBERS:,}"
        )
    unpacked = sum(info.file_size for info in members)
    packed = sum(info.compress_size for info in members)
    budget = min(MAX_NPZ_BYTES, MAX_NPZ_RATIO * packed + NPZ_RATIO_SLACK)
    if unpacked > budget:
        raise CheckpointError(
            f"{path}: the archive unpacks to {unpacked:,} bytes from {packed:,} "
            f"(limit {budget:,}: at most {MAX_NPZ_RATIO}x the packed size, "
            f"{MAX_NPZ_BYTES:,} in all); refusing a possible zip bomb"
        )


def _check_member_sizes(path: str | Path) -> None:
    """Refuse .npy members whose header claims more data than the member holds.

    numpy would otherwise allocate the claimed array before noticing the data is missing:
    a few bytes could ask for tens of gigabytes.
    """
    with zipfile.ZipFile(path) as archive:
        _check_expansion(path, archive.infolist())
        for info in archive.infolist():
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(member)
                claimed = math.prod(shape) * dtype.itemsize
                if claimed > info.file_size - member.tell():
                    raise CheckpointError(
                        f"{path}: {info.filename} claims an array of shape {shape} "
                        f"({claimed:,} bytes) but holds {info.file_size:,} bytes; truncated or forged"
                    )


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of an .npz file, never unpickling; unreadable files raise `CheckpointError`."""
    try:
        _check_member_sizes(path)
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError, MemoryError) as err:
        raise CheckpointError(f"{path}: not a readable .npz checkpoint ({err})") from err


def official_to_state(
    arrays: dict[str, np.ndarray], source: Any = "npz"
) -> dict[str, torch.Tensor]:
    """Official flat keys -> this package's state dict. Unknown keys raise `CheckpointError`."""
    blocks = {int(m.group(1)) for k in arrays if (m := _BLOCK_KEY.match(k))}
    layers = _layer_map(len(blocks))
    state: dict[str, torch.Tensor] = {}
    unknown = []
    for key, array in arrays.items():
        if key.startswith("stem/"):
            ours = "stem.proj." + _PARAM.get(key.split("/")[-1], "?")
        else:
            layer, _, param = key.rpartition("/")
            if layer not in layers or param not in _PARAM:
                unknown.append(key)
                continue
            ours = f"{layers[layer]}.{_PARAM[param]}"
        if not np.issubdtype(array.dtype, np.floating):
            raise CheckpointError(f"{source}: {key} has dtype {array.dtype}, expected floats")
        _check_rank(key, array, source)
        state[ours] = _to_torch(key, array)
    if unknown:
        shown = ", ".join(sorted(unknown)[:8])
        raise CheckpointError(f"{source}: keys that are not Mixer parameters: {shown}")
    return state


def _expected_rank(key: str) -> int:
    """stem/kernel is HWIO (4-d), other kernels in x out (2-d), scales and biases 1-d."""
    if key == "stem/kernel":
        return 4
    return 2 if key.endswith("/kernel") else 1


def _check_rank(key: str, array: np.ndarray, source: Any) -> None:
    """A 0-d (or otherwise misshapen) array is refused by name before any transpose of it."""
    expected = _expected_rank(key)
    if array.ndim != expected:
        raise CheckpointError(
            f"{source}: {key} has shape {array.shape} ({array.ndim}-d); an official Mixer's "
            f"{key.rsplit('/', 1)[-1]} is {expected}-d"
        )


def state_to_official(state: dict[str, torch.Tensor], num_blocks: int) -> dict[str, np.ndarray]:
    """This package's state dict -> official flat keys and layouts (float32)."""
    ours_to_official = {v: k for k, v in _layer_map(num_blocks).items()}
    ours_to_official["stem.proj"] = "stem"
    out = {}
    for key, tensor in state.items():
        layer, _, param = key.rpartition(".")
        official_layer = ours_to_official[layer]
        array = tensor.detach().float().cpu()
        if param == "weight" and array.ndim >= 2:
            name = "kernel"
            array = array.permute(2, 3, 1, 0) if array.ndim == 4 else array.t()
        else:
            name = "scale" if param == "weight" else "bias"
        out[f"{official_layer}/{name}"] = np.ascontiguousarray(array.numpy())
    return out


def write_npz(path: str | Path, config: MixerConfig, state: dict[str, torch.Tensor]) -> None:
    """Write the official .npz layout (atomically). Warns when the model is not tanh-GELU."""
    if config.gelu != "tanh":
        warnings.warn(
            f"the official .npz layout implies tanh GELU; this model uses gelu={config.gelu!r}, "
            "so the saved weights will compute slightly different outputs when loaded as official",
            stacklevel=3,
        )
    arrays = state_to_official(state, config.num_blocks)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
