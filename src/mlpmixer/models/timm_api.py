"""timm's model API for the family: what timm's tools call on a model.

``pretrained_cfg`` / ``default_cfg``, ``get_classifier``, ``reset_classifier``,
``forward_intermediates``, ``group_matcher``, ``set_grad_checkpointing``, ``no_weight_decay``
and the project's ``param_groups``. A mixin of `MlpFamilyModel` (models/base.py), which
provides ``config``, ``stem``, ``blocks``, ``norm``, ``head`` and the forward pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .params import no_weight_decay_names, weight_decay_groups

OUTPUT_FORMATS = ("NCHW", "NLC")
GLOBAL_POOLS = ("", "avg")


def take_indices(num_blocks: int, indices: int | Sequence[int] | None) -> list[int]:
    """timm's block selection: None all, an int n the last n, a sequence those (negative ok)."""
    if indices is None:
        indices = num_blocks
    if isinstance(indices, int):
        if not 0 < indices <= num_blocks:
            raise ConfigError(f"indices={indices}: last-n must be in 1..{num_blocks}")
        return list(range(num_blocks - indices, num_blocks))
    taken = [i + num_blocks if i < 0 else i for i in indices]
    bad = [i for i, t in zip(indices, taken, strict=True) if not 0 <= t < num_blocks]
    if bad or not taken:
        raise ConfigError(f"block indices {list(indices)} out of range for {num_blocks} blocks")
    return taken


class TimmApi:
    """timm's model API (a mixin of `MlpFamilyModel`)."""

    def forward_intermediates(
        self,
        images: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Block outputs as timm returns them, plus (unless ``intermediates_only``) the features.

        ``indices``: None every block, an int n the last n, a sequence those blocks (negative
        from the end). ``norm`` passes each through the final norm. ``output_fmt`` 'NCHW'
        gives (B, C, gh, gw), 'NLC' (B, S, C). ``stop_early`` skips the blocks after the last
        one taken (the returned features are then those of that block, normalised).
        Returns ``(features (B, S, C), [intermediates])`` or the list alone.
        """
        if output_fmt not in OUTPUT_FORMATS:
            raise ConfigError(f"output_fmt must be one of {OUTPUT_FORMATS}, got {output_fmt!r}")
        taken = take_indices(len(self.blocks), indices)
        last = max(taken) if stop_early else len(self.blocks) - 1
        images = self.checked(images)
        x = self.stem(images)
        intermediates = []
        for i, block in enumerate(self.blocks[: last + 1]):
            x = self._run_block(block, x)
            if i in taken:
                intermediates.append(self.norm(x) if norm else x)
        if output_fmt == "NCHW":
            gh, gw = self.config.grid_size
            intermediates = [
                y.reshape(y.shape[0], gh, gw, -1).permute(0, 3, 1, 2).contiguous()
                for y in intermediates
            ]
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def layer_outputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The stem's output and every block's, each (B, S, C): the layers `analyze cka`
        compares (`StagedNet.layer_outputs` for the zoo's stages)."""
        x = self.stem(self.checked(images))
        outputs = [x]
        for block in self.blocks:
            x = self._run_block(block, x)
            outputs.append(x)
        return outputs

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """timm's feature description: one entry per block, all at the stem's stride."""
        ph, pw = self.config.patch_size
        reduction = ph if ph == pw else (ph, pw)
        width = self.config.hidden_dim
        return [
            {"module": f"blocks.{i}", "num_chs": width, "reduction": reduction}
            for i in range(len(self.blocks))
        ]

    def prune_intermediate_layers(
        self,
        indices: int | Sequence[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop the blocks after the last of ``indices`` (and the norm, the head), as timm does.

        Returns the block indices kept for `forward_intermediates`. A pruned model is a
        feature extractor: its config still describes the whole model, so it is not saved.
        """
        taken = take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: max(taken) + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return taken

    @property
    def pretrained_cfg(self) -> dict[str, Any]:
        """timm's preprocessing dict for this model's weights (from the config)."""
        c = self.config
        return {
            "num_classes": c.num_classes,
            "input_size": (c.in_chans, *c.img_size),
            "fixed_input_size": True,
            "mean": tuple(c.mean),
            "std": tuple(c.std),
            "interpolation": c.interpolation,
            "crop_pct": c.crop_pct,
            "pool_size": None,
            "first_conv": "stem.proj",
            "classifier": "head",
        }

    default_cfg = pretrained_cfg

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(
        self,
        num_classes: int,
        global_pool: str | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        """Replace the head with a zero-initialised one for ``num_classes`` (0: no head).

        ``global_pool`` '' keeps the tokens unpooled in `forward_head`, 'avg' pools them.
        """
        if global_pool is not None:
            if global_pool not in GLOBAL_POOLS:
                raise ConfigError(f"global_pool must be one of {GLOBAL_POOLS}, got {global_pool!r}")
            self.global_pool = global_pool
        names = tuple(class_names) if class_names is not None else None
        self.config = self.config.replace(num_classes=num_classes, class_names=names)
        param = next(self.parameters())
        self.head = self._new_head(num_classes).to(device=param.device, dtype=param.dtype)
        self.head.train(self.training)

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's parameter groups (layer-wise LR decay): the stem, each block, the final norm.

        ``coarse`` gives the same groups, as in timm for these models.
        """
        return {"stem": r"^stem", "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))]}

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward: less memory, ~30% more compute."""
        self.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        """Names of parameters that recipes exclude from weight decay: vectors (norms, biases,
        Affine, LayerScale)."""
        return no_weight_decay_names(self)

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups: matrices get ``weight_decay``, norms and biases get none."""
        return weight_decay_groups(self, weight_decay)
