"""Safe YAML reading that remembers where every key and value stood.

PyYAML's composer keeps aliases as shared nodes, so composing is cheap; the danger of a
"billion laughs" file is in expanding them. Expansion is counted on the node graph before
any data is built (`yamldiag.check_expansion`), and we build Python data ourselves with a
budget as well, so such a file fails fast with a clear message instead of eating memory.
Values written out are counted before that, as they are read (`check_value_count`, and the
composer here), so a large file stops at the limit instead of being read whole first.
Keys are read as plain strings (YAML 1.1 would turn a key `on:` into True).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from l3tui.config.yamldiag import (
    MAX_EXPANDED_NODES,
    Path_,
    Pos,
    YamlFileError,
    check_expansion,
    check_value_count,
    dotted,
    mark_pos,
    reader_error,
    syntax_error,
    too_many_values,
)

__all__ = ["MAX_FILE_BYTES", "Located", "Path_", "Pos", "YamlFileError", "decode", "load_located"]

MAX_FILE_BYTES = 5 * 1024 * 1024
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(slots=True)
class Problem:
    """A defect found while reading, before any schema check."""

    pos: Pos
    path: Path_
    message: str


@dataclass(slots=True)
class Located:
    """YAML data with the position of each key and each value, by path."""

    data: Any
    key_pos: dict[Path_, Pos] = field(default_factory=dict)
    value_pos: dict[Path_, Pos] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def position(self, path: Path_, *, prefer_key: bool = True) -> Pos:
        """Best position for `path`: its key, else its value, else its nearest ancestor's."""
        for end in range(len(path), -1, -1):
            sub = path[:end]
            first, second = (
                (self.key_pos, self.value_pos) if prefer_key else (self.value_pos, self.key_pos)
            )
            if sub in first:
                return first[sub]
            if sub in second:
                return second[sub]
        return Pos(1, 1)


def decode(raw: bytes, size: int | None = None) -> str:
    """Bytes of a config file -> text; refuse binary, oversized and non-UTF-8 input.

    `size` is the file's real size when only its first MAX_FILE_BYTES + 1 bytes were read.
    """
    if len(raw) > MAX_FILE_BYTES or (size or 0) > MAX_FILE_BYTES:
        limit = f"the {MAX_FILE_BYTES // 2**20} MB limit for config files"
        if size is not None and size < len(raw):  # devices and pipes report no size
            raise YamlFileError(f"file is over {limit}")
        raise YamlFileError(f"file is {max(size or 0, len(raw)) / 2**20:.1f} MB, over {limit}")
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise YamlFileError(
            "file is binary (contains NUL bytes), not YAML text", _byte_pos(raw, nul)
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise YamlFileError(
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); save it as UTF-8",
            _byte_pos(raw, exc.start),
        ) from None
    return text


def _byte_pos(raw: bytes, offset: int) -> Pos:
    """Line and column (in characters, as editors count them) of a byte offset."""
    line_start = raw.rfind(b"\n", 0, offset) + 1
    before = raw[line_start:offset].decode("utf-8", errors="replace")
    return Pos(raw.count(b"\n", 0, offset) + 1, len(before) + 1)


def load_located(text: str) -> Located:
    """Parse one YAML document into plain data with positions."""
    try:
        loader = _CountingLoader(text)  # checks every character of a str up front
    except yaml.reader.ReaderError as exc:
        raise reader_error(text, exc) from None
    try:
        check_value_count(text)
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            raise syntax_error(text, exc) from None
        except yaml.YAMLError as exc:
            raise YamlFileError(f"YAML error: {exc}") from None
        except RecursionError:
            raise YamlFileError("YAML nesting is too deep") from None
    finally:
        loader.dispose()
    if node is None:
        raise YamlFileError("file is empty; expected a mapping")
    if not isinstance(node, yaml.MappingNode):
        kind = "a list" if isinstance(node, yaml.SequenceNode) else "a single value"
        raise YamlFileError(
            f"top level is {kind}; expected a mapping of keys", mark_pos(node.start_mark)
        )
    try:
        check_expansion(node)
    except RecursionError:
        raise YamlFileError("YAML nesting is too deep") from None
    located = Located(data=None)
    builder = _Builder(loader, located)
    try:
        located.data = builder.build(node, ())
    except RecursionError:
        raise YamlFileError("YAML nesting is too deep (or an alias refers to itself)") from None
    return located


class _CountingLoader(yaml.SafeLoader):
    """PyYAML's safe loader, counting values as it composes them and stopping at the limit
    (keys and aliases are not counted: an alias adds no node)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.values = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        is_key = isinstance(parent, yaml.MappingNode) and index is None
        if not is_key and not self.check_event(yaml.AliasEvent):
            self.values += 1
            if self.values > MAX_EXPANDED_NODES:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise too_many_values(event.start_mark, self._where(parent, index))
        return super().compose_node(parent, index)

    @staticmethod
    def _where(parent: yaml.Node | None, index: Any) -> Path_:
        """The value's own key or list position (the composer keeps no path above it)."""
        if isinstance(index, yaml.ScalarNode):
            return (str(index.value),)
        if isinstance(parent, yaml.SequenceNode):
            return (len(parent.value),)
        return ()


class _Builder:
    def __init__(self, loader: yaml.SafeLoader, located: Located) -> None:
        self.loader = loader
        self.located = located
        self.expanded = 0

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.expanded += 1
        if self.expanded > MAX_EXPANDED_NODES:
            raise YamlFileError(
                f"aliases expand to more than {MAX_EXPANDED_NODES:,} nodes; refusing to "
                "expand further (a 'billion laughs' file?)",
                mark_pos(node.start_mark),
            )
        self.located.value_pos.setdefault(path, mark_pos(node.start_mark))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        try:
            return self.loader.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            raise YamlFileError(
                f"bad value: {exc.problem}", mark_pos(exc.problem_mark), dotted(path)
            ) from None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_seen: dict[str, Pos] = {}
        merged: list[yaml.MappingNode] = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merged.extend(self._merge_sources(value_node))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.located.problems.append(
                    Problem(mark_pos(key_node.start_mark), path, "a key must be a plain value")
                )
                continue
            key = str(key_node.value)
            key_pos = mark_pos(key_node.start_mark)
            if key in first_seen:
                self.located.problems.append(
                    Problem(
                        key_pos,
                        (*path, key),
                        f"duplicate key {key!r} (first at line {first_seen[key].line})",
                    )
                )
            first_seen[key] = key_pos
            self.located.key_pos[(*path, key)] = key_pos
            result[key] = self.build(value_node, (*path, key))
        for source in merged:  # explicit keys win over merged ones
            for key, value in self._mapping(source, path).items():
                result.setdefault(key, value)
        return result

    def _merge_sources(self, node: yaml.Node) -> list[yaml.MappingNode]:
        if isinstance(node, yaml.MappingNode):
            return [node]
        if isinstance(node, yaml.SequenceNode) and all(
            isinstance(n, yaml.MappingNode) for n in node.value
        ):
            return list(node.value)
        raise YamlFileError(
            "'<<' merge needs a mapping or a list of mappings", mark_pos(node.start_mark)
        )
