"""MLP-Mixer (Tolstikhin et al., 2021, arXiv 2105.01601) as one PyTorch module.

Shapes: B images, S = (H/P)·(W/P) tokens (patches), C = hidden_dim channels,
D_S = tokens_mlp_dim, D_C = channels_mlp_dim. Activations stay (B, S, C) from the stem
to the head; no transpose is ever materialised:

    stem:            (B, in, H, W) -> patchify -> (B, S, in·P·P) @ W_stem -> (B, S, C)
    token mixing:    x + W2 · GELU(W1 · LN(x) + b1) + b2     W1: (D_S, S) acts from the left
    channel mixing:  x + GELU(LN(x) · W3ᵀ + b3) · W4ᵀ + b4   W3: (D_C, C), an ordinary Linear
    head:            LN -> mean over S -> Linear(C, num_classes)

Left-multiplying by W1 is the same as the paper's "transpose, Dense over tokens,
transpose back", without the two copies. Parameters keep PyTorch's usual layouts (Linear
weights are out × in, the stem a Conv2d weight), so the module works with every tool that
expects them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import InputShapeError
from . import autocast_cache, onednn, token_products
from .config import MixerConfig
from .gelu import GELU, gelu_
from .init import init_weights
from .params import no_weight_decay_names, weight_decay_groups
from .resize import resize_token_mixing


def drop_path(x: torch.Tensor, p: float, training: bool, scale: bool) -> torch.Tensor:
    """Stochastic depth: zero the residual branch ``x`` (B, ...) of whole examples with prob ``p``.

    ``scale=True`` divides kept branches by 1-p (timm, expectation-preserving);
    ``scale=False`` keeps them as they are (big_vision's ``stoch_depth``).
    """
    if p == 0.0 or not training:
        return x
    keep = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(1.0 - p)
    if scale:
        keep.div_(1.0 - p)
    return x * keep


class PatchEmbed(nn.Module):
    """Non-overlapping P×P patches, each projected to C channels: (B, in, H, W) -> (B, S, C).

    The weight is stored as a Conv2d kernel (C, in, Ph, Pw); the forward pass is a
    patchify reshape plus one matmul, which computes exactly the strided convolution.
    """

    def __init__(self, patch_size: tuple[int, int], in_chans: int, hidden_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, hidden_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, c, h, w = images.shape
        ph, pw = self.patch_size
        patches = images.reshape(b, c, h // ph, ph, w // pw, pw)
        patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // ph) * (w // pw), c * ph * pw)
        return F.linear(patches, self.proj.weight.flatten(1), self.proj.bias)


class Mlp(nn.Module):
    """Dense -> GELU -> Dropout -> Dense -> Dropout: the two MLPs' layers, without a forward."""

    def __init__(self, dim: int, hidden: int, gelu: str, drop: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = GELU(approximate=gelu)  # tanh form: the fused CPU kernel (models/gelu.py)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def gelu_dropout(self, h: torch.Tensor) -> torch.Tensor:
        """Dropout(GELU(h)); in inference GELU overwrites h, a product's output used only here."""
        if self.training or torch.is_grad_enabled():
            return self.drop(self.act(h))
        return gelu_(h, self.act.approximate)


class ChannelMixingMlp(Mlp):
    """Dense -> GELU -> Dense over the last axis (C -> D_C -> C), shared by all tokens.

    CPU inference runs over pieces of the token rows so that the (rows, D_C) hidden activation
    stays under ``hidden_bytes_per_piece``: glibc serves bigger blocks with fresh pages from
    the OS at every allocation, which costs as much as the GELU. Smaller pieces are reused
    from the heap (and peak memory drops). Training and GPUs keep one product.
    """

    hidden_bytes_per_piece = 16 * 2**20

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pieces = self._pieces(x)
        if pieces == 1:
            return self.drop(self._mlp(x))
        rows = x.reshape(-1, x.shape[-1]).tensor_split(pieces)
        return torch.cat([self._mlp(part) for part in rows]).view(x.shape)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        fused = onednn.mlp(self.fc1, self.fc2, self.act.approximate, x)  # CPU inference only
        if fused is not None:
            return fused
        # linear_module: oneDNN products in fp32 CPU training; in CPU autocast inference,
        # weights cast once (autocast_cache), not every call
        h = self.gelu_dropout(onednn.linear_module(self.fc1, x))
        return onednn.linear_module(self.fc2, h)

    def _pieces(self, x: torch.Tensor) -> int:
        """1, or the number of pieces for eager CPU inference (not traced: shapes stay free)."""
        if self.training or torch.is_grad_enabled() or x.device.type != "cpu":
            return 1
        if torch.compiler.is_compiling() or torch.jit.is_tracing():
            return 1
        hidden_bytes = x.numel() // x.shape[-1] * self.fc1.out_features * x.element_size()
        return max(1, -(-hidden_bytes // self.hidden_bytes_per_piece))  # ceil; 1 if empty


class TokenMixingMlp(Mlp):
    """Dense -> GELU -> Dense over the token axis (S -> D_S -> S), shared by all channels.

    Takes and returns (B, S, C). ``fc1.weight`` is (D_S, S), as in a Linear over tokens; it is
    applied from the left, so the biases broadcast along the channel axis.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # One batched product per layer, the weight broadcast over the batch (no copy);
        # torch.matmul would transpose x instead. token_products: where the bias goes.
        weight = autocast_cache.weight  # (cached copies in autocast inference)
        h = token_products.affine(weight(self.fc1, "weight"), weight(self.fc1, "bias"), x)
        h = self.gelu_dropout(h)  # (B, D_S, C)
        out = token_products.affine(weight(self.fc2, "weight"), weight(self.fc2, "bias"), h)
        return self.drop(out)  # (B, S, C)


class MixerBlock(nn.Module):
    """x += TokenMixing(LN(x)); x += ChannelMixing(LN(x)), for x of shape (B, S, C)."""

    def __init__(self, config: MixerConfig, drop_path_rate: float) -> None:
        super().__init__()
        c, eps, act, drop = config.hidden_dim, config.norm_eps, config.gelu, config.drop_rate
        self.token_norm = nn.LayerNorm(c, eps=eps)
        self.token_mixing = TokenMixingMlp(config.num_tokens, config.tokens_mlp_dim, act, drop)
        self.channel_norm = nn.LayerNorm(c, eps=eps)
        self.channel_mixing = ChannelMixingMlp(c, config.channels_mlp_dim, act, drop)
        self.drop_path_rate = drop_path_rate
        self.drop_path_scale = config.drop_path_scale

    def _residual(self, branch: torch.Tensor) -> torch.Tensor:
        return drop_path(branch, self.drop_path_rate, self.training, self.drop_path_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Residuals are added in place into the branch output, a fresh tensor that backward
        # does not need: one (B, S, C) allocation less per branch.
        x = self._residual(self.token_mixing(self.token_norm(x))).add_(x)
        return self._residual(self.channel_mixing(self.channel_norm(x))).add_(x)


class MlpMixer(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="mlpmixer",
    tags=["image-classification", "mlp-mixer"],
    paper_url="https://arxiv.org/abs/2105.01601",
):
    """MLP-Mixer. ``MlpMixer(config)`` or ``MlpMixer(img_size=32, patch_size=4, ...)``.

    ``forward(images)`` maps (B, in_chans, H, W) to logits (B, num_classes), or to pooled
    features (B, C) when ``num_classes == 0``. ``grad_checkpointing`` is a run-time switch,
    not part of the (saved) config.
    """

    def __init__(
        self,
        config: MixerConfig | None = None,
        *,
        grad_checkpointing: bool = False,
        **overrides: Any,
    ) -> None:
        super().__init__()
        config = (config or MixerConfig()).replace(**overrides)
        self.config = config
        self.grad_checkpointing = grad_checkpointing
        self.stem = PatchEmbed(config.patch_size, config.in_chans, config.hidden_dim)
        n = config.num_blocks
        rates = [config.drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # 0 ... rate
        self.blocks = nn.ModuleList(MixerBlock(config, rate) for rate in rates)
        self.norm = nn.LayerNorm(config.hidden_dim, eps=config.norm_eps)
        self.head_drop = nn.Dropout(config.drop_rate)
        self.head = self._new_head(config.num_classes)
        init_weights(self)

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

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, in_chans, H, W) -> normalised token features (B, S, C)."""
        self.check_input(images)
        x = self.stem(images)
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Token features (B, S, C) -> logits (B, num_classes), or pooled (B, C) if pre_logits."""
        x = self.head_drop(x.mean(dim=1))
        return x if pre_logits else self.head(x)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))

    def reset_classifier(self, num_classes: int, class_names: list[str] | None = None) -> None:
        """Replace the head with a zero-initialised one for ``num_classes`` (0: no head)."""
        self.config = self.config.replace(num_classes=num_classes, class_names=class_names)
        param = next(self.parameters())
        self.head = self._new_head(num_classes).to(device=param.device, dtype=param.dtype)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute each block's activations in backward: less memory, ~30% more compute."""
        self.grad_checkpointing = enable

    def no_weight_decay(self) -> set[str]:
        """Names of parameters that recipes exclude from weight decay: norms and biases."""
        return no_weight_decay_names(self)

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups: matrices get ``weight_decay``, norms and biases get none."""
        return weight_decay_groups(self, weight_decay)

    def resize(self, img_size: int | tuple[int, int]) -> MlpMixer:
        """A new model for ``img_size`` whose token mixing is block-diagonally replicated.

        See `mlpmixer.models.resize`. The returned model computes, on an image tiled K×K,
        exactly what this model computes on the single image.
        """
        state, config = resize_token_mixing(self.state_dict(), self.config, img_size)
        param = next(self.parameters())
        resized = MlpMixer.from_state_dict(state, config)
        resized.set_grad_checkpointing(self.grad_checkpointing)
        return resized.to(device=param.device, dtype=param.dtype).train(self.training)

    def num_params(self, include_head: bool = True) -> int:
        total = sum(p.numel() for p in self.parameters())
        return total if include_head else total - sum(p.numel() for p in self.head.parameters())

    @classmethod
    def from_state_dict(
        cls,
        state: dict[str, torch.Tensor],
        config: MixerConfig,
        reset_head: bool = False,
    ) -> MlpMixer:
        """Build a model for ``config`` and load ``state`` (this module's key names) into it.

        Missing or unexpected keys and shape mismatches raise `CheckpointError` naming them.
        ``reset_head=True`` ignores the stored head and keeps a fresh zero-initialised one
        (fine-tuning on other classes).
        """
        from ..checkpoints.state import check_state_fits  # checkpoints/ builds on models/

        # Built on the meta device: random init of weights that are overwritten at once was
        # ~90% of the load time (B/16: seconds). The checkpoint's tensors are then assigned
        # as the parameters (copied to float32, so the model never aliases the caller's
        # tensors, e.g. the source model's in `resize`).
        with torch.device("meta"):
            model = cls(config)
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
    ) -> MlpMixer:
        """Load the project's format from a local directory/file or a hub repository id.

        Hub options (``revision``, ``cache_dir``, ``token``, ``local_files_only``,
        ``force_download``) go to huggingface_hub; other keywords override the stored
        config (``num_classes`` together with ``reset_head=True`` for fine-tuning).
        """
        from ..checkpoints.native import HUB_OPTIONS, read_native  # checkpoints/ builds on models/
        from ..checkpoints.state import apply_overrides

        hub_options = {k: kwargs.pop(k) for k in HUB_OPTIONS if k in kwargs}
        config_dict, state = read_native(name_or_path, **hub_options)
        config = MixerConfig.from_dict(config_dict)
        config = apply_overrides(config, kwargs, reset_head)
        return cls.from_state_dict(state, config, reset_head=reset_head)
