"""The errors `mlpmixer` raises on purpose, each with the exit code the CLI maps it to.

Exit codes (documented in the README): 0 success, 1 a run failed, 2 bad usage or input,
130 interrupted (Ctrl-C), 141 the reader of the output went away (``... | head -1``), 143
training ended by SIGTERM (a scheduler, or torchrun after another process died).
Every class also derives from the built-in exception a Python caller would expect
(``ValueError`` for bad values, ``FileNotFoundError`` for missing files), so code written
against the standard exceptions keeps working.
"""

from __future__ import annotations

import errno

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head -1`
EXIT_TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process ended by `kill`


class MixerError(Exception):
    """Base class of every error that mlpmixer raises deliberately."""

    exit_code = EXIT_RUN_FAILED


class ConfigError(MixerError, ValueError):
    """A model, training or data configuration value is invalid (names the key and value)."""

    exit_code = EXIT_BAD_INPUT


class InputShapeError(MixerError, ValueError):
    """A tensor given to a model has the wrong rank, channel count or resolution."""

    exit_code = EXIT_BAD_INPUT


class CheckpointError(MixerError, ValueError):
    """A checkpoint file is unreadable, of an unknown format, corrupt, or does not fit the model."""

    exit_code = EXIT_BAD_INPUT


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path or hub repository does not exist."""


class DownloadError(MixerError, OSError):
    """Weights or data could not be downloaded (offline, or the server refused)."""

    exit_code = EXIT_RUN_FAILED


class DataError(MixerError, ValueError):
    """A data set or image is missing, empty or unreadable."""

    exit_code = EXIT_BAD_INPUT


class RunError(MixerError, RuntimeError):
    """A run started but could not finish (e.g. the loss became NaN)."""

    exit_code = EXIT_RUN_FAILED


class DiskFullError(MixerError, OSError):
    """A write failed because the disk (or quota) is full; the previous file is untouched.

    Also an ``OSError`` with ``errno.ENOSPC``, so callers that handle a full disk keep working.
    """

    exit_code = EXIT_RUN_FAILED

    def __init__(self, message: str, filename: str | None = None) -> None:
        super().__init__(errno.ENOSPC, message, filename)

    def __str__(self) -> str:
        return str(self.strerror)


class Terminated(KeyboardInterrupt):
    """A training run got SIGTERM; ``str()`` is the one line that says what is kept.

    A `KeyboardInterrupt`, not a `MixerError`: it unwinds as Ctrl-C does, past
    ``except Exception`` and through the cleanup of atomic writes (no half-written file stays).
    """

    exit_code = EXIT_TERMINATED
