"""Client accounts through the API: registration, sign-in, profile, password,
deletion."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api import passwords
from api.auth import STAFF_ONLY
from tests.contract import assert_api_error, assert_matches
from tests.factories import PASSWORD, create_admin, create_client

FORM = {
    "name": "Ada",
    "surname": "Lovelace",
    "patronymic": "",
    "email": "Ada@Example.com",
    "password": "correct horse battery",
    "send_notifications": True,
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(api: httpx.AsyncClient, **changes: object) -> dict:
    response = await api.post("/api/client/register", json={**FORM, **changes})
    assert response.status_code == 200, response.text
    return response.json()


async def test_register_client_returns_session_and_profile(api, db) -> None:
    response = await api.post("/api/client/register", json=FORM)

    assert_matches(response, "/api/client/register", "post")
    body = response.json()
    assert body["client"] == {
        "id": body["client"]["id"], "email": "Ada@example.com", "name": "Ada",
        "surname": "Lovelace", "patronymic": "", "send_notifications": True,
        "is_internal": False, "verified": False,
    }  # fmt: skip
    assert body["refresh_token"]
    row = await db.fetchrow("SELECT email_key, password_hash FROM client.clients")
    assert row["email_key"] == "ada@example.com"
    assert row["password_hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    me = await api.get("/api/client", headers=bearer(body["token"]))
    assert me.json() == body["client"]


async def test_register_client_with_a_mailbox_name_outside_ascii_refused(
    api, db
) -> None:
    response = await api.post(
        "/api/client/register", json={**FORM, "email": "ünï@example.com"}
    )

    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_body",
        "description": "email: the part before the @ must be ASCII;"
        " international mailbox names cannot be mailed",
    }
    assert await db.fetchval("SELECT count(*) FROM client.clients") == 0
    for invisible in ("\u200b" * 8, "\ufeff" * 8, "\x00" * 8):
        unseen = await api.post(
            "/api/client/register", json={**FORM, "password": invisible}
        )
        assert unseen.status_code == 400, unseen.text


async def test_register_client_email_taken_whatever_the_case(api) -> None:
    await register(api)

    response = await api.post(
        "/api/client/register", json={**FORM, "email": "ADA@EXAMPLE.COM"}
    )

    assert_api_error(response, 400, "email_taken")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"password": "x" * 7}, "password"),
        ({"password": "x" * 101}, "password"),
        ({"name": "x" * 16}, "name"),
        ({"surname": ""}, "surname"),
        ({"patronymic": "x" * 21}, "patronymic"),
        ({"name": "Ada\r\nBcc: all@example.com"}, "name"),
        ({"surname": "Love\u2028lace"}, "surname"),
        ({"email": "ada@"}, "email"),
        ({"is_internal": True}, "is_internal"),
        ({"verified": True}, "verified"),
    ],
    ids=["short-password", "long-password", "long-name", "empty-surname",
         "long-patronymic", "crlf-name", "line-separator", "bad-email",
         "sets-internal", "sets-verified"],
)  # fmt: skip
async def test_register_client_refuses_invalid_body(
    api, db, monkeypatch, changes, field
) -> None:
    hashed = []
    monkeypatch.setattr("api.services.clients.hash_password", hashed.append)

    response = await api.post("/api/client/register", json={**FORM, **changes})

    assert_matches(response, "/api/client/register", "post")
    assert response.status_code == 400
    assert response.json()["description"].startswith(f"{field}:")
    assert hashed == []
    assert await db.fetchval("SELECT count(*) FROM client.clients") == 0


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b'{"email": "\xff\xfe@x.io"}', "not UTF-8 text"),
        (b'{"name": ' + b"9" * 4301 + b"}", "a number of more than 4300 digits"),
    ],
    ids=["not-utf-8", "long-number"],
)
async def test_register_client_refuses_a_body_json_cannot_read(
    api, db, content, reason
) -> None:
    response = await api.post(
        "/api/client/register",
        content=content,
        headers={"Content-Type": "application/json"},
    )

    assert_api_error(response, 400, "invalid_body")
    assert response.json()["description"] == f"body: not valid JSON ({reason})"
    assert await db.fetchval("SELECT count(*) FROM client.clients") == 0


async def test_login_client_any_case_and_upgrades_old_hash(api, db, settings) -> None:
    client = await create_client(db, settings, email="grace@example.com")  # cheap hash

    response = await api.post(
        "/api/client/login", json={"email": "GRACE@example.com", "password": PASSWORD}
    )

    assert_matches(response, "/api/client/login", "post")
    assert response.json()["client"]["id"] == str(client.id)
    stored = await db.fetchval("SELECT password_hash FROM client.clients")
    assert not passwords.needs_rehash(stored)
    again = await api.post(
        "/api/client/login", json={"email": client.email, "password": PASSWORD}
    )
    assert again.status_code == 200


async def test_login_client_unknown_email_and_wrong_password_answer_alike(
    api, db, settings, monkeypatch
) -> None:
    await create_client(db, settings, email="grace@example.com")
    verified = []
    real_verify = passwords.verify_password

    async def recording_verify(stored, password):
        verified.append(stored is not None)
        return await real_verify(stored, password)

    monkeypatch.setattr("api.services.accounts.verify_password", recording_verify)

    wrong = await api.post(
        "/api/client/login",
        json={"email": "grace@example.com", "password": "not it at all"},
    )
    unknown = await api.post(
        "/api/client/login", json={"email": "nobody@example.com", "password": PASSWORD}
    )

    assert_api_error(wrong, 400, "invalid_credentials")
    assert (unknown.status_code, unknown.json()) == (wrong.status_code, wrong.json())
    # the unknown email still paid for a (dummy) verify
    assert verified == [True, False]


async def test_edit_client_profile_changes_only_what_was_sent(
    api, db, settings
) -> None:
    client = await create_client(db, settings, email="grace@example.com")

    response = await api.patch(
        "/api/client",
        json={"name": "Grace", "patronymic": "Brewster", "surname": None,
              "send_notifications": False, "email": "Grace.Hopper@Example.com"},
        headers=client.headers,
    )  # fmt: skip

    assert_matches(response, "/api/client", "patch")
    assert response.json() == {
        "id": str(client.id), "email": "Grace.Hopper@example.com", "name": "Grace",
        "surname": "Lovelace", "patronymic": "Brewster", "send_notifications": False,
        "is_internal": False, "verified": False,
    }  # fmt: skip
    key = await db.fetchval(
        "SELECT email_key FROM client.clients WHERE id = $1", client.id
    )
    assert key == "grace.hopper@example.com"


async def test_edit_client_email_of_another_is_taken(api, db, settings) -> None:
    await create_client(db, settings, email="taken@example.com")
    client = await create_client(db, settings)

    response = await api.patch(
        "/api/client", json={"email": "TAKEN@example.com"}, headers=client.headers
    )

    assert_api_error(response, 400, "email_taken")


@pytest.mark.parametrize("field", ["is_internal", "verified"])
async def test_edit_client_refuses_staff_only_flags(api, db, settings, field) -> None:
    client = await create_client(db, settings)

    response = await api.patch(
        "/api/client", json={field: True}, headers=client.headers
    )

    assert_matches(response, "/api/client", "patch")
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_body",
        "description": f"{field}: Extra inputs are not permitted",
    }
    row = await db.fetchrow("SELECT is_internal, verified FROM client.clients")
    assert (row["is_internal"], row["verified"]) == (False, False)


async def test_client_reaches_only_its_own_account(api, db, settings) -> None:
    alice = await create_client(db, settings, name="Alice")
    bob = await create_client(db, settings, name="Bob")

    mine = await api.get("/api/client", headers=alice.headers)
    edited = await api.patch(
        "/api/client", json={"name": "Mallory"}, headers=alice.headers
    )
    attempts = [
        await api.get(f"/api/client/{bob.id}", headers=alice.headers),
        await api.patch(
            f"/api/client/{bob.id}", json={"name": "X"}, headers=alice.headers
        ),
        await api.delete(f"/api/client/{bob.id}", headers=alice.headers),
    ]

    assert mine.json()["id"] == str(alice.id)
    assert edited.json()["id"] == str(alice.id)
    for response in attempts:
        assert_api_error(response, 403, "forbidden")
        assert response.json()["description"] == STAFF_ONLY
    assert (
        await db.fetchval("SELECT name FROM client.clients WHERE id = $1", bob.id)
        == "Bob"
    )
    assert (
        await db.fetchval("SELECT deleted_at FROM client.clients WHERE id = $1", bob.id)
        is None
    )


async def test_delete_client_keeps_history_anonymised_and_frees_email(api, db) -> None:
    session = await register(api)
    client_id = uuid.UUID(session["client"]["id"])
    past = datetime.now(UTC) - timedelta(days=3)
    await db.execute(
        "INSERT INTO reservation.reservations (id, client_id, seat_id, coworking_id,"
        " starts_at, ends_at, status) VALUES ($1, $2, $3, $4, $5, $6, 'completed')",
        uuid.uuid4(), client_id, uuid.uuid4(), uuid.uuid4(), past,
        past + timedelta(hours=2),
    )  # fmt: skip

    response = await api.delete("/api/client", headers=bearer(session["token"]))

    assert_matches(response, "/api/client", "delete")
    assert response.status_code == 204
    row = await db.fetchrow("SELECT * FROM client.clients WHERE id = $1", client_id)
    assert row["email"] == row["email_key"] == f"deleted-{client_id}@invalid"
    assert (row["name"], row["surname"], row["patronymic"]) == (
        "Deleted",
        "Deleted",
        "",
    )
    assert row["deleted_at"] is not None and row["send_notifications"] is False
    assert (
        await db.fetchval("SELECT client_id FROM reservation.reservations") == client_id
    )
    # its tokens are dead, its password matches nothing, its email is free again
    gone = await api.get("/api/client", headers=bearer(session["token"]))
    assert_api_error(gone, 401, "unauthorized")
    login = await api.post(
        "/api/client/login", json={"email": FORM["email"], "password": FORM["password"]}
    )
    assert_api_error(login, 400, "invalid_credentials")
    refreshed = await api.post(
        "/api/client/token/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert refreshed.status_code == 401
    again = await register(api)
    assert again["client"]["id"] != str(client_id)


async def test_delete_client_with_wrong_password_changes_nothing(
    api, db, settings
) -> None:
    client = await create_client(db, settings)

    response = await api.request(
        "DELETE",
        "/api/client",
        json={"password": "not my password"},
        headers=client.headers,
    )

    assert_matches(response, "/api/client", "delete")
    assert_api_error(response, 400, "invalid_password")
    assert await db.fetchval("SELECT deleted_at FROM client.clients") is None
    confirmed = await api.request(
        "DELETE", "/api/client", json={"password": PASSWORD}, headers=client.headers
    )
    assert confirmed.status_code == 204


async def test_a_password_of_white_space_alone_is_refused_and_nothing_changes(
    api, db
) -> None:
    blank = " " * 8
    refused = await api.post("/api/client/register", json={**FORM, "password": blank})
    assert (refused.status_code, refused.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "password: must have a visible character, not white space"
            " alone",
        },
    )
    assert await db.fetchval("SELECT count(*) FROM client.clients") == 0

    session = await register(api)
    change = {
        "current_password": FORM["password"],
        "new_password": "\t" * 10,
        "new_password_confirm": "\t" * 10,
    }
    response = await api.put(
        "/api/client/password", json=change, headers=bearer(session["token"])
    )
    assert (response.status_code, response.json()["description"]) == (
        400,
        "new_password: must have a visible character, not white space alone",
    )
    # the old password still signs in
    signed_in = await api.post(
        "/api/client/login",
        json={"email": FORM["email"], "password": FORM["password"]},
    )
    assert signed_in.status_code == 200, signed_in.text


async def test_change_client_password_revokes_old_tokens(api, db) -> None:
    session = await register(api)
    change = {
        "current_password": FORM["password"],
        "new_password": "a much longer secret",
        "new_password_confirm": "a much longer secret",
    }

    response = await api.put(
        "/api/client/password", json=change, headers=bearer(session["token"])
    )

    assert_matches(response, "/api/client/password", "put")
    fresh = response.json()
    assert fresh["client"] == session["client"]
    # the token issued in the same second as the change works; the old ones do not
    assert (
        await api.get("/api/client", headers=bearer(fresh["token"]))
    ).status_code == 200
    old = await api.get("/api/client", headers=bearer(session["token"]))
    assert_api_error(old, 401, "unauthorized")
    old_refresh = await api.post(
        "/api/client/token/refresh", json={"refresh_token": session["refresh_token"]}
    )
    assert old_refresh.status_code == 401
    new_refresh = await api.post(
        "/api/client/token/refresh", json={"refresh_token": fresh["refresh_token"]}
    )
    assert new_refresh.status_code == 200
    login_old = await api.post(
        "/api/client/login", json={"email": FORM["email"], "password": FORM["password"]}
    )
    assert login_old.status_code == 400
    login_new = await api.post(
        "/api/client/login",
        json={"email": FORM["email"], "password": change["new_password"]},
    )
    assert login_new.status_code == 200


@pytest.mark.parametrize(
    ("change", "code", "description"),
    [
        ({"current_password": "wrong password", "new_password": "new password 1",
          "new_password_confirm": "new password 1"}, "invalid_password",
         "The current password is not correct"),
        ({"current_password": PASSWORD, "new_password": "new password 1",
          "new_password_confirm": "new password 2"}, "invalid_body",
         "new_password_confirm: does not match new_password"),
        ({"current_password": PASSWORD, "new_password": "short",
          "new_password_confirm": "short"}, "invalid_body", None),
        ({"current_password": PASSWORD, "new_password": PASSWORD,
          "new_password_confirm": PASSWORD}, "invalid_body",
         "new_password: is the same as current_password"),
    ],
    ids=["wrong-current", "confirmation-differs", "too-short", "unchanged"],
)  # fmt: skip
async def test_change_client_password_refused(
    api, db, settings, change, code, description
) -> None:
    client = await create_client(db, settings)
    before = await db.fetchval("SELECT password_hash FROM client.clients")

    response = await api.put(
        "/api/client/password", json=change, headers=client.headers
    )

    assert_matches(response, "/api/client/password", "put")
    assert_api_error(response, 400, code)
    if description:
        assert response.json()["description"] == description
    assert await db.fetchval("SELECT password_hash FROM client.clients") == before
    assert (await api.get("/api/client", headers=client.headers)).status_code == 200


@pytest.mark.parametrize("role", ["owner", "manager", "support"])
async def test_admin_reads_any_client(api, db, settings, role) -> None:
    admin = await create_admin(db, settings, role=role)
    client = await create_client(db, settings)

    response = await api.get(f"/api/client/{client.id}", headers=admin.headers)
    missing = await api.get(f"/api/client/{uuid.uuid4()}", headers=admin.headers)

    assert_matches(response, "/api/client/{client_id}", "get")
    assert response.json()["id"] == str(client.id)
    assert_matches(missing, "/api/client/{client_id}", "get")
    assert_api_error(missing, 404, "not_found")


async def _book_row(
    db,
    client_id: uuid.UUID,
    coworking_id: uuid.UUID,
    *,
    checked_in: bool = True,
    by_staff: uuid.UUID | None = None,
) -> None:
    starts_at = datetime.now(UTC) - timedelta(minutes=10)
    reservation_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO reservation.reservations (id, client_id, seat_id, coworking_id,"
        " starts_at, ends_at, status, checked_in_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        reservation_id, client_id, uuid.uuid4(), coworking_id, starts_at,
        starts_at + timedelta(hours=1), "checked_in" if checked_in else "confirmed",
        starts_at if checked_in else None,
    )  # fmt: skip
    if by_staff is not None:
        await db.execute(
            "INSERT INTO reservation.staff_bookings (reservation_id, admin_id)"
            " VALUES ($1, $2)",
            reservation_id,
            by_staff,
        )


async def test_owner_sets_verified_and_internal(api, db, settings) -> None:
    admin = await create_admin(db, settings, role="owner")
    client = await create_client(db, settings)

    response = await api.patch(
        f"/api/client/{client.id}",
        json={"verified": True, "is_internal": True, "name": "Augusta"},
        headers=admin.headers,
    )

    assert_matches(response, "/api/client/{client_id}", "patch")
    body = response.json()
    assert (body["verified"], body["is_internal"], body["name"]) == (
        True,
        True,
        "Augusta",
    )
    seen = await api.get("/api/client", headers=client.headers)
    assert seen.json()["verified"] is True


async def test_a_verified_client_who_renames_themself_is_verified_no_more(
    api, db, settings
) -> None:
    owner = await create_admin(db, settings, role="owner")
    client = await create_client(db, settings)
    marked = await api.patch(
        f"/api/client/{client.id}", json={"verified": True}, headers=owner.headers
    )
    assert marked.json()["verified"] is True

    # what leaves the name as it was keeps the mark, the same name sent included
    kept = await api.patch(
        "/api/client",
        json={"send_notifications": False, "name": "Ada", "surname": "Lovelace"},
        headers=client.headers,
    )
    renamed = await api.patch(
        "/api/client", json={"surname": "Byron"}, headers=client.headers
    )

    assert (kept.status_code, kept.json()["verified"]) == (200, True)
    assert (renamed.status_code, renamed.json()["verified"]) == (200, False)
    row = await db.fetchrow("SELECT surname, verified FROM client.clients")
    assert tuple(row) == ("Byron", False)
    # staff who rename and verify in one request vouch for the new name
    both = await api.patch(
        f"/api/client/{client.id}",
        json={"patronymic": "Gordon", "verified": True},
        headers=owner.headers,
    )
    assert (both.json()["patronymic"], both.json()["verified"]) == ("Gordon", True)


async def test_manager_only_verifies_clients_checked_in_at_their_coworkings(
    api, db, settings
) -> None:
    mine, elsewhere = uuid.uuid4(), uuid.uuid4()
    manager = await create_admin(db, settings, role="manager", coworkings=[mine])
    stranger = await create_client(db, settings)
    await _book_row(db, stranger.id, elsewhere)
    regular = await create_client(db, settings)
    await _book_row(db, regular.id, mine)
    # booked here, even by the manager, but never seen at the door
    booked_only = await create_client(db, settings)
    await _book_row(db, booked_only.id, mine, checked_in=False)
    # booked and checked in by staff alone: nothing says the client came
    staff_made = await create_client(db, settings)
    await _book_row(db, staff_made.id, mine, by_staff=manager.id)

    async def patch(client_id: uuid.UUID, body: dict) -> tuple[int, dict]:
        response = await api.patch(
            f"/api/client/{client_id}", json=body, headers=manager.headers
        )
        return response.status_code, response.json()

    outside = await patch(stranger.id, {"verified": True})
    unseen = await patch(booked_only.id, {"verified": True})
    unproven = await patch(staff_made.id, {"verified": True})
    # a booking the manager made for the client would count as well, so no
    # field but the door's own is theirs to change
    takeover = await patch(regular.id, {"email": "manager-now@example.com"})
    renamed = await patch(regular.id, {"name": "Mallory", "verified": True})
    internal = await patch(regular.id, {"is_internal": True})
    # a whole profile sent back unchanged, as a form does, is no change
    door = await patch(
        regular.id,
        {"email": regular.email, "name": "Ada", "is_internal": False, "verified": True},
    )

    def refused(description: str) -> tuple[int, dict]:
        return 403, {"error": "forbidden", "description": description}

    never_here = refused(
        "client_id: this client was never checked in at a coworking you manage"
        " for a booking of their own"
    )
    assert (outside, unseen, unproven) == (never_here, never_here, never_here)
    assert takeover == refused("email: only an owner changes a client's email")
    assert renamed == refused("name: only an owner changes a client's name")
    assert internal == refused(
        "is_internal: only an owner changes a client's is_internal"
    )
    assert (door[0], door[1]["verified"]) == (200, True)
    rows = await db.fetch(
        "SELECT id, email, name, is_internal, verified FROM client.clients"
    )
    assert {row["id"]: tuple(row)[1:] for row in rows} == {
        stranger.id: (stranger.email, "Ada", False, False),
        regular.id: (regular.email, "Ada", False, True),
        booked_only.id: (booked_only.email, "Ada", False, False),
        staff_made.id: (staff_made.email, "Ada", False, False),
    }


async def test_support_cannot_edit_or_delete_a_client(api, db, settings) -> None:
    support = await create_admin(db, settings, role="support")
    manager = await create_admin(db, settings, role="manager")
    client = await create_client(db, settings)

    edit = await api.patch(
        f"/api/client/{client.id}", json={"verified": True}, headers=support.headers
    )
    deletions = [
        await api.delete(f"/api/client/{client.id}", headers=support.headers),
        await api.delete(f"/api/client/{client.id}", headers=manager.headers),
    ]

    assert_api_error(edit, 403, "forbidden")
    for response in deletions:
        assert_api_error(response, 403, "forbidden")
    row = await db.fetchrow("SELECT verified, deleted_at FROM client.clients")
    assert (row["verified"], row["deleted_at"]) == (False, None)


async def test_owner_deletes_a_client(api, db, settings) -> None:
    owner = await create_admin(db, settings, role="owner")
    client = await create_client(db, settings)

    response = await api.delete(f"/api/client/{client.id}", headers=owner.headers)
    again = await api.delete(f"/api/client/{client.id}", headers=owner.headers)

    assert_matches(response, "/api/client/{client_id}", "delete")
    assert response.status_code == 204
    assert_api_error(again, 404, "not_found")
    assert_api_error(await api.get("/api/client", headers=client.headers), 401)
    read = await api.get(f"/api/client/{client.id}", headers=owner.headers)
    assert_api_error(read, 404, "not_found")


async def test_delete_client_cancels_future_reservations_first(
    api, db, settings, monkeypatch
) -> None:
    client = await create_client(db, settings)
    calls = []

    async def cancel_future(resources, *, client_id, reason):
        # still intact while its reservations are being cancelled
        row = await db.fetchrow("SELECT email, deleted_at FROM client.clients")
        calls.append((client_id, reason, row["email"], row["deleted_at"]))
        return 2

    monkeypatch.setattr(
        "api.services.clients.cancel_future_reservations", cancel_future
    )

    response = await api.delete("/api/client", headers=client.headers)

    assert response.status_code == 204
    # once while the account stands, once after it is gone for what got in between
    first, after = calls
    assert first == (client.id, "account deleted", client.email, None)
    assert after[:2] == (client.id, "account deleted")
    assert after[2] != client.email and after[3] is not None


async def test_delete_client_changes_nothing_when_cancelling_fails(
    api, db, settings, monkeypatch
) -> None:
    from api.errors import Unavailable

    client = await create_client(db, settings)

    async def engine_down(resources, *, client_id, reason):
        raise Unavailable("the booking engine is unavailable; retry shortly")

    monkeypatch.setattr("api.services.clients.cancel_future_reservations", engine_down)

    response = await api.delete("/api/client", headers=client.headers)

    assert_api_error(response, 503, "unavailable")
    row = await db.fetchrow("SELECT deleted_at, send_notifications FROM client.clients")
    # the mail it stopped for the deletion is on again
    assert tuple(row) == (None, True)
    assert (await api.get("/api/client", headers=client.headers)).status_code == 200
