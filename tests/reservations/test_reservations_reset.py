"""A workflow reset by an operator to its first task runs the booking again:
the new run must hold the reservation as the database has it, not as it was
booked."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import ActivityEnvironment

from activities.mail import MailActivities
from api.services.reservations import _IDEMPOTENCY_NAMESPACE
from proto import reservation_pb2 as pb
from tests.factories import create_client, create_coworking, create_seat
from tests.reservations.conftest import Scene
from tests.reservations.test_reservations_lifecycle import _details_of, sent, wait_for
from workers import mail as mail_worker

pytestmark = pytest.mark.real_time_server


async def reset_workflow(
    handle: WorkflowHandle, *, last: bool = False, temporal: Client
) -> str:
    """What support's `temporal workflow reset --type FirstWorkflowTask` (or
    `LastWorkflowTask`) asks; the new run's id."""
    history = await handle.fetch_history()
    tasks = [
        event.event_id
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    reset = await temporal.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=temporal.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
            reason="support reset",
            workflow_task_finish_event_id=max(tasks) if last else min(tasks),
            request_id=str(uuid.uuid4()),
        )
    )
    return reset.run_id


async def _mail_results(handle: WorkflowHandle) -> int:
    history = await handle.fetch_history()
    return sum(
        1
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
    )


async def test_a_run_reset_to_before_a_move_keeps_the_move(scene: Scene, smtp) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    booked = await scene.book(starts_at, ends_at)
    assert booked.status_code == 200, booked.text
    reservation_id = booked.json()["id"]
    new_start, new_end = starts_at + timedelta(hours=2), ends_at + timedelta(hours=2)
    moved = await scene.api.patch(
        f"/api/reservations/{reservation_id}",
        json={
            "seat_id": str(scene.other_seat_id),
            "starts_at": new_start.isoformat(),
            "ends_at": new_end.isoformat(),
        },
        headers=scene.client.headers,
    )
    assert moved.status_code == 200, moved.text

    async def both_mails_sent() -> bool:
        return len(await sent(scene, reservation_id)) == 2

    assert await wait_for(both_mails_sent)
    temporal = scene.resources.temporal
    handle = temporal.get_workflow_handle(f"reservation-{reservation_id}")
    run_id = await reset_workflow(handle, temporal=temporal)
    new_run = temporal.get_workflow_handle(handle.id, run_id=run_id)

    async def waiting() -> pb.ReservationState | None:
        state = await new_run.query("state")
        return state if state.waiting_for else None

    state = await wait_for(waiting)
    assert isinstance(state, pb.ReservationState)
    assert (state.seat_id, state.version) == (str(scene.other_seat_id), 2)
    assert (state.starts_at.ToSeconds(), state.ends_at.ToSeconds()) == (
        int(new_start.timestamp()),
        int(new_end.timestamp()),
    )
    reminder_at = new_start - timedelta(hours=3)
    assert state.waiting_for == f"the reminder at {reminder_at.isoformat()}"
    # support read where the booking went, not only that a version was taken over
    berlin_start = new_start.astimezone(ZoneInfo("Europe/Berlin"))
    berlin_end = new_end.astimezone(ZoneInfo("Europe/Berlin"))
    details = await _details_of(new_run)()
    assert details.startswith(
        f"Moved: seat {scene.other_seat_id} · {berlin_start:%a %d %b %Y %H:%M}"
        f"–{berlin_end:%H:%M} {berlin_start:%Z}, version 2, taken over from"
    ), details

    # the new run asks for the moved slot's confirmation; the client has its
    # move mail already, so no second invitation for it goes out
    async def invitation_answered() -> bool:
        return await _mail_results(new_run) == 1

    assert await wait_for(invitation_answered)

    async def counted_sent() -> bool:
        state = await new_run.query("state")
        return state.notification_status == pb.NOTIFICATION_STATUS_SENT

    # the client has had every mail: "sent", not "none" as for a client who takes none
    assert await wait_for(counted_sent)
    assert [
        (row["kind"], row["version"]) for row in await sent(scene, reservation_id)
    ] == [
        ("confirmation", 1),
        ("reschedule", 2),
    ]
    assert len(smtp.received) == 2
    row = await scene.resources.pool.fetchrow(
        "SELECT seat_id, status, version, (SELECT array_agg(slot_start ORDER BY"
        " slot_start) FROM reservation.seat_claims c WHERE c.reservation_id = r.id)"
        " AS slots FROM reservation.reservations r WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    assert (row["seat_id"], row["status"], row["version"]) == (
        scene.other_seat_id,
        "confirmed",
        2,
    )
    assert row["slots"] == [new_start + timedelta(minutes=5 * n) for n in range(12)]


async def test_a_run_reset_after_a_cancel_stays_cancelled(scene: Scene, smtp) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    cancelled = await scene.api.delete(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert cancelled.status_code == 204, cancelled.text
    temporal = scene.resources.temporal
    handle = temporal.get_workflow_handle(f"reservation-{reservation_id}")
    closed = await handle.result()
    assert closed.status == pb.RESERVATION_STATUS_CANCELLED
    mails = [(row["kind"], row["version"]) for row in await sent(scene, reservation_id)]
    assert mails == [("confirmation", 1), ("cancellation", 1)]

    run_id = await reset_workflow(handle, temporal=temporal)
    new_run = temporal.get_workflow_handle(handle.id, run_id=run_id)
    result = await new_run.result()

    assert result.status == pb.RESERVATION_STATUS_CANCELLED
    description = await new_run.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    assert description.search_attributes["ReservationStatus"] == ["cancelled"]
    assert await _mail_results(new_run) == 0
    row = await scene.resources.pool.fetchrow(
        "SELECT status, (SELECT count(*) FROM reservation.seat_claims c"
        " WHERE c.reservation_id = r.id) AS claims"
        " FROM reservation.reservations r WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    assert (row["status"], row["claims"]) == ("cancelled", 0)
    assert len(smtp.received) == 2


@pytest.mark.parametrize("kind", [pb.MAIL_KIND_NO_SHOW, pb.MAIL_KIND_EXPIRED])
async def test_a_closing_mail_that_the_row_contradicts_is_not_sent(
    scene: Scene, smtp, kind: int
) -> None:
    """A run reset past a cancel, its signal left out, may decide a no-show."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    cancelled = await scene.api.delete(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert cancelled.status_code == 204, cancelled.text

    async def cancellation_sent() -> bool:
        return "cancellation" in [
            row["kind"] for row in await sent(scene, reservation_id)
        ]

    assert await wait_for(cancellation_sent)
    before = len(smtp.received)
    settings = scene.resources.settings
    connections = mail_worker.smtp_connections(settings)
    activities = MailActivities(scene.resources.pool, settings, connections)
    request = pb.MailInput(
        reservation_id=reservation_id, kind=kind, version=1,
        seat_id=str(scene.seat_id),
    )  # fmt: skip
    request.starts_at.FromDatetime(starts_at)
    request.ends_at.FromDatetime(ends_at)
    request.due_at.FromDatetime(starts_at)
    try:
        result = await ActivityEnvironment().run(activities.send_mail, request)
    finally:
        await connections.close()

    assert (result.sent, result.duplicate) == (False, False)
    assert len(smtp.received) == before
    assert [row["kind"] for row in await sent(scene, reservation_id)] == [
        "confirmation",
        "cancellation",
    ]


async def test_a_refused_booking_reset_to_its_first_task_is_refused_again(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    pool, settings = scene.resources.pool, scene.resources.settings
    rival = await create_client(pool, settings, email="ben@example.com")
    taken = await scene.book(starts_at, ends_at, account=rival)
    assert taken.status_code == 200, taken.text
    key = {"Idempotency-Key": "refused-once"}
    refused = await scene.book(starts_at, ends_at, headers=key)
    assert refused.status_code == 409, refused.text
    # the seat comes free after the client was told 409
    freed = await scene.api.delete(
        f"/api/reservations/{taken.json()['id']}", headers=rival.headers
    )
    assert freed.status_code == 204, freed.text
    reservation_id = uuid.uuid5(
        _IDEMPOTENCY_NAMESPACE, f"{scene.client.id}:refused-once"
    )
    temporal = scene.resources.temporal
    handle = temporal.get_workflow_handle(f"reservation-{reservation_id}")
    assert (await handle.result()).status == pb.RESERVATION_STATUS_REJECTED

    run_id = await reset_workflow(handle, temporal=temporal)
    result = await temporal.get_workflow_handle(handle.id, run_id=run_id).result()

    assert result.status == pb.RESERVATION_STATUS_REJECTED
    assert result.hold.outcome == pb.HOLD_OUTCOME_CONFLICT
    assert result.hold.conflict.starts_at.ToSeconds() == int(starts_at.timestamp())
    held = await pool.fetchval(
        "SELECT count(*) FROM reservation.seat_claims WHERE reservation_id = $1",
        reservation_id,
    )
    row = await pool.fetchrow(
        "SELECT 1 FROM reservation.reservations WHERE id = $1", reservation_id
    )
    assert (held, row) == (0, None)
    # the key keeps its first answer
    again = await scene.book(starts_at, ends_at, headers=key)
    assert (again.status_code, again.json()) == (409, refused.json())


async def test_a_held_booking_reset_to_its_first_task_keeps_its_holds_end(
    scene: Scene, smtp
) -> None:
    """The new run finds the booking made; staff's time to confirm runs out
    when it did for the first run, not a full hold after the reset."""
    pool = scene.resources.pool
    coworking = await create_coworking(pool, auto_confirm=False, hold_minutes=60)
    seat = await create_seat(pool, coworking, number=1)
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    booked = await scene.book(starts_at, ends_at, seat_id=seat)
    assert (booked.status_code, booked.json()["status"]) == (200, "held")
    reservation_id = booked.json()["id"]
    hold_ends = await pool.fetchval(
        "SELECT hold_expires_at FROM reservation.reservations WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    temporal = scene.resources.temporal
    handle = temporal.get_workflow_handle(f"reservation-{reservation_id}")
    await asyncio.sleep(1.5)

    run_id = await reset_workflow(handle, temporal=temporal)
    run = temporal.get_workflow_handle(handle.id, run_id=run_id)

    async def waiting() -> bool:
        state = await run.query("state")
        return state.waiting_for.startswith("confirmation by staff before")

    assert await wait_for(waiting)
    state = await run.query("state")
    assert state.waiting_for == (
        f"confirmation by staff before {hold_ends.astimezone(UTC).isoformat()}"
    )
    assert (state.status, state.version) == (pb.RESERVATION_STATUS_HELD, 1)


async def test_a_pending_move_reset_to_its_first_task_still_goes_back(
    scene: Scene, smtp
) -> None:
    """The new run finds a client's move waiting for staff, and the slot staff
    confirmed kept beside it: unanswered, it goes back there, not away."""
    pool = scene.resources.pool
    coworking = await create_coworking(pool, auto_confirm=False, hold_minutes=60)
    seat = await create_seat(pool, coworking, number=1)
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    booked = await scene.book(starts_at, ends_at, seat_id=seat)
    path = f"/api/reservations/{booked.json()['id']}"
    await scene.api.post(f"{path}/confirm", headers=scene.admin.headers)
    later = starts_at + timedelta(days=1)
    moved = await scene.api.patch(
        path,
        json={"starts_at": later.isoformat(),
              "ends_at": (later + timedelta(hours=1)).isoformat()},
        headers=scene.client.headers,
    )  # fmt: skip
    assert (moved.json()["status"], moved.json()["version"]) == ("held", 2)
    hold_ends = await pool.fetchval(
        "SELECT hold_expires_at FROM reservation.reservations WHERE id = $1",
        uuid.UUID(booked.json()["id"]),
    )
    temporal = scene.resources.temporal
    handle = temporal.get_workflow_handle(f"reservation-{booked.json()['id']}")

    run_id = await reset_workflow(handle, temporal=temporal)
    run = temporal.get_workflow_handle(handle.id, run_id=run_id)

    async def waiting() -> pb.ReservationState | None:
        state = await run.query("state")
        return state if state.waiting_for else None

    state = await wait_for(waiting)
    assert isinstance(state, pb.ReservationState)
    assert state.waiting_for == (
        "staff to confirm the move (else it goes back) before"
        f" {hold_ends.astimezone(UTC).isoformat()}"
    )
    assert (state.status, state.version, state.seat_id) == (
        pb.RESERVATION_STATUS_HELD, 2, str(seat),
    )  # fmt: skip
    assert (
        state.fallback.seat_id,
        state.fallback.starts_at.ToDatetime(tzinfo=UTC),
        state.fallback.ends_at.ToDatetime(tzinfo=UTC),
    ) == (str(seat), starts_at, ends_at)
