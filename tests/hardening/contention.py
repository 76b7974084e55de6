"""Many clients asking for one seat and slot at the same instant.

Shared by the in-suite test and its negative control. Every request waits on
one gate, so all of them are in flight together when it opens.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

import httpx

A = TypeVar("A")


async def contend(
    book: Callable[[A, datetime, datetime], Awaitable[httpx.Response]],
    accounts: Sequence[A],
    *,
    starts_at: datetime,
    ends_at: datetime,
) -> list[httpx.Response]:
    gate, all_waiting = asyncio.Event(), asyncio.Event()
    waiting = 0

    async def attempt(account: A) -> httpx.Response:
        nonlocal waiting
        waiting += 1
        if waiting == len(accounts):
            all_waiting.set()
        await gate.wait()
        return await book(account, starts_at, ends_at)

    tasks = [asyncio.create_task(attempt(account)) for account in accounts]
    await all_waiting.wait()
    gate.set()
    return list(await asyncio.gather(*tasks))


def tally(responses: Sequence[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)
