"""Fixed-window attempt counters in Valkey, per client address and per account.

Sign-in, registration and password changes pass here before any password is
hashed, so a flood costs us a Valkey round trip, not an argon2 run. A
client's bookings, moves and cancels pass here before Temporal is asked.
"""

from __future__ import annotations

import hashlib

import valkey.asyncio as valkey

from api.errors import RateLimited
from api.sessions import valkey_or_503
from api.settings import Settings


def _account_key(action: str, account: str, address: str | None = None) -> str:
    # hashed, so the counters keep no email address in the cache
    digest = hashlib.sha256(account.encode()).hexdigest()[:32]
    key = f"ratelimit:{action}:account:{digest}"
    return key if address is None else f"{key}:address:{address}"


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
    """Count one attempt; past any limit, 429 with the seconds left in the window.

    An account's attempts count per address and, more loosely, all together,
    so that one address guessing at an account locks out only itself.
    """
    window = settings.auth_rate_window_seconds
    if not address:
        limits = {_account_key(action, account): settings.auth_rate_per_account}
        await _count_against(kv, limits, window)
        return
    await _count_against(
        kv,
        {
            _account_key(action, account, address): settings.auth_rate_per_account,
            _address_key(action, address): settings.auth_rate_per_address,
        },
        window,
    )
    # only an attempt its own address was allowed counts towards the account's
    # total, or one address refused again and again would fill it alone
    await _count_against(
        kv,
        {_account_key(action, account): settings.auth_rate_per_account_total},
        window,
    )


BOOKING_WINDOW_SECONDS = 60


async def enforce_booking_rate(
    settings: Settings, kv: valkey.Valkey, client_id: object
) -> None:
    """Count one reservation write of a client; past the limit, 429."""
    await _count_against(
        kv,
        {f"ratelimit:booking:client:{client_id}": settings.booking_rate_per_client},
        BOOKING_WINDOW_SECONDS,
    )


async def _count_against(
    kv: valkey.Valkey, limits: dict[str, int], window: int
) -> None:
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
