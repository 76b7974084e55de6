"""Reservations go through their workflows; this module is the API's side of them.

Every write is a workflow update or signal; reads come from the workflow query
while it runs and from the reservation row once it has closed. Temporal's
errors are translated here, at the boundary, into our own.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar, cast
from zoneinfo import ZoneInfo

import asyncpg
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    QueryRejectCondition,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.reservation import STOPPED, ReservationActivities, within
from api.auth import managed_coworkings
from api.booking_rules import (
    CoworkingRules,
    SeatInfo,
    check_booking,
    length_reads_two_ways,
    moved_end,
)
from api.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidQuery,
    NotFound,
    RuleViolation,
    Unavailable,
)
from api.resources import Resources
from api.services.coworkings import RULE_COLUMNS
from api.tokens import Principal
from proto import reservation_pb2 as pb
from workflows.local_time import local_span
from workflows.reservation import (
    CANCEL,
    CLIENT_ID,
    COWORKING_ID,
    FAILED_MAIL_PATIENCE,
    LOOK_AT_ROW,
    NOTIFICATION_STATUS,
    RESERVATION_START,
    RESERVATION_STATUS,
    RETRY_NOTIFICATION,
    REVISION,
    SEAT_ID,
    STALE_RULE,
    ReservationWorkflow,
    a_status,
    notification_name,
    status_name,
    version_moved_on,
)

if TYPE_CHECKING:
    from temporalio.workflow import UpdateMethodMultiParam

logger = logging.getLogger(__name__)

# The SDK types a handler of @workflow.update(name=...) as answering with its
# coroutine, not with what the coroutine returns.
_HOLD = cast(
    "UpdateMethodMultiParam[[ReservationWorkflow, pb.HoldRequest], pb.HoldResult]",
    ReservationWorkflow.hold,
)

# Idempotency keys become reservation ids under this namespace, scoped to the client.
_IDEMPOTENCY_NAMESPACE = uuid.UUID("8f9a2c1e-3b7d-4e5f-a6b1-2c3d4e5f6a7b")
_TERMINAL_NAMES = {"completed", "cancelled", "expired", "no_show"}
_RELEASED = {"cancelled", "expired", "no_show"}
# How long DELETE waits for the workflow to have released the seat.
_CANCEL_WAIT = timedelta(seconds=10)
MAX_PAGE = 200


def workflow_id(reservation_id: uuid.UUID) -> str:
    return f"reservation-{reservation_id}"


@dataclass(frozen=True)
class ReservationView:
    id: uuid.UUID
    client_id: uuid.UUID
    seat_id: uuid.UUID
    coworking_id: uuid.UUID | None
    starts_at: datetime
    ends_at: datetime
    status: str
    version: int
    notification_status: str | None = None
    cancel_reason: str | None = None
    # held only: when it expires unless staff confirm it
    hold_expires_at: datetime | None = None
    # held after a client's move of what staff confirmed: (seat, start, end)
    # that it goes back to unless staff confirm the move
    fallback: tuple[uuid.UUID, datetime, datetime] | None = None

    @property
    def cancelled(self) -> bool:
        # the contract's one flag: a frontend built on it must not show a
        # booking whose seat was released as still standing
        return self.status in _RELEASED

    def public(self) -> dict[str, object]:
        """The contract's Reservation, with our additions beside it."""
        return {
            "id": str(self.id),
            "client_id": str(self.client_id),
            "seat_id": str(self.seat_id),
            "starts_at": _rfc3339(self.starts_at),
            "ends_at": _rfc3339(self.ends_at),
            "cancelled": self.cancelled,
            "status": self.status,
            "coworking_id": str(self.coworking_id) if self.coworking_id else None,
            "version": self.version,
            "notification_status": self.notification_status,
            "cancel_reason": self.cancel_reason,
            "hold_expires_at": (
                _rfc3339(self.hold_expires_at) if self.hold_expires_at else None
            ),
            "fallback": self._fallback(),
        }

    def _fallback(self) -> dict[str, str] | None:
        if self.fallback is None:
            return None
        seat_id, starts_at, ends_at = self.fallback
        return {
            "seat_id": str(seat_id),
            "starts_at": _rfc3339(starts_at),
            "ends_at": _rfc3339(ends_at),
        }


def _rfc3339(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _ts(ts: object) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined]


def view_from_state(state: pb.ReservationState) -> ReservationView:
    return ReservationView(
        id=uuid.UUID(state.reservation_id),
        client_id=uuid.UUID(state.client_id),
        seat_id=uuid.UUID(state.seat_id),
        coworking_id=uuid.UUID(state.coworking_id) if state.coworking_id else None,
        starts_at=_ts(state.starts_at),
        ends_at=_ts(state.ends_at),
        status=status_name(state.status),
        version=state.version,
        notification_status=notification_name(state.notification_status),
        cancel_reason=state.cancel_reason or None,
        hold_expires_at=(
            _ts(state.hold_expires_at) if state.HasField("hold_expires_at") else None
        ),
        fallback=(
            (
                uuid.UUID(state.fallback.seat_id),
                _ts(state.fallback.starts_at),
                _ts(state.fallback.ends_at),
            )
            if state.HasField("fallback")
            else None
        ),
    )


# how far along a running reservation is, at one version
_PROGRESS = {"held": 0, "confirmed": 1, "checked_in": 2}


def view_from_row(row: asyncpg.Record) -> ReservationView:
    return ReservationView(
        id=row["id"],
        client_id=row["client_id"],
        seat_id=row["seat_id"],
        coworking_id=row["coworking_id"],
        starts_at=row["starts_at"],
        ends_at=row["ends_at"],
        status=row["status"],
        version=row["version"],
        cancel_reason=row["cancel_reason"],
        hold_expires_at=_row_expiry(row),
        fallback=_kept(row),
    )


def _kept(row: asyncpg.Record) -> tuple[uuid.UUID, datetime, datetime] | None:
    """The booking a held row keeps while staff decide on a move, if any."""
    if row["status"] != "held" or not row.get("fallback_seat_id"):
        return None
    return row["fallback_seat_id"], row["fallback_starts_at"], row["fallback_ends_at"]


def _row_expiry(row: asyncpg.Record) -> datetime | None:
    if row["status"] != "held" or not row.get("hold_expires_at"):
        return None
    return min(
        instant
        for instant in (
            row["hold_expires_at"],
            row["starts_at"],
            row.get("fallback_starts_at"),
        )
        if instant is not None
    )


# How long a request waits for a workflow's answer. A claim that meets a
# database outage keeps retrying inside the workflow; the client hears a 503
# meanwhile, not nothing.
ANSWER_WAIT_SECONDS = 20.0
T = TypeVar("T")


async def _answer_in_time(call: Awaitable[T], waiting: str | None = None) -> T:
    try:
        return await asyncio.wait_for(call, ANSWER_WAIT_SECONDS)
    except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as error:
        raise Unavailable(waiting or _STILL_WORKING) from error


_STILL_WORKING = (
    "reservation: still being worked on; ask again shortly (a booking"
    " with the same Idempotency-Key gets its answer)"
)
_WAITS_FOR_WORKER = "reservation: its workflow waits for a worker; ask again shortly"
# a change asked of a running reservation has no key: it may still be made
_CHANGE_PENDING = (
    "reservation: still being worked on, and the change may yet be made;"
    " read the reservation before asking again"
)


@asynccontextmanager
async def temporal_boundary(client: Client) -> AsyncIterator[None]:
    """Temporal being down is a 503 that changed nothing, never a 500."""
    try:
        yield
    except RPCError as error:
        if error.status in (
            RPCStatusCode.UNAVAILABLE,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.RESOURCE_EXHAUSTED,
            RPCStatusCode.CANCELLED,
        ):
            raise Unavailable(
                "the booking engine is unavailable; retry shortly"
            ) from error
        if error.status == RPCStatusCode.FAILED_PRECONDITION:
            # a worker took the workflow's task and hangs or died with it: the
            # server takes no update until another worker answers
            raise Unavailable(_WAITS_FOR_WORKER) from error
        raise
    except RuntimeError as error:
        # the lazy client's first connection fails with a bare RuntimeError; tell an
        # outage from a bug by asking the server whether it is there at all
        if await _reachable(client):
            raise
        raise Unavailable("the booking engine is unavailable; retry shortly") from error


async def _reachable(client: Client) -> bool:
    try:
        return await client.service_client.check_health(timeout=timedelta(seconds=2))
    except (RuntimeError, RPCError):
        return False


def _application_error(error: BaseException) -> ApplicationError | None:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ApplicationError):
            return cause
        cause = cause.__cause__
    return None


_MOVED_MEANWHILE = (
    "reservation: changed by another request while this one was on its way;"
    " look at it again and send the change anew"
)
_KEY_REUSED = "header.Idempotency-Key: already used for a different request"


def _raise_for_update(error: WorkflowUpdateFailedError) -> None:
    app = _application_error(error)
    kind = app.type if app else None
    message = app.message if app else "the reservation refused the change"
    if kind == "IdempotencyMismatch":
        raise Conflict(_KEY_REUSED) from error
    if kind == "InvalidState":
        raise Conflict(message) from error
    raise Conflict(message) from error


def _raise_for_outcome(
    outcome: int, conflict: pb.Conflict, rule: str, description: str
) -> None:
    if outcome == pb.HOLD_OUTCOME_CONFLICT:
        scope = "seat" if conflict.scope == "seat" else "client"
        raise Conflict(
            f"{scope}: already booked from {_rfc3339(_ts(conflict.starts_at))}"
            f" to {_rfc3339(_ts(conflict.ends_at))}"
        )
    if outcome == pb.HOLD_OUTCOME_REJECTED:
        if rule == "seat_not_found":
            raise NotFound(description)
        if rule == STALE_RULE:
            raise Conflict(description)
        raise RuleViolation(rule, description)


def request_hash(
    *, client_id: uuid.UUID, seat_id: uuid.UUID, starts_at: datetime, ends_at: datetime
) -> str:
    canonical = f"{client_id}|{seat_id}|{_rfc3339(starts_at)}|{_rfc3339(ends_at)}"
    return hashlib.sha256(canonical.encode()).hexdigest()


# The seat, its coworking with every rule, and the client, in one read: enough
# to name who books what in Temporal and to judge the rules that need no other row.
_BOOKING_SUBJECT = f"""
SELECT s.id AS seat_id, s.coworking_id AS seat_coworking_id, s.number AS seat_number,
    s.kind AS seat_kind, s.capacity AS seat_capacity,
    s.internal_only AS seat_internal_only, s.active AS seat_active,
    s.number, s.coworking_id, w.name AS coworking,
    w.id, w.timezone, w.opening_hours, w.active,
    {", ".join(f"w.{column}" for column in RULE_COLUMNS)},
    c.name || ' ' || c.surname AS client_name, c.send_notifications AS mailed,
    c.is_internal AS client_internal
FROM coworking.seats s JOIN coworking.coworkings w ON w.id = s.coworking_id
LEFT JOIN client.clients c ON c.id = $2 AND c.deleted_at IS NULL
WHERE s.id = $1 AND s.deleted_at IS NULL
"""  # noqa: S608
# Rules judged by the clock, which is the workflow's in the claim: the API's may
# differ (a test server skips time), so the claim alone tells these.
_CLAIM_CLOCK_RULES = frozenset({"in_past", "too_far_ahead"})


async def _booking_subject(
    pool: asyncpg.Pool, *, seat_id: uuid.UUID, client_id: uuid.UUID
) -> asyncpg.Record:
    row = await pool.fetchrow(_BOOKING_SUBJECT, seat_id, client_id)
    if row is None:
        raise NotFound(f"seat_id: no seat {seat_id}")
    if row["client_name"] is None:
        raise NotFound(f"client_id: no client {client_id}")
    return row


async def _hide_from_client(
    pool: asyncpg.Pool, subject: asyncpg.Record, client_id: uuid.UUID
) -> None:
    """A coworking that takes no bookings is hidden, seats and all, from a
    client who never booked there, as its reads are: no seat at all."""
    if subject["active"] or await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM reservation.reservations"
        " WHERE client_id = $1 AND coworking_id = $2)",
        client_id, subject["coworking_id"],
    ):  # fmt: skip
        return
    raise NotFound(f"seat_id: no seat {subject['seat_id']}")


# What Markdown reads as markup: the Temporal UI renders a summary as Markdown,
# and a client's name must not become a link or HTML there; '&' would start an
# entity, and the UI fills in {workflowId} and its like before it renders.
_MARKUP = re.compile(r"([\\`*_\[\]<>!~|#{}&])")
# what a Markdown renderer may turn into a link unasked: a scheme's colon, the
# dot after "www" and an address's at sign
_AUTOLINK = re.compile(r"(:|@|(?<=www)\.)", re.IGNORECASE)


def _plain(text: str) -> str:
    return _AUTOLINK.sub(r"\\\1", _MARKUP.sub(r"\\\1", text))


def _as_told(
    view: ReservationView, subject: asyncpg.Record | dict[str, object]
) -> ReservationView:
    """The view with no mail pending for a client who takes none.

    The workflow queues every mail and lets the mail activity read the
    client's choice when it sends; until then it says "pending", which a
    client without mail would never see become "sent".
    """
    if view.notification_status == "pending" and subject["mailed"] is False:
        return dataclasses.replace(view, notification_status="none")
    return view


async def _as_told_since(
    resources: Resources, view: ReservationView, mailed: object
) -> ReservationView:
    """As `_as_told`, for a booking that may have had mail before: one sent
    then, before the client turned mail off, stays "sent", as the workflow
    will say once the waiting mail is skipped."""
    told = _as_told(view, {"mailed": mailed})
    if told is view:
        return told
    earlier = await resources.pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM notifications.sent_mail"
        " WHERE reservation_id = $1)",
        view.id,
    )
    return dataclasses.replace(view, notification_status="sent") if earlier else told


def _summary(subject: asyncpg.Record, starts_at: datetime, ends_at: datetime) -> str:
    return (
        f"{_plain(subject['client_name'])} · seat {subject['number']}"
        f" at {_plain(subject['coworking'])}"
        f" · {local_span(starts_at, ends_at, subject['timezone'])}"
    )


async def require_booking_scope(
    resources: Resources, principal: Principal, seat_id: uuid.UUID
) -> None:
    """Staff book or move only into coworkings they manage; support books nothing."""
    if principal.kind != "admin":
        return
    if principal.role == "support":
        raise Forbidden("support staff cannot book or move reservations")
    scope = await managed_coworkings(resources.pool, principal)
    if scope is None:
        return
    coworking_id = await resources.pool.fetchval(
        "SELECT coworking_id FROM coworking.seats WHERE id = $1", seat_id
    )
    if coworking_id not in scope:
        raise NotFound(f"seat_id: no seat {seat_id}")


async def book(
    resources: Resources,
    *,
    client_id: uuid.UUID,
    seat_id: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
    idempotency_key: str | None,
    booked_by: uuid.UUID | None = None,
) -> ReservationView:
    """Book for `client_id`; `booked_by` names the staff member who asks for them."""
    settings = resources.settings
    if idempotency_key is not None:
        # a key is its sender's: staff keys never meet the client's own
        owner = (
            str(client_id) if booked_by is None else f"admin:{booked_by}:{client_id}"
        )
        reservation_id = uuid.uuid5(
            _IDEMPOTENCY_NAMESPACE, f"{owner}:{idempotency_key}"
        )
    else:
        reservation_id = uuid.uuid4()
    digest = request_hash(
        client_id=client_id, seat_id=seat_id, starts_at=starts_at, ends_at=ends_at
    )
    try:
        subject = await _booking_subject(
            resources.pool, seat_id=seat_id, client_id=client_id
        )
        if booked_by is None:
            await _hide_from_client(resources.pool, subject, client_id)
    except NotFound as gone:
        # the seat or the client has gone since the key was used
        if idempotency_key is None or not await _key_used(resources, reservation_id):
            raise
        kept = await resources.pool.fetchval(
            "SELECT request_hash FROM reservation.reservations WHERE id = $1",
            reservation_id,
        )
        if kept is not None and kept != digest:
            # another body under the key: the row says so without its workflow
            raise Conflict(_KEY_REUSED) from None
        return await _answer_used_key(resources, reservation_id, digest, gone)
    if idempotency_key is not None:
        told = await _told_before(resources, reservation_id, digest)
        if told is not None:
            return _as_told(told, subject)
    try:
        _judge_early(subject, starts_at, ends_at)
    except RuleViolation:
        # a key that was used answers as it did then, whatever the rules say now
        if idempotency_key is None or not await _key_used(resources, reservation_id):
            raise
    if booked_by is not None:
        # before the start, so no reservation of staff's making is ever without it
        # (none for a key its claim refused: that booking never was)
        await resources.pool.execute(
            "INSERT INTO reservation.staff_bookings (reservation_id, admin_id)"
            " SELECT $1, $2 WHERE NOT EXISTS (SELECT 1 FROM"
            " reservation.refused_bookings WHERE reservation_id = $1)"
            " ON CONFLICT DO NOTHING",
            reservation_id, booked_by,
        )  # fmt: skip
    start_input = pb.ReservationInput(
        reservation_id=str(reservation_id),
        client_id=str(client_id),
        seat_id=str(seat_id),
        request_hash=digest,
        mail_task_queue=settings.mail_task_queue,
        announced_status="confirmed" if subject["auto_confirm"] else "held",
        announced_notification="ok",
        revision=REVISION,
    )
    start_input.starts_at.FromDatetime(starts_at.astimezone(UTC))
    start_input.ends_at.FromDatetime(ends_at.astimezone(UTC))
    operation = WithStartWorkflowOperation(
        ReservationWorkflow.run,
        start_input,
        id=workflow_id(reservation_id),
        task_queue=settings.reservation_task_queue,
        # the workflow id is the idempotency record: a retry joins the first run
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(CLIENT_ID, str(client_id)),
                SearchAttributePair(COWORKING_ID, str(subject["coworking_id"])),
                SearchAttributePair(SEAT_ID, str(seat_id)),
                SearchAttributePair(RESERVATION_START, starts_at.astimezone(UTC)),
                SearchAttributePair(RESERVATION_STATUS, start_input.announced_status),
                SearchAttributePair(
                    NOTIFICATION_STATUS, start_input.announced_notification
                ),
            ]
        ),
        static_summary=f"Booked: {_summary(subject, starts_at, ends_at)}",
    )
    result: pb.HoldResult | ReservationView
    async with temporal_boundary(resources.temporal):
        try:
            result = await _answer_in_time(
                resources.temporal.execute_update_with_start_workflow(
                    _HOLD,
                    pb.HoldRequest(request_hash=digest),
                    start_workflow_operation=operation,
                )
            )
        except WorkflowUpdateFailedError as error:
            _raise_for_update(error)
            raise
        except Unavailable:
            # the wait ran out, and the start's fate is parked on the operation
            await _collect_start_error(operation)
            raise
        except (WorkflowAlreadyStartedError, RPCError) as error:
            await _collect_start_error(operation)
            if (
                isinstance(error, RPCError)
                and error.status == RPCStatusCode.FAILED_PRECONDITION
            ):
                raise Unavailable(_STILL_WORKING) from error
            # not found or aborted: it closed (stopped in Temporal) while asked
            if isinstance(error, RPCError) and error.status not in (
                RPCStatusCode.ALREADY_EXISTS,
                RPCStatusCode.NOT_FOUND,
                RPCStatusCode.ABORTED,
            ):
                raise
            result = await _join_existing(resources, reservation_id, digest)
    if isinstance(result, ReservationView):
        return result
    _raise_for_outcome(result.outcome, result.conflict, result.rule, result.description)
    return _as_told(view_from_state(result.state), subject)


def _judge_early(
    subject: asyncpg.Record,
    starts_at: datetime,
    ends_at: datetime,
    *,
    shrink: bool = False,
) -> None:
    """Refuse a booking or move that breaks a rule no other row has a say in,
    before a workflow, its history or a kept refusal is spent on it; the
    claim judges again."""

    def judge(now: datetime) -> None:
        check_booking(
            rules=CoworkingRules.from_row(subject),
            seat=SeatInfo.from_row(subject, prefix="seat_"),
            # closures, the client's other bookings and free seats are the claim's
            closures=(),
            client_is_internal=subject["client_internal"],
            starts_at=starts_at,
            ends_at=ends_at,
            now=now,
            shrink=shrink,
        )

    try:
        judge(datetime.now(UTC))
    except RuleViolation as by_the_clock:
        if by_the_clock.rule not in _CLAIM_CLOCK_RULES:
            raise
        # a clock rule is the claim's, unless the booking fails another rule
        # anyway: then the answer is the one the claim would give first
        try:
            judge(starts_at)
        except RuleViolation:
            raise by_the_clock from None


async def _key_used(resources: Resources, reservation_id: uuid.UUID) -> bool:
    """Whether a booking was asked with this key: its row, its kept refusal,
    or its workflow, which may still wait for a worker to claim."""
    if await resources.pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM reservation.reservations WHERE id = $1)"
        " OR EXISTS (SELECT 1 FROM reservation.refused_bookings"
        " WHERE reservation_id = $1)",
        reservation_id,
    ):
        return True
    handle = resources.temporal.get_workflow_handle(workflow_id(reservation_id))
    async with temporal_boundary(resources.temporal):
        try:
            await handle.describe(rpc_timeout=timedelta(seconds=5))
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
    return True


async def _answer_used_key(
    resources: Resources, reservation_id: uuid.UUID, digest: str, gone: NotFound
) -> ReservationView:
    """A used key's answer, where its seat or client can no longer be read."""
    async with temporal_boundary(resources.temporal):
        try:
            result = await _answer_in_time(
                _join_existing(resources, reservation_id, digest)
            )
        except RPCError as error:
            if error.status == RPCStatusCode.FAILED_PRECONDITION:
                # its workflow task failed (a worker stopped mid-task) and
                # waits for another: the server takes no update until one answers
                raise Unavailable(_STILL_WORKING) from error
            # its workflow is past the namespace's retention: nothing to
            # compare the request with, and the seat or client it names is gone
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            raise gone from None
    if isinstance(result, ReservationView):
        return result
    _raise_for_outcome(result.outcome, result.conflict, result.rule, result.description)
    return view_from_state(result.state)


async def _collect_start_error(operation: WithStartWorkflowOperation) -> None:
    # The SDK also parks the start's outcome on the operation; unread, asyncio
    # logs it as a never-retrieved exception, an ERROR for a normal retry or a
    # wait that ran out. Its future is not ours to cancel, so it is read
    # whenever it comes.
    waiter = asyncio.ensure_future(operation.workflow_handle())
    _START_WAITERS.add(waiter)
    waiter.add_done_callback(_read_start_outcome)
    await asyncio.wait((waiter,), timeout=0.1)


_START_WAITERS: set[asyncio.Future[Any]] = set()


def _read_start_outcome(waiter: asyncio.Future[Any]) -> None:
    _START_WAITERS.discard(waiter)
    if not waiter.cancelled():
        waiter.exception()


async def _told_before(
    resources: Resources, reservation_id: uuid.UUID, digest: str
) -> ReservationView | None:
    """A retried key whose booking holds, answered by a query, or None to ask
    the workflow.

    Each `hold` update a retry sent was written to the history, five events
    a time, so a client retrying in a loop could grow a running reservation's
    history towards Temporal's cap; a query writes nothing.
    """
    row = await _load_row(resources.pool, reservation_id)
    if row is None or row["status"] in _TERMINAL_NAMES:
        return None
    handle = resources.temporal.get_workflow_handle(workflow_id(reservation_id))
    try:
        state = await _query_state(
            handle, reject_condition=QueryRejectCondition.NOT_OPEN
        )
    except (RPCError, TimeoutError) as error:
        if (
            isinstance(error, RPCError) and error.status == RPCStatusCode.NOT_FOUND
        ) or not row["request_hash"]:
            return None
        # no worker answers for the workflow (the query times out, is
        # cancelled, or finds no poller), or Temporal cannot be asked: the row
        # its claim wrote answers, as a GET answers from it, rather than an
        # update that waits for the same worker
        if row["request_hash"] != digest:
            raise Conflict(_KEY_REUSED) from None
        return view_from_row(row)
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError, RuntimeError):
        # a workflow stopped in Temporal is answered the old way, which closes
        # its row
        return None
    if state.request_hash != digest:
        raise Conflict(_KEY_REUSED)
    return view_from_state(state)


# How long a read, or a retried key, waits for its running workflow's query.
QUERY_WAIT = timedelta(seconds=5)


async def _query_state(
    handle: WorkflowHandle[Any, Any],
    wait: timedelta | None = None,
    **options: Any,
) -> pb.ReservationState:
    """The workflow's `state` query, waited for `wait` in all: the client
    retries a query that timed out by itself, which doubled the wait while
    no worker answered."""
    wait = wait or QUERY_WAIT
    return await asyncio.wait_for(
        handle.query(ReservationWorkflow.state, rpc_timeout=wait, **options),
        wait.total_seconds(),
    )


async def _state_if_open(
    resources: Resources, reservation_id: uuid.UUID, wait: timedelta
) -> pb.ReservationState | None:
    """The running workflow's state; None when it has closed or cannot answer."""
    handle = resources.temporal.get_workflow_handle(workflow_id(reservation_id))
    try:
        return await _query_state(
            handle, wait, reject_condition=QueryRejectCondition.NOT_OPEN
        )
    except (
        RPCError, WorkflowQueryFailedError, WorkflowQueryRejectedError,
        RuntimeError, TimeoutError,
    ):  # fmt: skip
        return None


async def _join_existing(
    resources: Resources, reservation_id: uuid.UUID, digest: str
) -> pb.HoldResult | ReservationView:
    """A retried key whose workflow exists: its hold answers, or its result once
    closed."""
    handle = resources.temporal.get_workflow_handle(
        workflow_id(reservation_id), result_type=pb.ReservationState
    )
    try:
        return await handle.execute_update(_HOLD, pb.HoldRequest(request_hash=digest))
    except WorkflowUpdateFailedError as error:
        _raise_for_update(error)
        raise
    except RPCError as error:
        if error.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.ABORTED):
            raise
    try:
        final = await handle.result()
    except WorkflowFailureError:
        return await _answer_abandoned(resources, handle, reservation_id, digest)
    if final.request_hash != digest:
        raise Conflict(_KEY_REUSED)
    # a claim that held wrote the row: answered as a GET of it is, from the row
    row = await _load_row(resources.pool, reservation_id)
    if row is not None:
        return view_from_row(row)
    closed = pb.HoldResult()
    closed.CopyFrom(final.hold)
    closed.state.CopyFrom(final)
    closed.state.ClearField("hold")
    return closed


async def _answer_abandoned(
    resources: Resources,
    handle: WorkflowHandle[object, pb.ReservationState],
    reservation_id: uuid.UUID,
    digest: str,
) -> ReservationView:
    """A retried key whose workflow was stopped in Temporal: the row answers."""
    async for event in handle.fetch_history_events():
        payloads = event.workflow_execution_started_event_attributes.input.payloads
        [started] = await resources.temporal.data_converter.decode(
            payloads, [pb.ReservationInput]
        )
        if started.request_hash != digest:
            raise Conflict(_KEY_REUSED)
        break
    activities = ReservationActivities(resources.pool, resources.valkey)
    await activities.close_abandoned(reservation_id)
    row = await _load_row(resources.pool, reservation_id)
    if row is None:
        raise Conflict(
            "header.Idempotency-Key: this booking was stopped before it held the seat;"
            " book again with a new key"
        )
    return view_from_row(row)


async def _load_row(
    pool: asyncpg.Pool, reservation_id: uuid.UUID
) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM reservation.reservations WHERE id = $1", reservation_id
    )


async def load_authorized(
    resources: Resources,
    principal: Principal,
    reservation_id: uuid.UUID,
    *,
    action: str = "read",
) -> asyncpg.Record:
    """The reservation row, if the principal may do `action` to it; else 404 or 403.

    Another client's reservation is a 404, so ids cannot be probed.
    """
    row = await _load_row(resources.pool, reservation_id)
    if row is None:
        raise NotFound("reservation_id: no such reservation")
    if principal.kind == "client":
        if row["client_id"] != principal.id or action == "confirm":
            raise NotFound("reservation_id: no such reservation")
        return row
    scope = await managed_coworkings(resources.pool, principal)
    if scope is not None and row["coworking_id"] not in scope:
        raise NotFound("reservation_id: no such reservation")
    # support answers clients from anywhere: it may cancel at a client's request,
    # but moves and the front desk's confirm and check-in stay with managers
    if principal.role == "support" and action == "reschedule":
        raise Forbidden("support staff cannot reschedule reservations")
    if principal.role == "support" and action == "confirm":
        raise Forbidden("support staff cannot confirm or check in reservations")
    return row


def require_open(row: asyncpg.Record, action: str) -> None:
    if row["status"] in _TERMINAL_NAMES:
        raise Conflict(f"cannot {action} {a_status(row['status'])} reservation")


async def _update(
    resources: Resources,
    handle: object,
    update: object,
    request: object,
    result_type: type,
) -> object:
    """Run a workflow update; a refusal or a closed workflow is a 409."""
    async with temporal_boundary(resources.temporal):
        try:
            return await _answer_in_time(
                handle.execute_update(update, request, result_type=result_type),  # type: ignore[attr-defined]
                _CHANGE_PENDING,
            )
        except WorkflowUpdateFailedError as error:
            _raise_for_update(error)
            raise
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise Conflict("the reservation has already closed") from error
            raise


# A closed reservation's workflow lives on while it still owes a mail (a failed
# cancellation mail waits for ops), at most this long after the close.
_MAIL_OWED_FOR = FAILED_MAIL_PATIENCE + timedelta(days=1)


async def current_view(resources: Resources, row: asyncpg.Record) -> ReservationView:
    if row["status"] in _TERMINAL_NAMES:
        return await _closed_view(resources, row)
    handle = resources.temporal.get_workflow_handle(workflow_id(row["id"]))
    try:
        # a run ended in the Temporal UI would still answer, from its history,
        # that the booking stands
        state = await _query_state(
            handle, reject_condition=QueryRejectCondition.NOT_OPEN
        )
    except WorkflowQueryRejectedError as rejected:
        if rejected.status not in STOPPED:
            return view_from_row(row)
        # as the sweep would within the minute: its seat is let go now
        activities = ReservationActivities(resources.pool, resources.valkey)
        await activities.close_abandoned(row["id"])
        return view_from_row(await _load_row(resources.pool, row["id"]) or row)
    except (RPCError, WorkflowQueryFailedError, RuntimeError, TimeoutError) as error:
        # the row is a moment behind the workflow at worst; better than no answer
        logger.warning(
            "query of %s failed (%s); answering from the row",
            row["id"],
            type(error).__name__,
        )
        return view_from_row(row)
    view = view_from_state(state)
    if (row["version"], _PROGRESS.get(row["status"], 0)) > (
        view.version, _PROGRESS.get(view.status, 0),
    ):  # fmt: skip
        # the row leads its workflow: for a moment, while a claim's or a
        # confirm's answer is on its way, or for as long as a reset left the
        # run behind it (read before the query, it may trail it instead)
        view = dataclasses.replace(
            view_from_row(row), notification_status=view.notification_status
        )
        # a run that lags does not know it: told, it reads its row and takes
        # it over, so the row's own deadlines hold
        with contextlib.suppress(RPCError):
            await handle.signal(
                LOOK_AT_ROW,
                pb.LookAtRowRequest(),
                rpc_timeout=timedelta(seconds=5),
            )
    return await _told_mail(resources, row, view)


async def _told_mail(
    resources: Resources, row: asyncpg.Record, view: ReservationView
) -> ReservationView:
    if view.notification_status == "pending":
        # only while a mail waits: the client's choice is read when it is sent
        mailed = await resources.pool.fetchval(
            "SELECT send_notifications FROM client.clients WHERE id = $1",
            row["client_id"],
        )
        return await _as_told_since(resources, view, mailed)
    return view


async def _closed_view(resources: Resources, row: asyncpg.Record) -> ReservationView:
    """The row, and the fate of the mails its workflow still owes, if any."""
    view = view_from_row(row)
    if row["updated_at"] < datetime.now(UTC) - _MAIL_OWED_FOR:
        return view
    state = await _state_if_open(resources, row["id"], timedelta(seconds=2))
    if state is None:
        return view
    told = dataclasses.replace(
        view, notification_status=notification_name(state.notification_status)
    )
    return await _told_mail(resources, row, told)


async def get(
    resources: Resources, principal: Principal, reservation_id: uuid.UUID
) -> ReservationView:
    row = await load_authorized(resources, principal, reservation_id)
    return await current_view(resources, row)


async def cancel(
    resources: Resources,
    principal: Principal,
    reservation_id: uuid.UUID,
    *,
    reason: str,
) -> None:
    row = await load_authorized(resources, principal, reservation_id, action="cancel")
    if row["status"] == "cancelled":
        return
    if row["status"] in _TERMINAL_NAMES:
        raise Conflict(f"cannot cancel {a_status(row['status'])} reservation")
    await signal_cancel(
        resources,
        reservation_id,
        reason=reason,
        requested_by=f"{principal.kind}:{principal.id}",
    )
    # the 204 means the seat is free: wait for the workflow to have released it
    deadline = asyncio.get_running_loop().time() + _CANCEL_WAIT.total_seconds()
    while asyncio.get_running_loop().time() < deadline:
        status = await resources.pool.fetchval(
            "SELECT status FROM reservation.reservations WHERE id = $1", reservation_id
        )
        if status in _TERMINAL_NAMES:
            if status != "cancelled":
                raise Conflict(f"cannot cancel {a_status(status)} reservation")
            return
        await asyncio.sleep(0.05)
    raise Unavailable(
        "the cancellation is accepted and still in progress", retry_after=2
    )


async def signal_cancel(
    resources: Resources, reservation_id: uuid.UUID, *, reason: str, requested_by: str
) -> None:
    handle = resources.temporal.get_workflow_handle(workflow_id(reservation_id))
    async with temporal_boundary(resources.temporal):
        try:
            await handle.signal(
                CANCEL,
                pb.CancelRequest(reason=reason, requested_by=requested_by),
            )
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            # Closed. Normally it closed the reservation too; one terminated or
            # cancelled in the Temporal UI left it open, holding its seat. Not
            # found at all (another Temporal, say) proves nothing: leave it.
            with contextlib.suppress(RPCError):
                if (await handle.describe()).status in STOPPED:
                    activities = ReservationActivities(resources.pool, resources.valkey)
                    await activities.close_abandoned(reservation_id, reason)


async def reschedule(
    resources: Resources,
    principal: Principal,
    reservation_id: uuid.UUID,
    *,
    seat_id: uuid.UUID | None,
    starts_at: datetime | None,
    ends_at: datetime | None,
    expected_version: int | None = None,
) -> ReservationView:
    row = await load_authorized(
        resources, principal, reservation_id, action="reschedule"
    )
    require_open(row, "reschedule")
    if expected_version is not None and expected_version != row["version"]:
        raise Conflict(version_moved_on(row["version"], expected_version))
    if seat_id is not None:
        await require_booking_scope(resources, principal, seat_id)
    if starts_at is not None and ends_at is None:
        # a new start alone moves the booking; it keeps its length
        zone, slot_minutes = await resources.pool.fetchrow(
            "SELECT timezone, slot_minutes FROM coworking.coworkings WHERE id = $1",
            row["coworking_id"],
        )
        if length_reads_two_ways(
            ZoneInfo(zone), row["starts_at"], row["ends_at"], slot_minutes
        ):
            raise InvalidInput(
                "ends_at: required to move this booking: it ends just after the"
                " clocks went forward, so the length to keep reads two ways"
            )
        ends_at = moved_end(
            ZoneInfo(zone), row["starts_at"], row["ends_at"], starts_at, slot_minutes
        )
        if ends_at is not None and (
            ends_at - starts_at != row["ends_at"] - row["starts_at"]
            and length_reads_two_ways(ZoneInfo(zone), starts_at, ends_at, slot_minutes)
        ):
            # kept on the wall clock across the spring gap, it lost elapsed
            # time, and would be told apart from an elapsed keeping by no one
            ends_at = None
        if ends_at is None:
            raise InvalidInput(
                "ends_at: required to move this booking by its start alone:"
                " where the clocks change, the length to keep reads two ways"
            )
    now_at = (row["seat_id"], row["starts_at"], row["ends_at"])
    moved_to = (seat_id or now_at[0], starts_at or now_at[1], ends_at or now_at[2])
    if moved_to == now_at:
        # moving a booking onto itself changes nothing, and mails nobody
        view = await current_view(resources, row)
        if view.version != row["version"]:
            # another request moved it since the read: this one is not done
            raise Conflict(_MOVED_MEANWHILE)
        return view
    subject = await _booking_subject(
        resources.pool, seat_id=seat_id or row["seat_id"], client_id=row["client_id"]
    )
    if principal.kind == "client":
        await _hide_from_client(resources.pool, subject, row["client_id"])
    # a seat of another coworking is the claim's to refuse, by that rule's name
    if subject["coworking_id"] == row["coworking_id"]:
        _judge_early(
            subject,
            moved_to[1],
            moved_to[2],
            # as the claim has it: a move that only gives time back on its seat,
            # or back inside the booking it keeps while staff decide
            shrink=any(
                within(held, *moved_to)
                for held in (now_at, _kept(row)) if held is not None
            ),
        )  # fmt: skip
    request = pb.RescheduleRequest(
        seat_id=str(seat_id) if seat_id else "",
        requested_by=f"{principal.kind}:{principal.id}",
        summary=_summary(subject, moved_to[1], moved_to[2]),
        expected_version=row["version"],
    )
    if starts_at is not None:
        request.starts_at.FromDatetime(starts_at.astimezone(UTC))
    if ends_at is not None:
        request.ends_at.FromDatetime(ends_at.astimezone(UTC))
    handle = resources.temporal.get_workflow_handle(workflow_id(reservation_id))
    try:
        result = await _update(
            resources, handle, ReservationWorkflow.reschedule, request,
            pb.RescheduleResult,
        )  # fmt: skip
    except Conflict as refused:
        if refused.description.startswith("version:") and expected_version is None:
            # the version was the one read above, not the caller's: they named none
            raise Conflict(_MOVED_MEANWHILE) from refused
        raise
    assert isinstance(result, pb.RescheduleResult)
    _raise_for_outcome(result.outcome, result.conflict, result.rule, result.description)
    view = view_from_state(result.state)
    return await _as_told_since(resources, view, subject["mailed"])


async def confirm(
    resources: Resources,
    principal: Principal,
    reservation_id: uuid.UUID,
    *,
    check_in_only: bool = False,
    expected_version: int | None = None,
) -> ReservationView:
    row = await load_authorized(resources, principal, reservation_id, action="confirm")
    require_open(row, "check in" if check_in_only else "confirm")
    handle = resources.temporal.get_workflow_handle(workflow_id(reservation_id))
    if check_in_only:
        state = await _update(
            resources, handle, ReservationWorkflow.check_in,
            pb.CheckInRequest(
                admin_id=str(principal.id), expected_version=expected_version or 0
            ),
            pb.ReservationState,
        )  # fmt: skip
    else:
        state = await _update(
            resources, handle, ReservationWorkflow.confirm,
            pb.ConfirmRequest(
                admin_id=str(principal.id), expected_version=expected_version or 0
            ),
            pb.ReservationState,
        )  # fmt: skip
    assert isinstance(state, pb.ReservationState)
    view = view_from_state(state)
    if view.notification_status != "pending":
        return view
    # a GET right after would say "none" for a client who takes no mail
    mailed = await resources.pool.fetchval(
        "SELECT send_notifications FROM client.clients WHERE id = $1", row["client_id"]
    )
    return await _as_told_since(resources, view, mailed)


async def retry_notification(
    resources: Resources, principal: Principal, reservation_id: uuid.UUID
) -> None:
    await load_authorized(resources, principal, reservation_id, action="retry")
    handle = resources.temporal.get_workflow_handle(workflow_id(reservation_id))
    async with temporal_boundary(resources.temporal):
        try:
            state = await handle.query(
                ReservationWorkflow.state,
                rpc_timeout=timedelta(seconds=5),
                reject_condition=QueryRejectCondition.NOT_OPEN,
            )
        except WorkflowQueryRejectedError as error:
            raise Conflict(f"reservation: {WORKFLOW_ENDED}") from error
        if state.notification_status != pb.NOTIFICATION_STATUS_FAILED:
            # a signal now would be answered "requested" and do nothing
            name = notification_name(state.notification_status)
            raise Conflict(
                f"notification_status: {name}; only a failed notification is retried"
            )
        try:
            await handle.signal(
                RETRY_NOTIFICATION,
                pb.RetryNotificationRequest(requested_by=f"admin:{principal.id}"),
            )
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
            # its query still answers from the history: a run ended in Temporal
            raise Conflict(f"reservation: {WORKFLOW_ENDED}") from error


WORKFLOW_ENDED = "its workflow has ended, so no mail of it waits for a retry"


def _page(limit: int | None, offset: int | None) -> tuple[int, int]:
    # a huge limit is clamped, never an error: the contract allows any u-int32
    return min(limit if limit is not None else 50, MAX_PAGE), min(
        max(offset or 0, 0), 2**62
    )


async def list_for_client(
    resources: Resources,
    *,
    client_id: uuid.UUID,
    limit: int | None,
    offset: int | None,
    scope: set[uuid.UUID] | None = None,
) -> list[ReservationView]:
    size, skip = _page(limit, offset)
    rows = await resources.pool.fetch(
        "SELECT * FROM reservation.reservations WHERE client_id = $1"
        " AND ($2::uuid[] IS NULL OR coworking_id = ANY($2::uuid[]))"
        " ORDER BY starts_at DESC, id LIMIT $3 OFFSET $4",
        client_id, list(scope) if scope is not None else None, size, skip,
    )  # fmt: skip
    return [view_from_row(row) for row in rows]


async def list_filtered(
    resources: Resources,
    principal: Principal,
    *,
    coworking_id: uuid.UUID | None,
    seat_id: uuid.UUID | None,
    client_id: uuid.UUID | None,
    status: str | None,
    starts_from: datetime | None,
    starts_before: datetime | None,
    limit: int | None,
    offset: int | None,
) -> list[ReservationView]:
    scope = await managed_coworkings(resources.pool, principal)
    if scope is not None and coworking_id is not None and coworking_id not in scope:
        # as the coworking's own staff routes answer, for a real id or not:
        # an empty page would read as a day without bookings
        raise Forbidden("This coworking is outside your scope")
    if status is not None and status not in {
        "held", "confirmed", "checked_in", "completed", "cancelled", "expired",
        "no_show",
    }:  # fmt: skip
        raise InvalidQuery(f"query.status: unknown status {status!r}")
    size, skip = _page(limit, offset)
    rows = await resources.pool.fetch(
        "SELECT * FROM reservation.reservations WHERE"
        " ($1::uuid[] IS NULL OR coworking_id = ANY($1::uuid[]))"
        " AND ($2::uuid IS NULL OR coworking_id = $2)"
        " AND ($3::uuid IS NULL OR seat_id = $3)"
        " AND ($4::uuid IS NULL OR client_id = $4)"
        " AND ($5::text IS NULL OR status = $5)"
        " AND ($6::timestamptz IS NULL OR starts_at >= $6)"
        " AND ($7::timestamptz IS NULL OR starts_at < $7)"
        " ORDER BY starts_at, id LIMIT $8 OFFSET $9",
        list(scope) if scope is not None else None, coworking_id, seat_id, client_id,
        status, starts_from, starts_before, size, skip,
    )  # fmt: skip
    return [view_from_row(row) for row in rows]


async def cancel_future_reservations(
    resources: Resources, *, client_id: uuid.UUID, reason: str
) -> int:
    """Cancel, through their workflows, every reservation of a client not yet over."""
    rows = await resources.pool.fetch(
        "SELECT id FROM reservation.reservations WHERE client_id = $1"
        " AND status = ANY($2::text[]) AND ends_at > now()",
        client_id, ["held", "confirmed", "checked_in"],
    )  # fmt: skip
    for row in rows:
        await signal_cancel(
            resources, row["id"], reason=reason, requested_by="system:account-deleted"
        )
    return len(rows)
