"""One entry point for every checkpoint format: detect, read, rebuild, save, convert.

Formats:

* ``native`` — this project's: safetensors + config.json (directory or single file);
* ``official`` — Google's flat ``.npz`` (google-research/vision_transformer, big_vision);
* ``timm`` — timm's state dicts of every family: ``mixer_*``, ``gmixer_*``, ``resmlp_*``,
  ``gmlp_*`` (``.pth``/``.bin``/``.safetensors``/hub dir);
* ``facebook`` — ResMLP's original deit checkpoints (read only);
* ``lucidrains`` — ``mlp-mixer-pytorch`` state dicts (read only);
* ``state_dict`` — a bare state dict with this package's key names (``torch.save(model.state_dict())``).

Sources may be local paths, Hugging Face hub ids (``hf-hub:timm/mixer_b16_224.goog_in21k_ft_in1k``
or ``org/name``) or ``https://`` / ``gs://`` URLs. For the foreign formats the architecture is inferred
from the tensor shapes.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..choices import WRITABLE_FORMATS
from ..download import download_hub_repo, download_url, is_hub_id, public_url
from ..errors import CheckpointError, CheckpointNotFoundError, ConfigError
from ..fileio import atomic_path
from ..layout import (
    CONFIG_JSON,
    NPZ_SUFFIX,
    SAFETENSORS_SUFFIX,
    SAFETENSORS_WEIGHTS,
    TORCH_SUFFIXES,
    TORCH_WEIGHTS,
)
from ..models.base import MlpFamilyModel, family_class
from ..models.config import MixerConfig
from ..models.flops import flops_per_image, param_count
from ..models.spec import config_from_dict, family_spec
from ..models.state_fit import apply_overrides, check_state_fits
from ..progress import PROGRESS
from .architecture import has_family_keys, infer_config
from .facebook import FACEBOOK_FIELDS, facebook_to_state, is_facebook_resmlp
from .lucidrains import LUCIDRAINS_FIELDS, is_lucidrains, lucidrains_to_state
from .native import (
    FORMAT_NAME,
    HUB_OPTIONS,
    is_native_dir,
    native_file_contents,
    read_native,
    read_safetensors,
)
from .official import official_to_state, read_npz, write_npz
from .run_dir import is_run_dir, is_training_checkpoint, read_training_checkpoint, run_result_dir
from .sidecar import read_sidecar, write_sidecar
from .timm_format import (
    read_torch_file,
    stored_fields,
    timm_family,
    timm_hub_fields,
    timm_to_state,
    write_timm,
)

# what detect_format/read_checkpoint report; "training": a run's checkpoints/last.pt
FORMATS = ("native", "official", "timm", "state_dict", "facebook", "lucidrains", "training")
GELU_NAMES = {"tanh": "tanh", "none": "erf"}  # config value -> what the function is


@dataclass
class Checkpoint:
    """What a file holds: its format, the weights (this package's names) and the config."""

    format: str
    config: MixerConfig
    state: dict[str, torch.Tensor]
    source: str


log = logging.getLogger(__name__)  # progress of big loads (the CLI shows it on stderr)


def resolve_source(source: str | os.PathLike[str], **hub_options: Any) -> Path:
    """A local path for ``source``: itself, a hub repository's cached folder, or a cached URL."""
    text = str(source)
    url = public_url(text)
    if url is not None:
        return download_url(url)
    path = Path(source)
    if path.exists():
        return require_regular(path)
    if is_hub_id(text):
        return download_hub_repo(text, **hub_options)
    raise CheckpointNotFoundError(f"no such checkpoint file or directory: {text}")


def require_regular(path: Path) -> Path:
    """``path`` if it is a directory or a regular file (symlinks followed); else `CheckpointError`.

    Reading a FIFO blocks forever and ``/dev/zero`` never ends: neither is a checkpoint.
    """
    if path.is_dir() or path.is_file():
        return path
    target = path.resolve()
    raise CheckpointError(
        f"{path}: not a regular file"
        + (f" (it points to {target})" if target != path.absolute() else "")
        + "; a checkpoint must be a file or a folder, not a device, FIFO or socket"
    )


def _state_format(state: dict[str, torch.Tensor], source: Any) -> str:
    if timm_family(state):
        return "timm"
    if is_facebook_resmlp(state):
        return "facebook"
    if is_lucidrains(state):
        return "lucidrains"
    if has_family_keys(state):
        return "state_dict"
    keys = ", ".join(sorted(state)[:6])
    raise CheckpointError(f"{source}: not a Mixer state dict (first keys: {keys or 'none'})")


def _weights_in_dir(path: Path) -> Path:
    for name in (SAFETENSORS_WEIGHTS, TORCH_WEIGHTS):
        if (path / name).exists():
            return require_regular(path / name)
    raise CheckpointError(
        f"{path}: a directory without model.safetensors or pytorch_model.bin "
        "(expected an mlpmixer save_pretrained directory or a timm hub download)"
    )


def detect_format(source: str | os.PathLike[str], **hub_options: Any) -> str:
    """The format of a checkpoint: one of `FORMATS`. Unknown files raise `CheckpointError`."""
    return read_checkpoint(source, **hub_options).format


def _read_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    if path.suffix == SAFETENSORS_SUFFIX:
        return read_safetensors(path)
    if path.suffix in TORCH_SUFFIXES:
        return read_torch_file(path), {}
    raise CheckpointError(
        f"{path}: unknown checkpoint type {path.suffix!r}; expected a directory, .safetensors, "
        f".npz or one of {TORCH_SUFFIXES}"
    )


def read_checkpoint(
    source: str | os.PathLike[str],
    img_size: Any = None,
    in_chans: int | None = None,
    **hub_options: Any,
) -> Checkpoint:
    """Read any supported checkpoint into this package's names plus a config.

    ``img_size`` is needed only for foreign formats whose patch grid is not square;
    ``in_chans`` only for lucidrains' stems of neither 3 nor 1 channels.
    """
    path = resolve_source(source, **hub_options)
    url = public_url(str(source))
    if url is None:
        return _read_resolved(source, path, img_size, in_chans)
    try:
        return _read_resolved(source, path, img_size, in_chans)
    except Exception as err:  # a damaged download must not stay cached ("keep nothing")
        path.unlink(missing_ok=True)
        what = str(err) if isinstance(err, CheckpointError) else f"{type(err).__name__}: {err}"
        raise CheckpointError(
            f"{what}; the file downloaded from {url} does not load, so it was removed from the "
            "cache: the next run downloads it again"
        ) from err


def _read_resolved(
    source: str | os.PathLike[str], path: Path, img_size: Any, in_chans: int | None
) -> Checkpoint:
    """`read_checkpoint` of ``source``, found at the local ``path``."""
    if is_run_dir(path):  # a training run: the model it reports as its result
        path = run_result_dir(path)
    if is_training_checkpoint(path):
        config, state = read_training_checkpoint(path)
        return Checkpoint("training", config, state, str(source))
    if path.is_dir() and is_native_dir(path):
        config, state = read_native(path)
        return Checkpoint("native", config_from_dict(config), state, str(source))
    if path.suffix == NPZ_SUFFIX:
        state = official_to_state(read_npz(path), path)
        fields = {"gelu": "tanh", **read_sidecar(path)}
        return Checkpoint("official", infer_config(state, img_size, **fields), state, str(path))
    fields: dict[str, Any] = {}
    if path.is_dir():
        if (path / CONFIG_JSON).is_file():
            fields = timm_hub_fields(path / CONFIG_JSON)
        path = _weights_in_dir(path)
    state, metadata = _read_tensors(path)
    if metadata.get("format") == FORMAT_NAME:  # refused if its config or checksums lack
        config, state = native_file_contents(path, state, metadata)
        return Checkpoint("native", config_from_dict(config), state, str(source))
    stored = stored_fields(metadata, path, state)  # what an mlpmixer wrote beside the tensors
    fmt = _state_format(state, path)
    if fmt == "timm":
        state = timm_to_state(state)
        fields.setdefault("gelu", "none")  # timm's Mixer uses nn.GELU(), the exact erf
    elif fmt == "facebook":
        state = facebook_to_state(state)
        fields = {**FACEBOOK_FIELDS, **fields}
    elif fmt == "lucidrains":
        state = lucidrains_to_state(state, in_chans)
        fields = {**LUCIDRAINS_FIELDS, **fields}
    fields.update(stored)
    if path.suffix in TORCH_SUFFIXES:
        fields.update(read_sidecar(path))
    img_size = img_size if img_size is not None else fields.pop("img_size", None)
    fields.pop("img_size", None)
    if fmt == "state_dict" and not PREPROCESSING & set(fields):
        _warn_default_preprocessing(path)
    return Checkpoint(fmt, infer_config(state, img_size, **fields), state, str(source))


PREPROCESSING = {"mean", "std", "crop_pct", "interpolation"}


def _warn_default_preprocessing(path: Path) -> None:
    """A bare state dict says nothing of how its images were prepared: say that defaults are
    used (a native model whose config.json was deleted and metadata stripped evaluated at
    0.958 instead of 0.994, silently)."""
    default = MixerConfig()
    warnings.warn(
        f"{path} holds weights only (no config.json, metadata or sidecar): its preprocessing "
        f"is unknown, so the defaults are used (mean {default.mean}, std {default.std}, "
        f"crop_pct {default.crop_pct}, {default.interpolation}); if it was trained otherwise, "
        "restore its config.json (eval: --mean, --std, --crop-pct, --interpolation)",
        stacklevel=3,
    )


def load_model(
    source: str | os.PathLike[str],
    reset_head: bool = False,
    map_location: str | torch.device = "cpu",
    **overrides: Any,
) -> MlpFamilyModel:
    """Load any supported checkpoint (see the module docstring) as a family model.

    ``overrides`` change config fields (e.g. ``drop_path_rate``, ``gelu``); a different
    ``num_classes`` requires ``reset_head=True``, which replaces the head by a fresh
    zero-initialised one. Hub options (``revision``, ``token``...) go to huggingface_hub.
    A file that does not fit raises `CheckpointError` naming the keys and shapes.
    """
    hub_options = {k: overrides.pop(k) for k in HUB_OPTIONS if k in overrides}
    log.info("reading %s", source, extra=PROGRESS)
    checkpoint = read_checkpoint(
        source,
        img_size=overrides.get("img_size"),
        in_chans=overrides.get("in_chans"),
        **hub_options,
    )
    log.info(
        "building the model (%s format, %s)",
        checkpoint.format,
        _size(checkpoint.config),
        extra=PROGRESS,
    )
    try:
        config = apply_overrides(checkpoint.config, overrides, reset_head)
    except ConfigError as err:
        raise CheckpointError(f"{source}: {err}") from err
    model = MlpFamilyModel.from_state_dict(checkpoint.state, config, reset_head=reset_head)
    return model.to(map_location)


def as_model(model_or_source: MlpFamilyModel | str | os.PathLike[str]) -> MlpFamilyModel:
    """``model_or_source`` itself if it is a model, else `load_model` of it."""
    if isinstance(model_or_source, MlpFamilyModel):
        return model_or_source
    return load_model(model_or_source)


def _size(config: MixerConfig) -> str:
    return f"{param_count(config) / 1e6:.1f}M parameters"


def format_for_path(path: Path) -> str:
    """The format a destination path implies: .npz official, .pth/.pt/.bin timm, else native."""
    if path.suffix == NPZ_SUFFIX:
        return "official"
    if path.suffix in TORCH_SUFFIXES:
        return "timm"
    return "native"


def save_model(
    model: MlpFamilyModel, path: str | os.PathLike[str], format: str | None = None
) -> Path:
    """Save ``model`` as ``format`` (default: implied by the path, see `format_for_path`)."""
    path = Path(path)
    format = format or format_for_path(path)
    if format not in WRITABLE_FORMATS:
        raise ConfigError(f"format must be one of {WRITABLE_FORMATS}, got {format!r}")
    state = model.state_dict()
    if format == "official":
        if not family_spec(model.config.family).official_npz:
            raise ConfigError(
                f"the official .npz layout holds Mixers only, not {model.config.family!r}; "
                "save as timm (.pth/.safetensors) or native instead"
            )
        if path.suffix != NPZ_SUFFIX:
            raise ConfigError(f"the official format is an .npz file, got {path}")
        write_npz(path, model.config, state)
    elif format == "timm":
        write_timm(path, model.config, state)
    elif format == "state_dict":
        if path.suffix not in TORCH_SUFFIXES:
            raise ConfigError(f"a bare state dict is saved as one of {TORCH_SUFFIXES}, got {path}")
        with atomic_path(path) as tmp:
            torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)
    else:
        model.save(path)
    if path.suffix == ".npz" or path.suffix in TORCH_SUFFIXES:
        _write_sidecar_and_warn(path, model.config, format)
    return path


def _lost_fields(config: MixerConfig, format: str) -> list[str]:
    """The settings a tensors-only file of ``format`` would not give back by itself."""
    default = MixerConfig()
    gelu_default = {"official": "tanh", "timm": "none"}.get(format, "tanh")
    lost = ["class names"] if config.class_names is not None else []
    lost += [
        name
        for name in ("mean", "std", "interpolation", "crop_pct", "norm_eps")
        if getattr(config, name) != getattr(default, name)
    ]
    if config.gelu != gelu_default:
        lost.append(f"gelu={config.gelu!r}")
    return lost


def _write_sidecar_and_warn(path: Path, config: MixerConfig, format: str) -> None:
    sidecar = write_sidecar(path, config)
    lost = _lost_fields(config, format)
    if lost:
        warnings.warn(
            f"{path.name} holds tensors only; these settings are kept in {sidecar.name} "
            f"beside it, which mlpmixer reads back: {', '.join(lost)}; copy the two files "
            "together (other programs, and mlpmixer without the sidecar, will not know them)",
            stacklevel=3,
        )


def convert(
    source: str | os.PathLike[str],
    destination: str | os.PathLike[str],
    format: str | None = None,
    **load_options: Any,
) -> Path:
    """Read ``source`` in any format and write it to ``destination`` as ``format``."""
    model = load_model(source, **load_options)
    log.info("writing %s", destination, extra=PROGRESS)
    return save_model(model, destination, format)


def check_loadable(checkpoint: Checkpoint) -> None:
    """`CheckpointError` (what `load_model` would say) if the weights do not fit the model
    their config describes: missing or extra keys, shapes, non-float dtypes. Nothing is
    allocated: the model is built on the meta device."""
    with torch.device("meta"):
        model = family_class(checkpoint.config.family)(checkpoint.config)
    check_state_fits(checkpoint.state, model.state_dict())


def describe(checkpoint: Checkpoint) -> dict[str, Any]:
    """A JSON-ready summary: format, inferred architecture, parameters, classes."""
    config = checkpoint.config
    return {
        "source": checkpoint.source,
        "format": checkpoint.format,
        "gelu": GELU_NAMES[config.gelu],
        "config": config.to_dict(),
        "num_tokens": config.num_tokens,
        "params": param_count(config),
        "gflops_per_image": flops_per_image(config) / 1e9,
        "num_classes": config.num_classes,
    }
