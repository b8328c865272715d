"""Checking a device name before any work: a bad or absent device is bad input (exit 2)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from .choices import PRECISIONS
from .errors import ConfigError

KNOWN = "cpu, cuda, cuda:N or mps"


def check_device(name: str | torch.device) -> torch.device:
    """``name`` as a `torch.device` that exists here; `ConfigError` naming it otherwise.

    Without this, ``cuda`` on a CPU-only torch, ``banana`` or ``cuda:abc`` surfaced as a
    RuntimeError/AssertionError from deep inside torch ("this looks like a bug", exit 1).
    """
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise ConfigError(f"unknown device {str(name)!r}; use {KNOWN}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(
                f"device {str(name)!r}: no CUDA device is available (this torch "
                f"{'is built without CUDA' if torch.version.cuda is None else 'sees no GPU'}); "
                "use --device cpu"
            )
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {str(name)!r}: there are only {count} CUDA device(s)")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {str(name)!r}: MPS is not available here; use --device cpu")
        return device
    raise ConfigError(f"unsupported device {str(name)!r}; use {KNOWN}")


def auto_device(name: str) -> str:
    """``auto``: ``cuda`` when a CUDA device is available, else ``cpu``; other names as given."""
    if name != "auto":
        return name
    return "cuda" if torch.cuda.is_available() else "cpu"


@contextlib.contextmanager
def precision_context(device: str | torch.device, precision: str) -> Iterator[None]:
    """Run inference at ``precision``: fp32 as is, bf16/fp16 under autocast on ``device``
    (weights stay fp32, matrix products run in the lower precision)."""
    if precision == "fp32":
        yield
        return
    if precision not in PRECISIONS[1:]:
        names = f"{', '.join(PRECISIONS[:-1])} or {PRECISIONS[-1]}"
        raise ConfigError(f"precision must be {names}, got {precision!r}")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    from .precision import warn_if_emulated

    warn_if_emulated(torch.device(device).type, precision)  # one line where the CPU lacks it
    with torch.autocast(torch.device(device).type, dtype=dtype):
        yield


@contextlib.contextmanager
def cpu_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` for the block only (None: leave torch's setting).

    One thread is what tiny models want on a busy machine: with two, every parallel op waits
    for a thread the OS has preempted (25x slower steps measured on 2 cores, one of them busy).
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
