"""Many clients asking for one seat and slot at the same instant.

Shared by the in-suite test and its negative control. Every request waits on
one gate, so all of them are in flight together when it opens. Run as a
script, it does the full rounds against the real stack over HTTP:

    python -m tests.hardening.contention [--rounds 20] [--clients 100]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
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


async def main(args: argparse.Namespace) -> int:
    from api.tokens import issue_access_token
    from tests.factories import create_client, create_coworking, create_seat
    from tests.hardening.invariants import violations
    from tests.hardening.stack import running_stack

    broken = 0
    async with running_stack() as harness:
        pool, settings = harness.pool, harness.settings
        coworking = await create_coworking(
            pool,
            timezone="UTC",
            max_days_ahead=30,
            max_active_per_client=args.rounds + 5,
        )
        seat = await create_seat(pool, coworking)
        accounts = [
            issue_access_token(settings, kind="client", subject=c.id, role="client")
            for c in [await create_client(pool, settings) for _ in range(args.clients)]
        ]
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        limits = httpx.Limits(max_connections=args.clients)
        async with httpx.AsyncClient(
            base_url=harness.stack.api_url, timeout=60, limits=limits
        ) as http:

            async def book(token: str, starts_at: datetime, ends_at: datetime):
                return await http.post(
                    "/api/reservations",
                    json={"seat_id": str(seat), "starts_at": starts_at.isoformat(),
                          "ends_at": ends_at.isoformat()},
                    headers={"Authorization": f"Bearer {token}"},
                )  # fmt: skip

            took = []
            for round_ in range(args.rounds):
                starts_at = today + timedelta(days=2, hours=round_)
                began = time.monotonic()
                codes = tally(
                    await contend(
                        book,
                        accounts,
                        starts_at=starts_at,
                        ends_at=starts_at + timedelta(hours=1),
                    )  # fmt: skip
                )
                took.append(time.monotonic() - began)
                ok = codes == {200: 1, 409: args.clients - 1}
                broken += not ok
                print(f"round {round_ + 1:2d}: {dict(codes)} in {took[-1]:.2f}s")  # noqa: T201
        found = {name: rows for name, rows in (await violations(pool)).items() if rows}
        rows = await pool.fetchval(
            "SELECT count(*) FROM reservation.reservations WHERE seat_id = $1", seat
        )
    print(  # noqa: T201
        f"{args.rounds} rounds of {args.clients}: {broken} broken, {rows} reservations,"
        f" round median {statistics.median(took):.2f}s max {max(took):.2f}s,"
        f" checks {'clean' if not found else found}"
    )
    return 1 if broken or found or rows != args.rounds else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="one seat, many clients, same instant")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--clients", type=int, default=100)
    sys.exit(asyncio.run(main(parser.parse_args())))
