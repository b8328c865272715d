"""`slug`: a data set or model name as one safe path component (run directories, the
``eval-<data set>-<split>`` folders of the CLI): one rule, written once."""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    """The last path component of ``text`` with every run of other characters than letters,
    digits, ``.``, ``_`` and ``-`` replaced by one ``-`` (``"data"`` if nothing is left)."""
    return _UNSAFE.sub("-", text.strip("/").split("/")[-1]).strip("-") or "data"
