"""gMLP, ResMLP and gMixer under timm's names, with timm's configs (timm/models/mlp_mixer.py).

All use the exact (erf) GELU like timm. gMLP keeps the Mixer's mean/std of 0.5; ResMLP and
gMixer were trained with ImageNet's statistics.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import IMAGENET_MEAN, IMAGENET_STD, MixerConfig


def _gmlp(size: str, hidden: int) -> tuple[str, MixerConfig, str]:
    config = MixerConfig(
        family="gmlp", patch_size=16, hidden_dim=hidden, num_blocks=30,
        tokens_mlp_dim=196, channels_mlp_dim=6 * hidden, gelu="none",
    )  # fmt: skip
    return f"gmlp_{size}16_224", config, f"gMLP-{size.upper()}/16 (Liu et al. 2021), 224x224 RGB"


def _resmlp(name: str, blocks: int, patch: int, hidden: int, scale: float) -> tuple:
    tokens = (224 // patch) ** 2
    config = MixerConfig(
        family="resmlp", patch_size=patch, hidden_dim=hidden, num_blocks=blocks,
        tokens_mlp_dim=tokens, channels_mlp_dim=4 * hidden, gelu="none",
        layer_scale_init=scale, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    )  # fmt: skip
    return name, config, f"ResMLP with {blocks} blocks of {patch}x{patch} patches (Touvron et al.)"


def _gmixer(blocks: int) -> tuple[str, MixerConfig, str]:
    config = MixerConfig(
        family="gmixer", patch_size=16, hidden_dim=384, num_blocks=blocks,
        tokens_mlp_dim=384, channels_mlp_dim=1536, gelu="none",
        mean=IMAGENET_MEAN, std=IMAGENET_STD,
    )  # fmt: skip
    return f"gmixer_{blocks}_224", config, f"gMixer: a {blocks}-block Mixer with SwiGLU MLPs"


FAMILY_TABLE = [
    _gmlp("ti", 128),
    _gmlp("s", 256),
    _gmlp("b", 512),
    _resmlp("resmlp_12_224", 12, 16, 384, 1e-4),
    _resmlp("resmlp_24_224", 24, 16, 384, 1e-5),
    _resmlp("resmlp_36_224", 36, 16, 384, 1e-6),
    _resmlp("resmlp_big_24_224", 24, 8, 768, 1e-6),
    _gmixer(12),
    _gmixer(24),
]


def register_family(register: Callable[[str, MixerConfig, str], None]) -> None:
    """Register the nine models with ``register(name, config, description)``."""
    for name, config, description in FAMILY_TABLE:
        register(name, config, description)
