"""Helpers for the coordinator's tests: a config with workflows, a template, an on_analysis
trigger and actions that run real processes; dropping decision files into an inbox as
producers must (a temp name, then a rename); reading the outbox and the store."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

WORKFLOWS = """
workflows:
  quick:
    name: "سريع"
    tasks:
      - {id: one, action: say, parameters: {text: one}}
      - {id: two, action: say, parameters: {text: two}, dependencies: [one]}
  failing:
    name: failing
    tasks:
      - {id: ok, action: say, parameters: {text: fine}}
      - {id: bad, action: fail, dependencies: [ok]}
  sleeper:
    name: sleeper
    tasks:
      - {id: nap, action: nap, parameters: {seconds: "1041.27"}}
  measured:
    name: measured
    tasks:
      - {id: m, action: metric}
  lint_fix:
    name: lint fix
    triggers:
      - on_analysis: {topic: "lint*", when: [{param_equals: {severity: high}}]}
    tasks:
      - {id: fix, action: say, parameters: {text: fixing}}
templates:
  greet:
    name: "greet ${who}"
    params:
      who: {type: string, required: true}
    triggers:
      - on_analysis: {topic: people, when: [{param_equals: {report.kind: visit}}]}
    tasks:
      - {id: hello, action: say, parameters: {text: "hello ${who}"}}
"""
ACTIONS = """
actions:
  say: {command: [echo, "${text}"]}
  nap: {command: [sleep, "${seconds}"]}
  fail: {command: [sh, -c, "echo first; echo the last words; exit 3"]}
  metric: {command: [sh, -c, "echo L3METRIC coverage=87.5"]}
  tree: {command: [sh, -c, "sleep ${seconds} & sleep ${seconds}; wait"]}
"""
SCHEDULING = """
scheduling:
  resource_limits: {max_concurrent_tasks: 20, max_cpu_usage: 100, max_memory_usage: 100}
  execution: {grace_period: 1s, default_timeout: 600s}
"""


def drop(inbox: Path, name: str, decision: Any) -> Path:
    """A producer's write: a temporary name, then a rename into the inbox."""
    inbox.mkdir(parents=True, exist_ok=True)
    data = decision if isinstance(decision, bytes) else json.dumps(decision).encode()
    temp = inbox / f".{name}.{uuid.uuid4().hex}.tmp"
    temp.write_bytes(data)
    final = inbox / name
    os.rename(temp, final)
    return final


def results(state: Path) -> list[dict[str, Any]]:
    path = state / "outbox" / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def query(state: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{state / 'l3tui.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


async def until(predicate: Callable[[], Any], timeout: float = 30.0,
                interval: float = 0.05) -> Any:  # fmt: skip
    """Poll with a deadline; the first truthy value."""
    async with asyncio.timeout(timeout):
        while True:
            value = predicate()
            if value:
                return value
            await asyncio.sleep(interval)


def poll(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(interval)


def executions_of(state: Path, decision_id: str) -> list[str]:
    return [r[0] for r in query(state, "SELECT id FROM executions WHERE trigger = ?",
                                (f"decision:{decision_id}",))]
