"""Reservation activities: claim, release and record, each idempotent.

Temporal runs an activity at least once, so every one of these checks what is
already in the database before it changes anything, and does its change in
one transaction.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import valkey.asyncio as valkey
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus

from api.booking_rules import Closure, CoworkingRules, SeatInfo, check_booking
from api.cache import invalidate_availability
from api.errors import RuleViolation
from api.services.coworkings import CLAIM_LOCK, RULE_COLUMNS
from proto import reservation_pb2 as pb
from workers import metrics
from workflows.reservation import STALE_RULE

logger = logging.getLogger(__name__)

# The claim grain: every slot step is a multiple of it, and every zone offset in use
# is a multiple of 15 minutes, so local slot grids line up with it in UTC.
GRAIN = timedelta(minutes=5)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_ACTIVE = ("held", "confirmed", "checked_in")
# what a workflow moves; its own check refuses the rest
_MOVABLE = ("held", "confirmed")
# longer than the namespace keeps a closed workflow (30 days in deploy/),
# so a refused booking can be reset for as long as it can be found
REFUSALS_KEPT = timedelta(days=90)
ABANDONED_REASON = "its workflow was stopped in Temporal before it closed"
# how a workflow ends without running its own close
STOPPED = frozenset({
    WorkflowExecutionStatus.TERMINATED,
    WorkflowExecutionStatus.CANCELED,
    WorkflowExecutionStatus.TIMED_OUT,
    WorkflowExecutionStatus.FAILED,
})  # fmt: skip
_STATUS = {
    pb.RESERVATION_STATUS_HELD: "held",
    pb.RESERVATION_STATUS_CONFIRMED: "confirmed",
    pb.RESERVATION_STATUS_CHECKED_IN: "checked_in",
    pb.RESERVATION_STATUS_COMPLETED: "completed",
    pb.RESERVATION_STATUS_CANCELLED: "cancelled",
    pb.RESERVATION_STATUS_EXPIRED: "expired",
    pb.RESERVATION_STATUS_NO_SHOW: "no_show",
}
_STATUS_ENUM = {name: value for value, name in _STATUS.items()}
_COUNTERS = {
    "confirmed": metrics.RESERVATIONS_CONFIRMED,
    "cancelled": metrics.RESERVATIONS_CANCELLED,
    "expired": metrics.RESERVATIONS_EXPIRED,
    "no_show": metrics.RESERVATIONS_NO_SHOW,
}


# A client's claims take turns, so each one's count of active reservations includes
# the one before it; their claim rows only keep apart two that overlap in time. The
# order every claim and move locks in: CLAIM_LOCK, this, the seats' keys, then the
# reservation row.
# NO KEY UPDATE is the weakest lock that conflicts with itself.
_CLIENT_LOCK = "SELECT 1 FROM client.clients WHERE id = $1 FOR NO KEY UPDATE"
# A seat's claims take turns too. A move deletes its old grains before it
# inserts the new ones; a booking on the same seat inserting over both could
# wait on the move while the move waits on it, and PostgreSQL would break the
# deadlock by failing one after a second. Keys are taken in order, after the
# client's row, so two moves between the same seats wait rather than deadlock.
_OLD_SLOT = (
    "SELECT seat_id, starts_at, ends_at, fallback_seat_id, fallback_starts_at,"
    " fallback_ends_at FROM reservation.reservations WHERE id = $1"
)


def seat_lock_key(seat_id: uuid.UUID) -> int:
    """A signed 64-bit advisory lock id for a seat's claims."""
    digest = hashlib.sha256(b"seat-claims:" + seat_id.bytes).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


# Everything a claim reads, in one round trip after the locks: the reservation as
# it stands (locked, so two attempts at one claim take turns), the seat, its
# coworking's rules, the closures that cut the interval, the client, and how many
# reservations they hold in this coworking, whose limit it is.
# The coworking comes from the reservation when the seat has gone since it was held.
_CLAIM_CONTEXT = f"""
WITH existing AS (
    SELECT status, version, coworking_id, seat_id, starts_at, ends_at, rules,
        hold_expires_at, fallback_seat_id, fallback_starts_at, fallback_ends_at
    FROM reservation.reservations
    WHERE id = $1 FOR UPDATE
)
SELECT {", ".join(f"w.{column}" for column in RULE_COLUMNS)},
    w.id, w.timezone, w.opening_hours, w.active,
    s.id AS seat_id, s.coworking_id AS seat_coworking_id, s.number AS seat_number,
    s.kind AS seat_kind,
    s.capacity AS seat_capacity, s.internal_only AS seat_internal_only,
    s.active AS seat_active,
    ARRAY(
        SELECT (c.seat_id, c.starts_at, c.ends_at, c.reason) FROM coworking.closures c
        WHERE c.coworking_id = w.id AND c.starts_at < $5 AND c.ends_at > $4
          AND (c.seat_id IS NULL OR c.seat_id = s.id)
        ORDER BY c.starts_at
    ) AS closures,
    (SELECT is_internal FROM client.clients WHERE id = $2 AND deleted_at IS NULL)
        AS client_internal,
    (SELECT count(*) FROM reservation.reservations
     WHERE client_id = $2 AND coworking_id = w.id AND status = ANY($7::text[])
       AND ends_at > $6 AND id <> $1)
        AS active_count,
    e.status AS existing_status, e.version AS existing_version,
    e.coworking_id AS existing_coworking_id, e.seat_id AS existing_seat_id,
    e.starts_at AS existing_starts_at, e.ends_at AS existing_ends_at,
    e.rules AS existing_rules, e.hold_expires_at AS existing_hold_expires_at,
    e.fallback_seat_id, e.fallback_starts_at, e.fallback_ends_at,
    (SELECT result FROM reservation.refused_bookings WHERE reservation_id = $1)
        AS refused
FROM (SELECT 1) AS one
LEFT JOIN existing e ON true
LEFT JOIN coworking.seats s ON s.id = $3 AND s.deleted_at IS NULL
LEFT JOIN coworking.coworkings w ON w.id = coalesce(s.coworking_id, e.coworking_id)
"""  # noqa: S608
# The deadlines the row's last claim set, which its run keeps too.
_OVERDUE = """
SELECT id, ends_at FROM reservation.reservations
WHERE status IN ('held', 'confirmed', 'checked_in') AND (
    ends_at < $1
    OR (status = 'held' AND least(hold_expires_at, starts_at, fallback_starts_at) < $1)
    OR (status = 'confirmed' AND no_show_at < $1)
) AND ($3::timestamptz IS NULL OR (ends_at, id) > ($3, $4::uuid))
ORDER BY ends_at, id
LIMIT $2
"""
# One claim row per grain for the seat and for the client, under their UNIQUE keys,
# in one statement; the counts say whether every grain was free.
_CLAIMS = """
seat AS (
    INSERT INTO reservation.seat_claims (seat_id, slot_start, reservation_id)
    SELECT $1, slot, $3 FROM unnest($2::timestamptz[]) AS slot
    ON CONFLICT DO NOTHING RETURNING 1
), client AS (
    INSERT INTO reservation.client_claims (client_id, slot_start, reservation_id)
    SELECT $4, slot, $3 FROM unnest($2::timestamptz[]) AS slot
    ON CONFLICT DO NOTHING RETURNING 1
)
SELECT (SELECT count(*) FROM seat) AS seat, (SELECT count(*) FROM client) AS client
"""
_CLAIM = "WITH" + _CLAIMS
# A new reservation: its row and its claims together.
_BOOK = (
    """WITH booked AS (
    INSERT INTO reservation.reservations
        (id, client_id, seat_id, coworking_id, starts_at, ends_at, status, version,
         rules, hold_expires_at, no_show_at, request_hash)
    VALUES ($3, $4, $1, $5, $6, $7, $8, $9, $10, $11, $12, $13)
),"""  # noqa: S608 - two constants joined, no input
    + _CLAIMS
)


def grains(starts_at: datetime, ends_at: datetime) -> list[datetime]:
    """Every claim grain the interval touches, earliest first."""
    first = _EPOCH + ((starts_at - _EPOCH) // GRAIN) * GRAIN
    count = -((first - ends_at) // GRAIN)
    return [first + GRAIN * index for index in range(count)]


def _dt(ts: object) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined]


class _Refused(Exception):
    """Rolls the claim transaction back; carries the answer for the workflow."""

    def __init__(self, result: pb.ClaimResult, *, kept: bool = False):
        self.result = result
        # already in refused_bookings
        self.kept = kept


def _conflict(scope: str, starts_at: datetime, ends_at: datetime) -> pb.ClaimResult:
    result = pb.ClaimResult(outcome=pb.HOLD_OUTCOME_CONFLICT)
    result.conflict.scope = scope
    result.conflict.starts_at.FromDatetime(starts_at)
    result.conflict.ends_at.FromDatetime(ends_at)
    result.description = (
        f"{'seat' if scope == 'seat' else 'you'} already booked from "
        f"{starts_at.isoformat()} to {ends_at.isoformat()}"
    )
    return result


def _behind(record: str, context: asyncpg.Record) -> _Refused:
    """A move asked by a run that a reset left behind its reservation's row;
    the refusal carries the row, for the run to take over."""
    refusal = _rejected(
        STALE_RULE,
        f"{record}, ahead of its workflow (a reset); look at the reservation again",
    )
    refusal.seat_id = str(context["existing_seat_id"])
    refusal.starts_at.FromDatetime(context["existing_starts_at"])
    refusal.ends_at.FromDatetime(context["existing_ends_at"])
    refusal.version = context["existing_version"]
    refusal.status = _STATUS_ENUM[context["existing_status"]]
    if context["existing_rules"] is not None:
        refusal.rules.ParseFromString(context["existing_rules"])
    _set_hold_end(refusal, context["existing_hold_expires_at"])
    _set_fallback(refusal, _fallback(context))
    return _Refused(refusal)


def _set_hold_end(
    message: pb.ClaimResult | pb.ReservationRow, expires_at: datetime | None
) -> None:
    if message.status == pb.RESERVATION_STATUS_HELD and expires_at is not None:
        message.hold_expires_at.FromDatetime(expires_at)


def _rejected(rule: str, description: str) -> pb.ClaimResult:
    return pb.ClaimResult(
        outcome=pb.HOLD_OUTCOME_REJECTED, rule=rule, description=description
    )


class ReservationActivities:
    def __init__(self, pool: asyncpg.Pool, cache: valkey.Valkey):
        self.pool = pool
        self.cache = cache

    @activity.defn(name="claim_seat")
    async def claim_seat(self, request: pb.ClaimInput) -> pb.ClaimResult:
        reservation_id = uuid.UUID(request.reservation_id)
        touched: set[uuid.UUID] = set()
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                result = await self._claim(conn, request, reservation_id, touched)
        except _Refused as refused:
            if refused.result.outcome == pb.HOLD_OUTCOME_CONFLICT:
                metrics.BOOKING_CONFLICTS.inc()
            if not request.reschedule and not refused.kept:
                # before the answer reaches the workflow, so a run begun again
                # from its first task can only be refused again
                # and staff's mark of a booking that never was
                await self.pool.execute(
                    "WITH kept AS (INSERT INTO reservation.refused_bookings"
                    " (reservation_id, result) VALUES ($1, $2) ON CONFLICT DO NOTHING)"
                    " DELETE FROM reservation.staff_bookings WHERE reservation_id = $1",
                    reservation_id, refused.result.SerializeToString(),
                )  # fmt: skip
            return refused.result
        # after the commit and before the workflow answers, so no reader sees stale data
        for coworking_id in touched:
            await invalidate_availability(self.cache, coworking_id)
        return result

    async def _claim(
        self,
        conn: asyncpg.Connection,
        request: pb.ClaimInput,
        reservation_id: uuid.UUID,
        touched: set[uuid.UUID],
    ) -> pb.ClaimResult:
        client_id = uuid.UUID(request.client_id)
        seat_id = uuid.UUID(request.seat_id)
        starts_at, ends_at, now = (
            _dt(request.starts_at),
            _dt(request.ends_at),
            _dt(request.now),
        )

        # each in a statement before the read below, so a closure or a reservation
        # committed while we waited is in it
        await conn.execute(CLAIM_LOCK, seat_id)
        await conn.execute(_CLIENT_LOCK, client_id)
        seats = {seat_id}
        old = None
        if request.reschedule:
            # only a move of this reservation changes it, and moves take turns
            # under the workflow's lock and the client's row lock
            old = await conn.fetchrow(_OLD_SLOT, reservation_id)
            if old is not None:
                seats |= {old["seat_id"], old["fallback_seat_id"]} - {None}
        # a move that only gives time back, on the seat it holds or inside the
        # booking it keeps while staff decide on a move
        shrink = old is not None and any(
            within(held, seat_id, starts_at, ends_at)
            for held in ((old["seat_id"], old["starts_at"], old["ends_at"]),
                         _fallback(old))
            if held is not None
        )  # fmt: skip
        for key in sorted(seat_lock_key(seat) for seat in seats):
            await conn.execute("SELECT pg_advisory_xact_lock($1)", key)
        context = await conn.fetchrow(
            _CLAIM_CONTEXT, reservation_id, client_id, seat_id, starts_at, ends_at,
            now, list(_ACTIVE),
        )  # fmt: skip
        assert context is not None
        existing_version = context["existing_version"]
        if context["refused"] is not None and existing_version is None:
            raise _Refused(pb.ClaimResult.FromString(context["refused"]), kept=True)
        if existing_version is not None and existing_version >= request.version:
            if request.reschedule and (
                context["existing_seat_id"], context["existing_starts_at"],
                context["existing_ends_at"],
            ) != (seat_id, starts_at, ends_at):  # fmt: skip
                # not a retry: a run that lost a move (reset past it) asks to
                # move again, and must not be told it holds what it does not
                raise _behind(
                    f"version: the reservation's record is at version"
                    f" {existing_version}",
                    context,
                )
            # a retry of a claim that already committed
            touched.add(context["existing_coworking_id"])
            held = self._held(
                CoworkingRules.from_row(context), context["existing_status"]
            )
            if context["existing_rules"] is not None:
                # the terms the booking was claimed on, not the coworking's today
                held.rules.ParseFromString(context["existing_rules"])
            held.seat_id = str(context["existing_seat_id"])
            held.starts_at.FromDatetime(context["existing_starts_at"])
            held.ends_at.FromDatetime(context["existing_ends_at"])
            held.version = existing_version
            _set_hold_end(held, context["existing_hold_expires_at"])
            _set_fallback(held, _fallback(context))
            return held
        if existing_version is not None and context["existing_status"] not in _MOVABLE:
            # only a run behind its row moves a closed or checked-in reservation:
            # the claims would hold a seat for a booking that no longer stands,
            # or move one whose client is already at the desk
            raise _behind(
                f"status: the reservation's record says {context['existing_status']}",
                context,
            )
        if context["seat_number"] is None:
            raise _Refused(_rejected("seat_not_found", f"seat_id: no seat {seat_id}"))
        if context["client_internal"] is None:
            raise _Refused(_rejected("client_not_found", "client: the account is gone"))
        if existing_version is not None and (
            context["seat_coworking_id"] != context["existing_coworking_id"]
        ):
            # another coworking has its own rules, staff and confirmation
            raise _Refused(
                _rejected(
                    "other_coworking",
                    f"seat_id: seat {context['seat_number']} is in another coworking;"
                    " a booking moves only between seats of its own coworking",
                )
            )
        rules = CoworkingRules.from_row(context)
        try:
            check_booking(
                rules=rules,
                seat=SeatInfo.from_row(context, prefix="seat_"),
                closures=[Closure(*closure) for closure in context["closures"]],
                client_is_internal=context["client_internal"],
                starts_at=starts_at,
                ends_at=ends_at,
                now=now,
                shrink=shrink,
            )
        except RuleViolation as violation:
            raise _Refused(_rejected(violation.rule, violation.description)) from None

        active = context["active_count"]
        # a move keeps the count as it is, so a limit lowered since the booking
        # does not pin the reservations a client already has
        if existing_version is None and active >= rules.max_active_per_client:
            raise _Refused(
                _rejected(
                    "active_limit",
                    f"client: already holds {active} active reservations, the most "
                    f"this coworking allows is {rules.max_active_per_client}",
                )
            )

        slots = grains(starts_at, ends_at)
        claim = (seat_id, slots, reservation_id, client_id)
        # the instants the run's timers will keep, from the run's own clock
        hold_expires_at = now + timedelta(minutes=rules.hold_minutes)
        no_show_at = (
            starts_at + timedelta(minutes=rules.checkin_grace_minutes)
            if rules.checkin_grace_minutes
            else None
        )
        if existing_version is None:
            status = "confirmed" if rules.auto_confirm else "held"
            claimed = await conn.fetchrow(
                _BOOK, *claim, rules.id, starts_at, ends_at, status, request.version,
                _booking_rules(rules).SerializeToString(),
                hold_expires_at if status == "held" else None, no_show_at,
                request.request_hash or None,
            )  # fmt: skip
        else:
            status = context["existing_status"]
            fallback = _fallback(context)
            # staff confirmed that seat and time, not the one a client moves to
            if (
                status == "confirmed"
                and not rules.auto_confirm
                and not shrink
                and request.requested_by.startswith("client:")
            ):
                status = "held"
                if request.keep_fallback:
                    fallback = (
                        context["existing_seat_id"],
                        context["existing_starts_at"],
                        context["existing_ends_at"],
                    )
            elif fallback is not None and (
                not request.requested_by.startswith("client:")
                or within(fallback, seat_id, starts_at, ends_at)
                or rules.auto_confirm
            ):
                # staff chose the slot, the client came back inside what staff
                # confirmed, or the coworking confirms every booking by now:
                # nothing is left for staff to answer
                status, fallback = "confirmed", None
            touched.add(context["existing_coworking_id"])
            # our own old claims must not collide with the new ones; if the new ones
            # fail, the rollback brings the old ones back
            await conn.execute(
                "DELETE FROM reservation.seat_claims WHERE reservation_id = $1",
                reservation_id,
            )
            await conn.execute(
                "DELETE FROM reservation.client_claims WHERE reservation_id = $1",
                reservation_id,
            )
            await conn.execute(
                "UPDATE reservation.reservations SET seat_id = $2, coworking_id = $3,"
                " starts_at = $4, ends_at = $5, version = $6, status = $7,"
                " rules = $8, no_show_at = $10, updated_at = now(),"
                # a move of a held booking keeps the hold it has; one that goes
                # back to held waits for staff from now
                " hold_expires_at = CASE WHEN $7 <> 'held' THEN NULL"
                " WHEN status = 'held' THEN hold_expires_at ELSE $9 END,"
                " fallback_seat_id = $11, fallback_starts_at = $12,"
                " fallback_ends_at = $13"
                " WHERE id = $1",
                reservation_id, seat_id, rules.id, starts_at, ends_at, request.version,
                status, _booking_rules(rules).SerializeToString(), hold_expires_at,
                no_show_at, *(fallback or (None, None, None)),
            )  # fmt: skip
            claimed = await conn.fetchrow(_CLAIM, *claim)
        assert claimed is not None
        # the UNIQUE keys decided; a concurrent claim of the same grain waited for ours
        for scope, owner in (("seat", seat_id), ("client", client_id)):
            if claimed[scope] != len(slots):
                await self._refuse_taken(conn, scope, owner, slots, reservation_id)
        held = self._held(rules, status)
        if existing_version is not None and fallback is not None:
            # ours until the DELETE above, which any other claim of these grains
            # now waits behind: the only rows in the way are the new slot's own
            fallback_seat, fallback_starts, fallback_ends = fallback
            await conn.execute(
                _CLAIM,
                fallback_seat, grains(fallback_starts, fallback_ends),
                reservation_id, client_id,
            )  # fmt: skip
            _set_fallback(held, fallback)
        touched.add(rules.id)
        if existing_version is None:
            metrics.RESERVATIONS_CREATED.inc()
            if status == "confirmed":
                metrics.RESERVATIONS_CONFIRMED.inc()
        return held

    async def _refuse_taken(
        self,
        conn: asyncpg.Connection,
        scope: str,
        owner: uuid.UUID,
        slots: list[datetime],
        reservation_id: uuid.UUID,
    ) -> None:
        table, column = (
            ("reservation.seat_claims", "seat_id")
            if scope == "seat"
            else ("reservation.client_claims", "client_id")
        )
        # the holder's slot that has the grain: its own, or the one a move
        # waiting for staff keeps
        same_seat = " AND k.seat_id = c.seat_id" if scope == "seat" else ""
        taken = await conn.fetchrow(
            f"SELECT k.starts_at, k.ends_at FROM {table} c"  # noqa: S608
            " JOIN reservation.kept_slots k ON k.id = c.reservation_id"
            f"{same_seat} AND k.starts_at < c.slot_start + $4::interval"
            " AND k.ends_at > c.slot_start"
            f" WHERE c.{column} = $1 AND c.slot_start = ANY($2::timestamptz[])"
            " AND c.reservation_id <> $3 ORDER BY k.starts_at LIMIT 1",
            owner, slots, reservation_id, GRAIN,
        )  # fmt: skip
        if taken is None:
            # the holder released between our insert and this read: let the retry decide
            raise RuntimeError("claim raced with a release; retrying")
        raise _Refused(_conflict(scope, taken["starts_at"], taken["ends_at"]))

    @staticmethod
    def _held(rules: CoworkingRules, status: str) -> pb.ClaimResult:
        return pb.ClaimResult(
            outcome=pb.HOLD_OUTCOME_HELD,
            coworking_id=str(rules.id),
            status=_STATUS_ENUM[status],
            rules=_booking_rules(rules),
        )

    @activity.defn(name="release_seat")
    async def release_seat(self, request: pb.ReleaseInput) -> pb.ReleaseResult:
        reservation_id = uuid.UUID(request.reservation_id)
        status = _STATUS[request.status]
        since = _dt(request.release_from) if request.HasField("release_from") else None
        async with self.pool.acquire() as conn, conn.transaction():
            if request.version:
                ahead = await _ahead_of(conn, reservation_id, request)
                if ahead is not None:
                    return pb.ReleaseResult(ahead=ahead)
            # a reservation closed another way stays as it closed: a run reset
            # past its close would otherwise mark a cancelled booking a no-show
            row = await conn.fetchrow(
                _CLOSE,
                # a NUL is the one character PostgreSQL's text cannot hold; a
                # run from before the workflow cleaned signalled reasons sends it
                reservation_id, status, request.reason.replace("\x00", ""),
                list(_ACTIVE),
            )  # fmt: skip
            released = 0
            if row is not None:
                released = await _release_claims(conn, reservation_id, since)
        if row is None:
            return pb.ReleaseResult()
        await invalidate_availability(self.cache, row["coworking_id"])
        if released and status in _COUNTERS:
            _COUNTERS[status].inc()
        return pb.ReleaseResult(
            released=released, closed=_row_message(row, request.status)
        )

    async def close_abandoned(
        self, reservation_id: uuid.UUID, reason: str = ""
    ) -> bool:
        """Cancel a reservation whose workflow ended without closing it.

        Not an activity: a workflow terminated or cancelled from the Temporal UI
        runs none of its code again, so the API and the worker's sweep do this.
        False when the reservation had closed already (or never was).
        """
        reason = reason or ABANDONED_REASON
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                _CLOSE_ABANDONED,
                reservation_id, reason, list(_ACTIVE),
            )  # fmt: skip
            if row is None:
                return False
            await _release_claims(conn, reservation_id, None)
        await invalidate_availability(self.cache, row["coworking_id"])
        _COUNTERS["cancelled"].inc()
        logger.warning(
            "reservation %s closed after its workflow: %s", reservation_id, reason,
            extra={"reservation_id": str(reservation_id)},
        )  # fmt: skip
        return True

    async def forget_refusals(self, kept: timedelta = REFUSALS_KEPT) -> int:
        """Drop refusals older than `kept`, past any reset of their workflows.

        Not an activity: the reservation worker's sweep calls it.
        """
        # staff's mark on a refused booking, where a retry of its key raced the
        # claim that removed it
        await self.pool.execute(
            "DELETE FROM reservation.staff_bookings b"
            " USING reservation.refused_bookings r"
            " WHERE r.reservation_id = b.reservation_id"
        )
        outcome = await self.pool.execute(
            "DELETE FROM reservation.refused_bookings"
            " WHERE created_at < now() - $1::interval",
            kept,
        )
        return int(outcome.split()[-1])

    async def overdue(
        self,
        before: datetime,
        *,
        limit: int = 500,
        after: tuple[datetime, uuid.UUID] | None = None,
    ) -> list[tuple[datetime, uuid.UUID]]:
        """Open reservations a deadline of whose row passed before `before`:
        its end, a held row's hold, a confirmed row's check-in grace; as
        (end, id), in that order, from past `after`.

        Not an activity: the reservation worker's sweep calls it. Each timer
        fires on time, so a row found here has a run that waits on other,
        later deadlines: one a reset left behind it.
        """
        since, last = after if after is not None else (None, None)
        rows = await self.pool.fetch(_OVERDUE, before, limit, since, last)
        return [(row["ends_at"], row["id"]) for row in rows]

    @activity.defn(name="read_row")
    async def read_row(self, request: pb.StatusInput) -> pb.ReservationRow:
        """The reservation's row, for a run asked to look whether it lags it;
        empty when there is none."""
        row = await self.pool.fetchrow(_ROW, uuid.UUID(request.reservation_id))
        if row is None:
            return pb.ReservationRow()
        return _row_message(row, _STATUS_ENUM[row["status"]])

    @activity.defn(name="record_status")
    async def record_status(self, request: pb.StatusInput) -> pb.StatusResult:
        status = _STATUS[request.status]
        reservation_id = uuid.UUID(request.reservation_id)
        async with self.pool.acquire() as conn, conn.transaction():
            if request.version:
                ahead = await _ahead_of(conn, reservation_id, request)
                if ahead is not None:
                    return pb.StatusResult(ahead=ahead)
            row = await conn.fetchrow(_RECORD_STATUS, reservation_id, status,
                _dt(request.at), list(_ACTIVE))  # fmt: skip
            if row is not None and row["had_fallback"] and status != "held":
                # staff confirmed the move: the slot it would have gone back to goes
                await _keep_only(
                    conn, reservation_id, row["seat_id"], row["starts_at"],
                    row["ends_at"],
                )  # fmt: skip
        changed = row is not None
        if changed and row["had_fallback"] and status != "held":
            await invalidate_availability(self.cache, row["coworking_id"])
        if changed and status in _COUNTERS:
            _COUNTERS[status].inc()
        return pb.StatusResult(changed=changed)

    @activity.defn(name="revert_move")
    async def revert_move(self, request: pb.ReleaseInput) -> pb.ReservationRow:
        """Take a booking whose client's move staff did not confirm back to the
        seat and times they had confirmed, which it kept claimed meanwhile.

        Only at the run's `version` and while held with a fallback; otherwise
        the row stands as it is. Either way the answer is the row after.
        """
        reservation_id = uuid.UUID(request.reservation_id)
        reverted = None
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_ROW_FOR_UPDATE, reservation_id)
            if row is None:
                return pb.ReservationRow()
            if (
                row["version"] == request.version
                and row["status"] == "held"
                and row["fallback_seat_id"] is not None
            ):
                grace = 0
                if row["rules"] is not None:
                    rules = pb.BookingRules.FromString(row["rules"])
                    grace = rules.checkin_grace_minutes
                await _keep_only(
                    conn, reservation_id, row["fallback_seat_id"],
                    row["fallback_starts_at"], row["fallback_ends_at"],
                )  # fmt: skip
                row = reverted = await conn.fetchrow(
                    _REVERT, reservation_id, timedelta(minutes=grace) if grace else None
                )
        if reverted is not None:
            await invalidate_availability(self.cache, reverted["coworking_id"])
            metrics.RESERVATIONS_CONFIRMED.inc()
        return _row_message(row, _STATUS_ENUM[row["status"]])


_ROW_COLUMNS = (
    "seat_id, starts_at, ends_at, version, status, rules, hold_expires_at,"
    " fallback_seat_id, fallback_starts_at, fallback_ends_at, coworking_id"
)
# what a run behind its row takes over from it
_ROW = f"SELECT {_ROW_COLUMNS} FROM reservation.reservations WHERE id = $1"  # noqa: S608
_ROW_FOR_UPDATE = _ROW + " FOR UPDATE"
# the fallback's times, with the check-in deadline they carry
_REVERT = f"""
UPDATE reservation.reservations SET
    seat_id = fallback_seat_id, starts_at = fallback_starts_at,
    ends_at = fallback_ends_at, status = 'confirmed', version = version + 1,
    hold_expires_at = NULL, no_show_at = fallback_starts_at + $2::interval,
    fallback_seat_id = NULL, fallback_starts_at = NULL, fallback_ends_at = NULL,
    updated_at = now()
WHERE id = $1
RETURNING {_ROW_COLUMNS}
"""  # noqa: S608
# A booking closed while a move waited for staff closes where staff confirmed
# it: the move never took effect, and the client was told of that slot only.
_CLOSE_ON_FALLBACK = (
    "seat_id = coalesce(fallback_seat_id, seat_id),"
    " starts_at = coalesce(fallback_starts_at, starts_at),"
    " ends_at = coalesce(fallback_ends_at, ends_at), fallback_seat_id = NULL,"
    " fallback_starts_at = NULL, fallback_ends_at = NULL"
)
_CLOSE = f"""
UPDATE reservation.reservations SET status = $2, cancel_reason = NULLIF($3, ''),
    updated_at = now(), hold_expires_at = NULL, {_CLOSE_ON_FALLBACK}
WHERE id = $1 AND (status = $2 OR status = ANY($4::text[]))
RETURNING coworking_id, seat_id, starts_at, ends_at, version
"""  # noqa: S608
_CLOSE_ABANDONED = f"""
UPDATE reservation.reservations SET status = 'cancelled', cancel_reason = $2,
    updated_at = now(), {_CLOSE_ON_FALLBACK}
WHERE id = $1 AND status = ANY($3::text[]) RETURNING coworking_id
"""  # noqa: S608
# A hold's end is the row's only while it is held; so is a fallback.
_RECORD_STATUS = """
UPDATE reservation.reservations r SET status = $2, updated_at = now(),
    hold_expires_at = CASE WHEN $2 = 'held' THEN r.hold_expires_at END,
    fallback_seat_id = CASE WHEN $2 = 'held' THEN r.fallback_seat_id END,
    fallback_starts_at = CASE WHEN $2 = 'held' THEN r.fallback_starts_at END,
    fallback_ends_at = CASE WHEN $2 = 'held' THEN r.fallback_ends_at END,
    checked_in_at = CASE WHEN $2 = 'checked_in' THEN $3 ELSE r.checked_in_at END
FROM (
    SELECT fallback_seat_id FROM reservation.reservations WHERE id = $1
) AS before
WHERE r.id = $1 AND r.status <> $2 AND r.status = ANY($4::text[])
RETURNING r.seat_id, r.starts_at, r.ends_at, r.coworking_id,
    before.fallback_seat_id IS NOT NULL AS had_fallback
"""


_Slot = tuple[uuid.UUID, datetime, datetime]


def _fallback(row: asyncpg.Record) -> _Slot | None:
    """The row's fallback; None for none, or a row read without it."""
    if row.get("fallback_seat_id") is None:
        return None
    return row["fallback_seat_id"], row["fallback_starts_at"], row["fallback_ends_at"]


def _set_fallback(
    message: pb.ClaimResult | pb.ReservationRow, slot: _Slot | None
) -> None:
    if slot is not None:
        seat_id, starts_at, ends_at = slot
        message.fallback.seat_id = str(seat_id)
        message.fallback.starts_at.FromDatetime(starts_at)
        message.fallback.ends_at.FromDatetime(ends_at)


def within(
    slot: _Slot,
    seat_id: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
) -> bool:
    return slot[0] == seat_id and slot[1] <= starts_at and ends_at <= slot[2]


async def _keep_only(
    conn: asyncpg.Connection,
    reservation_id: uuid.UUID,
    seat_id: uuid.UUID,
    starts_at: datetime,
    ends_at: datetime,
) -> None:
    """Drop the reservation's claims outside one seat and interval."""
    slots = grains(starts_at, ends_at)
    await conn.execute(
        "DELETE FROM reservation.seat_claims WHERE reservation_id = $1"
        " AND NOT (seat_id = $2 AND slot_start = ANY($3::timestamptz[]))",
        reservation_id, seat_id, slots,
    )  # fmt: skip
    await conn.execute(
        "DELETE FROM reservation.client_claims WHERE reservation_id = $1"
        " AND NOT slot_start = ANY($2::timestamptz[])",
        reservation_id, slots,
    )  # fmt: skip


def _booking_rules(rules: CoworkingRules) -> pb.BookingRules:
    return pb.BookingRules(
        auto_confirm=rules.auto_confirm,
        hold_minutes=rules.hold_minutes,
        reminder_lead_minutes=rules.reminder_lead_minutes,
        checkin_grace_minutes=rules.checkin_grace_minutes or 0,
        timezone=rules.timezone,
    )


async def _ahead_of(
    conn: asyncpg.Connection,
    reservation_id: uuid.UUID,
    request: pb.ReleaseInput | pb.StatusInput,
) -> pb.ReservationRow | None:
    """The row, when it has gone on past what the asking run knows of it.

    A timer's close is decided on the run's own slot and status; a run that a
    reset left behind its row would otherwise close a booking that has moved,
    been confirmed or been checked in since. A repeat of a close that already
    committed is not ahead: the retry must end as the first attempt did.
    """
    row = await conn.fetchrow(_ROW_FOR_UPDATE, reservation_id)
    if row is None:
        return None
    decided_on = request.decided_on
    status = row["status"]
    # a row behind the run (restored from a backup) has nothing to teach it
    if row["version"] < request.version or (
        row["version"] == request.version
        and (
            status == _STATUS[request.status]
            or (status in _ACTIVE and decided_on in (0, _STATUS_ENUM[status]))
        )
    ):
        return None
    return _row_message(row, _STATUS_ENUM[status])


def _row_message(
    row: asyncpg.Record, status: pb.ReservationStatus
) -> pb.ReservationRow:
    message = pb.ReservationRow(
        seat_id=str(row["seat_id"]), version=row["version"], status=status
    )
    message.starts_at.FromDatetime(row["starts_at"])
    message.ends_at.FromDatetime(row["ends_at"])
    # a close's own row answers without them: the run only takes its slot
    if row.get("rules") is not None:
        message.rules.ParseFromString(row["rules"])
    _set_hold_end(message, row.get("hold_expires_at"))
    _set_fallback(message, _fallback(row))
    return message


async def _release_claims(
    conn: asyncpg.Connection, reservation_id: uuid.UUID, since: datetime | None
) -> int:
    released = 0
    for table in ("reservation.seat_claims", "reservation.client_claims"):
        outcome = await conn.execute(
            f"DELETE FROM {table} WHERE reservation_id = $1"  # noqa: S608
            " AND ($2::timestamptz IS NULL OR slot_start >= $2)",
            reservation_id, since,
        )  # fmt: skip
        released += int(outcome.split()[-1])
    return released
