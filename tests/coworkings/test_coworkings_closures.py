"""A closure is refused over active reservations, so nobody's booking is silently
closed; staff cancel those first and the clients are told."""

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from tests.coworkings.test_coworkings_api import insert_reservation
from tests.factories import create_admin, create_client, create_coworking, create_seat

# 10:00 to 12:00 in Berlin, summer time
TEN, NOON = datetime(2099, 6, 1, 8, tzinfo=UTC), datetime(2099, 6, 1, 10, tzinfo=UTC)


async def _closures(db) -> list[tuple]:
    rows = await db.fetch(
        "SELECT id, seat_id, starts_at, ends_at, reason FROM coworking.closures"
        " ORDER BY starts_at, id"
    )
    return [tuple(row) for row in rows]


async def _setup(db, settings):
    coworking = await create_coworking(db, timezone="Europe/Berlin")
    seat = await create_seat(db, coworking, number=7)
    other = await create_seat(db, coworking, number=8)
    client = await create_client(db, settings)
    owner = await create_admin(db, settings, role="owner")
    return coworking, seat, other, client, owner


async def test_closure_over_a_confirmed_booking_is_refused_and_writes_nothing(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking, seat, _, client, owner = await _setup(db, settings)
    booked = await insert_reservation(
        db, client_id=client.id, seat_id=seat, coworking_id=coworking,
        starts_at=TEN, ends_at=NOON,
    )  # fmt: skip
    before = await _closures(db)

    response = await api.post(
        f"/api/coworkings/{coworking}/closures",
        json={
            "seat_id": str(seat),
            "starts_at": "2099-06-01T11:00:00+02:00",
            "ends_at": "2099-06-01T15:00:00+02:00",
            "reason": "Painting",
        },
        headers=owner.headers,
    )

    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "description": "closure: 1 active reservation falls inside it; cancel it"
        f" first: {booked} (seat 7, 2099-06-01 10:00–12:00)"
        " (times in Europe/Berlin)",
    }
    assert await _closures(db) == before == []


async def test_closure_of_the_whole_coworking_names_the_first_bookings_of_any_seat(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking, seat, other, client, owner = await _setup(db, settings)
    rival = await create_client(db, settings)
    first = await insert_reservation(
        db, client_id=client.id, seat_id=other, coworking_id=coworking,
        starts_at=TEN, ends_at=NOON, status="held",
    )  # fmt: skip
    second = await insert_reservation(
        db, client_id=rival.id, seat_id=seat, coworking_id=coworking,
        starts_at=NOON, ends_at=datetime(2099, 6, 1, 22, 30, tzinfo=UTC),
        status="checked_in",
    )  # fmt: skip
    for hour in (13, 15):
        await insert_reservation(
            db, client_id=client.id, seat_id=seat, coworking_id=coworking,
            starts_at=datetime(2099, 6, 2, hour, tzinfo=UTC),
            ends_at=datetime(2099, 6, 2, hour + 1, tzinfo=UTC),
        )  # fmt: skip
    third = await db.fetchval(
        "SELECT id FROM reservation.reservations WHERE starts_at = $1",
        datetime(2099, 6, 2, 13, tzinfo=UTC),
    )

    # through the contract's singular path, on the default (only) coworking
    response = await api.post(
        "/api/coworking/closures",
        json={
            "seat_id": None,
            "starts_at": "2099-06-01T00:00:00+02:00",
            "ends_at": "2099-06-03T00:00:00+02:00",
        },
        headers=owner.headers,
    )

    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "description": "closure: 4 active reservations fall inside it; cancel them"
        f" first: {first} (seat 8, 2099-06-01 10:00–12:00),"
        f" {second} (seat 7, 2099-06-01 12:00–2099-06-02 00:30),"
        f" {third} (seat 7, 2099-06-02 15:00–16:00) and 1 more"
        " (times in Europe/Berlin)",
    }
    assert await _closures(db) == []


async def test_closure_touching_a_booking_or_over_an_ended_one_is_accepted(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking, seat, other, client, owner = await _setup(db, settings)
    await insert_reservation(
        db, client_id=client.id, seat_id=seat, coworking_id=coworking,
        starts_at=TEN, ends_at=NOON,
    )  # fmt: skip
    for status in ("cancelled", "expired", "no_show", "completed"):
        await insert_reservation(
            db, client_id=client.id, seat_id=other, coworking_id=coworking,
            starts_at=TEN, ends_at=NOON, status=status,
        )  # fmt: skip
    url = f"/api/coworkings/{coworking}/closures"

    before = await api.post(
        url,
        json={"starts_at": "2099-06-01T08:00:00+02:00", "ends_at": TEN.isoformat()},
        headers=owner.headers,
    )
    after = await api.post(
        url,
        json={"seat_id": str(seat), "starts_at": NOON.isoformat(),
              "ends_at": "2099-06-01T13:00:00+02:00"},
        headers=owner.headers,
    )  # fmt: skip
    over_ended = await api.post(
        url,
        json={"seat_id": str(other), "starts_at": TEN.isoformat(),
              "ends_at": NOON.isoformat(), "reason": "Repairs"},
        headers=owner.headers,
    )  # fmt: skip

    assert [before.status_code, after.status_code, over_ended.status_code] == [
        201, 201, 201,
    ]  # fmt: skip
    assert await _closures(db) == [
        (uuid.UUID(before.json()["id"]), None,
         datetime(2099, 6, 1, 6, tzinfo=UTC), TEN, ""),
        (uuid.UUID(over_ended.json()["id"]), other, TEN, NOON, "Repairs"),
        (uuid.UUID(after.json()["id"]), seat,
         NOON, datetime(2099, 6, 1, 11, tzinfo=UTC), ""),
    ]  # fmt: skip


async def test_patch_that_moves_a_closure_onto_a_booking_is_refused(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking, seat, _, client, owner = await _setup(db, settings)
    booked = await insert_reservation(
        db, client_id=client.id, seat_id=seat, coworking_id=coworking,
        starts_at=TEN, ends_at=NOON,
    )  # fmt: skip
    url = f"/api/coworkings/{coworking}/closures"
    created = await api.post(
        url,
        json={"seat_id": str(seat), "starts_at": "2099-06-01T07:00:00+02:00",
              "ends_at": TEN.isoformat(), "reason": "Cleaning"},
        headers=owner.headers,
    )  # fmt: skip
    assert created.status_code == 201, created.text
    closure = f"{url}/{created.json()['id']}"
    before = await _closures(db)

    moved = await api.patch(
        closure,
        json={"starts_at": "2099-06-01T11:30:00+02:00",
              "ends_at": "2099-06-01T12:30:00+02:00"},
        headers=owner.headers,
    )  # fmt: skip
    widened = await api.patch(
        closure, json={"ends_at": "2099-06-01T10:05:00+02:00"}, headers=owner.headers
    )

    description = (
        "closure: 1 active reservation falls inside it; cancel it first:"
        f" {booked} (seat 7, 2099-06-01 10:00–12:00) (times in Europe/Berlin)"
    )
    for refused in (moved, widened):
        assert refused.status_code == 409
        assert refused.json() == {"error": "conflict", "description": description}
    assert await _closures(db) == before
    # a new reason moves nothing and goes through
    renamed = await api.patch(
        closure, json={"reason": "Deep clean"}, headers=owner.headers
    )
    assert renamed.status_code == 200 and renamed.json()["reason"] == "Deep clean"


async def test_new_hours_that_leave_a_booking_outside_are_refused_naming_it(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking, seat, _, client, owner = await _setup(db, settings)
    booked = await insert_reservation(
        db, client_id=client.id, seat_id=seat, coworking_id=coworking,
        starts_at=TEN, ends_at=NOON,
    )  # fmt: skip
    # a cancelled booking keeps nobody from changing the hours
    await insert_reservation(
        db, client_id=client.id, seat_id=seat, coworking_id=coworking,
        starts_at=NOON, ends_at=datetime(2099, 6, 1, 14, tzinfo=UTC),
        status="cancelled",
    )  # fmt: skip
    url = f"/api/coworkings/{coworking}"

    shorter = await api.patch(
        url, json={"opening_hours": {"mon": [["08:00", "11:00"]]}},
        headers=owner.headers,
    )  # fmt: skip
    assert (shorter.status_code, shorter.json()) == (
        409,
        {
            "error": "conflict",
            "description": "opening_hours: 1 active reservation falls outside the"
            " new opening hours; move or cancel it first:"
            f" {booked} (seat 7, 2099-06-01 10:00–12:00) (times in Europe/Berlin)",
        },
    )
    assert (await api.get(url, headers=owner.headers)).json()["opening_hours"] is None

    fits = await api.patch(
        url, json={"opening_hours": {"mon": [["08:00", "12:00"]]}},
        headers=owner.headers,
    )  # fmt: skip
    assert fits.status_code == 200, fits.text
    # the same hours on Almaty's clock would start the booking at 13:00
    moved_zone = await api.patch(
        url, json={"timezone": "Asia/Almaty"}, headers=owner.headers
    )
    assert (moved_zone.status_code, moved_zone.json()["description"]) == (
        409,
        "timezone: 1 active reservation falls outside the new opening hours; move"
        f" or cancel it first: {booked} (seat 7, 2099-06-01 13:00–15:00)"
        " (times in Asia/Almaty)",
    )
    after = (await api.get(url, headers=owner.headers)).json()
    assert (after["timezone"], after["opening_hours"]) == (
        "Europe/Berlin",
        {"mon": [["08:00", "12:00"]]},
    )


async def test_closure_times_are_rfc3339_text_in_a_sane_year(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking, seat, _, _, owner = await _setup(db, settings)
    url = f"/api/coworkings/{coworking}/closures"
    stamp = await api.post(
        url,
        json={"starts_at": 4084300800, "ends_at": "2099-06-01T15:00:00+02:00"},
        headers=owner.headers,
    )
    far = await api.post(
        url,
        json={"starts_at": "9999-06-01T11:00:00Z", "ends_at": "9999-06-01T15:00:00Z"},
        headers=owner.headers,
    )
    assert (stamp.status_code, stamp.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "starts_at: must be an RFC 3339 date-time string"
            " with an offset",
        },
    )
    assert far.status_code == 400
    assert far.json()["description"].startswith("starts_at: ")
    assert "between the years 2000 and 2200" in far.json()["description"]
    assert await _closures(db) == []


async def test_a_seat_or_closure_body_with_a_field_it_does_not_know_changes_nothing(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking, seat, _, _, owner = await _setup(db, settings)
    seat_edit = await api.patch(
        f"/api/coworkings/{coworking}/seats/{seat}",
        json={"features": ["Monitor"], "costs": 9},
        headers=owner.headers,
    )
    closure = await api.post(
        f"/api/coworkings/{coworking}/closures",
        json={
            "starts_at": "2099-06-01T11:00:00+02:00",
            "ends_at": "2099-06-01T15:00:00+02:00",
            "seat": str(seat),
        },
        headers=owner.headers,
    )
    assert (seat_edit.status_code, seat_edit.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "costs: Extra inputs are not permitted",
        },
    )
    assert (closure.status_code, closure.json()["description"]) == (
        400,
        "seat: Extra inputs are not permitted",
    )
    row = await db.fetchrow("SELECT features FROM coworking.seats WHERE id = $1", seat)
    assert list(row["features"]) == []
    assert await _closures(db) == []


async def test_a_closure_that_has_passed_is_refused_and_a_passed_one_keeps_its_times(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking, seat, _, _, owner = await _setup(db, settings)
    url = f"/api/coworkings/{coworking}/closures"
    now = datetime.now(UTC).replace(microsecond=0)
    past_start, past_end = now - timedelta(days=3), now - timedelta(days=2)

    refused = await api.post(
        url,
        json={"seat_id": str(seat), "starts_at": past_start.isoformat(),
              "ends_at": past_end.isoformat(), "reason": "Typo in the year"},
        headers=owner.headers,
    )  # fmt: skip
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_body",
        "description": f"ends_at: {past_end.isoformat()} has passed; a closure"
        " must end after now",
    }
    assert await _closures(db) == []

    # one under way is accepted: it still holds off the rest of its time
    running = await api.post(
        url,
        json={"starts_at": past_start.isoformat(),
              "ends_at": (now + timedelta(hours=1)).isoformat()},
        headers=owner.headers,
    )  # fmt: skip
    assert running.status_code == 201, running.text
    closure = f"{url}/{running.json()['id']}"
    before = await _closures(db)

    ended = await api.patch(
        closure, json={"ends_at": past_end.isoformat()}, headers=owner.headers
    )
    assert ended.status_code == 400
    assert ended.json()["description"] == (
        f"ends_at: {past_end.isoformat()} has passed; a closure must end after now"
    )
    assert await _closures(db) == before

    # a closure that has since passed may still have its reason mended
    await db.execute(
        "UPDATE coworking.closures SET ends_at = $1 WHERE id = $2",
        past_end, uuid.UUID(running.json()["id"]),
    )  # fmt: skip
    renamed = await api.patch(closure, json={"reason": "Flood"}, headers=owner.headers)
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["reason"] == "Flood"
    assert renamed.json()["ends_at"] == past_end.isoformat().replace("+00:00", "Z")
