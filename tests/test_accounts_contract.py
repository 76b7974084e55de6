"""Every client and admin operation of the contract, checked against its schemas.

The reservation lists under /api/client are walked with the reservations.
"""

import httpx

from tests.contract import assert_matches, operation, operations
from tests.factories import PASSWORD, create_admin

ELSEWHERE = {
    ("get", "/api/client/reservations"),
    ("get", "/api/client/{client_id}/reservations"),
}
MISSING = "00000000-0000-4000-8000-000000000000"


class Walk:
    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self.seen: dict[tuple[str, str], set[int]] = {}

    async def call(
        self, method: str, template: str, status: int, *, path: str | None = None,
        token: str | None = None, body: object = None,
    ) -> dict:  # fmt: skip
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.api.request(
            method, path or template, json=body, headers=headers
        )
        assert response.status_code == status, (method, template, response.text)
        assert_matches(response, template, method)
        self.seen.setdefault((method, template), set()).add(status)
        return response.json() if response.content else {}


async def test_walk_every_client_and_admin_operation(api, db, settings) -> None:
    owner = await create_admin(db, settings, role="owner")
    walk = Walk(api)
    form = {"name": "Ada", "surname": "Lovelace", "patronymic": "Byron",
            "email": "ada@example.com", "password": PASSWORD,
            "send_notifications": True}  # fmt: skip
    login = {"email": "ada@example.com", "password": PASSWORD}

    # client: register, sign in, the profile, the password
    await walk.call("post", "/api/client/register", 400, body={**form, "name": ""})
    registered = await walk.call("post", "/api/client/register", 200, body=form)
    client_id = registered["client"]["id"]
    await walk.call("post", "/api/client/login", 400, body={"email": "ada"})
    signed_in = await walk.call("post", "/api/client/login", 200, body=login)
    token = signed_in["token"]
    await walk.call("get", "/api/client", 401)
    await walk.call("get", "/api/client", 200, token=token)
    await walk.call("patch", "/api/client", 401, body={"name": "Augusta"})
    await walk.call("patch", "/api/client", 400, token=token, body={"name": "x" * 16})
    await walk.call("patch", "/api/client", 200, token=token, body={"name": "Augusta"})
    change = {"current_password": PASSWORD, "new_password": "new secret words",
              "new_password_confirm": "new secret words"}  # fmt: skip
    await walk.call("put", "/api/client/password", 401, body=change)
    await walk.call(
        "put", "/api/client/password", 400, token=token,
        body={**change, "new_password_confirm": "something else"},
    )  # fmt: skip
    token = (
        await walk.call("put", "/api/client/password", 200, token=token, body=change)
    )["token"]

    # staff on the client
    by_id = "/api/client/{client_id}"
    here = f"/api/client/{client_id}"
    missing = f"/api/client/{MISSING}"
    await walk.call("get", by_id, 401, path=here)
    await walk.call("get", by_id, 404, path=missing, token=owner.token)
    await walk.call("get", by_id, 200, path=here, token=owner.token)
    await walk.call("patch", by_id, 401, path=here, body={"verified": True})
    await walk.call(
        "patch", by_id, 400, path=here, token=owner.token, body={"verified": 3}
    )
    await walk.call("patch", by_id, 404, path=missing, token=owner.token, body={})
    edited = await walk.call(
        "patch", by_id, 200, path=here, token=owner.token, body={"verified": True}
    )
    assert edited["verified"] is True

    # admins: sign in, the account, the password, registering another
    admin_login = {"email": owner.email, "password": PASSWORD}
    await walk.call("post", "/api/admin/login", 400, body={"password": PASSWORD})
    admin_token = (await walk.call("post", "/api/admin/login", 200, body=admin_login))[
        "token"
    ]
    await walk.call("get", "/api/admin", 401)
    await walk.call("get", "/api/admin", 200, token=admin_token)
    await walk.call("patch", "/api/admin", 401, body={})
    await walk.call(
        "patch", "/api/admin", 400, token=admin_token, body={"email": "bad"}
    )
    await walk.call(
        "patch", "/api/admin", 200, token=admin_token, body={"email": owner.email}
    )
    admin_change = {**change, "current_password": PASSWORD}
    await walk.call("put", "/api/admin/password", 401, body=admin_change)
    await walk.call(
        "put", "/api/admin/password", 400, token=admin_token,
        body={**admin_change, "new_password_confirm": "something else"},
    )  # fmt: skip
    admin_token = (
        await walk.call(
            "put", "/api/admin/password", 200, token=admin_token, body=admin_change
        )
    )["token"]
    new_admin = {"email": "support@example.com", "password": PASSWORD}
    await walk.call(
        "post", "/api/admin/register", 400, token=admin_token, body={"email": "x"}
    )
    other = await walk.call(
        "post", "/api/admin/register", 200, token=admin_token, body=new_admin
    )
    other_token = other["token"]
    other_path = f"/api/admin/{other['admin']['id']}"

    # admins by id
    admin_by_id = "/api/admin/{admin_id}"
    missing_admin = f"/api/admin/{MISSING}"
    await walk.call("get", admin_by_id, 401, path=other_path)
    await walk.call("get", admin_by_id, 404, path=missing_admin, token=admin_token)
    await walk.call("get", admin_by_id, 200, path=other_path, token=admin_token)
    await walk.call("patch", admin_by_id, 401, path=other_path, body={})
    await walk.call(
        "patch", admin_by_id, 400, path=other_path, token=admin_token, body={"email": 1}
    )
    await walk.call(
        "patch", admin_by_id, 404, path=missing_admin, token=admin_token, body={}
    )
    await walk.call(
        "patch", admin_by_id, 200, path=other_path, token=admin_token,
        body={"email": "help@example.com"},
    )  # fmt: skip

    # deletions last
    await walk.call("delete", by_id, 401, path=here)
    await walk.call("delete", by_id, 404, path=missing, token=admin_token)
    await walk.call("delete", "/api/client", 401)
    await walk.call(
        "delete", "/api/client", 400, token=token, body={"password": "wrong password"}
    )
    await walk.call("delete", "/api/client", 204, token=token)
    await walk.call("delete", by_id, 404, path=here, token=admin_token)
    second = await walk.call("post", "/api/client/register", 200, body=form)
    await walk.call(
        "delete",
        by_id,
        204,
        path=f"/api/client/{second['client']['id']}",
        token=admin_token,
    )
    await walk.call("delete", admin_by_id, 401, path=other_path)
    await walk.call("delete", admin_by_id, 404, path=missing_admin, token=admin_token)
    await walk.call("delete", "/api/admin", 401)
    await walk.call(
        "delete",
        "/api/admin",
        400,
        token=other_token,
        body={"password": "wrong password"},
    )
    await walk.call("delete", "/api/admin", 204, token=other_token)
    third = await walk.call(
        "post", "/api/admin/register", 200, token=admin_token, body=new_admin
    )
    await walk.call(
        "delete",
        admin_by_id,
        204,
        path=f"/api/admin/{third['admin']['id']}",
        token=admin_token,
    )

    ours = operations("/api/client", "/api/admin") - ELSEWHERE
    assert set(walk.seen) == ours
    # every status the contract lists for these operations was seen
    listed = {
        (method, path): {int(code) for code in operation(path, method)["responses"]}
        for method, path in ours
    }
    assert walk.seen == listed
