"""Order invariance (paper, Sec. 3.4): train on images whose pixels are permuted in a fixed way.

Three versions of a data set are compared:

* ``original``;
* ``patch+pixel``: the P×P patches shuffled by one fixed permutation of the S patch positions,
  and the pixels inside every patch by one fixed permutation of the P·P positions;
* ``global``: one fixed permutation of all H·W pixel positions.

The patches are the model's: a Mixer-family model's ``patch_size``, a pyramid's first-level
stride (`study_patch`), so that the study runs for every family (the paper's for the Mixer).

Mixer treats patches as an unordered set of tokens and each patch as a flat vector, so a
patch+pixel permutation can be folded into its weights: with the stem's columns permuted by
the pixel permutation and the token-mixing weights by the patch permutation (`fold_permutation`),
the folded model computes on permuted images exactly what the original computes on the
originals. Training preserves this (gradients are permuted alike and Adam is elementwise),
so with the same seed and the folded initialisation, the Mixer trained on permuted data is
the Mixer trained on plain data, permuted. A CNN has no such symmetry.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ..models.config import to_pair
from ..models.family import build_model
from ..models.mixer import MlpMixer

VARIANTS = ("original", "patch+pixel", "global")


def study_patch(config: Any) -> tuple[int, int]:
    """The patch the patch+pixel permutation cuts images into: the config's ``patch_size``
    (the Mixer families, ViP, AS-MLP), else the stride of the model's first pyramid level
    (CycleMLP's, Wave-MLP's and Hire-MLP's overlapping stems). A `ConfigError` unless it
    divides the image size."""
    patch = getattr(config, "patch_size", None)
    if patch is None:
        patch = build_model(config).feature_info[0]["reduction"]
    patch = to_pair(patch, "patch_size")
    if any(size % p for size, p in zip(config.img_size, patch, strict=True)):
        raise ConfigError(f"img_size {tuple(config.img_size)} is no multiple of the study's "
                          f"patch {patch}")  # fmt: skip
    return patch


def foldable(model: torch.nn.Module) -> bool:
    """Whether `fold_permutation` is written for ``model``: a Mixer (or gMixer) — a patch
    stem and token MLPs ``fc1``/``fc2``. Other families' token mixing (S x S gates, shifts,
    convolutions) has no fold here, and the study runs without the exact check."""
    return isinstance(model, MlpMixer)


@dataclass(frozen=True)
class Permutations:
    """Fixed permutations for images of ``img_size`` cut into ``patch_size`` patches.

    Index convention: position i of the permuted object takes the element at ``perm[i]``.
    """

    img_size: tuple[int, int]
    patch_size: tuple[int, int]
    patches: torch.Tensor  # (S,) over row-major patch positions
    pixels: torch.Tensor  # (ph·pw,) over row-major positions inside a patch
    global_pixels: torch.Tensor  # (H·W,) over row-major pixel positions

    @classmethod
    def random(
        cls, img_size: tuple[int, int], patch_size: tuple[int, int], seed: int = 0
    ) -> Permutations:
        g = torch.Generator().manual_seed(seed)
        (h, w), (ph, pw) = img_size, patch_size
        return cls(
            tuple(img_size),
            tuple(patch_size),
            torch.randperm((h // ph) * (w // pw), generator=g),
            torch.randperm(ph * pw, generator=g),
            torch.randperm(h * w, generator=g),
        )

    def apply(self, images: torch.Tensor, variant: str) -> torch.Tensor:
        """``images`` (B, C, H, W) in the given variant (one of `VARIANTS`)."""
        if variant == "original":
            return images
        if variant == "patch+pixel":
            return permute_patches_and_pixels(images, self.patch_size, self.patches, self.pixels)
        if variant == "global":
            return images.flatten(2)[..., self.global_pixels].view_as(images)
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")


def permute_patches_and_pixels(
    images: torch.Tensor, patch_size: tuple[int, int], patches: torch.Tensor, pixels: torch.Tensor
) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H, W): patch t is old patch ``patches[t]`` with its pixels
    rearranged so that position q holds old position ``pixels[q]`` (same for every patch and
    channel)."""
    b, c, h, w = images.shape
    ph, pw = patch_size
    gh, gw = h // ph, w // pw
    tiles = images.reshape(b, c, gh, ph, gw, pw).permute(0, 1, 2, 4, 3, 5)
    tiles = tiles.reshape(b, c, gh * gw, ph * pw)[:, :, patches][..., pixels]
    tiles = tiles.reshape(b, c, gh, gw, ph, pw).permute(0, 1, 2, 4, 3, 5)
    return tiles.reshape(b, c, h, w)


@torch.no_grad()
def fold_permutation(model: MlpMixer, perms: Permutations) -> MlpMixer:
    """A copy of ``model`` whose output on ``perms.apply(x, "patch+pixel")`` equals model(x).

    Stem: weight (C, in, ph, pw) -> columns taken at the pixel permutation. Every block's
    token mixing: fc1 (D_S, S) columns, fc2 (S, D_S) rows and fc2's bias (S,) taken at the
    patch permutation. Nothing else depends on positions (the head averages over tokens).
    """
    folded = copy.deepcopy(model)
    weight = folded.stem.proj.weight
    c, i, ph, pw = weight.shape
    weight.copy_(weight.reshape(c, i, ph * pw)[..., perms.pixels].reshape(c, i, ph, pw))
    for block in folded.blocks:
        mlp = block.token_mixing
        mlp.fc1.weight.copy_(mlp.fc1.weight[:, perms.patches])
        mlp.fc2.weight.copy_(mlp.fc2.weight[perms.patches])
        mlp.fc2.bias.copy_(mlp.fc2.bias[perms.patches])
    return folded
