"""Attempt limits on sign-in, registration and password change, with small test
counts."""

import asyncio
import contextlib
import dataclasses

import httpx
import pytest

from api.main import create_app
from tests.contract import assert_api_error
from tests.factories import PASSWORD, create_admin, create_client

PER_ACCOUNT, PER_ACCOUNT_TOTAL, PER_ADDRESS = 3, 7, 5


@pytest.fixture
def settings(settings):
    return settings.model_copy(
        update={
            "auth_rate_per_account": PER_ACCOUNT,
            "auth_rate_per_account_total": PER_ACCOUNT_TOTAL,
            "auth_rate_per_address": PER_ADDRESS,
        }
    )


@contextlib.asynccontextmanager
async def from_address(resources, settings, address: str):
    """The API as a peer at `address` sees it."""
    app = create_app(
        settings, resources=dataclasses.replace(resources, settings=settings)
    )
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


def _assert_limited(response, window: int = 60) -> None:
    assert_api_error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["retry-after"]) <= window


async def test_login_limited_per_account_at_the_configured_count(
    api, db, settings, monkeypatch
) -> None:
    client = await create_client(db, settings)
    wrong = {"email": client.email, "password": "not the password"}
    for _ in range(PER_ACCOUNT):
        assert (await api.post("/api/client/login", json=wrong)).status_code == 400
    verified = []
    monkeypatch.setattr("api.services.accounts.verify_password", verified.append)

    limited = await api.post(
        "/api/client/login", json={"email": client.email, "password": PASSWORD}
    )
    # the account key ignores case, so another spelling does not escape the count
    upper = await api.post(
        "/api/client/login", json={**wrong, "email": client.email.upper()}
    )

    _assert_limited(limited)
    _assert_limited(upper)
    assert verified == []  # nothing was hashed once limited


async def test_a_strangers_wrong_guesses_lock_out_the_stranger_not_the_owner(
    resources, db, settings
) -> None:
    client = await create_client(db, settings)
    wrong = {"email": client.email, "password": "not the password"}
    right = {"email": client.email, "password": PASSWORD}
    async with (
        from_address(resources, settings, "203.0.113.9") as stranger,
        from_address(resources, settings, "198.51.100.4") as owner,
    ):
        for _ in range(PER_ACCOUNT):
            assert (
                await stranger.post("/api/client/login", json=wrong)
            ).status_code == 400
        # refused attempts go on past the account's total, and still do not
        # count towards it
        for _ in range(PER_ACCOUNT_TOTAL):
            _assert_limited(await stranger.post("/api/client/login", json=wrong))
        stopped = await stranger.post("/api/client/login", json=right)
        signed_in = await owner.post("/api/client/login", json=right)

    _assert_limited(stopped)
    assert signed_in.status_code == 200


async def test_login_limited_per_account_across_addresses(
    resources, db, settings
) -> None:
    client = await create_client(db, settings)
    wrong = {"email": client.email, "password": "not the password"}
    # under the limit of each address, up to the account's total
    for n in range(PER_ACCOUNT_TOTAL):
        async with from_address(resources, settings, f"192.0.2.{n}") as guesser:
            assert (
                await guesser.post("/api/client/login", json=wrong)
            ).status_code == 400

    async with from_address(resources, settings, "198.51.100.4") as owner:
        response = await owner.post(
            "/api/client/login", json={"email": client.email, "password": PASSWORD}
        )

    _assert_limited(response)


async def test_login_limited_per_address_across_accounts(api, db, settings) -> None:
    for n in range(PER_ADDRESS):
        body = {"email": f"nobody{n}@example.com", "password": PASSWORD}
        assert (await api.post("/api/client/login", json=body)).status_code == 400

    response = await api.post(
        "/api/client/login", json={"email": "fresh@example.com", "password": PASSWORD}
    )

    _assert_limited(response)


async def test_admin_login_counted_apart_from_client_login(api, db, settings) -> None:
    admin = await create_admin(db, settings)
    for _ in range(PER_ACCOUNT):
        await api.post(
            "/api/client/login", json={"email": admin.email, "password": "x" * 12}
        )

    response = await api.post(
        "/api/admin/login", json={"email": admin.email, "password": PASSWORD}
    )

    assert response.status_code == 200


async def test_registration_limited(api, db, monkeypatch) -> None:
    form = {"name": "A", "surname": "B", "patronymic": "", "password": PASSWORD,
            "send_notifications": False}  # fmt: skip
    for n in range(PER_ADDRESS):
        response = await api.post(
            "/api/client/register", json={**form, "email": f"r{n}@example.com"}
        )
        assert response.status_code == 200
    hashed = []
    monkeypatch.setattr("api.services.clients.hash_password", hashed.append)

    response = await api.post(
        "/api/client/register", json={**form, "email": "late@example.com"}
    )

    _assert_limited(response)
    assert hashed == []
    assert await db.fetchval("SELECT count(*) FROM client.clients") == PER_ADDRESS


async def test_password_change_limited(api, db, settings) -> None:
    client = await create_client(db, settings)
    wrong = {"current_password": "not the password", "new_password": "x" * 12,
             "new_password_confirm": "x" * 12}  # fmt: skip
    for _ in range(PER_ACCOUNT):
        response = await api.put(
            "/api/client/password", json=wrong, headers=client.headers
        )
        assert response.status_code == 400

    right = {**wrong, "current_password": PASSWORD}
    response = await api.put("/api/client/password", json=right, headers=client.headers)

    _assert_limited(response)


async def test_limit_lifts_when_the_window_ends(resources, db, settings) -> None:
    from api import ratelimit
    from api.services.accounts import email_key

    client = await create_client(db, settings)
    quick = settings.model_copy(update={"auth_rate_window_seconds": 2})
    # the window's attempts counted as a sign-in counts them, but without the
    # password checks, whose time on a loaded machine outran a short window
    for _ in range(PER_ACCOUNT):
        await ratelimit.enforce(
            quick, resources.valkey, action="client-login", address="192.0.2.7",
            account=email_key(client.email),
        )  # fmt: skip
    right = {"email": client.email, "password": PASSWORD}
    async with from_address(resources, quick, "192.0.2.7") as http:
        limited = await http.post("/api/client/login", json=right)
        await asyncio.sleep(2.1)
        response = await http.post("/api/client/login", json=right)

    _assert_limited(limited, window=2)
    assert response.status_code == 200


async def test_forwarded_values_that_are_no_address_share_one_limit(
    resources, db, settings
) -> None:
    # what a trusting proxy passes on when a client rotates junk in its header
    for n in range(PER_ADDRESS):
        async with from_address(resources, settings, f"junk-{n}") as junk:
            body = {"email": f"nobody{n}@example.com", "password": PASSWORD}
            assert (await junk.post("/api/client/login", json=body)).status_code == 400

    async with from_address(resources, settings, "junk-next") as junk:
        response = await junk.post(
            "/api/client/login",
            json={"email": "fresh@example.com", "password": PASSWORD},
        )

    _assert_limited(response)
