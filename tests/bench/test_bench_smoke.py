"""The benchmarks' own parts, run small against the suite's fixtures.

No timing is asserted: only that every figure is computed and counts add up.
"""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
from aiohttp import web
from temporalio.testing import WorkflowEnvironment

from api.devstack import free_port
from api.resources import Resources
from tests.bench import bare, booking, load
from tests.bench.common import (
    Figures,
    _cpu_of,
    availability_in_sql,
    booking_operation,
    claim_in_sql,
    closed_loop,
    http_client,
    open_loop,
    prepare_sql_baseline,
    release_in_sql,
    rss_mb,
    seed,
    sql_operation,
)
from tests.reservations.conftest import bounded_workers
from workflows.reservation import RESERVATION_STATUS

N = 5


async def test_closed_loop_bookings_count_every_booking(
    api: httpx.AsyncClient, resources: Resources, time_env: WorkflowEnvironment, smtp
) -> None:
    now = await time_env.get_current_time()
    scene = await seed(resources.pool, resources.settings, seats=3, now=now)
    async with bounded_workers(resources):
        figures = await closed_loop(
            booking_operation(api, scene, scene.take(N)), count=N, concurrency=2
        )
    assert (figures.count, figures.failures) == (N, 0)
    assert figures.rate > 0 and figures.percentile(99) >= figures.percentile(50) > 0
    rows = await resources.pool.fetchval(
        "SELECT count(*) FROM reservation.reservations"
    )
    assert rows == N


async def test_sql_baseline_claims_releases_and_reads(resources: Resources) -> None:
    pool = resources.pool
    scene = await seed(pool, resources.settings, seats=2)
    await prepare_sql_baseline(pool)
    figures = await closed_loop(
        sql_operation(pool, scene, scene.take(N)), count=N, concurrency=2
    )
    assert (figures.count, figures.failures) == (N, 0)
    # the same slot again is refused by the UNIQUE keys
    assert await claim_in_sql(pool, scene, 0) is None
    reservation_id = await claim_in_sql(pool, scene, scene.take(1)[0])
    assert reservation_id is not None
    assert await release_in_sql(pool, reservation_id)
    assert await availability_in_sql(
        pool, scene, scene.base, scene.base + booking_slot()
    )
    await pool.execute("DROP SCHEMA bench CASCADE")


def booking_slot():  # noqa: ANN201
    from tests.bench.common import SLOT

    return SLOT


async def test_open_loop_counts_failures_apart() -> None:
    async def operation(number: int) -> bool:
        return number % 2 == 0

    figures = await open_loop(operation, rate=200, count=N)
    assert (figures.count, figures.failures) == (3, 2)
    assert "n=3" in figures.line("smoke")


async def test_bare_workflow_answers_its_update(
    time_env: WorkflowEnvironment, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, task_queue = time_env.client, f"bench-smoke-{uuid.uuid4()}"
    started: list[str] = []
    start_bare = bare.start_bare

    async def recorded(
        client: object,
        task_queue: str,
        *,
        mailing: bool = False,
        labelled: bool = False,
    ) -> str | None:
        # every one is terminated below: a workflow left waiting for a task that
        # no worker polls stops the shared test server from skipping time
        workflow_id = await start_bare(
            client,  # type: ignore[arg-type]
            task_queue,
            mailing=mailing,
            labelled=labelled,
        )
        started.extend([workflow_id] if workflow_id else [])
        return workflow_id

    monkeypatch.setattr(bare, "start_bare", recorded)

    async def operation(number: int) -> bool:
        return await bare.start_bare(client, task_queue) is not None

    workflows, mails = bare.build_workers(client, task_queue)
    async with workflows, mails:
        figures = await closed_loop(operation, count=N, concurrency=2)
        assert await booking.bare_operation(client, task_queue)(0)
        assert await booking.bare_operation(client, task_queue, mailing=True)(0)
        assert await booking.bare_operation(
            client, task_queue, mailing=True, labelled=True
        )(0)
    assert (figures.count, figures.failures) == (N, 0)
    assert len(started) == N + 3
    described = await client.get_workflow_handle(started[-1]).describe()
    assert described.typed_search_attributes.get(RESERVATION_STATUS) == "confirmed"
    assert (await described.static_summary() or "").startswith("Ada Lovelace")
    for workflow_id in started:
        await client.get_workflow_handle(workflow_id).terminate("smoke")


async def test_load_step_mixes_kinds_and_finds_knee(
    api: httpx.AsyncClient, resources: Resources, time_env: WorkflowEnvironment, smtp
) -> None:
    now = await time_env.get_current_time()
    scene = await seed(resources.pool, resources.settings, seats=3, now=now)
    mix = load.ApiMix(api, scene, seed_value=1)
    async with bounded_workers(resources):
        result = await load.step(mix, rate=40, seconds=N / 40)
    total = sum(f.count + f.failures for f in result.figures.values())
    assert total == N
    assert sum(f.failures for f in result.figures.values()) == 0
    assert "read p99" in result.line("API")

    def fake(rate: float, book_ms: float) -> load.Step:
        return load.Step(
            rate, {kind: Figures([book_ms / 1000], 0, 1.0) for kind in load.KINDS}
        )

    assert load.knee([fake(10, 50), fake(20, 150), fake(40, 250)], "book") == (20, True)
    assert load.knee([fake(10, 50)], "read") == (10, False)


def test_booking_summary_reports_every_target() -> None:
    results = booking.Results()
    for name in ("sql", "bare", "mailing", "labelled", "api", "fixed"):
        getattr(results, name).append(Figures([0.01, 0.02, 0.03], 0, 0.05))
    results.memory.append((10, 120.0, 10.0))
    text = booking.summary(results, booking.Targets(), runs=1, rate=30)
    assert text.count("[met]") + text.count("[MISSED]") == 5
    assert "bookings / bare + activity + attributes rate: 1.00" in text
    assert booking.parse(["--quick"]).runs == 1


def test_process_figures_read_proc() -> None:
    assert rss_mb(os.getpid()) > 0
    assert _cpu_of(os.getpid()) > 0


async def test_load_client_speaks_http_on_loopback() -> None:
    async def echo(request: web.Request) -> web.Response:
        body = await request.json() if request.can_read_body else None
        return web.json_response(
            {
                "method": request.method,
                "body": body,
                "auth": request.headers.get("Authorization"),
            }
        )

    app = web.Application()
    app.router.add_route("*", "/echo", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with http_client(f"http://127.0.0.1:{port}/", concurrency=2) as http:
            posted = await http.post(
                "/echo", json={"n": 1}, headers={"Authorization": "t"}
            )
            fetched = await http.get(f"http://127.0.0.1:{port}/echo")
            deleted = await http.delete("/echo")
    finally:
        await runner.cleanup()
    assert (posted.status_code, posted.json()) == (
        200,
        {"method": "POST", "body": {"n": 1}, "auth": "t"},
    )
    assert fetched.json()["method"] == "GET" and '"GET"' in fetched.text
    assert deleted.json()["method"] == "DELETE"
