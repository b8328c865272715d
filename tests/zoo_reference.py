"""Plain references for the zoo tests (ViP, CycleMLP), written from the papers' equations.

Deliberately unlike the models: weights are read by their official state-dict names from a
plain dict, convolutions with kernel = stride are written as patch matrices, LayerNorm, GELU
and softmax from their formulas, and the token mixers in the test files with explicit loops.
"""

from __future__ import annotations

import math

import torch


def layer_norm(x: torch.Tensor, sd: dict, name: str, eps: float = 1e-5) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) · γ + β over the last axis (biased variance)."""
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * sd[f"{name}.weight"] + sd[f"{name}.bias"]


def dense(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    """y = x Wᵀ (+ b) over the last axis, W of shape (out, in) as torch stores it."""
    y = torch.einsum("...i,oi->...o", x, sd[f"{name}.weight"])
    bias = sd.get(f"{name}.bias")
    return y if bias is None else y + bias


def gelu(x: torch.Tensor) -> torch.Tensor:
    """Exact GELU: x · Φ(x) = x · (1 + erf(x/√2)) / 2."""
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def mlp(x: torch.Tensor, sd: dict, name: str) -> torch.Tensor:
    return dense(gelu(dense(x, sd, f"{name}.fc1")), sd, f"{name}.fc2")


def deform_conv2d(
    x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
) -> torch.Tensor:
    """torchvision's ``deform_conv2d`` from its definition, for a 1×1 kernel, stride 1, no
    padding and one offset group per input channel (how CycleMLP calls it), NCHW.

    x (B, C, H, W); offset (B, 2C, H, W) with (Δy, Δx) of channel c at 2c, 2c+1; weight
    (O, C, 1, 1). Channel c is sampled at (y + Δy, x + Δx) by bilinear interpolation of its
    four neighbours, a neighbour off the map counting 0 (and a point at or beyond one pixel
    outside giving 0); out[o] = b[o] + Σ_c W[o, c] · sampled[c].
    """
    h, w = x.shape[2:]
    py = torch.arange(h, dtype=x.dtype)[:, None] + offset[:, 0::2]  # (B, C, H, W)
    px = torch.arange(w, dtype=x.dtype)[None, :] + offset[:, 1::2]
    y0, x0 = torch.floor(py), torch.floor(px)
    flat = x.flatten(2)  # (B, C, H·W)
    sampled = torch.zeros_like(x)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            where = (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long().flatten(2)
            value = flat.gather(2, where).view_as(x)
            sampled += torch.where(inside, wy * wx * value, 0.0)
    far = (py <= -1) | (py >= h) | (px <= -1) | (px >= w)
    sampled = torch.where(far, 0.0, sampled)
    return torch.einsum("bchw,oc->bohw", sampled, weight[:, :, 0, 0]) + bias[:, None, None]


def patch_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """A k×k stride-k convolution as patches times a matrix: (B, H, W, Cin) -> (B, H/k, W/k, Cout).

    weight (Cout, Cin, k, k). Rows and columns that do not fill a patch are dropped, as a
    convolution without padding does.
    """
    b, h, w, cin = x.shape
    k = weight.shape[-1]
    gh, gw = h // k, w // k
    x = x[:, : gh * k, : gw * k]
    patches = x.reshape(b, gh, k, gw, k, cin)  # (b, i, dy, j, dx, c)
    return torch.einsum("bidjec,ocde->bijo", patches, weight) + bias


def conv2d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, stride: int, padding: int
) -> torch.Tensor:
    """A convolution as a sum over kernel taps of strided slices of the zero-padded map:
    (B, H, W, Cin) -> (B, H', W', Cout), H' = (H + 2·padding - k) // stride + 1."""
    k = weight.shape[-1]
    b, h, w, cin = x.shape
    padded = torch.zeros(b, h + 2 * padding, w + 2 * padding, cin)
    padded[:, padding : padding + h, padding : padding + w] = x
    ho, wo = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    out = bias.expand(b, ho, wo, -1).clone()
    for dy in range(k):
        for dx in range(k):
            taps = padded[:, dy : dy + stride * (ho - 1) + 1 : stride,
                          dx : dx + stride * (wo - 1) + 1 : stride]  # fmt: skip
            out += torch.einsum("bijc,oc->bijo", taps, weight[:, :, dy, dx])
    return out


def reweight(branches: list[torch.Tensor], sd: dict, name: str) -> torch.Tensor:
    """Split attention: per channel c, softmax over k of the logits at units c·K + k."""
    c = branches[0].shape[-1]
    k = len(branches)
    pooled = sum(branches).mean(dim=(1, 2))  # (B, C)
    logits = mlp(pooled, sd, name)  # (B, C·K)
    out = torch.zeros_like(branches[0])
    for ch in range(c):
        z = torch.stack([logits[:, ch * k + i] for i in range(k)], dim=1)  # (B, K)
        e = torch.exp(z - z.max(dim=1, keepdim=True).values)
        a = e / e.sum(dim=1, keepdim=True)
        for i in range(k):
            out[..., ch] += a[:, i, None, None] * branches[i][..., ch]
    return out


def head(x: torch.Tensor, sd: dict, eps: float = 1e-5) -> torch.Tensor:
    """Final LayerNorm, mean over the grid, linear classifier: (B, H, W, C) -> (B, classes)."""
    return dense(layer_norm(x, sd, "norm", eps).mean(dim=(1, 2)), sd, "head")


def randomised(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Fill every parameter of ``model`` with N(0, 0.2²) (biases too, so a wrongly wired bias
    shows) and return its state dict (buffers included)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return {k: v.clone() for k, v in model.state_dict().items()}


def count_product_macs(
    model: torch.nn.Module, images: torch.Tensor, per_output_unit: dict | None = None
) -> int:
    """Multiply-adds of every nn.Linear and nn.Conv2d in a forward pass, from forward hooks
    (for a Conv2d: output cells × Cin/groups × kh × kw per output channel), plus modules of
    the types in ``per_output_unit`` ({type: function(module) -> MACs per output element})."""
    total = 0
    per_output_unit = per_output_unit or {}

    def on_other(module, inputs, output):
        nonlocal total
        total += output.numel() * per_output_unit[type(module)](module)

    def on_linear(module, inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    def on_conv(module, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * module.in_channels // module.groups * kh * kw

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(on_linear))
        elif isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(on_conv))
        elif type(m) in per_output_unit:
            hooks.append(m.register_forward_hook(on_other))
    with torch.no_grad():
        model(images)
    for h in hooks:
        h.remove()
    return total // images.shape[0]
