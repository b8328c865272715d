"""Drop-in fast layers for CPU: the same parameters, names and state dicts as the plain ones.

Each class subclasses its plain layer (`models.layers`) and changes only how the same numbers
are computed; the equivalence tests hold each to the plain layer (tests/models/fast/). A model
takes them all at once through `FAST` (see `models.fast.layer_set`). Why each exists:

* `PatchEmbed`: patchify reshape + one matmul computes the strided convolution exactly, with
  one kernel instead of a conv's im2col.
* `TokenMlp`: the weight applied from the left to (B, S, C) with the batch broadcast
  (`token_linear`): no transposed copies of the activations.
* `ChannelMlp`: in CPU inference, oneDNN products with bias and GELU as the epilogue
  (`onednn.mlp`), run over pieces of rows so that the hidden activation stays under
  ``hidden_bytes_per_piece`` (glibc serves bigger blocks with fresh pages from the OS at every
  allocation, which costs as much as the GELU); in fp32 CPU training, oneDNN products
  (`onednn.training_linear`); in CPU autocast inference, weights cast once (`autocast_cache`).
* In inference the GELU overwrites the product it reads (one allocation less).

Under compile, export, jit tracing and FX each runs its plain layer's ``forward``; scripting
scripts a plain copy (`_DropIn`); under dispatch modes and on other devices the oneDNN and
cached-weight paths step aside for ATen ops (`aside`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from .. import layers as plain
from . import autocast_cache, onednn
from .aside import traced
from .gelu import GELU, gelu_
from .token_linear import token_linear


class _DropIn:
    """What every fast layer does under compile, export, jit and FX: be its plain layer.

    Traced code runs the plain ``forward`` (one ``if``); `torch.jit.script` scripts a plain
    copy (``__prepare_scriptable__``, same parameters) instead of the fast code.
    """

    def __prepare_scriptable__(self) -> torch.nn.Module:
        plain_copy = copy.copy(self)  # shares the parameters and buffers
        plain_copy.__class__ = _plain_class(type(self))
        return plain_copy


def _plain_class(cls: type) -> type:
    return next(c for c in cls.__mro__ if c.__module__ == plain.__name__)


class PatchEmbed(_DropIn, plain.PatchEmbed):
    """`plain.PatchEmbed` as patchify + one matmul (the Conv2d weight flattened)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if traced():
            return super().forward(images)
        b, c, h, w = images.shape
        ph, pw = self.patch_size
        patches = images.reshape(b, c, h // ph, ph, w // pw, pw)
        patches = patches.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // ph) * (w // pw), c * ph * pw)
        return F.linear(patches, self.proj.weight.flatten(1), self.proj.bias)


class _GeluDropout:
    """Dropout(GELU(h)); in inference GELU overwrites h, a product's output used only here."""

    act: torch.nn.Module
    drop: torch.nn.Module
    training: bool

    def gelu_dropout(self, h: torch.Tensor) -> torch.Tensor:
        if self.training or torch.is_grad_enabled():
            return self.drop(self.act(h))
        return gelu_(h, self.act.approximate)


def _linear(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)``: oneDNN in fp32 CPU training, cached weights in autocast inference, else ATen."""
    out = onednn.training_linear(module, x)
    return out if out is not None else autocast_cache.linear(module, x)


class ChannelMlp(_DropIn, _GeluDropout, plain.Mlp):
    """`plain.Mlp` over the last axis with the CPU paths above."""

    hidden_bytes_per_piece = 16 * 2**20

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if traced():
            return super().forward(x)
        pieces = self._pieces(x)
        if pieces == 1:
            return self.drop(self._mlp(x))
        rows = x.reshape(-1, x.shape[-1]).tensor_split(pieces)
        return torch.cat([self._mlp(part) for part in rows]).view(x.shape)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        fused = onednn.mlp(self.fc1, self.fc2, self.act.approximate, x)  # CPU inference only
        if fused is not None:
            return fused
        return _linear(self.fc2, self.gelu_dropout(_linear(self.fc1, x)))

    def _pieces(self, x: torch.Tensor) -> int:
        """1, or the number of pieces for eager CPU inference (not traced: shapes stay free)."""
        if self.training or torch.is_grad_enabled() or x.device.type != "cpu":
            return 1
        hidden_bytes = x.numel() // x.shape[-1] * self.fc1.out_features * x.element_size()
        return max(1, -(-hidden_bytes // self.hidden_bytes_per_piece))  # ceil; 1 if empty


class TokenMlp(_DropIn, _GeluDropout, plain.TokenMlp):
    """`plain.TokenMlp` without transposes: fc1's (D_S, S) weight applied from the left."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if traced():
            return super().forward(x)
        weight = autocast_cache.weight  # (cached copies in autocast inference)
        h = token_linear(weight(self.fc1, "weight"), weight(self.fc1, "bias"), x)
        h = self.gelu_dropout(h)  # (B, D_S, C)
        return self.drop(token_linear(weight(self.fc2, "weight"), weight(self.fc2, "bias"), h))


__all__ = ["GELU", "ChannelMlp", "PatchEmbed", "TokenMlp"]
