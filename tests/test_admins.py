"""Admin accounts through the API: roles, registration by owners, the last owner."""

import uuid

import pytest

from tests.contract import assert_api_error, assert_matches
from tests.factories import PASSWORD, create_admin, create_coworking


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_admin_login_and_current_account(api, db, settings) -> None:
    coworking = uuid.uuid4()
    manager = await create_admin(db, settings, role="manager", coworkings=[coworking])

    login = await api.post(
        "/api/admin/login", json={"email": manager.email.upper(), "password": PASSWORD}
    )
    me = await api.get("/api/admin", headers=bearer(login.json()["token"]))

    assert_matches(login, "/api/admin/login", "post")
    assert_matches(me, "/api/admin", "get")
    expected = {"id": str(manager.id), "email": manager.email, "role": "manager",
                "coworking_ids": [str(coworking)]}  # fmt: skip
    assert login.json()["admin"] == expected
    assert me.json() == expected


async def test_admin_login_refused_alike(api, db, settings) -> None:
    admin = await create_admin(db, settings)

    wrong = await api.post(
        "/api/admin/login", json={"email": admin.email, "password": "x" * 12}
    )
    unknown = await api.post(
        "/api/admin/login", json={"email": "who@example.com", "password": PASSWORD}
    )

    assert_api_error(wrong, 400, "invalid_credentials")
    assert unknown.json() == wrong.json()


async def test_client_account_does_not_sign_in_as_admin(api, db, settings) -> None:
    from tests.factories import create_client

    client = await create_client(db, settings)

    response = await api.post(
        "/api/admin/login", json={"email": client.email, "password": PASSWORD}
    )

    assert_api_error(response, 400, "invalid_credentials")


async def test_edit_own_admin_email(api, db, settings) -> None:
    support = await create_admin(db, settings, role="support")
    await create_admin(db, settings, email="taken@example.com")

    response = await api.patch(
        "/api/admin", json={"email": "Desk@Example.com"}, headers=support.headers
    )
    taken = await api.patch(
        "/api/admin", json={"email": "TAKEN@example.com"}, headers=support.headers
    )
    own_role = await api.patch(
        "/api/admin", json={"role": "owner"}, headers=support.headers
    )

    assert_matches(response, "/api/admin", "patch")
    assert response.json()["email"] == "Desk@example.com"
    assert_api_error(taken, 400, "email_taken")
    assert_matches(own_role, "/api/admin", "patch")
    assert own_role.status_code == 400
    assert (
        await db.fetchval("SELECT role FROM admin.admins WHERE id = $1", support.id)
        == "support"
    )


async def test_change_admin_password(api, db, settings) -> None:
    admin = await create_admin(db, settings, role="manager")
    change = {"current_password": PASSWORD, "new_password": "another long one",
              "new_password_confirm": "another long one"}  # fmt: skip

    response = await api.put("/api/admin/password", json=change, headers=admin.headers)

    assert_matches(response, "/api/admin/password", "put")
    assert response.json()["admin"]["id"] == str(admin.id)
    assert_api_error(await api.get("/api/admin", headers=admin.headers), 401)
    fresh = await api.get("/api/admin", headers=bearer(response.json()["token"]))
    assert fresh.status_code == 200


@pytest.mark.parametrize("role", ["support", "manager"])
async def test_every_admin_role_needs_a_strong_password(
    api, db, settings, role
) -> None:
    owner = await create_admin(db, settings, role="owner")
    coworking_ids = [str(await create_coworking(db))] if role == "manager" else []

    response = await api.post(
        "/api/admin/register",
        json={"email": "weak@example.com", "password": "12345678", "role": role,
              "coworking_ids": coworking_ids},
        headers=owner.headers,
    )  # fmt: skip

    assert_api_error(response, 400, "invalid_body")
    assert response.json()["description"] == (
        "password: a staff password is shorter than 12 characters"
    )
    assert await db.fetchval("SELECT count(*) FROM admin.admins") == 1


async def test_a_staff_password_may_not_hold_the_name_before_an_email_tag(
    api, db, settings
) -> None:
    owner = await create_admin(db, settings, role="owner")

    response = await api.post(
        "/api/admin/register",
        json={"email": "carolx+ops@example.com", "password": "CarolX-winter-26"},
        headers=owner.headers,
    )

    assert_api_error(response, 400, "invalid_body")
    assert response.json()["description"] == (
        "password: a staff password contains the email's name, before the @"
    )


@pytest.mark.parametrize(
    "password",
    ["JohnSmith-2026!!", "J0hn-Blue-Ocean77", "Blue-Ocean77#Sm1th",
     "Blue-Ocean77#\uff53\uff4d\uff49\uff54\uff48", "Blue-Ocean77#SM\u0130TH",
     "Blue-Ocean77#\u0455mith", "Blue-Ocean77#\u0405\u041c\u0406\u0422\u041d",
     "Blue-Ocean77#sm-ith"],
    ids=["plain", "zero-for-o", "one-for-i", "full-width", "dotted-capital-i",
         "cyrillic-dze", "cyrillic-capitals", "parted"],
)  # fmt: skip
@pytest.mark.parametrize("email", ["john.smith", "john.smith2", "john2.smith"])
async def test_a_staff_password_may_not_hold_one_name_of_a_dotted_email(
    api, db, settings, password: str, email: str
) -> None:
    owner = await create_admin(db, settings, role="owner")

    response = await api.post(
        "/api/admin/register",
        json={"email": f"{email}@example.com", "password": password},
        headers=owner.headers,
    )

    assert_api_error(response, 400, "invalid_body")
    assert response.json()["description"] == (
        "password: a staff password contains the email's name, before the @"
    )
    assert await db.fetchval("SELECT count(*) FROM admin.admins") == 1


async def test_an_admin_cannot_change_to_a_weak_password(api, db, settings) -> None:
    admin = await create_admin(db, settings, role="owner")
    before = await db.fetchval(
        "SELECT password_hash FROM admin.admins WHERE id = $1", admin.id
    )
    weak = admin.email.split("@")[0] + "-2026!"
    change = {"current_password": PASSWORD, "new_password": weak,
              "new_password_confirm": weak}  # fmt: skip

    response = await api.put("/api/admin/password", json=change, headers=admin.headers)

    assert_api_error(response, 400, "invalid_body")
    assert response.json()["description"] == (
        "new_password: a staff password contains the email's name, before the @"
    )
    after = await db.fetchval(
        "SELECT password_hash FROM admin.admins WHERE id = $1", admin.id
    )
    assert after == before
    assert (await api.get("/api/admin", headers=admin.headers)).status_code == 200


async def test_owner_registers_support_by_default(api, db, settings) -> None:
    owner = await create_admin(db, settings, role="owner")

    response = await api.post(
        "/api/admin/register",
        json={"email": "new@example.com", "password": "a fine password"},
        headers=owner.headers,
    )

    assert_matches(response, "/api/admin/register", "post")
    body = response.json()
    assert body["admin"]["role"] == "support" and body["admin"]["coworking_ids"] == []
    me = await api.get("/api/admin", headers=bearer(body["token"]))
    assert me.json()["email"] == "new@example.com"
    # the owner gets the contract's short-lived token, never a month's sign-in
    assert "refresh_token" not in body
    login = await api.post(
        "/api/admin/login",
        json={"email": "new@example.com", "password": "a fine password"},
    )
    assert login.status_code == 200


async def test_owner_registers_manager_of_coworkings(api, db, settings) -> None:
    owner = await create_admin(db, settings, role="owner")
    coworkings = sorted([await create_coworking(db), await create_coworking(db)])

    response = await api.post(
        "/api/admin/register",
        json={"email": "m@example.com", "password": "a fine password",
              "role": "manager", "coworking_ids": [str(c) for c in coworkings]},
        headers=owner.headers,
    )  # fmt: skip

    assert response.status_code == 200, response.text
    admin_id = uuid.UUID(response.json()["admin"]["id"])
    rows = await db.fetch(
        "SELECT coworking_id FROM admin.admin_coworkings"
        " WHERE admin_id = $1 ORDER BY 1",
        admin_id,
    )
    assert [row["coworking_id"] for row in rows] == coworkings


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"role": "support", "coworking_ids": [str(uuid.uuid4())]},
            400,
            "invalid_body",
        ),
        ({"role": "root"}, 400, "invalid_body"),
        ({"email": "taken@example.com"}, 400, "email_taken"),
        ({"password": "short"}, 400, "invalid_body"),
    ],
    ids=["coworkings-for-support", "unknown-role", "email-taken", "short-password"],
)
async def test_register_admin_refused(api, db, settings, body, status, code) -> None:
    owner = await create_admin(db, settings, role="owner", email="taken@example.com")
    form = {"email": "new@example.com", "password": "a fine password", **body}

    response = await api.post("/api/admin/register", json=form, headers=owner.headers)

    assert_api_error(response, status, code)
    assert await db.fetchval("SELECT count(*) FROM admin.admins") == 1


@pytest.mark.parametrize("role", ["manager", "support"])
async def test_only_owners_manage_admins(api, db, settings, role) -> None:
    admin = await create_admin(db, settings, role=role)
    other = await create_admin(db, settings, role="support")

    attempts = [
        await api.post("/api/admin/register", json={"email": "n@example.com",
                       "password": "a fine password"}, headers=admin.headers),
        await api.patch(f"/api/admin/{other.id}", json={"role": "owner"},
                        headers=admin.headers),
        await api.delete(f"/api/admin/{other.id}", headers=admin.headers),
    ]  # fmt: skip

    for response in attempts:
        assert_api_error(response, 403, "forbidden")
    assert await db.fetchval("SELECT count(*) FROM admin.admins") == 2
    assert (
        await db.fetchval("SELECT role FROM admin.admins WHERE id = $1", other.id)
        == "support"
    )


async def test_read_admin_by_id_by_role(api, db, settings) -> None:
    owner = await create_admin(db, settings, role="owner")
    support = await create_admin(db, settings, role="support")
    manager = await create_admin(db, settings, role="manager")

    by_owner = await api.get(f"/api/admin/{manager.id}", headers=owner.headers)
    by_support = await api.get(f"/api/admin/{owner.id}", headers=support.headers)
    by_manager_self = await api.get(f"/api/admin/{manager.id}", headers=manager.headers)
    by_manager_other = await api.get(f"/api/admin/{owner.id}", headers=manager.headers)
    missing = await api.get(f"/api/admin/{uuid.uuid4()}", headers=owner.headers)

    for response in (by_owner, by_support, by_manager_self):
        assert_matches(response, "/api/admin/{admin_id}", "get")
        assert response.status_code == 200
    assert by_support.json()["role"] == "owner"
    assert_api_error(by_manager_other, 403, "forbidden")
    assert_matches(missing, "/api/admin/{admin_id}", "get")
    assert_api_error(missing, 404, "not_found")


async def test_owner_edits_role_and_coworkings(api, db, settings) -> None:
    owner = await create_admin(db, settings, role="owner")
    support = await create_admin(db, settings, role="support")
    coworking = await create_coworking(db)

    promoted = await api.patch(
        f"/api/admin/{support.id}",
        json={"role": "manager", "coworking_ids": [str(coworking), str(coworking)]},
        headers=owner.headers,
    )
    demoted = await api.patch(
        f"/api/admin/{support.id}", json={"role": "support"}, headers=owner.headers
    )

    assert_matches(promoted, "/api/admin/{admin_id}", "patch")
    assert promoted.json()["coworking_ids"] == [str(coworking)]
    assert demoted.json() == {"id": str(support.id), "email": support.email,
                              "role": "support", "coworking_ids": []}  # fmt: skip
    assert await db.fetchval("SELECT count(*) FROM admin.admin_coworkings") == 0
    missing = await api.patch(
        f"/api/admin/{uuid.uuid4()}", json={}, headers=owner.headers
    )
    assert_matches(missing, "/api/admin/{admin_id}", "patch")
    assert_api_error(missing, 404, "not_found")


async def test_manager_of_a_coworking_that_does_not_exist_is_refused(
    api, db, settings
) -> None:
    owner = await create_admin(db, settings, role="owner")
    support = await create_admin(db, settings, role="support")
    real, ghost = await create_coworking(db), uuid.uuid4()

    registered = await api.post(
        "/api/admin/register",
        json={"email": "m@example.com", "password": "a fine password",
              "role": "manager", "coworking_ids": [str(real), str(ghost)]},
        headers=owner.headers,
    )  # fmt: skip
    promoted = await api.patch(
        f"/api/admin/{support.id}",
        json={"role": "manager", "coworking_ids": [str(ghost)]},
        headers=owner.headers,
    )

    for response in (registered, promoted):
        assert (response.status_code, response.json()) == (
            400,
            {
                "error": "invalid_body",
                "description": f"coworking_ids: no coworking {ghost}",
            },
        )
    rows = await db.fetch("SELECT email, role FROM admin.admins ORDER BY email")
    assert [(row["email"], row["role"]) for row in rows] == sorted(
        [(owner.email, "owner"), (support.email, "support")]
    )
    assert await db.fetchval("SELECT count(*) FROM admin.admin_coworkings") == 0


async def test_a_long_list_of_coworkings_is_bounded_and_so_is_its_error(
    api, db, settings
) -> None:
    import uuid

    owner = await create_admin(db, settings, role="owner")
    support = await create_admin(db, settings, role="support")
    ghosts = [uuid.uuid4() for _ in range(5)]
    too_many = await api.patch(
        f"/api/admin/{support.id}",
        json={"role": "manager", "coworking_ids": [str(uuid.uuid4())] * 1001},
        headers=owner.headers,
    )
    unknown = await api.patch(
        f"/api/admin/{support.id}",
        json={"role": "manager", "coworking_ids": [str(g) for g in ghosts]},
        headers=owner.headers,
    )

    assert (too_many.status_code, too_many.json()["description"]) == (
        400,
        "coworking_ids: List should have at most 1000 items after validation, not 1001",
    )
    assert (unknown.status_code, unknown.json()["description"]) == (
        400,
        f"coworking_ids: no coworking {ghosts[0]}, {ghosts[1]}, {ghosts[2]} and 2 more",
    )
    role = await db.fetchval("SELECT role FROM admin.admins WHERE id = $1", support.id)
    assert role == "support"


async def test_coworkings_only_for_managers_on_edit(api, db, settings) -> None:
    owner = await create_admin(db, settings, role="owner")
    support = await create_admin(db, settings, role="support")

    response = await api.patch(
        f"/api/admin/{support.id}",
        json={"coworking_ids": [str(uuid.uuid4())]},
        headers=owner.headers,
    )

    assert_api_error(response, 400, "invalid_body")


async def test_last_owner_can_be_neither_demoted_nor_deleted(api, db, settings) -> None:
    owner = await create_admin(db, settings, role="owner")

    demote = await api.patch(
        f"/api/admin/{owner.id}", json={"role": "manager"}, headers=owner.headers
    )
    delete_self = await api.delete("/api/admin", headers=owner.headers)
    delete_by_id = await api.delete(f"/api/admin/{owner.id}", headers=owner.headers)

    for response in (demote, delete_self, delete_by_id):
        assert_api_error(response, 409, "last_owner")
    assert await db.fetchval("SELECT role FROM admin.admins") == "owner"

    second = await create_admin(db, settings, role="owner")
    response = await api.delete(f"/api/admin/{owner.id}", headers=second.headers)
    assert response.status_code == 204


async def test_owner_deletes_admin_and_its_tokens_die(api, db, settings) -> None:
    owner = await create_admin(db, settings, role="owner")
    manager = await create_admin(
        db, settings, role="manager", coworkings=[uuid.uuid4()]
    )

    response = await api.delete(f"/api/admin/{manager.id}", headers=owner.headers)
    again = await api.delete(f"/api/admin/{manager.id}", headers=owner.headers)

    assert_matches(response, "/api/admin/{admin_id}", "delete")
    assert response.status_code == 204
    assert_matches(again, "/api/admin/{admin_id}", "delete")
    assert_api_error(again, 404, "not_found")
    assert_api_error(await api.get("/api/admin", headers=manager.headers), 401)
    assert await db.fetchval("SELECT count(*) FROM admin.admin_coworkings") == 0


async def test_admin_deletes_own_account(api, db, settings) -> None:
    support = await create_admin(db, settings, role="support")

    wrong = await api.request(
        "DELETE", "/api/admin", json={"password": "x" * 12}, headers=support.headers
    )
    response = await api.request(
        "DELETE", "/api/admin", json={"password": PASSWORD}, headers=support.headers
    )

    assert_matches(wrong, "/api/admin", "delete")
    assert_api_error(wrong, 400, "invalid_password")
    assert_matches(response, "/api/admin", "delete")
    assert response.status_code == 204
    assert await db.fetchval("SELECT count(*) FROM admin.admins") == 0


async def test_a_role_that_may_not_act_is_told_so_before_its_body_is_checked(
    api, db, settings
) -> None:
    from tests.factories import create_client

    coworking = await create_coworking(db)
    manager = await create_admin(db, settings, role="manager", coworkings=[coworking])
    support = await create_admin(db, settings, role="support")
    client = await create_client(db, settings)
    before = await db.fetchval("SELECT count(*) FROM admin.admins")
    # every body is malformed as well
    attempts = {
        "manager registers": (manager, "post", "/api/admin/register", {}),
        "manager edits": (manager, "patch", f"/api/admin/{support.id}", {"x": 1}),
        "manager deletes": (manager, "delete", f"/api/admin/{support.id}", None),
        "manager opens": (manager, "post", "/api/coworkings", {"name": "X"}),
        "support edits": (support, "patch", f"/api/client/{client.id}", {"x": 1}),
        "manager deletes a client": (
            manager, "delete", f"/api/client/{client.id}", None,
        ),
    }  # fmt: skip
    answers = {}
    for name, (who, method, path, body) in attempts.items():
        response = await api.request(method, path, json=body, headers=who.headers)
        answers[name] = (response.status_code, response.json())
    owner_only = "This operation needs the role: owner"
    assert answers == {
        name: (403, {"error": "forbidden", "description": owner_only})
        for name in attempts
        if name != "support edits"
    } | {
        "support edits": (403, {"error": "forbidden", "description":
                                "This operation needs the role: owner or manager"}),
    }  # fmt: skip
    assert await db.fetchval("SELECT count(*) FROM admin.admins") == before
