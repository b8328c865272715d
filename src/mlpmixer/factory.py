"""`create_model`: a registered architecture, optionally with published pretrained weights.

Pretrained weights are named ``<model>.<tag>`` as in timm (``mixer_b16_224.goog_in21k_ft_in1k``)
or passed as ``pretrained=True`` (the model's first tag). Sources are timm's copies on the
Hugging Face hub and Google's original .npz files (bucket ``mixer_models``).
"""

from __future__ import annotations

from typing import Any

from .checkpoints import load_model
from .errors import ConfigError
from .models.base import MlpFamilyModel
from .models.registry import create_model as create_registered
from .models.registry import resolve_name

_GCS = "https://storage.googleapis.com/mixer_models"

# model -> {tag: source}; the first tag is the default for pretrained=True.
PRETRAINED: dict[str, dict[str, str]] = {
    "mixer_b16_224": {
        "goog_in21k_ft_in1k": "hf-hub:timm/mixer_b16_224.goog_in21k_ft_in1k",
        "goog_in21k": "hf-hub:timm/mixer_b16_224.goog_in21k",
        "miil_in21k_ft_in1k": "hf-hub:timm/mixer_b16_224.miil_in21k_ft_in1k",
        "miil_in21k": "hf-hub:timm/mixer_b16_224.miil_in21k",
        "official_in21k": f"{_GCS}/imagenet21k/Mixer-B_16.npz",
        "official_in21k_ft_in1k": f"{_GCS}/imagenet1k/Mixer-B_16.npz",
        "official_sam_in1k": f"{_GCS}/sam/Mixer-B_16.npz",
    },
    "mixer_b32_224": {"official_sam_in1k": f"{_GCS}/sam/Mixer-B_32.npz"},
    "mixer_l16_224": {
        "goog_in21k_ft_in1k": "hf-hub:timm/mixer_l16_224.goog_in21k_ft_in1k",
        "goog_in21k": "hf-hub:timm/mixer_l16_224.goog_in21k",
        "official_in21k": f"{_GCS}/imagenet21k/Mixer-L_16.npz",
        "official_in21k_ft_in1k": f"{_GCS}/imagenet1k/Mixer-L_16.npz",
    },
}


def pretrained_source(name: str, tag: str | None = None) -> str:
    """Where the weights ``name`` (with ``tag``, else the default) are published."""
    tags = PRETRAINED.get(name, {})
    if not tags:
        raise ConfigError(
            f"no published weights for {name!r}; models with weights: {sorted(PRETRAINED)}"
        )
    tag = tag or next(iter(tags))
    if tag not in tags:
        raise ConfigError(f"unknown tag {tag!r} for {name}; known: {', '.join(tags)}")
    return tags[tag]


def create_model(
    name: str, pretrained: bool = False, reset_head: bool = False, **overrides: Any
) -> MlpFamilyModel:
    """Build a registered model: ``create_model("mixer_b16_224")``, ``create_model("B/16")``.

    ``pretrained=True`` (or a name with a tag, ``"mixer_b16_224.goog_in21k"``) loads published
    weights; downloading needs a network and fails with a clear `DownloadError` offline.
    ``overrides`` change config fields (``num_classes=10, reset_head=True`` to fine-tune).
    """
    base, _, tag = name.partition(".")
    base = resolve_name(base)
    if not (pretrained or tag):
        return create_registered(base, **overrides)
    return load_model(pretrained_source(base, tag or None), reset_head=reset_head, **overrides)
