"""Higher-resolution fine-tuning: block-diagonal replication of the token-mixing MLPs.

The paper's fine-tuning appendix: going from S to K²·S tokens with the same patch size,
each token-mixing weight becomes a block-diagonal matrix of K² copies (D_S -> K²·D_S),
so that each of the K² groups of S tokens is mixed exactly as the original image was.

Tokens are numbered row-major over the new (Kh·gh) × (Kw·gw) patch grid. The groups are the
Kh × Kw windows of gh × gw patches each — the original grid's shape — so a window of the
new image is mixed as a whole original image. An image tiled Kh × Kw therefore gives the
same per-token features in every window, and the same pooled logits as the single image.
Kh and Kw may differ (non-square); both must be integers.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import ConfigError
from .config import MixerConfig, to_pair


def window_token_index(grid: tuple[int, int], k: tuple[int, int]) -> torch.Tensor:
    """Index (K², S) of the new grid's tokens, window by window, in original row-major order.

    ``grid`` is the original (gh, gw) patch grid and ``k`` the (Kh, Kw) replication factors.
    Row ``w`` lists, for window ``w`` (row-major over windows), the new token index of each
    original token position.
    """
    (gh, gw), (kh, kw) = grid, k
    rows = torch.arange(kh * gh).view(kh, gh, 1, 1)  # window row, row within window
    cols = torch.arange(kw * gw).view(1, 1, kw, gw)
    index = rows * (kw * gw) + cols  # (kh, gh, kw, gw): new token index
    return index.permute(0, 2, 1, 3).reshape(kh * kw, gh * gw)


def replication_factors(config: MixerConfig, img_size: tuple[int, int]) -> tuple[int, int]:
    """(Kh, Kw) such that the new patch grid is (Kh·gh, Kw·gw); error if not integers."""
    (gh, gw), (ph, pw) = config.grid_size, config.patch_size
    new_grid = (img_size[0] // ph, img_size[1] // pw)
    if img_size[0] % ph or img_size[1] % pw or new_grid[0] % gh or new_grid[1] % gw:
        raise ConfigError(
            f"cannot resize from img_size {config.img_size} to {img_size}: with patch size "
            f"{config.patch_size} the new patch grid must be an integer multiple of {(gh, gw)} "
            f"along each side (e.g. img_size {(2 * config.img_size[0], 2 * config.img_size[1])})"
        )
    return new_grid[0] // gh, new_grid[1] // gw


def tile_rows(w: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """A layer reading tokens, w (R, S), as a block-diagonal (K²·R, K²·S) over the windows.

    Output unit ``w·R + r`` is unit ``r`` of the original, restricted to window ``w``.
    """
    windows, s = index.shape
    new = w.new_zeros(windows, w.shape[0], windows * s)
    for window in range(windows):
        new[window][:, index[window]] = w
    return new.reshape(windows * w.shape[0], windows * s)


def tile_cols(w: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """A layer writing tokens, w (S, R), as a block-diagonal (K²·S, K²·R) over the windows."""
    windows, s = index.shape
    new = w.new_zeros(windows * s, windows, w.shape[1])
    for window in range(windows):
        new[index[window], window] = w
    return new.reshape(windows * s, -1)


def tile_square(w: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """A token-to-token layer, w (S, S), as a block-diagonal (K²·S, K²·S) over the windows."""
    windows, s = index.shape
    new = w.new_zeros(windows * s, windows * s)
    for window in range(windows):
        new[index[window][:, None], index[window]] = w
    return new


def tile_tokens(b: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """A per-token vector (S,) repeated into every window: (K²·S,)."""
    new = b.new_empty(index.numel())
    new[index.reshape(-1)] = b.repeat(index.shape[0])
    return new


def tile_token_linear(state: dict[str, torch.Tensor], prefix: str, index: torch.Tensor) -> None:
    """Tile, in place in ``state``, the S × S token Linear at ``prefix`` (weight and bias)."""
    state[prefix + "weight"] = tile_square(state[prefix + "weight"], index)
    state[prefix + "bias"] = tile_tokens(state[prefix + "bias"], index)


def block_diagonal_token_mlp(
    w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replicate one token MLP (w1: (D_S, S), w2: (S, D_S)) over the windows in ``index`` (K², S).

    Hidden unit ``w·D_S + d`` of the new MLP is unit ``d`` of the original, restricted to
    window ``w``; every weight between different windows is zero.
    """
    windows = index.shape[0]
    return tile_rows(w1, index), b1.repeat(windows), tile_cols(w2, index), tile_tokens(b2, index)


def resize_token_mixing(
    state: Mapping[str, torch.Tensor], config: MixerConfig, img_size: int | tuple[int, int]
) -> tuple[dict[str, torch.Tensor], MixerConfig]:
    """State dict and config of the model adapted to ``img_size`` (see the module docstring)."""
    img_size = to_pair(img_size, "img_size")
    k = replication_factors(config, img_size)
    index = window_token_index(config.grid_size, k)
    new_state = dict(state)
    for i in range(config.num_blocks):
        p = f"blocks.{i}.token_mixing."
        new = block_diagonal_token_mlp(
            state[p + "fc1.weight"],
            state[p + "fc1.bias"],
            state[p + "fc2.weight"],
            state[p + "fc2.bias"],
            index,
        )
        for name, tensor in zip(
            ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"), new, strict=True
        ):
            new_state[p + name] = tensor
    new_config = config.replace(
        img_size=img_size, tokens_mlp_dim=config.tokens_mlp_dim * k[0] * k[1]
    )
    return new_state, new_config
