"""Reading decisions for `l3tui submit` and `l3tui plan`: a file (or stdin) holding one
decision or a JSON array of them, each checked as the inbox checks it. Nothing here sends or
acts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from l3tui.coordinator.decisions import (
    MAX_DECISION_BYTES,
    AnyDecision,
    DecisionError,
    load_json,
    validate_decision,
)
from l3tui.errors import L3Error, UsageError

MAX_INPUT_BYTES = 64 * MAX_DECISION_BYTES
"""An array of decisions may be larger than one decision, not without bound."""


def read_input(source: str) -> tuple[str, list[Any]]:
    """(what to call the input, the decisions in it as parsed JSON). L3Error in one line
    when it cannot be read or is not JSON."""
    name = "stdin" if source == "-" else source
    try:
        if source == "-":
            data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        else:
            path = Path(source)
            if not path.is_file():
                raise UsageError(f"{source}: no such file")
            with path.open("rb") as fh:
                data = fh.read(MAX_INPUT_BYTES + 1)
    except OSError as exc:
        raise L3Error(f"{name}: cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_INPUT_BYTES:
        raise L3Error(f"{name}: over {MAX_INPUT_BYTES:,} bytes")
    try:
        if data.lstrip()[:1] == b"[":
            parsed = json.loads(data)
            if not isinstance(parsed, list):
                raise DecisionError("not a JSON array")
            return name, parsed
        return name, [load_json(data)]
    except DecisionError as exc:
        raise L3Error(f"{name}: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise L3Error(f"{name}: not JSON: {exc}") from None


def check(items: list[Any]) -> list[AnyDecision | DecisionError]:
    """Each item as a decision, or why it is not one (a decision over 1 MiB included)."""
    out: list[AnyDecision | DecisionError] = []
    for item in items:
        size = len(json.dumps(item, ensure_ascii=False).encode())
        if size > MAX_DECISION_BYTES:
            out.append(DecisionError(f"{size:,} bytes, over the {MAX_DECISION_BYTES:,}-byte "
                                     "limit for a decision"))  # fmt: skip
            continue
        try:
            out.append(validate_decision(item))
        except DecisionError as exc:
            out.append(exc)
    return out


def label(name: str, index: int, count: int) -> str:
    return name if count == 1 else f"{name}[{index}]"
