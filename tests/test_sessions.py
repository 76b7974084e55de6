"""Tokens and sessions: forged or stale tokens, refresh rotation, sign-out, Valkey
down."""

import base64
import json
import time
import uuid

import httpx
import jwt
import pytest
import valkey.asyncio as valkey

from api.auth import STAFF_ONLY
from api.main import create_app
from api.resources import Resources
from api.tokens import AUDIENCE, issue_access_token
from tests.contract import assert_api_error, assert_matches
from tests.factories import PASSWORD, create_admin, create_client

UNAUTHORIZED = {
    "error": "unauthorized",
    "description": "Missing or invalid credentials",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _claims(settings, subject: uuid.UUID, **changes) -> dict:
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer, "aud": AUDIENCE["client"], "sub": str(subject),
        "role": "client", "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex,
        "sid": uuid.uuid4().hex, "ver": 0,
    }  # fmt: skip
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _sign(settings, claims: dict) -> str:
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def _unsigned(claims: dict) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


FORGERIES = {
    "expired": lambda s, i: _sign(s, _claims(s, i, iat=int(time.time()) - 7200,
                                              exp=int(time.time()) - 3600)),
    "tampered": lambda s, i: _sign(s, _claims(s, i))[:-4] + "AAAA",
    "other-secret": lambda s, i: jwt.encode(_claims(s, i), "y" * 48, algorithm="HS256"),
    "alg-none": lambda s, i: _unsigned(_claims(s, i)),
    "wrong-issuer": lambda s, i: _sign(s, _claims(s, i, iss="someone-else")),
    "admin-audience": lambda s, i: _sign(s, _claims(s, i, aud=AUDIENCE["admin"])),
    "no-session": lambda s, i: _sign(s, _claims(s, i, sid=None)),
    "stale-version": lambda s, i: _sign(s, _claims(s, i, ver=1)),
    "unknown-account": lambda s, i: _sign(s, _claims(s, uuid.uuid4())),
    "garbage": lambda s, i: "not.a.token",
    "huge": lambda s, i: "x" * 5000,
}  # fmt: skip


@pytest.mark.parametrize("forgery", list(FORGERIES), ids=list(FORGERIES))
async def test_current_client_refuses_bad_token_alike(
    api, db, settings, forgery
) -> None:
    client = await create_client(db, settings)
    token = FORGERIES[forgery](settings, client.id)

    response = await api.get("/api/client", headers=bearer(token))

    assert_matches(response, "/api/client", "get")
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer"}],
    ids=["none", "basic", "empty-bearer"],
)  # fmt: skip
async def test_current_client_refuses_missing_credentials(api, headers) -> None:
    response = await api.get("/api/client", headers=headers)
    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


async def test_client_token_reaches_no_admin_operation(api, db, settings) -> None:
    client = await create_client(db, settings)
    other = uuid.uuid4()
    calls = [
        ("GET", "/api/admin", None),
        ("PATCH", "/api/admin", {"email": "x@example.com"}),
        ("DELETE", "/api/admin", None), ("PUT", "/api/admin/password", {}),
        ("POST", "/api/admin/register",
         {"email": "x@example.com", "password": PASSWORD}),
        ("GET", f"/api/admin/{other}", None), ("PATCH", f"/api/admin/{other}", {}),
        ("DELETE", f"/api/admin/{other}", None), ("POST", "/api/admin/logout", None),
        ("GET", f"/api/client/{client.id}", None),
        ("PATCH", f"/api/client/{client.id}", {}),
        ("DELETE", f"/api/client/{client.id}", None),
    ]  # fmt: skip
    for method, path, body in calls:
        if body == {} and method == "PUT":
            body = {"current_password": PASSWORD, "new_password": "x" * 12,
                    "new_password_confirm": "x" * 12}  # fmt: skip
        response = await api.request(method, path, json=body, headers=client.headers)
        # refused as staff's, the client's session kept (a 401 would end it)
        assert (response.status_code, response.json()) == (
            403, {"error": "forbidden", "description": STAFF_ONLY},
        ), (method, path)  # fmt: skip


async def test_admin_token_is_no_client_token(api, db, settings) -> None:
    admin = await create_admin(db, settings, role="owner")

    response = await api.get("/api/client", headers=admin.headers)

    assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


async def _login(api, email: str, kind: str = "client") -> dict:
    response = await api.post(
        f"/api/{kind}/login", json={"email": email, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def test_refresh_rotates_and_reuse_revokes_the_family(api, db, settings) -> None:
    client = await create_client(db, settings)
    first = await _login(api, client.email)

    second = await api.post(
        "/api/client/token/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert second.status_code == 200, second.text
    second = second.json()
    assert second["client"]["id"] == str(client.id)
    assert second["refresh_token"] != first["refresh_token"]
    third = (await api.post(
        "/api/client/token/refresh", json={"refresh_token": second["refresh_token"]}
    )).json()  # fmt: skip
    assert (
        await api.get("/api/client", headers=bearer(third["token"]))
    ).status_code == 200

    # the first token again: it leaked, so the family dies, newest members too
    reuse = await api.post(
        "/api/client/token/refresh", json={"refresh_token": first["refresh_token"]}
    )

    assert_api_error(reuse, 401, "unauthorized")
    newest = await api.post(
        "/api/client/token/refresh", json={"refresh_token": third["refresh_token"]}
    )
    assert_api_error(newest, 401, "unauthorized")
    for token in (first["token"], second["token"], third["token"]):
        response = await api.get("/api/client", headers=bearer(token))
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)


async def test_refresh_of_one_session_leaves_another_alone(api, db, settings) -> None:
    client = await create_client(db, settings)
    laptop = await _login(api, client.email)
    phone = await _login(api, client.email)
    rotated = await api.post(
        "/api/client/token/refresh", json={"refresh_token": laptop["refresh_token"]}
    )
    assert rotated.status_code == 200

    await api.post(
        "/api/client/token/refresh", json={"refresh_token": laptop["refresh_token"]}
    )

    assert (
        await api.get("/api/client", headers=bearer(phone["token"]))
    ).status_code == 200
    again = await api.post(
        "/api/client/token/refresh", json={"refresh_token": phone["refresh_token"]}
    )
    assert again.status_code == 200


@pytest.mark.parametrize(
    "refresh_token",
    ["", "nope", f"{uuid.uuid4().hex}.{'A' * 43}", "x" * 201],
    ids=["empty", "malformed", "unknown-family", "too-long"],
)
async def test_refresh_refuses_unknown_token(api, refresh_token) -> None:
    response = await api.post(
        "/api/client/token/refresh", json={"refresh_token": refresh_token}
    )
    assert response.status_code in (400, 401)
    assert_api_error(response, response.status_code)


async def test_refresh_token_of_a_client_is_refused_for_admins(
    api, db, settings
) -> None:
    client = await create_client(db, settings)
    session = await _login(api, client.email)

    response = await api.post(
        "/api/admin/token/refresh", json={"refresh_token": session["refresh_token"]}
    )

    assert_api_error(response, 401, "unauthorized")
    still = await api.post(
        "/api/client/token/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert still.status_code == 200


async def test_admin_refresh_and_logout(api, db, settings) -> None:
    admin = await create_admin(db, settings, role="manager")
    session = await _login(api, admin.email, kind="admin")

    rotated = await api.post(
        "/api/admin/token/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert rotated.status_code == 200
    fresh = rotated.json()
    assert fresh["admin"] == {"id": str(admin.id), "email": admin.email,
                              "role": "manager", "coworking_ids": []}  # fmt: skip

    out = await api.post("/api/admin/logout", headers=bearer(fresh["token"]))

    assert out.status_code == 204
    assert_api_error(await api.get("/api/admin", headers=bearer(fresh["token"])), 401)
    dead = await api.post(
        "/api/admin/token/refresh", json={"refresh_token": fresh["refresh_token"]}
    )
    assert dead.status_code == 401


async def test_logout_ends_this_session_only(api, db, settings) -> None:
    client = await create_client(db, settings)
    laptop = await _login(api, client.email)
    phone = await _login(api, client.email)

    response = await api.post("/api/client/logout", headers=bearer(laptop["token"]))

    assert response.status_code == 204 and response.content == b""
    assert_api_error(await api.get("/api/client", headers=bearer(laptop["token"])), 401)
    refused = await api.post(
        "/api/client/token/refresh", json={"refresh_token": laptop["refresh_token"]}
    )
    assert refused.status_code == 401
    assert (
        await api.get("/api/client", headers=bearer(phone["token"]))
    ).status_code == 200


async def test_logout_all_sessions_ends_every_session(api, db, settings) -> None:
    client = await create_client(db, settings)
    laptop = await _login(api, client.email)
    phone = await _login(api, client.email)

    response = await api.post(
        "/api/client/logout",
        json={"all_sessions": True},
        headers=bearer(laptop["token"]),
    )

    assert response.status_code == 204
    for session in (laptop, phone):
        assert_api_error(
            await api.get("/api/client", headers=bearer(session["token"])), 401
        )
        refused = await api.post(
            "/api/client/token/refresh",
            json={"refresh_token": session["refresh_token"]},
        )
        assert refused.status_code == 401
    again = await _login(api, client.email)
    assert (
        await api.get("/api/client", headers=bearer(again["token"]))
    ).status_code == 200


async def test_role_change_applies_to_existing_tokens(api, db, settings) -> None:
    owner = await create_admin(db, settings, role="owner")
    manager = await create_admin(db, settings, role="manager")
    client = await create_client(db, settings)

    demoted = await api.patch(
        f"/api/admin/{manager.id}", json={"role": "support"}, headers=owner.headers
    )
    assert demoted.status_code == 200

    response = await api.patch(
        f"/api/client/{client.id}", json={"verified": True}, headers=manager.headers
    )
    assert_api_error(response, 403, "forbidden")


async def test_valkey_down_refuses_with_503_not_200(
    resources: Resources, db, settings
) -> None:
    client = await create_client(db, settings)
    dead = valkey.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    broken = Resources(
        resources.settings, resources.pool, dead, resources.temporal, resources.store
    )
    app = create_app(resources.settings, resources=broken)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        me = await http.get("/api/client", headers=client.headers)
        login = await http.post(
            "/api/client/login", json={"email": client.email, "password": PASSWORD}
        )
    await dead.aclose()

    assert_api_error(me, 503, "unavailable")
    assert_api_error(login, 503, "unavailable")
    assert me.headers["retry-after"]


async def test_issue_access_token_carries_session_and_version(settings) -> None:
    subject = uuid.uuid4()
    token = issue_access_token(
        settings,
        kind="admin",
        subject=subject,
        role="support",
        session_id="s1",
        version=3,
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["sid"], claims["ver"], claims["aud"]) == ("s1", 3, "tlounge:admin")


async def test_a_clients_token_on_a_staff_route_is_refused_before_its_query_is_read(
    api, db, settings
) -> None:
    """Told how to mend a misspelt parameter, a client would mend a request
    that is still refused."""
    client = await create_client(db, settings)
    anyone = "3f1c9a52-0a4e-4c55-9d61-5b0e2f7f2a10"
    calls = [
        ("POST", f"/api/reservations/{anyone}/confirm?versoin=1"),
        ("POST", f"/api/reservations/{anyone}/check-in?versoin=1"),
        ("GET", "/api/reservations?starts_frm=2099-01-01T00:00:00Z"),
        ("GET", f"/api/client/{client.id}/reservations?limt=1"),
        ("GET", "/api/admin?foo=1"),
    ]
    for method, path in calls:
        response = await api.request(method, path, headers=client.headers)
        assert (response.status_code, response.json()) == (
            403, {"error": "forbidden", "description": STAFF_ONLY},
        ), (method, path)  # fmt: skip
    # staff let in hear of the misspelling
    owner = await create_admin(db, settings, role="owner")
    misspelt = await api.get(
        "/api/reservations?starts_frm=2099-01-01T00:00:00Z", headers=owner.headers
    )
    assert (misspelt.status_code, misspelt.json()["description"]) == (
        400, "query.starts_frm: not a parameter of this operation; did you mean"
        " starts_from?",
    )  # fmt: skip
