import uuid
from datetime import timedelta

from tests.factories import create_client
from tests.reservations.conftest import Scene


async def test_book_seat_free_slot_answers_reservation_and_claims_rows(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=24, length_minutes=30)
    response = await scene.book(starts_at, ends_at)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_id"] == str(scene.client.id)
    assert body["seat_id"] == str(scene.seat_id)
    assert body["cancelled"] is False
    assert body["status"] == "confirmed"
    reservation_id = uuid.UUID(body["id"])
    claims = await scene.resources.pool.fetch(
        "SELECT slot_start FROM reservation.seat_claims"
        " WHERE reservation_id = $1 ORDER BY 1",
        reservation_id,
    )
    assert [row["slot_start"] for row in claims] == [
        starts_at + timedelta(minutes=5 * i) for i in range(6)
    ]
    client_claims = await scene.resources.pool.fetchval(
        "SELECT count(*) FROM reservation.client_claims WHERE reservation_id = $1",
        reservation_id,
    )
    assert client_claims == 6


async def test_book_seat_taken_slot_answers_409_naming_interval(scene: Scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    first = await scene.book(starts_at, ends_at)
    assert first.status_code == 200, first.text
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    second = await scene.book(
        starts_at + timedelta(minutes=30),
        ends_at + timedelta(minutes=30),
        account=rival,
    )
    assert second.status_code == 409
    assert second.json() == {
        "error": "conflict",
        "description": (
            f"seat: already booked from {starts_at.isoformat().replace('+00:00', 'Z')}"
            f" to {ends_at.isoformat().replace('+00:00', 'Z')}"
        ),
    }
    assert (
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM reservation.reservations"
        )
        == 1
    )


async def test_inactive_seat_keeps_its_bookings_and_takes_no_new_one_or_move(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=26)
    kept = await scene.book(starts_at, ends_at, seat_id=scene.other_seat_id)
    elsewhere = await scene.book(
        starts_at + timedelta(hours=2), ends_at + timedelta(hours=2)
    )
    assert (kept.status_code, elsewhere.status_code) == (200, 200)
    seat_url = f"/api/coworkings/{scene.coworking_id}/seats/{scene.other_seat_id}"
    seat = (await scene.api.get(seat_url, headers=scene.admin.headers)).json()
    off = await scene.api.patch(
        seat_url,
        # the contract makes an edit carry the features
        json={"active": False, "features": seat["features"]},
        headers=scene.admin.headers,
    )
    assert (off.status_code, off.json()["active"]) == (200, False)

    still = await scene.api.get(
        f"/api/reservations/{kept.json()['id']}", headers=scene.client.headers
    )
    assert (still.status_code, still.json()["status"]) == (200, "confirmed")
    refused = {
        "error": "rule_violation",
        "description": "seat_id: seat 2 takes no bookings",
    }
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    new = await scene.book(
        starts_at + timedelta(hours=4), ends_at + timedelta(hours=4),
        seat_id=scene.other_seat_id, account=rival,
    )  # fmt: skip
    moved = await scene.api.patch(
        f"/api/reservations/{elsewhere.json()['id']}",
        json={"seat_id": str(scene.other_seat_id)},
        headers=scene.client.headers,
    )
    assert (new.status_code, new.json()) == (400, refused)
    assert (moved.status_code, moved.json()) == (400, refused)
    seats = await scene.resources.pool.fetch(
        "SELECT seat_id, status FROM reservation.reservations ORDER BY starts_at"
    )
    assert [(row["seat_id"], row["status"]) for row in seats] == [
        (scene.other_seat_id, "confirmed"),
        (scene.seat_id, "confirmed"),
    ]
