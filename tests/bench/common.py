"""What the benchmarks share: a private stack, seeded rows, load loops, figures.

Everything runs on loopback against processes started here, under a temporary
folder that is removed on the way out. Loops are bounded by count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import httpx

from api.devstack import Stack, free_port
from api.settings import Settings
from api.tokens import issue_access_token

# An operation returns True when the server answered as expected.
Operation = Callable[[int], Awaitable[bool]]
SLOT = timedelta(hours=1)


@dataclass
class Figures:
    """Latencies in seconds of one batch, and how long the batch took."""

    latencies: list[float] = field(default_factory=list)
    failures: int = 0
    elapsed: float = 0.0

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed > 0 else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
        return ordered[index]

    def line(self, label: str) -> str:
        return (
            f"{label:<28} n={self.count:<5} fail={self.failures:<3}"
            f" {self.rate:7.1f}/s  p50 {ms(self.percentile(50)):7.1f} ms"
            f"  p95 {ms(self.percentile(95)):7.1f} ms"
            f"  p99 {ms(self.percentile(99)):7.1f} ms"
        )


def ms(seconds: float) -> float:
    return seconds * 1000


def median(values: list[float]) -> float:
    clean = [value for value in values if value == value]
    return statistics.median(clean) if clean else float("nan")


async def closed_loop(operation: Operation, *, count: int, concurrency: int) -> Figures:
    """`count` operations, `concurrency` at a time, each started when one ends."""
    figures = Figures()
    numbers = iter(range(count))

    async def lane() -> None:
        for number in numbers:
            began = time.perf_counter()
            ok = await operation(number)
            if ok:
                figures.latencies.append(time.perf_counter() - began)
            else:
                figures.failures += 1

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    figures.elapsed = time.perf_counter() - began
    return figures


async def open_loop(
    operation: Operation, *, rate: float, count: int, deadline_seconds: float = 30.0
) -> Figures:
    """`count` operations started at a fixed rate, whether or not earlier ones are done.

    A latency counts from the instant its operation was due, so a stalled
    server shows as latency and is not hidden by a late start.
    """
    figures = Figures()
    began = time.perf_counter()

    async def timed(number: int, due: float) -> None:
        try:
            ok = await asyncio.wait_for(operation(number), deadline_seconds)
        except TimeoutError:
            ok = False
        if ok:
            figures.latencies.append(time.perf_counter() - due)
        else:
            figures.failures += 1

    tasks = []
    for number in range(count):
        due = began + number / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(number, due)))
    await asyncio.gather(*tasks)
    figures.elapsed = time.perf_counter() - began
    return figures


@dataclass
class Scene:
    """One round-the-clock coworking, its seats and clients, and their tokens."""

    coworking_id: uuid.UUID
    seat_ids: list[uuid.UUID]
    client_ids: list[uuid.UUID]
    tokens: list[str]
    base: datetime
    next_number: int = 0

    def take(self, count: int) -> range:
        """Booking numbers never used before in this scene."""
        first = self.next_number
        self.next_number += count
        return range(first, first + count)

    def slot(self, number: int) -> tuple[int, datetime, datetime]:
        """Booking `number`: lane (seat and client), start and end; all distinct."""
        row, lane = divmod(number, len(self.seat_ids))
        starts_at = self.base + SLOT * row
        return lane, starts_at, starts_at + SLOT


async def seed(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    seats: int,
    days_ahead: int = 2,
    now: datetime | None = None,
) -> Scene:
    """A coworking with `seats` seats and as many clients; seat i goes to client i.

    Booking n takes lane n mod seats and the hour n div seats after the base,
    so no two bookings share a seat's or a client's hour.
    """
    coworking_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO coworking.coworkings (id, name, address, city, timezone,"
        " max_days_ahead, max_active_per_client)"
        " VALUES ($1, $2, 'Bench Street 1', 'Benchville', 'UTC', 1000, 100000)",
        coworking_id, f"Bench {coworking_id.hex[:6]}",
    )  # fmt: skip
    seat_ids = [uuid.uuid4() for _ in range(seats)]
    await pool.executemany(
        "INSERT INTO coworking.seats (id, coworking_id, number, kind, cost)"
        " VALUES ($1, $2, $3, 'OpenSpace', 100)",
        [(seat_id, coworking_id, index + 1) for index, seat_id in enumerate(seat_ids)],
    )
    client_ids = [uuid.uuid4() for _ in range(seats)]
    # nobody signs in: the hash only has to be present
    await pool.executemany(
        "INSERT INTO client.clients (id, email, email_key, password_hash, name,"
        " surname, patronymic, send_notifications)"
        " VALUES ($1, $2, $2, 'x', 'Bench', $3, '', true)",
        [
            (cid, f"bench-{cid.hex}@example.com", str(i))
            for i, cid in enumerate(client_ids)
        ],
    )
    tokens = [
        issue_access_token(settings, kind="client", subject=cid, role="client")
        for cid in client_ids
    ]
    day = (
        (now or datetime.now(UTC))
        .astimezone(UTC)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )
    base = day + timedelta(days=days_ahead)
    return Scene(coworking_id, seat_ids, client_ids, tokens, base)


async def book(http: Http, scene: Scene, number: int) -> str | None:
    """POST /api/reservations for booking `number`; the reservation id, or None."""
    lane, starts_at, ends_at = scene.slot(number)
    response = await http.post(
        "/api/reservations",
        json={
            "seat_id": str(scene.seat_ids[lane]),
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
        headers={"Authorization": f"Bearer {scene.tokens[lane]}"},
    )
    if response.status_code != 200:
        return None
    return str(response.json()["id"])


def booking_operation(http: Http, scene: Scene, numbers: range) -> Operation:
    async def operation(index: int) -> bool:
        return await book(http, scene, numbers[index]) is not None

    return operation


# The claim transaction, straight to SQL, on copies of the reservation tables.

BASELINE_SCHEMA = "bench"


async def prepare_sql_baseline(pool: asyncpg.Pool) -> None:
    await pool.execute(f"CREATE SCHEMA IF NOT EXISTS {BASELINE_SCHEMA}")
    for table in ("reservations", "seat_claims", "client_claims"):
        await pool.execute(
            f"CREATE TABLE IF NOT EXISTS {BASELINE_SCHEMA}.{table}"
            f" (LIKE reservation.{table} INCLUDING ALL)"
        )


def grains_of(starts_at: datetime, ends_at: datetime) -> list[datetime]:
    from activities.reservation import grains

    return grains(starts_at, ends_at)


async def claim_in_sql(
    pool: asyncpg.Pool, scene: Scene, number: int
) -> uuid.UUID | None:
    """The claim transaction's writes: the reservation row and both sets of claims."""
    reservation_id = uuid.uuid4()
    lane, starts_at, ends_at = scene.slot(number)
    seat_id, client_id = scene.seat_ids[lane], scene.client_ids[lane]
    slots = grains_of(starts_at, ends_at)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f"INSERT INTO {BASELINE_SCHEMA}.reservations (id, client_id, seat_id,"
            " coworking_id, starts_at, ends_at, status, version)"
            " VALUES ($1,$2,$3,$4,$5,$6,'confirmed',1)",
            reservation_id, client_id, seat_id, scene.coworking_id, starts_at, ends_at,
        )  # fmt: skip
        inserted = 0
        for table, column, owner in (
            ("seat_claims", "seat_id", seat_id),
            ("client_claims", "client_id", client_id),
        ):
            inserted += await conn.fetchval(
                f"WITH ins AS (INSERT INTO {BASELINE_SCHEMA}.{table}"
                f" ({column}, slot_start, reservation_id)"
                " SELECT $1, slot, $3 FROM unnest($2::timestamptz[]) AS slot"
                " ON CONFLICT DO NOTHING RETURNING 1) SELECT count(*) FROM ins",
                owner, slots, reservation_id,
            )  # fmt: skip
    return reservation_id if inserted == 2 * len(slots) else None


async def release_in_sql(pool: asyncpg.Pool, reservation_id: uuid.UUID) -> bool:
    """The release transaction's writes: the status and both sets of claims."""
    async with pool.acquire() as conn, conn.transaction():
        outcome = await conn.execute(
            f"UPDATE {BASELINE_SCHEMA}.reservations SET status = 'cancelled',"
            " updated_at = now() WHERE id = $1",
            reservation_id,
        )
        for table in ("seat_claims", "client_claims"):
            await conn.execute(
                f"DELETE FROM {BASELINE_SCHEMA}.{table} WHERE reservation_id = $1",
                reservation_id,
            )
    return outcome.endswith(" 1")


async def availability_in_sql(
    pool: asyncpg.Pool, scene: Scene, start: datetime, end: datetime
) -> bool:
    """What an availability answer reads: the seats, then their busy intervals."""
    seats = await pool.fetch(
        "SELECT id, number, kind, features FROM coworking.seats"
        " WHERE coworking_id = $1 AND deleted_at IS NULL AND active ORDER BY number",
        scene.coworking_id,
    )
    await pool.fetch(
        f"SELECT seat_id, starts_at, ends_at FROM {BASELINE_SCHEMA}.reservations"
        " WHERE seat_id = ANY($1::uuid[]) AND status = ANY($2::text[])"
        " AND starts_at < $4 AND ends_at > $3 ORDER BY seat_id, starts_at",
        [seat["id"] for seat in seats], ["held", "confirmed", "checked_in"], start, end,
    )  # fmt: skip
    return len(seats) == len(scene.seat_ids)


def sql_operation(pool: asyncpg.Pool, scene: Scene, numbers: range) -> Operation:
    async def operation(index: int) -> bool:
        return await claim_in_sql(pool, scene, numbers[index]) is not None

    return operation


# A private stack.


def scrub_environment() -> None:
    """Our children inherit the environment: no outside TLOUNGE_* may steer them."""
    for name in [name for name in os.environ if name.startswith("TLOUNGE_")]:
        del os.environ[name]


def bench_settings(data_dir: Path) -> Settings:
    return Settings(
        env="dev",
        data_dir=data_dir,
        api_host="127.0.0.1",
        api_port=free_port(),
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        valkey_port=free_port(),
        smtp_port=free_port(),
        database_url=None,
        valkey_url=None,
        smtp_host=None,
        temporal_address=None,
        # the runs measure the stack, not the per-client abuse limits
        booking_rate_per_client=1_000_000,
        mail_recipient_limit=0,
    )


@dataclass
class Running:
    stack: Stack
    settings: Settings
    pool: asyncpg.Pool

    @property
    def dsn(self) -> str:
        return self.stack.env["TLOUNGE_DATABASE_URL"]

    @property
    def temporal_address(self) -> str:
        return self.stack.env["TLOUNGE_TEMPORAL_ADDRESS"]

    def child_pid(self, name: str) -> int:
        child = next(child for child in self.stack.children if child.name == name)
        assert child.process is not None
        return child.process.pid

    async def restart_child(self, name: str, **env: str) -> None:
        """Restart one child with extra environment variables."""
        child = next(child for child in self.stack.children if child.name == name)
        await child.stop()
        child.env = {**child.env, **env}
        await child.start()


@contextlib.asynccontextmanager
async def running_stack(*, keep: bool = False) -> AsyncIterator[Running]:
    """The embedded stack on free loopback ports in a temporary folder."""
    scrub_environment()
    data_dir = Path(tempfile.mkdtemp(prefix="tlounge-bench-"))
    stack = Stack(bench_settings(data_dir), temporal_ui=False, load_demo=False)
    pool = None
    try:
        await stack.start()
        secret = stack.env["TLOUNGE_JWT_SECRET"]
        settings = Settings(**{**stack.settings.model_dump(), "jwt_secret": secret})
        pool = await asyncpg.create_pool(
            stack.env["TLOUNGE_DATABASE_URL"], min_size=2, max_size=40
        )
        assert pool is not None
        yield Running(stack, settings, pool)
    finally:
        if pool is not None:
            await pool.close()
        await stack.stop()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


async def wait_for_worker(http: Http, scene: Scene, *, seconds: float = 60) -> None:
    """Book until the reservation worker answers (it starts after the API)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        number = scene.take(1)[0]
        with contextlib.suppress(*HTTP_ERRORS):
            if await book(http, scene, number) is not None:
                return
        await asyncio.sleep(0.5)
    raise RuntimeError("the reservation worker did not answer a booking in time")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


# What a failed request raises, from either client the loops are given.
HTTP_ERRORS = (httpx.HTTPError, aiohttp.ClientError)


@dataclass
class Answer:
    status_code: int
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode()


class LoadClient:
    """The part of httpx's client the loops use, on aiohttp.

    The load generator shares two cores with the stack it measures: httpx spent
    1.6 ms of CPU a request against a bare ASGI app on loopback, aiohttp 0.1.
    The suite's smoke tests hand the loops an in-process httpx client instead.
    """

    def __init__(self, base_url: str, *, concurrency: int) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=concurrency + 10),
            timeout=aiohttp.ClientTimeout(total=60),
        )

    async def request(self, method: str, url: str, **options: Any) -> Answer:
        if not url.startswith("http"):
            url = self.base_url + url
        async with self.session.request(method, url, **options) as response:
            return Answer(response.status, await response.read())

    async def get(self, url: str, **options: Any) -> Answer:
        return await self.request("GET", url, **options)

    async def post(self, url: str, **options: Any) -> Answer:
        return await self.request("POST", url, **options)

    async def delete(self, url: str, **options: Any) -> Answer:
        return await self.request("DELETE", url, **options)

    async def __aenter__(self) -> LoadClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.close()


# the loops take either: the benchmarks' own, or the suite's in-process httpx client
Http = httpx.AsyncClient | LoadClient


def http_client(base_url: str, *, concurrency: int) -> LoadClient:
    return LoadClient(base_url, concurrency=concurrency)


def _cpu_of(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime, the 14th and 15th fields of the line
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_of(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[1]) == parent:
                    found.append(int(entry.name))
    return found


def cpu_by_process(running: Running) -> dict[str, float]:
    """CPU seconds used so far by each process of the stack, and by this one."""
    used = {"bench client": _cpu_of(os.getpid())}
    for child in running.stack.children:
        if child.process is not None and child.process.returncode is None:
            with contextlib.suppress(OSError):
                used[child.name] = _cpu_of(child.process.pid)
    pidfile = running.stack.data_dir / "postgres" / "postmaster.pid"
    with contextlib.suppress(OSError, ValueError):
        postmaster = int(pidfile.read_text().split()[0])
        total = _cpu_of(postmaster)
        for pid in _children_of(postmaster):
            with contextlib.suppress(OSError):
                total += _cpu_of(pid)
        used["postgres"] = total
    return used


def cpu_line(before: dict[str, float], after: dict[str, float], count: int) -> str:
    """CPU milliseconds per operation, by process."""
    parts = [
        f"{name} {1000 * (after[name] - before.get(name, 0.0)) / max(count, 1):.1f}"
        for name in after
        if after[name] - before.get(name, 0.0) > 0
    ]
    return "    CPU ms/op: " + ", ".join(parts)
