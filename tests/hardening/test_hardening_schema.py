"""What the fuzzer found: the document and the answers now say the same thing."""

import uuid

import pytest

from activities.mail_render import build_message
from tests.factories import create_admin, create_client, create_coworking, create_seat
from tests.hardening.test_hardening_mail_headers import _context


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/admin/{admin}", "DELETE, GET, HEAD, PATCH"),
        ("PUT", "/api/coworkings/{cw}", "GET, HEAD, PATCH"),
        ("DELETE", "/api/coworkings/{cw}/images/order", "PUT"),
        ("PATCH", "/api/coworkings/{cw}/seats/bulk", "POST"),
        ("PUT", "/api/coworkings/{cw}/images", "GET, HEAD, POST"),
    ],
    ids=["admin_by_id", "coworking", "image_order", "seats_bulk", "images"],
)
async def test_call_undeclared_method_405_allow_lists_all(
    api, db, settings, method, path, allow
) -> None:
    coworking_id = await create_coworking(db)
    owner = await create_admin(db, settings)
    url = path.format(admin=owner.id, cw=coworking_id)
    response = await api.request(method, url, headers=owner.headers, json={})
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json() == {
        "error": "method_not_allowed",
        "description": f"method: {method} is not allowed here",
    }


async def test_list_reservations_with_unknown_status_or_numeric_time_refused(
    api, db, settings
) -> None:
    admin = await create_admin(db, settings)
    status = await api.get("/api/reservations?status=", headers=admin.headers)
    number = await api.get("/api/reservations?starts_from=0.5", headers=admin.headers)
    naive = await api.get(
        "/api/reservations?starts_from=2026-01-01T00:00:00", headers=admin.headers
    )
    fine = await api.get(
        "/api/reservations?status=held&starts_from=2026-01-01T00:00:00Z",
        headers=admin.headers,
    )
    for response, field in ((status, "status"), (number, "starts_from"),
                            (naive, "starts_from")):  # fmt: skip
        assert response.status_code == 400
        assert response.json()["description"].startswith(f"query.{field}:")
    assert (fine.status_code, fine.json()) == (200, [])
    backwards = await api.get(
        "/api/reservations?starts_from=2026-01-02T00:00:00Z"
        "&starts_before=2026-01-02T00:00:00%2B01:00",
        headers=admin.headers,
    )
    assert (backwards.status_code, backwards.json()) == (
        400,
        {
            "error": "invalid_query",
            "description": "query.starts_before: must be after starts_from",
        },
    )


async def test_register_client_with_string_boolean_refused(api, db) -> None:
    response = await api.post("/api/client/register", json={
        "email": "bool@example.com", "password": "long enough pass", "name": "B",
        "surname": "C", "patronymic": "", "send_notifications": "yes",
    })  # fmt: skip
    assert response.status_code == 400
    assert response.json()["description"].startswith("send_notifications:")
    assert await db.fetchval("SELECT count(*) FROM client.clients") == 0


@pytest.mark.parametrize(
    "name", ["=?utf-8?q?Lounge?=", "Lounge\u202eenO", "Lounge\u2028Two"],
    ids=["encoded_word", "bidi_override", "line_separator"],
)  # fmt: skip
async def test_rename_coworking_with_mail_breaking_name_refused(
    api, db, settings, name
) -> None:
    coworking_id = await create_coworking(db, name="Lounge One")
    owner = await create_admin(db, settings)
    response = await api.patch(
        f"/api/coworkings/{coworking_id}", json={"name": name}, headers=owner.headers
    )
    assert response.status_code == 400
    assert response.json()["description"].startswith("name:")
    assert await db.fetchval("SELECT name FROM coworking.coworkings") == "Lounge One"


async def test_book_as_client_with_joiner_in_name_mail_builds(
    api, db, settings
) -> None:
    # the API accepts the zero-width joiner in names, so mail must build with it
    client = await create_client(db, settings)
    patched = await api.patch(
        "/api/client", json={"name": "Ma\u200dya"}, headers=client.headers
    )
    assert patched.status_code == 200 and patched.json()["name"] == "Ma\u200dya"
    message = build_message(
        _context(recipient_name="Ma\u200dya Lovelace"), sender="T <t@x.io>",
        domain="x.io",
    )  # fmt: skip
    assert message["To"].addresses[0].display_name == "Ma\u200dya Lovelace"


def test_document_errors_paths_and_opening_hours_truthfully(api) -> None:
    schema = api._transport.app.openapi()
    operation = schema["paths"]["/api/coworking/seats/{seat_id}/images/order"]["put"]
    (seat,) = operation["parameters"]
    assert (seat["required"], seat["schema"]["type"]) == (True, "string")
    assert "422" not in operation["responses"]
    assert operation["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ApiError"
    }
    assert schema["paths"]["/api/coworking"]["get"]["security"] == [{"admin": []}, {}]
    hours = schema["components"]["schemas"]["CoworkingUpdate"]["properties"][
        "opening_hours"
    ]["anyOf"][0]
    assert (hours["additionalProperties"], sorted(hours["properties"])) == (
        False, sorted(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
    )  # fmt: skip
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    # a generated client learns of a 404 where an id is in the path, and of
    # a reservation's 409 where a write may meet one
    paths = schema["paths"]
    answers = {
        (path, method): sorted(set(paths[path][method]["responses"]) & {"404", "409"})
        for path, method in [
            ("/api/reservations", "post"), ("/api/reservations", "get"),
            ("/api/reservations/{reservation_id}", "patch"),
            ("/api/reservations/{reservation_id}", "get"),
            ("/api/reservations/{reservation_id}/check-in", "post"),
            ("/api/coworkings", "get"), ("/api/coworking", "get"),
            ("/api/coworking/availability", "get"),
            ("/api/coworkings/{coworking_id}/seats/{seat_id}", "delete"),
            ("/api/coworking/closures", "post"), ("/api/coworking", "patch"),
        ]
    }  # fmt: skip
    upload = paths["/api/coworking/images"]["post"]["responses"]
    assert {"413", "415"} <= set(upload)
    assert answers == {
        ("/api/coworkings/{coworking_id}/seats/{seat_id}", "delete"): ["404", "409"],
        ("/api/coworking/closures", "post"): ["404", "409"],
        ("/api/coworking", "patch"): ["404", "409"],
        ("/api/coworking", "get"): ["404"],
        ("/api/coworking/availability", "get"): ["404"],
        ("/api/reservations", "post"): ["404", "409"],
        ("/api/reservations", "get"): [],
        ("/api/reservations/{reservation_id}", "patch"): ["404", "409"],
        ("/api/reservations/{reservation_id}", "get"): ["404"],
        ("/api/reservations/{reservation_id}/check-in", "post"): ["404", "409"],
        ("/api/coworkings", "get"): [],
    }


async def test_reorder_seat_images_and_a_malformed_seat_id_named(
    api, db, settings
) -> None:
    coworking_id = await create_coworking(db)
    seat_id = await create_seat(db, coworking_id)
    owner = await create_admin(db, settings)
    base = f"/api/coworkings/{coworking_id}/seats"
    good = await api.put(
        f"{base}/{seat_id}/images/order", json=[], headers=owner.headers
    )
    seat = await api.get(f"{base}/not-a-uuid", headers=owner.headers)
    assert (good.status_code, good.json()) == (200, [])
    assert (seat.status_code, seat.json()) == (
        400,
        {
            "error": "invalid_path",
            "description": "path.seat_id: Input should be a valid UUID",
        },
    )


@pytest.mark.parametrize("query", ["name=%00", "city=a%00b", "name=%0d%0a"])
async def test_search_coworkings_with_control_character_refused(api, db, query) -> None:
    await create_coworking(db)
    response = await api.get(f"/api/coworkings?{query}")
    assert response.status_code == 400
    field = query.split("=")[0]
    assert response.json()["description"].startswith(f"query.{field}:")


async def test_cancel_reservation_with_control_character_reason_refused(scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    booked = await scene.book(starts_at, ends_at)
    reservation_id = booked.json()["id"]
    response = await scene.api.request(
        "DELETE", f"/api/reservations/{reservation_id}",
        json={"reason": "late\x00\r\nBcc: x@evil.io"}, headers=scene.client.headers,
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["description"].startswith("reason:")
    after = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert (after.json()["cancelled"], after.json()["status"]) == (False, "confirmed")


@pytest.mark.parametrize(
    "body", [b'{"reason": 5}', b'{"reason": "' + b"x" * 300 + b'"}', b"{not json"],
    ids=["number", "too_long", "broken_json"],
)  # fmt: skip
async def test_cancel_reservation_with_malformed_body_400(
    api, db, settings, body
) -> None:
    client = await create_client(db, settings)
    response = await api.request(
        "DELETE", "/api/reservations/3fa85f64-5717-4562-b3fc-2c963f66afa6",
        content=body, headers={**client.headers, "Content-Type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_body"


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/api/admin/not-a-uuid", "admin_id"),
        ("PATCH", "/api/client/not-a-uuid", "client_id"),
        ("DELETE", "/api/coworking/seats/7", "seat_id"),
        ("DELETE", "/api/coworking/images/x", "image_id"),
    ],
)
async def test_a_malformed_id_in_a_typed_route_is_named_like_any_other(
    api, db, settings, method: str, path: str, name: str
) -> None:
    await create_coworking(db)
    owner = await create_admin(db, settings)
    response = await api.request(method, path, headers=owner.headers, json={})
    elsewhere = await api.get("/api/nothing/here", headers=owner.headers)
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": "invalid_path",
            "description": f"path.{name}: Input should be a valid UUID",
        },
    )
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/api/admin/x", "DELETE, GET, HEAD, PATCH"),
        ("PUT", "/api/client/x", "DELETE, GET, HEAD, PATCH"),
        ("POST", "/api/coworking/seats/x", "DELETE, GET, HEAD, PATCH"),
    ],
)
async def test_a_method_a_typed_route_does_not_take_is_a_405_with_any_id(
    api, db, settings, method: str, path: str, allow: str
) -> None:
    await create_coworking(db)
    owner = await create_admin(db, settings)
    malformed = await api.request(method, path, headers=owner.headers)
    valid = await api.request(
        method, path.replace("/x", f"/{uuid.uuid4()}"), headers=owner.headers
    )
    for response in (malformed, valid):
        assert (response.status_code, response.headers["allow"]) == (405, allow)
        assert response.json() == {
            "error": "method_not_allowed",
            "description": f"method: {method} is not allowed here",
        }
