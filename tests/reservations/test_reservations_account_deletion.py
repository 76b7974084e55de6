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


async def _waiting_on_a_lock(scene: Scene, query_start: str) -> bool:
    return bool(
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND query LIKE $1",
            f"{query_start}%",
        )
    )


async def test_delete_client_cancels_a_booking_claimed_while_it_ran(
    scene: Scene,
) -> None:
    first = await scene.book(*await scene.slot(hours_ahead=30))
    assert first.status_code == 200, first.text
    starts_at, ends_at = await scene.slot(hours_ahead=50)
    async with scene.resources.pool.acquire() as conn:
        # stands in for a claim in flight: the second booking's claim queues
        # behind it, and then the deletion's update behind that
        lock = conn.transaction()
        await lock.start()
        await conn.execute(
            "SELECT 1 FROM client.clients WHERE id = $1 FOR NO KEY UPDATE",
            scene.client.id,
        )
        booking = asyncio.create_task(
            scene.book(starts_at, ends_at, seat_id=scene.other_seat_id)
        )
        assert await wait_for(lambda: _waiting_on_a_lock(scene, "SELECT 1 FROM client"))
        deleting = asyncio.create_task(
            scene.api.delete("/api/client", headers=scene.client.headers)
        )
        # its first write, which stops mail to the account, waits
        assert await wait_for(
            lambda: _waiting_on_a_lock(scene, "UPDATE client.clients")
        )
        await lock.rollback()
    second = await booking
    assert (await deleting).status_code == 204
    # the booking got in before the account went, and did not outlive it
    assert second.status_code == 200, second.text
    for booked in (first, second):
        assert await wait_for(lambda b=booked: _is_cancelled(scene, b.json()["id"]))
    left = await scene.resources.pool.fetchval(
        "SELECT count(*) FROM reservation.client_claims WHERE client_id = $1",
        scene.client.id,
    )
    assert left == 0


async def test_no_cancellation_mail_reaches_an_account_being_deleted(
    scene: Scene, smtp
) -> None:
    ids = [
        (await scene.book(*await scene.slot(hours_ahead=hours))).json()["id"]
        for hours in (30, 50, 70)
    ]

    async def confirmations_sent() -> bool:
        return len(smtp.received) == 3

    assert await wait_for(confirmations_sent)
    smtp.clear()
    async with scene.resources.pool.acquire() as conn:
        # the account's row held: whatever the deletion writes first waits here,
        # and a cancellation sent before the anonymising would go out meanwhile
        lock = conn.transaction()
        await lock.start()
        await conn.execute(
            "SELECT 1 FROM client.clients WHERE id = $1 FOR UPDATE", scene.client.id
        )
        deletion = asyncio.create_task(
            scene.api.delete("/api/client", headers=scene.client.headers)
        )
        assert await wait_for(
            lambda: _waiting_on_a_lock(scene, "UPDATE client.clients")
        )
        await asyncio.sleep(2)
        await lock.rollback()
    assert (await deletion).status_code == 204

    for reservation_id in ids:
        handle = scene.resources.temporal.get_workflow_handle(
            f"reservation-{reservation_id}"
        )
        await asyncio.wait_for(handle.result(), timeout=15)
        assert (await _row(scene, reservation_id))["status"] == "cancelled"
    assert [m.message["Subject"] for m in smtp.received] == []
