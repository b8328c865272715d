"""Published weights of the registered models, as data: ``model -> tag -> weights``.

Tags follow timm (``gmlp_s16_224.ra3_in1k``); ``hf-hub:timm/...`` sources are timm's copies
on the Hugging Face hub, ``official_*`` tags Google's original .npz files (bucket
``mixer_models``: folders imagenet21k, imagenet1k, sam). Each entry records what the weights
expect: number of classes and preprocessing (mean, std, interpolation, crop_pct), as timm's
``pretrained_cfg`` states them. The first tag of a model is its default for
``pretrained=True``. Downloading is `mlpmixer.checkpoints`' business; a ``manual:`` source
(`manual_page`) is a web page no program can download from (ViP's Google Drive, AS-MLP's
OneDrive), which `create_model` refuses, naming the page.
"""

from __future__ import annotations

from typing import Any

from .config import IMAGENET_MEAN, IMAGENET_STD

GCS = "https://storage.googleapis.com/mixer_models"

# Preprocessing presets: (mean, std, interpolation, crop_pct).
PREPROCESSING: dict[str, tuple[tuple[float, ...], tuple[float, ...], str, float]] = {
    "half": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic", 0.875),  # Google's Mixers, gMLP
    "miil": ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), "bilinear", 0.875),  # Alibaba MIIL's ImageNet-21k
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD, "bicubic", 0.875),
    "imagenet_crop90": (IMAGENET_MEAN, IMAGENET_STD, "bicubic", 0.9),  # Wave-MLP's default_cfg
}

# model: [(tag, source, num_classes, preprocessing preset), ...]; "hub" = timm's hub copy.
TABLE: dict[str, list[tuple[str, str, int, str]]] = {
    "mixer_b16_224": [
        ("goog_in21k_ft_in1k", "hub", 1000, "half"),
        ("goog_in21k", "hub", 21843, "half"),
        ("miil_in21k_ft_in1k", "hub", 1000, "miil"),
        ("miil_in21k", "hub", 11221, "miil"),
        ("official_in21k", f"{GCS}/imagenet21k/Mixer-B_16.npz", 21843, "half"),
        ("official_in21k_ft_in1k", f"{GCS}/imagenet1k/Mixer-B_16.npz", 1000, "half"),
        ("official_sam_in1k", f"{GCS}/sam/Mixer-B_16.npz", 1000, "half"),
    ],
    "mixer_b32_224": [("official_sam_in1k", f"{GCS}/sam/Mixer-B_32.npz", 1000, "half")],
    "mixer_l16_224": [
        ("goog_in21k_ft_in1k", "hub", 1000, "half"),
        ("goog_in21k", "hub", 21843, "half"),
        ("official_in21k", f"{GCS}/imagenet21k/Mixer-L_16.npz", 21843, "half"),
        ("official_in21k_ft_in1k", f"{GCS}/imagenet1k/Mixer-L_16.npz", 1000, "half"),
    ],
    "gmixer_24_224": [("ra3_in1k", "hub", 1000, "imagenet")],
    "gmlp_s16_224": [("ra3_in1k", "hub", 1000, "half")],
    "resmlp_12_224": [
        ("fb_in1k", "hub", 1000, "imagenet"),
        ("fb_distilled_in1k", "hub", 1000, "imagenet"),
        ("fb_dino", "hub", 1000, "imagenet"),
    ],
    "resmlp_24_224": [
        ("fb_in1k", "hub", 1000, "imagenet"),
        ("fb_distilled_in1k", "hub", 1000, "imagenet"),
        ("fb_dino", "hub", 1000, "imagenet"),
    ],
    "resmlp_36_224": [
        ("fb_in1k", "hub", 1000, "imagenet"),
        ("fb_distilled_in1k", "hub", 1000, "imagenet"),
    ],
    "resmlp_big_24_224": [
        ("fb_in1k", "hub", 1000, "imagenet"),
        ("fb_distilled_in1k", "hub", 1000, "imagenet"),
        ("fb_in22k_ft_in1k", "hub", 1000, "imagenet"),
    ],
}

# The zoo's official weights, as each family's README links them (checked against the READMEs
# of ShoufaChen/CycleMLP 4e062a0, ggjy/Hire-Wave-MLP.pytorch 7ef7ddd, houqb/VisionPermutator
# 2cab2ce, svip-lab/AS-MLP dd1eb4f). None of the READMEs publishes a checksum. CycleMLP,
# Hire-MLP and Wave-MLP are GitHub release assets (read by checkpoints/formats/zoo.py);
# Hire-MLP-Large, Wave-MLP-B and ViP-Small/14 have no published weights. ViP's are on Google
# Drive and AS-MLP's on OneDrive: share pages, not files, so they are ``MANUAL`` sources that
# `create_model(..., pretrained=True)` refuses with the page to download from.
CYCLEMLP = "https://github.com/ShoufaChen/CycleMLP/releases/download/v0.1"
HIRE_WAVE = "https://github.com/ggjy/Hire-Wave-MLP.pytorch/releases/download"
MANUAL = "manual:"  # + the page a person downloads the file from
GOOGLE_DRIVE = "https://drive.google.com/file/d/{}/view?usp=sharing"
ONEDRIVE = (
    "https://shanghaitecheducn-my.sharepoint.com/:u:/g/personal/liandz_shanghaitech_edu_cn/{}"
)
TABLE.update(
    {
        f"cyclemlp_b{i}": [("official_in1k", f"{CYCLEMLP}/CycleMLP_B{i}.pth", 1000, "imagenet")]
        for i in range(1, 6)
    }
)
TABLE.update(
    {
        f"hiremlp_{size}": [
            ("official_in1k", f"{HIRE_WAVE}/log/hire_mlp_{size}.pth", 1000, "imagenet")
        ]
        for size in ("tiny", "small", "base")
    }
)
TABLE.update(
    {
        f"wavemlp_{size.lower()}": [
            (
                "official_in1k",
                f"{HIRE_WAVE}/log-wave/WaveMLP_{size}.pth.tar",
                1000,
                "imagenet_crop90",
            )
        ]
        for size in ("T_dw", "T", "S", "M")
    }
)
TABLE.update(
    {  # ViP's default_cfgs: crop 0.9 for ViP_S / ViP_M, 0.875 for ViP_L
        name: [("official_in1k", MANUAL + GOOGLE_DRIVE.format(file_id), 1000, preset)]
        for name, file_id, preset in [
            ("vip_s7", "1cX6eauDrsGsLSZnqsX7cl0oiKX8Dzv5z", "imagenet_crop90"),
            ("vip_m7", "15y5WMypthpbBFdc01E3mJCZit7q0Yn8m", "imagenet_crop90"),
            ("vip_l7", "14F5IXGXmB_3jrwK33Efae-WEb5D_G85c", "imagenet"),
        ]
    }
)
TABLE.update(
    {  # Swin's evaluation (AS-MLP's config.py): resize to 256/224, centre crop, bicubic
        name: [("official_in1k", MANUAL + ONEDRIVE.format(share), 1000, "imagenet")]
        for name, share in [
            ("asmlp_tiny", "Eb2lPJI2BshEjJxf9CmRkCUBnB63Wj25-FVVc6zJvgRg6w?e=dEQd5q"),
            ("asmlp_small", "EVIbw8xHKk1Aq9MBQL-cRbIBVJA_hJE-HEVNf_GVgkw2iQ?e=QIIp2e"),
            ("asmlp_base", "EZVBFW_LKctLqgrnnINy88wBRtGFava9wp_65emsvVW2KQ?e=clNjuw"),
        ]
    }
)


def manual_page(source: str) -> str | None:
    """The page to download a ``MANUAL`` source from by hand; None for any other source."""
    return source.removeprefix(MANUAL) if source.startswith(MANUAL) else None


def source_of(model: str, tag: str, source: str) -> str:
    """The download source of one table row (``hub`` -> timm's hub id)."""
    return f"hf-hub:timm/{model}.{tag}" if source == "hub" else source


def sources(model: str) -> dict[str, str]:
    """tag -> source of ``model``'s published weights (empty if none), default tag first."""
    return {tag: source_of(model, tag, src) for tag, src, _, _ in TABLE.get(model, [])}


def weights_cfg(model: str, tag: str) -> dict[str, Any]:
    """timm-style description of one tag: source, num_classes, mean, std, interpolation,
    crop_pct. ``KeyError`` if the model has no such tag."""
    for row_tag, src, num_classes, preset in TABLE[model]:
        if row_tag == tag:
            mean, std, interpolation, crop_pct = PREPROCESSING[preset]
            return {
                "source": source_of(model, tag, src),
                "num_classes": num_classes,
                "mean": mean,
                "std": std,
                "interpolation": interpolation,
                "crop_pct": crop_pct,
            }
    raise KeyError(f"{model}.{tag}")
