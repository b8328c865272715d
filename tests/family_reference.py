"""Independent float64 NumPy implementations of gMLP, ResMLP and gMixer, from the papers.

Like mixer_reference.py, this shares no code with `mlpmixer`. Parameters are read in timm's
key layout (the names written out by hand below), images are NCHW, everything is float64.

* ResMLP (Touvron et al. 2021, eqs. 1-2): Aff(x) = α⊙x + β;
  Z = X + λ1 ⊙ (A Aff(X)) with A the S × S patch-interaction matrix (a Linear over tokens);
  Y = Z + λ2 ⊙ C GELU(B Aff(Z)); final Aff, average pooling, linear head.
* gMLP (Liu et al. 2021, sec. 2): Z = GELU(X U); s(Z) = Z1 ⊙ (W LN(Z2) + b); Y = s(Z) V;
  residual X + Y with a LayerNorm before U; LN eps 1e-5 in the gate, 1e-6 elsewhere.
* gMixer: the Mixer of Tolstikhin et al. with each MLP replaced by SwiGLU (Shazeer 2020):
  W2 (a ⊙ SiLU(g)) with [a; g] = W1 x + b1.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf


def gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def silu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def dense(x: np.ndarray, p: dict, name: str) -> np.ndarray:
    """x @ Wᵀ + b over the last axis, W stored out × in (PyTorch layout)."""
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def patchify(images: np.ndarray, p: dict) -> np.ndarray:
    """(B, in, H, W) -> (B, S, C): each P×P patch times the stem kernel (C, in, P, P)."""
    kernel = p["stem.proj.weight"]
    c, cin, ph, pw = kernel.shape
    b, _, h, w = images.shape
    patches = images.reshape(b, cin, h // ph, ph, w // pw, pw).transpose(0, 2, 4, 1, 3, 5)
    return patches.reshape(b, -1, cin * ph * pw) @ kernel.reshape(c, -1).T + p["stem.proj.bias"]


def _blocks(p: dict) -> int:
    return len({k.split(".")[1] for k in p if k.startswith("blocks.")})


def _head(x: np.ndarray, p: dict) -> np.ndarray:
    pooled = x.mean(axis=1)
    return dense(pooled, p, "head") if "head.weight" in p else pooled


def resmlp_logits(params: dict, images: np.ndarray) -> np.ndarray:
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = patchify(images.astype(np.float64), p)

    def aff(x, name):
        return p[f"{name}.alpha"].reshape(-1) * x + p[f"{name}.beta"].reshape(-1)

    for i in range(_blocks(p)):
        blk = f"blocks.{i}"
        a = aff(x, f"{blk}.norm1")  # (B, S, C)
        mixed = dense(a.transpose(0, 2, 1), p, f"{blk}.linear_tokens").transpose(0, 2, 1)
        x = x + p[f"{blk}.ls1"] * mixed
        h = gelu(dense(aff(x, f"{blk}.norm2"), p, f"{blk}.mlp_channels.fc1"))
        x = x + p[f"{blk}.ls2"] * dense(h, p, f"{blk}.mlp_channels.fc2")
    return _head(aff(x, "norm"), p)


def gmlp_logits(params: dict, images: np.ndarray) -> np.ndarray:
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = patchify(images.astype(np.float64), p)
    for i in range(_blocks(p)):
        blk = f"blocks.{i}"
        y = layer_norm(x, p[f"{blk}.norm.weight"], p[f"{blk}.norm.bias"], 1e-6)
        z = gelu(dense(y, p, f"{blk}.mlp_channels.fc1"))
        z1, z2 = np.split(z, 2, axis=-1)
        gate = f"{blk}.mlp_channels.gate"
        z2 = layer_norm(z2, p[f"{gate}.norm.weight"], p[f"{gate}.norm.bias"], 1e-5)
        spatial = dense(z2.transpose(0, 2, 1), p, f"{gate}.proj").transpose(0, 2, 1)
        x = x + dense(z1 * spatial, p, f"{blk}.mlp_channels.fc2")
    return _head(layer_norm(x, p["norm.weight"], p["norm.bias"], 1e-6), p)


def swiglu(x: np.ndarray, p: dict, name: str) -> np.ndarray:
    a, g = np.split(dense(x, p, f"{name}.fc1"), 2, axis=-1)
    return dense(a * silu(g), p, f"{name}.fc2")


def gmixer_logits(params: dict, images: np.ndarray) -> np.ndarray:
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    x = patchify(images.astype(np.float64), p)
    for i in range(_blocks(p)):
        blk = f"blocks.{i}"
        y = layer_norm(x, p[f"{blk}.norm1.weight"], p[f"{blk}.norm1.bias"], 1e-6)
        x = x + swiglu(y.transpose(0, 2, 1), p, f"{blk}.mlp_tokens").transpose(0, 2, 1)
        y = layer_norm(x, p[f"{blk}.norm2.weight"], p[f"{blk}.norm2.bias"], 1e-6)
        x = x + swiglu(y, p, f"{blk}.mlp_channels")
    return _head(layer_norm(x, p["norm.weight"], p["norm.bias"], 1e-6), p)


REFERENCES = {"resmlp": resmlp_logits, "gmlp": gmlp_logits, "gmixer": gmixer_logits}
