"""The `reserve` and `cancel_reservation` decisions: what a reserve decision asks for (a
`ReservationRequest`, as `l3tui reserve` builds one), checked against the scheduler's
reservation book before the decision is recorded, and acted on through the Runtime's own
`reserve` and `cancel_reservation` (the path `l3tui reserve` takes through the daemon: the
same checks, events, store rows and audit entries).

A reserve decision's reservation has the id `r-` + the decision's id, so after a restart a
decision recorded but not marked acted is known to have booked (the store has the id) and
never books twice. Nothing here books or writes: the Runtime does.
"""

from __future__ import annotations

from l3tui.coordinator.acting import Host
from l3tui.coordinator.decisions import CancelReservation, DecisionError, Reserve, when_at
from l3tui.engine.api import OpResult, ReservationRequest
from l3tui.engine.resources.reservations import ReservationBook, ReservationError, from_request

PREFIX = "r-"
_TERMS = (("(use --from now)", "(leave out start: it starts when it acts)"),
          ("--from", "start"), ("--for", "duration"), ("--until", "until"), ("--cpu", "cpu"),
          ("--memory", "memory"), ("--pool", "pools"))
"""The book words its refusals for the command line; a decision names its own fields."""


def reservation_id(decision_id: str) -> str:
    return PREFIX + decision_id


def request_for(decision: Reserve, received_at: float, now: float) -> ReservationRequest:
    """The request as of `now` (when it acts): `start` and `until` durations count from
    receipt, as `not_before` does; no `start` is now."""
    starts_at = when_at(decision.start, received_at) if decision.start is not None else None
    begin = now if starts_at is None else starts_at
    if decision.until is not None:
        length = when_at(decision.until, received_at) - begin
    else:
        length = (decision.duration or 0) / 1000
    return ReservationRequest(cpu=decision.cpu, memory_mb=decision.memory_mb(),
                              pools=tuple(decision.pools.items()), starts_at=starts_at,
                              duration_s=length, reason=decision.reason)  # fmt: skip


def decision_terms(message: str) -> str:
    for flag, field in _TERMS:
        message = message.replace(flag, field)
    return message


def check(book: ReservationBook, decision: Reserve, received_at: float, acts_at: float) -> None:
    """DecisionError when the reservation could not be made at `acts_at` (when it acts: now,
    or its `not_before`): a window in the past or empty, more than the capacity or a pool
    has, an unknown pool, too much with the reservations it overlaps."""
    wanted = reservation_id(decision.id)
    if wanted in book.upcoming:
        raise DecisionError(f"{book.upcoming[wanted].label()} exists already",
                            decision_id=decision.id)  # fmt: skip
    request = request_for(decision, received_at, acts_at)
    try:
        book.check(from_request(request, wanted, "", acts_at), acts_at)
    except ReservationError as exc:
        raise DecisionError(decision_terms(str(exc)), decision_id=decision.id) from None


async def act(host: Host, decision: Reserve | CancelReservation, received_at: float,
              now: float, actor: str, book: ReservationBook) -> OpResult:  # fmt: skip
    """Book (or cancel) through the Runtime, audited as `actor`."""
    if isinstance(decision, Reserve):
        result = await host.reserve(request_for(decision, received_at, now), actor=actor,
                                    reservation_id=reservation_id(decision.id))  # fmt: skip
        if result.applied:
            return result
        return OpResult(False, decision_terms(result.message))
    ref = decision.reservation
    if reservation_id(ref) in book.upcoming:  # the id of the reserve decision that made it
        ref = reservation_id(ref)
    return await host.cancel_reservation(ref, actor=actor)
