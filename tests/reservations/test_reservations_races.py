"""Staff acting at the very instant a deadline fires: what they were told stands.

The test skips the server's clock to just before the deadline, then holds
the reservation's row locked, so the update's status write waits in
PostgreSQL while the deadline passes in real time (the test server skips no
time while an activity runs) and the workflow decides to close; then it lets
the write through. At the end, two moves of one booking racing each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import datetime, timedelta

import httpx
import pytest
from temporalio.api.enums.v1 import EventType

from api.services import reservations
from tests.factories import create_coworking, create_seat
from tests.reservations.conftest import Scene
from tests.reservations.test_reservations_lifecycle import sent, wait_for

# how far before the deadline the skipping stops; well inside the status write's
# 15 s attempt, so the write that waits is not timed out and retried meanwhile
LEAD = timedelta(seconds=3)


@contextlib.asynccontextmanager
async def row_locked(scene: Scene, reservation_id: str) -> AsyncIterator[None]:
    async with scene.resources.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "SELECT 1 FROM reservation.reservations WHERE id = $1 FOR UPDATE",
            uuid.UUID(reservation_id),
        )
        yield


async def _status_write_waits(scene: Scene) -> bool:
    return bool(
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND (query LIKE 'UPDATE reservation.reservations SET status%'"
            # a guarded write first locks the row to compare it with its run
            "  OR query LIKE 'SELECT seat_id, starts_at, ends_at, version, status%')"
        )
    )


async def _kinds(scene: Scene, reservation_id: str) -> list[EventType.ValueType]:
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    return [event.event_type async for event in handle.fetch_history_events()]


async def _timer_fired_and_handled(
    scene: Scene, reservation_id: str, *, after: int
) -> bool:
    """A timer fired after the first `after` events, and a workflow task took it."""
    kinds = (await _kinds(scene, reservation_id))[after:]
    if EventType.EVENT_TYPE_TIMER_FIRED not in kinds:
        return False
    fired = kinds.index(EventType.EVENT_TYPE_TIMER_FIRED)
    return EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED in kinds[fired:]


async def _activities(scene: Scene, reservation_id: str) -> list[str]:
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def act_as_the_deadline_fires(
    scene: Scene, reservation_id: str, path: str, deadline: datetime
) -> httpx.Response:
    """Send `path` for the reservation, then pass `deadline` while its write waits."""
    await scene.sleep(deadline - await scene.now() - LEAD)
    seen = len(await _kinds(scene, reservation_id))
    async with row_locked(scene, reservation_id):
        acting = asyncio.create_task(
            scene.api.post(
                f"/api/reservations/{reservation_id}/{path}",
                headers=scene.admin.headers,
            )
        )
        assert await wait_for(lambda: _status_write_waits(scene))
        assert await wait_for(
            lambda: _timer_fired_and_handled(scene, reservation_id, after=seen)
        )
    return await acting


async def assert_stands(
    scene: Scene, reservation_id: str, status: str, *, claims: int
) -> None:
    """The reservation is still `status`, nothing released, every grain held."""
    assert "release_seat" not in await _activities(scene, reservation_id)
    got = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert got.json()["status"] == status
    held = await scene.resources.pool.fetchval(
        "SELECT count(*) FROM reservation.seat_claims WHERE reservation_id = $1",
        uuid.UUID(reservation_id),
    )
    assert held == claims


async def test_confirm_at_the_hold_deadline_answered_200_stays_confirmed(
    scene: Scene,
) -> None:
    coworking = await create_coworking(
        scene.resources.pool, auto_confirm=False, hold_minutes=10
    )
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=48)
    booked = await scene.book(starts_at, ends_at, seat_id=seat)
    reservation_id = booked.json()["id"]
    deadline = await scene.now() + timedelta(minutes=10)

    confirmed = await act_as_the_deadline_fires(
        scene, reservation_id, "confirm", deadline
    )

    assert (confirmed.status_code, confirmed.json()["status"]) == (200, "confirmed")
    await assert_stands(scene, reservation_id, "confirmed", claims=12)
    # the client hears of the confirmation once, and of no expiry
    mails = await wait_for(lambda: sent(scene, reservation_id))
    assert [(mail["kind"], mail["version"]) for mail in mails] == [("confirmation", 1)]


async def test_check_in_at_the_grace_deadline_answered_200_is_no_no_show(
    scene: Scene,
) -> None:
    coworking = await create_coworking(scene.resources.pool, checkin_grace_minutes=10)
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=5, length_minutes=120)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]

    checked_in = await act_as_the_deadline_fires(
        scene, reservation_id, "check-in", starts_at + timedelta(minutes=10)
    )

    assert (checked_in.status_code, checked_in.json()["status"]) == (
        200,
        "checked_in",
    )
    await assert_stands(scene, reservation_id, "checked_in", claims=24)


async def test_check_in_at_the_end_is_written_before_completed(scene: Scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=4)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]

    checked_in = await act_as_the_deadline_fires(
        scene, reservation_id, "check-in", ends_at
    )

    assert (checked_in.status_code, checked_in.json()["status"]) == (
        200,
        "checked_in",
    )
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    final = await handle.result()
    assert final.status == 4  # RESERVATION_STATUS_COMPLETED
    # one status write after the other: the end waited for the check-in's
    steps = [
        event.event_type
        async for event in handle.fetch_history_events()
        if event.event_type
        in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        )
    ]
    scheduled, completed = (
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    )
    assert steps[-4:] == [scheduled, completed, scheduled, completed]
    row = await scene.resources.pool.fetchrow(
        "SELECT status, checked_in_at FROM reservation.reservations WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    assert row["status"] == "completed" and row["checked_in_at"] is not None


async def booked_past_its_end_with_no_worker(scene: Scene) -> str:
    """A reservation whose end has just passed while no worker runs: the end's
    timer and whatever the test sends next reach the workflow together."""
    starts_at, ends_at = await scene.slot(hours_ahead=4)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await scene.sleep(ends_at - await scene.now() - LEAD)
    await scene.workers.aclose()
    await asyncio.sleep(LEAD.total_seconds() + 1)
    assert await scene.now() > ends_at
    return str(reservation_id)


@pytest.mark.uncached_workers
async def test_cancel_just_after_the_end_leaves_the_reservation_completed(
    scene: Scene,
) -> None:
    reservation_id = await booked_past_its_end_with_no_worker(scene)
    cancelling = asyncio.create_task(
        scene.api.delete(
            f"/api/reservations/{reservation_id}", headers=scene.client.headers
        )
    )
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    assert await wait_for(lambda: _signalled(scene, reservation_id), timeout=20)
    await scene.restart_workers()

    refused = await cancelling
    assert (refused.status_code, refused.json()) == (
        409,
        {"error": "conflict", "description": "cannot cancel a completed reservation"},
    )
    assert (await handle.result()).status == 4  # RESERVATION_STATUS_COMPLETED
    assert "release_seat" not in await _activities(scene, reservation_id)


async def _signalled(scene: Scene, reservation_id: str) -> bool:
    kinds = await _kinds(scene, reservation_id)
    return EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED in kinds


@pytest.mark.uncached_workers
async def test_check_in_just_after_the_end_is_refused_saying_it_has_ended(
    scene: Scene,
) -> None:
    reservation_id = await booked_past_its_end_with_no_worker(scene)
    checking_in = asyncio.create_task(
        scene.api.post(
            f"/api/reservations/{reservation_id}/check-in",
            headers=scene.admin.headers,
        )
    )
    # the update waits for a worker; give it time to reach the server
    await asyncio.sleep(1)
    await scene.restart_workers()

    refused = await checking_in
    assert (refused.status_code, refused.json()) == (
        409,
        {
            "error": "conflict",
            "description": "cannot check in a reservation that has ended",
        },
    )


def _first_call_waits(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> tuple[asyncio.Event, asyncio.Event]:
    """The first call of the service's `name`, made after a request read the
    booking, sets the first event and waits for the second."""
    reached, go_on = asyncio.Event(), asyncio.Event()
    real = getattr(reservations, name)

    async def waits(*args: object, **kwargs: object) -> object:
        if not reached.is_set():
            reached.set()
            await go_on.wait()
        return await real(*args, **kwargs)

    monkeypatch.setattr(reservations, name, waits)
    return reached, go_on


def _moved_by(
    scene: Scene, path: str, starts_at: datetime, ends_at: datetime, hours: int
) -> Awaitable[httpx.Response]:
    """The client's move of the booking at `path` by `hours` (0: onto itself)."""
    shift = timedelta(hours=hours)
    body = {
        "starts_at": (starts_at + shift).isoformat(),
        "ends_at": (ends_at + shift).isoformat(),
    }
    return scene.api.patch(path, json=body, headers=scene.client.headers)


async def test_the_later_of_two_racing_moves_is_told_the_booking_changed(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    path = f"/api/reservations/{reservation_id}"
    # the slower request is held between its read of the booking and its update,
    # as a request that lost the race would be
    read, go_on = _first_call_waits(monkeypatch, "_booking_subject")

    slower = asyncio.create_task(_moved_by(scene, path, starts_at, ends_at, 4))
    await read.wait()
    first = await _moved_by(scene, path, starts_at, ends_at, 2)
    go_on.set()
    refused = await slower

    assert (first.status_code, first.json()["version"]) == (200, 2)
    # it named no version: it is told of the change, not of a version it never gave
    assert (refused.status_code, refused.json()) == (
        409,
        {
            "error": "conflict",
            "description": "reservation: changed by another request while this"
            " one was on its way; look at it again and send the change anew",
        },
    )
    got = await scene.api.get(path, headers=scene.client.headers)
    assert (got.json()["version"], got.json()["starts_at"]) == (
        2,
        (starts_at + timedelta(hours=2)).isoformat().replace("+00:00", "Z"),
    )


async def test_a_move_onto_its_own_slot_that_lost_a_race_is_not_told_done(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    path = f"/api/reservations/{reservation_id}"
    read, go_on = _first_call_waits(monkeypatch, "current_view")
    stay = asyncio.create_task(_moved_by(scene, path, starts_at, ends_at, 0))
    await read.wait()
    moved = await _moved_by(scene, path, starts_at, ends_at, 2)
    go_on.set()
    stayed = await stay

    assert (moved.status_code, moved.json()["version"]) == (200, 2)
    # it asked for the slot it read, which the booking no longer holds
    assert (stayed.status_code, stayed.json()["description"]) == (
        409,
        "reservation: changed by another request while this one was on its way;"
        " look at it again and send the change anew",
    )
