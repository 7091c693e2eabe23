"""Task graphs: cycle naming, topological order, downstream sets, and the ready set.

Pure functions and one small mutable tracker; nothing here runs tasks or knows about time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as `[a, b, c, a]` (a depends on b ...), or None.

    Unknown dependencies are ignored here (they are reported separately).
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(deps, white)
    for root in deps:
        if colour[root] != white:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        trail: list[str] = [root]
        colour[root] = grey
        while stack:
            node, index = stack[-1]
            children = [d for d in deps[node] if d in deps]
            if index < len(children):
                stack[-1] = (node, index + 1)
                child = children[index]
                if colour[child] == grey:
                    return [*trail[trail.index(child) :], child]
                if colour[child] == white:
                    colour[child] = grey
                    stack.append((child, 0))
                    trail.append(child)
            else:
                colour[node] = black
                stack.pop()
                trail.pop()
    return None


def reverse_edges(deps: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """task -> the tasks that depend on it."""
    out: dict[str, list[str]] = {node: [] for node in deps}
    for node, parents in deps.items():
        for parent in dict.fromkeys(parents):
            if parent in out:
                out[parent].append(node)
    return out


class ReadyTracker:
    """Counts unfinished dependencies so each task becomes ready exactly once."""

    __slots__ = ("_dependants", "_waiting")

    def __init__(self, deps: Mapping[str, Sequence[str]]) -> None:
        self._dependants = reverse_edges(deps)
        self._waiting = {node: len(set(ds)) for node, ds in deps.items()}

    def initial(self) -> list[str]:
        return [node for node, count in self._waiting.items() if count == 0]

    def settle(self, node: str) -> list[str]:
        """Mark `node` as finished (any outcome); return dependants now free to be judged."""
        freed = []
        for child in self._dependants.get(node, ()):
            self._waiting[child] -= 1
            if self._waiting[child] == 0:
                freed.append(child)
        return freed
