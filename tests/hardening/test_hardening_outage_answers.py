import uuid

import asyncpg
import httpx
import pytest
import valkey.asyncio as valkey

from api.devstack import free_port
from api.main import create_app
from api.resources import Resources
from tests.factories import create_admin


@pytest.fixture
async def dead_database(resources: Resources):
    # nothing listens on the port, as while PostgreSQL restarts
    pool = await asyncpg.create_pool(
        f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", min_size=0
    )
    yield pool
    await pool.close()


async def test_read_reservation_with_database_down_answers_503_retry_after(
    resources: Resources, dead_database: asyncpg.Pool
) -> None:
    admin = await create_admin(resources.pool, resources.settings, role="owner")
    broken = Resources(
        resources.settings, dead_database, resources.valkey, resources.temporal,
        resources.store,
    )  # fmt: skip
    app = create_app(resources.settings, resources=broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.get(
            f"/api/reservations/{uuid.uuid4()}", headers=admin.headers
        )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json() == {
        "error": "unavailable",
        "description": "A service we depend on is unavailable; retry shortly",
    }


async def test_sign_in_with_valkey_down_answers_503(resources: Resources) -> None:
    kv = valkey.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    broken = Resources(
        resources.settings, resources.pool, kv, resources.temporal, resources.store
    )
    app = create_app(resources.settings, resources=broken)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test"
        ) as http:
            response = await http.post(
                "/api/client/login",
                json={"email": "nobody@example.com", "password": "irrelevant-pass"},
            )
    finally:
        await kv.aclose()
    assert (response.status_code, response.headers.get("Retry-After")) == (503, "5")
    assert response.json()["error"] == "unavailable"
