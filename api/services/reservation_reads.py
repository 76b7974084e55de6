"""Read-only questions other services ask of the reservation schema.

The reservation tables belong to the reservation work; this module is the
agreed seam, so nobody else writes SQL against them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import TypeAlias
from uuid import UUID

import asyncpg

# the statuses in which a reservation keeps its seat
ACTIVE_STATUSES = ("held", "confirmed", "checked_in")

Conn: TypeAlias = asyncpg.Connection | asyncpg.Pool


async def busy_intervals(
    conn: Conn, *, seat_ids: Sequence[UUID], start: datetime, end: datetime
) -> dict[UUID, list[tuple[datetime, datetime]]]:
    """Per seat, the active reservations overlapping [start, end), in order."""
    rows = await conn.fetch(
        "SELECT seat_id, starts_at, ends_at FROM reservation.kept_slots"
        " WHERE seat_id = ANY($1::uuid[]) AND status = ANY($2::text[])"
        " AND starts_at < $4 AND ends_at > $3 ORDER BY seat_id, starts_at",
        list(seat_ids), list(ACTIVE_STATUSES), start, end,
    )  # fmt: skip
    busy: dict[UUID, list[tuple[datetime, datetime]]] = defaultdict(list)
    for row in rows:
        busy[row["seat_id"]].append((row["starts_at"], row["ends_at"]))
    return dict(busy)


async def busy_seat_ids(
    conn: Conn, *, seat_ids: Sequence[UUID], at: datetime
) -> set[UUID]:
    """The seats among `seat_ids` that an active reservation covers at one instant."""
    rows = await conn.fetch(
        "SELECT DISTINCT seat_id FROM reservation.kept_slots"
        " WHERE seat_id = ANY($1::uuid[]) AND status = ANY($2::text[])"
        " AND starts_at <= $3 AND ends_at > $3",
        list(seat_ids), list(ACTIVE_STATUSES), at,
    )  # fmt: skip
    return {row["seat_id"] for row in rows}


async def client_ids_between(
    conn: Conn, *, coworking_id: UUID, start: datetime, end: datetime
) -> list[UUID]:
    """Clients with an active reservation in the coworking overlapping [start, end)."""
    rows = await conn.fetch(
        "SELECT DISTINCT client_id FROM reservation.kept_slots"
        " WHERE coworking_id = $1 AND status = ANY($2::text[])"
        " AND starts_at < $4 AND ends_at > $3",
        coworking_id, list(ACTIVE_STATUSES), start, end,
    )  # fmt: skip
    return [row["client_id"] for row in rows]


async def upcoming_count(conn: Conn, *, seat_id: UUID, now: datetime) -> int:
    """Active reservations of a seat that have not ended yet (a fallback on it
    counts)."""
    count: int = await conn.fetchval(
        "SELECT count(DISTINCT id) FROM reservation.kept_slots"
        " WHERE seat_id = $1 AND status = ANY($2::text[]) AND ends_at > $3",
        seat_id, list(ACTIVE_STATUSES), now,
    )  # fmt: skip
    return count


async def active_overlapping(
    conn: Conn,
    *,
    coworking_id: UUID,
    seat_id: UUID | None,
    start: datetime,
    end: datetime,
    limit: int,
) -> tuple[int, list[asyncpg.Record]]:
    """Active reservations of one seat (or of any, for None) overlapping [start, end):
    how many there are, and the earliest `limit` of them."""
    # one row a reservation, its earliest slot inside, though both may be
    rows = await conn.fetch(
        "SELECT id, seat_id, starts_at, ends_at, count(*) OVER () AS total"
        " FROM (SELECT DISTINCT ON (id) id, seat_id, starts_at, ends_at"
        " FROM reservation.kept_slots WHERE coworking_id = $1"
        " AND ($2::uuid IS NULL OR seat_id = $2) AND status = ANY($3::text[])"
        " AND starts_at < $5 AND ends_at > $4 ORDER BY id, starts_at) AS inside"
        " ORDER BY starts_at, id LIMIT $6",
        coworking_id, seat_id, list(ACTIVE_STATUSES), start, end, limit,
    )  # fmt: skip
    return (rows[0]["total"] if rows else 0), list(rows)
