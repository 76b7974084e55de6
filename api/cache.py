"""Availability cache invalidation, shared by the API and the reservation worker.

Cached answers are keyed by a per-coworking version; any change to what can be
booked bumps it before the change is acknowledged, so no reader sees a stale one.
"""

from __future__ import annotations

import uuid

import valkey.asyncio as valkey


def availability_version_key(coworking_id: uuid.UUID) -> str:
    return f"availability:version:{coworking_id}"


async def availability_version(client: valkey.Valkey, coworking_id: uuid.UUID) -> int:
    value = await client.get(availability_version_key(coworking_id))
    return int(value or 0)


async def invalidate_availability(
    client: valkey.Valkey, coworking_id: uuid.UUID
) -> None:
    await client.incr(availability_version_key(coworking_id))
