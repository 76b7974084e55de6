import asyncio
import gc
import logging
import uuid
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.factories import create_client, create_coworking, create_seat
from tests.reservations.conftest import Scene
from tests.reservations.test_reservations_lifecycle import wait_for


async def test_book_same_slot_fifty_at_once_exactly_one_wins(scene: Scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=60)
    clients = [
        await create_client(scene.resources.pool, scene.resources.settings)
        for _ in range(50)
    ]
    responses = await asyncio.gather(
        *(scene.book(starts_at, ends_at, account=client) for client in clients)
    )
    codes = sorted(response.status_code for response in responses)
    assert codes == [200] + [409] * 49
    rows = await scene.resources.pool.fetch(
        "SELECT reservation_id, count(*) AS n FROM reservation.seat_claims"
        " WHERE seat_id = $1 GROUP BY 1",
        scene.seat_id,
    )
    winner = next(r for r in responses if r.status_code == 200).json()
    assert [(str(r["reservation_id"]), r["n"]) for r in rows] == [(winner["id"], 12)]
    assert (
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM reservation.reservations"
        )
        == 1
    )


async def test_book_overlapping_by_one_client_on_two_seats_answers_409(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=70)
    first, second = await asyncio.gather(
        scene.book(starts_at, ends_at, seat_id=scene.seat_id),
        scene.book(
            starts_at + timedelta(minutes=30),
            ends_at + timedelta(minutes=30),
            seat_id=scene.other_seat_id,
        ),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    loser = first if first.status_code == 409 else second
    assert loser.json()["description"].startswith("client: already booked from")
    # touching intervals are both allowed
    touching = await scene.book(
        ends_at + timedelta(minutes=30),
        ends_at + timedelta(minutes=90),
        seat_id=scene.other_seat_id,
    )
    assert touching.status_code == 200, touching.text


async def test_book_with_idempotency_key_retried_returns_first_answer(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=80)
    headers = {"Idempotency-Key": "booking-42"}
    first = await scene.book(starts_at, ends_at, headers=headers)
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{first.json()['id']}"
    )

    async def mail_told() -> bool:
        got = await scene.api.get(
            f"/api/reservations/{first.json()['id']}", headers=scene.client.headers
        )
        return got.json()["notification_status"] == "sent"

    # the workflow has taken its mail's result, so its history has settled
    await wait_for(mail_told)
    length = (await handle.describe()).history_length
    retries = [await scene.book(starts_at, ends_at, headers=headers) for _ in range(5)]
    assert [(r.status_code, r.json()) for r in retries] == [
        (200, {**first.json(), "notification_status": "sent"})
    ] * 5
    # answered by a query: a client retrying in a loop adds nothing to the history
    assert (await handle.describe()).history_length == length
    other_body = await scene.book(
        starts_at, ends_at + timedelta(minutes=15), headers=headers
    )
    assert other_body.status_code == 409
    assert other_body.json() == {
        "error": "conflict",
        "description": "header.Idempotency-Key: already used for a different request",
    }
    # the same key of another client is another reservation
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    theirs = await scene.book(
        starts_at, ends_at, seat_id=scene.other_seat_id, account=rival, headers=headers
    )
    assert theirs.status_code == 200
    assert theirs.json()["id"] != first.json()["id"]
    assert (
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM reservation.reservations"
        )
        == 2
    )


async def test_staff_idempotency_key_is_theirs_not_the_clients(scene: Scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=82)
    headers = {"Idempotency-Key": "k1"}
    own = await scene.book(starts_at, ends_at, headers=headers)
    assert own.status_code == 200, own.text

    def for_client(length: int) -> dict[str, str]:
        later = starts_at + timedelta(days=1)
        return {
            "seat_id": str(scene.seat_id),
            "starts_at": later.isoformat(),
            "ends_at": (later + timedelta(minutes=length)).isoformat(),
            "client_id": str(scene.client.id),
        }

    staff = {**scene.admin.headers, **headers}
    first = await scene.api.post(
        "/api/reservations", json=for_client(60), headers=staff
    )
    assert first.status_code == 200, first.text
    assert first.json()["id"] != own.json()["id"]
    retry = await scene.api.post(
        "/api/reservations", json=for_client(60), headers=staff
    )
    assert (retry.status_code, retry.json()["id"]) == (200, first.json()["id"])
    other_body = await scene.api.post(
        "/api/reservations", json=for_client(90), headers=staff
    )
    assert other_body.status_code == 409
    # the client's own retry still answers their booking
    again = await scene.book(starts_at, ends_at, headers=headers)
    assert (again.status_code, again.json()["id"]) == (200, own.json()["id"])
    rows = await scene.resources.pool.fetch(
        "SELECT id FROM reservation.reservations ORDER BY starts_at"
    )
    assert [str(row["id"]) for row in rows] == [own.json()["id"], first.json()["id"]]


async def test_book_idempotent_retry_after_conflict_closed_answers_same_409(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=90)
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    assert (await scene.book(starts_at, ends_at, account=rival)).status_code == 200
    headers = {"Idempotency-Key": "k-closed"}
    first = await scene.book(starts_at, ends_at, headers=headers)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        retry = await scene.book(starts_at, ends_at, headers=headers)
        gc.collect()
    assert first.status_code == retry.status_code == 409
    assert first.json() == retry.json()
    # the start's refusal, which the retry answers from, is not left to be logged
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []


async def test_book_across_dst_switch_keeps_absolute_times(scene: Scene, smtp) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    coworking = await create_coworking(
        scene.resources.pool, timezone="Europe/Berlin", max_days_ahead=500,
        max_duration_minutes=24 * 60,
    )  # fmt: skip
    seat = await create_seat(scene.resources.pool, coworking)
    now = await scene.now()
    year = now.year + 1 if now.month > 3 else now.year
    # the night the clocks go forward: 01:00 CET to 04:00 CEST is two real hours
    starts_at = datetime(year, 3, 28, 1, 0, tzinfo=berlin)
    while starts_at.weekday() != 6 or (starts_at + timedelta(days=7)).month == 3:
        starts_at += timedelta(days=1)
    ends_at = datetime(
        starts_at.year, starts_at.month, starts_at.day, 4, 0, tzinfo=berlin
    )
    assert (ends_at - starts_at) == timedelta(hours=3)  # naive wall clock difference
    response = await scene.book(starts_at, ends_at, seat_id=seat)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["starts_at"] == starts_at.astimezone(
        ZoneInfo("UTC")
    ).isoformat().replace("+00:00", "Z")
    row = await scene.resources.pool.fetchrow(
        "SELECT starts_at, ends_at FROM reservation.reservations WHERE id = $1",
        uuid.UUID(body["id"]),
    )
    assert (row["ends_at"] - row["starts_at"]) == timedelta(hours=2)
    claims = await scene.resources.pool.fetchval(
        "SELECT count(*) FROM reservation.seat_claims WHERE reservation_id = $1",
        uuid.UUID(body["id"]),
    )
    assert claims == 24


def _next_last_sunday(month: int, after: datetime) -> date:
    """The next last Sunday of March or October, when clocks change in Berlin."""
    for year in (after.year, after.year + 1):
        last = date(year, month, 31)
        sunday = last - timedelta(days=(last.weekday() - 6) % 7)
        if sunday > after.date() + timedelta(days=1):
            return sunday
    raise AssertionError("unreachable: one of two years has it")


BERLIN = ZoneInfo("Europe/Berlin")


async def _seat_rented_by_the_day(scene: Scene) -> object:
    """A seat of a Berlin coworking whose slots, shortest and longest, are a day."""
    coworking = await create_coworking(
        scene.resources.pool, timezone="Europe/Berlin", slot_minutes=1440,
        min_duration_minutes=1440, max_duration_minutes=1440, max_days_ahead=400,
    )  # fmt: skip
    return await create_seat(scene.resources.pool, coworking)


async def test_book_a_whole_day_on_the_days_the_clocks_change(scene: Scene) -> None:
    seat = await _seat_rented_by_the_day(scene)
    now = await scene.now()
    booked = {}
    for month, hours in ((3, 23), (10, 25)):
        day = _next_last_sunday(month, now)
        starts_at = datetime.combine(day, time(0), tzinfo=BERLIN)
        ends_at = datetime.combine(day + timedelta(days=1), time(0), tzinfo=BERLIN)
        response = await scene.book(starts_at, ends_at, seat_id=seat)
        assert response.status_code == 200, response.text
        booked[uuid.UUID(response.json()["id"])] = timedelta(hours=hours)
    rows = await scene.resources.pool.fetch(
        "SELECT id, ends_at - starts_at AS length FROM reservation.reservations"
        " WHERE seat_id = $1",
        seat,
    )
    assert {row["id"]: row["length"] for row in rows} == booked


async def test_a_whole_day_moved_onto_the_spring_change_ends_at_midnight(
    scene: Scene,
) -> None:
    seat = await _seat_rented_by_the_day(scene)
    change = _next_last_sunday(3, await scene.now())
    before = datetime.combine(change - timedelta(days=1), time(0), tzinfo=BERLIN)
    booked = await scene.book(before, before + timedelta(days=1), seat_id=seat)
    assert booked.status_code == 200, booked.text

    starts_at = datetime.combine(change, time(0), tzinfo=BERLIN)
    moved = await scene.api.patch(
        f"/api/reservations/{booked.json()['id']}",
        json={"starts_at": starts_at.isoformat()},
        headers=scene.client.headers,
    )

    assert moved.status_code == 200, moved.text
    ends_at = datetime.combine(change + timedelta(days=1), time(0), tzinfo=BERLIN)
    assert datetime.fromisoformat(moved.json()["ends_at"]) == ends_at
    # same-zone subtraction is wall-clock; the instants are 23 hours apart
    assert ends_at.timestamp() - starts_at.timestamp() == 23 * 3600


@pytest.mark.parametrize(
    "key",
    ["", " ", "two words", "x" * 201],
    ids=["empty", "blank", "space", "too-long"],
)
async def test_book_with_unusable_idempotency_key_refused_and_nothing_booked(
    scene: Scene, key: str
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=85)
    refused = await scene.book(starts_at, ends_at, headers={"Idempotency-Key": key})
    assert refused.status_code == 400
    body = refused.json()
    assert body["error"] == "invalid_header"
    assert body["description"] == (
        "header.Idempotency-Key: 1 to 200 visible ASCII characters, with no space"
        " (a UUID serves well)"
    )
    assert (
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM reservation.reservations"
        )
        == 0
    )


async def test_book_with_two_idempotency_keys_refused_and_nothing_booked(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=85)
    refused = await scene.api.post(
        "/api/reservations",
        json={
            "seat_id": str(scene.seat_id),
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
        headers=[
            *scene.client.headers.items(),
            ("Idempotency-Key", "first"),
            ("Idempotency-Key", "second"),
        ],
    )
    assert (refused.status_code, refused.json()) == (
        400,
        {
            "error": "invalid_header",
            "description": "header.Idempotency-Key: sent more than once",
        },
    )
    assert (
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM reservation.reservations"
        )
        == 0
    )


async def test_a_retried_key_of_a_cancelled_booking_answers_as_its_get(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=90)
    headers = {"Idempotency-Key": "k-cancelled"}
    first = await scene.book(starts_at, ends_at, headers=headers)
    reservation_id = first.json()["id"]
    path = f"/api/reservations/{reservation_id}"
    assert (
        await scene.api.delete(path, headers=scene.client.headers)
    ).status_code == 204
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    await handle.result()

    retry = await scene.book(starts_at, ends_at, headers=headers)
    shown = await scene.api.get(path, headers=scene.client.headers)

    assert (retry.status_code, shown.status_code) == (200, 200)
    assert retry.json() == shown.json()
    assert (retry.json()["status"], retry.json()["notification_status"]) == (
        "cancelled",
        None,
    )
