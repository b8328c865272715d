"""What the fast path decides for a model's shapes on this machine, without running the model.

`survey` asks each piece the question a model's first calls would ask (fp32 and bf16
inference, bf16 autocast, fp32 and bf16 training; the token products in fp32 and bf16, both
modes) for the shapes of ``config`` at ``batch`` images, and
returns `pieces.decisions`: what ``mlpmixer info --fast`` prints. On a CPU without rules this
runs the probes (and caches them, so the model's own first calls do not measure again).
"""

from __future__ import annotations

import torch

from ..config import MixerConfig
from . import autocast_cache, gelu, layouts, onednn, pieces, token_linear


def survey(config: MixerConfig, batch: int = 32) -> list[pieces.Decision]:
    """The decisions for ``config``'s channel and token MLPs at ``batch`` images."""
    tokens, channels = config.num_tokens, config.hidden_dim
    rows = batch * tokens
    for dtype in (torch.float32, torch.bfloat16):
        if config.gelu == "tanh":
            gelu.use_fused(dtype)
        onednn.inference_choice(dtype, channels, config.channels_mlp_dim, config.gelu, rows)
    if config.family == "mixer":
        for dtype in (torch.float32, torch.bfloat16):
            for training in (False, True):
                token_linear.form_choice(dtype, training, config.tokens_mlp_dim, tokens, channels)
    autocast_cache.use(torch.bfloat16)
    onednn.training_choice(channels, config.channels_mlp_dim, rows)
    layouts.choice(torch.bfloat16, channels, config.channels_mlp_dim)
    return pieces.decisions()
