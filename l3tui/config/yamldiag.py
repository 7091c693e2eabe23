"""Diagnosis of YAML that cannot be read: positions, syntax errors named by the key being
read, characters YAML refuses, files with too many values, and alias bombs found before
anything is expanded.

Pure functions over text and PyYAML nodes; `yamlpos` calls them, nothing here builds data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

MAX_EXPANDED_NODES = 250_000
"""Most values a config file may hold, written out or through aliases (keys not counted)."""

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Pos:
    line: int  # 1-based
    col: int  # 1-based


class YamlFileError(Exception):
    """The file cannot be read as a YAML mapping at all."""

    def __init__(self, message: str, pos: Pos = Pos(1, 1), key: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.key = key
        """Dotted key path of where reading stopped, when known."""


def mark_pos(mark: yaml.Mark | None) -> Pos:
    return Pos(mark.line + 1, mark.column + 1) if mark is not None else Pos(1, 1)


def dotted(path: Path_) -> str:
    """`a.b[0].c` from a path of keys and list indexes."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


# ------------------------------------------------------------------------ syntax errors

_ALIAS_HINT = ' (a value starting with * is read as a YAML alias; quote it, e.g. cron: "0 * * * *")'
_TAB_HINT = " (YAML indents with spaces only; replace the tab)"


def syntax_error(text: str, exc: yaml.MarkedYAMLError) -> YamlFileError:
    """One sentence for a PyYAML error, at the right spot, naming the key being read."""
    context = exc.context or ""
    problem = exc.problem or context or "invalid YAML"
    mark = exc.problem_mark or exc.context_mark
    hint = ""
    undefined = re.fullmatch(r"found undefined alias '(.*)'", problem)
    if undefined:
        hint = f' (a value starting with * is read as a YAML alias; quote it: "*{undefined[1]}")'
    elif "alias" in context or "alias" in problem:
        hint = _ALIAS_HINT
        mark = exc.context_mark or mark  # the `*`, not the character after it
    elif "'\\t'" in problem:
        context, problem = "", "found a tab character"
        hint = _TAB_HINT
    lead = "YAML syntax error: "
    if context and context != problem:
        lead = f"YAML syntax error {context}: "
    return YamlFileError(f"{lead}{problem}{hint}", mark_pos(mark), _path_at(text, mark))


def reader_error(text: str, exc: yaml.reader.ReaderError) -> YamlFileError:
    """A character YAML does not allow in a document (a control character, mostly)."""
    position = exc.position if isinstance(exc.position, int) else 0
    line = text.count("\n", 0, position) + 1
    col = position - (text.rfind("\n", 0, position) + 1) + 1
    code = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return YamlFileError(
        f"file contains the control character U+{code:04X}, which YAML does not allow "
        "(is it really a text file?)",
        Pos(line, col),
        _path_at(text[:position], None),
    )


@dataclass(slots=True)
class _Frame:
    """Where the event walk is inside one mapping or sequence."""

    is_map: bool
    index: int = -1  # sequences: the current item
    key: str | None = None  # mappings: the key last read
    in_value: bool = False  # mappings: the key was read, its value is not finished
    label: str | None = None  # mappings: the value of `id`, which names a list item


def _path_at(text: str, stop: yaml.Mark | None) -> str:
    """Key path (`a.b[id].c`) of the node PyYAML was reading when it stopped at `stop`.

    Only called after an error: it walks the events again up to the failing spot.
    """
    frames: list[_Frame] = []
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            mark = event.start_mark
            if stop is not None and mark is not None and mark.index >= stop.index:
                break
            _track(frames, event)
    except yaml.YAMLError:
        pass  # the error being reported: the walk has gone as far as it can
    parts: list[str] = []
    for depth, frame in enumerate(frames):
        if frame.is_map:
            if frame.in_value and frame.key is not None:
                parts.append(f".{frame.key}" if parts else frame.key)
        elif frame.index >= 0:
            inner = frames[depth + 1] if depth + 1 < len(frames) else None
            label = inner.label if inner is not None and inner.label else str(frame.index)
            parts.append(f"[{label}]")
    return "".join(parts)


def _track(frames: list[_Frame], event: yaml.Event) -> None:
    if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
        frames.pop()
        if frames and frames[-1].is_map:
            frames[-1].in_value = False
        return
    if not isinstance(
        event, yaml.ScalarEvent | yaml.AliasEvent | yaml.MappingStartEvent | yaml.SequenceStartEvent
    ):
        return
    if frames:
        parent = frames[-1]
        if not parent.is_map:
            parent.index += 1
        elif not parent.in_value:
            parent.key = str(event.value) if isinstance(event, yaml.ScalarEvent) else "?"
            parent.in_value = True
        else:
            if isinstance(event, yaml.ScalarEvent) and parent.key == "id":
                parent.label = str(event.value)
            if isinstance(event, yaml.ScalarEvent | yaml.AliasEvent):
                parent.in_value = False
    if isinstance(event, yaml.MappingStartEvent):
        frames.append(_Frame(is_map=True))
    elif isinstance(event, yaml.SequenceStartEvent):
        frames.append(_Frame(is_map=False))


# ------------------------------------------------------------------------ too many values


def too_many_values(mark: Any, path: Path_) -> YamlFileError:
    """The error for the value that passes MAX_EXPANDED_NODES, where it stands."""
    return YamlFileError(
        f"file has more than {MAX_EXPANDED_NODES:,} values, the most a config file may hold; "
        "reading stopped here",
        mark_pos(mark),
        dotted(path),
    )


def check_value_count(text: str) -> None:
    """Refuse a file with more than MAX_EXPANDED_NODES values, stopping at the first value
    over the limit. Reading a file of a few MB with PyYAML's pure-Python parser costs ~25 µs
    and several hundred bytes of nodes per event (a 4.9 MB file: 28 s, 600 MB), so this
    streams events through libyaml, when PyYAML has it, keeping nothing but a key path.
    A syntax error ends the count quietly: the real reading reports it, with its own limit.
    """
    if not getattr(yaml, "__with_libyaml__", False):
        return  # the counting composer (yamlpos) still stops at the limit, only slower
    count = 0
    frames: list[_Frame] = []
    try:
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):
            if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                _track(frames, event)
                continue
            is_value = isinstance(
                event, yaml.ScalarEvent | yaml.MappingStartEvent | yaml.SequenceStartEvent
            ) and not (frames and frames[-1].is_map and not frames[-1].in_value)
            _track(frames, event)
            if is_value:
                count += 1
                if count > MAX_EXPANDED_NODES:
                    raise too_many_values(event.start_mark, _frames_path(frames, event))
    except yaml.YAMLError:
        return


def _frames_path(frames: list[_Frame], event: yaml.Event) -> Path_:
    """Path of the value `event` starts, from the walk's frames (already past `event`)."""
    opened = isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent)
    path: list[str | int] = []
    for frame in frames[:-1] if opened else frames:
        if frame.is_map and frame.key is not None:
            path.append(frame.key)
        elif not frame.is_map and frame.index >= 0:
            path.append(frame.index)
    return tuple(path)


# ------------------------------------------------------------------------ alias bombs


def check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases would expand past MAX_EXPANDED_NODES, before
    expanding anything: sizes are counted once per distinct node, so this is cheap."""
    sizes: dict[int, int] = {}
    refs: dict[int, int] = {}

    def size(node: yaml.Node, active: set[int]) -> int:
        key = id(node)
        refs[key] = refs.get(key, 0) + 1
        if key in sizes:
            return sizes[key]
        if key in active:
            raise YamlFileError(
                "an alias refers to a node that contains it; a config cannot be recursive",
                mark_pos(node.start_mark),
            )
        total = 1
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            active.add(key)
            for child in _children(node):
                total += size(child[2], active)
            active.discard(key)
        sizes[key] = total
        return total

    total = size(root, set())
    if total <= MAX_EXPANDED_NODES:
        return
    if len(sizes) > MAX_EXPANDED_NODES:
        raise YamlFileError(
            f"file has {len(sizes):,} values, more than the {MAX_EXPANDED_NODES:,} a config "
            "file may hold"
        )
    # Walk down to the key whose value blows up. An alias's own position is not kept by
    # PyYAML (it shares the anchored node), so stop at the last key that is written once.
    node, pos, culprit = root, Pos(1, 1), total
    path: Path_ = ()
    while True:
        found = next(
            (c for c in _children(node) if sizes.get(id(c[2]), 0) > MAX_EXPANDED_NODES), None
        )
        if found is None:
            break
        part, key_node, child = found
        shared = refs[id(child)] > 1
        if shared and key_node is None:
            break
        path, culprit = (*path, part), sizes[id(child)]
        pos = mark_pos((key_node or child).start_mark)
        if shared:
            break
        node = child
    what = "expands" if path else "the document expands"
    raise YamlFileError(
        f"{what} to {culprit:,} values through aliases, over the limit of {MAX_EXPANDED_NODES:,} "
        "(a 'billion laughs' file?); refusing to expand it",
        pos,
        dotted(path),
    )


def _children(node: yaml.Node) -> list[tuple[str | int, yaml.Node | None, yaml.Node]]:
    """(key or index, key node, value node) of a mapping or sequence node."""
    if isinstance(node, yaml.MappingNode):
        return [
            (str(k.value) if isinstance(k, yaml.ScalarNode) else "?", k, v) for k, v in node.value
        ]
    if isinstance(node, yaml.SequenceNode):
        return [(i, None, child) for i, child in enumerate(node.value)]
    return []
