"""The optional torchao dependency (``pip install 'mlpmixer[int8]'``)."""

from __future__ import annotations

import importlib
import logging
import warnings
from types import ModuleType

from ..errors import ConfigError

INSTALL_HINT = "pip install 'mlpmixer[int8]'"


def torchao_module(name: str = "torchao") -> ModuleType:
    """Import ``name`` from torchao, or raise a one-line `ConfigError` saying what to install.

    torchao logs a line for each CUDA-only kernel library it cannot load on a CPU machine and
    warns about a deprecated pytree call; both are noise here, so they are silenced.
    """
    for noisy in ("torchao", "torch.utils._pytree"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except ImportError as err:
        raise ConfigError(f"int8 quantization needs torchao: {INSTALL_HINT} ({err})") from err
