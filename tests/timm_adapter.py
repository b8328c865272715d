"""A thin, test-only adapter: our models in timm's registry, so that timm's tests build them.

Issue 17 item 1 takes timm's own ``tests/test_models.py`` as the reference for what "works"
means. `register()` puts, for each family, one small model of ours (``mlpmixer_<family>_t8_32``)
and the same shape built by timm itself (``mlp_mixer_<family>_t8_32``) into timm's registry,
with the pretrained cfg each model reports, so every test of timm's file selects both and the
results can be read side by side. Both names match timm's ``'*mixer_*'`` non-standard filter,
as timm's own family does, and both are registered under timm's family module name
``mlp_mixer``, which timm's file uses to pick the models with ``forward_intermediates``.

Used as a pytest plugin (``-p timm_adapter``, see benchmarks/timm_test_models.py) and by
tests/models/test_timm_conformance.py. timm is optional: `import_timm` returns None without it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import torch

import mlpmixer
from mlpmixer.models.registry import model_config

STANDIN = Path(__file__).resolve().parents[1] / "benchmarks" / "standin"
OURS, THEIRS = "mlpmixer_", "mlp_mixer_"
# 32x32 RGB, 8x8 patches (a 4x4 grid), 4 blocks of width 64: every test runs in milliseconds
SHAPE = dict(img_size=32, patch_size=8, num_blocks=4, hidden_dim=64)
# family -> (our registered model it shrinks, our overrides, timm's MlpMixer kwargs)
FAMILIES: dict[str, tuple[str, dict[str, Any]]] = {
    "mixer": ("mixer_s16_224", dict(tokens_mlp_dim=32, channels_mlp_dim=256, gelu="none")),
    "gmlp": ("gmlp_s16_224", dict(channels_mlp_dim=384)),
    "resmlp": ("resmlp_12_224", dict(channels_mlp_dim=256)),
    "gmixer": ("gmixer_12_224", dict(tokens_mlp_dim=64, channels_mlp_dim=256)),
}
# the timm layers of each family (timm/models/mlp_mixer.py), resolved after import
TIMM_LAYERS = {
    "mixer": dict(mlp_ratio=(0.5, 4.0)),
    "gmlp": dict(mlp_ratio=6, block_layer="SpatialGatingBlock", mlp_layer="GatedMlp"),
    "resmlp": dict(mlp_ratio=4, block_layer="ResBlock", norm_layer="Affine"),
    "gmixer": dict(mlp_ratio=(1.0, 4.0), mlp_layer="GluMlp", act_layer="SiLU"),
}
# what timm's create_model passes along that is not a model argument
_TIMM_ONLY = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def import_timm() -> types.ModuleType | None:
    """timm, importable next to a CPU-only torch (the torchvision stand-in), or None."""
    if importlib.util.find_spec("timm") is None:
        return None
    if importlib.util.find_spec("torchvision") is None:
        sys.path.insert(0, str(STANDIN))
    try:
        import timm
    finally:
        if str(STANDIN) in sys.path:
            sys.path.remove(str(STANDIN))
    return timm


def small_config(family: str) -> mlpmixer.MixerConfig:
    """Our ``family`` at `SHAPE` (the token MLP of ResMLP/gMLP is S x S)."""
    base, changes = FAMILIES[family]
    config = model_config(base).replace(**SHAPE, **changes)
    if family in ("resmlp", "gmlp"):
        config = config.replace(tokens_mlp_dim=config.num_tokens)
    return config


def build_ours(family: str, pretrained: bool = False, **kwargs: Any) -> torch.nn.Module:
    """timm's entrypoint contract on top of `mlpmixer.create_model` (features_only included)."""
    if pretrained:
        raise ValueError(f"{OURS}{family}_t8_32 has no pretrained weights")
    for key in _TIMM_ONLY:
        kwargs.pop(key, None)
    base, _ = FAMILIES[family]
    config = small_config(family)
    changes = {k: getattr(config, k) for k in ("img_size", "patch_size", "num_blocks",
               "hidden_dim", "tokens_mlp_dim", "channels_mlp_dim", "gelu")}  # fmt: skip
    return mlpmixer.create_model(base, **{**changes, **kwargs})


def build_theirs(family: str, timm: types.ModuleType, pretrained: bool = False, **kwargs):
    """timm's own MlpMixer with the same shape (timm's ``_create_mixer``)."""
    from timm.models import mlp_mixer

    layers = {}
    for key, value in TIMM_LAYERS[family].items():
        if key in ("block_layer", "mlp_layer", "norm_layer"):
            value = getattr(mlp_mixer, value, None) or getattr(timm.layers, value)
        elif key == "act_layer":
            value = getattr(torch.nn, value)
        layers[key] = value
    shape = dict(img_size=SHAPE["img_size"], patch_size=SHAPE["patch_size"],
                 num_blocks=SHAPE["num_blocks"], embed_dim=SHAPE["hidden_dim"])  # fmt: skip
    name = f"{THEIRS}{family}_t8_32"
    return mlp_mixer._create_mixer(name, pretrained=pretrained, **shape, **layers, **kwargs)


def _pretrained_cfg(timm: types.ModuleType, cfg: dict[str, Any]):
    fields = {f.name for f in dataclasses.fields(timm.models.PretrainedCfg)}
    return {k: v for k, v in cfg.items() if k in fields}  # timm takes a dict per model


def register(timm: types.ModuleType) -> list[str]:
    """Register both models of each family in timm's registry; returns the names."""
    if f"{OURS}mixer_t8_32" in timm.list_models(f"{OURS}*"):
        return sorted(timm.list_models(f"{OURS}*") + timm.list_models(f"{THEIRS}*"))
    module = types.ModuleType("mlpmixer_timm_adapter.mlp_mixer")
    module.default_cfgs = {}
    sys.modules[module.__name__] = module
    names = []
    for family in FAMILIES:
        ours = build_ours(family).pretrained_cfg
        for prefix, cfg, build in (
            (OURS, ours, lambda f=family, **kw: build_ours(f, **kw)),
            (THEIRS, ours, lambda f=family, **kw: build_theirs(f, timm, **kw)),
        ):
            name = f"{prefix}{family}_t8_32"
            module.default_cfgs[name] = _pretrained_cfg(timm, cfg)

            def entrypoint(pretrained: bool = False, _build=build, **kwargs):
                return _build(pretrained=pretrained, **kwargs)

            entrypoint.__name__ = entrypoint.__qualname__ = name
            entrypoint.__module__ = module.__name__
            timm.models.register_model(entrypoint)
            names.append(name)
    return sorted(names)


def pytest_configure(config) -> None:
    """As a pytest plugin: register before timm's test file is collected (it lists models
    at import time)."""
    timm = import_timm()
    if timm is None:
        raise RuntimeError("timm is not installed: pip install --no-deps timm==1.0.31")
    register(timm)


_OUTCOMES: dict[str, dict[str, str]] = {}


def pytest_runtest_logreport(report) -> None:
    """Record each test's outcome (and a failure's last line) for the runner's JSON."""
    if report.when == "call" or report.outcome != "passed":
        entry = {"outcome": report.outcome}
        if report.failed:
            entry["message"] = str(report.longrepr).strip().splitlines()[-1][:300]
        elif report.skipped and isinstance(report.longrepr, tuple):
            entry["message"] = str(report.longrepr[2])[:300]
        _OUTCOMES.setdefault(report.nodeid.split("::")[-1], entry)


def pytest_sessionfinish(session) -> None:
    out = os.environ.get("TIMM_ADAPTER_OUTCOMES")
    if out:
        Path(out).write_text(json.dumps(_OUTCOMES, indent=1, sort_keys=True))
