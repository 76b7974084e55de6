"""Free time per seat: opening hours minus closures minus active reservations.

Answers are cached in Valkey under the coworking's availability version. The
version is read before the database, so an answer computed while a change
commits is stored under the old version, which that change then retires.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg
import valkey.asyncio as valkey
from valkey.exceptions import ValkeyError

from api.booking_rules import (
    CoworkingRules,
    grid_ceil,
    grid_floor,
    opening_intervals,
    snap_to_grid,
    subtract,
)
from api.cache import availability_version
from api.errors import InvalidQuery, NotFound
from api.services import reservation_reads
from api.services.coworkings import closures_between, coworking_row, seat_public

logger = logging.getLogger(__name__)

MAX_WINDOW_DAYS = 31
CACHE_TTL_SECONDS = 300


def _cache_key(coworking_id: UUID, version: int, query: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:32]
    return f"availability:{coworking_id}:v{version}:{digest}"


async def _cached(kv: valkey.Valkey, key: str) -> Any:
    try:
        raw = await kv.get(key)
    except ValkeyError as error:
        # a fresh answer from the database is always correct, only slower
        logger.warning("availability cache read failed: %s", type(error).__name__)
        return None
    return json.loads(raw) if raw else None


async def _store(kv: valkey.Valkey, key: str, answer: dict[str, Any]) -> None:
    try:
        await kv.set(key, json.dumps(answer), ex=CACHE_TTL_SECONDS)
    except ValkeyError as error:
        logger.warning("availability cache write failed: %s", type(error).__name__)


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


async def availability(
    pool: asyncpg.Pool,
    kv: valkey.Valkey,
    coworking_id: UUID,
    *,
    start: datetime,
    end: datetime,
    now: datetime,
    kind: str | None = None,
    features: list[str] | None = None,
    seat_id: UUID | None = None,
    shown_inactive: Callable[[], Awaitable[bool]] | None = None,
) -> dict[str, Any]:
    """`shown_inactive` says whether the viewer sees the coworking while it is
    inactive; asked only then, as it costs a query."""
    if end <= start:
        raise InvalidQuery("query.to: must be after from")
    if end - start > timedelta(days=MAX_WINDOW_DAYS):
        raise InvalidQuery(
            f"query.to: the window is at most {MAX_WINDOW_DAYS} days after from"
        )

    try:
        version = await availability_version(kv, coworking_id)
    except ValkeyError as error:
        logger.warning("availability version read failed: %s", type(error).__name__)
        version = None
    row = await coworking_row(pool, coworking_id)
    if not row["active"] and not (shown_inactive and await shown_inactive()):
        raise NotFound(f"coworking_id: no coworking {coworking_id}")
    rules = CoworkingRules.from_row(row)
    # what began before now cannot be booked; snapping keeps the cache key stable
    # for a whole slot
    begin = max(start.astimezone(UTC), grid_ceil(rules, now))
    # nothing past the booking horizon is offered, where a booking would be refused
    horizon = grid_floor(rules, now + timedelta(days=rules.max_days_ahead))
    finish = min(end.astimezone(UTC), horizon)
    query = {
        "from": _iso(begin), "to": _iso(finish), "type": kind,
        "features": sorted(set(features or [])),
        "seat": str(seat_id) if seat_id else None,
    }  # fmt: skip
    key = _cache_key(coworking_id, version, query) if version is not None else None
    if key and (hit := await _cached(kv, key)) is not None:
        return hit  # type: ignore[no-any-return]

    answer = await _compute(
        pool, rules, begin=begin, end=finish, kind=kind, features=features,
        seat_id=seat_id,
    )  # fmt: skip
    answer["from"], answer["to"] = _iso(start), _iso(end)
    if key:
        await _store(kv, key, answer)
    return answer


async def _compute(
    pool: asyncpg.Pool,
    rules: CoworkingRules,
    *,
    begin: datetime,
    end: datetime,
    kind: str | None,
    features: list[str] | None,
    seat_id: UUID | None,
) -> dict[str, Any]:
    seats = await pool.fetch(
        "SELECT id, coworking_id, number, kind, capacity, features, cost,"
        " internal_only, active, pos_x, pos_y FROM coworking.seats"
        " WHERE coworking_id = $1 AND deleted_at IS NULL AND active"
        " AND ($2::text IS NULL OR kind = $2) AND features @> $3::text[]"
        " AND ($4::uuid IS NULL OR id = $4) ORDER BY number",
        rules.id, kind, sorted(set(features or [])), seat_id,
    )  # fmt: skip
    if seat_id is not None and not seats:
        found = await pool.fetchval(
            "SELECT 1 FROM coworking.seats WHERE id = $1 AND coworking_id = $2"
            " AND deleted_at IS NULL",
            seat_id, rules.id,
        )  # fmt: skip
        if found is None:
            raise NotFound(f"seat_id: no seat {seat_id} in this coworking")
    open_spans = (
        opening_intervals(rules, begin, end) if rules.active and begin < end else []
    )
    closures = await closures_between(pool, rules.id, start=begin, end=end)
    shut = [(c.starts_at, c.ends_at) for c in closures if c.seat_id is None]
    open_spans = subtract(open_spans, shut)
    busy = await reservation_reads.busy_intervals(
        pool, seat_ids=[seat["id"] for seat in seats], start=begin, end=end
    )
    entries = []
    for seat in seats:
        holes = [(c.starts_at, c.ends_at) for c in closures if c.seat_id == seat["id"]]
        holes += busy.get(seat["id"], [])
        free = snap_to_grid(
            rules, subtract(open_spans, holes), min_minutes=rules.min_duration_minutes
        )
        public = seat_public(seat)
        entries.append({
            "seat_id": str(seat["id"]), "number": seat["number"],
            "type": public["type"],
            "features": list(seat["features"]), "internal_only": seat["internal_only"],
            "free": [{"starts_at": _iso(a), "ends_at": _iso(b)} for a, b in free],
        })  # fmt: skip
    return {
        "coworking_id": str(rules.id),
        "timezone": rules.timezone,
        "slot_minutes": rules.slot_minutes,
        "seats": entries,
    }
