"""Reading YAML with every problem located: no aliases, no duplicate or non-text keys, and the
line and column of any path in the document, so that policy errors name where they are written."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import yaml

from gateway.errors import Located


class StrictLoader(yaml.SafeLoader):
    """safe_load without aliases, so that no alias bomb can expand (R-IN-06)."""


def compose_strict(text: str) -> yaml.Node | None:
    for event in yaml.parse(text, Loader=StrictLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            # The stubs type start_mark as the C or the Python Mark; both carry line and column.
            raise yaml.MarkedYAMLError(problem="anchors and aliases are not allowed",
                                       problem_mark=event.start_mark)  # type: ignore[arg-type]
    return yaml.compose(text, Loader=StrictLoader)


_TEXT_TAG = "tag:yaml.org,2002:str"


def key_problems(node: yaml.Node | None) -> Iterator[tuple[yaml.Node, str]]:
    """Keys written twice, and keys that are not text (YAML reads `1:`, `yes:`, `null:` otherwise)."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag != _TEXT_TAG:
                shown = repr(key.value) if isinstance(key, yaml.ScalarNode) else "a collection"
                yield key, f"key {shown} is not text; quote it"
            elif key.value in seen:
                yield key, f"duplicate key {key.value!r}"
            else:
                seen.add(key.value)
            yield from key_problems(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from key_problems(item)


def infinite_numbers(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Where YAML's .inf or .nan stand: numbers the schema accepts but no limit can be."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from infinite_numbers(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from infinite_numbers(item, (*path, index))
    elif isinstance(value, float) and not math.isfinite(value):
        yield path


def _node_at(root: yaml.Node | None, path: tuple[Any, ...]) -> yaml.Node | None:
    """The deepest node along a JSON path (keys and indexes), for locating an error."""
    node = root
    for step in path:
        if isinstance(node, yaml.MappingNode):
            # The last of duplicate keys: the one the loaded document holds.
            nxt = next((v for k, v in reversed(node.value) if k.value == step), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            nxt = node.value[step]
        else:
            nxt = None
        if nxt is None:
            return node
        node = nxt
    return node


def _key_node(root: yaml.Node | None, path: tuple[Any, ...], key: Any) -> yaml.Node | None:
    """The key node of `key` in the mapping at `path`: where an unknown field is written."""
    parent = _node_at(root, path)
    if isinstance(parent, yaml.MappingNode):
        return next((k for k, _v in reversed(parent.value) if k.value == key), parent)
    return parent


class Problems:
    def __init__(self, filename: str, root: yaml.Node | None) -> None:
        self.filename, self.root, self.items = filename, root, list[Located]()
        self.broken: list[tuple[Any, ...]] = []  # paths the schema found wrong

    def add(self, path: tuple[Any, ...], message: str) -> None:
        self.add_at(_node_at(self.root, path), message)

    def add_key(self, path: tuple[Any, ...], key: Any, message: str) -> None:
        self.add_at(_key_node(self.root, path, key), message)

    def add_at(self, node: yaml.Node | None, message: str) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.items.append(Located(self.filename, line, col, message))
