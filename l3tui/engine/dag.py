"""Task graphs: cycle naming, topological order, downstream sets, and the ready set.

Pure functions and one small mutable tracker; nothing here runs tasks or knows about time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


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


def topological_order(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Tasks in an order where each comes after its dependencies (stable by input order)."""
    remaining = {node: len(set(d for d in ds if d in deps)) for node, ds in deps.items()}
    dependants = reverse_edges(deps)
    ready = [n for n, count in remaining.items() if count == 0]
    order: list[str] = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for child in dependants.get(node, ()):
            remaining[child] -= 1
            if remaining[child] == 0:
                ready.append(child)
    if len(order) != len(deps):
        raise ValueError(f"dependency cycle: {' -> '.join(find_cycle(deps) or [])}")
    return order


def reverse_edges(deps: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """task -> the tasks that depend on it."""
    out: dict[str, list[str]] = {node: [] for node in deps}
    for node, parents in deps.items():
        for parent in dict.fromkeys(parents):
            if parent in out:
                out[parent].append(node)
    return out


def downstream(deps: Mapping[str, Sequence[str]], start: Iterable[str]) -> set[str]:
    """Every task that depends, directly or not, on any of `start` (not including them)."""
    dependants = reverse_edges(deps)
    seen: set[str] = set()
    todo = list(start)
    while todo:
        for child in dependants.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


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

    def waiting_on(self, node: str) -> int:
        return self._waiting[node]
