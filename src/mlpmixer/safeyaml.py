"""YAML reading that is bounded: no aliases, limited nesting, limited size.

``yaml.safe_load`` never runs code, but it expands aliases: a 440-byte "billion laughs"
document (each list repeating the previous one by alias ten times) hangs it and fills the
memory, and a deeply nested document exhausts the recursion. Configs never need aliases,
so they are refused, as is nesting deeper than `MAX_DEPTH` and text longer than `MAX_CHARS`.
A key given twice in one mapping is refused too: YAML keeps the last silently, so the value
the user reads first in the file is not the one used.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import ConfigError

MAX_DEPTH = 32  # configs nest 3 levels (section.key.[list]); 32 leaves room and no recursion
MAX_CHARS = 1_000_000  # a config is a few kB


class _BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that refuses aliases, duplicate keys and nesting deeper than `MAX_DEPTH`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(
                f"YAML aliases are not allowed (found *{event.anchor} at line "
                f"{event.start_mark.line + 1}); write the value out instead"
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ConfigError(
                    f"YAML nested more than {MAX_DEPTH} levels deep (at line {mark.line + 1})"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """A mapping, refusing a key given twice (YAML would keep the last one silently)."""
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, str | int | float | bool) and key in seen:
                raise ConfigError(
                    f"duplicate key {key!r} at line {line} (first given at line {seen[key]}); "
                    "YAML would silently keep the last one: remove one of them"
                )
            if isinstance(key, str | int | float | bool):
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """The data of one YAML document; raises `ConfigError` for aliases, duplicate keys, deep
    nesting, huge text, and `yaml.YAMLError` for malformed YAML (callers name the source)."""
    if len(text) > MAX_CHARS:
        raise ConfigError(
            f"YAML text of {len(text)} characters is larger than the limit of {MAX_CHARS}"
        )
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
