"""Weights in and out of a family model: from a state dict, the project's format, the hub.

A mixin of `MlpFamilyModel`. The file format itself is `mlpmixer.checkpoints`' business, which
builds on this package: it registers its readers and writers here (`storage.register`) when
imported, so nothing in models/ imports checkpoints/ (no import circle).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from huggingface_hub import PyTorchModelHubMixin

from ..errors import CheckpointError
from .config import MixerConfig
from .family import family_class
from .storage import storage

if TYPE_CHECKING:  # annotations only: base.py builds on this module
    from .base import MlpFamilyModel


class ModelIO(
    PyTorchModelHubMixin,
    library_name="mlpmixer",
    tags=["image-classification", "mlp-mixer"],
    paper_url="https://arxiv.org/abs/2105.01601",
):
    """``from_state_dict``, ``save`` / ``save_pretrained`` / ``from_pretrained``, ``push_to_hub``."""

    @classmethod
    def from_state_dict(
        cls,
        state: dict[str, torch.Tensor],
        config: MixerConfig,
        reset_head: bool = False,
    ) -> MlpFamilyModel:
        """Build a model for ``config`` and load ``state`` (this package's key names) into it.

        Called on the base class, the family comes from ``config``. Missing or unexpected
        keys and shape mismatches raise `CheckpointError` naming them. ``reset_head=True``
        ignores the stored head and keeps a fresh zero-initialised one.
        """
        model_cls = cls if cls.family else family_class(config.family)
        # Built on the meta device: random init of weights that are overwritten at once was
        # ~90% of the load time (B/16: seconds). The checkpoint's tensors are then assigned
        # as the parameters (copied to float32, so the model never aliases the caller's
        # tensors, e.g. the source model's in `resize`).
        with torch.device("meta"):
            model = model_cls(config)
        if reset_head:
            state = {k: v for k, v in state.items() if not k.startswith("head.")}
        expected = model.state_dict()
        if reset_head:
            expected = {k: v for k, v in expected.items() if not k.startswith("head.")}
        storage().check_state_fits(state, expected)
        owned = {
            k: v.detach().to(dtype=torch.float32, device="cpu", copy=True).contiguous()
            for k, v in state.items()
        }
        model.load_state_dict(owned, strict=not reset_head, assign=True)
        if reset_head:
            model.head = model._new_head(config.num_classes)  # real zeros, not meta
        return model

    # The project's own format: safetensors + config.json (the Hugging Face hub layout).
    def _save_pretrained(self, save_directory: Any) -> None:
        storage().write_native(save_directory, self.config, self.state_dict())

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: Any,
        *,
        repo_id: str | None = None,
        push_to_hub: bool = False,
        model_card_kwargs: dict[str, Any] | None = None,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """Write the hub layout (weights, config.json, README.md) as one atomic folder.

        README.md is a model card (checkpoints/model_card.py); one already there is kept.

        The mixin's version deletes ``config.json`` before writing the weights, so a kill in
        between left a folder that loaded as a bare state dict; here the folder is built
        aside and renamed into place. ``push_to_hub=True`` then uploads it.
        """
        path = Path(save_directory)
        # the name the card tells users to load: the hub id when pushing (the mixin's
        # push_to_hub saves into a temporary folder and passes model_card_kwargs on)
        card_kwargs = model_card_kwargs or {}
        location = card_kwargs.get("location") or repo_id or str(save_directory)
        extra = {}
        if not (path / "README.md").exists():  # like the mixin: a user's card is kept
            extra["README.md"] = storage().native_readme(self.config, location)
        storage().write_native(path, self.config, self.state_dict(), extra_files=extra)
        if not push_to_hub:
            return None
        repo_id = repo_id or path.name
        card_kwargs = {**card_kwargs, "location": repo_id}
        return self.push_to_hub(
            repo_id=repo_id, model_card_kwargs=card_kwargs, **push_to_hub_kwargs
        )

    def save(self, path: Any) -> None:
        """Save in the project's format: a directory (hub layout) or one ``.safetensors`` file."""
        storage().write_native(path, self.config, self.state_dict())

    @classmethod
    def from_pretrained(  # type: ignore[override]
        cls, name_or_path: Any, reset_head: bool = False, **kwargs: Any
    ) -> MlpFamilyModel:
        """Load the project's format from a local directory/file or a hub repository id.

        The stored config's family picks the class. Hub options (``revision``,
        ``cache_dir``, ``token``, ``local_files_only``, ``force_download``) go to
        huggingface_hub; other keywords override the stored config (``num_classes``
        together with ``reset_head=True`` for fine-tuning).
        """
        hub_options = {k: kwargs.pop(k) for k in storage().hub_options if k in kwargs}
        config_dict, state = storage().read_native(name_or_path, **hub_options)
        config = MixerConfig.from_dict(config_dict)
        model_cls = family_class(config.family)
        if not issubclass(model_cls, cls):
            raise CheckpointError(
                f"{name_or_path} holds a {config.family!r} model, not a {cls.__name__}"
            )
        config = storage().apply_overrides(config, kwargs, reset_head)
        return model_cls.from_state_dict(state, config, reset_head=reset_head)
