"""Load script: a mix of reads, bookings and cancels at rising open-loop rates.

    python -m tests.bench.load [--runs 3] [--rates 10,20,40,80,160] [--step 15]
                               [--max-run-seconds 240] [--quick]

Per run, the same mix is first done in plain SQL (the claim and release
transactions and an availability-like SELECT, through asyncpg), then through
the API. Each step sends `rate` requests a second for `--step` seconds; the
API steps stop once the p99 of POST /api/reservations passes the limit, at the
last rate, or when the run's time is up. The knee of a kind of request is the
highest rate whose p99 stayed under the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import asyncpg

from tests.bench.common import (
    HTTP_ERRORS,
    Figures,
    Http,
    Scene,
    availability_in_sql,
    book,
    claim_in_sql,
    http_client,
    median,
    ms,
    prepare_sql_baseline,
    release_in_sql,
    running_stack,
    seed,
    wait_for_worker,
)

KINDS = ("read", "book", "cancel")
MIX = (0.6, 0.3, 0.1)
LIMIT_MS = 200.0


@dataclasses.dataclass
class Step:
    rate: float
    figures: dict[str, Figures]

    def p99_ms(self, kind: str) -> float:
        return ms(self.figures[kind].percentile(99))

    def line(self, label: str) -> str:
        parts = [
            f"{kind} p99 {self.p99_ms(kind):7.1f} ms (n={self.figures[kind].count},"
            f" fail={self.figures[kind].failures})"
            for kind in KINDS
        ]
        return f"  {label} {self.rate:5g}/s: " + ", ".join(parts)


class Mix:
    """The three kinds of request, against the API or straight at SQL."""

    def __init__(self, scene: Scene, *, seed_value: int) -> None:
        self.scene = scene
        self.random = random.Random(seed_value)
        self.booked: list[object] = []

    def kind(self) -> str:
        return self.random.choices(KINDS, weights=MIX)[0]

    def window(self) -> tuple[datetime, datetime]:
        """One day among the first week of the booking range."""
        start = self.scene.base + timedelta(days=self.random.randrange(7))
        return start, start + timedelta(days=1)

    async def read(self) -> bool:
        raise NotImplementedError

    async def book(self) -> bool:
        raise NotImplementedError

    async def cancel(self) -> bool:
        raise NotImplementedError

    def operation(self, kind: str) -> Callable[[], Awaitable[bool]]:
        # nothing to cancel yet: book instead, so the rate holds
        if kind == "cancel" and not self.booked:
            kind = "book"
        return {"read": self.read, "book": self.book, "cancel": self.cancel}[kind]


class ApiMix(Mix):
    def __init__(self, http: Http, scene: Scene, *, seed_value: int) -> None:
        super().__init__(scene, seed_value=seed_value)
        self.http = http

    async def read(self) -> bool:
        start, end = self.window()
        response = await self.http.get(
            f"/api/coworkings/{self.scene.coworking_id}/availability",
            params={"from": start.isoformat(), "to": end.isoformat()},
        )
        return response.status_code == 200

    async def book(self) -> bool:
        number = self.scene.take(1)[0]
        reservation_id = await book(self.http, self.scene, number)
        if reservation_id is None:
            return False
        self.booked.append((reservation_id, number))
        return True

    async def cancel(self) -> bool:
        reservation_id, number = self.booked.pop(
            self.random.randrange(len(self.booked))
        )
        lane = self.scene.slot(number)[0]
        response = await self.http.delete(
            f"/api/reservations/{reservation_id}",
            headers={"Authorization": f"Bearer {self.scene.tokens[lane]}"},
        )
        return response.status_code == 204


class SqlMix(Mix):
    def __init__(self, pool: asyncpg.Pool, scene: Scene, *, seed_value: int) -> None:
        super().__init__(scene, seed_value=seed_value)
        self.pool = pool

    async def read(self) -> bool:
        start, end = self.window()
        return await availability_in_sql(self.pool, self.scene, start, end)

    async def book(self) -> bool:
        reservation_id = await claim_in_sql(
            self.pool, self.scene, self.scene.take(1)[0]
        )
        if reservation_id is None:
            return False
        self.booked.append(reservation_id)
        return True

    async def cancel(self) -> bool:
        reservation_id = self.booked.pop(self.random.randrange(len(self.booked)))
        return await release_in_sql(self.pool, reservation_id)


async def step(
    mix: Mix, *, rate: float, seconds: float, deadline_seconds: float = 30.0
) -> Step:
    """`rate` requests a second for `seconds`, each timed from when it was due."""
    figures = {kind: Figures() for kind in KINDS}
    count = max(1, round(rate * seconds))
    began = time.perf_counter()

    async def timed(kind: str, due: float) -> None:
        operation = mix.operation(kind)
        try:
            ok = await asyncio.wait_for(operation(), deadline_seconds)
        except (TimeoutError, *HTTP_ERRORS):
            ok = False
        if ok:
            figures[kind].latencies.append(time.perf_counter() - due)
        else:
            figures[kind].failures += 1

    tasks = []
    for number in range(count):
        due = began + number / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(mix.kind(), due)))
    await asyncio.gather(*tasks)
    for kind in KINDS:
        figures[kind].elapsed = time.perf_counter() - began
    return Step(rate, figures)


async def ramp(
    mix: Mix, *, label: str, rates: list[float], seconds: float, budget: float
) -> list[Step]:
    """Rising rates until bookings pass the limit, the rates run out, or time is up."""
    steps: list[Step] = []
    deadline = time.monotonic() + budget
    # a second at the first rate, not counted: connections, plans and caches
    await step(mix, rate=rates[0], seconds=1)
    for rate in rates:
        if time.monotonic() + seconds > deadline:
            print(f"  {label}: out of time before {rate:g}/s", flush=True)
            break
        result = await step(mix, rate=rate, seconds=seconds)
        steps.append(result)
        print(result.line(label), flush=True)
        if result.p99_ms("book") > LIMIT_MS:
            break
    return steps


def knee(steps: list[Step], kind: str) -> tuple[float, bool]:
    """The highest rate whose p99 stayed under the limit; whether it was passed."""
    best, passed = 0.0, False
    for result in steps:
        if result.figures[kind].count and result.p99_ms(kind) <= LIMIT_MS:
            best = max(best, result.rate) if not passed else best
        else:
            passed = True
    return best, passed


def shown(value: float, passed: bool) -> str:
    return f"{value:g}/s" if passed else f">= {value:g}/s"


async def main(args: argparse.Namespace) -> int:
    rates = [float(rate) for rate in args.rates.split(",")]
    knees: dict[str, list[tuple[float, bool]]] = {
        f"{side} {kind}": [] for side in ("API", "SQL") for kind in ("book", "read")
    }
    began = time.monotonic()
    async with running_stack() as running:
        await prepare_sql_baseline(running.pool)
        async with http_client(running.stack.api_url, concurrency=200) as http:
            for index in range(args.runs):
                print(f"run {index + 1}/{args.runs}", flush=True)
                scene = await seed(running.pool, running.settings, seats=args.seats)
                await wait_for_worker(http, scene)
                sql_scene = dataclasses.replace(scene, next_number=0)
                sql_steps = await ramp(
                    SqlMix(running.pool, sql_scene, seed_value=index), label="SQL",
                    rates=rates, seconds=args.sql_step, budget=args.max_run_seconds,
                )  # fmt: skip
                api_steps = await ramp(
                    ApiMix(http, scene, seed_value=index), label="API",
                    rates=rates, seconds=args.step, budget=args.max_run_seconds,
                )  # fmt: skip
                for side, steps in (("API", api_steps), ("SQL", sql_steps)):
                    for kind in ("book", "read"):
                        knees[f"{side} {kind}"].append(knee(steps, kind))
    print(
        f"\nKnees: the highest rate with p99 <= {LIMIT_MS:g} ms,"
        f" median of {args.runs} run(s)"
    )
    print(
        "(the mix: 60% availability reads, 30% bookings, 10% cancels;"
        " '>=': never passed)"
    )
    for name, values in knees.items():
        value = median([rate for rate, _ in values])
        passed = any(hit for _, hit in values)
        each = ", ".join(shown(rate, hit) for rate, hit in values)
        print(f"  {name:<9} {shown(value, passed):>10}   runs: {each}")
    print(f"(took {time.monotonic() - began:.0f} s)")
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.load")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rates", default="10,20,40,80,160")
    parser.add_argument("--step", type=float, default=15.0, help="seconds per API step")
    parser.add_argument(
        "--sql-step", type=float, default=5.0, help="seconds per SQL step"
    )
    parser.add_argument("--max-run-seconds", type=float, default=240.0)
    parser.add_argument("--seats", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="one short run")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.step, args.sql_step, args.max_run_seconds = 1, 5.0, 2.0, 60.0
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
