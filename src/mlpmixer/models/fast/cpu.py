"""What this CPU is, read once from ``/proc/cpuinfo``: its model name and its feature flags.

The kernel cache keys a ``-march=native`` build by the flags (a binary built for one CPU's
vector extensions must not run on another); benchmarks record the model name.
"""

from __future__ import annotations

import functools
import platform


@functools.cache
def _cpuinfo_fields() -> dict[str, str]:
    """The first value of each ``key : value`` line of /proc/cpuinfo (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep:
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    """The CPU's marketing name (``model name``), or what the platform module knows."""
    return _cpuinfo_fields().get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> str:
    """The CPU's feature flags (x86 ``flags``, Arm ``Features``), or the platform's names."""
    fields = _cpuinfo_fields()
    return (
        fields.get("flags") or fields.get("Features") or platform.processor() + platform.machine()
    )
