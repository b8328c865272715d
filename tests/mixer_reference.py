"""An independent NumPy implementation of MLP-Mixer, written from the paper's equations.

It reads parameters in the official flat .npz layout (flax names, HWIO stem kernel, in × out
Dense kernels) and takes NHWC images, like the official JAX code, and computes in float64.
It shares no code with `mlpmixer`; the tests compare the library against it.

Also here: random official-layout parameters, and the timm key layout written out by hand.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf


def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":  # flax.linen.gelu's default
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def mlp(x: np.ndarray, params: dict, prefix: str, approximate: str) -> np.ndarray:
    h = x @ params[f"{prefix}/Dense_0/kernel"] + params[f"{prefix}/Dense_0/bias"]
    return (
        gelu(h, approximate) @ params[f"{prefix}/Dense_1/kernel"] + params[f"{prefix}/Dense_1/bias"]
    )


def mixer_logits(
    params: dict, images_nhwc: np.ndarray, gelu_approximate: str = "tanh"
) -> np.ndarray:
    """Logits (B, classes) of the official Mixer for NHWC images (B, H, W, in)."""
    p = {k: v.astype(np.float64) for k, v in params.items()}
    x = images_nhwc.astype(np.float64)
    ph, pw, cin, c = p["stem/kernel"].shape
    b, h, w, _ = x.shape
    # Per-patch linear projection: a convolution with kernel = stride = patch.
    patches = x.reshape(b, h // ph, ph, w // pw, pw, cin).transpose(0, 1, 3, 2, 4, 5)
    x = patches.reshape(b, -1, ph * pw * cin) @ p["stem/kernel"].reshape(-1, c) + p["stem/bias"]
    i = 0
    while f"MixerBlock_{i}/LayerNorm_0/scale" in p:
        blk = f"MixerBlock_{i}"
        y = layer_norm(x, p[f"{blk}/LayerNorm_0/scale"], p[f"{blk}/LayerNorm_0/bias"])
        y = mlp(y.transpose(0, 2, 1), p, f"{blk}/token_mixing", gelu_approximate)  # over tokens
        x = x + y.transpose(0, 2, 1)
        y = layer_norm(x, p[f"{blk}/LayerNorm_1/scale"], p[f"{blk}/LayerNorm_1/bias"])
        x = x + mlp(y, p, f"{blk}/channel_mixing", gelu_approximate)  # over channels
        i += 1
    x = layer_norm(x, p["pre_head_layer_norm/scale"], p["pre_head_layer_norm/bias"]).mean(axis=1)
    if "head/kernel" not in p:
        return x
    return x @ p["head/kernel"] + p["head/bias"]


def random_official_params(
    rng: np.random.Generator,
    *,
    patch: tuple[int, int] = (4, 4),
    grid: tuple[int, int] = (4, 4),
    in_chans: int = 3,
    hidden: int = 32,
    blocks: int = 2,
    tokens_mlp: int = 24,
    channels_mlp: int = 64,
    classes: int = 10,
) -> dict[str, np.ndarray]:
    """Random float32 parameters in the official flat layout (nonzero head, non-trivial norms)."""
    s = grid[0] * grid[1]

    def dense(n_in: int, n_out: int, prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}/kernel": rng.normal(0, 1 / math.sqrt(n_in), (n_in, n_out)),
            f"{prefix}/bias": rng.normal(0, 0.1, (n_out,)),
        }

    def norm(prefix: str) -> dict[str, np.ndarray]:
        return {
            f"{prefix}/scale": rng.normal(1, 0.1, (hidden,)),
            f"{prefix}/bias": rng.normal(0, 0.1, (hidden,)),
        }

    params = {
        "stem/kernel": rng.normal(
            0, 1 / math.sqrt(patch[0] * patch[1] * in_chans), (*patch, in_chans, hidden)
        ),
        "stem/bias": rng.normal(0, 0.1, (hidden,)),
    }
    for i in range(blocks):
        blk = f"MixerBlock_{i}"
        params |= norm(f"{blk}/LayerNorm_0") | norm(f"{blk}/LayerNorm_1")
        params |= dense(s, tokens_mlp, f"{blk}/token_mixing/Dense_0")
        params |= dense(tokens_mlp, s, f"{blk}/token_mixing/Dense_1")
        params |= dense(hidden, channels_mlp, f"{blk}/channel_mixing/Dense_0")
        params |= dense(channels_mlp, hidden, f"{blk}/channel_mixing/Dense_1")
    params |= norm("pre_head_layer_norm")
    if classes:
        params |= dense(hidden, classes, "head")
    return {k: v.astype(np.float32) for k, v in params.items()}


def official_to_timm(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The same weights under timm's MlpMixer key names and PyTorch layouts (written by hand)."""
    out = {
        "stem.proj.weight": params["stem/kernel"].transpose(3, 2, 0, 1),
        "stem.proj.bias": params["stem/bias"],
        "norm.weight": params["pre_head_layer_norm/scale"],
        "norm.bias": params["pre_head_layer_norm/bias"],
    }
    if "head/kernel" in params:
        out["head.weight"] = params["head/kernel"].T
        out["head.bias"] = params["head/bias"]
    i = 0
    while f"MixerBlock_{i}/LayerNorm_0/scale" in params:
        src, dst = f"MixerBlock_{i}", f"blocks.{i}"
        for norm_src, norm_dst in (("LayerNorm_0", "norm1"), ("LayerNorm_1", "norm2")):
            out[f"{dst}.{norm_dst}.weight"] = params[f"{src}/{norm_src}/scale"]
            out[f"{dst}.{norm_dst}.bias"] = params[f"{src}/{norm_src}/bias"]
        for mlp_src, mlp_dst in (
            ("token_mixing", "mlp_tokens"),
            ("channel_mixing", "mlp_channels"),
        ):
            for dense_src, dense_dst in (("Dense_0", "fc1"), ("Dense_1", "fc2")):
                out[f"{dst}.{mlp_dst}.{dense_dst}.weight"] = params[
                    f"{src}/{mlp_src}/{dense_src}/kernel"
                ].T
                out[f"{dst}.{mlp_dst}.{dense_dst}.bias"] = params[
                    f"{src}/{mlp_src}/{dense_src}/bias"
                ]
        i += 1
    return {k: np.ascontiguousarray(v) for k, v in out.items()}
