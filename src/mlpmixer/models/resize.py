"""Fine-tuning at another resolution: the token-mixing weights of a new patch grid.

Only the token-mixing layers depend on the number of tokens S; everything else is shared by
all tokens. A `TokenResize` maps each kind of token weight from the old grid (gh, gw) to the
new one (gh', gw') (same patch size); each block applies it to its own layers
(``resized_token_weights``). Two ways, chosen by the sizes:

**Tiling (exact)**, when the new grid is an integer multiple (Kh·gh, Kw·gw) — the paper's
fine-tuning appendix. Each token-mixing weight becomes block-diagonal over the Kh × Kw
windows of gh × gw patches (the original grid's shape), D_S -> Kh·Kw·D_S: a window of the new
image is mixed exactly as a whole original image. An image tiled Kh × Kw gives the same
per-token features in every window, and the same pooled logits as the single image. Tokens
are numbered row-major over the new grid.

**Resampling (an approximation)**, for any other grid. Each hidden unit's weights over the S
tokens are an image on the patch grid; they are resampled to the new grid (bilinear, with
antialiasing when shrinking) and D_S stays. The scale follows what the weights mean:

* a layer *reading* tokens (the token MLP's first layer, W1: (D_S, S)) sums over the tokens,
  so its weights are densities: resampled and multiplied by S / S', so that the sum over a
  smooth input keeps its size (a spatially constant input gives the same hidden response);
* a layer *writing* tokens (the second layer, W2: (S, D_S), and the per-token bias b2) gives a
  value at each token: resampled, not scaled (the response field is sampled at the new
  patches);
* an S × S token Linear (ResMLP's token mixing, gMLP's spatial gate) does both: its output
  axis is resampled as values, its input axis as densities (× S / S'); its bias as values.

A resampled model is not the original model on a resized image; it is a starting point that
keeps each unit's spatial pattern, which fine-tuning then adapts (docs/models.md shows it beats
training from scratch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .config import MixerConfig, to_pair
from .spec import family_spec

RESAMPLE_MODE = "bilinear"  # no overshoot (bicubic rings on sharp token weights)


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


def new_grid(config: MixerConfig, img_size: tuple[int, int]) -> tuple[int, int]:
    """The patch grid of ``img_size``; a `ConfigError` unless the patch size divides it."""
    ph, pw = config.patch_size
    if img_size[0] % ph or img_size[1] % pw:
        raise ConfigError(
            f"cannot resize from img_size {config.img_size} to {img_size}: the patch size "
            f"{config.patch_size} must divide the new size (e.g. img_size "
            f"{(img_size[0] // ph * ph or ph, img_size[1] // pw * pw or pw)})"
        )
    return img_size[0] // ph, img_size[1] // pw


def replication_factors(config: MixerConfig, img_size: tuple[int, int]) -> tuple[int, int] | None:
    """(Kh, Kw) if the new patch grid is (Kh·gh, Kw·gw) with integers K; else None."""
    (gh, gw), (nh, nw) = config.grid_size, new_grid(config, img_size)
    if nh % gh or nw % gw:
        return None
    return nh // gh, nw // gw


# ----- tiling: block-diagonal copies over the windows ------------------------------------


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


# ----- resampling: token weights as images on the patch grid -----------------------------


def resample_grid(
    t: torch.Tensor, old: tuple[int, int], new: tuple[int, int], dim: int = -1
) -> torch.Tensor:
    """``t`` with axis ``dim`` (gh·gw tokens, row-major) resampled to gh'·gw' tokens.

    Bilinear, antialiased when shrinking, corners not aligned (patch centres keep their
    relative positions); computed in float32 or wider, returned in ``t``'s dtype.
    """
    moved = t.movedim(dim, -1)
    lead = moved.shape[:-1]
    images = moved.reshape(-1, 1, *old)
    work = images if images.dtype in (torch.float32, torch.float64) else images.float()
    shrink = new[0] < old[0] or new[1] < old[1]
    out = F.interpolate(work, size=new, mode=RESAMPLE_MODE, align_corners=False, antialias=shrink)
    return out.to(t.dtype).reshape(*lead, math.prod(new)).movedim(-1, dim)


@dataclass(frozen=True)
class TokenResize:
    """How token weights go from the ``old`` patch grid to the ``new`` one.

    ``k`` is (Kh, Kw) for exact tiling, or None for resampling. The methods take one kind of
    weight each (see the module docstring); blocks call them on their own layers.
    """

    old: tuple[int, int]
    new: tuple[int, int]
    k: tuple[int, int] | None

    @property
    def exact(self) -> bool:
        return self.k is not None

    @property
    def hidden_factor(self) -> int:
        """How many times wider a token MLP's hidden layer becomes (K², or 1 resampling)."""
        return self.k[0] * self.k[1] if self.k else 1

    @property
    def density_scale(self) -> float:
        """S / S': what a resampled weight summed over the tokens is multiplied by."""
        return math.prod(self.old) / math.prod(self.new)

    def _index(self) -> torch.Tensor:
        assert self.k is not None
        return window_token_index(self.old, self.k)

    def reading(self, w: torch.Tensor) -> torch.Tensor:
        """Weights (R, S) of R units reading the tokens -> (R·K², S') or (R, S')."""
        if self.exact:
            return tile_rows(w, self._index())
        return resample_grid(w, self.old, self.new) * self.density_scale

    def writing(self, w: torch.Tensor) -> torch.Tensor:
        """Weights (S, R) writing R units to the tokens -> (S', R·K²) or (S', R)."""
        if self.exact:
            return tile_cols(w, self._index())
        return resample_grid(w, self.old, self.new, dim=0)

    def square(self, w: torch.Tensor) -> torch.Tensor:
        """An S × S token-to-token weight -> S' × S'."""
        if self.exact:
            return tile_square(w, self._index())
        return resample_grid(self.reading(w), self.old, self.new, dim=0)

    def per_token(self, b: torch.Tensor) -> torch.Tensor:
        """A value per token (S,) -> (S',)."""
        if self.exact:
            return tile_tokens(b, self._index())
        return resample_grid(b, self.old, self.new)

    def hidden(self, b: torch.Tensor) -> torch.Tensor:
        """A hidden unit's bias (R,) -> (R·K²,) tiling (one copy per window), else unchanged."""
        return b.repeat(self.hidden_factor)


def token_resize(config: MixerConfig, img_size: int | tuple[int, int]) -> TokenResize:
    """The `TokenResize` from ``config``'s image size to ``img_size`` (any multiple of the patch)."""
    img_size = to_pair(img_size, "img_size")
    return TokenResize(
        config.grid_size, new_grid(config, img_size), replication_factors(config, img_size)
    )


def resized_config(config: MixerConfig, resize: TokenResize) -> MixerConfig:
    """``config`` at the new grid, by its family's rule (`FamilySpec.resize`)."""
    spec = family_spec(config.family)
    if spec.resize is None:
        raise ConfigError(f"resizing is not written for family {config.family!r}")
    return spec.resize(config, resize)


def _with_size(config: MixerConfig, resize: TokenResize, tokens_mlp_dim: int) -> MixerConfig:
    img_size = (resize.new[0] * config.patch_size[0], resize.new[1] * config.patch_size[1])
    try:  # size limits refuse an absurd img_size by name before any weight is allocated
        return config.replace(img_size=img_size, tokens_mlp_dim=tokens_mlp_dim)
    except ConfigError as err:
        raise ConfigError(f"resizing to img_size={img_size}: {err}") from err


def resized_mlp_config(config: MixerConfig, resize: TokenResize) -> MixerConfig:
    """The rule of families with a token MLP (Mixer, gMixer): img_size, D_S × K² tiling."""
    return _with_size(config, resize, config.tokens_mlp_dim * resize.hidden_factor)


def resized_square_config(config: MixerConfig, resize: TokenResize) -> MixerConfig:
    """The rule of families with an S × S token Linear (ResMLP, gMLP): img_size, and
    ``tokens_mlp_dim`` (unused by them) kept equal to S when it was."""
    tokens_mlp_dim = config.tokens_mlp_dim * resize.hidden_factor
    if config.tokens_mlp_dim == config.num_tokens:
        tokens_mlp_dim = math.prod(resize.new)
    return _with_size(config, resize, tokens_mlp_dim)


def token_mlp_weights(
    mlp: torch.nn.Module, resize: TokenResize, prefix: str, halves: int = 1
) -> dict[str, torch.Tensor]:
    """A token MLP's weights at the new grid, named ``prefix`` + fc1/fc2 .weight/.bias.

    ``mlp.fc1`` reads the tokens, ``mlp.fc2`` writes them. ``halves=2`` for a SwiGLU, whose
    fc1 rows are values then gates: each half is resized on its own, so that the first half
    of the new hidden units are still the values and the second their gates.
    """
    w1, b1 = mlp.fc1.weight.detach(), mlp.fc1.bias.detach()
    new = {
        "fc1.weight": torch.cat([resize.reading(w) for w in w1.chunk(halves)]),
        "fc1.bias": torch.cat([resize.hidden(b) for b in b1.chunk(halves)]),
        "fc2.weight": resize.writing(mlp.fc2.weight.detach()),
        "fc2.bias": resize.per_token(mlp.fc2.bias.detach()),
    }
    return {prefix + name: t for name, t in new.items()}


def token_linear_weights(
    linear: torch.nn.Linear, resize: TokenResize, prefix: str
) -> dict[str, torch.Tensor]:
    """An S × S token Linear's weight and bias at the new grid, named ``prefix`` + weight/bias."""
    return {
        prefix + "weight": resize.square(linear.weight.detach()),
        prefix + "bias": resize.per_token(linear.bias.detach()),
    }
