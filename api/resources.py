"""The long-lived clients a process needs, built once and closed on the way out."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import valkey.asyncio as valkey
from temporalio.client import Client
from temporalio.runtime import Runtime

from api.db import create_pool
from api.objectstore import ObjectStore, create_object_store
from api.settings import Settings
from proto.converter import DATA_CONVERTER

logger = logging.getLogger(__name__)


@dataclass
class Resources:
    settings: Settings
    pool: asyncpg.Pool
    valkey: valkey.Valkey
    temporal: Client
    store: ObjectStore

    async def close(self) -> None:
        await self.valkey.aclose()
        await self.pool.close()


def database_url(settings: Settings) -> str:
    if not settings.database_url:
        raise RuntimeError(
            "TLOUNGE_DATABASE_URL is not set and no embedded database runs"
        )
    return settings.database_url


# the embedded Valkey's user; its password is in the data folder
VALKEY_USER = "tlounge"


def valkey_url(settings: Settings) -> str:
    """The URL set, or the embedded Valkey's, with the password its folder keeps."""
    if settings.valkey_url:
        return settings.valkey_url
    secret = settings.data_dir / "valkey_password"
    login = f"{VALKEY_USER}:{secret.read_text().strip()}@" if secret.exists() else ""
    return f"redis://{login}127.0.0.1:{settings.valkey_port}/0"


def temporal_address(settings: Settings) -> str:
    return settings.temporal_address or f"127.0.0.1:{settings.temporal_port}"


async def connect_temporal(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    return await Client.connect(
        temporal_address(settings),
        namespace=settings.temporal_namespace,
        lazy=lazy,
        runtime=runtime,
        data_converter=DATA_CONVERTER,
    )


# a healthy PostgreSQL answers any query of the API in a fraction of a second
API_QUERY_TIMEOUT = 5.0


async def open_resources(settings: Settings) -> Resources:
    pool = await create_pool(
        database_url(settings),
        min_size=settings.database_pool_min,
        max_size=settings.database_pool_max,
        # a hung server is a 503 well within the 20 s a booking promises; a
        # connection opened to replace one it broke waited 60 s by default
        command_timeout=API_QUERY_TIMEOUT,
        connect_timeout=API_QUERY_TIMEOUT,
    )
    client = valkey.from_url(
        valkey_url(settings), socket_timeout=5, socket_connect_timeout=5
    )
    # lazy, so the API comes up while Temporal is still starting; /ready tells
    temporal = await connect_temporal(settings, lazy=True)
    store = create_object_store(settings)
    return Resources(settings, pool, client, temporal, store)


async def probe(resources: Resources, *, timeout: float = 2.0) -> dict[str, str]:
    """Check every dependency at once; the answer names each that failed."""

    async def _postgres() -> None:
        async with resources.pool.acquire(timeout=timeout) as conn:
            await conn.fetchval("SELECT 1")

    async def _valkey() -> None:
        await resources.valkey.ping()

    async def _temporal() -> None:
        await resources.temporal.service_client.check_health(
            timeout=timedelta(seconds=timeout)
        )

    async def _store() -> None:
        await resources.store.check()

    checks = {
        "postgres": _postgres,
        "valkey": _valkey,
        "temporal": _temporal,
        "object_store": _store,
    }

    async def _run(name: str) -> tuple[str, str]:
        try:
            await asyncio.wait_for(checks[name](), timeout)
        except Exception as error:  # any failure is a "not ready" for that one
            logger.warning("readiness check %s failed: %s", name, type(error).__name__)
            return name, "unavailable"
        return name, "ok"

    results = await asyncio.gather(*(_run(name) for name in checks))
    return dict(results)
