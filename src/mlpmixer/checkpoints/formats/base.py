"""What a checkpoint format is: a `CheckpointFormat`, one per file in this package.

A format says how to recognise its files (``detect``), how to read them into this package's
key names plus a config (``read``), how to write them (``write``; None where it is read only),
which destination suffixes imply it, and which settings its files keep: a file that holds
tensors only (``tensors_only``) gives back its format's ``defaults`` plus the fields of the
sidecar written beside it (`checkpoints.sidecar`); every other setting the config has then
follows from the tensor shapes (`checkpoints.architecture`).

``detect`` and ``read`` see a `Candidate`: the local path, whose tensors are read once, when a
format first asks for them, so that the formats told apart by their key names share one read.
Nothing is ever unpickled: torch files are read with ``weights_only=True``
(`checkpoints.torch_file`), safetensors and ``.npz`` without pickle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from ...errors import CheckpointError
from ...layout import (
    CONFIG_JSON,
    SAFETENSORS_SUFFIX,
    SAFETENSORS_WEIGHTS,
    TORCH_SUFFIXES,
    TORCH_WEIGHTS,
)
from ...models.config import MixerConfig
from ...models.spec import family_spec
from ..architecture import infer_config, infer_family
from ..metadata_fields import stored_fields
from ..native import read_safetensors
from ..sidecar import read_sidecar
from ..timm_format import timm_hub_fields
from ..torch_file import read_torch_file


@dataclass
class Checkpoint:
    """What a file holds: its format, the weights (this package's names) and the config.

    ``model``: for a format that holds a model no float state dict describes (the int8
    folder), that model, built by its ``read``; ``state`` is then empty and ``config`` is the
    float model's it was made from. `load_model` returns it as it is.
    ``img_size_assumed``: the file does not give the image size and the shapes cannot (a
    family whose layers take any size, e.g. a bare AS-MLP state dict), so ``config.img_size``
    is the family's default, not the model's (``info`` says so).
    """

    format: str
    config: MixerConfig
    state: dict[str, torch.Tensor]
    source: str
    model: Any = None
    img_size_assumed: bool = False


def in_torch_file(path: Path) -> bool:
    """Whether ``path`` is a torch pickle, which holds tensors only (``tensors_only`` of the
    formats saved with ``torch.save``)."""
    return path.suffix in TORCH_SUFFIXES


def _never(path: Path) -> bool:
    return False


@dataclass(frozen=True)
class CheckpointFormat:
    """One checkpoint format (see the module docstring).

    ``detect(candidate)``: whether the candidate is in this format; cheap tests first (the
    path), key names second (``candidate.state``, only where ``candidate.holds_tensors``).
    ``read(candidate)``: a `Checkpoint` named ``name``. ``write(path, config, state)``: the
    file, atomically; a `ConfigError` for a model or path the format cannot hold.
    ``suffixes``: the destination suffixes that mean this format when none is named.
    ``defaults``: the config fields a tensors-only file of it reads back as.
    ``tensors_only(path)``: whether its file at ``path`` holds tensors only, so that the
    settings shapes cannot tell are kept in a sidecar (written on saving, read on loading).
    """

    name: str
    detect: Callable[[Candidate], bool]
    read: Callable[[Candidate], Checkpoint]
    write: Callable[[Path, MixerConfig, Mapping[str, torch.Tensor]], Any] | None = None
    suffixes: tuple[str, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)
    tensors_only: Callable[[Path], bool] = _never

    def lost_fields(self, config: MixerConfig, state: Mapping[str, torch.Tensor]) -> list[str]:
        """The settings of ``config`` a tensors-only file of this format does not give back by
        itself (what its sidecar keeps): class names, and each field that differs from what
        such a file reads back as (``defaults``, else `MixerConfig`'s; for a family whose
        config class names its ``untold_fields``, what its spec reads from ``state``)."""
        lost = ["class names"] if config.class_names is not None else []
        spec = family_spec(config.family)
        untold = getattr(spec.config_class, "untold_fields", None)
        if untold is not None:
            try:
                back = spec.config_from_state(state, None, dict(self.defaults))
            except CheckpointError:  # no valid config at the default size (ViP's fixed grid)
                back = spec.config_from_state(state, config.img_size, dict(self.defaults))
                lost.append("img_size")
            return lost + [
                name
                for name in untold()
                if name != "class_names" and getattr(config, name) != getattr(back, name)
            ]
        back = replace(MixerConfig(), **self.defaults)
        lost += [
            name
            for name in ("mean", "std", "interpolation", "crop_pct", "norm_eps")
            if hasattr(config, name) and getattr(config, name) != getattr(back, name)
        ]  # a zoo config has no GELU choice (and only ViP and CycleMLP a norm_eps)
        if hasattr(config, "gelu") and config.gelu != back.gelu:
            lost.append(f"gelu={config.gelu!r}")
        return lost


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


WEIGHT_FILES = (SAFETENSORS_WEIGHTS, TORCH_WEIGHTS)  # a hub folder's, in the order looked for
TENSOR_SUFFIXES = (SAFETENSORS_SUFFIX, *TORCH_SUFFIXES)


def weights_in_dir(path: Path) -> Path:
    """A hub folder's weight file (model.safetensors, else pytorch_model.bin)."""
    for name in WEIGHT_FILES:
        if (path / name).exists():
            return require_regular(path / name)
    raise CheckpointError(
        f"{path}: a directory without model.safetensors or pytorch_model.bin "
        "(expected an mlpmixer save_pretrained directory or a timm hub download)"
    )


def read_tensor_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, safetensors metadata) of a ``.safetensors`` file or a torch pickle."""
    if path.suffix == SAFETENSORS_SUFFIX:
        return read_safetensors(path)
    if path.suffix in TORCH_SUFFIXES:
        return read_torch_file(path), {}
    raise CheckpointError(
        f"{path}: unknown checkpoint type {path.suffix!r}; expected a directory, .safetensors, "
        f".npz or one of {TORCH_SUFFIXES}"
    )


class Candidate:
    """A checkpoint on this machine, as the formats' ``detect`` and ``read`` see it.

    ``path``: a local file or folder (a run directory already replaced by its model);
    ``source``: what the user named (a path, hub id or URL), which `Checkpoint.source` reports;
    ``img_size`` / ``in_chans``: what the caller knows where shapes cannot tell (a non-square
    patch grid; a stem of neither 3 nor 1 channels), else None.
    """

    def __init__(
        self, path: Path, source: str, img_size: Any = None, in_chans: int | None = None
    ) -> None:
        self.path = path
        self.source = source
        self.img_size = img_size
        self.in_chans = in_chans

    @property
    def holds_tensors(self) -> bool:
        """Whether ``path`` is a tensor file (safetensors, a torch pickle) or a folder with one:
        whether `state` has something to read."""
        if self.path.is_dir():
            return any((self.path / name).exists() for name in WEIGHT_FILES)
        return self.path.suffix in TENSOR_SUFFIXES

    @cached_property
    def hub_fields(self) -> dict[str, Any]:
        """Preprocessing, input size and class names of a folder's timm ``config.json``."""
        config = self.path / CONFIG_JSON
        return timm_hub_fields(config) if self.path.is_dir() and config.is_file() else {}

    @cached_property
    def weights(self) -> Path:
        """The tensor file: ``path``, or a folder's model.safetensors / pytorch_model.bin."""
        return weights_in_dir(self.path) if self.path.is_dir() else self.path

    @cached_property
    def contents(self) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
        """(tensors under the file's own key names, safetensors metadata), read once."""
        _ = self.hub_fields  # a folder's config.json is refused before its weights are read
        return read_tensor_file(self.weights)

    @property
    def state(self) -> dict[str, torch.Tensor]:
        """The tensors under the file's own key names (see `holds_tensors`)."""
        return self.contents[0]

    @property
    def metadata(self) -> dict[str, str]:
        return self.contents[1]

    @cached_property
    def stored_fields(self) -> dict[str, Any]:
        """Settings an mlpmixer kept in the file's safetensors metadata (digest checked); {}
        where ``path`` is no tensor file (a format's own file type)."""
        if not self.holds_tensors:
            return {}
        return stored_fields(self.metadata, self.weights, self.state)

    def kept_fields(self, fmt: CheckpointFormat) -> dict[str, Any]:
        """The config fields shapes cannot tell, for tensors read as ``fmt``: its defaults,
        then a folder's timm config.json, the fields stored in the file's metadata, and the
        sidecar's where ``fmt`` keeps tensors only in this file."""
        fields = {**fmt.defaults, **self.hub_fields, **self.stored_fields}
        if fmt.tensors_only(self.weights):
            fields.update(read_sidecar(self.weights))
        return fields

    def checkpoint(
        self, fmt: CheckpointFormat, state: dict[str, torch.Tensor], fields: Mapping[str, Any]
    ) -> Checkpoint:
        """``state`` (this package's key names) with its config inferred from the shapes and
        ``fields``; the caller's ``img_size`` wins over a stored one."""
        fields = dict(fields)
        stored_size = fields.pop("img_size", None)
        img_size = self.img_size if self.img_size is not None else stored_size
        try:
            config = infer_config(state, img_size, **fields)
        except CheckpointError as err:
            if img_size is not None:
                raise
            # shapes that fit no config at the family's default size (ViP's grid): say the fix
            family = infer_family(state).name
            raise CheckpointError(f"{err} (family {family!r}: the file does not give the image "
                                  f"size; give --img-size, img_size= in Python)") from err  # fmt: skip
        assumed = img_size is None and family_spec(config.family).any_size
        return Checkpoint(fmt.name, config, state, self.source, img_size_assumed=assumed)

    def read_as(self, fmt: CheckpointFormat, state: dict[str, torch.Tensor]) -> Checkpoint:
        """`checkpoint` of ``state`` (renamed from this file's tensors) with `kept_fields`."""
        return self.checkpoint(fmt, state, self.kept_fields(fmt))

    def unclaimed(self) -> CheckpointError:
        """Why no format claimed this checkpoint: the first problem reading meets (a folder
        without weights, an unknown suffix, a damaged file, edited stored settings), else the
        keys that no format knows."""
        tensors = self.state
        _ = self.stored_fields
        keys = ", ".join(sorted(tensors)[:6])
        return CheckpointError(
            f"{self.weights}: not a Mixer state dict (first keys: {keys or 'none'})"
        )
