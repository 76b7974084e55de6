"""Booking benchmark: POST /api/reservations against the embedded stack.

    python -m tests.bench.booking [--runs 3] [--count 600] [--concurrency 20]
                                  [--rate 30] [--sleeping 10000] [--quick] [--strict]

Starts its own stack on free loopback ports, seeds a coworking, then per run:
the claim transaction straight to SQL, a bare workflow on the same Temporal
server, the real booking (closed loop), and the real booking at a fixed rate.
Then it books until `--sleeping` reservations sleep until their reminders and
reads the reservation worker's resident memory on the way. Figures are
medians over the runs; targets are reported, and enforced only with --strict.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import sys
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path

from temporalio.client import Client

from api.devstack import Child, free_port
from tests.bench import bare
from tests.bench.common import (
    HTTP_ERRORS,
    Figures,
    Http,
    Running,
    Scene,
    booking_operation,
    closed_loop,
    cpu_by_process,
    cpu_line,
    http_client,
    median,
    ms,
    open_loop,
    prepare_sql_baseline,
    rss_mb,
    running_stack,
    seed,
    sql_operation,
    wait_for_worker,
)

ROOT = Path(__file__).resolve().parents[2]
WORKER = "reservation-worker"
# "clearly missed": a shared machine's noise is not a regression
STRICT_MARGIN = 0.10


@dataclasses.dataclass
class Targets:
    min_rate: float = 40.0
    min_ratio_to_bare: float = 0.9
    max_p99_fixed_ms: float = 150.0
    max_worker_rss_mb: float = 250.0


@dataclasses.dataclass
class Results:
    sql: list[Figures] = dataclasses.field(default_factory=list)
    bare: list[Figures] = dataclasses.field(default_factory=list)
    mailing: list[Figures] = dataclasses.field(default_factory=list)
    labelled: list[Figures] = dataclasses.field(default_factory=list)
    api: list[Figures] = dataclasses.field(default_factory=list)
    fixed: list[Figures] = dataclasses.field(default_factory=list)
    mailing_fixed: list[Figures] = dataclasses.field(default_factory=list)
    memory: list[tuple[int, float, float | None]] = dataclasses.field(
        default_factory=list
    )

    def rate(self, name: str) -> float:
        return median([figures.rate for figures in getattr(self, name)])

    def p(self, name: str, q: float) -> float:
        return median([figures.percentile(q) for figures in getattr(self, name)])


async def bare_worker(running: Running, task_queue: str) -> None:
    """The baseline's worker, a child of the stack so that it stops with it."""
    env = {**running.stack.env, "PYTHONPATH": str(ROOT)}
    child = Child(
        "bench-bare-worker",
        [
            sys.executable,
            "-m",
            "tests.bench.bare",
            running.temporal_address,
            task_queue,
        ],
        env,
        running.stack.data_dir / "logs" / "bench-bare-worker.log",
        restart=False,
    )
    await child.start()
    running.stack.children.append(child)


def bare_operation(  # noqa: ANN201
    client: Client, task_queue: str, *, mailing: bool = False, labelled: bool = False
):
    async def operation(index: int) -> bool:
        started = await bare.start_bare(
            client, task_queue, mailing=mailing, labelled=labelled
        )
        return started is not None

    return operation


async def sticky_cache_size(http: Http, url: str | None) -> float | None:
    """The worker's workflow cache fill, from the SDK's metrics, if exported."""
    if url is None:
        return None
    with contextlib.suppress(*HTTP_ERRORS):
        text = (await http.get(url)).text
        for line in text.splitlines():
            if line.startswith("temporal_sticky_cache_size"):
                return float(line.rsplit(" ", 1)[1])
    return None


async def collector_passes(http: Http, url: str | None) -> dict[float, float]:
    """A process's collector passes, all generations: how many took at most
    each bucket's bound in seconds (+inf: all of them)."""
    counts: dict[float, float] = {}
    if url is None:
        return counts
    with contextlib.suppress(*HTTP_ERRORS):
        for line in (await http.get(url)).text.splitlines():
            if line.startswith("tlounge_gc_pause_seconds_bucket{"):
                bound = float(line.split('le="', 1)[1].split('"', 1)[0])
                counts[bound] = counts.get(bound, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def pauses_line(
    process: str, before: dict[float, float], after: dict[float, float]
) -> str:
    """How many passes the phase had, how many over 50 ms, and the longest's bound."""
    passes = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
    if not passes:
        return f"    collector passes in the {process}: n/a"
    total = passes[float("inf")]
    over = total - passes.get(0.05, 0.0)
    longest = min(
        (bound for bound, count in passes.items() if count >= total),
        default=float("inf"),
    )
    shown = "over 500" if longest == float("inf") else f"at most {ms(longest):g}"
    return (
        f"    collector passes in the {process}: {total:.0f},"
        f" {over:.0f} over 50 ms, the longest {shown} ms"
    )


async def settled(
    running: Running,
    *,
    idle_cores: float = 0.15,
    window: float = 0.5,
    limit: float = 60.0,
) -> None:
    """Wait until the stack is nearly idle.

    A phase leaves work behind it (its mails, the workflow tasks they wake):
    waiting for it counts that work in the phase's CPU figures and keeps it
    out of the next phase's latencies.
    """  # fmt: skip
    deadline = time.monotonic() + limit
    last = sum(cpu_by_process(running).values())
    while time.monotonic() < deadline:
        await asyncio.sleep(window)
        used = sum(cpu_by_process(running).values())
        if (used - last) / window < idle_cores:
            return
        last = used


async def measured(
    running: Running,
    label: str,
    phase: Awaitable[Figures],
    into: list[Figures],
    *,
    http: Http,
    gc_urls: dict[str, str],
) -> None:
    await settled(running)
    before = cpu_by_process(running)
    passes = {name: await collector_passes(http, url) for name, url in gc_urls.items()}
    figures = await phase
    into.append(figures)
    print(figures.line(f"  {label}"), flush=True)
    if "POST" in label:
        for name, url in gc_urls.items():
            print(pauses_line(name, passes[name], await collector_passes(http, url)))
    await settled(running)
    print(cpu_line(before, cpu_by_process(running), figures.count + figures.failures))


async def one_run(
    *,
    http: Http,
    client: Client,
    running: Running,
    scene: Scene,
    sql_scene: Scene,
    task_queue: str,
    count: int,
    concurrency: int,
    rate: float,
    fixed_count: int,
    results: Results,
    gc_urls: dict[str, str],
) -> None:
    """Each measurement of one run, its baselines first, each from a quiet stack."""
    phases = [
        ("SQL claim transaction", results.sql, closed_loop(
            sql_operation(running.pool, sql_scene, sql_scene.take(count)),
            count=count, concurrency=concurrency,
        )),
        ("bare workflow", results.bare, closed_loop(
            bare_operation(client, task_queue), count=count, concurrency=concurrency
        )),
        ("bare workflow + activity", results.mailing, closed_loop(
            bare_operation(client, task_queue, mailing=True),
            count=count, concurrency=concurrency,
        )),
        ("bare + activity + attributes", results.labelled, closed_loop(
            bare_operation(client, task_queue, mailing=True, labelled=True),
            count=count, concurrency=concurrency,
        )),
        ("POST /api/reservations", results.api, closed_loop(
            booking_operation(http, scene, scene.take(count)),
            count=count, concurrency=concurrency,
        )),
        (f"bare + activity at {rate:g}/s", results.mailing_fixed, open_loop(
            bare_operation(client, task_queue, mailing=True),
            rate=rate, count=fixed_count,
        )),
        (f"POST at {rate:g}/s", results.fixed, open_loop(
            booking_operation(http, scene, scene.take(fixed_count)),
            rate=rate, count=fixed_count,
        )),
    ]  # fmt: skip
    for label, into, phase in phases:
        await measured(running, label, phase, into, http=http, gc_urls=gc_urls)


async def fill_to(http: Http, scene: Scene, *, total: int, concurrency: int) -> int:
    """Book until `total` reservations exist in the scene; returns how many failed."""
    missing = total - scene.next_number
    if missing <= 0:
        return 0
    figures = await closed_loop(
        booking_operation(http, scene, scene.take(missing)),
        count=missing, concurrency=concurrency,
    )  # fmt: skip
    return figures.failures


async def measure_memory(
    *,
    http: Http,
    running: Running,
    scene: Scene,
    checkpoints: list[int],
    concurrency: int,
    metrics_url: str | None,
    results: Results,
    settle: float = 3.0,
) -> None:
    pid = running.child_pid(WORKER)
    for checkpoint in checkpoints:
        failed = await fill_to(http, scene, total=checkpoint, concurrency=concurrency)
        await asyncio.sleep(settle)
        sleeping = await running.pool.fetchval(
            "SELECT count(*) FROM reservation.reservations WHERE status = 'confirmed'"
        )
        memory = rss_mb(pid)
        cached = await sticky_cache_size(http, metrics_url)
        results.memory.append((sleeping, memory, cached))
        shown = "n/a" if cached is None else f"{cached:.0f}"
        print(
            f"  {sleeping:>6} sleeping reservations: worker RSS {memory:6.1f} MiB,"
            f" cached workflows {shown}, failed bookings {failed}",
            flush=True,
        )


def verdicts(results: Results, targets: Targets) -> list[tuple[str, str, bool, float]]:
    """(target, measured, met, how far off as a fraction) for each target."""
    rate, bare_rate = results.rate("api"), results.rate("bare")
    ratio = rate / bare_rate if bare_rate else float("nan")
    mailing_rate = results.rate("mailing")
    to_mailing = rate / mailing_rate if mailing_rate else float("nan")
    p99 = ms(results.p("fixed", 99))
    rss = max((memory for sleeping, memory, _ in results.memory), default=float("nan"))
    return [
        (f"bookings/s >= {targets.min_rate:g}", f"{rate:.1f}",
         rate >= targets.min_rate, 1 - rate / targets.min_rate),
        (f"bookings/s >= {targets.min_ratio_to_bare:g} x bare workflow", f"{ratio:.2f}",
         ratio >= targets.min_ratio_to_bare, 1 - ratio / targets.min_ratio_to_bare),
        (f"bookings/s >= {targets.min_ratio_to_bare:g} x bare workflow + activity"
         " (a floor with the mail's round trip)", f"{to_mailing:.2f}",
         to_mailing >= targets.min_ratio_to_bare,
         1 - to_mailing / targets.min_ratio_to_bare),
        (f"p99 at fixed rate < {targets.max_p99_fixed_ms:g} ms", f"{p99:.1f} ms",
         p99 < targets.max_p99_fixed_ms, p99 / targets.max_p99_fixed_ms - 1),
        (f"worker RSS < {targets.max_worker_rss_mb:g} MiB", f"{rss:.1f} MiB",
         rss < targets.max_worker_rss_mb, rss / targets.max_worker_rss_mb - 1),
    ]  # fmt: skip


def summary(results: Results, targets: Targets, *, runs: int, rate: float) -> str:
    lines = [
        "",
        f"Summary (median of {runs} run(s))",
        f"{'':<30}{'per second':>12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'x SQL':>8}",
    ]
    sql_rate = results.rate("sql")
    for name, label in (
        ("sql", "SQL claim transaction"),
        ("bare", "bare workflow"),
        ("mailing", "bare workflow + activity"),
        ("labelled", "bare + activity + attributes"),
        ("api", "POST /api/reservations"),
        ("mailing_fixed", f"bare + activity at {rate:g}/s"),
        ("fixed", f"POST at {rate:g}/s (open loop)"),
    ):
        lines.append(
            f"{label:<30}{results.rate(name):>12.1f}{ms(results.p(name, 50)):>9.1f}"
            f"{ms(results.p(name, 95)):>9.1f}{ms(results.p(name, 99)):>9.1f}"
            f"{results.rate(name) / sql_rate if sql_rate else float('nan'):>8.3f}"
        )
    for name, label in (
        ("bare", "bare workflow"),
        ("mailing", "bare + activity"),
        ("labelled", "bare + activity + attributes"),
    ):
        if results.rate(name):
            ratio = results.rate("api") / results.rate(name)
            lines.append(f"bookings / {label} rate: {ratio:.2f}")
    for sleeping, memory, cached in results.memory:
        shown = "n/a" if cached is None else f"{cached:.0f}"
        lines.append(
            f"worker RSS at {sleeping:>6} sleeping: {memory:6.1f} MiB (cached {shown})"
        )
    lines.append("")
    for target, measured, met, _ in verdicts(results, targets):
        lines.append(f"[{'met' if met else 'MISSED'}] {target}: {measured}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    results, targets = Results(), Targets()
    task_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
    began = time.monotonic()
    async with running_stack(keep=args.keep) as running:
        # the SDK's metrics tell how full the workflow cache is
        # and our own, how long its collector held it
        metrics_port, gc_port = free_port(), free_port()
        await running.restart_child(
            WORKER,
            TLOUNGE_TEMPORAL_METRICS_PORT=str(metrics_port),
            TLOUNGE_WORKER_METRICS_PORT=str(gc_port),
        )
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        gc_urls = {
            "reservation worker": f"http://127.0.0.1:{gc_port}/metrics",
            "API": f"{running.stack.api_url}/metrics",
        }
        await bare_worker(running, task_queue)
        scene = await seed(running.pool, running.settings, seats=args.seats)
        sql_scene = dataclasses.replace(scene, next_number=0)
        await prepare_sql_baseline(running.pool)
        client = await Client.connect(running.temporal_address)
        async with http_client(
            running.stack.api_url, concurrency=args.concurrency
        ) as http:
            await wait_for_worker(http, scene)
            # warm-up: connections, caches and imports of every path
            for mailing in (False, True):
                await closed_loop(
                    bare_operation(client, task_queue, mailing=mailing),
                    count=20, concurrency=5,
                )  # fmt: skip
            await closed_loop(
                booking_operation(http, scene, scene.take(20)), count=20, concurrency=5
            )
            # sleeping reservations first: the throughput runs then meet a full server
            print("sleeping reservations and the worker's memory", flush=True)
            checkpoints = sorted(
                {min(args.sleeping, point) for point in (2500, 5000, 10000)}
                | {args.sleeping}
            )
            await measure_memory(
                http=http, running=running, scene=scene,
                checkpoints=[scene.next_number, *checkpoints],
                concurrency=args.concurrency,
                metrics_url=metrics_url, results=results,
            )  # fmt: skip
            for index in range(args.runs):
                print(f"run {index + 1}/{args.runs}", flush=True)
                await one_run(
                    http=http, client=client, running=running, scene=scene,
                    sql_scene=sql_scene, task_queue=task_queue, count=args.count,
                    concurrency=args.concurrency, rate=args.rate,
                    fixed_count=args.fixed_count, results=results, gc_urls=gc_urls,
                )  # fmt: skip
    print(summary(results, targets, runs=args.runs, rate=args.rate))
    print(f"(took {time.monotonic() - began:.0f} s)")
    if args.strict:
        missed = [row for row in verdicts(results, targets) if row[3] > STRICT_MARGIN]
        return 1 if missed else 0
    return 0


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.booking")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--count", type=int, default=600, help="bookings per closed-loop run"
    )
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--rate", type=float, default=30.0, help="fixed rate, bookings/s"
    )
    parser.add_argument("--fixed-count", type=int, default=450)
    parser.add_argument("--sleeping", type=int, default=10000)
    parser.add_argument("--seats", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="one small run")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a clear miss")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.count, args.fixed_count, args.sleeping = 1, 200, 150, 1000
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse())))
