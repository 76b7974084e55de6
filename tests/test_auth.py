"""The auth dependencies that other routers use: CurrentPrincipal and coworking
scope."""

import uuid

import httpx
import pytest
import pytest_asyncio

from api.auth import CurrentPrincipal, managed_coworkings, require_coworking_write
from api.errors import Forbidden
from api.main import create_app
from api.tokens import Principal, issue_access_token
from tests.factories import create_admin, create_client


@pytest_asyncio.fixture
async def whoami(resources):
    app = create_app(resources.settings, resources=resources)

    @app.get("/test/whoami")
    async def _whoami(principal: CurrentPrincipal) -> dict:
        return {"kind": principal.kind, "id": str(principal.id), "role": principal.role}

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http


async def test_current_principal_takes_client_or_admin(whoami, db, settings) -> None:
    client = await create_client(db, settings)
    manager = await create_admin(db, settings, role="manager")

    as_client = await whoami.get("/test/whoami", headers=client.headers)
    as_admin = await whoami.get("/test/whoami", headers=manager.headers)

    assert as_client.json() == {
        "kind": "client",
        "id": str(client.id),
        "role": "client",
    }
    assert as_admin.json() == {
        "kind": "admin",
        "id": str(manager.id),
        "role": "manager",
    }


async def test_current_principal_refuses_what_neither_accepts(
    whoami, db, settings
) -> None:
    client = await create_client(db, settings)
    await db.execute("UPDATE client.clients SET deleted_at = now()")

    response = await whoami.get("/test/whoami", headers=client.headers)

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("kind", "role"), [("client", "owner"), ("admin", "client"), ("admin", "root")],
    ids=["client-audience-admin-role", "admin-audience-client-role", "unknown-role"],
)  # fmt: skip
async def test_token_role_must_fit_its_audience(
    whoami, db, settings, kind, role
) -> None:
    account = await (
        create_client(db, settings) if kind == "client" else create_admin(db, settings)
    )
    token = issue_access_token(settings, kind=kind, subject=account.id, role=role)

    response = await whoami.get(
        "/test/whoami", headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 401


async def test_coworking_scope_by_role(db, settings) -> None:
    mine, other = uuid.uuid4(), uuid.uuid4()
    owner = await create_admin(db, settings, role="owner")
    manager = await create_admin(db, settings, role="manager", coworkings=[mine])
    support = await create_admin(db, settings, role="support")

    def principal(account, role: str) -> Principal:
        return Principal("admin", account.id, role, 0, "t")

    assert await managed_coworkings(db, principal(owner, "owner")) is None
    assert await managed_coworkings(db, principal(manager, "manager")) == {mine}
    await require_coworking_write(db, principal(owner, "owner"), other)
    await require_coworking_write(db, principal(manager, "manager"), mine)
    with pytest.raises(Forbidden):
        await require_coworking_write(db, principal(manager, "manager"), other)
    with pytest.raises(Forbidden):
        await require_coworking_write(db, principal(support, "support"), mine)
