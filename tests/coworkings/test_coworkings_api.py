import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.cache import availability_version
from tests.factories import create_admin, create_client, create_coworking, create_seat


async def insert_reservation(db, *, client_id, seat_id, coworking_id, starts_at,
                             ends_at, status="confirmed") -> uuid.UUID:  # fmt: skip
    reservation_id = uuid.uuid4()
    await db.execute(
        "INSERT INTO reservation.reservations (id, client_id, seat_id, coworking_id,"
        " starts_at, ends_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        reservation_id, client_id, seat_id, coworking_id, starts_at, ends_at, status,
    )  # fmt: skip
    return reservation_id


async def test_read_coworking_default_with_seat_stats(
    api: httpx.AsyncClient, db, settings
) -> None:
    first = await create_coworking(db, name="First")
    await create_coworking(db, name="Second")
    busy = await create_seat(db, first, number=1)
    await create_seat(db, first, number=2)
    await create_seat(db, first, number=3, active=False)
    closed = await create_seat(db, first, number=4)
    client = await create_client(db, settings)
    now = datetime.now(UTC)
    await insert_reservation(
        db,
        client_id=client.id,
        seat_id=busy,
        coworking_id=first,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
    )
    await db.execute(
        "INSERT INTO coworking.closures (id, coworking_id, seat_id, starts_at, ends_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        uuid.uuid4(), first, closed, now - timedelta(hours=1), now + timedelta(hours=1),
    )  # fmt: skip

    response = await api.get("/api/coworking")

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["name"], body["address"]) == (
        str(first),
        "First",
        "1 Test Street",
    )
    assert body["seats"] == {"available": 1, "total": 4}
    assert (body["timezone"], body["slot_minutes"], body["reminder_lead_minutes"]) == (
        "UTC",
        15,
        180,
    )
    assert body["checkin_grace_minutes"] is None and body["opening_hours"] is None


async def test_read_coworking_configured_default_or_404(resources, db) -> None:
    from api.main import create_app

    await create_coworking(db, name="Older")
    chosen = await create_coworking(db, name="Chosen")
    for target, expected in ((chosen, 200), (uuid.uuid4(), 404)):
        settings = resources.settings.model_copy(
            update={"default_coworking_id": target}
        )
        app = create_app(
            settings,
            resources=type(resources)(
                settings,
                resources.pool,
                resources.valkey,
                resources.temporal,
                resources.store,
            ),
        )
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as http:  # fmt: skip
            response = await http.get("/api/coworking")
        assert response.status_code == expected
        if expected == 200:
            assert response.json()["name"] == "Chosen"
        else:
            # two coworkings exist: "none is set up" would send the operator astray
            assert response.json() == {
                "error": "not_found",
                "description": f"coworking: TLOUNGE_DEFAULT_COWORKING_ID names"
                f" {target}, which is no coworking",
            }


async def test_manager_out_of_scope_told_before_body_or_query_checked(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking_id = await create_coworking(db)
    seat_id = await create_seat(db, coworking_id)
    stranger = await create_admin(
        db, settings, role="manager", coworkings=[uuid.uuid4()]
    )
    seat_row = "SELECT to_jsonb(s) FROM coworking.seats s WHERE id = $1"
    seat_before = await db.fetchval(seat_row, seat_id)
    base = f"/api/coworkings/{coworking_id}"
    # each request is also malformed: a seat change without the contract's
    # `features`, a day of 99, an order that is not a list of ids, a closure
    # with no times
    attempts = [
        await api.patch(f"{base}/seats/{seat_id}", json={"cost": 5},
                        headers=stranger.headers),
        await api.get(f"{base}/clients", params={"day": 99},
                      headers=stranger.headers),
        await api.put(f"{base}/images/order", json={"ids": "x"},
                      headers=stranger.headers),
        await api.post(f"{base}/closures", json={}, headers=stranger.headers),
        await api.patch("/api/coworking", json={"slot_minutes": "many"},
                        headers=stranger.headers),
        # a query parameter no operation here reads
        await api.get(f"{base}/closures", params={"form": "2099-01-01T00:00:00Z"},
                      headers=stranger.headers),
        await api.get(f"{base}/clients", params={"dya": 1},
                      headers=stranger.headers),
    ]  # fmt: skip
    assert [(r.status_code, r.json()) for r in attempts] == [
        (403, {"error": "forbidden",
               "description": "This coworking is outside your scope"}),
    ] * len(attempts)  # fmt: skip
    assert await db.fetchval(seat_row, seat_id) == seat_before
    # a role that may not act is told so before its query is judged too
    owner_only = await api.post(
        "/api/coworkings", params={"draft": 1}, json={}, headers=stranger.headers
    )
    assert owner_only.status_code == 403
    assert owner_only.json()["error"] == "forbidden"
    # let in, the same misspelt filter is named
    manager = await create_admin(
        db, settings, role="manager", coworkings=[coworking_id]
    )
    misspelt = await api.get(
        f"{base}/closures", params={"form": "2099-01-01T00:00:00Z"},
        headers=manager.headers,
    )  # fmt: skip
    assert (misspelt.status_code, misspelt.json()) == (400, {
        "error": "invalid_query",
        "description": "query.form: not a parameter of this operation;"
        " did you mean from?",
    })  # fmt: skip


async def test_read_coworking_none_exists_404(api: httpx.AsyncClient, db) -> None:
    response = await api.get("/api/coworking/seats")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "description": "coworking: none is set up yet",
    }


async def test_update_coworking_contract_auth(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking_id = await create_coworking(db)
    client = await create_client(db, settings)
    stranger = await create_admin(
        db, settings, role="manager", coworkings=[uuid.uuid4()]
    )
    support = await create_admin(db, settings, role="support")
    manager = await create_admin(
        db, settings, role="manager", coworkings=[coworking_id]
    )

    assert (await api.patch("/api/coworking", json={"name": "X"})).status_code == 401
    bad = await api.patch("/api/coworking", json={"name": "X"},
                          headers={"Authorization": "Bearer not-a-token"})  # fmt: skip
    assert bad.status_code == 401
    said = {}
    for name, who in (("client", client), ("stranger", stranger),
                      ("support", support)):  # fmt: skip
        refused = await api.patch(
            "/api/coworking", json={"name": "X"}, headers=who.headers
        )
        assert refused.status_code == 403, who
        assert refused.json()["error"] == "forbidden"
        said[name] = refused.json()["description"]
    # each is told why: their scope, their role, or that it is staff's
    assert said["client"] == "only staff use this; a client's token does not reach it"
    assert said["stranger"] == "This coworking is outside your scope"
    assert said["support"] == "support staff read coworkings but do not change them"
    assert await db.fetchval("SELECT name FROM coworking.coworkings") == "Test Lounge"

    response = await api.patch("/api/coworking", headers=manager.headers, json={
        "name": "Renamed", "address": None, "slot_minutes": 30,
        "checkin_grace_minutes": 10, "opening_hours": {"mon": [["22:00", "06:00"]]},
        "timezone": "Europe/Berlin",
    })  # fmt: skip
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["address"], body["slot_minutes"]) == (
        "Renamed",
        "1 Test Street",
        30,
    )
    assert body["opening_hours"] == {"mon": [["22:00", "06:00"]]}
    assert (body["timezone"], body["checkin_grace_minutes"]) == ("Europe/Berlin", 10)

    cleared = await api.patch(
        "/api/coworking",
        headers=manager.headers,
        json={"opening_hours": None, "checkin_grace_minutes": None},
    )
    assert (
        cleared.json()["opening_hours"],
        cleared.json()["checkin_grace_minutes"],
    ) == (None, None)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "x" * 51}, "name"),
        ({"name": "Evil\r\nBcc: all@example.com"}, "name"),
        ({"address": "Line\u2028break"}, "address"),
        ({"timezone": "Mars/Base"}, "timezone"),
        # the host's own settings, which another host reads otherwise
        ({"timezone": "localtime"}, "timezone"),
        ({"timezone": "right/UTC"}, "timezone"),
        # a folder of the zone data, which opened as a file once answered 503
        ({"timezone": "America"}, "timezone"),
        ({"slot_minutes": 7}, "slot_minutes"),
        # the grid starts again at midnight: the last slot would be 5 minutes
        (
            {"slot_minutes": 35},
            "slot_minutes: 35 does not divide a day (1440 minutes); use a divisor"
            " such as 15, 30, 60 or 90",
        ),
        ({"opening_hours": {"mon": [["25:00", "06:00"]]}}, "opening_hours"),
        ({"min_duration_minutes": 800}, "min_duration_minutes"),
        (
            {"max_duration_minutes": 10},
            "max_duration_minutes: 10 is less than min_duration_minutes 15",
        ),
        (
            {"min_duration_minutes": 60, "max_duration_minutes": 30},
            "min_duration_minutes: 60 is more than max_duration_minutes 30",
        ),
        # a day's slot, with the default longest booking of 12 hours
        (
            {"slot_minutes": 1440},
            "slot_minutes: no booking would fit: on a 1440-minute grid the shortest"
            " from min_duration_minutes 15 lasts 1440, over max_duration_minutes 720",
        ),
        (
            {
                "slot_minutes": 90,
                "min_duration_minutes": 60,
                "max_duration_minutes": 80,
            },
            "slot_minutes: no booking would fit: on a 90-minute grid the shortest"
            " from min_duration_minutes 60 lasts 90, over max_duration_minutes 80",
        ),
        # the maximum is the one sent: 20 minutes take two 15-minute slots
        (
            {"min_duration_minutes": 20, "max_duration_minutes": 25},
            "max_duration_minutes: no booking would fit: on a 15-minute grid the"
            " shortest from min_duration_minutes 20 lasts 30, over"
            " max_duration_minutes 25",
        ),
        # no grace is null; 0 read the same and showed otherwise
        ({"checkin_grace_minutes": 0}, "checkin_grace_minutes"),
        # a misspelt rule is named, never dropped without a word
        ({"slot_minute": 30}, "slot_minute: Extra inputs are not permitted"),
    ],
    ids=lambda value: str(value)[:30],
)
async def test_update_coworking_refuses_bad_field(
    api, db, settings, body, field
) -> None:
    coworking_id = await create_coworking(db)
    owner = await create_admin(db, settings)
    response = await api.patch(
        f"/api/coworkings/{coworking_id}", json=body, headers=owner.headers
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_body"
    assert response.json()["description"].startswith(field), response.json()
    row = await db.fetchrow(
        "SELECT name, slot_minutes, timezone FROM coworking.coworkings"
    )
    assert tuple(row) == ("Test Lounge", 15, "UTC")


async def test_create_coworking_owner_only_and_listed(
    api: httpx.AsyncClient, db, settings
) -> None:
    owner = await create_admin(db, settings)
    manager = await create_admin(db, settings, role="manager")
    body = {"name": "Harbour Desk", "address": "Kai 1", "city": "Hamburg",
            "timezone": "Europe/Berlin", "auto_confirm": False,
            "hold_minutes": 20}  # fmt: skip
    assert (
        await api.post("/api/coworkings", json=body, headers=manager.headers)
    ).status_code == 403

    created = await api.post("/api/coworkings", json=body, headers=owner.headers)

    assert created.status_code == 201, created.text
    made = created.json()
    assert (
        made["city"],
        made["auto_confirm"],
        made["hold_minutes"],
        made["seats"],
    ) == ("Hamburg", False, 20, {"available": 0, "total": 0})
    await create_coworking(db, name="Harbour Hidden", active=False)
    await create_coworking(db, name="Other Place")
    found = await api.get("/api/coworkings", params={"name": "HARBOUR", "city": "burg"})
    assert [c["id"] for c in found.json()] == [made["id"]]
    assert len((await api.get("/api/coworkings", params={"limit": 10**9})).json()) == 2
    page = await api.get("/api/coworkings", params={"limit": 1, "offset": 1})
    assert [c["name"] for c in page.json()] == ["Other Place"]
    percent = await api.get("/api/coworkings", params={"name": "%"})
    assert percent.json() == []
    long = await api.get("/api/coworkings", params={"city": "x" * 51})
    assert (long.status_code, long.json()) == (
        400,
        {
            "error": "invalid_query",
            "description": "query.city: String should have at most 50 characters",
        },
    )


async def test_staff_find_the_inactive_coworkings_they_run_in_the_list(
    api: httpx.AsyncClient, db, settings
) -> None:
    open_one = await create_coworking(db, name="A Open")
    closed_here = await create_coworking(db, name="B Closed Here", active=False)
    closed_there = await create_coworking(db, name="C Closed There", active=False)
    owner = await create_admin(db, settings)
    manager = await create_admin(db, settings, role="manager")
    await db.execute(
        "INSERT INTO admin.admin_coworkings (admin_id, coworking_id) VALUES ($1, $2)",
        manager.id, closed_here,
    )  # fmt: skip
    client = await create_client(db, settings)

    async def listed(headers: dict[str, str]) -> list[tuple[str, bool]]:
        response = await api.get("/api/coworkings", headers=headers)
        assert response.status_code == 200, response.text
        return [(c["id"], c["active"]) for c in response.json()]

    assert await listed(owner.headers) == [
        (str(open_one), True), (str(closed_here), False), (str(closed_there), False),
    ]  # fmt: skip
    assert await listed(manager.headers) == [
        (str(open_one), True),
        (str(closed_here), False),
    ]
    for public in ({}, client.headers):
        assert await listed(public) == [(str(open_one), True)]
    signed_out = await api.get(
        "/api/coworkings", headers={"Authorization": "Bearer x.y.z"}
    )
    assert signed_out.status_code == 401


async def test_read_coworking_inactive_hidden_from_public(
    api: httpx.AsyncClient, db, settings
) -> None:
    hidden = await create_coworking(db, active=False)
    owner = await create_admin(db, settings)
    client = await create_client(db, settings)
    assert (await api.get(f"/api/coworkings/{hidden}")).status_code == 404
    assert (
        await api.get(f"/api/coworkings/{hidden}", headers=client.headers)
    ).status_code == 404
    seen = await api.get(f"/api/coworkings/{hidden}", headers=owner.headers)
    assert seen.status_code == 200 and seen.json()["active"] is False
    forged = await api.get(
        f"/api/coworkings/{hidden}", headers={"Authorization": "Bearer x.y.z"}
    )
    assert forged.status_code == 401


async def test_an_inactive_coworking_is_shown_to_a_client_who_booked_there(
    api: httpx.AsyncClient, db, settings
) -> None:
    hidden = await create_coworking(db, active=False)
    seat = await create_seat(db, hidden, number=7)
    holder = await create_client(db, settings)
    stranger = await create_client(db, settings)
    starts_at = datetime(2027, 3, 1, 9, tzinfo=UTC)
    await db.execute(
        "INSERT INTO reservation.reservations (id, client_id, seat_id, coworking_id,"
        " starts_at, ends_at, status) VALUES ($1, $2, $3, $4, $5, $6, 'cancelled')",
        uuid.uuid4(), holder.id, seat, hidden,
        starts_at, starts_at + timedelta(hours=1),
    )  # fmt: skip

    seen = await api.get(f"/api/coworkings/{hidden}", headers=holder.headers)
    assert seen.status_code == 200, seen.text
    assert (seen.json()["id"], seen.json()["active"]) == (str(hidden), False)
    seats = await api.get(f"/api/coworkings/{hidden}/seats", headers=holder.headers)
    assert [(s["id"], s["number"]) for s in seats.json()] == [(str(seat), 7)]
    for path in (f"/api/coworkings/{hidden}", f"/api/coworkings/{hidden}/seats"):
        refused = await api.get(path, headers=stranger.headers)
        assert (refused.status_code, refused.json()) == (
            404,
            {
                "error": "not_found",
                "description": f"coworking_id: no coworking {hidden}",
            },
        )
    # its availability reads as the coworking does: to the holder, seats with
    # no free time (it takes no bookings); to anyone else, no coworking
    window = {"from": "2027-03-01T08:00:00Z", "to": "2027-03-01T12:00:00Z"}
    path = f"/api/coworkings/{hidden}/availability"
    free = await api.get(path, params=window, headers=holder.headers)
    assert free.status_code == 200, free.text
    assert [(s["seat_id"], s["free"]) for s in free.json()["seats"]] == [
        (str(seat), [])
    ]
    refused = await api.get(path, params=window, headers=stranger.headers)
    assert (refused.status_code, refused.json()["description"]) == (
        404, f"coworking_id: no coworking {hidden}",
    )  # fmt: skip


async def test_a_signed_out_admin_token_is_refused_on_public_reads(
    api: httpx.AsyncClient, db, settings
) -> None:
    hidden = await create_coworking(db, active=False)
    owner = await create_admin(db, settings)
    assert (
        await api.get(f"/api/coworkings/{hidden}", headers=owner.headers)
    ).status_code == 200
    await db.execute(
        "UPDATE admin.admins SET token_version = token_version + 1 WHERE id = $1",
        owner.id,
    )

    refused = await api.get(f"/api/coworkings/{hidden}", headers=owner.headers)

    assert refused.status_code == 401


async def test_an_authorization_header_the_bearer_scheme_cannot_read_is_a_401(
    api: httpx.AsyncClient, db
) -> None:
    """A mangled header is a client that meant to sign in, not an anonymous one."""
    coworking = await create_coworking(db)
    paths = ("/api/coworkings", f"/api/coworkings/{coworking}/seats")
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "token-without-scheme"):
        for path in paths:
            refused = await api.get(path, headers={"Authorization": value})
            assert refused.status_code == 401, (value, path)
            assert refused.json()["error"] == "unauthorized"
    # no header, or an empty one, is anyone
    for headers in ({}, {"Authorization": " "}):
        for path in paths:
            assert (await api.get(path, headers=headers)).status_code == 200


async def test_the_seats_of_an_inactive_coworking_are_hidden_as_it_is(
    api: httpx.AsyncClient, db, settings
) -> None:
    hidden = await create_coworking(db, active=False)
    seat = await create_seat(db, hidden, number=4)
    owner = await create_admin(db, settings)
    outsider = await create_admin(
        db, settings, role="manager", coworkings=[await create_coworking(db)]
    )
    client = await create_client(db, settings)
    path = f"/api/coworkings/{hidden}/seats"
    for headers in ({}, client.headers, outsider.headers):
        refused = await api.get(path, headers=headers)
        assert (refused.status_code, refused.json()) == (
            404,
            {
                "error": "not_found",
                "description": f"coworking_id: no coworking {hidden}",
            },
        )
    seen = await api.get(path, headers=owner.headers)
    assert seen.status_code == 200
    assert [(s["id"], s["number"]) for s in seen.json()] == [(str(seat), 4)]
    # the one seat too, read by staff of another coworking, in the words an
    # unknown coworking gets: nothing tells the two apart
    one = await api.get(f"{path}/{seat}", headers=outsider.headers)
    unknown = await api.get(
        f"/api/coworkings/{uuid.uuid4()}/seats/{seat}", headers=outsider.headers
    )
    assert (one.status_code, one.json()) == (unknown.status_code, unknown.json())
    assert (one.status_code, one.json()["description"]) == (
        404,
        f"seat_id: no seat {seat} in this coworking",
    )
    mine = await api.get(f"{path}/{seat}", headers=owner.headers)
    assert (mine.status_code, mine.json()["number"]) == (200, 4)


async def test_create_seat_contract_shapes(
    api: httpx.AsyncClient, db, settings, kv
) -> None:
    coworking_id = await create_coworking(db)
    manager = await create_admin(
        db, settings, role="manager", coworkings=[coworking_id]
    )
    version = await availability_version(kv, coworking_id)

    cabin = await api.post("/api/coworking/seats", headers=manager.headers, json={
        "type": {"Cabin": 4}, "number": 12, "features": ["Monitor", "Laptop"],
        "cost": 250.5,
    })  # fmt: skip
    open_space = await api.post(
        f"/api/coworkings/{coworking_id}/seats", headers=manager.headers,
        json={"type": "OpenSpace", "number": 1, "features": [], "cost": 10,
              "internal_only": True, "pos_x": 1.5, "pos_y": -2},
    )  # fmt: skip

    assert cabin.status_code == 201, cabin.text
    body = cabin.json()
    assert (body["type"], body["number"], body["features"], body["cost"]) == (
        {"Cabin": 4},
        12,
        ["Monitor", "Laptop"],
        250.5,
    )
    assert open_space.json()["type"] == "OpenSpace"
    assert (open_space.json()["internal_only"], open_space.json()["pos_x"]) == (
        True,
        1.5,
    )
    row = await db.fetchrow(
        "SELECT kind, capacity FROM coworking.seats WHERE number = 12"
    )
    assert tuple(row) == ("Cabin", 4)
    listed = await api.get("/api/coworking/seats")
    assert [s["number"] for s in listed.json()] == [1, 12]
    assert [
        s["number"]
        for s in (await api.get("/api/coworking/seats?limit=1&offset=1")).json()
    ] == [12]
    assert await availability_version(kv, coworking_id) == version + 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "Desk", "number": 2, "features": [], "cost": 1}, "type"),
        ({"type": {"Room": -1}, "number": 2, "features": [], "cost": 1}, "type"),
        (
            {"type": {"Room": 2, "Cabin": 1}, "number": 2, "features": [], "cost": 1},
            "type",
        ),
        ({"type": "OpenSpace", "number": 0, "features": [], "cost": 1}, "number"),
        ({"type": "OpenSpace", "number": 1001, "features": [], "cost": 1}, "number"),
        (
            {"type": "OpenSpace", "number": 2, "features": ["Sofa"], "cost": 1},
            "features",
        ),
        (
            {"type": "OpenSpace", "number": 2, "features": ["Monitor"] * 25, "cost": 1},
            "features",
        ),
        ({"type": "OpenSpace", "number": 2, "features": [], "cost": 0}, "cost"),
        ({"type": "OpenSpace", "number": 2, "features": [], "cost": 1000001}, "cost"),
        ({"type": "OpenSpace", "number": 5, "features": [], "cost": 1}, "number"),
        (
            {
                "type": "OpenSpace",
                "number": 2,
                "features": ["Monitor", "Monitor"],
                "cost": 1,
            },
            "features",
        ),
        ({"type": "OpenSpace", "number": 2, "features": [], "cost": 1e-300}, "cost"),
        # a number is a number: neither a boolean nor a numeral in a string
        ({"type": "OpenSpace", "number": 2, "features": [], "cost": True}, "cost"),
        ({"type": "OpenSpace", "number": 2, "features": [], "cost": "100"}, "cost"),
        ({"type": "OpenSpace", "number": True, "features": [], "cost": 1}, "number"),
        ({"type": "OpenSpace", "number": "7", "features": [], "cost": 1}, "number"),
        (
            {"type": "OpenSpace", "number": 2, "features": [], "cost": 1, "pos_x": "1"},
            "pos_x",
        ),
    ],
    ids=lambda value: str(value)[:40],
)
async def test_create_seat_refuses_bad_field(api, db, settings, body, field) -> None:
    coworking_id = await create_coworking(db)
    await create_seat(db, coworking_id, number=5)
    owner = await create_admin(db, settings)
    response = await api.post("/api/coworking/seats", json=body, headers=owner.headers)
    assert response.status_code == 400, response.text
    assert response.json()["description"].startswith(field), response.json()
    assert await db.fetchval("SELECT count(*) FROM coworking.seats") == 1


async def test_create_seats_bulk_all_or_nothing(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking_id = await create_coworking(db)
    await create_seat(db, coworking_id, number=3)
    owner = await create_admin(db, settings)
    seat = {"type": "OpenSpace", "features": [], "cost": 5}
    url = f"/api/coworkings/{coworking_id}/seats/bulk"

    taken = await api.post(
        url, headers=owner.headers, json=[{**seat, "number": 1}, {**seat, "number": 3}]
    )
    twice = await api.post(
        url, headers=owner.headers, json=[{**seat, "number": 7}, {**seat, "number": 7}]
    )
    assert (taken.status_code, taken.json()["description"]) == (
        400,
        "body.1.number: seat number 3 is already used in this coworking",
    )
    assert twice.json()["description"] == (
        "body.1.number: seat number 7 is also at body.0"
    )
    # as a field the schema refuses in a list body is named
    unknown = await api.post(
        url,
        headers=owner.headers,
        json=[{**seat, "number": 2}, {**seat, "number": "x"}],
    )
    assert unknown.json()["description"] == (
        "body.1.number: Input should be a valid integer"
    )
    assert await db.fetchval("SELECT count(*) FROM coworking.seats") == 1
    assert (await api.post(url, headers=owner.headers, json=[])).status_code == 400

    made = await api.post(
        url,
        headers=owner.headers,
        json=[{**seat, "number": n, "pos_x": n, "pos_y": 0} for n in (1, 2)],
    )
    assert made.status_code == 201
    assert [(s["number"], s["pos_x"]) for s in made.json()] == [(1, 1.0), (2, 2.0)]


async def test_update_and_delete_seat(api: httpx.AsyncClient, db, settings) -> None:
    coworking_id = await create_coworking(db)
    seat_id = await create_seat(db, coworking_id, number=1)
    other = await create_seat(db, coworking_id, number=2)
    owner = await create_admin(db, settings)
    client = await create_client(db, settings)
    url = f"/api/coworking/seats/{seat_id}"

    assert (await api.get(url)).status_code == 401
    assert (await api.get(url, headers=client.headers)).status_code == 403
    assert (
        await api.patch(url, json={"number": 2}, headers=owner.headers)
    ).status_code == 400
    clash = await api.patch(
        url, json={"features": [], "number": 2}, headers=owner.headers
    )
    assert clash.json() == {
        "error": "invalid_body",
        "description": "number: seat number 2 is already used in this coworking",
    }
    edited = await api.patch(
        url,
        headers=owner.headers,
        json={
            "features": ["Laptop"],
            "type": {"Room": 8},
            "cost": 99,
            "active": False,
            "number": None,
        },
    )
    assert edited.status_code == 200
    assert {
        k: edited.json()[k] for k in ("features", "type", "cost", "active", "number")
    } == {
        "features": ["Laptop"],
        "type": {"Room": 8},
        "cost": 99.0,
        "active": False,
        "number": 1,
    }
    assert (await api.get(url, headers=owner.headers)).json()["type"] == {"Room": 8}

    now = datetime.now(UTC)
    await insert_reservation(
        db,
        client_id=client.id,
        seat_id=other,
        coworking_id=coworking_id,
        starts_at=now + timedelta(days=1),
        ends_at=now + timedelta(days=1, hours=1),
    )
    blocked = await api.delete(f"/api/coworking/seats/{other}", headers=owner.headers)
    assert blocked.status_code == 409
    assert "1 reservation to come or under way" in blocked.json()["description"]

    assert (await api.delete(url, headers=owner.headers)).status_code == 204
    assert (await api.get(url, headers=owner.headers)).status_code == 404
    assert (await api.delete(url, headers=owner.headers)).status_code == 404
    # the number is free again once the seat is gone
    again = await api.post(
        "/api/coworking/seats",
        headers=owner.headers,
        json={"type": "OpenSpace", "number": 1, "features": [], "cost": 1},
    )
    assert again.status_code == 201


async def test_seat_of_other_coworking_is_not_found(
    api: httpx.AsyncClient, db, settings
) -> None:
    mine = await create_coworking(db)
    theirs = await create_coworking(db)
    foreign = await create_seat(db, theirs, number=1)
    manager = await create_admin(db, settings, role="manager", coworkings=[mine])
    response = await api.patch(
        f"/api/coworkings/{mine}/seats/{foreign}",
        json={"features": [], "cost": 1},
        headers=manager.headers,
    )
    assert response.status_code == 404
    cross = await api.patch(
        f"/api/coworkings/{theirs}/seats/{foreign}",
        json={"features": [], "cost": 1},
        headers=manager.headers,
    )
    assert cross.status_code == 403
    assert (
        await db.fetchval("SELECT cost FROM coworking.seats WHERE id = $1", foreign)
        == 100.0
    )


async def test_list_clients_of_day_in_local_zone(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking_id = await create_coworking(db, timezone="Europe/Berlin")
    seat_id = await create_seat(db, coworking_id)
    owner = await create_admin(db, settings)
    ada = await create_client(db, settings, name="Ada", surname="Byron")
    bob = await create_client(db, settings, name="Bob", surname="Adams")
    gone = await create_client(db, settings, surname="Cancelled")
    # 2026-05-04 local runs from 05-03T22:00Z to 05-04T22:00Z
    for who, start, status in (
        (ada, datetime(2026, 5, 3, 22, 30, tzinfo=UTC), "checked_in"),
        (bob, datetime(2026, 5, 4, 21, 0, tzinfo=UTC), "held"),
        (gone, datetime(2026, 5, 4, 10, 0, tzinfo=UTC), "cancelled"),
        (gone, datetime(2026, 5, 4, 22, 0, tzinfo=UTC), "confirmed"),
    ):
        await insert_reservation(
            db,
            client_id=who.id,
            seat_id=seat_id,
            coworking_id=coworking_id,
            starts_at=start,
            ends_at=start + timedelta(hours=1),
            status=status,
        )

    query = {"day": 4, "month": 5, "year": 2026}
    response = await api.get(
        "/api/coworking/clients", params=query, headers=owner.headers
    )

    assert response.status_code == 200, response.text
    assert [c["surname"] for c in response.json()] == ["Adams", "Byron"]
    assert set(response.json()[0]) == {
        "id",
        "email",
        "name",
        "surname",
        "patronymic",
        "send_notifications",
        "is_internal",
        "verified",
    }
    paged = await api.get(
        "/api/coworking/clients",
        params={**query, "limit": 1, "offset": 1},
        headers=owner.headers,
    )
    assert [c["surname"] for c in paged.json()] == ["Byron"]
    assert (await api.get("/api/coworking/clients", params=query)).status_code == 401
    client = await create_client(db, settings)
    assert (
        await api.get("/api/coworking/clients", headers=client.headers)
    ).status_code == 403
    for query, description in (
        ({"day": 31, "month": 2, "year": 2026},
         "query.day: 31 is not a day of 2026-02, which has 28"),
        ({"day": 1, "month": 1, "year": 1},
         "query.year: 1 is not between 2000 and 2200"),
        # the day's bounds in UTC were past what a datetime holds: a 500
        ({"day": 31, "month": 12, "year": 9999},
         "query.year: 9999 is not between 2000 and 2200"),
        ({"day": 0, "month": 0, "year": 0},
         "query.year: 0 is not between 2000 and 2200"),
        ({"day": 0, "month": 0, "year": 2026},
         "query.month: 0 is not between 1 and 12"),
        ({"day": 0}, "query.day: 0 is not a day of"),
        # past a month's or a year's end, in the same words as below it
        ({"day": 32, "month": 1, "year": 2027},
         "query.day: 32 is not a day of 2027-01, which has 31"),
        ({"day": 1, "month": 13, "year": 2027},
         "query.month: 13 is not between 1 and 12"),
        ({"day": 1, "month": 1, "year": 10000},
         "query.year: 10000 is not between 2000 and 2200"),
    ):  # fmt: skip
        bad = await api.get(
            "/api/coworking/clients", params=query, headers=owner.headers
        )
        assert (bad.status_code, bad.json()["error"]) == (400, "invalid_query")
        assert bad.json()["description"].startswith(description), query
    today = await api.get("/api/coworking/clients", headers=owner.headers)
    assert today.status_code == 200 and today.json() == []


async def test_closures_crud_and_scope(api: httpx.AsyncClient, db, settings) -> None:
    coworking_id = await create_coworking(db)
    seat_id = await create_seat(db, coworking_id)
    manager = await create_admin(
        db, settings, role="manager", coworkings=[coworking_id]
    )
    support = await create_admin(db, settings, role="support")
    url = f"/api/coworkings/{coworking_id}/closures"
    body = {
        "seat_id": str(seat_id),
        "starts_at": "2099-05-01T08:00:00+02:00",
        "ends_at": "2099-05-01T12:00:00+02:00",
        "reason": "Cleaning",
    }

    assert (await api.post(url, json=body, headers=support.headers)).status_code == 403
    naive = await api.post(
        url, json={**body, "starts_at": "2099-05-01T08:00:00"}, headers=manager.headers
    )
    assert naive.status_code == 400 and naive.json()["description"].startswith(
        "starts_at"
    )
    backwards = await api.post(
        url,
        json={**body, "ends_at": "2099-05-01T07:00:00+02:00"},
        headers=manager.headers,
    )
    assert backwards.json()["description"] == "ends_at: must be after starts_at"
    unknown = await api.post(
        url, json={**body, "seat_id": str(uuid.uuid4())}, headers=manager.headers
    )
    assert unknown.status_code == 400 and unknown.json()["description"].startswith(
        "seat_id"
    )
    header = await api.post(
        url, json={**body, "reason": "a\nb"}, headers=manager.headers
    )
    assert header.status_code == 400 and header.json()["description"].startswith(
        "reason"
    )

    created = await api.post(url, json=body, headers=manager.headers)
    assert created.status_code == 201, created.text
    closure = created.json()
    assert (closure["starts_at"], closure["reason"]) == (
        "2099-05-01T06:00:00Z",
        "Cleaning",
    )
    listed = await api.get(url, headers=support.headers)
    assert [c["id"] for c in listed.json()] == [closure["id"]]
    outside = await api.get(
        url, params={"from": "2099-05-02T00:00:00Z"}, headers=support.headers
    )
    assert outside.json() == []
    backwards = await api.get(
        url,
        params={"from": "2099-05-02T00:00:00Z", "to": "2099-05-01T00:00:00Z"},
        headers=support.headers,
    )
    assert (backwards.status_code, backwards.json()) == (
        400,
        {"error": "invalid_query", "description": "query.to: must be after from"},
    )
    assert (await api.get(url)).status_code == 401

    moved = await api.patch(
        f"{url}/{closure['id']}",
        headers=manager.headers,
        json={"ends_at": "2099-05-01T13:00:00+02:00"},
    )
    assert (moved.json()["ends_at"], moved.json()["reason"]) == (
        "2099-05-01T11:00:00Z",
        "Cleaning",
    )
    assert (
        await api.get(f"{url}/{closure['id']}", headers=support.headers)
    ).json() == moved.json()
    assert (
        await api.delete(f"{url}/{closure['id']}", headers=manager.headers)
    ).status_code == 204
    assert (
        await api.delete(f"{url}/{closure['id']}", headers=manager.headers)
    ).status_code == 404
    assert await db.fetchval("SELECT count(*) FROM coworking.closures") == 0


async def test_a_coworking_closed_by_its_hours_has_no_seat_available_now(
    api: httpx.AsyncClient, db, settings
) -> None:
    first = await create_coworking(db, name="First")
    await create_seat(db, first, number=1)
    day = (datetime.now(UTC) + timedelta(days=2)).strftime("%a").lower()
    await db.execute(
        "UPDATE coworking.coworkings SET opening_hours = $2::jsonb WHERE id = $1",
        first, json.dumps({day: [["09:00", "17:00"]]}),
    )  # fmt: skip

    body = (await api.get("/api/coworking")).json()

    assert (body["opening_hours"], body["seats"]) == (
        {day: [["09:00", "17:00"]]},
        {"available": 0, "total": 1},
    )


async def test_a_client_is_told_a_staff_route_is_staffs_before_its_body_is_read(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking_id = await create_coworking(db)
    seat_id = await create_seat(db, coworking_id)
    client = await create_client(db, settings)
    asked = [
        ("GET", "/api/coworking/clients", None),
        ("GET", f"/api/coworkings/{coworking_id}/closures", None),
        # bodies that would be a 400 to staff: the client learns no schema
        ("PATCH", f"/api/coworking/seats/{seat_id}", {}),
        ("POST", "/api/coworking/closures", {"bogus": 1}),
        ("PATCH", "/api/coworking", {"bogus": 1}),
        ("POST", "/api/coworkings", {}),
    ]
    for method, path, body in asked:
        refused = await api.request(method, path, json=body, headers=client.headers)
        assert (refused.status_code, refused.json()) == (
            403,
            {"error": "forbidden",
             "description": "only staff use this; a client's token does not reach it"},
        ), (method, path)  # fmt: skip
    assert await db.fetchval("SELECT count(*) FROM coworking.coworkings") == 1
