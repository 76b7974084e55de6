"""Reservation activities that fail part-way do their whole work on the retry."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import valkey.asyncio as valkey
from valkey.exceptions import ConnectionError as ValkeyConnectionError

from activities.reservation import ReservationActivities
from api.cache import availability_version
from api.devstack import free_port
from api.settings import Settings
from proto import reservation_pb2 as pb
from tests.factories import create_client, create_coworking, create_seat


async def test_claim_retried_after_valkey_failed_still_retires_cached_answers(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    coworking = await create_coworking(db)
    request = pb.ClaimInput(
        reservation_id=str(uuid.uuid4()),
        client_id=str((await create_client(db, settings)).id),
        seat_id=str(await create_seat(db, coworking)),
        version=1,
    )
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    request.now.FromDatetime(now)
    request.starts_at.FromDatetime(now + timedelta(days=1))
    request.ends_at.FromDatetime(now + timedelta(days=1, minutes=30))
    down = valkey.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1
    )
    before = await availability_version(kv, coworking)

    # the claim commits, then the cache cannot be told
    with pytest.raises(ValkeyConnectionError):
        await ReservationActivities(db, down).claim_seat(request)
    await down.aclose()
    result = await ReservationActivities(db, kv).claim_seat(request)

    assert result.outcome == pb.HOLD_OUTCOME_HELD
    assert (
        await db.fetchval(
            "SELECT count(*) FROM reservation.reservations WHERE id = $1",
            uuid.UUID(request.reservation_id),
        )
        == 1
    )
    assert await availability_version(kv, coworking) == before + 1
