"""timm's feature extraction for the family: ``feature_info`` and the ``features_only`` model.

Every block keeps the token grid, so each block output is a feature map at the stem's stride:
``feature_info`` lists one entry per block (``module='blocks.i'``, ``num_chs=C``,
``reduction=P``), and `FeatureGetter` — what ``create_model(..., features_only=True)`` returns,
like timm's getter-style feature models for its Mixers — returns the outputs of the blocks
``out_indices`` (default: the last 3) through the model's ``forward_intermediates``, as
(B, C, H/P, W/P) maps (``output_fmt='NCHW'``, timm's default) or (B, S, C) (``'NLC'``).
"""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from .timm_api import take_indices


class FeatureInfo:
    """The selected entries of a model's ``feature_info``, with timm's accessors."""

    def __init__(self, info: Sequence[dict[str, Any]], out_indices: Sequence[int]) -> None:
        self.info = [dict(info[i], index=i) for i in out_indices]
        self.out_indices = tuple(out_indices)

    def get(self, key: str, idx: int | Sequence[int] | None = None) -> Any:
        if idx is None:
            return [entry[key] for entry in self.info]
        if isinstance(idx, int):
            return self.info[idx][key]
        return [self.info[i][key] for i in idx]

    def get_dicts(self, keys: Sequence[str] | None = None, idx: Any = None) -> Any:
        picked = self.info if idx is None else [self.info[i] for i in (
            [idx] if isinstance(idx, int) else idx)]  # fmt: skip
        dicts = [{k: e[k] for k in keys} if keys else dict(e) for e in picked]
        return dicts[0] if isinstance(idx, int) else dicts

    def channels(self, idx: Any = None) -> Any:
        return self.get("num_chs", idx)

    def reduction(self, idx: Any = None) -> Any:
        return self.get("reduction", idx)

    def module_name(self, idx: Any = None) -> Any:
        return self.get("module", idx)

    def __getitem__(self, item: int) -> dict[str, Any]:
        return self.info[item]

    def __len__(self) -> int:
        return len(self.info)


class FeatureGetter(nn.Module):
    """A family model as a feature extractor: ``forward(images)`` -> [block outputs].

    ``prune=True`` drops the blocks after the last one taken, the head and (unless ``norm``)
    the final norm, as timm does.
    """

    def __init__(
        self,
        model: nn.Module,
        out_indices: int | Sequence[int] = 3,
        norm: bool = False,
        output_fmt: str = "NCHW",
        prune: bool = True,
    ) -> None:
        super().__init__()
        indices = take_indices(len(model.blocks), out_indices)
        info = model.feature_info
        if prune:
            model.prune_intermediate_layers(indices, prune_norm=not norm, prune_head=True)
        self.model = model
        self.out_indices = indices
        self.norm = norm
        self.output_fmt = output_fmt
        self.feature_info = FeatureInfo(info, indices)

    # Python-side properties that torch.jit.script must not compile (they read the config)
    __jit_unused_properties__: ClassVar[list[str]] = ["pretrained_cfg", "default_cfg"]

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """The wrapped model's preprocessing dict: timm's feature models carry it too, and its
        tools (``resolve_data_config``, timm's own tests) read it from them."""
        return self.model.pretrained_cfg

    default_cfg = pretrained_cfg

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_intermediates(
            images, indices=self.out_indices, norm=self.norm, output_fmt=self.output_fmt,
            intermediates_only=True,
        )  # fmt: skip


# As `MlpFamilyModel.forward`: real types, not strings, for torch.fx's code to script.
FeatureGetter.forward.__annotations__ = typing.get_type_hints(FeatureGetter.forward)
