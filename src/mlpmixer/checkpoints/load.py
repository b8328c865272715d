"""One entry point for every checkpoint format: detect, read, rebuild, save, convert.

Formats (`checkpoints.formats`, one module each, tried in the order of
`mlpmixer.choices.CHECKPOINT_FORMATS`):

* ``native`` — this project's: safetensors + config.json (directory or single file);
* ``official`` — Google's flat ``.npz`` (google-research/vision_transformer, big_vision);
* ``timm`` — timm's state dicts of every family: ``mixer_*``, ``gmixer_*``, ``resmlp_*``,
  ``gmlp_*`` (``.pth``/``.bin``/``.safetensors``/hub dir);
* ``facebook`` — ResMLP's original deit checkpoints (read only);
* ``lucidrains`` — ``mlp-mixer-pytorch`` state dicts (read only);
* ``state_dict`` — a bare state dict with this package's key names (``torch.save(model.state_dict())``);
* ``training`` — a run's ``checkpoints/last.pt`` (read only);
* ``int8`` — `mlpmixer quantize`'s folder (read only): `load_model` returns the quantized
  model itself, which cannot be saved, converted or rebuilt with other settings.

Sources may be local paths, Hugging Face hub ids (``hf-hub:timm/mixer_b16_224.goog_in21k_ft_in1k``
or ``org/name``) or ``https://`` / ``gs://`` URLs. For the foreign formats the architecture is inferred
from the tensor shapes.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from ..choices import CHECKPOINT_FORMATS
from ..choices import WRITABLE_FORMATS as WRITABLE_FORMATS  # what `convert --to` writes
from ..download import download_hub_repo, download_url, is_hub_id, public_url
from ..errors import CheckpointError, CheckpointNotFoundError, ConfigError
from ..models.base import MlpFamilyModel, family_class
from ..models.config import MixerConfig
from ..models.flops import flops_per_image, param_count
from ..models.state_fit import apply_overrides, check_state_fits
from ..progress import PROGRESS
from . import formats
from .formats.base import Candidate, Checkpoint, CheckpointFormat, require_regular
from .formats.int8 import is_int8, refuse_int8
from .native import HUB_OPTIONS
from .run_dir import is_run_dir, run_result_dir
from .sidecar import write_sidecar

# what detect_format/read_checkpoint report, in the order they are tried
FORMATS = tuple(name for name, _ in CHECKPOINT_FORMATS)
GELU_NAMES = {"tanh": "tanh", "none": "erf"}  # config value -> what the function is

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


def detect_format(source: str | os.PathLike[str], **hub_options: Any) -> str:
    """The format of a checkpoint: one of `FORMATS`. Unknown files raise `CheckpointError`."""
    return read_checkpoint(source, **hub_options).format


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
    """`read_checkpoint` of ``source``, found at the local ``path``: the first format of the
    registry that claims it reads it."""
    if is_run_dir(path):  # a training run: the model it reports as its result
        path = run_result_dir(path)
    candidate = Candidate(path, str(source), img_size, in_chans)
    return formats.claiming(candidate).read(candidate)


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
    if checkpoint.model is not None:  # an int8 folder: the model is built, and cannot change
        if reset_head:  # what fine-tuning asks for
            raise refuse_int8("trained or fine-tuned (given a new head)", source)
        if overrides:
            raise refuse_int8(f"rebuilt with other settings ({', '.join(overrides)})", source)
        return checkpoint.model.to(map_location)
    try:
        config = apply_overrides(checkpoint.config, overrides, reset_head)
    except ConfigError as err:
        raise CheckpointError(f"{source}: {err}") from err
    model = MlpFamilyModel.from_state_dict(checkpoint.state, config, reset_head=reset_head)
    return model.to(map_location)


def as_model(model_or_source: MlpFamilyModel | str | os.PathLike[str]) -> MlpFamilyModel:
    """``model_or_source`` itself if it is a model (an int8 one too), else `load_model` of it."""
    if isinstance(model_or_source, torch.nn.Module):
        return model_or_source
    return load_model(model_or_source)


def as_float_model(
    model_or_source: MlpFamilyModel | str | os.PathLike[str], what: str
) -> MlpFamilyModel:
    """`as_model`, refusing an int8 model in one line: ``what`` says what needs float weights
    (e.g. ``"analysed"``)."""
    model = as_model(model_or_source)
    if is_int8(model):
        named = not isinstance(model_or_source, torch.nn.Module)
        raise refuse_int8(what, model_or_source if named else "model")
    return model


def _size(config: MixerConfig) -> str:
    return f"{param_count(config) / 1e6:.1f}M parameters"


def format_for_path(path: Path) -> str:
    """The format a destination path implies: .npz official, .pth/.pt/.bin timm, else native
    (each format's ``suffixes``)."""
    return formats.implied_by(path)


def save_model(
    model: MlpFamilyModel, path: str | os.PathLike[str], format: str | None = None
) -> Path:
    """Save ``model`` as ``format`` (default: implied by the path, see `format_for_path`).

    A format whose file holds tensors only gets a sidecar beside it with the settings that
    shapes cannot tell, and a warning names those its own defaults would lose.
    """
    if is_int8(model):  # an int8 model has no float state dict
        raise refuse_int8("saved as a float checkpoint", path)
    path = Path(path)
    fmt = formats.writer(format or format_for_path(path))
    assert fmt.write is not None  # writer() returns writing formats only
    fmt.write(path, model.config, model.state_dict())
    if fmt.tensors_only(path):
        _write_sidecar_and_warn(path, model, fmt)
    return path


def _write_sidecar_and_warn(path: Path, model: MlpFamilyModel, fmt: CheckpointFormat) -> None:
    sidecar = write_sidecar(path, model.config)
    lost = fmt.lost_fields(model.config, model.state_dict())
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
    if is_int8(model):  # an int8 folder: no float weights to write
        raise refuse_int8("converted to another format", source)
    log.info("writing %s", destination, extra=PROGRESS)
    return save_model(model, destination, format)


def check_loadable(checkpoint: Checkpoint) -> None:
    """`CheckpointError` (what `load_model` would say) if the weights do not fit the model
    their config describes: missing or extra keys, shapes, non-float dtypes. Nothing is
    allocated: the model is built on the meta device. An int8 folder loaded when it was read."""
    if checkpoint.model is not None:
        return
    with torch.device("meta"):
        model = family_class(checkpoint.config.family)(checkpoint.config)
    check_state_fits(checkpoint.state, model.state_dict())


def describe(checkpoint: Checkpoint) -> dict[str, Any]:
    """A JSON-ready summary: format, inferred architecture, parameters, classes."""
    config = checkpoint.config
    mixer = isinstance(config, MixerConfig)  # the zoo's configs have no GELU choice, no tokens
    quantized = checkpoint.model is not None and hasattr(checkpoint.model, "method")
    int8 = (
        {
            "int8_method": checkpoint.model.method,
            "int8_layers": len(checkpoint.model.quantized),
            "kept_in_float": list(checkpoint.model.kept_in_float),
        }
        if quantized
        else {}
    )
    return {
        "source": checkpoint.source,
        "format": checkpoint.format,
        **({"gelu": GELU_NAMES[config.gelu]} if mixer else {}),
        "config": config.to_dict(),
        **({"num_tokens": config.num_tokens} if mixer else {}),
        "params": param_count(config),
        "gflops_per_image": flops_per_image(config) / 1e9,
        "num_classes": config.num_classes,
        "img_size_assumed": checkpoint.img_size_assumed,
        **int8,
    }
