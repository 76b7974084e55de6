"""Deleting a client account: what is still to come is cancelled through its
workflow."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

from tests.reservations.conftest import Scene
from tests.reservations.test_reservations_lifecycle import wait_for


async def _row(scene: Scene, reservation_id: str):
    return await scene.resources.pool.fetchrow(
        "SELECT status, cancel_reason FROM reservation.reservations WHERE id = $1",
        uuid.UUID(reservation_id),
    )


async def test_delete_client_cancels_future_and_keeps_past(scene: Scene, smtp) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=48)
    booked = await scene.book(starts_at, ends_at)
    assert booked.status_code == 200, booked.text
    future_id = booked.json()["id"]
    past_id = uuid.uuid4()
    past = datetime.now(UTC) - timedelta(days=7)
    await scene.resources.pool.execute(
        "INSERT INTO reservation.reservations (id, client_id, seat_id, coworking_id,"
        " starts_at, ends_at, status) VALUES ($1, $2, $3, $4, $5, $6, 'completed')",
        past_id, scene.client.id, scene.seat_id, scene.coworking_id, past,
        past + timedelta(hours=1),
    )  # fmt: skip

    async def confirmation_sent() -> bool:
        return any(m.message["Subject"].startswith("Your seat") for m in smtp.received)

    assert await wait_for(confirmation_sent)
    smtp.clear()

    response = await scene.api.delete("/api/client", headers=scene.client.headers)

    assert response.status_code == 204
    assert await wait_for(lambda: _is_cancelled(scene, future_id))
    assert (await _row(scene, future_id))["cancel_reason"] == "account deleted"
    claims = await scene.resources.pool.fetchval(
        "SELECT count(*) FROM reservation.seat_claims WHERE reservation_id = $1",
        uuid.UUID(future_id),
    )
    assert claims == 0
    assert (await _row(scene, str(past_id)))["status"] == "completed"
    # the workflow ran to its end, and sent no mail to the anonymised account
    handle = scene.resources.temporal.get_workflow_handle(f"reservation-{future_id}")
    await asyncio.wait_for(handle.result(), timeout=15)
    assert [m.message["Subject"] for m in smtp.received] == []


async def _is_cancelled(scene: Scene, reservation_id: str) -> bool:
    return (await _row(scene, reservation_id))["status"] == "cancelled"
