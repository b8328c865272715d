"""Model cards (``README.md``) for the hub folders this package writes.

A Hugging Face model card is YAML metadata between ``---`` lines, then Markdown. The hub
reads ``library_name`` (which code loads the folder), ``pipeline_tag`` (the task widget),
``license`` and ``tags`` from the metadata. Two cards:

* `native_card` — our own folder (``save_pretrained``, a run's ``model/``):
  ``library_name: mlpmixer``; the architecture, parameters, preprocessing, how to load it
  with mlpmixer and (after ``mlpmixer convert --to timm``) with timm, and the run's
  metrics when it comes from a run;
* `timm_card` — a timm folder (``mlpmixer convert ... --to timm``): ``library_name: timm``
  and how to load it with ``timm.create_model``.

Values that come from users (class names, data set names) are written as JSON strings, which
YAML reads as the same strings, or into the Markdown body with Markdown's specials escaped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..models.config import MixerConfig
from ..models.flops import flops_per_image, param_count
from ..models.spec import family_spec

LICENSE = "apache-2.0"  # this package's; a card states its family's weights' (`Paper.license`)
CITATION = """```bibtex
@article{tolstikhin2021mlpmixer,
  title   = {MLP-Mixer: An all-MLP Architecture for Vision},
  author  = {Tolstikhin, Ilya and Houlsby, Neil and Kolesnikov, Alexander and Beyer, Lucas
             and Zhai, Xiaohua and Unterthiner, Thomas and Yung, Jessica and Steiner, Andreas
             and Keysers, Daniel and Uszkoreit, Jakob and Lucic, Mario and Dosovitskiy, Alexey},
  journal = {Advances in Neural Information Processing Systems},
  volume  = {34},
  year    = {2021}
}
```"""
CITATION_SECTION = ("", "## Citation", "", CITATION, "")
METRICS = ("test_top1", "test_top5", "test_loss", "ema_test_top1", "ema_test_top5")
RUN_FACTS = ("dataset", "model", "epochs", "steps", "batch_size", "seed", "precision")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+|!~])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _text(value: Any) -> str:
    """A user-supplied value for the Markdown body: one line, Markdown specials escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _CONTROL.sub(" ", str(value)))


def front_matter(
    library: str,
    tags: Sequence[str],
    extra: Mapping[str, Any] | None = None,
    license: str = LICENSE,
) -> str:
    """The YAML metadata block of a card."""
    lines = ["---", f"library_name: {library}", "pipeline_tag: image-classification"]
    lines.append(f"license: {license}")
    lines += ["tags:", *(f"- {json.dumps(t)}" for t in tags)]
    for key, value in (extra or {}).items():
        lines.append(f"{key}: {json.dumps(value)}")
    return "\n".join([*lines, "---", ""])


def _shape(size: Sequence[int]) -> str:
    return "×".join(str(v) for v in size)


def _mixer_shape(c: MixerConfig, unused: Sequence[str]) -> tuple[str, list[str]]:
    """The isotropic families' shape: blocks, width, tokens; the MLP widths line."""
    gelu = {"none": "exact (erf)", "tanh": "tanh approximation"}[c.gelu]
    layers = [f"GELU {gelu}"] * ("gelu" not in unused)
    layers += [f"LayerNorm ε {c.norm_eps:g}"] * ("norm_eps" not in unused)
    shape = (
        f": {c.num_blocks} blocks, width C = {c.hidden_dim}, patches {_shape(c.patch_size)} "
        f"→ S = {c.num_tokens} tokens ({_shape(c.grid_size)} grid)"
    )
    widths = (
        f"- **MLP widths:** tokens D_S = {c.tokens_mlp_dim}, channels D_C = {c.channels_mlp_dim}"
        + (f"; {', '.join(layers)}" if layers else "")
    )
    return shape, [widths]


def details(config: Any) -> list[str]:
    """Markdown bullet lines: architecture, size and cost, classes (any family's config;
    a `MixerConfig` also says blocks, width, tokens and MLP widths)."""
    c = config
    spec = family_spec(c.family)
    shape, more = _mixer_shape(c, spec.unused_fields) if isinstance(c, MixerConfig) else ("", [])
    if spec.any_size:
        size = "any size the model's strides divide"
    elif spec.resize is not None:
        size = "fixed: resize the model with `model.resize(img_size)` for another size"
    else:
        size = f"fixed: a {spec.paper.title} cannot be resized"
    lines = [
        f"- **Architecture:** {spec.paper.title} ([paper]({spec.paper.url})), family "
        f"`{c.family}`{shape}",
        *more,
        f"- **Parameters:** {param_count(c) / 1e6:.2f} M; "
        f"**GFLOPs:** {flops_per_image(c) / 1e9:.3g} per image",
        f"- **Input:** {c.in_chans} channel(s), {_shape(c.img_size)} pixels ({size})",
    ]
    if c.num_classes == 0:
        lines.append("- **Output:** pooled features (no classifier head)")
    else:
        names = ""
        if c.class_names:
            shown = ", ".join(_text(n) for n in c.class_names[:10])
            names = f": {shown}" + (", …" if len(c.class_names) > 10 else "")
        lines.append(f"- **Classes:** {c.num_classes}{names}")
    return lines


def model_sections(config: MixerConfig, who_preprocesses: str) -> list[str]:
    """The "Model details" and "Preprocessing" sections (Markdown lines)."""
    c = config
    preprocessing = (
        f"Resize so that the shorter side is {_shape(c.img_size)} / crop_pct (crop_pct = "
        f"{c.crop_pct:g}, {c.interpolation} interpolation, antialiased), centre-crop to "
        f"{_shape(c.img_size)}, scale pixels to [0, 1], then normalise with mean "
        f"{list(c.mean)} and std {list(c.std)}. {who_preprocesses}"
    )
    return ["## Model details", "", *details(c), "", "## Preprocessing", "", preprocessing]


def _metrics(summary: Mapping[str, Any]) -> list[str]:
    rows = [f"| {_text(k)} | {summary[k]:.4g} |" for k in METRICS if k in summary]
    facts = [f"{k.replace('_', ' ')} {_text(summary[k])}" for k in RUN_FACTS if k in summary]
    if not rows and not facts:
        return []
    out = ["", "## Results", ""]
    if facts:
        out += ["Training run: " + ", ".join(facts) + ".", ""]
    if rows:
        out += ["| metric | value |", "|---|---|", *rows]
    return out


def native_card(
    config: MixerConfig,
    location: str,
    summary: Mapping[str, Any] | None = None,
    timm_note: str | None = None,
) -> str:
    """README.md of our own folder at ``location`` (how the user will name it when loading).

    ``summary`` is a run's summary (metrics, data set, steps); ``timm_note`` says why timm
    cannot build this shape, or None when it can (after conversion).
    """
    spec = family_spec(config.family)
    title = f"{spec.paper.title} image classifier"
    if summary and summary.get("dataset"):
        title += f" trained on {_text(summary['dataset'])}"
    loc = json.dumps(location)
    timm_dir = json.dumps(location.rstrip("/") + "-timm")
    if timm_note is None:
        with_timm = [
            "timm reads timm's key names; convert once, then load the converted folder:",
            "",
            "```bash",
            f"mlpmixer convert {loc} {timm_dir} --to timm",
            "```",
            "",
            "```python",
            "import timm",
            f'model = timm.create_model("local-dir:" + {timm_dir}, pretrained=True)',
            "```",
        ]
    else:
        with_timm = [f"Not with `timm.create_model`: {_text(timm_note)}."]
        if spec.timm is not None and spec.timm.any_shape:
            with_timm[0] += (
                f" `mlpmixer convert {loc} {timm_dir} --to timm` writes timm's weights and a "
                "README that builds them with timm's `MlpMixer` class."
            )
    lines = [
        front_matter(
            "mlpmixer",
            ["image-classification", "mlp-mixer", config.family],
            license=spec.paper.license,
        ),
        f"# {title}",
        "",
        "Weights in the [mlpmixer](https://pypi.org/project/mlpmixer/) format: `config.json` "
        "(architecture and preprocessing) and `model.safetensors`, bound together by SHA-256 "
        "checksums that are verified on load.",
        "",
        *model_sections(
            config, "`mlpmixer predict` and `mlpmixer eval` do this from the stored config."
        ),
        *_metrics(summary or {}),
        "",
        "## How to use",
        "",
        "```python",
        "import mlpmixer",
        f"model = mlpmixer.load_model({loc}).eval()  # or a hub id: org/name",
        "logits = model(images)  # images: (batch, "
        f"{config.in_chans}, {config.img_size[0]}, {config.img_size[1]}), normalised as above",
        f"tuned = mlpmixer.load_model({loc}, num_classes=10, reset_head=True)  # fine-tuning",
        "```",
        "",
        "```bash",
        f"mlpmixer predict --checkpoint {loc} image.png",
        "```",
        "",
        "### With timm",
        "",
        *with_timm,
        *CITATION_SECTION,
    ]
    return "\n".join(lines)


def timm_card(
    config: MixerConfig, architecture: str, model_args: Mapping[str, Any], timm_note: str | None
) -> str:
    """README.md of a timm folder whose config.json names ``architecture``."""
    args = "".join(f", {k}={v!r}" for k, v in model_args.items())
    if timm_note is None:
        usage = [
            "```python",
            "import timm",
            'model = timm.create_model("local-dir:PATH", pretrained=True).eval()  # this folder',
            'tuned = timm.create_model("local-dir:PATH", pretrained=True, num_classes=10)',
            "```",
            "",
            f"`config.json` names timm's `{architecture}`"
            + (f" with `model_args` {{{args[2:]}}}." if args else "."),
        ]
    else:
        usage = [f"`timm.create_model` cannot build it: {_text(timm_note)}."]
        names = family_spec(config.family).timm
        if names is not None and names.any_shape:  # timm's MlpMixer defaults to the Mixer's block
            usage += [
                "timm's `MlpMixer` class can, from `model_args`:",
                "",
                "```python",
                "import json, timm",
                "from safetensors.torch import load_file",
                'config = json.load(open("PATH/config.json"))',
                'model = timm.models.MlpMixer(**config["model_args"], '
                'num_classes=config["num_classes"])',
                'model.load_state_dict(load_file("PATH/model.safetensors"))',
                "```",
            ]
    lines = [
        front_matter(
            "timm",
            ["image-classification", "timm", "mlp-mixer", config.family],
            license=family_spec(config.family).paper.license,
        ),
        f"# Model card for {_text(architecture)}",
        "",
        "A timm folder written by [mlpmixer](https://pypi.org/project/mlpmixer/) "
        "(`mlpmixer convert ... --to timm`): timm's key names and `config.json`.",
        "",
        *model_sections(
            config,
            "timm's `resolve_data_config` + `create_transform` read it from `pretrained_cfg`.",
        ),
        "",
        "## How to use",
        "",
        *usage,
        "",
        "With mlpmixer (also keeps the class names and GELU variant stored in the weights' "
        "metadata):",
        "",
        "```python",
        "import mlpmixer",
        'model = mlpmixer.load_model("PATH")',
        "```",
        *CITATION_SECTION,
    ]
    return "\n".join(lines)
