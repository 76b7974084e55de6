"""Read-only checks of the promises the claim tables make, for tests and scripts.

Each returns the offending rows, so an empty list is the promise kept and a
failure message can name what broke.
"""

from __future__ import annotations

import asyncpg

# Statuses that held their seat for their whole slot; a cancelled, expired or
# no-show reservation gave it back, so it may overlap whatever came later.
HELD_TO_THE_END = ["held", "confirmed", "checked_in", "completed"]

_OVERLAPS = """
SELECT $2::text AS scope, a.id AS first, b.id AS second
FROM reservation.reservations a
JOIN reservation.reservations b
  ON a.{column} = b.{column} AND a.id < b.id
 AND a.starts_at < b.ends_at AND b.starts_at < a.ends_at
WHERE a.status = ANY($1::text[]) AND b.status = ANY($1::text[])
"""

_SHARED_GRAINS = """
SELECT $1::text AS scope, {column} AS owner, slot_start, count(*) AS holders
FROM reservation.{table}
GROUP BY {column}, slot_start HAVING count(*) > 1
"""

# grains are 300 s and anchored on a multiple of 300 s, so epoch arithmetic counts them
_MISSING_CLAIMS = """
SELECT r.id, r.status,
  (SELECT count(*) FROM reservation.seat_claims c
    WHERE c.reservation_id = r.id AND c.seat_id = r.seat_id) AS seat_grains,
  (SELECT count(*) FROM reservation.client_claims c
    WHERE c.reservation_id = r.id AND c.client_id = r.client_id) AS client_grains,
  ceil(extract(epoch FROM r.ends_at) / 300)
    - floor(extract(epoch FROM r.starts_at) / 300) AS expected
FROM reservation.reservations r
WHERE r.status = ANY($1::text[]) AND r.ends_at > now()
"""


async def overlapping_reservations(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    rows = []
    for column in ("seat_id", "client_id"):
        rows += await pool.fetch(
            _OVERLAPS.format(column=column), HELD_TO_THE_END, column.removesuffix("_id")
        )
    return rows


async def shared_claim_grains(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    rows = []
    for scope, table, column in (
        ("seat", "seat_claims", "seat_id"),
        ("client", "client_claims", "client_id"),
    ):
        rows += await pool.fetch(
            _SHARED_GRAINS.format(table=table, column=column), scope
        )
    return rows


async def unclaimed_reservations(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    """Open reservations whose claim rows do not cover exactly their own slot."""
    rows = await pool.fetch(_MISSING_CLAIMS, ["held", "confirmed", "checked_in"])
    return [
        row
        for row in rows
        if not row["seat_grains"] == row["client_grains"] == row["expected"]
    ]


async def violations(pool: asyncpg.Pool) -> dict[str, list[asyncpg.Record]]:
    return {
        "overlapping reservations": await overlapping_reservations(pool),
        "grains held twice": await shared_claim_grains(pool),
        "reservations without their claims": await unclaimed_reservations(pool),
    }
