"""A workflow stopped from the Temporal UI (terminated, or its cancellation
asked for) runs none of its code again: the reservation is closed for it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus

from activities.reservation import ABANDONED_REASON, ReservationActivities
from api.services import reservations
from tests.reservations.conftest import Scene
from tests.reservations.test_reservations_lifecycle import wait_for
from tests.reservations.test_reservations_reset import reset_workflow
from workers.sweep import ABANDONED, sweep_forever, sweep_once

pytestmark = pytest.mark.real_time_server


async def _row(scene: Scene, reservation_id: str) -> tuple[str, str | None, int]:
    row = await scene.resources.pool.fetchrow(
        "SELECT status, cancel_reason, (SELECT count(*) FROM reservation.seat_claims"
        " c WHERE c.reservation_id = r.id) + (SELECT count(*) FROM"
        " reservation.client_claims c WHERE c.reservation_id = r.id) AS claims"
        " FROM reservation.reservations r WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    return row["status"], row["cancel_reason"], row["claims"]


async def _booked_and_stopped(
    scene: Scene, hours_ahead: float, *, how: str = "terminate", key: str = "k-1"
) -> tuple[str, dict[str, str]]:
    starts_at, ends_at = await scene.slot(hours_ahead=hours_ahead)
    booked = await scene.book(starts_at, ends_at, headers={"Idempotency-Key": key})
    assert booked.status_code == 200, booked.text
    reservation_id = booked.json()["id"]
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    if how == "terminate":
        await handle.terminate(reason="support ended it")
    else:
        await handle.cancel()
    # still held: nothing in the workflow ran to let it go
    assert (await _row(scene, reservation_id))[0] == "confirmed"
    body = {"starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat()}
    return reservation_id, body


async def test_a_cancel_of_a_terminated_booking_frees_its_seat_at_once(
    scene: Scene, caplog: pytest.LogCaptureFixture
) -> None:
    reservation_id, body = await _booked_and_stopped(scene, hours_ahead=30)

    cancelled = await scene.api.request(
        "DELETE", f"/api/reservations/{reservation_id}",
        json={"reason": "changed plans"}, headers=scene.client.headers,
    )  # fmt: skip

    assert cancelled.status_code == 204
    assert await _row(scene, reservation_id) == ("cancelled", "changed plans", 0)
    # ops find the line by the reservation's id, as every other line of it
    [closed] = [r for r in caplog.records if "closed after its workflow" in r.message]
    assert getattr(closed, "reservation_id", None) == reservation_id
    other = await scene.resources.pool.fetchval(
        "SELECT count(*) FROM reservation.seat_claims WHERE seat_id = $1",
        scene.seat_id,
    )
    assert other == 0
    shown = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert (shown.status_code, shown.json()["status"]) == (200, "cancelled")


async def test_a_retried_key_of_a_terminated_booking_answers_from_its_row(
    scene: Scene,
) -> None:
    reservation_id, body = await _booked_and_stopped(scene, hours_ahead=30)
    request = {"seat_id": str(scene.seat_id), **body}

    again = await scene.api.post(
        "/api/reservations", json=request,
        headers={**scene.client.headers, "Idempotency-Key": "k-1"},
    )  # fmt: skip
    other_body = await scene.api.post(
        "/api/reservations", json={**request, "seat_id": str(scene.other_seat_id)},
        headers={**scene.client.headers, "Idempotency-Key": "k-1"},
    )  # fmt: skip

    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["status"]) == (reservation_id, "cancelled")
    assert await _row(scene, reservation_id) == ("cancelled", ABANDONED_REASON, 0)
    assert other_body.status_code == 409
    assert other_body.json() == {
        "error": "conflict",
        "description": "header.Idempotency-Key: already used for a different request",
    }


async def test_the_sweep_closes_what_stopped_workflows_left_and_nothing_else(
    scene: Scene,
) -> None:
    terminated, _ = await _booked_and_stopped(scene, hours_ahead=30, key="k-t")
    cancelled, _ = await _booked_and_stopped(
        scene, hours_ahead=54, how="cancel", key="k-c"
    )
    starts_at, ends_at = await scene.slot(hours_ahead=78)
    running = (await scene.book(starts_at, ends_at)).json()["id"]
    activities = ReservationActivities(scene.resources.pool, scene.resources.valkey)
    temporal = scene.resources.temporal

    async def both_listed() -> bool:
        # visibility records a close a moment after it happens
        listed = {e.id async for e in temporal.list_workflows(ABANDONED)}
        return {f"reservation-{terminated}", f"reservation-{cancelled}"} <= listed

    assert await wait_for(both_listed)
    # a look that starts after the closes finds nothing; the query is well formed
    later = await sweep_once(
        temporal, activities, since=datetime.now(UTC) + timedelta(minutes=1)
    )
    first = await sweep_once(
        temporal, activities, since=datetime.now(UTC) - timedelta(minutes=5)
    )
    second = await sweep_once(temporal, activities, since=None)

    assert (later, first, second) == (0, 2, 0)
    for reservation_id in (terminated, cancelled):
        assert await _row(scene, reservation_id) == ("cancelled", ABANDONED_REASON, 0)
    assert await _row(scene, running) == ("confirmed", None, 24)
    # the seat of the terminated one can be booked again
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    assert (await scene.book(starts_at, ends_at)).status_code == 200


async def test_the_worker_sweeps_by_itself(scene: Scene) -> None:
    reservation_id, _ = await _booked_and_stopped(scene, hours_ahead=30, key="k-w")
    activities = ReservationActivities(scene.resources.pool, scene.resources.valkey)
    sweeping = asyncio.create_task(
        sweep_forever(scene.resources.temporal, activities, every=0.1)
    )
    try:

        async def cancelled() -> bool:
            return (await _row(scene, reservation_id))[0] == "cancelled"

        assert await wait_for(cancelled, timeout=20)
    finally:
        sweeping.cancel()
    assert await _row(scene, reservation_id) == ("cancelled", ABANDONED_REASON, 0)


async def test_a_workflow_not_found_at_all_proves_nothing(scene: Scene) -> None:
    # a row whose workflow this Temporal never ran: the cancel must not close it
    # behind the back of a workflow that may be running on another server
    reservation_id = uuid.uuid4()
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    await scene.resources.pool.execute(
        "INSERT INTO reservation.reservations (id, client_id, seat_id, coworking_id,"
        " starts_at, ends_at, status) VALUES ($1, $2, $3, $4, $5, $6, 'confirmed')",
        reservation_id, scene.client.id, scene.seat_id, scene.coworking_id,
        starts_at, ends_at,
    )  # fmt: skip

    await reservations.signal_cancel(
        scene.resources, reservation_id, reason="by phone", requested_by="test"
    )

    assert await _row(scene, str(reservation_id)) == ("confirmed", None, 0)


async def test_a_reset_workflow_is_still_the_booking(scene: Scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    temporal = scene.resources.temporal
    handle = temporal.get_workflow_handle(f"reservation-{reservation_id}")

    async def confirmation_done() -> bool:
        # the mail's result is in: the last workflow task closed the booking's start
        state = await handle.query("state")
        return bool(state.notification_status)

    assert await wait_for(confirmation_done)
    await reset_workflow(handle, last=True, temporal=temporal)

    async def old_run_listed() -> bool:
        listed = {e.id async for e in temporal.list_workflows(ABANDONED)}
        return handle.id in listed

    assert await wait_for(old_run_listed)
    activities = ReservationActivities(scene.resources.pool, scene.resources.valkey)

    assert await sweep_once(temporal, activities, since=None) == 0
    assert await _row(scene, reservation_id) == ("confirmed", None, 24)
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING


async def test_a_booking_stopped_while_it_waits_for_its_hold_is_a_409(
    scene: Scene,
) -> None:
    # no worker: the booking's workflow exists, its hold has not run
    await scene.workers.aclose()
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    booking = asyncio.create_task(
        scene.book(starts_at, ends_at, headers={"Idempotency-Key": "k-stop"})
    )
    temporal = scene.resources.temporal

    async def started() -> str | None:
        async for execution in temporal.list_workflows(
            f'ClientId = "{scene.client.id}" AND ExecutionStatus = "Running"'
        ):
            return execution.id
        return None

    workflow_id = await wait_for(started)
    await temporal.get_workflow_handle(str(workflow_id)).terminate(reason="support")
    answer = await booking

    assert (answer.status_code, answer.json()) == (
        409,
        {
            "error": "conflict",
            "description": "header.Idempotency-Key: this booking was stopped"
            " before it held the seat; book again with a new key",
        },
    )
    assert (
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM reservation.reservations"
        )
        == 0
    )


async def test_a_read_of_a_terminated_booking_frees_its_seat_and_says_cancelled(
    scene: Scene,
) -> None:
    """The stopped run still answered its query from its history, so a GET
    said `confirmed` until the worker's sweep came round."""
    reservation_id, _ = await _booked_and_stopped(scene, hours_ahead=30)

    shown = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )

    assert shown.status_code == 200
    assert (shown.json()["status"], shown.json()["cancel_reason"]) == (
        "cancelled", "its workflow was stopped in Temporal before it closed",
    )  # fmt: skip
    assert await _row(scene, reservation_id) == (
        "cancelled", "its workflow was stopped in Temporal before it closed", 0,
    )  # fmt: skip
