"""What every model of the family shares: stem, blocks, norm, head, and timm's model API.

A family model is ``stem -> N blocks -> norm -> mean over tokens -> head`` on activations
(B, S, C); the families differ only in their block (and ResMLP in its norm). A subclass
sets ``family`` and implements `make_block` (and optionally `make_norm`,
`init_family_weights`, `tile_token_weights`). Everything else is here:

* timm's API: ``num_features``, ``get_classifier``, ``reset_classifier``, ``pretrained_cfg``
  / ``default_cfg``, ``forward_intermediates``, ``group_matcher``, ``forward_head``;
* the project's: ``forward_features``, ``set_grad_checkpointing``, ``no_weight_decay``,
  ``param_groups``, ``resize``, ``from_state_dict``, ``save`` / ``from_pretrained``,
  ``check_input``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import CheckpointError, ConfigError, InputShapeError
from .config import MixerConfig, to_pair
from .fast import layer_set
from .init import init_weights
from .layers import PLAIN, LayerSet
from .params import no_weight_decay_names, weight_decay_groups
from .resize import replication_factors, tile_token_linear, window_token_index

_FAMILY_CLASSES: dict[str, type[MlpFamilyModel]] = {}
OUTPUT_FORMATS = ("NCHW", "NLC")
GLOBAL_POOLS = ("", "avg")


def family_class(family: str) -> type[MlpFamilyModel]:
    """The model class that builds ``family`` (a `MixerConfig.family` value)."""
    if family not in _FAMILY_CLASSES:
        raise ConfigError(f"unknown model family {family!r}; known: {sorted(_FAMILY_CLASSES)}")
    return _FAMILY_CLASSES[family]


def build_model(config: MixerConfig) -> MlpFamilyModel:
    """A freshly initialised model of ``config.family``."""
    return family_class(config.family)(config)


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


class MlpFamilyModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="mlpmixer",
    tags=["image-classification", "mlp-mixer"],
    paper_url="https://arxiv.org/abs/2105.01601",
):
    """Base of `MlpMixer`, `GMixer`, `ResMlp` and `GMlp`: ``Model(config)`` or ``Model(**fields)``.

    ``forward(images)`` maps (B, in_chans, H, W) to logits (B, num_classes), or to pooled
    features (B, C) when ``num_classes == 0``.
    """

    family: ClassVar[str] = ""
    token_linear: ClassVar[str] = ""  # ResMLP, gMLP: the blocks' S × S token Linear
    token_weight: ClassVar[str] = ""  # the block weight (units, S) reading the tokens, if not
    # token_linear's

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.family:
            _FAMILY_CLASSES.setdefault(cls.family, cls)

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
        self.stem = layers.patch_embed(config.patch_size, config.in_chans, config.hidden_dim)
        n = config.num_blocks
        rates = [config.drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # 0 ... rate
        self.blocks = nn.ModuleList(self.make_block(config, rate, layers) for rate in rates)
        self.norm = self.make_norm(config)
        self.head_drop = nn.Dropout(config.drop_rate)
        self.head = self._new_head(config.num_classes)
        init_weights(self)
        self.init_family_weights()

    # ----- what a family defines ---------------------------------------------------------
    def make_block(self, config: MixerConfig, drop_path_rate: float, layers: LayerSet):
        """One residual block (B, S, C) -> (B, S, C), built from ``layers``."""
        raise NotImplementedError

    def make_norm(self, config: MixerConfig) -> nn.Module:
        """The norm before pooling; LayerNorm unless the family says otherwise."""
        return nn.LayerNorm(config.hidden_dim, eps=config.norm_eps)

    def init_family_weights(self) -> None:
        """Initialisation beyond `init_weights` (e.g. gates that start open)."""

    def tile_token_weights(
        self, state: dict[str, torch.Tensor], index: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Token-mixing weights of ``state`` replicated over the windows ``index`` (K², S).

        This default tiles the S × S Linear named ``token_linear`` in every block.
        """
        if not self.token_linear:
            raise NotImplementedError(f"{type(self).__name__} cannot tile its token mixing")
        for i in range(self.config.num_blocks):
            tile_token_linear(state, f"blocks.{i}.{self.token_linear}.", index)
        return state

    # ----- forward -----------------------------------------------------------------------
    def _new_head(self, num_classes: int) -> nn.Module:
        if num_classes == 0:
            return nn.Identity()
        head = nn.Linear(self.config.hidden_dim, num_classes)
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
        self.check_input(images)
        x = self.stem(images)
        for block in self.blocks:
            x = self._run_block(block, x)
        return self.norm(x)

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
        self.check_input(images)
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

    # ----- timm's model API --------------------------------------------------------------
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

    def token_mixing_weight(self, block: int) -> torch.Tensor:
        """The weight (units, S) of block ``block`` that reads the tokens: each row is one
        unit's weights over the S patches (the paper's Figure 7 pictures these rows)."""
        return self.blocks[block].get_parameter(self.token_weight or f"{self.token_linear}.weight")

    def num_params(self, include_head: bool = True) -> int:
        total = sum(p.numel() for p in self.parameters())
        return total if include_head else total - sum(p.numel() for p in self.head.parameters())

    # ----- resolution change -------------------------------------------------------------
    def resize(self, img_size: int | tuple[int, int]) -> MlpFamilyModel:
        """A new model for ``img_size`` whose token mixing is block-diagonally replicated.

        See `mlpmixer.models.resize`. The returned model computes, on an image tiled K×K,
        exactly what this model computes on the single image.
        """
        img_size = to_pair(img_size, "img_size")
        k = replication_factors(self.config, img_size)
        index = window_token_index(self.config.grid_size, k)
        state = self.tile_token_weights(dict(self.state_dict()), index)
        config = self.config.replace(
            img_size=img_size, tokens_mlp_dim=self.config.tokens_mlp_dim * k[0] * k[1]
        )
        param = next(self.parameters())
        resized = type(self).from_state_dict(state, config)
        resized.set_grad_checkpointing(self.grad_checkpointing)
        return resized.to(device=param.device, dtype=param.dtype).train(self.training)

    # ----- weights in and out ------------------------------------------------------------
    @classmethod
    def from_state_dict(
        cls,
        state: dict[str, torch.Tensor],
        config: MixerConfig,
        reset_head: bool = False,
    ) -> MlpFamilyModel:
        """Build a model for ``config`` and load ``state`` (this package's key names) into it.

        Called on the base class, the family comes from ``config``. Missing or unexpected
        keys and shape mismatches raise `CheckpointError` naming them. ``reset_head=True``
        ignores the stored head and keeps a fresh zero-initialised one.
        """
        from ..checkpoints.state import check_state_fits  # checkpoints/ builds on models/

        model_cls = cls if cls.family else family_class(config.family)
        # Built on the meta device: random init of weights that are overwritten at once was
        # ~90% of the load time (B/16: seconds). The checkpoint's tensors are then assigned
        # as the parameters (copied to float32, so the model never aliases the caller's
        # tensors, e.g. the source model's in `resize`).
        with torch.device("meta"):
            model = model_cls(config)
        if reset_head:
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
        expected = model.state_dict()
        if reset_head:
            expected = {k: v for k, v in expected.items() if not k.startswith("head.")}
        check_state_fits(state, expected)
        owned = {
            k: v.detach().to(dtype=torch.float32, device="cpu", copy=True).contiguous()
            for k, v in state.items()
        }
        model.load_state_dict(owned, strict=not reset_head, assign=True)
        if reset_head:
            model.head = model._new_head(config.num_classes)  # real zeros, not meta
        return model

    # The project's own format: safetensors + config.json (the Hugging Face hub layout).
    def _save_pretrained(self, save_directory: Any) -> None:
        from ..checkpoints.native import write_native  # checkpoints/ builds on models/

        write_native(save_directory, self.config, self.state_dict())

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: Any,
        *,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        model_card_kwargs: dict[str, Any] | None = None,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """Write the hub layout (weights, config.json, README.md) as one atomic folder.

        The mixin's version deletes ``config.json`` before writing the weights, so a kill in
        between left a folder that loaded as a bare state dict; here the folder is built
        aside and renamed into place. ``push_to_hub=True`` then uploads it.
        """
        from ..checkpoints.native import write_native  # checkpoints/ builds on models/

        path = Path(save_directory)
        extra = {}
        if not (path / "README.md").exists():  # like the mixin: a user's card is kept
            card = self.generate_model_card(**(model_card_kwargs or {}))
            extra["README.md"] = str(card)
        write_native(path, self.config, self.state_dict(), extra_files=extra)
        if not push_to_hub:
            return None
        return self.push_to_hub(
            repo_id=repo_id or path.name, model_card_kwargs=model_card_kwargs, **push_to_hub_kwargs
        )

    def save(self, path: Any) -> None:
        """Save in the project's format: a directory (hub layout) or one ``.safetensors`` file."""
        from ..checkpoints.native import write_native  # checkpoints/ builds on models/

        write_native(path, self.config, self.state_dict())

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls, name_or_path: Any, reset_head: bool = False, **kwargs: Any
    ) -> MlpFamilyModel:
        """Load the project's format from a local directory/file or a hub repository id.

        The stored config's family picks the class. Hub options (``revision``,
        ``cache_dir``, ``token``, ``local_files_only``, ``force_download``) go to
        huggingface_hub; other keywords override the stored config (``num_classes``
        together with ``reset_head=True`` for fine-tuning).
        """
        from ..checkpoints.native import HUB_OPTIONS, read_native  # checkpoints/ builds on models/
        from ..checkpoints.state import apply_overrides

        hub_options = {k: kwargs.pop(k) for k in HUB_OPTIONS if k in kwargs}
        config_dict, state = read_native(name_or_path, **hub_options)
        config = MixerConfig.from_dict(config_dict)
        model_cls = family_class(config.family)
        if not issubclass(model_cls, cls):
            raise CheckpointError(
                f"{name_or_path} holds a {config.family!r} model, not a {cls.__name__}"
            )
        config = apply_overrides(config, kwargs, reset_head)
        return model_cls.from_state_dict(state, config, reset_head=reset_head)
