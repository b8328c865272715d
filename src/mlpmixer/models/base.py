"""What every model of the family is: stem, blocks, norm, head, and the forward pass.

A family model is ``stem -> N blocks -> norm -> mean over tokens -> head`` on activations
(B, S, C); the families differ only in their block (and ResMLP in its norm). A subclass
sets ``family`` and implements `make_block` (and optionally `make_norm`,
`gates`; blocks define ``resized_token_weights``). The rest comes in pieces:

* here: construction (plain or fast layers, chosen once), ``forward_features``,
  ``forward_head``, ``check_input``, ``num_features``, ``resize``;
* `timm_api.TimmApi`: timm's model API (``pretrained_cfg``, ``reset_classifier``,
  ``forward_intermediates``, ``group_matcher``, ``no_weight_decay``...);
* `io.ModelIO`: ``from_state_dict``, ``save`` / ``save_pretrained`` / ``from_pretrained``.
"""

from __future__ import annotations

import copy
import typing
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError, InputShapeError
from .config import MixerConfig
from .family import build_model, family_class
from .fast import layer_set
from .fast.aside import traced
from .init import deferred_init, init_weights, linear
from .io import ModelIO
from .layers import PLAIN, LayerSet
from .resize import resized_config, token_resize
from .spec import family_spec
from .timm_api import GLOBAL_POOLS, OUTPUT_FORMATS, TimmApi, take_indices

__all__ = [
    "GLOBAL_POOLS",
    "OUTPUT_FORMATS",
    "MlpFamilyModel",
    "build_model",
    "family_class",
    "take_indices",
]


def _tree_copy(module: nn.Module) -> nn.Module:
    """Shallow copies of ``module`` and all its submodules, sharing parameters and buffers."""
    clone = copy.copy(module)
    clone._modules = {k: None if m is None else _tree_copy(m) for k, m in module._modules.items()}
    return clone


class MlpFamilyModel(nn.Module, TimmApi, ModelIO):
    """Base of `MlpMixer`, `GMixer`, `ResMlp` and `GMlp`: ``Model(config)`` or ``Model(**fields)``.

    ``forward(images)`` maps (B, in_chans, H, W) to logits (B, num_classes), or to pooled
    features (B, C) when ``num_classes == 0``.
    """

    # Python-side properties that torch.jit.script must not compile (they read the config)
    __jit_unused_properties__: ClassVar[list[str]] = [
        "pretrained_cfg", "default_cfg", "num_classes", "num_features", "head_hidden_size",
        "feature_info",
    ]  # fmt: skip
    family: ClassVar[str] = ""  # the `FamilySpec` name this class builds

    def __init__(
        self,
        config: MixerConfig | None = None,
        *,
        grad_checkpointing: bool = False,
        fast: bool | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        config = (config or MixerConfig(family=self.family)).replace(**overrides)
        if config.family != self.family:
            raise ConfigError(
                f"{type(self).__name__} builds family {self.family!r}, the config says "
                f"{config.family!r}; use mlpmixer.models.build_model(config)"
            )
        self.config = config
        self.grad_checkpointing = grad_checkpointing  # run-time switch, never saved
        self.global_pool = "avg"
        # Plain layers or models.fast's drop-ins (same state dict), chosen once, here.
        layers = layer_set(fast)
        self.fast_layers = layers is not PLAIN
        # torch's default init of each Linear/Conv2d is skipped: init_weights draws them once
        with deferred_init():
            self.stem = layers.patch_embed(config.patch_size, config.in_chans, config.hidden_dim)
            n = config.num_blocks
            rates = [config.drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # 0 ... rate
            self.blocks = nn.ModuleList(self.make_block(config, rate, layers) for rate in rates)
            self.norm = self.make_norm(config)
            self.head_drop = nn.Dropout(config.drop_rate)
            self.head = self._new_head(config.num_classes)
        init_weights(self, self.gates())

    def __prepare_scriptable__(self) -> nn.Module:
        """What `torch.jit.script` scripts: a copy of the module tree (same parameters), so that
        the fast layers, which script as their plain layers, are swapped in the copy only."""
        return _tree_copy(self)

    # ----- what a family defines ---------------------------------------------------------
    def make_block(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet):
        """One residual block (B, S, C) -> (B, S, C), built from ``layers``."""
        raise NotImplementedError

    def make_norm(self, config: MixerConfig) -> nn.Module:
        """The norm before pooling; LayerNorm unless the family says otherwise."""
        return nn.LayerNorm(config.hidden_dim, eps=config.norm_eps)

    def gates(self) -> dict[nn.Module, int]:
        """The family's gating Linears, each with its first gate row: `init_weights` opens
        the rows from there on (`init.open_gate_`) instead of drawing them."""
        return {}

    # ----- forward -----------------------------------------------------------------------
    def _new_head(self, num_classes: int) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        with deferred_init():  # zeroed here: no default init to draw
            head = linear(self.config.hidden_dim, num_classes)
        nn.init.zeros_(head.weight)  # the official code: a fresh model predicts uniform logits
        nn.init.zeros_(head.bias)
        return head

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    @property
    def num_features(self) -> int:
        """C, the width of the pooled features the head sees (timm's name)."""
        return self.config.hidden_dim

    head_hidden_size = num_features

    def check_input(self, images: torch.Tensor) -> None:
        """Raise `InputShapeError` unless ``images`` is (B, in_chans, H, W) at the model's size."""
        c, (h, w) = self.config.in_chans, self.config.img_size
        if images.ndim == 4 and images.shape[1] == c and tuple(images.shape[2:]) == (h, w):
            return
        hint = ""
        if images.ndim == 4 and images.shape[-1] == c and images.shape[1] != c:
            hint = " (channels-last NHWC input? permute it to NCHW)"
        elif images.ndim == 4 and images.shape[1] == c:
            hint = " (resize the images, or adapt the model with model.resize(img_size))"
        raise InputShapeError(
            f"expected images of shape (batch, {c}, {h}, {w}), got {tuple(images.shape)}{hint}"
        )

    def _run_block(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and torch.is_grad_enabled():
            return checkpoint(block, x, use_reentrant=False)
        return block(x)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> normalised token features (B, S, C)."""
        x = self.stem(self.checked(images))
        for block in self.blocks:
            # torch.jit.is_scripting() alone in an `if`: TorchScript then skips the other branch
            if torch.jit.is_scripting():  # noqa: SIM108
                x = block(x)
            else:
                x = self._run_block(block, x)
        return self.norm(x)

    def checked(self, images: torch.Tensor) -> torch.Tensor:
        """``images``, after `check_input` in eager code (traced graphs keep no Python checks)."""
        if not torch.jit.is_scripting():  # noqa: SIM102 (alone: TorchScript skips the body)
            if not traced():
                self.check_input(images)
        return images

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Token features (B, S, C) -> logits (B, num_classes), or pooled (B, C) if pre_logits.

        With ``global_pool=''`` (see `reset_classifier`) the tokens are not pooled.
        """
        if self.global_pool == "avg":
            x = x.mean(dim=1)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def token_mixing_weight(self, block: int) -> torch.Tensor:
        """The weight (units, S) of block ``block`` that reads the tokens: each row is one
        unit's weights over the S patches (the paper's Figure 7 pictures these rows)."""
        name = family_spec(self.config.family).token_weight
        if name is None:
            raise ConfigError(f"family {self.config.family!r} has no token-mixing weight")
        return self.blocks[block].get_parameter(name)

    def num_params(self, include_head: bool = True) -> int:
        total = sum(p.numel() for p in self.parameters())
        return total if include_head else total - sum(p.numel() for p in self.head.parameters())

    # ----- resolution change -------------------------------------------------------------
    def resize(self, img_size: int | tuple[int, int]) -> MlpFamilyModel:
        """A new model for ``img_size`` (any multiple of the patch size, square or not).

        Integer multiples of the grid tile the token mixing block-diagonally (exact: an image
        tiled K×K gives this model's output on the single image); other sizes resample the
        token weights (an approximation to fine-tune from). Each block resizes its own token
        layers; see `mlpmixer.models.resize`.
        """
        resize = token_resize(self.config, img_size)
        config = resized_config(self.config, resize)  # validated (size limits) before allocating
        state = dict(self.state_dict())
        for i, block in enumerate(self.blocks):
            state.update(
                {f"blocks.{i}.{k}": v for k, v in block.resized_token_weights(resize).items()}
            )
        param = next(self.parameters())
        resized = type(self).from_state_dict(state, config)
        resized.set_grad_checkpointing(self.grad_checkpointing)
        return resized.to(device=param.device, dtype=param.dtype).train(self.training)


# torch.fx copies the root forward's annotations into the code of the module it traces, and
# torch.jit.script compiles that code: left as strings by the __future__ import above, they
# came out as the unknown name `_torch_Tensor_` (timm's test_model_forward_fx_torchscript
# failed on every family). Evaluated once here, they are the real torch.Tensor.
MlpFamilyModel.forward.__annotations__ = typing.get_type_hints(MlpFamilyModel.forward)
