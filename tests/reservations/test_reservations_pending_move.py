"""A client's move of a booking staff confirmed waits for staff, and the booking
keeps what they confirmed until they answer: confirmed, the move stands; left
unanswered, the booking goes back; cancelled, both slots go."""

import uuid
from datetime import datetime, timedelta

from activities.reservation import grains
from api.services import reservation_reads
from tests.factories import create_client, create_coworking, create_seat
from tests.reservations.conftest import Scene
from tests.reservations.test_reservations_lifecycle import wait_for
from tests.reservations.test_reservations_staff import (
    _book_where_staff_confirm,
    _is,
    _mails,
    _move,
    _status,
)
from workflows.reservation import RESERVATION_START, SEAT_ID

Slot = tuple[uuid.UUID, datetime, datetime]


def _z(instant: datetime) -> str:
    return instant.isoformat().replace("+00:00", "Z")


async def _claimed(
    scene: Scene, reservation_id: str
) -> tuple[set[tuple[uuid.UUID, datetime]], set[datetime]]:
    """The reservation's seat claims as (seat, grain) and its client claims."""
    rid = uuid.UUID(reservation_id)
    seats = await scene.resources.pool.fetch(
        "SELECT seat_id, slot_start FROM reservation.seat_claims"
        " WHERE reservation_id = $1",
        rid,
    )
    clients = await scene.resources.pool.fetch(
        "SELECT slot_start FROM reservation.client_claims WHERE reservation_id = $1",
        rid,
    )
    return (
        {(row["seat_id"], row["slot_start"]) for row in seats},
        {row["slot_start"] for row in clients},
    )


def _claims_of(*slots: Slot) -> tuple[set[tuple[uuid.UUID, datetime]], set[datetime]]:
    seats = {
        (seat, grain) for seat, start, end in slots for grain in grains(start, end)
    }
    return seats, {grain for _, grain in seats}


async def _row(scene: Scene, reservation_id: str) -> tuple:
    row = await scene.resources.pool.fetchrow(
        "SELECT status, version, seat_id, starts_at, ends_at, fallback_seat_id"
        " FROM reservation.reservations WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    return tuple(row.values())


async def _confirmed_booking(scene: Scene) -> tuple[str, Slot]:
    reservation_id, starts_at, ends_at = await _book_where_staff_confirm(scene)
    path = f"/api/reservations/{reservation_id}"
    confirmed = await scene.api.post(f"{path}/confirm", headers=scene.admin.headers)
    assert confirmed.json()["status"] == "confirmed"
    seat = uuid.UUID(confirmed.json()["seat_id"])
    return path, (seat, starts_at, ends_at)


async def _confirmed_soon(
    scene: Scene, *, hold_minutes: int, hours_ahead: float
) -> tuple[str, Slot]:
    """A booking staff confirmed, `hours_ahead` away, where a client's move is
    held `hold_minutes` for staff to answer."""
    coworking = await create_coworking(
        scene.resources.pool, auto_confirm=False, hold_minutes=hold_minutes
    )
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=hours_ahead)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    path = f"/api/reservations/{reservation_id}"
    await scene.api.post(f"{path}/confirm", headers=scene.admin.headers)
    return path, (seat, starts_at, ends_at)


async def test_staff_confirming_the_move_free_the_slot_it_would_go_back_to(
    scene: Scene, smtp
) -> None:
    path, (seat, starts_at, ends_at) = await _confirmed_booking(scene)
    reservation_id = path.rsplit("/", 1)[1]
    later = starts_at + timedelta(days=1)
    moved = await _move(scene, path, later, scene.client.headers)
    assert moved.status_code == 200
    assert (moved.json()["status"], moved.json()["fallback"]) == (
        "held",
        {"seat_id": str(seat), "starts_at": _z(starts_at), "ends_at": _z(ends_at)},
    )
    new = (seat, later, later + timedelta(hours=1))
    assert await _claimed(scene, reservation_id) == _claims_of(
        (seat, starts_at, ends_at), new
    )
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    taken = await scene.book(starts_at, ends_at, seat_id=seat, account=rival)
    # named by the slot that holds it, not the one the move asks for
    assert (taken.status_code, taken.json()) == (
        409,
        {
            "error": "conflict",
            "description": f"seat: already booked from {_z(starts_at)}"
            f" to {_z(ends_at)}",
        },
    )

    confirmed = await scene.api.post(f"{path}/confirm", headers=scene.admin.headers)
    assert confirmed.status_code == 200
    assert (confirmed.json()["status"], confirmed.json()["fallback"]) == (
        "confirmed",
        None,
    )
    assert await _claimed(scene, reservation_id) == _claims_of(new)
    assert await _row(scene, reservation_id) == ("confirmed", 2, *new, None)
    free = await scene.book(starts_at, ends_at, seat_id=seat, account=rival)
    assert free.status_code == 200
    await wait_for(lambda: _has_mail(scene, reservation_id, ("reschedule", 2)))
    assert await _mails(scene, reservation_id) == [
        ("confirmation", 1), ("reschedule", 2),
    ]  # fmt: skip


async def _has_mail(scene: Scene, reservation_id: str, wanted: tuple) -> bool:
    return wanted in await _mails(scene, reservation_id)


async def test_cancelling_a_pending_move_frees_both_slots(scene: Scene, smtp) -> None:
    path, (seat, starts_at, ends_at) = await _confirmed_booking(scene)
    reservation_id = path.rsplit("/", 1)[1]
    later = starts_at + timedelta(days=1)
    moved = await _move(scene, path, later, scene.client.headers)
    assert moved.json()["status"] == "held"

    cancelled = await scene.api.delete(path, headers=scene.client.headers)
    assert cancelled.status_code == 204
    got = await scene.api.get(path, headers=scene.client.headers)
    # it closes where staff confirmed it: the move never took effect
    assert (
        got.json()["status"], got.json()["fallback"], got.json()["starts_at"],
        got.json()["ends_at"], got.json()["seat_id"],
    ) == ("cancelled", None, _z(starts_at), _z(ends_at), str(seat))  # fmt: skip
    assert await _claimed(scene, reservation_id) == (set(), set())
    assert await _row(scene, reservation_id) == (
        "cancelled", 2, seat, starts_at, ends_at, None,
    )  # fmt: skip
    # the client was told of the slot staff confirmed, never of the move
    await wait_for(lambda: _has_mail(scene, reservation_id, ("cancellation", 2)))
    [mail] = [
        m.message
        for m in smtp.received
        if ".cancellation.v2@" in m.message["Message-ID"]
    ]
    body = mail.get_body(("plain",)).get_content()
    assert f"From:  {starts_at:%A %d %B %Y, %H:%M} UTC" in body
    assert f"{later:%A %d %B %Y}" not in body
    # support staff find it by the seat and start it was booked for
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    await handle.result()
    found = (await handle.describe()).typed_search_attributes
    assert (found.get(SEAT_ID), found.get(RESERVATION_START)) == (str(seat), starts_at)


async def test_a_staff_move_of_a_pending_move_is_their_answer(
    scene: Scene, smtp
) -> None:
    path, (seat, starts_at, ends_at) = await _confirmed_booking(scene)
    reservation_id = path.rsplit("/", 1)[1]
    await _move(scene, path, starts_at + timedelta(days=1), scene.client.headers)
    chosen = starts_at + timedelta(days=2)

    by_staff = await _move(scene, path, chosen, scene.admin.headers)

    body = by_staff.json()
    assert (body["status"], body["version"], body["fallback"]) == (
        "confirmed", 3, None,
    )  # fmt: skip
    new = (seat, chosen, chosen + timedelta(hours=1))
    assert await _claimed(scene, reservation_id) == _claims_of(new)
    assert await _row(scene, reservation_id) == ("confirmed", 3, *new, None)
    await wait_for(lambda: _has_mail(scene, reservation_id, ("reschedule", 3)))
    [mail] = [
        m.message for m in smtp.received if ".reschedule.v3@" in m.message["Message-ID"]
    ]
    assert mail["Subject"].startswith("Your booking has moved: ")


async def test_moves_while_staff_decide_keep_the_first_fallback_and_back_is_confirmed(
    scene: Scene, smtp
) -> None:
    path, (seat, starts_at, ends_at) = await _confirmed_booking(scene)
    reservation_id = path.rsplit("/", 1)[1]
    original = (seat, starts_at, ends_at)
    first = await _move(
        scene, path, starts_at + timedelta(days=1), scene.client.headers
    )
    assert (first.json()["status"], first.json()["version"]) == ("held", 2)
    second_start = starts_at + timedelta(days=2)
    second = await _move(scene, path, second_start, scene.client.headers)
    assert (second.json()["status"], second.json()["version"]) == ("held", 3)
    assert second.json()["fallback"]["starts_at"] == _z(starts_at)
    # the first move's slot is no longer held; the one staff confirmed still is
    assert await _claimed(scene, reservation_id) == _claims_of(
        original, (seat, second_start, second_start + timedelta(hours=1))
    )

    # back within what staff confirmed: nothing is left for them to answer
    back = await _move(scene, path, starts_at, scene.client.headers)
    assert back.status_code == 200
    body = back.json()
    assert (body["status"], body["version"], body["fallback"]) == ("confirmed", 4, None)
    assert body["hold_expires_at"] is None
    assert await _claimed(scene, reservation_id) == _claims_of(original)
    assert await _row(scene, reservation_id) == ("confirmed", 4, *original, None)

    # back where the client was told it is: nothing to tell them
    async def all_sent() -> bool:
        answered = await scene.api.get(path, headers=scene.client.headers)
        return answered.json()["notification_status"] == "sent"

    await wait_for(all_sent)
    assert await _mails(scene, reservation_id) == [("confirmation", 1)]

    # a shorter slot inside it is news, and mailed
    shorter = await scene.api.patch(
        path,
        json={"ends_at": (ends_at - timedelta(minutes=30)).isoformat()},
        headers=scene.client.headers,
    )
    assert (shorter.json()["status"], shorter.json()["version"]) == ("confirmed", 5)
    await wait_for(lambda: _has_mail(scene, reservation_id, ("reschedule", 5)))


async def test_a_pending_move_lapses_at_the_start_it_would_go_back_to(
    scene: Scene, smtp
) -> None:
    path, (seat, starts_at, ends_at) = await _confirmed_soon(
        scene, hold_minutes=120, hours_ahead=1
    )
    reservation_id = path.rsplit("/", 1)[1]

    later = starts_at + timedelta(days=1)
    moved = await _move(scene, path, later, scene.client.headers)
    # the hold would run two hours; the client may still come at the first start
    assert (moved.json()["status"], moved.json()["hold_expires_at"]) == (
        "held",
        _z(starts_at),
    )
    await scene.sleep(starts_at - await scene.now() - timedelta(minutes=1))
    assert await _status(scene, reservation_id) == "held"
    await scene.sleep(timedelta(minutes=2))
    await _went_back(scene, reservation_id, (seat, starts_at, ends_at), version=3)
    # the client is let in as booked
    checked_in = await scene.api.post(f"{path}/check-in", headers=scene.admin.headers)
    assert (checked_in.status_code, checked_in.json()["status"]) == (200, "checked_in")


async def _went_back(
    scene: Scene, reservation_id: str, slot: Slot, *, version: int
) -> None:
    """The move lapsed: the row and its claims are the slot staff confirmed."""
    assert await wait_for(lambda: _is(scene, reservation_id, "confirmed"))
    assert await _row(scene, reservation_id) == ("confirmed", version, *slot, None)
    assert await _claimed(scene, reservation_id) == _claims_of(slot)


async def test_the_slot_a_pending_move_keeps_is_busy_to_every_reader(
    scene: Scene,
) -> None:
    path, (seat, starts_at, ends_at) = await _confirmed_booking(scene)
    got = await scene.api.get(path, headers=scene.client.headers)
    coworking_id = uuid.UUID(got.json()["coworking_id"])
    other = await create_seat(scene.resources.pool, coworking_id, number=2)
    later = starts_at + timedelta(days=1)
    moved = await scene.api.patch(
        path,
        json={"seat_id": str(other), "starts_at": _z(later),
              "ends_at": _z(later + timedelta(hours=1))},
        headers=scene.client.headers,
    )  # fmt: skip
    assert (moved.status_code, moved.json()["status"]) == (200, "held")
    pool = scene.resources.pool

    busy = await reservation_reads.busy_intervals(
        pool, seat_ids=[seat, other], start=starts_at, end=later + timedelta(days=1)
    )
    assert busy == {
        seat: [(starts_at, ends_at)],
        other: [(later, later + timedelta(hours=1))],
    }
    assert await reservation_reads.busy_seat_ids(
        pool, seat_ids=[seat, other], at=starts_at
    ) == {seat}
    assert (
        await reservation_reads.upcoming_count(pool, seat_id=seat, now=starts_at) == 1
    )
    assert await reservation_reads.client_ids_between(
        pool, coworking_id=coworking_id, start=starts_at, end=ends_at
    ) == [scene.client.id]
    total, rows = await reservation_reads.active_overlapping(
        pool, coworking_id=coworking_id, seat_id=None, start=starts_at,
        end=later + timedelta(hours=1), limit=5,
    )  # fmt: skip
    # one reservation, named once, by the earlier of its two slots
    assert (total, [(r["seat_id"], r["starts_at"]) for r in rows]) == (
        1, [(seat, starts_at)],
    )  # fmt: skip

    gone = await scene.api.delete(
        f"/api/coworkings/{coworking_id}/seats/{seat}", headers=scene.admin.headers
    )
    assert (gone.status_code, gone.json()) == (
        409,
        {
            "error": "conflict",
            "description": "seat_id: the seat has 1 reservation to come or under way;"
            " cancel them or set the seat inactive",
        },
    )


async def test_a_row_behind_its_run_is_asked_to_go_back_once(scene: Scene) -> None:
    """A row restored from before the move cannot go back to what it never
    had: the run asks once, then lets the hold run out as before."""
    path, (seat, starts_at, ends_at) = await _confirmed_booking(scene)
    reservation_id = path.rsplit("/", 1)[1]
    moved = await _move(
        scene, path, starts_at + timedelta(days=1), scene.client.headers
    )
    assert (moved.json()["status"], moved.json()["version"]) == ("held", 2)
    await scene.resources.pool.execute(
        "UPDATE reservation.reservations SET version = 1 WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    await scene.sleep(timedelta(minutes=61))
    assert await wait_for(lambda: _is(scene, reservation_id, "expired"))
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    history = await handle.fetch_history()
    asked = [
        event
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name
        == "revert_move"
    ]
    assert len(asked) == 1


async def test_a_booking_made_before_staff_confirmation_was_turned_on_keeps_it(
    scene: Scene, smtp
) -> None:
    """The booking's own rules said auto-confirm; the coworking's say staff
    confirm by the time the client moves it: the move waits, and the booking
    stands meanwhile."""
    pool = scene.resources.pool
    coworking = await create_coworking(pool, auto_confirm=True)
    seat = await create_seat(pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=48)
    booked = await scene.book(starts_at, ends_at, seat_id=seat)
    assert booked.json()["status"] == "confirmed"
    reservation_id = booked.json()["id"]
    path = f"/api/reservations/{reservation_id}"
    await pool.execute(
        "UPDATE coworking.coworkings SET auto_confirm = false, hold_minutes = 30"
        " WHERE id = $1",
        coworking,
    )
    moved = await _move(
        scene, path, starts_at + timedelta(days=1), scene.client.headers
    )
    assert (moved.json()["status"], moved.json()["fallback"]) == (
        "held",
        {"seat_id": str(seat), "starts_at": _z(starts_at), "ends_at": _z(ends_at)},
    )
    await scene.sleep(timedelta(minutes=31))
    await _went_back(scene, reservation_id, (seat, starts_at, ends_at), version=3)


async def test_a_client_may_come_back_to_the_kept_booking_on_a_seat_closed_since(
    scene: Scene,
) -> None:
    path, (seat, starts_at, ends_at) = await _confirmed_booking(scene)
    reservation_id = path.rsplit("/", 1)[1]
    moved = await _move(
        scene, path, starts_at + timedelta(days=1), scene.client.headers
    )
    assert moved.json()["status"] == "held"
    await scene.resources.pool.execute(
        "UPDATE coworking.seats SET active = false WHERE id = $1", seat
    )

    elsewhere = await _move(
        scene, path, starts_at + timedelta(hours=2), scene.client.headers
    )
    back = await _move(scene, path, starts_at, scene.client.headers)

    # new time on the closed seat is refused; the time staff confirmed is not new
    assert (elsewhere.status_code, elsewhere.json()["error"]) == (400, "rule_violation")
    assert elsewhere.json()["description"].endswith("takes no bookings")
    assert (back.status_code, back.json()["status"], back.json()["fallback"]) == (
        200, "confirmed", None,
    )  # fmt: skip
    assert await _claimed(scene, reservation_id) == _claims_of(
        (seat, starts_at, ends_at)
    )


async def test_a_move_after_the_coworking_began_to_confirm_itself_is_confirmed(
    scene: Scene, smtp
) -> None:
    path, (seat, starts_at, ends_at) = await _confirmed_booking(scene)
    reservation_id = path.rsplit("/", 1)[1]
    first = await _move(
        scene, path, starts_at + timedelta(days=1), scene.client.headers
    )
    assert first.json()["status"] == "held"
    await scene.resources.pool.execute(
        "UPDATE coworking.coworkings SET auto_confirm = true"
        " WHERE id = (SELECT coworking_id FROM coworking.seats WHERE id = $1)",
        seat,
    )

    later = starts_at + timedelta(days=2)
    again = await _move(scene, path, later, scene.client.headers)

    # nobody is left to answer the move: it stands, and the kept booking goes
    assert (again.json()["status"], again.json()["fallback"]) == ("confirmed", None)
    new = (seat, later, later + timedelta(hours=1))
    assert await _claimed(scene, reservation_id) == _claims_of(new)
    assert await _row(scene, reservation_id) == ("confirmed", 3, *new, None)
    await wait_for(lambda: _has_mail(scene, reservation_id, ("reschedule", 3)))


# what the desk is told where a check-in cannot take the move back
_DESK_TOLD = (
    "cannot check in a held reservation: the client's move waits for staff;"
    " to check them in for the booking staff confirmed, move it back to that"
    " seat and time first (then it is confirmed), or confirm the move"
)


async def test_checking_in_at_the_kept_booking_takes_its_pending_move_back(
    scene: Scene, smtp
) -> None:
    path, (seat, starts_at, ends_at) = await _confirmed_soon(
        scene, hold_minutes=120, hours_ahead=1
    )
    reservation_id = path.rsplit("/", 1)[1]
    later = starts_at + timedelta(days=1)
    await _move(scene, path, later, scene.client.headers)
    # before its window the desk is told what to do
    early = await scene.api.post(f"{path}/check-in", headers=scene.admin.headers)
    await scene.sleep(starts_at - await scene.now() - timedelta(minutes=20))
    mailed_before = len(smtp.received)

    checked_in = await scene.api.post(f"{path}/check-in", headers=scene.admin.headers)

    assert (early.status_code, early.json()["description"]) == (409, _DESK_TOLD)
    assert (checked_in.status_code, checked_in.json()["status"]) == (200, "checked_in")
    assert (checked_in.json()["starts_at"], checked_in.json()["fallback"]) == (
        _z(starts_at), None,
    )  # fmt: skip
    assert await _row(scene, reservation_id) == (
        "checked_in", 3, seat, starts_at, ends_at, None,
    )  # fmt: skip
    # the moved-to slot is free again, and the client at the desk is mailed
    # nothing about a move they have just let go
    assert await _claimed(scene, reservation_id) == _claims_of(
        (seat, starts_at, ends_at)
    )
    await scene.sleep(timedelta(minutes=5))
    assert len(smtp.received) == mailed_before
    # the move was taken back at the desk, not left to lapse
    again = await scene.api.post(f"{path}/confirm", headers=scene.admin.headers)
    assert (again.status_code, again.json()["description"]) == (
        409, "cannot confirm a checked-in reservation",
    )  # fmt: skip


async def test_a_check_in_when_the_move_is_as_near_as_the_kept_booking_is_refused(
    scene: Scene,
) -> None:
    """Moved a quarter of an hour earlier, both starts are open to check-in:
    the client at the desk may have come for either, so staff choose."""
    path, (seat, starts_at, ends_at) = await _confirmed_soon(
        scene, hold_minutes=120, hours_ahead=1
    )
    reservation_id = path.rsplit("/", 1)[1]
    earlier = starts_at - timedelta(minutes=15)
    moved = await _move(scene, path, earlier, scene.client.headers)
    assert moved.json()["status"] == "held"
    await scene.sleep(starts_at - await scene.now() - timedelta(minutes=20))

    refused = await scene.api.post(f"{path}/check-in", headers=scene.admin.headers)

    assert (refused.status_code, refused.json()["description"]) == (409, _DESK_TOLD)
    assert (await _row(scene, reservation_id))[:2] == ("held", 2)


async def test_the_kept_booking_is_reminded_while_its_move_waits(
    scene: Scene, smtp
) -> None:
    from tests.reservations.test_reservations_lifecycle import sent

    # the hold outlasts the kept booking's reminder and ends before its start
    path, (seat, starts_at, ends_at), reminder_at = await _reminded_in_two_hours(scene)
    reservation_id = path.rsplit("/", 1)[1]
    moved = await _move(
        scene, path, starts_at + timedelta(days=1), scene.client.headers
    )
    lapses_at = datetime.fromisoformat(moved.json()["hold_expires_at"])
    assert reminder_at < lapses_at < starts_at

    await scene.sleep(reminder_at - await scene.now() + timedelta(seconds=1))
    await wait_for(lambda: _has_mail(scene, reservation_id, ("reminder", 2)))
    [reminder] = [row for row in await sent(scene, reservation_id)
                  if row["kind"] == "reminder"]  # fmt: skip
    assert reminder["due_at"] == reminder_at
    # sent at the instant, by the server's clock, not at the lapse
    assert timedelta(0) <= reminder["scheduled_at"] - reminder_at < timedelta(seconds=5)
    _reminder_names(smtp, 2, starts_at)

    await scene.sleep(lapses_at - await scene.now() + timedelta(minutes=1))
    await _went_back(scene, reservation_id, (seat, starts_at, ends_at), version=3)
    await wait_for(lambda: _has_mail(scene, reservation_id, ("reschedule", 3)))
    # one reminder of that booking, not a second one once it went back
    assert await _mails(scene, reservation_id) == [
        ("confirmation", 1), ("reminder", 2), ("reschedule", 3),
    ]  # fmt: skip


async def _kept_reminder_refused(
    scene: Scene, smtp, path: str, reminder_at: datetime
) -> str:
    """The server defers mail from just before the reminder, which is now in
    its round of attempts."""
    from tests.reservations.test_reservations_mail_faults import _mail_retrying

    reservation_id = path.rsplit("/", 1)[1]
    await wait_for(lambda: _has_mail(scene, reservation_id, ("confirmation", 1)))
    smtp.refuse_with = "451 4.3.0 try again later"
    await scene.sleep(reminder_at - await scene.now() + timedelta(seconds=1))
    await wait_for(lambda: _mail_retrying(scene, reservation_id))
    return reservation_id


async def _reminded_in_two_hours(scene: Scene) -> tuple[str, Slot, datetime]:
    """A booking staff confirmed, whose reminder comes before a client's move,
    held four hours, would lapse."""
    path, slot = await _confirmed_soon(scene, hold_minutes=240, hours_ahead=5)
    return path, slot, slot[1] - timedelta(hours=3)


def _reminder_names(smtp, version: int, starts_at: datetime) -> None:
    [mail] = [
        m.message
        for m in smtp.received
        if f".reminder.v{version}@" in m.message["Message-ID"]
    ]
    body = mail.get_body(("plain",)).get_content()
    assert f"From:  {starts_at:%A %d %B %Y, %H:%M} UTC" in body


async def test_a_reminder_retried_past_the_clients_move_goes_to_the_kept_booking(
    scene: Scene, smtp
) -> None:
    path, (seat, starts_at, ends_at), reminder_at = await _reminded_in_two_hours(scene)
    reservation_id = await _kept_reminder_refused(scene, smtp, path, reminder_at)

    moved = await _move(
        scene, path, starts_at + timedelta(days=1), scene.client.headers
    )
    assert moved.json()["status"] == "held"
    smtp.refuse_with = None
    await scene.sleep(timedelta(minutes=2))

    # the first was dropped as naming a slot that moved; the booking kept it
    await wait_for(lambda: _has_mail(scene, reservation_id, ("reminder", 2)))
    assert await _mails(scene, reservation_id) == [
        ("confirmation", 1), ("reminder", 2),
    ]  # fmt: skip
    _reminder_names(smtp, 2, starts_at)


async def test_a_kept_reminder_retried_past_the_lapse_goes_to_the_booking_back(
    scene: Scene, smtp
) -> None:
    path, (seat, starts_at, ends_at), reminder_at = await _reminded_in_two_hours(scene)
    # the move lapses a minute into the kept booking's reminder round
    hold = (reminder_at - await scene.now()) // timedelta(minutes=1) + 2
    await scene.resources.pool.execute(
        "UPDATE coworking.coworkings SET hold_minutes = $1"
        " WHERE id = (SELECT coworking_id FROM coworking.seats WHERE id = $2)",
        hold, seat,
    )  # fmt: skip
    moved = await _move(
        scene, path, starts_at + timedelta(days=1), scene.client.headers
    )
    lapses_at = datetime.fromisoformat(moved.json()["hold_expires_at"])
    assert reminder_at < lapses_at < reminder_at + timedelta(minutes=3)
    reservation_id = await _kept_reminder_refused(scene, smtp, path, reminder_at)

    await scene.sleep(lapses_at - await scene.now() + timedelta(seconds=10))
    await _went_back(scene, reservation_id, (seat, starts_at, ends_at), version=3)
    smtp.refuse_with = None
    await scene.sleep(timedelta(minutes=2))

    await wait_for(lambda: _has_mail(scene, reservation_id, ("reminder", 3)))
    assert await _mails(scene, reservation_id) == [
        ("confirmation", 1), ("reschedule", 3), ("reminder", 3),
    ]  # fmt: skip
    _reminder_names(smtp, 3, starts_at)
