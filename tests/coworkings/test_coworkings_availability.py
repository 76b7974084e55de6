import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.booking_rules import CoworkingRules, SeatInfo, check_booking
from api.errors import RuleViolation
from api.services.coworkings import coworking_row
from api.services.reservation_reads import busy_intervals
from tests.factories import create_admin, create_client, create_coworking, create_seat

ALL_WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# these tests look at the calendar of 2099: a booking horizon that reaches it
FAR = 40_000


def z(text: str) -> str:
    return text.replace("+00:00", "Z")


async def reserve(db, *, client_id, seat_id, coworking_id, starts_at, ends_at,
                  status="confirmed") -> None:  # fmt: skip
    await db.execute(
        "INSERT INTO reservation.reservations (id, client_id, seat_id, coworking_id,"
        " starts_at, ends_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        uuid.uuid4(), client_id, seat_id, coworking_id, starts_at, ends_at, status,
    )  # fmt: skip


def free_of(response: httpx.Response, seat_index: int = 0) -> list[tuple[str, str]]:
    assert response.status_code == 200, response.text
    return [
        (f["starts_at"], f["ends_at"])
        for f in response.json()["seats"][seat_index]["free"]
    ]


async def test_availability_dst_spring_forward_berlin(
    api: httpx.AsyncClient, db
) -> None:
    coworking_id = await create_coworking(
        db, timezone="Europe/Berlin", opening_hours={"sun": [["01:00", "05:00"]]},
        slot_minutes=30, min_duration_minutes=30, max_days_ahead=FAR,
    )  # fmt: skip
    await create_seat(db, coworking_id)

    response = await api.get(f"/api/coworkings/{coworking_id}/availability", params={
        "from": "2099-03-29T00:00:00+01:00", "to": "2099-03-29T12:00:00+02:00",
    })  # fmt: skip

    # 2099-03-29 is the last Sunday of March: 01:00 CET to 05:00 CEST is three
    # real hours
    assert free_of(response) == [("2099-03-29T00:00:00Z", "2099-03-29T03:00:00Z")]
    body = response.json()
    assert (body["timezone"], body["slot_minutes"], body["from"]) == (
        "Europe/Berlin",
        30,
        "2099-03-28T23:00:00Z",
    )


async def test_availability_offers_the_short_spring_day_of_a_coworking_renting_days(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking_id = await create_coworking(
        db, timezone="Europe/Berlin", slot_minutes=1440, min_duration_minutes=1440,
        max_duration_minutes=1440, max_days_ahead=FAR,
    )  # fmt: skip
    seat_id = await create_seat(db, coworking_id)
    client = await create_client(db, settings)
    # the days either side of Sunday 2099-03-29 taken, so it stands alone
    for starts_at, ends_at in (
        ("2099-03-28T00:00:00+01:00", "2099-03-29T00:00:00+01:00"),
        ("2099-03-30T00:00:00+02:00", "2099-03-31T00:00:00+02:00"),
    ):
        await reserve(
            db, client_id=client.id, seat_id=seat_id, coworking_id=coworking_id,
            starts_at=datetime.fromisoformat(starts_at),
            ends_at=datetime.fromisoformat(ends_at),
        )  # fmt: skip

    response = await api.get(f"/api/coworkings/{coworking_id}/availability", params={
        "from": "2099-03-27T00:00:00+01:00", "to": "2099-04-01T00:00:00+02:00",
    })  # fmt: skip

    # its 23 hours are a day on the local grid, and booked as one
    assert free_of(response) == [
        ("2099-03-26T23:00:00Z", "2099-03-27T23:00:00Z"),
        ("2099-03-28T23:00:00Z", "2099-03-29T22:00:00Z"),
        ("2099-03-30T22:00:00Z", "2099-03-31T22:00:00Z"),
    ]


async def test_availability_overnight_hours_across_midnight(
    api: httpx.AsyncClient, db
) -> None:
    coworking_id = await create_coworking(
        db, opening_hours={day: [["22:00", "06:00"]] for day in ALL_WEEK},
        max_days_ahead=FAR,
    )  # fmt: skip
    await create_seat(db, coworking_id)

    response = await api.get(f"/api/coworkings/{coworking_id}/availability", params={
        "from": "2099-01-01T00:00:00Z", "to": "2099-01-02T12:00:00Z"})  # fmt: skip

    assert free_of(response) == [
        ("2099-01-01T00:00:00Z", "2099-01-01T06:00:00Z"),
        ("2099-01-01T22:00:00Z", "2099-01-02T06:00:00Z"),
    ]


async def test_availability_closure_and_reservations_cut_slots(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking_id = await create_coworking(
        db, opening_hours={"thu": [["08:00", "18:00"]]}, max_days_ahead=FAR
    )
    seat_id = await create_seat(db, coworking_id, number=1)
    spare = await create_seat(db, coworking_id, number=2, features=["Monitor"])
    client = await create_client(db, settings)
    day = datetime(2099, 1, 1, tzinfo=UTC)  # a Thursday
    # a reservation ending at 10:00 and the next starting at 10:00 touch,
    # neither overlaps
    for hours in ((9, 10), (10, 11)):
        await reserve(
            db,
            client_id=client.id,
            seat_id=seat_id,
            coworking_id=coworking_id,
            starts_at=day + timedelta(hours=hours[0]),
            ends_at=day + timedelta(hours=hours[1]),
        )
    await reserve(
        db,
        client_id=client.id,
        seat_id=seat_id,
        coworking_id=coworking_id,
        starts_at=day + timedelta(hours=15),
        ends_at=day + timedelta(hours=16),
        status="cancelled",
    )
    # a closure off the grid (12:07-12:52) takes the whole 12:00-13:00 hour
    await db.execute(
        "INSERT INTO coworking.closures"
        " (id, coworking_id, seat_id, starts_at, ends_at, reason)"
        " VALUES ($1, $2, $3, $4, $5, 'repair')",
        uuid.uuid4(), coworking_id, seat_id, day + timedelta(hours=12, minutes=7),
        day + timedelta(hours=12, minutes=52),
    )  # fmt: skip

    url = f"/api/coworkings/{coworking_id}/availability"
    window = {"from": "2099-01-01T00:00:00Z", "to": "2099-01-02T00:00:00Z"}
    response = await api.get(url, params=window)

    assert [s["number"] for s in response.json()["seats"]] == [1, 2]
    assert free_of(response, 0) == [
        ("2099-01-01T08:00:00Z", "2099-01-01T09:00:00Z"),
        ("2099-01-01T11:00:00Z", "2099-01-01T12:00:00Z"),
        ("2099-01-01T13:00:00Z", "2099-01-01T18:00:00Z"),
    ]
    assert free_of(response, 1) == [("2099-01-01T08:00:00Z", "2099-01-01T18:00:00Z")]
    filtered = await api.get(
        url, params={**window, "features": "Monitor", "type": "OpenSpace"}
    )
    assert [s["seat_id"] for s in filtered.json()["seats"]] == [str(spare)]
    assert (await api.get(url, params={**window, "type": "Room"})).json()["seats"] == []
    one = await api.get(
        f"/api/coworkings/{coworking_id}/seats/{spare}/availability", params=window
    )
    assert [s["number"] for s in one.json()["seats"]] == [2]
    missing = await api.get(
        f"/api/coworkings/{coworking_id}/seats/{uuid.uuid4()}/availability",
        params=window,
    )
    assert missing.status_code == 404

    busy = await busy_intervals(
        db, seat_ids=[seat_id, spare], start=day, end=day + timedelta(days=1)
    )
    assert busy == {
        seat_id: [
            (day + timedelta(hours=9), day + timedelta(hours=10)),
            (day + timedelta(hours=10), day + timedelta(hours=11)),
        ]
    }


async def test_availability_cache_invalidated_after_closure(
    api: httpx.AsyncClient, db, settings, kv
) -> None:
    coworking_id = await create_coworking(db, max_days_ahead=FAR)
    seat_id = await create_seat(db, coworking_id)
    owner = await create_admin(db, settings)
    url = f"/api/coworkings/{coworking_id}/availability"
    window = {"from": "2099-01-01T00:00:00Z", "to": "2099-01-01T12:00:00Z"}

    before = await api.get(url, params=window)
    assert free_of(before) == [("2099-01-01T00:00:00Z", "2099-01-01T12:00:00Z")]
    assert len(await kv.keys(f"availability:{coworking_id}:v0:*")) == 1
    # a write behind the API's back stays invisible while the cached answer holds
    await db.execute("UPDATE coworking.coworkings SET slot_minutes = 60")
    assert (await api.get(url, params=window)).json() == before.json()

    closed = await api.post(
        f"/api/coworkings/{coworking_id}/closures",
        headers=owner.headers,
        json={
            "starts_at": "2099-01-01T03:00:00Z",
            "ends_at": "2099-01-01T04:00:00Z",
            "seat_id": str(seat_id),
        },
    )
    assert closed.status_code == 201

    after = await api.get(url, params=window)
    assert free_of(after) == [
        ("2099-01-01T00:00:00Z", "2099-01-01T03:00:00Z"),
        ("2099-01-01T04:00:00Z", "2099-01-01T12:00:00Z"),
    ]
    assert after.json()["slot_minutes"] == 60


@pytest.mark.parametrize(
    ("params", "description"),
    [
        ({"from": "2099-01-01T00:00:00", "to": "2099-01-02T00:00:00Z"},
         "query.from: needs its offset, such as +01:00 or Z; a time"
         " without one is never read as UTC"),
        ({"from": "2099-01-01T00:00:00Z", "to": "2099-01-02T00:00:00"},
         "query.to: needs its offset, such as +01:00 or Z; a time"
         " without one is never read as UTC"),
        ({"from": "2099-01-02T00:00:00Z", "to": "2099-01-01T00:00:00Z"},
         "query.to: must be after from"),
        ({"from": "2099-01-01T00:00:00Z", "to": "2099-02-02T00:00:00Z"},
         "query.to: the window is at most 31 days after from"),
        ({"to": "2099-02-02T00:00:00Z"}, "query.from: Field required"),
    ],
    ids=["naive_from", "naive_to", "backwards", "too_wide", "missing_from"],
)  # fmt: skip
async def test_availability_refuses_bad_window(api, db, params, description) -> None:
    coworking_id = await create_coworking(db)
    response = await api.get(
        f"/api/coworkings/{coworking_id}/availability", params=params
    )
    assert response.status_code == 400
    assert response.json() == {"error": "invalid_query", "description": description}


async def test_availability_past_clipped_and_inactive_hidden(
    api: httpx.AsyncClient, db
) -> None:
    coworking_id = await create_coworking(db)
    await create_seat(db, coworking_id)
    await create_seat(db, coworking_id, number=2, active=False)
    past = await api.get("/api/coworking/availability", params={
        "from": "2020-01-01T00:00:00Z", "to": "2020-01-02T00:00:00Z"})  # fmt: skip
    assert [s["free"] for s in past.json()["seats"]] == [[]]
    hidden = await create_coworking(db, active=False)
    response = await api.get(f"/api/coworkings/{hidden}/availability", params={
        "from": "2099-01-01T00:00:00Z", "to": "2099-01-02T00:00:00Z"})  # fmt: skip
    assert response.status_code == 404


async def test_availability_stops_at_the_booking_horizon(
    api: httpx.AsyncClient, db, resources
) -> None:
    coworking_id = await create_coworking(db, max_days_ahead=2)
    await create_seat(db, coworking_id)
    now = datetime.now(UTC)
    start = now.replace(minute=0, second=0, microsecond=0) + timedelta(days=1)

    response = await api.get(f"/api/coworkings/{coworking_id}/availability", params={
        "from": z(start.isoformat()),
        "to": z((start + timedelta(days=3)).isoformat()),
    })  # fmt: skip

    # round-the-clock hours: one free span, from the start to the horizon two days on
    [(starts_at, ends_at)] = free_of(response)
    ends = datetime.fromisoformat(ends_at)
    assert starts_at == z(start.isoformat())
    assert (
        now + timedelta(days=2) - timedelta(hours=1) < ends <= now + timedelta(days=2)
    )
    assert response.json()["to"] == z((start + timedelta(days=3)).isoformat())
    # a booking that ends at the horizon is taken; one just past it is refused
    rules = CoworkingRules.from_row(await coworking_row(db, coworking_id))
    seat = SeatInfo(uuid.uuid4(), coworking_id, 1, "OpenSpace", 1, False, True)
    check_booking(rules=rules, seat=seat, closures=[], client_is_internal=False,
                  starts_at=ends - timedelta(hours=1),
                  ends_at=ends, now=now)  # fmt: skip
    with pytest.raises(RuleViolation) as refused:
        check_booking(rules=rules, seat=seat, closures=[], client_is_internal=False,
                      starts_at=ends + timedelta(hours=1),
                      ends_at=ends + timedelta(hours=2), now=now)  # fmt: skip
    assert refused.value.rule == "too_far_ahead"
