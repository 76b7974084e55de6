"""A run that a reset left behind its reservation's row takes the row over.

Support may reset a workflow to a point in between, leaving out the updates and
signals after it. The new run then knows less than the database: a move, a
staff confirm, a check-in or a cancel. Here the database is moved on with the
activities an earlier run called, and the run finds out at its next timer or move.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from temporalio.client import WorkflowUpdateFailedError

from activities.reservation import ReservationActivities, grains
from proto import reservation_pb2 as pb
from tests.factories import create_client, create_coworking, create_seat
from tests.reservations.conftest import Scene
from tests.reservations.test_reservations_cancel_mail import _calendar
from tests.reservations.test_reservations_lifecycle import _kinds, sent, wait_for
from workers.sweep import LATE, nudge_overdue


def _activities(scene: Scene) -> ReservationActivities:
    return ReservationActivities(scene.resources.pool, scene.resources.valkey)


async def _move_behind_the_run(
    scene: Scene, reservation_id: str, seat_id: object, starts_at, ends_at
) -> None:
    """The move an earlier run made, before a reset to a point before it."""
    move = pb.ClaimInput(
        reservation_id=reservation_id, client_id=str(scene.client.id),
        seat_id=str(seat_id), version=2, reschedule=True,
        requested_by=f"client:{scene.client.id}",
    )  # fmt: skip
    move.starts_at.FromDatetime(starts_at)
    move.ends_at.FromDatetime(ends_at)
    move.now.FromDatetime(await scene.now())
    claimed = await _activities(scene).claim_seat(move)
    assert claimed.outcome == pb.HOLD_OUTCOME_HELD, claimed.description


async def _moved_back_to_held(scene: Scene) -> tuple[str, object, datetime, datetime]:
    """A booking staff confirmed where staff confirm (an hour's hold), which
    its client then moved two hours on behind the run: held again, by its row."""
    pool = scene.resources.pool
    coworking = await create_coworking(pool, auto_confirm=False, hold_minutes=60)
    seat = await create_seat(pool, coworking, number=1)
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    confirmed = await scene.api.post(
        f"/api/reservations/{reservation_id}/confirm", headers=scene.admin.headers
    )
    assert confirmed.status_code == 200, confirmed.text
    later, later_end = starts_at + timedelta(hours=2), ends_at + timedelta(hours=2)
    await _move_behind_the_run(scene, reservation_id, seat, later, later_end)
    return reservation_id, seat, later, later_end


async def _record_behind_the_run(
    scene: Scene, reservation_id: str, *statuses: pb.ReservationStatus
) -> None:
    """Staff's confirm and check-in of an earlier run, before a reset past them."""
    for status in statuses:
        request = pb.StatusInput(reservation_id=reservation_id, status=status)
        request.at.FromDatetime(await scene.now())
        assert (await _activities(scene).record_status(request)).changed is True


async def _patch(
    scene: Scene, reservation_id: str, seat_id: object, starts_at, ends_at
) -> httpx.Response:
    """The client's move, through the API."""
    return await scene.api.patch(
        f"/api/reservations/{reservation_id}",
        json={
            "seat_id": str(seat_id),
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
        headers=scene.client.headers,
    )


async def _state(scene: Scene, reservation_id: str) -> pb.ReservationState:
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    return await handle.query("state")


async def _row(scene: Scene, reservation_id: str) -> tuple:
    row = await scene.resources.pool.fetchrow(
        "SELECT seat_id, starts_at, status, version, (SELECT array_agg(slot_start"
        " ORDER BY slot_start) FROM reservation.seat_claims c"
        " WHERE c.reservation_id = r.id) AS slots"
        " FROM reservation.reservations r WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    return tuple(row)


async def test_a_run_behind_a_move_takes_it_at_its_no_show_deadline(
    scene: Scene, smtp
) -> None:
    pool = scene.resources.pool
    coworking = await create_coworking(pool, checkin_grace_minutes=15)
    seat = await create_seat(pool, coworking, number=1)
    other = await create_seat(pool, coworking, number=2)
    starts_at, ends_at = await scene.slot(hours_ahead=5)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    await wait_for(lambda: _kinds(scene, reservation_id, "confirmation"))
    later, later_end = starts_at + timedelta(days=1), ends_at + timedelta(days=1)
    await _move_behind_the_run(scene, reservation_id, other, later, later_end)

    # past the old slot's reminder and its check-in deadline
    await scene.sleep(starts_at + timedelta(minutes=15, seconds=1) - await scene.now())

    async def caught_up() -> pb.ReservationState | None:
        state = await _state(scene, reservation_id)
        return state if state.version == 2 and state.waiting_for else None

    state = await wait_for(caught_up)
    assert isinstance(state, pb.ReservationState)
    assert (state.seat_id, state.status) == (
        str(other),
        pb.RESERVATION_STATUS_CONFIRMED,
    )
    assert (state.starts_at.ToSeconds(), state.ends_at.ToSeconds()) == (
        int(later.timestamp()),
        int(later_end.timestamp()),
    )
    reminder_at = later - timedelta(hours=3)
    assert state.waiting_for == f"the reminder at {reminder_at.isoformat()}"
    # no no-show: the moved booking keeps every grain of its slot
    assert await _row(scene, reservation_id) == (
        other, later, "confirmed", 2, grains(later, later_end),
    )  # fmt: skip

    await scene.sleep(reminder_at + timedelta(seconds=1) - await scene.now())
    reminder = (await wait_for(lambda: _kinds(scene, reservation_id, "reminder")))[0]
    assert (reminder["version"], reminder["due_at"]) == (2, reminder_at)
    assert timedelta(0) <= reminder["scheduled_at"] - reminder_at < timedelta(seconds=1)
    # the old slot's reminder was dropped, its row having moved; the client
    # learns of the move (an earlier run's move mail would count as this one)
    assert [(r["kind"], r["version"]) for r in await sent(scene, reservation_id)] == [
        ("confirmation", 1),
        ("reschedule", 2),
        ("reminder", 2),
    ]


async def test_a_held_run_behind_a_staff_confirm_does_not_expire(
    scene: Scene, smtp
) -> None:
    pool = scene.resources.pool
    coworking = await create_coworking(pool, auto_confirm=False, hold_minutes=60)
    seat = await create_seat(pool, coworking, number=1)
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    assert (await _state(scene, reservation_id)).status == pb.RESERVATION_STATUS_HELD
    confirm = pb.StatusInput(
        reservation_id=reservation_id, status=pb.RESERVATION_STATUS_CONFIRMED
    )
    confirm.at.FromDatetime(await scene.now())
    assert (await _activities(scene).record_status(confirm)).changed is True

    await scene.sleep(timedelta(minutes=61))

    async def confirmed() -> pb.ReservationState | None:
        state = await _state(scene, reservation_id)
        return state if state.status == pb.RESERVATION_STATUS_CONFIRMED else None

    state = await wait_for(confirmed)
    assert isinstance(state, pb.ReservationState)
    reminder_at = starts_at - timedelta(hours=3)
    assert state.waiting_for == f"the reminder at {reminder_at.isoformat()}"
    assert await _row(scene, reservation_id) == (
        seat, starts_at, "confirmed", 1, grains(starts_at, ends_at),
    )  # fmt: skip
    # staff's confirm reaches the client, from the run that took it over
    rows = await wait_for(lambda: _kinds(scene, reservation_id, "confirmation"))
    assert [(r["kind"], r["version"]) for r in await sent(scene, reservation_id)] == [
        ("confirmation", 1)
    ]
    assert rows[0]["scheduled_at"] >= starts_at - timedelta(hours=29)


async def test_a_run_behind_a_cancel_ends_cancelled_at_its_end(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=5)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await wait_for(lambda: _kinds(scene, reservation_id, "confirmation"))
    cancel = pb.ReleaseInput(
        reservation_id=reservation_id,
        status=pb.RESERVATION_STATUS_CANCELLED,
        reason="by phone",
    )
    assert (await _activities(scene).release_seat(cancel)).released == 24

    await scene.sleep(ends_at + timedelta(seconds=1) - await scene.now())
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    result = await handle.result()

    assert result.status == pb.RESERVATION_STATUS_CANCELLED
    description = await handle.describe()
    assert description.search_attributes["ReservationStatus"] == ["cancelled"]
    assert await _row(scene, reservation_id) == (
        scene.seat_id, starts_at, "cancelled", 1, None,
    )  # fmt: skip
    # its cancellation mail was the earlier run's to send; no reminder for it
    assert [r["kind"] for r in await sent(scene, reservation_id)] == ["confirmation"]


async def test_a_move_asked_of_a_run_behind_a_move_takes_it_and_moves(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await _move_behind_the_run(
        scene, reservation_id, scene.other_seat_id, starts_at, ends_at
    )
    new_start, new_end = starts_at + timedelta(hours=2), ends_at + timedelta(hours=2)

    moved = await _patch(scene, reservation_id, scene.seat_id, new_start, new_end)

    assert moved.status_code == 200, moved.text
    assert (moved.json()["seat_id"], moved.json()["starts_at"]) == (
        str(scene.seat_id),
        new_start.isoformat().replace("+00:00", "Z"),
    )
    assert await _row(scene, reservation_id) == (
        scene.seat_id, new_start, "confirmed", 3, grains(new_start, new_end),
    )  # fmt: skip
    state = await _state(scene, reservation_id)
    assert (state.version, state.seat_id) == (3, str(scene.seat_id))

    async def move_mailed() -> list[tuple]:
        rows = await sent(scene, reservation_id)
        kinds = [(r["kind"], r["version"]) for r in rows]
        return kinds if ("reschedule", 3) in kinds else []

    assert await wait_for(move_mailed) == [("confirmation", 1), ("reschedule", 3)]


async def test_a_move_reapplied_by_a_reset_after_a_later_move_is_not_made_again(
    scene: Scene, smtp
) -> None:
    """A reset with the updates after its point reapplied asks each move once
    more, of the version it was first asked of; the row has moved on since."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await _move_behind_the_run(
        scene, reservation_id, scene.other_seat_id, starts_at, ends_at
    )
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    first_move = pb.RescheduleRequest(
        requested_by=f"client:{scene.client.id}", expected_version=1
    )
    first_move.starts_at.FromDatetime(starts_at + timedelta(hours=3))
    first_move.ends_at.FromDatetime(ends_at + timedelta(hours=3))

    result = await handle.execute_update(
        "reschedule", first_move, result_type=pb.RescheduleResult
    )

    assert (result.outcome, result.rule) == (
        pb.HOLD_OUTCOME_REJECTED,
        "workflow_behind",
    )
    assert (result.state.version, result.state.seat_id) == (
        2,
        str(scene.other_seat_id),
    )
    # the next move it reapplies was asked of a version the run is past now
    second_move = pb.RescheduleRequest()
    second_move.CopyFrom(first_move)
    second_move.seat_id = str(scene.seat_id)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            "reschedule", second_move, result_type=pb.RescheduleResult
        )
    assert refused.value.cause.message == (
        "version: the reservation is at version 2 now, not 1; look at it again"
    )
    assert await _row(scene, reservation_id) == (
        scene.other_seat_id, starts_at, "confirmed", 2, grains(starts_at, ends_at),
    )  # fmt: skip


async def test_a_move_asked_of_a_run_behind_a_cancel_is_refused_and_closes_it(
    scene: Scene, smtp
) -> None:
    """The API refuses a move of a closed row itself; an update sent to the run
    (a request in flight across the cancel, or from the Temporal UI) reaches it."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await wait_for(lambda: _kinds(scene, reservation_id, "confirmation"))
    cancel = pb.ReleaseInput(
        reservation_id=reservation_id, status=pb.RESERVATION_STATUS_CANCELLED
    )
    await _activities(scene).release_seat(cancel)
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    move = pb.RescheduleRequest(requested_by=f"client:{scene.client.id}")
    move.starts_at.FromDatetime(starts_at + timedelta(hours=1))
    move.ends_at.FromDatetime(ends_at + timedelta(hours=1))

    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update("reschedule", move, result_type=pb.RescheduleResult)

    assert refused.value.cause.message == "cannot reschedule a cancelled reservation"
    assert (await handle.result()).status == pb.RESERVATION_STATUS_CANCELLED
    assert await _row(scene, reservation_id) == (
        scene.seat_id, starts_at, "cancelled", 1, None,
    )  # fmt: skip
    assert [r["kind"] for r in await sent(scene, reservation_id)] == ["confirmation"]


async def test_a_confirm_asked_of_a_run_behind_a_check_in_leaves_it_checked_in(
    scene: Scene, smtp
) -> None:
    pool = scene.resources.pool
    coworking = await create_coworking(
        pool, auto_confirm=False, hold_minutes=60, checkin_grace_minutes=10
    )
    seat = await create_seat(pool, coworking, number=1)
    starts_at, ends_at = await scene.slot(hours_ahead=2)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    await _record_behind_the_run(
        scene, reservation_id,
        pb.RESERVATION_STATUS_CONFIRMED, pb.RESERVATION_STATUS_CHECKED_IN,
    )  # fmt: skip

    confirmed = await scene.api.post(
        f"/api/reservations/{reservation_id}/confirm", headers=scene.admin.headers
    )

    assert (confirmed.status_code, confirmed.json()) == (
        409,
        {
            "error": "conflict",
            "description": "version: by its record the reservation is checked_in"
            " at version 1 now; look at it again",
        },
    )
    state = await _state(scene, reservation_id)
    assert state.status == pb.RESERVATION_STATUS_CHECKED_IN
    # past the check-in deadline: no no-show, the seat stays the client's
    await scene.sleep(starts_at + timedelta(minutes=11) - await scene.now())
    assert await _row(scene, reservation_id) == (
        seat, starts_at, "checked_in", 1, grains(starts_at, ends_at),
    )  # fmt: skip
    # staff's confirm, which the earlier run would have mailed; no reminder to
    # a client at the desk, no no-show
    assert [r["kind"] for r in await sent(scene, reservation_id)] == ["confirmation"]


async def test_a_check_in_asked_of_a_run_behind_a_move_is_refused(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=1)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    later, later_end = starts_at + timedelta(hours=3), ends_at + timedelta(hours=3)
    await _move_behind_the_run(scene, reservation_id, scene.seat_id, later, later_end)
    # the run's slot has opened for check-in; the row's has not
    await scene.sleep(starts_at - timedelta(minutes=20) - await scene.now())

    checked_in = await scene.api.post(
        f"/api/reservations/{reservation_id}/check-in", headers=scene.admin.headers
    )

    assert (checked_in.status_code, checked_in.json()["description"]) == (
        409,
        "version: by its record the reservation is confirmed at version 2 now;"
        " look at it again",
    )
    assert await _row(scene, reservation_id) == (
        scene.seat_id, later, "confirmed", 2, grains(later, later_end),
    )  # fmt: skip
    state = await _state(scene, reservation_id)
    assert (state.version, state.starts_at.ToSeconds()) == (
        2,
        int(later.timestamp()),
    )


async def test_a_move_asked_of_a_run_behind_a_check_in_is_refused(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await _record_behind_the_run(
        scene, reservation_id, pb.RESERVATION_STATUS_CHECKED_IN
    )

    moved = await scene.api.patch(
        f"/api/reservations/{reservation_id}",
        json={"starts_at": (starts_at + timedelta(hours=1)).isoformat(),
              "ends_at": (ends_at + timedelta(hours=1)).isoformat()},
        headers=scene.client.headers,
    )  # fmt: skip

    assert (moved.status_code, moved.json()["description"]) == (
        409,
        "cannot reschedule a checked-in reservation",
    )
    assert await _row(scene, reservation_id) == (
        scene.seat_id, starts_at, "checked_in", 1, grains(starts_at, ends_at),
    )  # fmt: skip
    assert [r["kind"] for r in await sent(scene, reservation_id)] == ["confirmation"]


async def test_a_cancel_of_a_run_behind_a_move_mails_the_moved_slot(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await wait_for(lambda: _kinds(scene, reservation_id, "confirmation"))
    later, later_end = starts_at + timedelta(hours=3), ends_at + timedelta(hours=3)
    await _move_behind_the_run(
        scene, reservation_id, scene.other_seat_id, later, later_end
    )

    cancelled = await scene.api.delete(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )

    assert cancelled.status_code == 204, cancelled.text
    rows = await wait_for(lambda: _kinds(scene, reservation_id, "cancellation"))
    assert rows[0]["version"] == 2
    [message] = [
        m.message for m in smtp.received if "cancelled" in m.message["Subject"]
    ]
    method, calendar = _calendar(message)
    [event] = calendar.walk("VEVENT")
    assert (method, event.decoded("DTSTART"), event.decoded("DTEND")) == (
        "CANCEL",
        later,
        later_end,
    )
    assert await _row(scene, reservation_id) == (
        scene.other_seat_id, later, "cancelled", 2, None,
    )  # fmt: skip


async def test_a_reservation_whose_run_is_behind_its_row_reads_as_its_row(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    moved_id = (await scene.book(starts_at, ends_at)).json()["id"]
    later, later_end = starts_at + timedelta(hours=3), ends_at + timedelta(hours=3)
    await _move_behind_the_run(scene, moved_id, scene.other_seat_id, later, later_end)
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    checked_id = (await scene.book(starts_at, ends_at, account=rival)).json()["id"]
    await _record_behind_the_run(scene, checked_id, pb.RESERVATION_STATUS_CHECKED_IN)

    moved = await scene.api.get(
        f"/api/reservations/{moved_id}", headers=scene.client.headers
    )
    checked = await scene.api.get(
        f"/api/reservations/{checked_id}", headers=rival.headers
    )

    assert moved.status_code == 200, moved.text
    assert {key: moved.json()[key] for key in ("seat_id", "starts_at", "version")} == {
        "seat_id": str(scene.other_seat_id),
        "starts_at": later.isoformat().replace("+00:00", "Z"),
        "version": 2,
    }
    assert moved.json()["notification_status"] in ("pending", "sent")
    assert (checked.json()["status"], checked.json()["version"]) == ("checked_in", 1)

    # and each read told its run, which has taken its row over
    async def both_taken_over() -> bool:
        moved_state = await _state(scene, moved_id)
        checked_state = await _state(scene, checked_id)
        return (moved_state.version, checked_state.status) == (
            2,
            pb.RESERVATION_STATUS_CHECKED_IN,
        )

    assert await wait_for(both_taken_over)


async def test_a_read_of_a_lagging_reservation_makes_its_run_keep_the_rows_hold(
    scene: Scene, smtp
) -> None:
    """A client's move back to held, which the run no longer knows, expires at
    its own hold deadline, not at the run's far later one."""
    reservation_id, seat, later, later_end = await _moved_back_to_held(scene)

    read = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )

    assert (read.json()["status"], read.json()["version"]) == ("held", 2)

    async def taken_over() -> bool:
        state = await _state(scene, reservation_id)
        return (state.version, state.status) == (2, pb.RESERVATION_STATUS_HELD)

    assert await wait_for(taken_over)
    await scene.sleep(timedelta(minutes=61))

    async def expired() -> bool:
        return (await _row(scene, reservation_id))[2] == "expired"

    assert await wait_for(expired)
    assert await _row(scene, reservation_id) == (seat, later, "expired", 2, None)
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    freed = await scene.book(later, later_end, seat_id=seat, account=rival)
    assert freed.status_code == 200, freed.text


async def test_a_move_onto_the_rows_own_slot_tells_a_lagging_run(
    scene: Scene, smtp
) -> None:
    """The no-change short cut answers from the row and still wakes the run."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    later, later_end = starts_at + timedelta(hours=3), ends_at + timedelta(hours=3)
    await _move_behind_the_run(
        scene, reservation_id, scene.other_seat_id, later, later_end
    )

    same = await _patch(scene, reservation_id, scene.other_seat_id, later, later_end)

    assert same.status_code == 200, same.text
    assert (same.json()["seat_id"], same.json()["version"]) == (
        str(scene.other_seat_id),
        2,
    )

    async def taken_over() -> bool:
        state = await _state(scene, reservation_id)
        return (state.version, state.seat_id) == (2, str(scene.other_seat_id))

    assert await wait_for(taken_over)
    # the short cut moved nothing: no version 3, no mail of its own; the run
    # mails the move it was behind, once
    assert await _row(scene, reservation_id) == (
        scene.other_seat_id, later, "confirmed", 2, grains(later, later_end),
    )  # fmt: skip
    assert await wait_for(lambda: _kinds(scene, reservation_id, "reschedule"))
    assert [(r["kind"], r["version"]) for r in await sent(scene, reservation_id)] == [
        ("confirmation", 1),
        ("reschedule", 2),
    ]


async def test_the_sweep_wakes_a_run_asleep_past_its_rows_end(
    scene: Scene, smtp
) -> None:
    """Nobody reads a reservation whose run a reset left behind a move to an
    earlier slot: the worker's sweep finds the row overdue and tells the run."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    sleeping = (await scene.book(starts_at, ends_at, seat_id=scene.other_seat_id,
                                 account=await create_client(
                                     scene.resources.pool, scene.resources.settings
                                 ))).json()["id"]  # fmt: skip
    early, early_end = await scene.slot(hours_ahead=2)
    await _move_behind_the_run(scene, reservation_id, scene.seat_id, early, early_end)
    await scene.sleep(early_end - await scene.now() + LATE + timedelta(minutes=1))
    # the run sleeps on towards its own reminder, a day away
    assert (await _row(scene, reservation_id))[2] == "confirmed"

    activities = _activities(scene)
    now = await scene.now()
    assert await nudge_overdue(scene.resources.temporal, activities, now) == 1
    # told once: the next sweeps leave it be
    assert await nudge_overdue(scene.resources.temporal, activities, now) == 0

    async def completed() -> bool:
        return (await _row(scene, reservation_id))[2] == "completed"

    assert await wait_for(completed)
    # the move's mail, which the run left behind owes (an earlier run's counts)
    await wait_for(lambda: _kinds(scene, reservation_id, "reschedule"))
    assert [(r["kind"], r["version"]) for r in await sent(scene, reservation_id)] == [
        ("confirmation", 1),
        ("reschedule", 2),
    ]
    assert await _row(scene, reservation_id) == (
        scene.seat_id, early, "completed", 2, grains(early, early_end),
    )  # fmt: skip
    # nothing else was told or closed
    assert (await _row(scene, sleeping))[2:4] == ("confirmed", 1)
    assert (await _state(scene, sleeping)).status == pb.RESERVATION_STATUS_CONFIRMED


async def test_a_run_taking_its_row_over_takes_the_rules_its_move_was_made_on(
    scene: Scene, smtp
) -> None:
    """The coworking set a check-in grace after the booking; the client's move,
    which the run no longer knows, was made under it (tester K)."""
    pool = scene.resources.pool
    coworking = await create_coworking(pool)
    seat = await create_seat(pool, coworking, number=1)
    starts_at, ends_at = await scene.slot(hours_ahead=5)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    await pool.execute(
        "UPDATE coworking.coworkings SET checkin_grace_minutes = 15 WHERE id = $1",
        coworking,
    )
    later, later_end = starts_at + timedelta(hours=1), ends_at + timedelta(hours=1)
    await _move_behind_the_run(scene, reservation_id, seat, later, later_end)

    read = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert read.json()["version"] == 2

    async def taken_over() -> bool:
        state = await _state(scene, reservation_id)
        return (state.version, state.rules.checkin_grace_minutes) == (2, 15)

    assert await wait_for(taken_over)
    await scene.sleep(later + timedelta(minutes=15, seconds=1) - await scene.now())

    async def released() -> bool:
        return (await _row(scene, reservation_id))[2] == "no_show"

    assert await wait_for(released)
    row = await _row(scene, reservation_id)
    assert row[:4] == (seat, later, "no_show", 2)
    # the slot's rest is free from the grace on: its grains up to the one in
    # which the grace ran out stay
    assert row[4] == grains(later, later + timedelta(minutes=20))


async def test_a_run_taking_over_a_held_row_keeps_the_holds_end(
    scene: Scene, smtp
) -> None:
    """A client's move back to held, which the run no longer knows, is found
    forty minutes on: its hold still ends an hour after the move, not an hour
    after the run found it (tester K)."""
    pool = scene.resources.pool
    moved_at = await scene.now()
    reservation_id, seat, later, later_end = await _moved_back_to_held(scene)
    hold_ends = await pool.fetchval(
        "SELECT hold_expires_at FROM reservation.reservations WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    assert moved_at + timedelta(minutes=60) <= hold_ends
    assert hold_ends < moved_at + timedelta(minutes=61)
    await scene.sleep(timedelta(minutes=40))

    read = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert (read.json()["status"], read.json()["version"]) == ("held", 2)

    async def taken_over() -> bool:
        state = await _state(scene, reservation_id)
        return state.waiting_for == (
            f"confirmation by staff before {hold_ends.astimezone(UTC).isoformat()}"
        )

    assert await wait_for(taken_over)
    await scene.sleep(hold_ends + timedelta(seconds=30) - await scene.now())

    async def expired() -> bool:
        return (await _row(scene, reservation_id))[2] == "expired"

    assert await wait_for(expired)
    assert await _row(scene, reservation_id) == (seat, later, "expired", 2, None)


async def test_the_sweep_goes_on_past_runs_it_told_within_the_hour(
    scene: Scene, smtp
) -> None:
    """Tester L: a row told once stays overdue for the hour it is passed
    over; the next pass goes on to the rows after it, page by page."""
    behind = []
    early, early_end = await scene.slot(hours_ahead=2)
    for hours in (0, 1):
        starts_at, ends_at = await scene.slot(hours_ahead=30 + hours)
        reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
        moved = (early + timedelta(hours=hours), early_end + timedelta(hours=hours))
        await _move_behind_the_run(scene, reservation_id, scene.seat_id, *moved)
        behind.append(reservation_id)
    await scene.sleep(early_end + timedelta(hours=1) - await scene.now() + LATE * 2)
    activities = _activities(scene)
    now = await scene.now()

    passes = [
        await nudge_overdue(scene.resources.temporal, activities, now, most=1, page=1)
        for _ in range(3)
    ]

    assert passes == [1, 1, 0]
    for reservation_id in behind:
        assert await activities.cache.exists(f"sweep:nudged:{reservation_id}")

        async def completed(reservation_id: str = reservation_id) -> bool:
            return (await _row(scene, reservation_id))[2] == "completed"

        assert await wait_for(completed)
