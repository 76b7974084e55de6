"""Forged, stale and borrowed tokens: every one a bare 401, every staff route shut."""

from dataclasses import replace

import httpx

from api.auth import STAFF_ONLY
from api.main import create_app
from tests.factories import (
    PASSWORD,
    create_admin,
    create_client,
    create_coworking,
    create_seat,
)
from tests.hardening.hardening_kit import (
    UNAUTHORIZED,
    admin_routes,
    fill_path,
    forged_admin_tokens,
    forged_tokens,
    snapshot,
)


async def _answers(api, path: str, tokens: dict[str, str]) -> dict[str, tuple]:
    out = {}
    for name, token in tokens.items():
        response = await api.get(path, headers={"Authorization": f"Bearer {token}"})
        out[name] = (response.status_code, response.json(),
                     response.headers.get("www-authenticate"))  # fmt: skip
    return out


async def test_read_profile_with_forged_token_same_bare_401(api, db, settings) -> None:
    client = await create_client(db, settings)
    admin = await create_admin(db, settings)
    signed_in = {}
    for kind, account in (("client", client), ("admin", admin)):
        response = await api.post(
            f"/api/{kind}/login", json={"email": account.email, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        signed_in[kind] = response.json()

    for kind, account in (("client", client), ("admin", admin)):
        tokens = forged_tokens(
            settings, valid=signed_in[kind]["token"], subject=account.id, kind=kind,
            refresh=signed_in[kind]["refresh_token"],
        )  # fmt: skip
        answers = await _answers(api, f"/api/{kind}", tokens)
        assert answers == {name: (401, UNAUTHORIZED, "Bearer") for name in tokens}, kind
        # the genuine token still works, so the 401s are about the forgery
        genuine = await api.get(
            f"/api/{kind}",
            headers={"Authorization": f"Bearer {signed_in[kind]['token']}"},
        )
        assert (genuine.status_code, genuine.json()["id"]) == (200, str(account.id))


async def test_read_client_profile_with_other_kind_token_refused(
    api, db, settings
) -> None:
    client = await create_client(db, settings)
    admin = await create_admin(db, settings)
    as_client = await api.get("/api/client", headers=admin.headers)
    as_admin = await api.get("/api/admin", headers=client.headers)
    assert (as_client.status_code, as_client.json()) == (401, UNAUTHORIZED)
    # a valid client session is kept (a 401 would sign its app out): it is
    # told the route is staff's
    assert (as_admin.status_code, as_admin.json()) == (
        403, {"error": "forbidden", "description": STAFF_ONLY},
    )  # fmt: skip


async def test_call_every_staff_route_without_staff_token_refused(
    api, db, settings, resources
) -> None:
    coworking_id = await create_coworking(db)
    seat_id = await create_seat(db, coworking_id)
    client = await create_client(db, settings)
    owner = await create_admin(db, settings)
    # the singular /api/coworking routes act on a default coworking
    with_default = settings.model_copy(update={"default_coworking_id": coworking_id})
    app = create_app(with_default, resources=replace(resources, settings=with_default))
    tokens: dict[str, str | None] = {
        "no_token": None,
        **forged_admin_tokens(settings, client_id=client.id, client_token=client.token),
    }
    values = {
        "coworking_id": str(coworking_id), "seat_id": str(seat_id),
        "client_id": str(client.id), "admin_id": str(owner.id),
    }  # fmt: skip
    routes = list(admin_routes(app))
    assert len(routes) >= 45 and ("POST", "/api/admin/register") in routes
    before = await snapshot(db)

    successes, unexpected = [], []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        await _probe(http, routes, tokens, values, successes, unexpected)
    assert successes == []
    assert unexpected == []
    assert await snapshot(db) == before


async def _probe(http, routes, tokens, values, successes, unexpected) -> None:
    for method, path in routes:
        url = fill_path(path, values)
        for name, token in tokens.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            body = {} if method in ("POST", "PATCH", "PUT") else None
            response = await http.request(method, url, headers=headers, json=body)
            if response.status_code < 400:
                successes.append((method, path, name, response.status_code))
            elif response.status_code == 401:
                if response.json() != UNAUTHORIZED:
                    unexpected.append((method, path, name, response.text))
            elif response.status_code not in (400, 403) or name != "client_token":
                # a client's own token may reach a principal route: told 403, or 400
                # when the empty body fails validation before the role is checked;
                # anything else must not get past authentication
                unexpected.append((method, path, name, response.status_code))
