"""Field types shared by every config model: ids, timezones, cron expressions, durations,
percentages, priorities, placeholders, and `Model`, the strict base class (unknown keys are
errors; fields carry the docstrings `l3tui validate --explain` prints, as descriptions)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
)

from l3tui.config.docstrings import describe_fields
from l3tui.config.durations import DurationMs

IDENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
PLACEHOLDER_RE = re.compile(r"\$\{((?:secret:)?[A-Za-z_][A-Za-z0-9_.]*)(?::-([^}]*))?\}")
"""`${name}` or `${name:-default}`; dotted names (`l3.state_dir`, `env.HOME`) are context,
`${secret:NAME}` a secret resolved when a task's process is built."""


def _identifier(value: str) -> str:
    if not IDENT_RE.match(value):
        raise ValueError(f"{value!r} is not a valid id (letters, digits, '_', '.', '-'; no spaces)")
    return value


Identifier = Annotated[str, AfterValidator(_identifier)]


def _timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        from zoneinfo import available_timezones

        from l3tui.config.suggest import closest

        hint = closest(value, available_timezones())
        suggestion = f"did you mean {hint!r}?" if hint else "use an IANA name like 'Asia/Riyadh'"
        raise ValueError(f"unknown timezone {value!r} ({suggestion})") from None
    return value


Timezone = Annotated[str, AfterValidator(_timezone)]


CRON_FIELDS = (
    ("minute", "0-59"), ("hour", "0-23"), ("day", "1-31"), ("month", "1-12 or jan-dec"),
    ("weekday", "0-7 or sun-sat"),
)  # fmt: skip


def _cron(value: str) -> str:
    # imported lazily: ~0.1 s, and only schedules need it
    from croniter import CroniterBadDateError, croniter

    from l3tui.config.cronexpr import read_cron

    cron = read_cron(value)  # the @ shortcuts; five fields
    fields = cron.fields.split()
    if not croniter.is_valid(cron.fields):
        for index, (name, allowed) in enumerate(CRON_FIELDS):
            probe = ["*"] * 5
            probe[index] = fields[index]
            if not croniter.is_valid(" ".join(probe)):
                raise ValueError(
                    f"invalid cron expression {value!r}: {name} field {fields[index]!r} "
                    f"is not valid ({allowed})"
                )
        raise ValueError(f"invalid cron expression {value!r}")
    try:
        croniter(cron.fields, datetime(2000, 1, 1), day_or=cron.day_or).get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"cron {value!r} never fires (no such date)") from None
    return value


CronExpr = Annotated[str, AfterValidator(_cron)]

PositiveMs = Annotated[DurationMs, Field(gt=0)]
NonNegativeMs = Annotated[DurationMs, Field(ge=0)]
Percent = Annotated[float, Field(gt=0, le=100)]
PriorityRef = str | int
"""A priority by name from `scheduling.priorities` (`high`) or a number (8)."""


class Model(BaseModel):
    """Base of every config model: unknown keys are errors, fields carry docstrings."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,
        validate_default=False,
    )

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Not `use_attribute_docstrings`: its source lookup cost 65-90 ms of every start
        # (docstrings.py). Set once the class is complete: nothing reads the config models'
        # JSON Schema, `--explain` reads the fields.
        super().__pydantic_init_subclass__(**kwargs)
        describe_fields(cls)
