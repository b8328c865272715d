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


def count_product_macs(model: torch.nn.Module, images: torch.Tensor) -> int:
    """Multiply-adds of every nn.Linear and nn.Conv2d in a forward pass, from forward hooks
    (for a Conv2d: output cells × Cin/groups × kh × kw per output channel)."""
    total = 0

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
    with torch.no_grad():
        model(images)
    for h in hooks:
        h.remove()
    return total // images.shape[0]
