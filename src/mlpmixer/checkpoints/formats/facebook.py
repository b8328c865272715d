"""ResMLP's original checkpoints (facebookresearch/deit ``resmlp_models.py``).

Key names: ``patch_embed.proj`` (the stem), per block ``norm1`` (Affine α, β of shape (C,)),
``attn`` (the S × S token Linear, named after the transformer block it replaces),
``gamma_1`` / ``gamma_2`` (LayerScale), ``norm2``, ``mlp.fc1`` / ``mlp.fc2``; then ``norm``
(Affine) and ``head``. Layouts equal this package's. The released files wrap the weights
in ``{"model": ...}`` (unwrapped by the reader). The models use the exact GELU and ImageNet
mean/std. Read only (``convert --to timm`` writes the same weights in timm's ResMLP names).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ...models.config import IMAGENET_MEAN, IMAGENET_STD
from ..timm_format import rename_block_keys
from .base import Candidate, Checkpoint, CheckpointFormat, in_torch_file

FACEBOOK_MARKER = "blocks.0.attn.weight"
FACEBOOK_BLOCK_NAMES = {
    "norm1": "token_norm",
    "attn": "token_mixing",
    "gamma_1": "token_scale",
    "norm2": "channel_norm",
    "mlp": "channel_mixing",
    "gamma_2": "channel_scale",
}
FACEBOOK_FIELDS = {
    "gelu": "none",
    "mean": IMAGENET_MEAN,
    "std": IMAGENET_STD,
}


def is_facebook_resmlp(state: Mapping[str, torch.Tensor]) -> bool:
    return FACEBOOK_MARKER in state and "patch_embed.proj.weight" in state


def _detect(candidate: Candidate) -> bool:
    return candidate.holds_tensors and is_facebook_resmlp(candidate.state)


def _read(candidate: Candidate) -> Checkpoint:
    return candidate.read_as(FORMAT, facebook_to_state(candidate.state))


def facebook_to_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """deit's ResMLP key names -> this package's."""
    renamed = rename_block_keys(state, FACEBOOK_BLOCK_NAMES)
    return {k.replace("patch_embed.", "stem.", 1): v for k, v in renamed.items()}


FORMAT = CheckpointFormat(
    name="facebook",
    detect=_detect,
    read=_read,
    defaults=FACEBOOK_FIELDS,
    tensors_only=in_torch_file,
)
