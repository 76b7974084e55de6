"""Every reservation operation of the contract, answered in the contract's shapes."""

import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

from tests.contract import assert_api_error, assert_matches, operations
from tests.factories import create_admin, create_client, create_coworking, create_seat
from tests.reservations.conftest import Scene

RESERVATION_OPERATIONS = {
    ("post", "/api/reservations"),
    ("get", "/api/reservations/{reservation_id}"),
    ("delete", "/api/reservations/{reservation_id}"),
    ("patch", "/api/reservations/{reservation_id}"),
    ("post", "/api/reservations/{reservation_id}/confirm"),
    ("get", "/api/client/reservations"),
    ("get", "/api/client/{client_id}/reservations"),
}


def test_contract_lists_the_reservation_operations_we_walk() -> None:
    assert (
        operations("/api/reservations")
        | {op for op in operations("/api/client") if "reservations" in op[1]}
        == RESERVATION_OPERATIONS
    )


async def test_walk_reservation_operations_against_contract(scene: Scene) -> None:
    api, client, admin = scene.api, scene.client, scene.admin
    starts_at, ends_at = await scene.slot(hours_ahead=20)

    created = await scene.book(starts_at, ends_at)
    assert_matches(created, "/api/reservations", "post")
    rid = created.json()["id"]
    url = f"/api/reservations/{rid}"

    assert_matches(
        await api.get(url, headers=client.headers),
        "/api/reservations/{reservation_id}",
        "get",
    )
    assert_matches(
        await api.get(url), "/api/reservations/{reservation_id}", "get"
    )  # 401
    moved = await api.patch(
        url,
        json={"starts_at": (starts_at + timedelta(hours=1)).isoformat(),
              "ends_at": (ends_at + timedelta(hours=1)).isoformat()},
        headers=client.headers,
    )  # fmt: skip
    assert_matches(moved, "/api/reservations/{reservation_id}", "patch")
    assert moved.json()["version"] == 2

    listed = await api.get(
        "/api/client/reservations?limit=10&offset=0", headers=client.headers
    )
    assert_matches(listed, "/api/client/reservations", "get")
    assert [item["id"] for item in listed.json()] == [rid]
    by_admin = await api.get(
        f"/api/client/{client.id}/reservations", headers=admin.headers
    )
    assert_matches(by_admin, "/api/client/{client_id}/reservations", "get")
    assert [item["id"] for item in by_admin.json()] == [rid]

    confirm = await api.post(f"{url}/confirm", headers=admin.headers)
    assert_api_error(confirm, 409, "conflict")  # auto-confirmed already, start far off

    cancelled = await api.delete(url, headers=client.headers)
    assert_matches(cancelled, "/api/reservations/{reservation_id}", "delete")
    assert cancelled.status_code == 204
    after = await api.get(url, headers=client.headers)
    assert after.json()["cancelled"] is True

    missing = await api.get(
        "/api/reservations/00000000-0000-0000-0000-000000000000", headers=client.headers
    )
    assert_matches(missing, "/api/reservations/{reservation_id}", "get")
    assert missing.status_code == 404


async def test_reschedule_with_end_before_start_answers_400_as_a_booking_does(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=20)
    booked = (await scene.book(starts_at, ends_at)).json()
    url = f"/api/reservations/{booked['id']}"
    later = starts_at + timedelta(hours=2)

    answers = [
        await scene.api.patch(url, json=body, headers=scene.client.headers)
        for body in (
            {"starts_at": ends_at.isoformat(), "ends_at": starts_at.isoformat()},
            {"starts_at": later.isoformat(), "ends_at": later.isoformat()},
        )
    ]
    # the booking's start is the workflow's to know, so it judges an end alone
    end_alone = await scene.api.patch(
        url,
        json={"ends_at": (starts_at - timedelta(hours=1)).isoformat()},
        headers=scene.client.headers,
    )

    refused = {
        "error": "invalid_body",
        "description": "ends_at: must be after starts_at",
    }
    assert [(a.status_code, a.json()) for a in answers] == [(400, refused)] * 2
    berlin = ZoneInfo("Europe/Berlin")
    end, start = starts_at - timedelta(hours=1), starts_at
    assert (end_alone.status_code, end_alone.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": f"ends_at: {end.astimezone(berlin).isoformat()} is not"
            f" after starts_at {start.astimezone(berlin).isoformat()}",
        },
    )
    current = await scene.api.get(url, headers=scene.client.headers)
    assert (current.json()["starts_at"], current.json()["ends_at"]) == (
        booked["starts_at"],
        booked["ends_at"],
    )


async def test_book_bad_input_answers_400_naming_field(scene: Scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=20)
    naive = await scene.api.post(
        "/api/reservations",
        json={
            "seat_id": str(scene.seat_id),
            "starts_at": "2030-01-01T10:00:00",
            "ends_at": "2030-01-01T11:00:00",
        },
        headers=scene.client.headers,
    )
    assert naive.status_code == 400
    assert naive.json()["error"] == "invalid_body"
    assert naive.json()["description"].startswith(
        "starts_at: needs its offset, such as +01:00 or Z; a time"
        " without one is never read as UTC"
    )
    numbered = await scene.api.post(
        "/api/reservations",
        json={
            "seat_id": 42,
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
        headers=scene.client.headers,
    )
    assert (numbered.status_code, numbered.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "seat_id: must be a UUID written as a string",
        },
    )
    backwards = await scene.book(ends_at, starts_at)
    assert backwards.status_code == 400
    assert backwards.json() == {
        "error": "invalid_body",
        "description": "ends_at: must be after starts_at",
    }
    off_grid = await scene.book(starts_at + timedelta(minutes=7), ends_at)
    assert off_grid.status_code == 400
    assert off_grid.json()["error"] == "rule_violation"
    assert "off the 15-minute slot grid" in off_grid.json()["description"]
    unknown_seat = await scene.api.post(
        "/api/reservations",
        json={
            "seat_id": "00000000-0000-0000-0000-000000000001",
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
        headers=scene.client.headers,
    )
    assert unknown_seat.status_code == 404
    assert (
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM reservation.reservations"
        )
        == 0
    )


async def test_employee_only_seat_refused_to_guest(scene: Scene) -> None:
    seat = await create_seat(
        scene.resources.pool, scene.coworking_id, number=9, internal_only=True
    )
    starts_at, ends_at = await scene.slot(hours_ahead=20)
    refused = await scene.book(starts_at, ends_at, seat_id=seat)
    assert refused.status_code == 400
    assert refused.json()["error"] == "rule_violation"
    employee = await create_client(
        scene.resources.pool, scene.resources.settings, is_internal=True
    )
    assert (
        await scene.book(starts_at, ends_at, seat_id=seat, account=employee)
    ).status_code == 200


async def test_admin_list_filters_and_manager_scope(scene: Scene) -> None:
    elsewhere = await create_coworking(scene.resources.pool, name="Elsewhere")
    far_seat = await create_seat(scene.resources.pool, elsewhere)
    starts_at, ends_at = await scene.slot(hours_ahead=20)
    here = (await scene.book(starts_at, ends_at)).json()
    other_client = await create_client(scene.resources.pool, scene.resources.settings)
    there = (
        await scene.book(starts_at, ends_at, seat_id=far_seat, account=other_client)
    ).json()

    everything = await scene.api.get("/api/reservations", headers=scene.admin.headers)
    assert {item["id"] for item in everything.json()} == {here["id"], there["id"]}
    filtered = await scene.api.get(
        f"/api/reservations?coworking_id={elsewhere}&status=confirmed",
        headers=scene.admin.headers,
    )
    assert [item["id"] for item in filtered.json()] == [there["id"]]
    bad = await scene.api.get(
        "/api/reservations?status=lost", headers=scene.admin.headers
    )
    assert bad.status_code == 400
    # the status is an enum in the schema now, so validation names the choices
    assert bad.json() == {
        "error": "invalid_query",
        "description": (
            "query.status: Input should be 'held', 'confirmed', 'checked_in',"
            " 'completed', 'cancelled', 'expired' or 'no_show'"
        ),
    }

    manager = await create_admin(
        scene.resources.pool,
        scene.resources.settings,
        role="manager",
        coworkings=[elsewhere],
    )
    scoped = await scene.api.get("/api/reservations", headers=manager.headers)
    assert [item["id"] for item in scoped.json()] == [there["id"]]
    # another coworking named is refused, real or not, as its own routes are
    for outside in (scene.coworking_id, uuid.uuid4()):
        refused = await scene.api.get(
            f"/api/reservations?coworking_id={outside}", headers=manager.headers
        )
        assert (refused.status_code, refused.json()["description"]) == (
            403, "This coworking is outside your scope",
        )  # fmt: skip
    hidden = await scene.api.get(
        f"/api/reservations/{here['id']}", headers=manager.headers
    )
    assert hidden.status_code == 404
    cannot = await scene.api.post(
        f"/api/reservations/{here['id']}/confirm", headers=manager.headers
    )
    assert cannot.status_code == 404
    support = await create_admin(
        scene.resources.pool, scene.resources.settings, role="support"
    )
    no_move = await scene.api.patch(
        f"/api/reservations/{here['id']}",
        json={"seat_id": str(scene.other_seat_id)},
        headers=support.headers,
    )
    assert no_move.status_code == 403
    for action in ("confirm", "check-in"):
        desk = await scene.api.post(
            f"/api/reservations/{here['id']}/{action}", headers=support.headers
        )
        assert (desk.status_code, desk.json()) == (
            403,
            {
                "error": "forbidden",
                "description": "support staff cannot confirm or check in reservations",
            },
        )
    assert (
        await scene.api.delete(
            f"/api/reservations/{here['id']}", headers=support.headers
        )
    ).status_code == 204


async def test_staff_book_for_client_only_in_scope(scene: Scene) -> None:
    elsewhere = await create_coworking(scene.resources.pool, name="Elsewhere")
    far_seat = await create_seat(scene.resources.pool, elsewhere)
    manager = await create_admin(
        scene.resources.pool,
        scene.resources.settings,
        role="manager",
        coworkings=[scene.coworking_id],
    )
    support = await create_admin(
        scene.resources.pool, scene.resources.settings, role="support"
    )
    starts_at, ends_at = await scene.slot(hours_ahead=30)

    def body(seat, client_id=None):
        payload = {
            "seat_id": str(seat),
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        }
        if client_id:
            payload["client_id"] = str(client_id)
        return payload

    missing = await scene.api.post(
        "/api/reservations", json=body(scene.seat_id), headers=manager.headers
    )
    assert missing.json() == {
        "error": "invalid_body",
        "description": "client_id: required when staff book for a client",
    }
    outside = await scene.api.post(
        "/api/reservations",
        json=body(far_seat, scene.client.id),
        headers=manager.headers,
    )
    assert outside.status_code == 404
    by_support = await scene.api.post(
        "/api/reservations",
        json=body(scene.seat_id, scene.client.id),
        headers=support.headers,
    )
    assert by_support.status_code == 403
    inside = await scene.api.post(
        "/api/reservations",
        json=body(scene.seat_id, scene.client.id),
        headers=manager.headers,
    )
    assert inside.status_code == 200, inside.text
    assert inside.json()["client_id"] == str(scene.client.id)
    moved_out = await scene.api.patch(
        f"/api/reservations/{inside.json()['id']}",
        json={"seat_id": str(far_seat)},
        headers=manager.headers,
    )
    assert moved_out.status_code == 404
    for_other = await scene.api.post(
        "/api/reservations",
        json=body(scene.other_seat_id, scene.admin.id),
        headers=scene.client.headers,
    )
    assert for_other.json() == {
        "error": "invalid_body",
        "description": "client_id: a client books only for themselves",
    }
    assert (
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM reservation.reservations"
        )
        == 1
    )


async def test_book_refuses_epoch_numbers_far_years_and_bad_json(scene: Scene) -> None:
    epoch = await scene.api.post(
        "/api/reservations",
        json={
            "seat_id": str(scene.seat_id),
            "starts_at": 1796724000,
            "ends_at": 1796727600,
        },
        headers=scene.client.headers,
    )
    assert epoch.status_code == 400
    assert epoch.json()["description"].startswith(
        "starts_at: must be an RFC 3339 date-time string with an offset"
    )
    far = await scene.api.post(
        "/api/reservations",
        json={
            "seat_id": str(scene.seat_id),
            "starts_at": "9999-12-31T23:00:00+00:00",
            "ends_at": "9999-12-31T23:59:00+00:00",
        },
        headers=scene.client.headers,
    )
    assert far.status_code == 400
    assert "must lie between the years 2000 and 2200" in far.json()["description"]
    broken = await scene.api.post(
        "/api/reservations",
        content=b'{"seat_id": ',
        headers={**scene.client.headers, "Content-Type": "application/json"},
    )
    assert broken.status_code == 400
    assert broken.json()["description"].startswith("body: not valid JSON")
    huge = await scene.api.get(
        "/api/client/reservations?offset=" + "9" * 30, headers=scene.client.headers
    )
    assert huge.status_code == 400
    assert (
        huge.json()["description"]
        == "query.offset: Input should be less than or equal to 1000000000000"
    )


async def test_reschedule_start_only_keeps_length_and_check_in_says_when(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=20, length_minutes=90)
    rid = (await scene.book(starts_at, ends_at)).json()["id"]
    moved = await scene.api.patch(
        f"/api/reservations/{rid}",
        json={"starts_at": (starts_at + timedelta(hours=2)).isoformat()},
        headers=scene.client.headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["ends_at"] == (
        ends_at + timedelta(hours=2)
    ).isoformat().replace("+00:00", "Z")
    early = await scene.api.post(
        f"/api/reservations/{rid}/check-in", headers=scene.admin.headers
    )
    opens = starts_at + timedelta(hours=2) - timedelta(minutes=30)
    assert early.status_code == 409
    assert early.json() == {
        "error": "conflict",
        # on the coworking's clock, as the booking rules give instants
        "description": "check-in opens at"
        f" {opens.astimezone(ZoneInfo('Europe/Berlin')).isoformat()}",
    }


async def test_a_clients_list_looks_back_while_the_staff_list_runs_forward(
    scene: Scene,
) -> None:
    early_start, early_end = await scene.slot(hours_ahead=20)
    late_start, late_end = await scene.slot(hours_ahead=44)
    early = (await scene.book(early_start, early_end)).json()["id"]
    late = (await scene.book(late_start, late_end)).json()["id"]

    own = await scene.api.get("/api/client/reservations", headers=scene.client.headers)
    by_staff = await scene.api.get(
        f"/api/client/{scene.client.id}/reservations", headers=scene.admin.headers
    )
    plan = await scene.api.get("/api/reservations", headers=scene.admin.headers)
    assert [item["id"] for item in own.json()] == [late, early]
    assert [item["id"] for item in by_staff.json()] == [late, early]
    assert [item["id"] for item in plan.json()] == [early, late]


async def test_reservation_answers_match_the_schema_the_api_documents(
    scene: Scene,
) -> None:
    from jsonschema import Draft202012Validator, FormatChecker

    from tests.reservations.test_reservations_staff import (
        _book_where_staff_confirm,
        _move,
    )

    document = (await scene.api.get("/openapi.json")).json()
    paths = document["paths"]
    one = paths["/api/reservations/{reservation_id}"]["get"]["responses"]["200"]
    many = paths["/api/client/reservations"]["get"]["responses"]["200"]
    assert one["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ReservationPublic"
    }

    def check(instance: object, schema: dict) -> None:
        root = {**schema, "components": document["components"]}
        Draft202012Validator(root, format_checker=FormatChecker()).validate(instance)

    reservation_id, starts_at, _ = await _book_where_staff_confirm(scene)
    path = f"/api/reservations/{reservation_id}"
    held = await scene.api.get(path, headers=scene.client.headers)
    await scene.api.post(f"{path}/confirm", headers=scene.admin.headers)
    moved = await _move(
        scene, path, starts_at + timedelta(days=1), scene.client.headers
    )
    listed = await scene.api.get(
        "/api/client/reservations", headers=scene.client.headers
    )

    assert moved.json()["fallback"] is not None
    for answer in (held.json(), moved.json()):
        check(answer, one["content"]["application/json"]["schema"])
    check(listed.json(), many["content"]["application/json"]["schema"])
    # a field the service adds and the schema lacks would pass unseen otherwise
    documented = document["components"]["schemas"]["ReservationPublic"]
    assert set(moved.json()) == set(documented["properties"])
    assert set(documented["required"]) == set(documented["properties"])
