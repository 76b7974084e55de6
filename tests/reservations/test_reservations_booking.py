import uuid
from datetime import timedelta

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
    other = await scene.resources.pool.fetchval("SELECT 1")  # keep the pool warm
    assert other == 1
    from tests.factories import create_client

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
