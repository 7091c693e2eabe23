"""Safe YAML reading that remembers where every key and value stood.

PyYAML's composer keeps aliases as shared nodes, so composing is cheap; the danger of a
"billion laughs" file is in expanding them. We build Python data ourselves with a budget
on expanded nodes, so such a file fails fast with a clear message instead of eating memory.
Keys are read as plain strings (YAML 1.1 would turn a key `on:` into True).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_EXPANDED_NODES = 250_000
MERGE_TAG = "tag:yaml.org,2002:merge"

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Pos:
    line: int  # 1-based
    col: int  # 1-based


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


class YamlFileError(Exception):
    """The file cannot be read as a YAML mapping at all."""

    def __init__(self, message: str, pos: Pos = Pos(1, 1)) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


def _pos(mark: yaml.Mark | None) -> Pos:
    return Pos(mark.line + 1, mark.column + 1) if mark is not None else Pos(1, 1)


def decode(raw: bytes) -> str:
    """Bytes of a config file -> text; refuse binary, oversized and non-UTF-8 input."""
    if len(raw) > MAX_FILE_BYTES:
        raise YamlFileError(
            f"file is {len(raw) / 1e6:.1f} MB, over the {MAX_FILE_BYTES // 2**20} MB limit "
            "for config files"
        )
    if b"\x00" in raw[:8192] or b"\x00" in raw:
        raise YamlFileError("file is binary (contains NUL bytes), not YAML text")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlFileError(
            f"file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})", Pos(line, 1)
        ) from None
    return text


def load_located(text: str) -> Located:
    """Parse one YAML document into plain data with positions."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problem = exc.problem or exc.context or "invalid YAML"
            hint = ""
            if "alias" in problem and mark is not None:
                hint = ' (a value starting with * must be quoted, e.g. cron: "0 * * * *")'
            raise YamlFileError(f"YAML syntax error: {problem}{hint}", _pos(mark)) from None
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
            f"top level is {kind}; expected a mapping of keys", _pos(node.start_mark)
        )
    located = Located(data=None)
    builder = _Builder(loader, located)
    try:
        located.data = builder.build(node, ())
    except RecursionError:
        raise YamlFileError("YAML nesting is too deep (or an alias refers to itself)") from None
    return located


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
                _pos(node.start_mark),
            )
        self.located.value_pos.setdefault(path, _pos(node.start_mark))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        try:
            return self.loader.construct_object(node)
        except yaml.constructor.ConstructorError as exc:
            raise YamlFileError(f"bad value: {exc.problem}", _pos(exc.problem_mark)) from None

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
                    Problem(_pos(key_node.start_mark), path, "a key must be a plain value")
                )
                continue
            key = str(key_node.value)
            key_pos = _pos(key_node.start_mark)
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
            "'<<' merge needs a mapping or a list of mappings", _pos(node.start_mark)
        )
