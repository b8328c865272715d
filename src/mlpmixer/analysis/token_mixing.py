"""The token-mixing hidden units of a Mixer, seen as images on the patch grid (paper, Fig. 5).

Unit u of block b's first token-mixing layer has one weight per input patch:
``blocks[b].token_mixing.fc1.weight[u]`` (S,) reshaped to the (gh, gw) grid, row-major as
the stem orders patches. The paper pairs units of opposite phase and sorts the pairs by
spatial frequency; we do the same:

* pairing: greedily join the two unpaired units with the most negative correlation;
* frequency of a unit: the mean radial frequency of its (mean-removed) 2-D power spectrum,
  in cycles per patch; a pair is sorted by the mean of its two units' frequencies;
* spread of a unit: the root mean square distance (in patches) of its weight energy w²
  from the energy's centroid, over the grid's diagonal — small for local detectors, near
  0.3-0.4 for weights spread over the whole image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..models.base import MlpFamilyModel
from ..models.spec import families, family_spec


def require_token_weight(model: Any, command: str) -> None:
    """A one-line `ConfigError` naming the family where ``model`` has no token-mixing weight
    over a patch grid, and what to use instead.

    The zoo has none in the paper's sense (one weight per patch of the 2-D grid, shared by
    all channels): ViP's ``mlp_h`` / ``mlp_w`` are dense, but each row reads one axis's
    positions jointly with a segment's channels (an (H·S) slab), not the patch grid, and
    Hire-MLP's region MLPs likewise read a region's few positions jointly with channels;
    CycleMLP, AS-MLP and Wave-MLP move tokens by offsets, shifts and phases, with no weight
    over the tokens."""
    family = model.config.family
    if family_spec(family).token_weight is None:
        having = [spec.name for spec in families() if spec.token_weight is not None]
        raise ConfigError(f"{command} reads the token-mixing weights of an isotropic MLP; "
                          f"family {family!r} has none (families that do: {', '.join(having)}); "
                          f"analyze cka and analyze permutation take it")  # fmt: skip


def token_mixing_units(model: MlpFamilyModel, block: int) -> np.ndarray:
    """Block ``block``'s first token-mixing weights as (D_S, gh, gw) float64 images."""
    require_token_weight(model, "analyze tokens")
    if not 0 <= block < len(model.blocks):
        raise ConfigError(f"block {block} does not exist; the model has {len(model.blocks)}")
    # every family names its token-reading weight (units, S): Mixer/gMixer fc1, ResMLP/gMLP
    # the S x S token Linear
    weight = model.token_mixing_weight(block).detach().double().cpu().numpy()
    return weight.reshape(weight.shape[0], *model.config.grid_size)


def radial_frequency(units: np.ndarray) -> np.ndarray:
    """Mean radial frequency (cycles/patch) of each unit's power spectrum: (U, gh, gw) -> (U,)."""
    gh, gw = units.shape[1:]
    centred = units - units.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(centred)) ** 2
    fy, fx = np.meshgrid(np.fft.fftfreq(gh), np.fft.fftfreq(gw), indexing="ij")
    radius = np.sqrt(fx**2 + fy**2)
    total = power.sum(axis=(1, 2))
    return (power * radius).sum(axis=(1, 2)) / np.maximum(total, 1e-30)


def spatial_spread(units: np.ndarray) -> np.ndarray:
    """RMS distance of each unit's energy from its centroid, over the grid diagonal: (U,)."""
    gh, gw = units.shape[1:]
    energy = units**2
    energy = energy / np.maximum(energy.sum(axis=(1, 2), keepdims=True), 1e-30)
    ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    cy = (energy * ys).sum(axis=(1, 2), keepdims=True)
    cx = (energy * xs).sum(axis=(1, 2), keepdims=True)
    var = (energy * ((ys - cy) ** 2 + (xs - cx) ** 2)).sum(axis=(1, 2))
    return np.sqrt(var) / np.hypot(gh, gw)


def pair_opposite_units(units: np.ndarray) -> list[tuple[int, int]]:
    """Greedy pairs of units with the most negative correlation (an odd one out is unpaired)."""
    flat = units.reshape(len(units), -1)
    corr = np.corrcoef(flat) if flat.shape[1] > 1 else np.zeros((len(flat), len(flat)))
    corr = np.nan_to_num(corr)  # a constant unit correlates with nothing
    i, j = np.triu_indices(len(units), k=1)
    order = np.argsort(corr[i, j], kind="stable")
    paired: set[int] = set()
    pairs = []
    for a, b in zip(i[order], j[order], strict=True):
        if a not in paired and b not in paired:
            pairs.append((int(a), int(b)))
            paired.update((a, b))
    pairs += [(int(u), int(u)) for u in range(len(units)) if u not in paired]
    return pairs


def sorted_unit_order(units: np.ndarray) -> tuple[list[int], list[tuple[int, int]]]:
    """Units ordered as in the figure: opposite-phase pairs side by side, low frequency first.

    Within a pair, the unit whose largest-magnitude weight is positive comes first.
    Returns (order, pairs), pairs in display order.
    """
    freq = radial_frequency(units)
    pairs = pair_opposite_units(units)
    pairs.sort(key=lambda p: (freq[p[0]] + freq[p[1]]) / 2)
    peak_sign = [np.sign(u.flat[np.abs(u).argmax()]) for u in units]
    pairs = [(a, b) if peak_sign[a] >= peak_sign[b] else (b, a) for a, b in pairs]
    order = [u for a, b in pairs for u in ((a,) if a == b else (a, b))]
    return order, pairs


@dataclass
class BlockUnits:
    """One block's units in display order, with the numbers the figure summarises."""

    block: int  # 0-based
    num_units: int
    grid: tuple[int, int]
    order: list[int]
    pair_correlation: list[float]  # per pair, in display order
    frequency: list[float]  # per unit, in display order (cycles per patch)
    spread: list[float]  # per unit, in display order
    images: np.ndarray  # (D_S, gh, gw) in display order

    def summary(self) -> dict[str, Any]:
        """JSON-ready numbers (without the weights)."""
        out = asdict(self)
        out.pop("images")
        corr = np.asarray(self.pair_correlation)
        out["fraction_opposite_pairs"] = float((corr < -0.5).mean()) if len(corr) else 0.0
        out["median_spread"] = float(np.median(self.spread))
        out["median_frequency"] = float(np.median(self.frequency))
        return out


def analyze_token_mixing(model: MlpFamilyModel, blocks: list[int]) -> list[BlockUnits]:
    """Sorted token-mixing units and their statistics for each block in ``blocks`` (0-based)."""
    results = []
    for b in blocks:
        units = token_mixing_units(model, b)
        order, pairs = sorted_unit_order(units)
        flat = units.reshape(len(units), -1)
        corr = [float(np.corrcoef(flat[a], flat[c])[0, 1]) if a != c else 0.0 for a, c in pairs]
        results.append(
            BlockUnits(
                block=b,
                num_units=len(units),
                grid=tuple(units.shape[1:]),
                order=order,
                pair_correlation=[float(np.nan_to_num(c)) for c in corr],
                frequency=radial_frequency(units)[order].tolist(),
                spread=spatial_spread(units)[order].tolist(),
                images=units[order],
            )
        )
    return results
