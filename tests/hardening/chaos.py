"""Bookings, cancels and reschedules while the stack is broken on purpose.

    python -m tests.hardening.chaos [--bookings 500] [--kills 20] [--load-seconds 210]

Starts its own embedded stack on loopback. While the load runs it SIGKILLs
the reservation and mail workers at random moments, kills and restarts the
Temporal dev server on the same SQLite file, stops PostgreSQL (immediate
mode) for a while and stops the SMTP sink for a while. Then it checks the
promises and prints every count; the exit status is 1 when one is broken.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from activities.mail_render import message_id
from api.tokens import issue_access_token
from proto import reservation_pb2 as pb
from tests.factories import create_client, create_coworking, create_seat
from tests.hardening.invariants import violations
from tests.hardening.stack import Harness, running_stack

SLOT = timedelta(minutes=5)
REMINDER_LEAD = timedelta(minutes=1)
CLOSED = {"completed", "cancelled", "expired", "no_show"}
DOMAIN = "tlounge.local"


@dataclass
class Journal:
    """Everything the load saw and every fault it caused, with monotonic times."""

    started: float = field(default_factory=time.monotonic)
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)
    bad_answers: list[str] = field(default_factory=list)
    transport_errors: Counter[str] = field(default_factory=Counter)
    acked: dict[str, float] = field(default_factory=dict)
    booked_at: dict[str, datetime] = field(default_factory=dict)
    gave_up: int = 0
    faults: list[tuple[float, str]] = field(default_factory=list)
    mail_kills: list[float] = field(default_factory=list)
    postgres_down: list[tuple[float, float]] = field(default_factory=list)
    unexpected_exits: Counter[str] = field(default_factory=Counter)

    def now(self) -> float:
        return time.monotonic() - self.started

    def note(self, what: str) -> None:
        self.faults.append((self.now(), what))
        print(f"  [{self.now():6.1f}s] {what}", flush=True)  # noqa: T201


def _grid_ceil(instant: datetime) -> datetime:
    epoch = datetime(2000, 1, 1, tzinfo=UTC)
    return epoch - ((epoch - instant) // SLOT) * SLOT


async def _call(
    http: httpx.AsyncClient, journal: Journal, method: str, url: str, **kwargs: object
) -> httpx.Response | None:
    try:
        response = await http.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.HTTPError as error:
        journal.transport_errors[type(error).__name__] += 1
        return None
    journal.answers[(method, response.status_code)] += 1
    if response.status_code >= 500 and (
        response.status_code != 503 or "Retry-After" not in response.headers
    ):
        journal.bad_answers.append(
            f"{method} {url}: {response.status_code} {response.text[:200]}"
        )
    return response


async def _retrying(
    http: httpx.AsyncClient,
    journal: Journal,
    method: str,
    url: str,
    *,
    patience: float,
    **kwargs: object,
) -> httpx.Response | None:
    """Retry what the API said may be retried, as a well-behaved frontend does."""
    deadline = time.monotonic() + patience
    while True:
        response = await _call(http, journal, method, url, **kwargs)
        retry = response is None or response.status_code == 503
        if not retry or time.monotonic() > deadline:
            return response
        pause = (
            float(response.headers.get("Retry-After", 1))
            if response is not None
            else 1.0
        )
        await asyncio.sleep(min(pause, 3.0) * random.uniform(0.5, 1.0))


async def load(
    http: httpx.AsyncClient,
    journal: Journal,
    *,
    seats: list[uuid.UUID],
    tokens: list[str],
    bookings: int,
    seconds: float,
    concurrency: int,
) -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(bookings):
        queue.put_nowait(index)
    pace = seconds / bookings

    async def one(index: int) -> None:
        await asyncio.sleep(max(0.0, index * pace - journal.now()))
        token = random.choice(tokens)
        headers = {
            "Authorization": f"Bearer {token}",
            "Idempotency-Key": uuid.uuid4().hex,
        }
        starts_at = _grid_ceil(
            datetime.now(UTC) + timedelta(seconds=75)
        ) + SLOT * random.randint(0, 2)
        body = {
            "seat_id": str(random.choice(seats)),
            "starts_at": starts_at.isoformat(),
            "ends_at": (starts_at + SLOT * random.randint(1, 2)).isoformat(),
        }
        # the same key again after a 503 or a lost answer: at most one reservation
        response = await _retrying(
            http,
            journal,
            "POST",
            "/api/reservations",
            json=body,
            headers=headers,
            patience=60,
        )
        if response is None or response.status_code != 200:
            journal.gave_up += response is None or response.status_code == 503
            return
        reservation = response.json()["id"]
        journal.acked[reservation] = journal.now()
        journal.booked_at[reservation] = datetime.now(UTC)
        auth = {"Authorization": headers["Authorization"]}
        roll = random.random()
        if roll < 0.15:
            await asyncio.sleep(random.uniform(0, 5))
            await _retrying(http, journal, "DELETE", f"/api/reservations/{reservation}",
                            headers=auth, patience=60)  # fmt: skip
        elif roll < 0.30:
            await asyncio.sleep(random.uniform(0, 5))
            later = starts_at + SLOT * random.randint(1, 3)
            await _call(http, journal, "PATCH", f"/api/reservations/{reservation}",
                        headers=auth,
                        json={"starts_at": later.isoformat(),
                              "ends_at": (later + SLOT).isoformat()})  # fmt: skip

    async def worker() -> None:
        while not queue.empty():
            await one(queue.get_nowait())

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def faults(harness: Harness, journal: Journal, *, seconds: float, kills: int,
                 postgres_down: float, smtp_down: float) -> None:  # fmt: skip
    plan: list[tuple[float, str]] = [
        (
            random.uniform(5, seconds),
            random.choice(["reservation-worker", "mail-worker"]),
        )
        for _ in range(kills)
    ]
    plan += [
        (seconds * 0.2, "temporal"),
        (seconds * 0.4, "postgres"),
        (seconds * 0.65, "smtp"),
    ]
    sink = harness.stack.mailsink
    assert sink is not None

    async def act(at: float, what: str) -> None:
        await asyncio.sleep(max(0.0, at - journal.now()))
        if what == "postgres":
            journal.note("PostgreSQL: stop -m immediate")
            down = journal.now()
            await harness.stop_postgres()
            await asyncio.sleep(postgres_down)
            await harness.start_postgres()
            journal.postgres_down.append((down, journal.now()))
            journal.note("PostgreSQL: started again")
        elif what == "smtp":
            journal.note("SMTP sink: stopped")
            sink.stop()
            await asyncio.sleep(smtp_down)
            sink.start()
            journal.note("SMTP sink: started again")
        else:
            pause = random.uniform(0.5, 3.0) if what != "temporal" else 3.0
            await kill_and_restart(harness, journal, what, pause=pause)

    await asyncio.gather(*(act(at, what) for at, what in sorted(plan)))


async def kill_and_restart(
    harness: Harness, journal: Journal, what: str, *, pause: float
) -> None:
    # a kill planned while another of the same child is under way waits for it,
    # and its time is noted when it happens
    async with harness.hands_on(what):
        journal.note(f"{what}: SIGKILL")
        if what == "mail-worker":
            journal.mail_kills.append(journal.now())
        await harness.kill(what)
        await asyncio.sleep(pause)
        await harness.restart(what)


async def supervise(harness: Harness, journal: Journal, stop: asyncio.Event) -> None:
    """A child that dies by itself (not by our hand) is counted and replaced."""
    while not stop.is_set():
        await asyncio.sleep(1.0)
        for child in harness.stack.children:
            if await harness.replace_if_exited(child):
                journal.unexpected_exits[child.name] += 1


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def verify(harness: Harness, journal: Journal, *, grace: timedelta) -> list[str]:
    pool, broken = harness.pool, []
    now = datetime.now(UTC)
    rows = {
        str(r["id"]): r
        for r in await pool.fetch("SELECT * FROM reservation.reservations")
    }
    temporal = await Client.connect(harness.temporal_address)
    runs: dict[str, list[WorkflowExecutionStatus | None]] = defaultdict(list)
    async for execution in temporal.list_workflows(
        'WorkflowType = "ReservationWorkflow"'
    ):
        runs[execution.id.removeprefix("reservation-")].append(execution.status)

    # every acknowledged booking: one row, one workflow
    missing = [r for r in journal.acked if r not in rows]
    wrong_runs = [r for r in journal.acked if len(runs.get(r, [])) != 1]
    print(f"acknowledged bookings        {len(journal.acked)}")  # noqa: T201
    print(f"  without a row              {len(missing)}")  # noqa: T201
    print(f"  without exactly one run    {len(wrong_runs)}")  # noqa: T201
    if missing or wrong_runs:
        broken.append(f"acked bookings lost or doubled: {missing[:3]} {wrong_runs[:3]}")
    running = Counter(
        status.name
        for statuses in runs.values()
        for status in statuses
        if status is not None
    )
    print(f"workflows by status          {dict(running)}")  # noqa: T201

    # none stuck: past its end plus grace, the row and the workflow are closed
    ended = [r for r in journal.acked if r in rows and rows[r]["ends_at"] + grace < now]
    stuck = [
        r for r in ended
        if rows[r]["status"] not in CLOSED
        or runs.get(r) != [WorkflowExecutionStatus.COMPLETED]
    ]  # fmt: skip
    print(f"ended before now - grace     {len(ended)}; stuck {len(stuck)}")  # noqa: T201
    if stuck:
        first_stuck = [(r, rows[r]["status"], runs.get(r)) for r in stuck[:5]]
        broken.append(f"stuck past their end: {first_stuck}")
    failed_runs = sum(running[name] for name in ("FAILED", "TERMINATED", "TIMED_OUT"))
    if failed_runs:
        broken.append(f"{failed_runs} workflows failed, timed out or were terminated")

    # no overlaps anywhere
    found = {name: found for name, found in (await violations(pool)).items() if found}
    print(f"overlap and claim checks     {'clean' if not found else found}")  # noqa: T201
    if found:
        broken.append(f"claim invariants broken: {found}")

    # reminders: every due one delivered, a repeat only from the crash window
    sent = await pool.fetch(
        "SELECT message_id, reservation_id, version, due_at, scheduled_at, sent_at"
        " FROM notifications.sent_mail WHERE kind = 'reminder'"
    )
    recorded = {(str(r["reservation_id"]), r["version"]): r for r in sent}
    sink = harness.stack.mailsink
    assert sink is not None
    copies: dict[str, list[float]] = defaultdict(list)
    for mail in sink.received:
        copies[str(mail.message["Message-ID"]).strip()].append(mail.received_at)
    due = [
        (r, rows[r]["version"]) for r in journal.acked
        if r in rows and rows[r]["status"] != "cancelled"
        and rows[r]["starts_at"] - REMINDER_LEAD + grace < now
    ]  # fmt: skip
    undelivered = []
    for reservation, version in due:
        row = recorded.get((reservation, version))
        mid = (
            row["message_id"]
            if row
            else message_id(reservation, pb.MAIL_KIND_REMINDER, version, DOMAIN)
        )
        if row is None or not copies.get(mid.strip()):
            undelivered.append(f"{reservation} v{version} recorded={row is not None}")
    print(f"reminders due                {len(due)}; undelivered {len(undelivered)}")  # noqa: T201
    if undelivered:
        broken.append(f"due reminders not delivered: {undelivered[:5]}")
    wall = time.time() - journal.now()
    windows = [(wall + t - 10, wall + t + 1) for t in journal.mail_kills]
    windows += [(wall + a - 10, wall + b + 1) for a, b in journal.postgres_down]
    repeats = {mid: times for mid, times in copies.items() if len(times) > 1}
    outside = [
        mid for mid, times in repeats.items()
        if not any(lo <= min(times) <= hi for lo, hi in windows)
    ]  # fmt: skip
    print(
        f"mails received               {len(sink.received)} ({len(copies)} Message-IDs)"
    )  # noqa: T201
    print(
        f"  repeated Message-IDs       {len(repeats)};"
        f" outside a crash window {len(outside)}"
    )  # noqa: T201
    if outside:
        broken.append(f"repeated mails outside the crash window: {outside[:3]}")

    late = [(r["sent_at"] - r["due_at"]).total_seconds() for r in sent if r["due_at"]]
    if late:
        print(  # noqa: T201
            f"reminder lateness (s)        p50 {_percentile(late, 0.5):.1f}"
            f"  p99 {_percentile(late, 0.99):.1f}  max {max(late):.1f}  (n={len(late)})"
        )
    await temporal.service_client.check_health()
    return broken


async def main(args: argparse.Namespace) -> int:
    random.seed(args.seed)
    async with running_stack(keep=args.keep) as harness:
        pool, settings = harness.pool, harness.settings
        coworking = await create_coworking(
            pool, timezone="UTC", slot_minutes=5, min_duration_minutes=5,
            max_duration_minutes=60, max_days_ahead=2, max_active_per_client=1000,
            reminder_lead_minutes=int(REMINDER_LEAD / timedelta(minutes=1)),
        )  # fmt: skip
        seats = [
            await create_seat(pool, coworking, number=n + 1) for n in range(args.seats)
        ]
        clients = [await create_client(pool, settings) for _ in range(args.clients)]
        tokens = [
            issue_access_token(settings, kind="client", subject=c.id, role="client")
            for c in clients
        ]
        journal = Journal()
        print(f"stack up; {args.bookings} bookings over {args.load_seconds:.0f}s")  # noqa: T201
        stop = asyncio.Event()
        supervisor = asyncio.create_task(supervise(harness, journal, stop))
        limits = httpx.Limits(max_connections=args.concurrency * 2)
        async with httpx.AsyncClient(
            base_url=harness.stack.api_url, timeout=30, limits=limits
        ) as http:
            await asyncio.gather(
                load(http, journal, seats=seats, tokens=tokens, bookings=args.bookings,
                     seconds=args.load_seconds, concurrency=args.concurrency),
                faults(harness, journal, seconds=args.load_seconds, kills=args.kills,
                       postgres_down=args.postgres_down, smtp_down=args.smtp_down),
            )  # fmt: skip
        journal.note(f"load done; settling for {args.settle:.0f}s")
        await asyncio.sleep(args.settle)
        stop.set()
        await supervisor
        print(f"answers                      {dict(sorted(journal.answers.items()))}")  # noqa: T201
        print(f"transport errors             {dict(journal.transport_errors)}")  # noqa: T201
        print(f"bookings given up after 503  {journal.gave_up}")  # noqa: T201
        print(f"unexpected child exits       {dict(journal.unexpected_exits)}")  # noqa: T201
        broken = await verify(harness, journal, grace=timedelta(seconds=args.grace))
        if journal.bad_answers:
            broken.append(
                f"{len(journal.bad_answers)} 5xx without Retry-After:"
                f" {journal.bad_answers[:3]}"
            )
        if harness.child("api").restarts or journal.unexpected_exits.get("api"):
            broken.append("the API process died")
    if harness.leftovers:
        broken.append(f"processes left after the stack stopped: {harness.leftovers}")
    for line in broken:
        print(f"BROKEN: {line}")  # noqa: T201
    print("all promises kept" if not broken else f"{len(broken)} promise(s) broken")  # noqa: T201
    return 1 if broken else 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bookings", type=int, default=500)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--load-seconds", type=float, default=210)
    parser.add_argument("--postgres-down", type=float, default=30)
    parser.add_argument("--smtp-down", type=float, default=60)
    parser.add_argument("--settle", type=float, default=150)
    parser.add_argument("--grace", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seats", type=int, default=20)
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
