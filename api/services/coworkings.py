"""Coworkings, their seats, closures and the clients expected on a day.

Plain async code over the asyncpg pool. Every change to what can be booked
bumps the coworking's availability version after it commits and before the
caller answers, so no cached availability outlives an acknowledged change.
"""

from __future__ import annotations

import calendar
import json
import logging
from collections.abc import Collection, Container, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeAlias
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import asyncpg
import valkey.asyncio as valkey

from api.booking_rules import Closure, CoworkingRules, opening_intervals
from api.cache import invalidate_availability
from api.errors import Conflict, InvalidInput, InvalidQuery, NotFound
from api.models.common import BOOKING_YEARS
from api.models.coworkings import (
    ClosureCreate,
    ClosureUpdate,
    CoworkingCreate,
    CoworkingUpdate,
    SeatCreate,
    SeatUpdate,
    seat_kind,
    seat_type_json,
)
from api.services import reservation_reads
from api.settings import Settings

logger = logging.getLogger(__name__)

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool

MAX_PAGE = 100
MAX_BULK_SEATS = 500
MAX_CLOSURE_DAYS = 366
# how many of the reservations in a closure's way its refusal names
CLOSURE_CONFLICTS_NAMED = 3
# a null here writes null; for any other field null means "leave it"
_NULLABLE_UPDATES = {"opening_hours", "checkin_grace_minutes"}
RULE_COLUMNS = (
    "slot_minutes", "min_duration_minutes", "max_duration_minutes", "max_days_ahead",
    "max_active_per_client", "auto_confirm", "hold_minutes", "reminder_lead_minutes",
    "checkin_grace_minutes",
)  # fmt: skip
_COWORKING_COLUMNS = (
    "id, name, address, city, timezone, opening_hours, active, "
    + ", ".join(RULE_COLUMNS)
)
_SEAT_COLUMNS = (
    "id, coworking_id, number, kind, capacity, features, cost, internal_only, active,"
    " pos_x, pos_y"
)
_CLOSURE_COLUMNS = "id, coworking_id, seat_id, starts_at, ends_at, reason, created_at"


def page(
    limit: int | None, offset: int | None, *, default: int = 50
) -> tuple[int, int]:
    """A limit clamped to MAX_PAGE, so a huge value cannot ask for the whole table."""
    return min(default if limit is None else limit, MAX_PAGE), offset or 0


def _hours(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def _coworking_public(row: asyncpg.Record, stats: dict[str, int]) -> dict[str, Any]:
    public = dict(row)
    public["opening_hours"] = _hours(row["opening_hours"])
    public["seats"] = stats
    return public


def seat_public(row: asyncpg.Record) -> dict[str, Any]:
    public = dict(row)
    public["type"] = seat_type_json(public.pop("kind"), public.pop("capacity"))
    return public


# -- coworkings ---------------------------------------------------------------


async def default_coworking_id(conn: Conn, settings: Settings) -> UUID:
    """The coworking the contract's singular paths act on."""
    if settings.default_coworking_id is not None:
        found = await conn.fetchval(
            "SELECT id FROM coworking.coworkings WHERE id = $1",
            settings.default_coworking_id,
        )
    else:
        found = await conn.fetchval(
            "SELECT id FROM coworking.coworkings ORDER BY created_at, id LIMIT 1"
        )
    if found is None and settings.default_coworking_id is not None:
        # the operator's to mend, and no secret: the id is the setting's own
        raise NotFound(
            f"coworking: TLOUNGE_DEFAULT_COWORKING_ID names"
            f" {settings.default_coworking_id}, which is no coworking"
        )
    if found is None:
        raise NotFound("coworking: none is set up yet")
    return found  # type: ignore[no-any-return]


async def coworking_row(conn: Conn, coworking_id: UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {_COWORKING_COLUMNS} FROM coworking.coworkings WHERE id = $1",  # noqa: S608
        coworking_id,
    )
    if row is None:
        raise NotFound(f"coworking_id: no coworking {coworking_id}")
    return row


async def coworking_rules(conn: Conn, coworking_id: UUID) -> CoworkingRules:
    return CoworkingRules.from_row(await coworking_row(conn, coworking_id))


async def seat_stats(
    conn: Conn, coworkings: Sequence[asyncpg.Record], *, now: datetime
) -> dict[UUID, dict[str, int]]:
    """Per coworking row: seats in total, and active seats free and open right now."""
    coworking_ids = [row["id"] for row in coworkings]
    seats = await conn.fetch(
        "SELECT id, coworking_id, active FROM coworking.seats"
        " WHERE coworking_id = ANY($1::uuid[]) AND deleted_at IS NULL",
        list(coworking_ids),
    )
    closed = await conn.fetch(
        "SELECT coworking_id, seat_id FROM coworking.closures"
        " WHERE coworking_id = ANY($1::uuid[]) AND starts_at <= $2 AND ends_at > $2",
        list(coworking_ids), now,
    )  # fmt: skip
    shut = {row["coworking_id"] for row in closed if row["seat_id"] is None}
    moment = (now, now + timedelta(minutes=1))
    shut |= {
        row["id"]
        for row in coworkings
        if not opening_intervals(CoworkingRules.from_row(row), *moment)
    }
    unavailable = {row["seat_id"] for row in closed if row["seat_id"] is not None}
    unavailable |= await reservation_reads.busy_seat_ids(
        conn, seat_ids=[row["id"] for row in seats if row["active"]], at=now
    )
    stats = {
        coworking_id: {"available": 0, "total": 0} for coworking_id in coworking_ids
    }
    for row in seats:
        counts = stats[row["coworking_id"]]
        counts["total"] += 1
        free = row["active"] and row["id"] not in unavailable
        if free and row["coworking_id"] not in shut:
            counts["available"] += 1
    return stats


async def get_coworking(
    conn: Conn, coworking_id: UUID, *, show_inactive: bool, now: datetime
) -> dict[str, Any]:
    row = await coworking_row(conn, coworking_id)
    if not row["active"] and not show_inactive:
        raise NotFound(f"coworking_id: no coworking {coworking_id}")
    stats = await seat_stats(conn, [row], now=now)
    return _coworking_public(row, stats[coworking_id])


async def list_coworkings(
    conn: Conn,
    *,
    name: str | None,
    city: str | None,
    limit: int | None,
    offset: int | None,
    now: datetime,
    inactive_shown: Collection[UUID] | None = (),
) -> list[dict[str, Any]]:
    """Coworkings whose name and city contain the given text, any case: the
    active ones, and those of `inactive_shown` (None: every one)."""
    limit, offset = page(limit, offset, default=20)
    # strpos rather than LIKE, so % and _ in the search text mean themselves
    rows = await conn.fetch(
        f"SELECT {_COWORKING_COLUMNS} FROM coworking.coworkings"  # noqa: S608
        " WHERE (active OR $5::bool OR id = ANY($6::uuid[]))"
        " AND ($1::text IS NULL OR strpos(lower(name), lower($1)) > 0)"
        " AND ($2::text IS NULL OR strpos(lower(city), lower($2)) > 0)"
        " ORDER BY name, id LIMIT $3 OFFSET $4",
        name, city, limit, offset, inactive_shown is None,
        list(inactive_shown or ()),
    )  # fmt: skip
    stats = await seat_stats(conn, rows, now=now)
    return [_coworking_public(row, stats[row["id"]]) for row in rows]


def _check_durations(values: dict[str, Any], sent: Container[str] = ()) -> None:
    low, high = values["min_duration_minutes"], values["max_duration_minutes"]
    if low <= high:
        _check_a_length_fits(values["slot_minutes"], low, high, sent)
        return
    # the field the caller sent is the one at fault, not the one it now contradicts
    if "max_duration_minutes" in sent and "min_duration_minutes" not in sent:
        raise InvalidInput(
            f"max_duration_minutes: {high} is less than min_duration_minutes {low}"
        )
    raise InvalidInput(
        f"min_duration_minutes: {low} is more than max_duration_minutes {high}"
    )


def _check_a_length_fits(slot: int, low: int, high: int, sent: Container[str]) -> None:
    """Both ends of a booking lie on the grid, so it lasts a whole number of
    slots: one of them must reach the minimum and stay within the maximum."""
    shortest = max(slot, -(-low // slot) * slot)
    if shortest <= high:
        return
    field = next(
        (name for name in ("slot_minutes", "max_duration_minutes") if name in sent),
        "min_duration_minutes",
    )
    raise InvalidInput(
        f"{field}: no booking would fit: on a {slot}-minute grid the shortest"
        f" from min_duration_minutes {low} lasts {shortest}, over"
        f" max_duration_minutes {high}"
    )


_RULE_DEFAULTS = {
    "slot_minutes": 15, "min_duration_minutes": 15, "max_duration_minutes": 720,
}  # fmt: skip


async def create_coworking(
    pool: asyncpg.Pool, data: CoworkingCreate, *, now: datetime
) -> dict[str, Any]:
    values = data.model_dump(exclude_none=True)
    _check_durations({**_RULE_DEFAULTS, **values}, sent=values)
    values["id"] = uuid4()
    if data.opening_hours is not None:
        values["opening_hours"] = json.dumps(data.opening_hours)
    columns = list(values)
    # column names come from the model's fields, never from the request
    placeholders = ", ".join(
        f"${i}::jsonb" if column == "opening_hours" else f"${i}"
        for i, column in enumerate(columns, start=1)
    )
    await pool.execute(
        f"INSERT INTO coworking.coworkings ({', '.join(columns)})"  # noqa: S608
        f" VALUES ({placeholders})",
        *values.values(),
    )
    logger.info("created coworking %s", values["id"])
    return await get_coworking(pool, values["id"], show_inactive=True, now=now)


async def update_coworking(
    pool: asyncpg.Pool,
    kv: valkey.Valkey,
    coworking_id: UUID,
    data: CoworkingUpdate,
    *,
    now: datetime,
) -> dict[str, Any]:
    changes = {
        field: getattr(data, field)
        for field in data.model_fields_set
        if getattr(data, field) is not None or field in _NULLABLE_UPDATES
    }
    async with pool.acquire() as conn, conn.transaction():
        current = await conn.fetchrow(
            f"SELECT {_COWORKING_COLUMNS} FROM coworking.coworkings"  # noqa: S608
            " WHERE id = $1 FOR UPDATE",
            coworking_id,
        )
        if current is None:
            raise NotFound(f"coworking_id: no coworking {coworking_id}")
        merged = {**dict(current), **changes}
        _check_durations(merged, sent=changes)
        if {"opening_hours", "timezone"} & changes.keys():
            await _refuse_hours_leaving_reservations(
                conn, CoworkingRules.from_row(merged), now=now,
                field="opening_hours" if "opening_hours" in changes else "timezone",
            )  # fmt: skip
        if changes:
            if "opening_hours" in changes and changes["opening_hours"] is not None:
                changes["opening_hours"] = json.dumps(changes["opening_hours"])
            assignments = ", ".join(
                f"{column} = ${i}::jsonb"
                if column == "opening_hours"
                else f"{column} = ${i}"
                for i, column in enumerate(changes, start=2)
            )
            await conn.execute(
                f"UPDATE coworking.coworkings SET {assignments}, updated_at = now()"  # noqa: S608
                " WHERE id = $1",
                coworking_id,
                *changes.values(),
            )
    if changes:
        await invalidate_availability(kv, coworking_id)
        logger.info(
            "updated coworking %s: %s", coworking_id, ", ".join(sorted(changes))
        )
    return await get_coworking(pool, coworking_id, show_inactive=True, now=now)


# -- seats --------------------------------------------------------------------


async def list_seats(
    conn: Conn,
    coworking_id: UUID,
    *,
    limit: int | None,
    offset: int | None,
    show_inactive: bool = True,
) -> list[dict[str, Any]]:
    coworking = await coworking_row(conn, coworking_id)
    if not coworking["active"] and not show_inactive:
        # as the coworking itself answers: a closed one is not shown to the public
        raise NotFound(f"coworking_id: no coworking {coworking_id}")
    limit, offset = page(limit, offset)
    rows = await conn.fetch(
        f"SELECT {_SEAT_COLUMNS} FROM coworking.seats"  # noqa: S608
        " WHERE coworking_id = $1 AND deleted_at IS NULL"
        " ORDER BY number LIMIT $2 OFFSET $3",
        coworking_id, limit, offset,
    )  # fmt: skip
    return [seat_public(row) for row in rows]


async def _seat_row(conn: Conn, coworking_id: UUID, seat_id: UUID) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {_SEAT_COLUMNS} FROM coworking.seats"  # noqa: S608
        " WHERE id = $1 AND coworking_id = $2 AND deleted_at IS NULL",
        seat_id, coworking_id,
    )  # fmt: skip
    if row is None:
        raise NotFound(f"seat_id: no seat {seat_id} in this coworking")
    return row


async def get_seat(conn: Conn, coworking_id: UUID, seat_id: UUID) -> dict[str, Any]:
    return seat_public(await _seat_row(conn, coworking_id, seat_id))


def _number_taken(number: int | None, *, field: str = "number") -> InvalidInput:
    # 400 rather than 409: the contract's seat writes know 400, not 409
    return InvalidInput(
        f"{field}: seat number {number} is already used in this coworking"
    )


async def create_seats(
    pool: asyncpg.Pool,
    kv: valkey.Valkey,
    coworking_id: UUID,
    seats: Sequence[SeatCreate],
) -> list[dict[str, Any]]:
    """All the seats or none, in one transaction."""
    if len(seats) > MAX_BULK_SEATS:
        raise InvalidInput(f"body: at most {MAX_BULK_SEATS} seats at once")
    seen: dict[int, int] = {}
    for index, seat in enumerate(seats):
        if seat.number in seen:
            raise InvalidInput(
                f"body.{index}.number: seat number {seat.number} is also at "
                f"body.{seen[seat.number]}"
            )
        seen[seat.number] = index
    prefix = len(seats) > 1
    created = []
    async with pool.acquire() as conn, conn.transaction():
        await coworking_row(conn, coworking_id)
        taken = await conn.fetch(
            "SELECT number FROM coworking.seats WHERE coworking_id = $1"
            " AND number = ANY($2::int[]) AND deleted_at IS NULL ORDER BY number",
            coworking_id, list(seen),
        )  # fmt: skip
        if taken:
            number = taken[0]["number"]
            raise _number_taken(
                number, field=f"body.{seen[number]}.number" if prefix else "number"
            )
        for seat in seats:
            kind, capacity = seat_kind(seat.type)
            try:
                row = await conn.fetchrow(
                    "INSERT INTO coworking.seats (id, coworking_id, number, kind,"  # noqa: S608
                    " capacity, features, cost, internal_only, active, pos_x, pos_y)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    f" RETURNING {_SEAT_COLUMNS}",
                    uuid4(), coworking_id, seat.number, kind, capacity,
                    list(seat.features), seat.cost, seat.internal_only, seat.active,
                    seat.pos_x, seat.pos_y,
                )  # fmt: skip
            except asyncpg.UniqueViolationError:
                # another request took the number between the check and the insert
                raise _number_taken(seat.number) from None
            created.append(seat_public(row))
    await invalidate_availability(kv, coworking_id)
    logger.info("created %s seats in coworking %s", len(created), coworking_id)
    return created


async def update_seat(
    pool: asyncpg.Pool,
    kv: valkey.Valkey,
    coworking_id: UUID,
    seat_id: UUID,
    data: SeatUpdate,
) -> dict[str, Any]:
    changes: dict[str, Any] = {
        field: getattr(data, field)
        for field in data.model_fields_set
        if getattr(data, field) is not None or field in ("pos_x", "pos_y")
    }
    if "type" in changes:
        changes["kind"], changes["capacity"] = seat_kind(changes.pop("type"))
    if "features" in changes:
        changes["features"] = list(changes["features"])
    async with pool.acquire() as conn, conn.transaction():
        # a seat made inactive or staff-only must not take a claim checked before
        await _hold_off_claims(conn, coworking_id)
        await _seat_row(conn, coworking_id, seat_id)
        if changes:
            assignments = ", ".join(
                f"{column} = ${i}" for i, column in enumerate(changes, start=2)
            )
            try:
                await conn.execute(
                    f"UPDATE coworking.seats SET {assignments}, updated_at = now()"  # noqa: S608
                    " WHERE id = $1",
                    seat_id,
                    *changes.values(),
                )
            except asyncpg.UniqueViolationError:
                raise _number_taken(changes.get("number")) from None
        row = await _seat_row(conn, coworking_id, seat_id)
    await invalidate_availability(kv, coworking_id)
    return seat_public(row)


async def delete_seat(
    pool: asyncpg.Pool,
    kv: valkey.Valkey,
    coworking_id: UUID,
    seat_id: UUID,
    *,
    now: datetime,
) -> list[str]:
    """Soft delete: the number becomes free, past reservations keep their seat.

    Its images go with it (nobody could list them again); the store keys they
    held are returned, for the objects no other image uses to be removed."""
    async with pool.acquire() as conn, conn.transaction():
        # else a claim could commit between the count and the delete
        await _hold_off_claims(conn, coworking_id)
        await _seat_row(conn, coworking_id, seat_id)
        upcoming = await reservation_reads.upcoming_count(
            conn, seat_id=seat_id, now=now
        )
        if upcoming:
            told = "1 reservation" if upcoming == 1 else f"{upcoming} reservations"
            raise Conflict(
                f"seat_id: the seat has {told} to come or under way; cancel"
                " them or set the seat inactive"
            )
        await conn.execute(
            "UPDATE coworking.seats SET deleted_at = now(), updated_at = now()"
            " WHERE id = $1",
            seat_id,
        )
        keys = await conn.fetch(
            "DELETE FROM images.images WHERE seat_id = $1 RETURNING object_key",
            seat_id,
        )
    await invalidate_availability(kv, coworking_id)
    logger.info("deleted seat %s of coworking %s", seat_id, coworking_id)
    return sorted({row["object_key"] for row in keys})


# -- closures -----------------------------------------------------------------

# Closures and claims take turns on the coworking's row. A closure locks it FOR
# UPDATE before it looks for reservations in its way; a claim locks it FOR KEY
# SHARE (so claims never wait for each other) in a statement of its own before
# the one that reads the closures, because a READ COMMITTED statement that waited
# for a lock still reads with the snapshot it started with. Whichever of the two
# commits second has therefore seen the other's rows, and refuses.
CLAIM_LOCK = (
    "SELECT 1 FROM coworking.coworkings"
    " WHERE id = (SELECT coworking_id FROM coworking.seats WHERE id = $1)"
    " FOR KEY SHARE"
)


def _check_span(starts_at: datetime, ends_at: datetime, now: datetime) -> None:
    if ends_at <= starts_at:
        raise InvalidInput("ends_at: must be after starts_at")
    # a closure holds off bookings to come; one over past time would block nothing
    # and is most likely a mistyped date
    if ends_at <= now:
        raise InvalidInput(
            f"ends_at: {ends_at.isoformat()} has passed; a closure must end after now"
        )
    if ends_at - starts_at > timedelta(days=MAX_CLOSURE_DAYS):
        raise InvalidInput(f"ends_at: a closure lasts at most {MAX_CLOSURE_DAYS} days")


async def _hold_off_claims(conn: asyncpg.Connection, coworking_id: UUID) -> ZoneInfo:
    """Waits out the claims in flight in the coworking and holds off new ones,
    so a change to its closures or seats and a claim never pass each other."""
    timezone = await conn.fetchval(
        "SELECT timezone FROM coworking.coworkings WHERE id = $1 FOR UPDATE",
        coworking_id,
    )
    if timezone is None:
        raise NotFound(f"coworking_id: no coworking {coworking_id}")
    return ZoneInfo(timezone)


def _local_span(starts_at: datetime, ends_at: datetime, zone: ZoneInfo) -> str:
    start, end = starts_at.astimezone(zone), ends_at.astimezone(zone)
    until = end.strftime("%H:%M" if end.date() == start.date() else "%Y-%m-%d %H:%M")
    return f"{start:%Y-%m-%d %H:%M}–{until}"


async def _refuse_over_reservations(
    conn: asyncpg.Connection,
    coworking_id: UUID,
    zone: ZoneInfo,
    *,
    seat_id: UUID | None,
    starts_at: datetime,
    ends_at: datetime,
) -> None:
    """A closure leaves no active reservation silently inside it: staff cancel
    those first, so that their clients are told."""
    total, rows = await reservation_reads.active_overlapping(
        conn, coworking_id=coworking_id, seat_id=seat_id, start=starts_at,
        end=ends_at, limit=CLOSURE_CONFLICTS_NAMED,
    )  # fmt: skip
    if not total:
        return
    plural = "reservation falls" if total == 1 else "reservations fall"
    raise Conflict(
        f"closure: {total} active {plural} inside it; cancel"
        f" {'it' if total == 1 else 'them'} first:"
        f" {await _named(conn, rows, total, zone)}"
    )


async def _refuse_hours_leaving_reservations(
    conn: asyncpg.Connection, rules: CoworkingRules, *, now: datetime, field: str
) -> None:
    """New hours (or a new zone for the old ones) leave no reservation still to
    come outside them: staff move or cancel those first, so their clients know."""
    rows = await conn.fetch(
        "SELECT id, seat_id, starts_at, ends_at FROM reservation.kept_slots"
        " WHERE coworking_id = $1 AND status = ANY($2::text[]) AND ends_at > $3"
        " ORDER BY starts_at, id",
        rules.id, list(reservation_reads.ACTIVE_STATUSES), now,
    )  # fmt: skip
    outside, seen = [], set()
    for row in rows:
        begin = max(row["starts_at"], now)
        # a reservation waiting on a move has two slots here; it is named once
        if row["id"] in seen:
            continue
        if opening_intervals(rules, begin, row["ends_at"]) != [(begin, row["ends_at"])]:
            seen.add(row["id"])
            outside.append(row)
    if not outside:
        return
    total = len(outside)
    plural = "reservation falls" if total == 1 else "reservations fall"
    named = await _named(conn, outside[:CLOSURE_CONFLICTS_NAMED], total, rules.zone)
    raise Conflict(
        f"{field}: {total} active {plural} outside the new opening hours; move or"
        f" cancel {'it' if total == 1 else 'them'} first: {named}"
    )


async def _named(
    conn: asyncpg.Connection, rows: Sequence[asyncpg.Record], total: int, zone: ZoneInfo
) -> str:
    """The first reservations by id, seat and local time, and how many more."""
    numbers = dict(
        await conn.fetch(
            "SELECT id, number FROM coworking.seats WHERE id = ANY($1::uuid[])",
            [row["seat_id"] for row in rows],
        )
    )
    named = ", ".join(
        f"{row['id']} (seat {numbers.get(row['seat_id'])},"
        f" {_local_span(row['starts_at'], row['ends_at'], zone)})"
        for row in rows
    )
    more = f" and {total - len(rows)} more" if total > len(rows) else ""
    return f"{named}{more} (times in {zone.key})"


async def list_closures(
    conn: Conn,
    coworking_id: UUID,
    *,
    start: datetime | None,
    end: datetime | None,
    limit: int | None,
    offset: int | None,
) -> list[dict[str, Any]]:
    await coworking_row(conn, coworking_id)
    limit, offset = page(limit, offset)
    rows = await conn.fetch(
        f"SELECT {_CLOSURE_COLUMNS} FROM coworking.closures WHERE coworking_id = $1"  # noqa: S608
        " AND ($2::timestamptz IS NULL OR ends_at > $2)"
        " AND ($3::timestamptz IS NULL OR starts_at < $3)"
        " ORDER BY starts_at, id LIMIT $4 OFFSET $5",
        coworking_id, start, end, limit, offset,
    )  # fmt: skip
    return [dict(row) for row in rows]


async def _closure_row(
    conn: Conn, coworking_id: UUID, closure_id: UUID
) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {_CLOSURE_COLUMNS} FROM coworking.closures"  # noqa: S608
        " WHERE id = $1 AND coworking_id = $2",
        closure_id, coworking_id,
    )  # fmt: skip
    if row is None:
        raise NotFound(f"closure_id: no closure {closure_id} in this coworking")
    return row


async def get_closure(
    conn: Conn, coworking_id: UUID, closure_id: UUID
) -> dict[str, Any]:
    return dict(await _closure_row(conn, coworking_id, closure_id))


async def create_closure(
    pool: asyncpg.Pool,
    kv: valkey.Valkey,
    coworking_id: UUID,
    data: ClosureCreate,
    *,
    now: datetime,
) -> dict[str, Any]:
    """Blocks new bookings, and is refused over active reservations."""
    _check_span(data.starts_at, data.ends_at, now)
    async with pool.acquire() as conn, conn.transaction():
        zone = await _hold_off_claims(conn, coworking_id)
        if data.seat_id is not None:
            found = await conn.fetchval(
                "SELECT 1 FROM coworking.seats WHERE id = $1 AND coworking_id = $2"
                " AND deleted_at IS NULL",
                data.seat_id, coworking_id,
            )  # fmt: skip
            if found is None:
                raise InvalidInput(f"seat_id: no seat {data.seat_id} in this coworking")
        await _refuse_over_reservations(
            conn, coworking_id, zone, seat_id=data.seat_id,
            starts_at=data.starts_at, ends_at=data.ends_at,
        )  # fmt: skip
        row = await conn.fetchrow(
            "INSERT INTO coworking.closures (id, coworking_id, seat_id,"  # noqa: S608
            " starts_at, ends_at, reason)"
            f" VALUES ($1, $2, $3, $4, $5, $6) RETURNING {_CLOSURE_COLUMNS}",
            uuid4(), coworking_id, data.seat_id, data.starts_at, data.ends_at,
            data.reason,
        )  # fmt: skip
    await invalidate_availability(kv, coworking_id)
    logger.info("closure %s added to coworking %s", row["id"], coworking_id)
    return dict(row)


async def update_closure(
    pool: asyncpg.Pool,
    kv: valkey.Valkey,
    coworking_id: UUID,
    closure_id: UUID,
    data: ClosureUpdate,
    *,
    now: datetime,
) -> dict[str, Any]:
    async with pool.acquire() as conn, conn.transaction():
        zone = await _hold_off_claims(conn, coworking_id)
        current = await _closure_row(conn, coworking_id, closure_id)
        starts_at = data.starts_at or current["starts_at"]
        ends_at = data.ends_at or current["ends_at"]
        # a new reason alone moves nothing, so it is never refused, even on a
        # closure that has passed
        if (starts_at, ends_at) != (current["starts_at"], current["ends_at"]):
            _check_span(starts_at, ends_at, now)
            await _refuse_over_reservations(
                conn, coworking_id, zone, seat_id=current["seat_id"],
                starts_at=starts_at, ends_at=ends_at,
            )  # fmt: skip
        reason = current["reason"] if data.reason is None else data.reason
        row = await conn.fetchrow(
            "UPDATE coworking.closures SET starts_at = $2, ends_at = $3, reason = $4"  # noqa: S608
            f" WHERE id = $1 RETURNING {_CLOSURE_COLUMNS}",
            closure_id, starts_at, ends_at, reason,
        )  # fmt: skip
    await invalidate_availability(kv, coworking_id)
    return dict(row)


async def delete_closure(
    pool: asyncpg.Pool, kv: valkey.Valkey, coworking_id: UUID, closure_id: UUID
) -> None:
    deleted = await pool.fetchval(
        "DELETE FROM coworking.closures WHERE id = $1 AND coworking_id = $2"
        " RETURNING id",
        closure_id, coworking_id,
    )  # fmt: skip
    if deleted is None:
        raise NotFound(f"closure_id: no closure {closure_id} in this coworking")
    await invalidate_availability(kv, coworking_id)


async def closures_between(
    conn: Conn, coworking_id: UUID, *, start: datetime, end: datetime
) -> list[Closure]:
    rows = await conn.fetch(
        "SELECT seat_id, starts_at, ends_at, reason FROM coworking.closures"
        " WHERE coworking_id = $1 AND starts_at < $3 AND ends_at > $2"
        " ORDER BY starts_at",
        coworking_id, start, end,
    )  # fmt: skip
    return [
        Closure(r["seat_id"], r["starts_at"], r["ends_at"], r["reason"]) for r in rows
    ]


# -- clients of a day -----------------------------------------------------------


def _local_day(
    rules: CoworkingRules, *, day: int | None, month: int | None, year: int | None,
    now: datetime,
) -> date:  # fmt: skip
    today = now.astimezone(rules.zone).date()
    year = today.year if year is None else year
    month = today.month if month is None else month
    day = today.day if day is None else day
    # bookings lie in these years; outside them the day's bounds in UTC may
    # not even be a datetime
    if year not in BOOKING_YEARS:
        raise InvalidQuery(
            f"query.year: {year} is not between {BOOKING_YEARS[0]}"
            f" and {BOOKING_YEARS[-1]}"
        )
    if not 1 <= month <= 12:
        raise InvalidQuery(f"query.month: {month} is not between 1 and 12")
    last = calendar.monthrange(year, month)[1]
    if not 1 <= day <= last:
        raise InvalidQuery(
            f"query.day: {day} is not a day of {year}-{month:02d}, which has {last}"
        )
    return date(year, month, day)


async def clients_on_day(
    conn: Conn,
    coworking_id: UUID,
    *,
    day: int | None,
    month: int | None,
    year: int | None,
    limit: int | None,
    offset: int | None,
    now: datetime,
) -> list[dict[str, Any]]:
    """Clients holding a seat in the coworking at some time of one local day."""
    rules = await coworking_rules(conn, coworking_id)
    local = _local_day(rules, day=day, month=month, year=year, now=now)
    start = datetime.combine(local, time(0), tzinfo=rules.zone).astimezone(UTC)
    end = datetime.combine(local + timedelta(days=1), time(0), tzinfo=rules.zone)
    client_ids = await reservation_reads.client_ids_between(
        conn, coworking_id=coworking_id, start=start, end=end.astimezone(UTC)
    )
    limit, offset = page(limit, offset)
    rows = await conn.fetch(
        "SELECT id, email, name, surname, patronymic, send_notifications,"
        " is_internal, verified FROM client.clients"
        " WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL"
        " ORDER BY surname, name, id LIMIT $2 OFFSET $3",
        client_ids, limit, offset,
    )  # fmt: skip
    return [dict(row) for row in rows]
