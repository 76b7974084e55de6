"""The reservation and mail workers, in-process, on the test's own task queues."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
import pytest_asyncio
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from api.main import create_app
from api.resources import Resources
from proto.converter import DATA_CONVERTER
from tests.conftest import bounded_teardown
from tests.factories import (
    Account,
    create_admin,
    create_client,
    create_coworking,
    create_seat,
)
from workers import mail as mail_worker
from workers import reservation as reservation_worker


@asynccontextmanager
async def running_workers(
    resources: Resources,
    *,
    cached: bool = True,
    mail_pool: asyncpg.Pool | None = None,
    reservation_pool: asyncpg.Pool | None = None,
) -> AsyncIterator[tuple[Worker, Worker]]:
    settings = resources.settings
    reservations = reservation_worker.build_worker(
        resources.temporal,
        settings=settings,
        pool=reservation_pool or resources.pool,
        cache=resources.valkey,
        # without a cache there is no sticky queue, which the test server never
        # moves a task off when its worker stops
        **({} if cached else {"max_cached_workflows": 0}),
    )
    smtp = mail_worker.smtp_connections(settings)
    mails = mail_worker.build_worker(
        resources.temporal,
        settings=settings,
        pool=mail_pool or resources.pool,
        smtp=smtp,
    )
    try:
        async with reservations, mails:
            yield reservations, mails
    finally:
        await smtp.close()


@asynccontextmanager
async def bounded_workers(
    resources: Resources, **options: object
) -> AsyncIterator[tuple[Worker, Worker]]:
    """running_workers, whose stop is given up after a while rather than
    holding the test until its timeout (see bounded_teardown)."""
    workers = contextlib.AsyncExitStack()
    both = await workers.enter_async_context(
        running_workers(resources, **options)  # type: ignore[arg-type]
    )
    try:
        yield both
    finally:
        await bounded_teardown(workers.aclose(), "stopping a test's workers")


@dataclass
class Scene:
    """One coworking with two seats, a client and an owner, ready to book."""

    api: httpx.AsyncClient
    resources: Resources
    env: WorkflowEnvironment
    coworking_id: object
    seat_id: object
    other_seat_id: object
    client: Account
    admin: Account
    workers: contextlib.AsyncExitStack
    cached: bool = True

    async def restart_workers(self) -> None:
        """Stop both workers and start fresh ones, as for a crashed process."""
        await self.workers.aclose()
        self.workers = contextlib.AsyncExitStack()
        await self.workers.enter_async_context(
            running_workers(self.resources, cached=self.cached)
        )

    async def sleep(self, duration: timedelta) -> None:
        """Skip the server's clock, patiently: a loaded machine is slow to get there."""
        request = SleepRequest()
        request.duration.FromTimedelta(max(duration, timedelta(0)))
        await self.env.client.test_service.unlock_time_skipping_with_sleep(
            request, timeout=timedelta(minutes=3)
        )

    async def now(self) -> datetime:
        return (await self.env.get_current_time()).astimezone(UTC)

    async def slot(
        self, *, hours_ahead: float, length_minutes: int = 60
    ) -> tuple[datetime, datetime]:
        """A slot on the 15-minute grid, about `hours_ahead` after the server's now."""
        now = await self.now()
        start = (now + timedelta(hours=hours_ahead)).replace(second=0, microsecond=0)
        start -= timedelta(minutes=start.minute % 15)
        return start, start + timedelta(minutes=length_minutes)

    async def book(
        self,
        starts_at: datetime,
        ends_at: datetime,
        *,
        seat_id: object | None = None,
        account: Account | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return await self.api.post(
            "/api/reservations",
            json={
                "seat_id": str(seat_id or self.seat_id),
                "starts_at": starts_at.isoformat(),
                "ends_at": ends_at.isoformat(),
            },
            headers={**(account or self.client).headers, **(headers or {})},
        )


@pytest_asyncio.fixture
async def scene(
    request: pytest.FixtureRequest,
    api,
    resources: Resources,
    time_env: WorkflowEnvironment,
    dev_env: WorkflowEnvironment,
    smtp,
) -> AsyncIterator[Scene]:
    cached = request.node.get_closest_marker("uncached_workers") is None
    async with contextlib.AsyncExitStack() as stack:
        if request.node.get_closest_marker("real_time_server"):
            # heavy contention stays off the shared time-skipping server
            env = dev_env
            client = Client(**{**env.client.config(), "data_converter": DATA_CONVERTER})
            resources = dataclasses.replace(resources, temporal=client)
            app = create_app(resources.settings, resources=resources)
            api = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://test"
                )
            )
            time_env = env
        async for scene in _scene(request, api, resources, time_env, cached):
            yield scene


async def _scene(
    request: pytest.FixtureRequest, api, resources: Resources, time_env, cached: bool
) -> AsyncIterator[Scene]:
    coworking_id = await create_coworking(
        resources.pool, name="Lounge One", timezone="Europe/Berlin", max_days_ahead=400
    )
    seat_id = await create_seat(resources.pool, coworking_id, number=1)
    other_seat_id = await create_seat(resources.pool, coworking_id, number=2)
    client = await create_client(
        resources.pool, resources.settings, email="ada@example.com"
    )
    admin = await create_admin(resources.pool, resources.settings, role="owner")
    workers = contextlib.AsyncExitStack()
    await workers.enter_async_context(running_workers(resources, cached=cached))
    scene = Scene(
        api, resources, time_env, coworking_id, seat_id, other_seat_id, client, admin,
        workers, cached,
    )  # fmt: skip
    try:
        yield scene
    finally:
        await bounded_teardown(scene.workers.aclose(), "stopping the scene's workers")
        await keep_histories(resources, request.node.name)


HISTORIES = Path(__file__).parent / "histories"


async def keep_histories(resources: Resources, test_name: str) -> None:
    """With TLOUNGE_RECORD_HISTORIES=1, save the histories of this test's workflows,
    which the replay test then replays on every later version of the workflow."""
    tag = os.environ.get("TLOUNGE_RECORD_HISTORIES")
    if not tag:
        return
    HISTORIES.mkdir(exist_ok=True)
    rows = await resources.pool.fetch(
        "SELECT id FROM reservation.reservations ORDER BY created_at"
    )
    for index, row in enumerate(rows):
        handle = resources.temporal.get_workflow_handle(f"reservation-{row['id']}")
        history = await handle.fetch_history()
        name = re.sub(r"[^a-z0-9_]+", "_", test_name.removeprefix("test_").lower())
        # "1" for the first version's files; any other tag names a later version
        version = "" if tag == "1" else f".{tag}"
        (HISTORIES / f"{name}{version}-{index}.json").write_text(history.to_json())
