import uuid
from datetime import timedelta

import pytest

from tests.factories import create_client
from tests.reservations.conftest import Scene


async def test_a_client_past_its_booking_rate_gets_429_and_nothing_changes(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scene.resources.settings, "booking_rate_per_client", 3)
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    booked = []
    for hour in range(3):
        response = await scene.book(
            starts_at + timedelta(hours=hour), ends_at + timedelta(hours=hour)
        )
        assert response.status_code == 200, response.text
        booked.append(response.json()["id"])

    fourth = await scene.book(
        starts_at + timedelta(hours=5), ends_at + timedelta(hours=5)
    )
    move = await scene.api.patch(
        f"/api/reservations/{booked[0]}",
        json={"starts_at": (starts_at + timedelta(hours=6)).isoformat()},
        headers=scene.client.headers,
    )

    for refused in (fourth, move):
        assert refused.status_code == 429
        assert refused.json() == {
            "error": "rate_limited",
            "description": "Too many attempts; try again later",
        }
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    rows = await scene.resources.pool.fetch(
        "SELECT id, starts_at FROM reservation.reservations ORDER BY starts_at"
    )
    assert [str(row["id"]) for row in rows] == booked
    assert rows[0]["starts_at"] == starts_at

    # the limit is the client's own: another client books, staff still cancel
    other = await create_client(scene.resources.pool, scene.resources.settings)
    theirs = await scene.book(
        starts_at + timedelta(hours=5), ends_at + timedelta(hours=5), account=other
    )
    assert theirs.status_code == 200
    cancelled = await scene.api.delete(
        f"/api/reservations/{booked[0]}", headers=scene.admin.headers
    )
    assert cancelled.status_code == 204
    status = await scene.resources.pool.fetchval(
        "SELECT status FROM reservation.reservations WHERE id = $1",
        uuid.UUID(booked[0]),
    )
    assert status == "cancelled"
