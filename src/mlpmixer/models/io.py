"""Weights in and out of a family model: from a state dict, the project's format, the hub.

A mixin of `MlpFamilyModel`. ``from_state_dict`` is pure (models/state_fit.py) and works with
`mlpmixer.checkpoints` never imported. The file format is `mlpmixer.checkpoints`' business,
which builds on this package: the methods that read or write files (``save``,
``save_pretrained``, ``from_pretrained``) import it in their bodies, at the call — importing
models/ never imports checkpoints/ (tests/models/test_layering.py holds both to that).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from huggingface_hub import PyTorchModelHubMixin

from ..errors import CheckpointError
from .family import family_class
from .spec import config_from_dict
from .state_fit import apply_overrides, model_from_state

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
        config: Any,
        reset_head: bool = False,
    ) -> MlpFamilyModel:
        """Build a model for ``config`` and load ``state`` (this package's key names) into it.

        Called on the base class, the family comes from ``config``. Missing or unexpected
        keys and shape mismatches raise `CheckpointError` naming them. ``reset_head=True``
        ignores the stored head and keeps a fresh zero-initialised one.
        """
        model_class = cls if cls.family else None  # the base class: config.family decides
        return model_from_state(state, config, reset_head, model_class)  # type: ignore[return-value]

    # The project's own format: safetensors + config.json (the Hugging Face hub layout).
    def _save_pretrained(self, save_directory: Any) -> None:
        from ..checkpoints import native  # file I/O: up in checkpoints/, imported at the call

        native.write_native(save_directory, self.config, self.state_dict())

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
        from ..checkpoints import native, run_model  # file I/O, imported at the call

        path = Path(save_directory)
        # the name the card tells users to load: the hub id when pushing (the mixin's
        # push_to_hub saves into a temporary folder and passes model_card_kwargs on)
        card_kwargs = model_card_kwargs or {}
        location = card_kwargs.get("location") or repo_id or str(save_directory)
        extra = {}
        if not (path / "README.md").exists():  # like the mixin: a user's card is kept
            extra["README.md"] = run_model.native_readme(self.config, location)
        native.write_native(path, self.config, self.state_dict(), extra_files=extra)
        if not push_to_hub:
            return None
        repo_id = repo_id or path.name
        card_kwargs = {**card_kwargs, "location": repo_id}
        return self.push_to_hub(
            repo_id=repo_id, model_card_kwargs=card_kwargs, **push_to_hub_kwargs
        )

    def save(self, path: Any) -> None:
        """Save in the project's format: a directory (hub layout) or one ``.safetensors`` file."""
        from ..checkpoints import native  # file I/O, imported at the call

        native.write_native(path, self.config, self.state_dict())

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
        from ..checkpoints import native  # file I/O (and downloads), imported at the call

        hub_options = {k: kwargs.pop(k) for k in native.HUB_OPTIONS if k in kwargs}
        config_dict, state = native.read_native(name_or_path, **hub_options)
        config = config_from_dict(config_dict)
        model_cls = family_class(config.family)
        if not issubclass(model_cls, cls):
            raise CheckpointError(
                f"{name_or_path} holds a {config.family!r} model, not a {cls.__name__}"
            )
        config = apply_overrides(config, kwargs, reset_head)
        return model_cls.from_state_dict(state, config, reset_head=reset_head)
