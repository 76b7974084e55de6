"""Worker processes as the stack starts them, beside dependencies a test may break."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import valkey.asyncio as valkey
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from api.db import migrate
from api.devstack import (
    SEARCH_ATTRIBUTES,
    settings_env,
    start_postgres,
    stop_postgres,
)
from api.objectstore import FilesystemStore
from api.resources import Resources
from api.services import reservations
from api.services.reservations import ReservationView
from api.settings import Settings
from proto.converter import DATA_CONVERTER
from tests.conftest import make_settings
from tests.factories import create_client, create_coworking, create_seat


@dataclass
class WorkerProcess:
    """`python -m api.cli worker KIND`, its output in a file."""

    process: asyncio.subprocess.Process
    log: Path

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for_output(self, text: str, *, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output():
            assert self.alive, f"the worker exited with {self.process.returncode}"
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output()}"
            await asyncio.sleep(0.1)

    async def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, as the supervisor sends it; the exit code."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            raise


@contextlib.asynccontextmanager
async def worker_process(
    kind: str, settings: Settings, log: Path
) -> AsyncIterator[WorkerProcess]:
    env = {**os.environ, **settings_env(settings)}
    with open(log, "ab") as handle:  # noqa: ASYNC230 - once, before the child runs
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api.cli", "worker", kind,
            env=env, stdout=handle, stderr=asyncio.subprocess.STDOUT,
            stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
    worker = WorkerProcess(process, log)
    try:
        yield worker
    finally:
        if worker.alive:
            process.kill()
            await process.wait()


@dataclass
class Cluster:
    """A PostgreSQL of this module's own, which its tests stop and start."""

    server: object
    dsn: str

    def stop(self) -> None:
        stop_postgres(self.server, mode="immediate")

    def start(self) -> None:
        self.server.ensure_postgres_running()  # type: ignore[attr-defined]


@pytest_asyncio.fixture(scope="module")
async def own_cluster() -> AsyncIterator[Cluster]:
    folder = Path(tempfile.mkdtemp(prefix="tlounge-outage-pg-"))
    server, dsn = await asyncio.to_thread(start_postgres, folder / "pg")
    try:
        conn = await asyncpg.connect(dsn)
        await migrate(conn)
        await conn.close()
        yield Cluster(server, dsn)
    finally:
        await asyncio.to_thread(stop_postgres, server, mode="immediate")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def cluster(own_cluster: Cluster) -> Cluster:
    own_cluster.start()
    return own_cluster


def worker_settings(tmp_path: Path, **dependencies: object) -> Settings:
    """Settings of one test: its own task queues, the dependencies it names."""
    return make_settings(
        data_dir=tmp_path / "data",
        reservation_task_queue=f"reservations-{uuid.uuid4()}",
        mail_task_queue=f"mail-{uuid.uuid4()}",
        **dependencies,
    )


@dataclass
class Booker:
    """Books one seat for one client through the API's booking service."""

    resources: Resources
    seat_id: uuid.UUID
    client_id: uuid.UUID
    booked: list[uuid.UUID]

    async def book(self, *, days_ahead: int = 1) -> ReservationView:
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start += timedelta(days=days_ahead)
        view = await reservations.book(
            self.resources, client_id=self.client_id, seat_id=self.seat_id,
            starts_at=start, ends_at=start + timedelta(minutes=30),
            idempotency_key=None,
        )  # fmt: skip
        self.booked.append(view.id)
        return view

    async def row_status(self, reservation_id: uuid.UUID) -> str:
        return await self.resources.pool.fetchval(
            "SELECT status FROM reservation.reservations WHERE id = $1", reservation_id
        )


@contextlib.asynccontextmanager
async def booker(
    settings: Settings, pool: asyncpg.Pool, temporal: Client
) -> AsyncIterator[Booker]:
    coworking = await create_coworking(pool, max_days_ahead=30)
    seat = await create_seat(pool, coworking)
    client = await create_client(pool, settings, send_notifications=False)
    cache = valkey.from_url(settings.valkey_url or "")
    resources = Resources(
        settings, pool, cache, temporal, FilesystemStore(settings.objects_dir)
    )
    found = Booker(resources, seat, client.id, [])
    try:
        yield found
    finally:
        await cache.aclose()
        # no worker polls this test's queue after it: nothing is left waiting
        for reservation_id in found.booked:
            with contextlib.suppress(Exception):
                await temporal.get_workflow_handle(
                    reservations.workflow_id(reservation_id)
                ).terminate("test over")


@pytest_asyncio.fixture
async def cluster_pool(cluster: Cluster) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(cluster.dsn, min_size=0, max_size=4)
    assert pool is not None
    yield pool
    pool.terminate()


def temporal_address(env: WorkflowEnvironment) -> str:
    return env.client.service_client.config.target_host


def converting(client: Client) -> Client:
    """The same connection, with the converter the API and workers use."""
    return Client(**{**client.config(), "data_converter": DATA_CONVERTER})


async def register_namespace(client: Client, namespace: str) -> None:
    """A namespace as an operator makes one, with the project's search attributes."""
    retention = Duration()
    retention.FromTimedelta(timedelta(days=1))
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=retention
        )
    )
    request = AddSearchAttributesRequest(
        namespace=namespace,
        search_attributes={
            name: _INDEXED[kind] for name, kind in SEARCH_ATTRIBUTES.items()
        },
    )
    # the server's caches learn of a new namespace some seconds after it exists
    deadline = time.monotonic() + 25
    while True:
        try:
            await client.operator_service.add_search_attributes(request)
            break
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


_INDEXED = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}
