"""Linear CKA (Kornblith et al., 2019) between the layers of one or two models (any family).

For representations X (n, p) and Y (n, q) of the same n images, with H = I - 11ᵀ/n:

    CKA(X, Y) = <HKH, HLH>_F / (||HKH||_F ||HLH||_F),   K = X Xᵀ, L = Y Yᵀ,

which equals ||Ycᵀ Xc||²_F / (||Xcᵀ Xc||_F ||Ycᵀ Yc||_F) for centred Xc, Yc. It is 1 for
X = Y, and invariant to orthogonal transforms and isotropic scaling of either side. Working
with the n×n Gram matrices keeps the cost independent of the width p = S·C.

A model's layers here are the stem output and each block's output (`layer_outputs`), each
flattened to one vector per image, (n, S·C) (all tokens, as in studies of ViT
representations). For the zoo's pyramids the blocks are those of every stage in forward
order, numbered on through the stages, each flattened likewise to (n, H_i·W_i·C_i).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import ConfigError
from ..progress import counted

log = logging.getLogger(__name__)


def centered_gram(x: torch.Tensor) -> torch.Tensor:
    """H (X Xᵀ) H for X (n, ...) flattened to (n, p); float64, (n, n)."""
    x = x.reshape(len(x), -1).double()
    x = x - x.mean(0)  # centring the features centres the Gram matrix on both sides
    return x @ x.T


def cka_from_grams(k: torch.Tensor, l: torch.Tensor) -> float:  # noqa: E741 - the paper's name
    """CKA from two centred Gram matrices (n, n)."""
    hsic = (k * l).sum()
    norm = torch.linalg.matrix_norm(k) * torch.linalg.matrix_norm(l)
    return (hsic / norm).item() if norm > 0 else 0.0


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between two representations (n, ...) of the same n inputs."""
    if len(x) != len(y):
        raise ConfigError(f"CKA compares the same inputs: got {len(x)} and {len(y)} rows")
    return cka_from_grams(centered_gram(x), centered_gram(y))


@torch.no_grad()
def layer_grams(
    model: Any, images: torch.Tensor, batch_size: int = 128
) -> tuple[list[str], list[torch.Tensor]]:
    """Names ["stem", "block 1", ...] and the centred Gram matrix (n, n) of each layer's output.

    ``model``: any family's (its ``layer_outputs``). Activations (n, p) are collected per
    layer in float32 (n·p·4 bytes per layer), then reduced to Gram matrices.
    """
    model.eval()
    device = next(model.parameters()).device
    outputs: list[list[torch.Tensor]] = []
    starts = range(0, len(images), batch_size)
    for start in counted(starts, log, "CKA: activations of every layer"):
        layers = model.layer_outputs(images[start : start + batch_size].to(device))
        outputs = outputs or [[] for _ in layers]
        for out, layer in zip(outputs, layers, strict=True):
            out.append(layer.float().flatten(1).cpu())
    names = ["stem"] + [f"block {i}" for i in range(1, len(outputs))]
    return names, [centered_gram(torch.cat(out)) for out in outputs]


@dataclass
class CkaResult:
    layers_a: list[str]
    layers_b: list[str]
    cka: list[list[float]]  # cka[i][j]: layer i of model A vs layer j of model B
    num_images: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cka_matrix(
    model_a: Any,
    images: torch.Tensor,
    model_b: Any = None,
    batch_size: int = 128,
) -> CkaResult:
    """Linear CKA between every pair of layers of ``model_a`` (and ``model_b``, if given).

    ``images`` (n, in_chans, H, W) are preprocessed for both models, which must therefore
    take the same input size and channels.
    """
    if len(images) < 2:
        raise ConfigError(f"CKA needs at least 2 images, got {len(images)}")
    if model_b is not None:
        a, b = model_a.config, model_b.config
        if (a.in_chans, a.img_size) != (b.in_chans, b.img_size):
            raise ConfigError(
                f"the two models take different inputs: {a.in_chans}x{a.img_size} and "
                f"{b.in_chans}x{b.img_size}"
            )
    names_a, grams_a = layer_grams(model_a, images, batch_size)
    names_b, grams_b = (names_a, grams_a)
    if model_b is not None:
        names_b, grams_b = layer_grams(model_b, images, batch_size)
    matrix = [[cka_from_grams(ka, kb) for kb in grams_b] for ka in grams_a]
    return CkaResult(names_a, names_b, matrix, len(images))
