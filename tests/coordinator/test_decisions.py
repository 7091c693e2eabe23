"""Decisions as other programs write them: every kind parses, the JSON Schema `l3tui schema
decision` prints describes them, and what cannot be accepted says why in one line."""

from __future__ import annotations

import json
import subprocess

import pytest

from l3tui.coordinator.decisions import (
    KINDS,
    DecisionError,
    RunBatch,
    canonical,
    digest,
    json_schema,
    parse_decision,
    when_at,
)
from tests.conftest import L3TUI

EXAMPLES = [
    {"id": "d-42", "kind": "run_workflow", "workflow": "flutter_optimization",
     "priority": "high"},
    {"id": "d-43", "kind": "instantiate_template", "template": "backup_restore",
     "params": {"target": "/tmp/backups/"}, "deadline": "2h", "source": "L2"},
    {"id": "d-44", "kind": "run_task", "action": "health_check",
     "params": {"checks": ["disk"]}, "timeout": "5m", "retries": 1},
    {"id": "d-45", "kind": "run_batch", "parallelism": 4,
     "tasks": [{"action": "say", "params": {"text": "a"}}, {"id": "b", "action": "say"}]},
    {"id": "d-46", "kind": "cancel", "execution": "d-42", "reason": "superseded"},
    {"id": "d-47", "kind": "pause", "execution": "261130-095807-7ccc", "task": "build"},
    {"id": "d-48", "kind": "resume", "execution": "261130-095807-7ccc"},
    {"id": "d-49", "kind": "analysis_update", "topic": "lint",
     "payload": {"severity": "high", "findings": 12}, "not_before": "2026-12-01T02:00:00+03:00"},
]  # fmt: skip


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["kind"] for e in EXAMPLES])
def test_every_kind_parses_as_written(example: dict[str, object]) -> None:
    decision = parse_decision(json.dumps(example).encode())
    assert decision.kind == example["kind"] and decision.id == example["id"]


def test_the_schema_names_every_kind_and_validates_the_examples() -> None:
    schema = json_schema()
    kinds = {v["properties"]["kind"]["const"] for v in schema["$defs"].values()
             if "kind" in v.get("properties", {})}  # fmt: skip
    assert kinds == set(KINDS)
    printed = subprocess.run([L3TUI, "schema", "decision"], capture_output=True, text=True,
                             check=True, timeout=60)  # fmt: skip
    assert json.loads(printed.stdout) == schema


@pytest.mark.parametrize(("raw", "says"), [
    (b'{"id": "a", "kind": "run_workflow"', "not JSON"),
    (b'[1, 2]', "a decision is a JSON object"),
    (b'{"id": "a", "kind": "explode"}', "unknown kind 'explode'"),
    (b'{"id": "a"}', "missing `kind`"),
    (b'{"id": "../../etc/x", "kind": "cancel", "execution": "e"}', "is not a decision id"),
    (b'{"id": "a/b", "kind": "cancel", "execution": "e"}', "is not a decision id"),
    (b'{"id": "a", "id": "b", "kind": "cancel", "execution": "e"}', "appears twice"),
    (b'{"id": "a", "kind": "cancel", "execution": "e", "deadline": "1h"}', "deadline: Extra"),
    (b'{"id": "a", "kind": "run_task", "action": "x", "params": {"no-dash": 1}}', "param name"),
    (b'{"id": "a", "kind": "run_task", "action": "x", "not_before": "someday"}',
     "neither an ISO 8601 instant"),
    (b'{"id": "a", "kind": "run_batch", "tasks": [{"id": "t", "action": "x"}, '
     b'{"id": "t", "action": "x"}]}', "two tasks have the id 't'"),
    (b'{"id": "a", "kind": "cancel", "execution": "e", "x": NaN}', "NaN is not JSON"),
    (b"\xff\xfe{}", "not UTF-8"),
    (b"[" * 200_000, "nested too deeply"),
])  # fmt: skip
def test_what_cannot_be_accepted_says_why_in_one_line(raw: bytes, says: str) -> None:
    with pytest.raises(DecisionError) as caught:
        parse_decision(raw)
    assert says in str(caught.value)
    assert "\n" not in str(caught.value)


def test_over_one_mib_is_refused_unread() -> None:
    big = b'{"id": "a", "kind": "analysis_update", "topic": "t", "payload": {"x": "' \
        + b"y" * (1024 * 1024) + b'"}}'
    with pytest.raises(DecisionError, match="over the 1,048,576-byte limit"):
        parse_decision(big)


def test_batch_tasks_get_ids_in_order_and_the_digest_ignores_key_order() -> None:
    batch = parse_decision(json.dumps(EXAMPLES[3]).encode())
    assert isinstance(batch, RunBatch)
    assert batch.task_ids() == ["t1", "b"]
    reordered = parse_decision(json.dumps(dict(reversed(list(EXAMPLES[3].items())))).encode())
    assert digest(canonical(batch)) == digest(canonical(reordered))
    other = parse_decision(json.dumps({**EXAMPLES[3], "parallelism": 5}).encode())
    assert digest(canonical(batch)) != digest(canonical(other))


def test_when_is_a_duration_after_receipt_or_an_instant() -> None:
    assert when_at("10m", 1000.0) == 1600.0
    assert when_at(1500, 1000.0) == 1001.5
    assert when_at("2026-12-01T02:00:00+03:00", 0.0) == 1796079600.0
