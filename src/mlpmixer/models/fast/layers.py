"""Drop-in fast layers for CPU: the same parameters, names and state dicts as the plain ones.

Each class subclasses its plain layer (`models.layers`) and changes only how the same numbers
are computed; the equivalence tests hold each to the plain layer (tests/models/fast/). A model
takes them all at once through `FAST` (see `models.fast.layer_set`). Why each exists:

* `PatchEmbed`: patchify reshape + one matmul computes the strided convolution exactly, with
  one kernel instead of a conv's im2col.
* `TokenMlp`: the token products in the form `token_linear.form_choice` decided for the
  dtype and mode: the weight applied from the left to (B, S, C) with the batch broadcast (no
  transposed copies of the activations), or one product over the transposed (B·C, S) matrix.
* `ChannelMlp`: in CPU inference, oneDNN products with bias and GELU as the epilogue
  (`onednn.run_mlp`, as `onednn.inference_choice` decided), run over pieces of rows so that
  the hidden activation stays under ``hidden_bytes_per_piece`` (glibc serves bigger blocks
  with fresh pages from the OS at every allocation, which costs as much as the GELU); in fp32
  CPU training, oneDNN products (`onednn.training_linear`); in reduced-precision CPU
  training, the products with their left operands column-major where a probe found that
  faster (`layouts`: CPUs that emulate bf16); in CPU autocast inference, weights cast once
  (`autocast_cache`).
* In inference the GELU overwrites the product it reads (one allocation less).

Under compile, export, jit tracing and FX each runs its plain layer's ``forward``; scripting
scripts a plain copy (`_DropIn`); under dispatch modes and on other devices the oneDNN and
cached-weight paths step aside for ATen ops (`aside`).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import is_in_torch_dispatch_mode

from .. import layers as plain
from . import autocast_cache, layouts, onednn, pieces
from .aside import traced
from .autocast_cache import plain_linear
from .gelu import GELU, gelu_
from .token_linear import ONE_LINEAR, form_choice, token_linear


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


def _context(module: torch.nn.Module, x: torch.Tensor) -> tuple:
    """What decides a layer's path: device, dtype, autocast dtype, grad mode, training, and
    whether a dispatch mode must see ATen ops."""
    autocast = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None
    grad = torch.is_grad_enabled()
    return (x.device.type, x.dtype, autocast, grad, module.training, is_in_torch_dispatch_mode())


def _resolved(module: torch.nn.Module) -> dict:
    """The module's paths resolved so far, per context; forgotten when `pieces` decide anew."""
    memo = module.__dict__.get("_fast_paths")
    if memo is None or memo[0] != pieces.generation:
        memo = module.__dict__["_fast_paths"] = (pieces.generation, {})
    return memo[1]


class ChannelMlp(_DropIn, _GeluDropout, plain.Mlp):
    """`plain.Mlp` over the last axis with the CPU paths above, resolved once per context."""

    hidden_bytes_per_piece = 16 * 2**20

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if traced():
            return super().forward(x)
        rows = x.shape[:-1].numel()
        plain_modules = plain_linear(self.fc1) and plain_linear(self.fc2)  # (hooks come and go)
        key = (*_context(self, x), self.fc1.weight.dtype, plain_modules, pieces.rows_class(rows))
        paths = _resolved(self)
        path = paths.get(key)
        if path is None:
            path = paths[key] = self._resolve(key, rows)
        mode, choice, cache = path
        if mode == "infer":
            return self._infer(x, choice, cache)
        if mode == "train" and choice != onednn.ATEN:
            h = self.gelu_dropout(self._train_linear(self.fc1, x))
            return self.drop(self._train_linear(self.fc2, h))
        if mode == "layouts" and layouts.usable(
            x, self.fc1.weight, self.fc2.weight
        ):  # (`cache`: the compute dtype)
            rows_in = x.reshape(-1, x.shape[-1])
            h = self.gelu_dropout(layouts.linear(rows_in, self.fc1.weight, self.fc1.bias, cache))
            out = self.drop(layouts.linear(h, self.fc2.weight, self.fc2.bias, cache))
            return out.view(*x.shape[:-1], out.shape[-1])
        return self.drop(self.fc2(self.gelu_dropout(self.fc1(x))))

    def _resolve(self, key: tuple, rows: int) -> tuple[str, str, torch.dtype | None]:
        """("infer" | "train" | "plain", the oneDNN choice, the autocast-cache dtype or None),
        or ("layouts", "", the compute dtype) for reduced-precision training products with
        their left operands column-major (`layouts`)."""
        device, dtype, autocast, grad, training, dispatch, _, plain_modules, _ = key
        weight = self.fc1.weight
        if device != "cpu" or dispatch or not plain_modules:
            return ("plain", onednn.ATEN, None)
        dim, hidden = self.fc1.in_features, self.fc1.out_features
        if not grad and not training:
            fp32_weights = weight.dtype == torch.float32
            cache = autocast if autocast is not None and fp32_weights else None
            if cache is not None and not autocast_cache.use(cache):
                cache = None
            compute = autocast if autocast is not None and fp32_weights else weight.dtype
            same = autocast is not None or dtype == weight.dtype
            if compute not in (torch.float32, torch.bfloat16) or not same:
                return ("infer", onednn.ATEN, cache)
            approximate = self.act.approximate
            choice = onednn.inference_choice(compute, dim, hidden, approximate, rows)
            if choice != onednn.ATEN and cache is None and autocast is not None:
                choice = onednn.ATEN  # (oneDNN takes the cast weights the cache keeps)
            return ("infer", choice, cache)
        if grad and autocast is None and dtype == weight.dtype == torch.float32:
            return ("train", onednn.training_choice(dim, hidden, rows), None)
        compute = autocast if autocast is not None else torch.promote_types(dtype, weight.dtype)
        if grad and layouts.choice(compute, dim, hidden) == layouts.LEFT_COLUMN_MAJOR:
            return ("layouts", "", compute)
        return ("plain", onednn.ATEN, None)

    def _train_linear(self, module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        out = onednn.training_linear(module, x)  # None for torch.func wrappers, failures
        return out if out is not None else module(x)

    def _infer(self, x: torch.Tensor, choice: str, cache: torch.dtype | None) -> torch.Tensor:
        pieces_count = self._pieces(x)
        if pieces_count == 1:
            return self._infer_rows(x, choice, cache)
        rows = x.reshape(-1, x.shape[-1]).tensor_split(pieces_count)
        return torch.cat([self._infer_rows(part, choice, cache) for part in rows]).view(x.shape)

    def _params(self, cache: torch.dtype | None) -> tuple:
        if cache is None:
            return (self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)
        return tuple(autocast_cache.cached(fc, n, cache) for fc in (self.fc1, self.fc2)
                     for n in ("weight", "bias"))  # fmt: skip

    def _infer_rows(self, x: torch.Tensor, choice: str, cache: torch.dtype | None) -> torch.Tensor:
        """fc2(GELU(fc1(x))) in inference by the resolved path; dropout is off in eval."""
        params = self._params(cache)
        if choice != onednn.ATEN:
            rows = x.reshape(-1, x.shape[-1]).to(params[0].dtype)
            try:
                out = onednn.run_mlp(rows, params, self.act.approximate, choice == onednn.EPILOGUE)
                return out.view(*x.shape[:-1], out.shape[-1])
            except (RuntimeError, NotImplementedError) as err:
                onednn.record_failure("linear+gelu", params[0].dtype, err)  # (ATen from now on)
                pieces.failed(onednn.INFERENCE, str(params[0].dtype), onednn.ATEN, err)
        w1, b1, w2, b2 = params
        return F.linear(gelu_(F.linear(x, w1, b1), self.act.approximate), w2, b2)

    def _pieces(self, x: torch.Tensor) -> int:
        """The number of pieces of rows for eager CPU inference (1 if empty)."""
        hidden_bytes = x.shape[:-1].numel() * self.fc1.out_features * x.element_size()
        return max(1, -(-hidden_bytes // self.hidden_bytes_per_piece))  # ceil


class TokenMlp(_DropIn, _GeluDropout, plain.TokenMlp):
    """`plain.TokenMlp` in the decided form: fc1's (D_S, S) weight applied from the left to
    (B, S, C), or the plain transposes around one product over (B·C, S)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if traced():
            return super().forward(x)
        key = (*_context(self, x), self.fc1.weight.dtype, x.shape[-1])
        paths = _resolved(self)
        path = paths.get(key)
        if path is None:
            path = paths[key] = self._resolve(key, x.shape[-1])
        form, cache = path
        w1, b1, w2, b2 = self._params(cache)
        if form == ONE_LINEAR:  # the plain layer's transposes, GELU on the contiguous product
            h = self.gelu_dropout(F.linear(x.transpose(1, 2).contiguous(), w1, b1))  # (B, C, D_S)
            return self.drop(F.linear(h, w2, b2)).transpose(1, 2)
        h = self.gelu_dropout(token_linear(w1, b1, x, form))  # (B, D_S, C)
        return self.drop(token_linear(w2, b2, h, form))

    def _resolve(self, key: tuple, channels: int) -> tuple[str | None, torch.dtype | None]:
        """(the token products' form, the autocast-cache dtype or None)."""
        device, dtype, autocast, grad, _, dispatch, _, _ = key
        if device != "cpu":
            return (None, None)
        fp32_weights = self.fc1.weight.dtype == torch.float32
        cache = None
        if autocast is not None and fp32_weights and not grad and not dispatch:
            cache = autocast if autocast_cache.use(autocast) else None
        compute = (
            autocast if autocast is not None else torch.promote_types(dtype, self.fc1.weight.dtype)
        )
        if compute not in (torch.float32, torch.bfloat16, torch.float16):
            return (None, cache)
        m, k = self.fc1.out_features, self.fc1.in_features
        return (form_choice(compute, grad, m, k, channels), cache)

    def _params(self, cache: torch.dtype | None) -> tuple:
        if cache is None:
            return (self.fc1.weight, self.fc1.bias, self.fc2.weight, self.fc2.bias)
        return tuple(autocast_cache.cached(fc, n, cache) for fc in (self.fc1, self.fc2)
                     for n in ("weight", "bias"))  # fmt: skip


__all__ = ["GELU", "ChannelMlp", "PatchEmbed", "TokenMlp"]
