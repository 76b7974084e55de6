"""Fixed-window attempt counters in Valkey, per client address and per account.

Sign-in, registration and password changes pass here before any password is
hashed, so a flood costs us a Valkey round trip, not an argon2 run.
"""

from __future__ import annotations

import hashlib

import valkey.asyncio as valkey

from api.errors import RateLimited
from api.sessions import valkey_or_503
from api.settings import Settings


def _account_key(action: str, account: str) -> str:
    # hashed, so the counters keep no email address in the cache
    digest = hashlib.sha256(account.encode()).hexdigest()[:32]
    return f"ratelimit:{action}:account:{digest}"


def _address_key(action: str, address: str) -> str:
    return f"ratelimit:{action}:address:{address}"


async def enforce(
    settings: Settings,
    kv: valkey.Valkey,
    *,
    action: str,
    address: str | None,
    account: str,
) -> None:
    """Count one attempt; past either limit, 429 with the seconds left in the window."""
    window = settings.auth_rate_window_seconds
    limits = {_account_key(action, account): settings.auth_rate_per_account}
    if address:
        limits[_address_key(action, address)] = settings.auth_rate_per_address

    async def _count() -> list[int]:
        # one MULTI: each counter is bumped and given its window atomically
        async with kv.pipeline(transaction=True) as pipe:
            for key in limits:
                pipe.incr(key)
                pipe.expire(key, window, nx=True)
                pipe.ttl(key)
            return list(await pipe.execute())

    replies = await valkey_or_503(_count)
    waits = [
        int(ttl) if ttl > 0 else window
        for (key, limit), count, ttl in zip(
            limits.items(), replies[0::3], replies[2::3], strict=True
        )
        if count > limit
    ]
    if waits:
        raise RateLimited(max(waits))
