"""Decisions: the JSON documents another program sends to drive l3tui, as pydantic models
(published as JSON Schema by `l3tui schema decision`), and `parse_decision`, which turns
bytes from a file or a socket into one or says in one line why it cannot.

Parsing only: nothing here looks at the config, the store or the clock.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal, cast

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from l3tui.config.docstrings import describe_fields
from l3tui.config.durations import DurationMs, parse_duration_ms
from l3tui.config.fields import Identifier, PriorityRef
from l3tui.config.quantities import memory_mb

MAX_DECISION_BYTES = 1024 * 1024
"""A decision larger than this (1 MiB) is refused unread."""
KINDS = ("run_workflow", "instantiate_template", "run_task", "run_batch", "cancel", "pause",
         "resume", "analysis_update", "reserve", "cancel_reservation")  # fmt: skip
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@+-]{0,127}$")
PARAM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
"""A run_task param name: it becomes a `${name}` placeholder of the task."""


class DecisionError(ValueError):
    """A decision that cannot be accepted; `str()` is the one-line reason, `errors` every
    problem found (`key.path: message`), `decision_id` the id when one could be read."""

    def __init__(self, message: str, errors: list[str] | None = None,
                 decision_id: str | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.errors = errors or [message]
        self.decision_id = decision_id


def _decision_id(value: str) -> str:
    if not ID_RE.match(value) or ".." in value:
        raise ValueError(f"{value!r} is not a decision id: 1-128 of letters, digits and "
                         "_ . : @ + -, starting with a letter or digit, no '..' or '/'")
    return value


DecisionId = Annotated[str, AfterValidator(_decision_id)]


def _param_names(value: dict[str, Any]) -> dict[str, Any]:
    for name in value:
        if not PARAM_RE.match(name):
            raise ValueError(f"param name {name!r}: letters, digits and _, not starting with "
                             "a digit, at most 64")  # fmt: skip
    return value


TaskParams = Annotated[dict[str, Any], AfterValidator(_param_names)]
def when_at(value: str | int, received_at: float) -> float:
    """The epoch time a `When` names: an ISO 8601 instant (without an offset: local time),
    or a duration after `received_at` (`30m`, `1h30m`, or milliseconds). ValueError."""
    try:
        return received_at + float(parse_duration_ms(value)) / 1000
    except ValueError:
        pass
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return (moment if moment.tzinfo else moment.astimezone()).timestamp()
    raise ValueError(f"{value!r} is neither an ISO 8601 instant (2026-11-20T02:00+03:00) nor "
                     "a duration (30s, 10m, 2h, or milliseconds)")


def _when(value: str | int) -> str | int:
    when_at(value, 0.0)
    return value


When = Annotated[
    Annotated[str, Field(min_length=1, max_length=64)] | Annotated[int, Field(ge=0)],
    AfterValidator(_when),
]
"""An ISO 8601 instant (`2026-11-20T02:00:00+03:00`; without an offset: local time), or a
duration from when the decision was received (`30m`, or milliseconds)."""


class _Documented(BaseModel):
    """Fields described by their docstrings (the published schema carries them), and built
    on first use: a console that never receives a decision does not pay for building these
    validators at start (~35 ms)."""

    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Not `use_attribute_docstrings`: its source lookup is slow (config/docstrings.py).
        # The schema is built later (defer_build), so it has the descriptions.
        super().__pydantic_init_subclass__(**kwargs)
        describe_fields(cls)


class _Decision(_Documented):
    model_config = ConfigDict(extra="forbid", frozen=True, str_max_length=MAX_DECISION_BYTES)

    id: DecisionId
    """The idempotency key: a decision with an id already received acts no more."""
    source: str = Field(default="", max_length=200)
    """Who sent it (the decision layer, a CI job, a chat bot): shown in the audit trail."""
    reason: str = Field(default="", max_length=2000)
    """Why, for people reading the audit trail and events."""
    not_before: When | None = None
    """Act no earlier than this: an ISO 8601 instant, or a duration after receipt (`10m`)."""


class _RunDecision(_Decision):
    priority: PriorityRef | None = None
    """Priority of what it starts: a name from scheduling.priorities (`high`) or a number."""
    deadline: When | None = None
    """When what it starts should be done: an ISO 8601 instant, or a duration after receipt;
    past it, a deadline event and alert (it is not stopped)."""


class RunWorkflow(_RunDecision):
    """Start a workflow of l3-workflows.yml."""

    kind: Literal["run_workflow"]
    workflow: Identifier
    """The workflow id."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Must be empty: a workflow takes no params (use instantiate_template for templates)."""


class InstantiateTemplate(_RunDecision):
    """Start a template of l3-workflows.yml with values for its params."""

    kind: Literal["instantiate_template"]
    template: Identifier
    """The template id."""
    params: dict[str, Any] = Field(default_factory=dict)
    """Values for the template's declared params (checked as `l3tui run -p` checks them)."""


class TaskSpec(_Documented):
    """One action with its parameters, run as a task of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier | None = None
    """The task's id within a batch (default: t1, t2, ... in order)."""
    name: str | None = Field(default=None, max_length=200)
    """Display name."""
    action: str = Field(min_length=1, max_length=200)
    """An action bound in l3-actions.yml, or a built-in action."""
    params: TaskParams = Field(default_factory=dict)
    """The action's parameters (its `${name}` placeholders); values are data, never scanned
    for placeholders."""
    timeout: Annotated[DurationMs, Field(gt=0)] | None = None
    """Time limit of one attempt (ms or `10m`); default: the action's, then the global one."""
    retries: int = Field(default=0, ge=0, le=100)
    """Extra attempts after a failure."""


class RunTask(_RunDecision):
    """Run one action with parameters, outside any workflow."""

    kind: Literal["run_task"]
    action: str = Field(min_length=1, max_length=200)
    """An action bound in l3-actions.yml, or a built-in action."""
    params: TaskParams = Field(default_factory=dict)
    """The action's parameters; values are data, never scanned for placeholders."""
    name: str | None = Field(default=None, max_length=200)
    """Display name."""
    timeout: Annotated[DurationMs, Field(gt=0)] | None = None
    """Time limit of one attempt (ms or `10m`)."""
    retries: int = Field(default=0, ge=0, le=100)
    """Extra attempts after a failure."""

    def spec(self) -> TaskSpec:
        return TaskSpec(action=self.action, params=self.params, name=self.name,
                        timeout=self.timeout, retries=self.retries)  # fmt: skip


class RunBatch(_RunDecision):
    """Run several actions as one execution, at most `parallelism` at a time."""

    kind: Literal["run_batch"]
    tasks: list[TaskSpec] = Field(min_length=1, max_length=10_000)
    """The tasks (independent of each other)."""
    parallelism: int = Field(default=4, ge=1, le=10_000)
    """At most this many of them run at once (besides the global limits)."""

    @model_validator(mode="after")
    def _unique_ids(self) -> RunBatch:
        seen: set[str] = set()
        for index, task in enumerate(self.tasks):
            task_id = task.id or f"t{index + 1}"
            if task_id in seen:
                raise ValueError(f"two tasks have the id {task_id!r}")
            seen.add(task_id)
        return self

    def task_ids(self) -> list[str]:
        return [task.id or f"t{index + 1}" for index, task in enumerate(self.tasks)]


class _TargetDecision(_Decision):
    execution: str = Field(min_length=1, max_length=128)
    """The execution: its id (a unique prefix will do), or the id of the decision that
    started it."""
    task: Identifier | None = None
    """Only this task of it."""


class Cancel(_TargetDecision):
    """Cancel an execution (or one task): SIGTERM, the grace period, then SIGKILL; a decision
    that has not acted yet (waiting for `not_before`) is withdrawn instead."""

    kind: Literal["cancel"]


class Pause(_TargetDecision):
    """Pause an execution (or one task): its processes are frozen, nothing more starts."""

    kind: Literal["pause"]


class Resume(_TargetDecision):
    """Resume a paused execution (or task)."""

    kind: Literal["resume"]


class AnalysisUpdate(_Decision):
    """News from the analysis layer: workflows whose `triggers` name `on_analysis` with this
    topic (and whose `when` holds on the payload) start."""

    kind: Literal["analysis_update"]
    topic: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")
    """What it is about (`lint`, `metrics.coverage`)."""
    payload: dict[str, Any] = Field(default_factory=dict)
    """The update's data; `when` conditions look at its keys (nested ones dotted)."""


def _memory(value: str | int) -> str | int:
    if isinstance(value, str):
        memory_mb(value)  # ValueError naming the expected form
    return value


MemorySize = Annotated[
    Annotated[str, Field(min_length=1, max_length=32)] | Annotated[int, Field(ge=0)],
    AfterValidator(_memory),
]
"""`8G`, `512M`, `1.5GiB`, or a number of MB."""


class Reserve(_Decision):
    """Hold CPU, memory or pool slots back from the scheduler for a window, as `l3tui
    reserve` does: tasks that would need them wait, their reason naming the reservation,
    whose id is `r-` and the decision's id. Refused (rejected, nothing booked) when its
    window is in the past, it holds more than the scheduler has in all or than a pool's size,
    names an unknown pool, or would hold more than the capacity with the reservations it
    overlaps. `reason` is the reservation's reason."""

    kind: Literal["reserve"]
    cpu: float = Field(default=0.0, ge=0, le=1_000_000)
    """Cores to hold (`4`, `0.5`)."""
    memory: MemorySize | None = None
    """Memory to hold: `8G`, `512M`, or a number of MB."""
    pools: dict[Annotated[str, Field(min_length=1, max_length=64)],
                Annotated[int, Field(ge=1, le=1_000_000)]] = Field(default_factory=dict,
                                                                   max_length=64)
    """Pool slots to hold, by pool of scheduling.pools: `{"flutter_build": 1}`."""
    start: When | None = None
    """When it starts: an ISO 8601 instant, or a duration after receipt; default: when the
    decision acts."""
    duration: Annotated[DurationMs, Field(gt=0)] | None = None
    """How long it lasts (`2h`, `90m`, or milliseconds); give this or `until`."""
    until: When | None = None
    """When it ends: an ISO 8601 instant, or a duration after receipt."""

    @model_validator(mode="after")
    def _window_and_holdings(self) -> Reserve:
        if not math.isfinite(self.cpu):
            raise ValueError("cpu must be a number of cores")
        if (self.duration is None) == (self.until is None):
            raise ValueError("give the window's length as `duration` (2h) or its end as "
                             "`until`, one of them")  # fmt: skip
        if not (self.cpu or self.memory_mb() or self.pools):
            raise ValueError("it holds nothing: give cpu, memory or pools")
        return self

    def memory_mb(self) -> int:
        if self.memory is None:
            return 0
        return self.memory if isinstance(self.memory, int) else memory_mb(self.memory)


class CancelReservation(_Decision):
    """End a reservation now (as `l3tui reservations cancel` does): what it held is free
    again at once."""

    kind: Literal["cancel_reservation"]
    reservation: str = Field(min_length=1, max_length=140)
    """The reservation: its id (a unique prefix will do), or the id of the `reserve`
    decision that made it."""


Decision = Annotated[
    RunWorkflow | InstantiateTemplate | RunTask | RunBatch | Cancel | Pause | Resume
    | AnalysisUpdate | Reserve | CancelReservation,
    Field(discriminator="kind"),
]
AnyDecision = (RunWorkflow | InstantiateTemplate | RunTask | RunBatch | Cancel | Pause | Resume
               | AnalysisUpdate | Reserve | CancelReservation)  # fmt: skip
RUN_KINDS = frozenset({"run_workflow", "instantiate_template", "run_task", "run_batch"})


@functools.cache
def _adapter() -> TypeAdapter[Any]:
    """Built on first use, as the models are."""
    return TypeAdapter(Decision)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a decision (`l3tui schema decision`)."""
    schema = _adapter().json_schema()
    schema["title"] = "l3tui decision"
    schema["description"] = ("A decision sent to l3tui (inbox file, `l3tui submit`, or the "
                             "daemon's socket). One JSON object of at most 1 MiB.")
    return schema


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(data: bytes | str) -> Any:
    """Strict JSON: UTF-8, no repeated keys, no NaN/Infinity, bounded nesting. Raises
    DecisionError in one line."""
    if isinstance(data, bytes):
        if len(data) > MAX_DECISION_BYTES:
            raise DecisionError(f"{len(data):,} bytes, over the {MAX_DECISION_BYTES:,}-byte "
                                "limit for a decision")  # fmt: skip
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DecisionError(f"not UTF-8 (byte {exc.start})") from None
    else:
        text = data
    try:
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise DecisionError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") \
            from None
    except RecursionError:
        raise DecisionError("not accepted: JSON nested too deeply") from None
    except ValueError as exc:
        raise DecisionError(f"not accepted: {exc}") from None


def validate_decision(obj: Any) -> AnyDecision:
    """A decision model from parsed JSON, or DecisionError naming every problem."""
    if not isinstance(obj, dict):
        raise DecisionError(f"a decision is a JSON object, not {type(obj).__name__}")
    raw_id = obj.get("id")
    decision_id = raw_id if isinstance(raw_id, str) and ID_RE.match(raw_id) else None
    kind = obj.get("kind")
    if kind is None:
        raise DecisionError(f"missing `kind` (one of: {', '.join(KINDS)})",
                            decision_id=decision_id)  # fmt: skip
    if kind not in KINDS:
        raise DecisionError(f"unknown kind {str(kind)[:60]!r} (one of: {', '.join(KINDS)})",
                            decision_id=decision_id)  # fmt: skip
    try:
        model = _adapter().validate_python(obj)
    except ValidationError as exc:
        errors = [_located(e) for e in exc.errors()]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DecisionError(f"{errors[0]}{more}", errors, decision_id) from None
    except RecursionError:
        raise DecisionError("not accepted: JSON nested too deeply", decision_id=decision_id) \
            from None
    return cast(AnyDecision, model)


def parse_decision(data: bytes | str) -> AnyDecision:
    """Bytes (a file, a request) to a decision model; DecisionError in one line otherwise."""
    return validate_decision(load_json(data))


def _located(error: Any) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    if loc and loc[0] in KINDS:  # the discriminated union names the kind first
        loc = loc[1:]
    where = ".".join(loc) or "decision"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}"


def canonical(decision: BaseModel) -> str:
    """The decision as canonical JSON (sorted keys, defaults filled): what is recorded."""
    return json.dumps(decision.model_dump(mode="json"), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":"))  # fmt: skip


def digest(body: str) -> str:
    """Tells a repeat of a decision from an id reused for other content."""
    return hashlib.sha256(body.encode()).hexdigest()[:32]
