"""Dependency graphs as validation sees them: naming a cycle so a person can break it."""

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
