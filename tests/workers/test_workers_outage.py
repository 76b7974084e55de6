"""Workers ride out PostgreSQL and Temporal outages instead of exiting."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from api.devstack import free_port, temporal_command, wait_for_port
from api.errors import Unavailable
from api.resources import connect_temporal
from api.services import reservations
from api.services.reservations import ReservationView
from tests.workers.conftest import (
    Booker,
    Cluster,
    booker,
    converting,
    register_namespace,
    temporal_address,
    worker_process,
    worker_settings,
)
from workers import reservation as reservation_worker
from workers.runner import Stopped, StopSignal, serve_until_stopped


async def wait_for_status(
    seats: Booker, reservation_id: uuid.UUID, status: str, *, timeout: float = 25.0
) -> None:
    deadline = time.monotonic() + timeout
    while (found := await seats.row_status(reservation_id)) != status:
        assert time.monotonic() < deadline, f"still {found}"
        await asyncio.sleep(0.2)


async def book_patiently(seats: Booker, *, days_ahead: int) -> ReservationView:
    """Retry a 503 as a frontend does, while the client finds the server again."""
    deadline = time.monotonic() + 25
    while True:
        try:
            return await seats.book(days_ahead=days_ahead)
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def test_worker_started_while_postgres_is_down_waits_then_serves(
    tmp_path: Path,
    cluster: Cluster,
    cluster_pool: asyncpg.Pool,
    dev_env: WorkflowEnvironment,
    valkey_server: str,
) -> None:
    settings = worker_settings(
        tmp_path, database_url=cluster.dsn, valkey_url=valkey_server,
        temporal_address=temporal_address(dev_env),
    )  # fmt: skip
    temporal = converting(dev_env.client)
    async with booker(settings, cluster_pool, temporal) as seats:
        await asyncio.to_thread(cluster.stop)
        async with worker_process(
            "reservation", settings, tmp_path / "worker.log"
        ) as worker:
            await worker.wait_for_output("PostgreSQL not reachable")
            await asyncio.to_thread(cluster.start)

            view = await seats.book()

            assert view.status == "confirmed"
            assert await seats.row_status(view.id) == "confirmed"
            assert worker.alive
            assert await worker.stop() == 0


async def test_running_worker_outlives_a_postgres_stop_and_its_activity_is_retried(
    tmp_path: Path,
    cluster: Cluster,
    cluster_pool: asyncpg.Pool,
    dev_env: WorkflowEnvironment,
    valkey_server: str,
) -> None:
    settings = worker_settings(
        tmp_path, database_url=cluster.dsn, valkey_url=valkey_server,
        temporal_address=temporal_address(dev_env),
    )  # fmt: skip
    temporal = converting(dev_env.client)
    async with (
        booker(settings, cluster_pool, temporal) as seats,
        worker_process("reservation", settings, tmp_path / "worker.log") as worker,
    ):
        view = await seats.book()
        await asyncio.to_thread(cluster.stop)
        await reservations.signal_cancel(
            seats.resources, view.id, reason="outage", requested_by="test"
        )
        # the release fails while the database is away, and Temporal tries it again
        await worker.wait_for_output("'activity_type': 'release_seat', 'attempt': 2")
        await asyncio.to_thread(cluster.start)

        await wait_for_status(seats, view.id, "cancelled")

        claims = await cluster_pool.fetchval(
            "SELECT count(*) FROM reservation.seat_claims WHERE reservation_id = $1",
            view.id,
        )
        assert claims == 0
        assert worker.alive
        assert await worker.stop() == 0


async def test_worker_outlives_a_temporal_kill_and_restart(
    tmp_path: Path, pool: asyncpg.Pool, pg_dsn: str, valkey_server: str
) -> None:
    port = free_port()
    command = temporal_command(
        db_file=tmp_path / "temporal.db", host="127.0.0.1", port=port, ui_port=None
    )
    settings = worker_settings(
        tmp_path, database_url=pg_dsn, valkey_url=valkey_server,
        temporal_address=f"127.0.0.1:{port}",
    )  # fmt: skip
    async with dev_server(command, port, tmp_path / "temporal.log") as server:
        temporal = await connect_temporal(settings)
        async with (
            booker(settings, pool, temporal) as seats,
            worker_process("reservation", settings, tmp_path / "worker.log") as worker,
        ):
            before = await book_patiently(seats, days_ahead=1)
            await server.restart(pause=2.0)

            after = await book_patiently(seats, days_ahead=2)

            assert (before.status, after.status) == ("confirmed", "confirmed")
            assert await seats.row_status(after.id) == "confirmed"
            assert worker.alive
            assert await worker.stop() == 0


class DevServer:
    """A Temporal dev server on a fixed port and file, killed and started again."""

    def __init__(self, command: list[str], port: int, log: Path) -> None:
        self.command, self.port, self.log = command, port, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with open(self.log, "ab") as handle:  # noqa: ASYNC230 - once per start
            self.process = await asyncio.create_subprocess_exec(
                *self.command, stdout=handle, stderr=asyncio.subprocess.STDOUT
            )
        await wait_for_port("127.0.0.1", self.port, timeout=30)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def restart(self, *, pause: float) -> None:
        await self.kill()
        await asyncio.sleep(pause)
        await self.start()


@contextlib.asynccontextmanager
async def dev_server(command: list[str], port: int, log: Path):
    server = DevServer(command, port, log)
    await server.start()
    try:
        yield server
    finally:
        await server.kill()


async def test_worker_that_the_sdk_gave_up_on_is_replaced_and_serves(
    tmp_path: Path,
    pool: asyncpg.Pool,
    dev_env: WorkflowEnvironment,
    valkey_server: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # a namespace made after the worker starts, as a cluster's setup job does:
    # the SDK's worker fails for good on it, and the process must not
    namespace = f"late-{uuid.uuid4().hex[:12]}"
    settings = worker_settings(
        tmp_path, valkey_url=valkey_server, temporal_namespace=namespace,
        temporal_address=temporal_address(dev_env),
    )  # fmt: skip
    temporal = await connect_temporal(settings)
    stop = StopSignal()
    async with booker(settings, pool, temporal) as seats:
        serving = asyncio.create_task(
            serve_until_stopped(
                settings,
                lambda client: reservation_worker.build_worker(
                    client, settings=settings, pool=pool, cache=seats.resources.valkey
                ),
                stop,
            )
        )
        try:
            await wait_for_record(caplog, "replacing it")
            assert f"Namespace {namespace} is not found" in caplog.text
            await register_namespace(dev_env.client, namespace)

            view = await book_patiently(seats, days_ahead=1)

            assert view.status == "confirmed"
            assert not serving.done()
        finally:
            stop.request()
            # Stopped, when the signal finds it between two workers
            with contextlib.suppress(Stopped):
                await asyncio.wait_for(serving, 15)


async def wait_for_record(caplog: pytest.LogCaptureFixture, text: str) -> None:
    deadline = time.monotonic() + 15
    while text not in caplog.text:
        assert time.monotonic() < deadline, f"no {text!r} logged"
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    ("kind", "missing"),
    [("reservation", "PostgreSQL"), ("mail", "PostgreSQL"), ("mail", "Temporal")],
)
async def test_worker_waiting_for_a_dependency_stops_cleanly_on_sigterm(
    tmp_path: Path, pg_dsn: str, valkey_server: str, kind: str, missing: str
) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    database = f"postgresql://postgres@{nowhere}/postgres"
    settings = worker_settings(
        tmp_path, valkey_url=valkey_server, temporal_address=nowhere,
        database_url=database if missing == "PostgreSQL" else pg_dsn,
    )  # fmt: skip
    async with worker_process(kind, settings, tmp_path / "worker.log") as worker:
        await worker.wait_for_output(f"{missing} not reachable")

        assert await worker.stop() == 0

    assert "stopped while waiting for a dependency" in worker.output()
