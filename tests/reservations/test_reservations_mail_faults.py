import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError

from proto import reservation_pb2 as pb
from tests.reservations.conftest import Scene
from tests.reservations.test_reservations_lifecycle import (
    _details_of,
    berlin,
    sent,
    wait_for,
)


async def _kinds(scene: Scene, reservation_id: str) -> list[str]:
    return [row["kind"] for row in await sent(scene, reservation_id)]


def _handle(scene: Scene, reservation_id: str) -> WorkflowHandle:
    return scene.resources.temporal.get_workflow_handle(f"reservation-{reservation_id}")


async def _booked(scene: Scene) -> tuple[str, WorkflowHandle]:
    """A confirmed booking a day and more ahead, and its workflow."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    return reservation_id, _handle(scene, reservation_id)


async def _state(scene: Scene, reservation_id: str):
    handle = _handle(scene, reservation_id)
    from workflows.reservation import ReservationWorkflow

    return await handle.query(
        ReservationWorkflow.state, result_type=pb.ReservationState
    )


async def _notification_reaches(scene: Scene, reservation_id: str, status: int) -> None:
    async def reached() -> bool:
        return (await _state(scene, reservation_id)).notification_status == status

    await wait_for(reached)


async def test_smtp_deferring_then_accepting_delivers_one_reminder(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=8)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await wait_for(lambda: _has(scene, reservation_id, "confirmation"))

    smtp.refuse_with = "451 4.3.0 try again later"
    await scene.sleep(
        starts_at - timedelta(hours=3) - await scene.now() + timedelta(seconds=1)
    )
    await asyncio.sleep(1.5)  # a few refused attempts
    assert await _kinds(scene, reservation_id) == ["confirmation"]
    details = _details_of(_handle(scene, reservation_id))
    # support staff see a mail in its round of attempts, not only once it failed
    assert (await details()).endswith(
        ". Mail: the reminder mail is being sent; its attempts, and what"
        " failed them, show under Pending Activities"
    )
    smtp.refuse_with = None
    await scene.sleep(timedelta(minutes=2))
    await wait_for(lambda: _has(scene, reservation_id, "reminder"))
    reminders = [
        m for m in smtp.received if m.message["Subject"].startswith("Reminder")
    ]
    assert len(reminders) == 1
    assert (
        reminders[0].message["Message-ID"].strip()
        == f"<reservation-{reservation_id}.reminder.v1@tlounge.local>"
    )
    await wait_for(lambda: _lacks(details, "Mail:"))


async def _lacks(text: Callable[[], Awaitable[str]], part: str) -> bool:
    return part not in await text()


async def _has(scene: Scene, reservation_id: str, kind: str) -> bool:
    return kind in await _kinds(scene, reservation_id)


async def _booked_into_failed_mail(
    scene: Scene, smtp, *, hours_ahead: float
) -> tuple[str, datetime]:
    """A booking whose confirmation the SMTP server refused for good."""
    smtp.refuse_with = "550 5.1.1 mailbox unavailable"
    starts_at, ends_at = await scene.slot(hours_ahead=hours_ahead)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_FAILED)
    return reservation_id, starts_at


async def test_smtp_refusing_for_good_marks_failed_then_retry_signal_delivers(
    scene: Scene, smtp
) -> None:
    reservation_id, _ = await _booked_into_failed_mail(scene, smtp, hours_ahead=30)
    got = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert got.json()["notification_status"] == "failed"
    assert got.json()["status"] == "confirmed"  # the reservation itself is untouched
    assert await _kinds(scene, reservation_id) == []
    details = _details_of(
        scene.resources.temporal.get_workflow_handle(f"reservation-{reservation_id}")
    )
    # support staff read in the Temporal UI what the mail waits for
    assert (await details()).endswith(
        ". Mail: the confirmation mail failed; ops send retry_notification to"
        " try it again"
    )
    assert (await details()).startswith("Waiting for the reminder at ")

    smtp.refuse_with = None
    retry = await scene.api.post(
        f"/api/reservations/{reservation_id}/notifications/retry",
        headers=scene.admin.headers,
    )
    assert retry.status_code == 202
    await wait_for(lambda: _has(scene, reservation_id, "confirmation"))
    assert [m.message["Subject"] for m in smtp.received] == [
        "Your seat is booked: Lounge One"
    ]

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_SENT)
    assert "Mail:" not in await details()
    # nothing failed any more: a retry is refused rather than answered "requested"
    again = await scene.api.post(
        f"/api/reservations/{reservation_id}/notifications/retry",
        headers=scene.admin.headers,
    )
    assert (again.status_code, again.json()) == (
        409,
        {
            "error": "conflict",
            "description": "notification_status: sent; only a failed notification"
            " is retried",
        },
    )


@pytest.mark.uncached_workers
async def test_worker_restarted_mid_workflow_sends_each_mail_once(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=12)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await wait_for(lambda: _has(scene, reservation_id, "confirmation"))

    # fresh workers take over; the new one replays the history, it does not redo it
    await scene.restart_workers()
    await scene.sleep(
        starts_at - timedelta(hours=3) - await scene.now() + timedelta(seconds=1)
    )
    await wait_for(lambda: _has(scene, reservation_id, "reminder"))
    await scene.restart_workers()
    await scene.sleep(ends_at - await scene.now() + timedelta(seconds=1))

    async def closed() -> bool:
        handle = _handle(scene, reservation_id)
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await wait_for(closed)
    assert sorted(await _kinds(scene, reservation_id)) == ["confirmation", "reminder"]
    subjects = sorted(m.message["Subject"] for m in smtp.received)
    assert subjects == [
        f"Reminder: your seat on {berlin(starts_at):%a %d %b, %H:%M}: Lounge One",
        "Your seat is booked: Lounge One",
    ]
    assert (
        await scene.resources.pool.fetchval(
            "SELECT status FROM reservation.reservations WHERE id = $1",
            uuid.UUID(reservation_id),
        )
        == "completed"
    )


async def _attribute(scene: Scene, reservation_id: str, name: str) -> bytes:
    handle = _handle(scene, reservation_id)
    described = await handle.describe()
    fields = described.raw_description.workflow_execution_info.search_attributes
    return fields.indexed_fields[name].data


async def test_failed_mail_stays_failed_while_later_mails_wait_and_late_reminder_drops(
    scene: Scene, smtp
) -> None:
    reservation_id, starts_at = await _booked_into_failed_mail(
        scene, smtp, hours_ahead=5
    )
    # the reminder is queued behind the failed confirmation, and then the start
    # passes: ops must still see the failure, and the reminder has lost its point
    await scene.sleep(starts_at - await scene.now() + timedelta(minutes=1))
    state = await _state(scene, reservation_id)
    assert (state.notification_status, list(state.failed_mails)) == (4, [1])
    assert await _attribute(scene, reservation_id, "NotificationStatus") == (
        b'"failed"'
    )
    listed = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.admin.headers
    )
    assert listed.json()["notification_status"] == "failed"

    smtp.refuse_with = None
    retry = await scene.api.post(
        f"/api/reservations/{reservation_id}/notifications/retry",
        headers=scene.admin.headers,
    )
    assert retry.status_code == 202

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_SENT)
    assert await _kinds(scene, reservation_id) == ["confirmation"]
    assert [m.message["Subject"] for m in smtp.received] == [
        "Your seat is booked: Lounge One"
    ]


async def test_signals_from_the_ui_with_no_input_or_plain_json_are_taken(
    scene: Scene,
) -> None:
    reservation_id, handle = await _booked(scene)
    # no input at all: nothing failed, so nothing to do, and the workflow lives on
    await handle.signal("retry_notification")
    assert (await _state(scene, reservation_id)).status == 2

    # the UI's default encoding is plain JSON, in the proto's JSON names
    await handle.signal("cancel", {"reason": "water damage", "requestedBy": "ui"})

    async def cancelled() -> bool:
        row = await scene.resources.pool.fetchrow(
            "SELECT status, cancel_reason FROM reservation.reservations WHERE id = $1",
            uuid.UUID(reservation_id),
        )
        return row is not None and tuple(row) == ("cancelled", "water damage")

    await wait_for(cancelled)
    claims = await scene.resources.pool.fetchval(
        "SELECT count(*) FROM reservation.seat_claims WHERE reservation_id = $1",
        uuid.UUID(reservation_id),
    )
    assert claims == 0


async def test_a_retry_signal_typed_in_the_ui_with_any_input_is_taken(
    scene: Scene, smtp
) -> None:
    """The input box of the UI's signal form is free text; a retry is a retry."""
    reservation_id, _ = await _booked_into_failed_mail(scene, smtp, hours_ahead=30)
    handle = _handle(scene, reservation_id)
    smtp.refuse_with = None

    await handle.signal("retry_notification", "please send it again")

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_SENT)
    assert [m.message["Subject"] for m in smtp.received] == [
        "Your seat is booked: Lounge One"
    ]
    # the row-look is taken too: the run reads its row, as a local activity
    await handle.signal("look_at_row", ["not", "a", "message"])

    async def looked() -> bool:
        history = await handle.fetch_history()
        return any(
            event.marker_recorded_event_attributes.marker_name == "core_local_activity"
            and b"read_row"
            in event.marker_recorded_event_attributes.details["data"].payloads[0].data
            for event in history.events
        )

    await wait_for(looked)


async def test_signals_sent_with_several_inputs_read_the_first_and_go_on(
    scene: Scene, smtp
) -> None:
    """The CLI repeats --input; such a signal failed every workflow task, and
    the reservation could no more be moved, cancelled or closed."""
    reservation_id, _ = await _booked_into_failed_mail(scene, smtp, hours_ahead=30)
    handle = _handle(scene, reservation_id)
    smtp.refuse_with = None

    await handle.signal("look_at_row", args=["a", "b"])
    await handle.signal("retry_notification", args=[{}, "and more", 3])
    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_SENT)
    await handle.signal("cancel", args=[{"reason": "burst pipe"}, "ignored"])

    async def cancelled() -> bool:
        row = await scene.resources.pool.fetchrow(
            "SELECT status, cancel_reason FROM reservation.reservations WHERE id = $1",
            uuid.UUID(reservation_id),
        )
        return tuple(row) == ("cancelled", "burst pipe")

    await wait_for(cancelled)
    # the row is written before the mail goes out
    await wait_for(lambda: _has(scene, reservation_id, "cancellation"))
    assert await _kinds(scene, reservation_id) == ["confirmation", "cancellation"]
    failed = [
        event
        for event in (await handle.fetch_history()).events
        if event.HasField("workflow_task_failed_event_attributes")
    ]
    assert failed == []


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        # a NUL stopped the release in PostgreSQL, retried for ever
        ({"reason": "leak\x00in the\r\nroof\u202e " + "x" * 20_000},
         ("leak in the  roof  " + "x" * 200)[:200]),
        # a mail reader would decode it as an encoded word of ours
        ({"reason": "=?utf-8?q?Hi=0D=0AX?="}, "= ?utf-8?q?Hi=0D=0AX?="),
        # cut at 200, where a space fell: the API never stores one at the end
        ({"reason": "A" * 199 + " BBBBB"}, "A" * 199),
        # JSON may escape a lone surrogate, which no protobuf string holds
        ({"reason": "\ud800 lone \udfff"}, "lone"),
        # typed in the UI's input box as text: the reason
        ("the client phoned", "the client phoned"),
    ],
    ids=["controls-and-length", "encoded-word", "cut-at-a-space", "surrogates",
         "bare-text"],
)  # fmt: skip
async def test_a_signalled_cancel_reason_is_held_to_the_apis_rules(
    scene: Scene, sent: object, stored: str
) -> None:
    reservation_id, handle = await _booked(scene)

    await handle.signal("cancel", sent)

    await wait_for(lambda: _row_status_is(scene, reservation_id, "cancelled"))
    reason = await scene.resources.pool.fetchval(
        "SELECT cancel_reason FROM reservation.reservations WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    assert reason == stored
    got = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert got.json()["cancel_reason"] == stored


async def test_a_signal_whose_message_cannot_be_read_is_ignored_not_failed(
    scene: Scene,
) -> None:
    """A binary message that decodes but cannot become JSON (a timestamp past
    year 9999) raised in the handler, and failed every workflow task."""
    from google.protobuf.timestamp_pb2 import Timestamp
    from temporalio.api.common.v1 import Payload
    from temporalio.common import RawValue

    reservation_id, handle = await _booked(scene)
    unreadable = RawValue(
        Payload(
            metadata={
                "encoding": b"binary/protobuf",
                "messageType": b"google.protobuf.Timestamp",
            },
            data=Timestamp(seconds=10**15).SerializeToString(),
        )
    )
    for name in ("look_at_row", "retry_notification", "cancel"):
        await handle.signal(name, unreadable)

    # the workflow goes on: the API's cancel reaches it and closes the booking
    cancelled = await scene.api.delete(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert cancelled.status_code == 204, cancelled.text
    await wait_for(lambda: _row_status_is(scene, reservation_id, "cancelled"))
    events = (await handle.fetch_history()).events
    assert [
        e for e in events if e.HasField("workflow_task_failed_event_attributes")
    ] == []


async def test_cancel_signal_with_no_input_cancels_without_a_reason(
    scene: Scene,
) -> None:
    reservation_id, handle = await _booked(scene)
    await handle.signal("cancel")
    await wait_for(lambda: _row_status_is(scene, reservation_id, "cancelled"))
    assert (await _state(scene, reservation_id)).status == 5


async def _row_status_is(scene: Scene, reservation_id: str, status: str) -> bool:
    found = await scene.resources.pool.fetchval(
        "SELECT status FROM reservation.reservations WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    return found == status


async def test_a_mail_coming_due_behind_a_failed_one_tries_them_both_again(
    scene: Scene, smtp
) -> None:
    reservation_id, starts_at = await _booked_into_failed_mail(
        scene, smtp, hours_ahead=5
    )
    # the server recovers; nobody asks for a retry
    smtp.refuse_with = None
    reminder_at = starts_at - timedelta(hours=3)
    await scene.sleep(reminder_at - await scene.now() + timedelta(seconds=1))

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_SENT)
    rows = await sent(scene, reservation_id)
    assert [row["kind"] for row in rows] == ["confirmation", "reminder"]
    assert rows[1]["due_at"] == reminder_at
    subjects = [m.message["Subject"] for m in smtp.received]
    assert subjects[0] == "Your seat is booked: Lounge One"
    assert subjects[1].startswith("Reminder: your seat on ")
    assert len(subjects) == 2
    assert await _attribute(scene, reservation_id, "NotificationStatus") == b'"ok"'


def _mail_request(scene: Scene, reservation_id: str, kind: int, starts_at: datetime):

    request = pb.MailInput(
        reservation_id=reservation_id, kind=kind, version=1, seat_id=str(scene.seat_id)
    )
    request.starts_at.FromDatetime(starts_at)
    request.ends_at.FromDatetime(starts_at + timedelta(hours=1))
    request.due_at.FromDatetime(starts_at - timedelta(hours=3))
    return request


@pytest.mark.parametrize(
    ("change", "delivered"),
    [
        ("", True),
        # at the desk while the reminder waited out a failing server
        ("status = 'checked_in'", False),
        ("status = 'cancelled'", False),
        # moved meanwhile: the new version's reminder names the new slot
        ("version = 2", False),
    ],
    ids=["unchanged", "checked-in", "cancelled", "moved"],
)
async def test_a_reminder_retried_past_a_change_is_not_sent(
    scene: Scene, smtp, change: str, delivered: bool
) -> None:
    from temporalio.testing import ActivityEnvironment

    from activities.mail import MailActivities
    from workers import mail as mail_worker

    starts_at, ends_at = await scene.slot(hours_ahead=8)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await wait_for(lambda: sent(scene, reservation_id))
    before = len(smtp.received)
    if change:
        await scene.resources.pool.execute(
            f"UPDATE reservation.reservations SET {change} WHERE id = $1",  # noqa: S608
            uuid.UUID(reservation_id),
        )
    connections = mail_worker.smtp_connections(scene.resources.settings)
    activities = MailActivities(
        scene.resources.pool, scene.resources.settings, connections
    )
    request = _mail_request(scene, reservation_id, pb.MAIL_KIND_REMINDER, starts_at)
    try:
        result = await ActivityEnvironment().run(activities.send_mail, request)
    finally:
        await connections.close()

    assert (result.sent, result.duplicate) == (delivered, False)
    assert len(smtp.received) == before + delivered
    kinds = sorted(await _kinds(scene, reservation_id))
    assert kinds == ["confirmation"] + (["reminder"] if delivered else [])


@pytest.mark.parametrize(
    ("reply", "kind", "final", "told"),
    [
        ("550 5.1.1 no such user", "MailRejected", True, "550 5.1.1 no such user"),
        ("451 4.3.0 try again later", "MailDeferred", False,
         "451 4.3.0 try again later"),
        # a reply of several lines is told on one, for one log line
        ("550-5.7.1 first line\r\n550 5.7.1 second line", "MailRejected", True,
         "550 5.7.1 first line / 5.7.1 second line"),
    ],
    ids=["refused", "deferred", "several-lines"],
)  # fmt: skip
async def test_a_recipient_refused_at_rcpt_is_told_apart_from_a_server_down(
    scene: Scene, smtp, reply: str, kind: str, final: bool, told: str
) -> None:
    from temporalio.testing import ActivityEnvironment

    from activities.mail import MailActivities
    from workers import mail as mail_worker

    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await wait_for(lambda: sent(scene, reservation_id))
    smtp.refuse_recipient_with = reply
    connections = mail_worker.smtp_connections(scene.resources.settings)
    activities = MailActivities(
        scene.resources.pool, scene.resources.settings, connections
    )
    request = _mail_request(scene, reservation_id, pb.MAIL_KIND_REMINDER, starts_at)
    try:
        with pytest.raises(ApplicationError) as refused:
            await ActivityEnvironment().run(activities.send_mail, request)
    finally:
        await connections.close()

    assert (refused.value.type, refused.value.non_retryable) == (kind, final)
    # the code with the server's own words, which say what to fix
    assert refused.value.message.endswith(f"recipient: {told}")


async def _rounds_failed(scene: Scene, reservation_id: str) -> list[datetime]:
    """When each round of a mail's attempts ran out, from the history."""
    from temporalio.api.enums.v1 import EventType

    handle = _handle(scene, reservation_id)
    return [
        event.event_time.ToDatetime(tzinfo=UTC)
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
        and _failure_type(event) != "MailSuperseded"
    ]


def _failure_type(event) -> str:
    failure = event.activity_task_failed_event_attributes.failure
    return failure.application_failure_info.type


async def _superseded(scene: Scene, reservation_id: str) -> list[str]:
    """The messages of the mail attempts that gave way to a newer slot."""
    from temporalio.api.enums.v1 import ApplicationErrorCategory, EventType

    failures = [
        event.activity_task_failed_event_attributes.failure
        async for event in _handle(scene, reservation_id).fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
        and _failure_type(event) == "MailSuperseded"
    ]
    benign = ApplicationErrorCategory.APPLICATION_ERROR_CATEGORY_BENIGN
    assert all(f.application_failure_info.category == benign for f in failures)
    return [failure.message for failure in failures]


async def _move(scene: Scene, reservation_id: str, starts_at: datetime) -> None:
    moved = await scene.api.patch(
        f"/api/reservations/{reservation_id}",
        json={
            "starts_at": starts_at.isoformat(),
            "ends_at": (starts_at + timedelta(hours=1)).isoformat(),
        },
        headers=scene.client.headers,
    )
    assert moved.status_code == 200, moved.text


def _the_one_invitation(smtp, starts_at: datetime) -> None:
    """One mail, the confirmation, naming the slot the booking moved to."""
    from icalendar import Calendar

    [received] = [m.message for m in smtp.received]
    assert received["Subject"] == "Your seat is booked: Lounge One"
    text = received.get_body(preferencelist=("plain",)).get_content()
    start = berlin(starts_at)
    assert f"From:  {start:%A %d %B %Y, %H:%M %Z}" in text
    [part] = list(received.iter_attachments())
    [event] = Calendar.from_ical(part.get_content()).walk("VEVENT")
    assert event.decoded("dtstart") == starts_at
    assert event.decoded("sequence") == 2


async def test_a_move_during_a_failing_confirmation_round_sends_one_confirmation(
    scene: Scene, smtp
) -> None:
    from workflows.reservation import MAILS_BEHIND_PAUSE

    smtp.refuse_with = "451 4.3.0 try again later"
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    # moved while the confirmation is still in its round of attempts
    later = starts_at + timedelta(hours=2)
    await _move(scene, reservation_id, later)
    await scene.sleep(timedelta(minutes=4))

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_FAILED)
    # the server comes back; nobody asks for a retry and no later mail comes due
    smtp.refuse_with = None
    assert await sent(scene, reservation_id) == []
    await scene.sleep(MAILS_BEHIND_PAUSE + timedelta(seconds=5))

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_SENT)
    rows = await sent(scene, reservation_id)
    assert [(row["kind"], row["version"]) for row in rows] == [("confirmation", 2)]
    round_failed = await _rounds_failed(scene, reservation_id)
    assert len(round_failed) == 1
    waited = rows[0]["scheduled_at"] - round_failed[0]
    assert MAILS_BEHIND_PAUSE <= waited < MAILS_BEHIND_PAUSE + timedelta(seconds=5)
    _the_one_invitation(smtp, later)


async def _booked_while_mail_is_refused(scene: Scene, smtp) -> tuple[str, datetime]:
    """A booking whose confirmation the server has deferred at least once."""
    smtp.refuse_with = "451 4.3.0 try again later"
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await wait_for(lambda: _mail_retrying(scene, reservation_id))
    return reservation_id, starts_at


async def _mail_retrying(scene: Scene, reservation_id: str) -> bool:
    """Its mail has been refused at least once and waits for its next attempt."""
    described = await _handle(scene, reservation_id).describe()
    return any(
        pending.activity_type.name == "send_mail" and pending.attempt >= 2
        for pending in described.raw_description.pending_activities
    )


async def test_a_move_while_a_confirmation_is_retried_sends_it_once_for_the_new_slot(
    scene: Scene, smtp, caplog: pytest.LogCaptureFixture
) -> None:
    reservation_id, starts_at = await _booked_while_mail_is_refused(scene, smtp)
    later = starts_at + timedelta(hours=2)

    await _move(scene, reservation_id, later)
    # the server is back well inside the round: the next attempt would deliver
    smtp.refuse_with = None
    await scene.sleep(timedelta(minutes=2))

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_SENT)
    rows = await sent(scene, reservation_id)
    assert [(row["kind"], row["version"]) for row in rows] == [("confirmation", 2)]
    assert await _rounds_failed(scene, reservation_id) == []
    assert await _superseded(scene, reservation_id) == ["version 1 has moved on to 2"]
    _the_one_invitation(smtp, later)
    # an expected turn, not a fault: the worker's log warns only of the deferrals
    warned = [r.exc_info[1] for r in caplog.records
              if r.levelno >= logging.WARNING and r.exc_info]  # fmt: skip
    assert "MailDeferred" in {getattr(error, "type", None) for error in warned}
    assert "MailSuperseded" not in {getattr(error, "type", None) for error in warned}


async def test_a_confirmation_retried_past_a_move_waiting_for_staff_is_still_sent(
    scene: Scene, smtp
) -> None:
    """A move waiting for staff has no mail of its own: the confirmation of the
    booking it would go back to still tells the client what they hold."""
    from tests.reservations.test_reservations_staff import _book_where_staff_confirm

    reservation_id, starts_at, _ = await _book_where_staff_confirm(scene)
    path = f"/api/reservations/{reservation_id}"
    smtp.refuse_with = "451 4.3.0 try again later"
    confirmed = await scene.api.post(f"{path}/confirm", headers=scene.admin.headers)
    assert confirmed.json()["status"] == "confirmed"
    await wait_for(lambda: _mail_retrying(scene, reservation_id))

    await _move(scene, reservation_id, starts_at + timedelta(days=1))
    smtp.refuse_with = None
    await scene.sleep(timedelta(minutes=2))

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_SENT)
    rows = await sent(scene, reservation_id)
    assert [(row["kind"], row["version"]) for row in rows] == [("confirmation", 1)]
    [received] = [m.message for m in smtp.received]
    text = received.get_body(preferencelist=("plain",)).get_content()
    assert f"From:  {starts_at:%A %d %B %Y, %H:%M} UTC" in text


async def test_a_confirmation_retried_past_a_cancel_is_not_sent(
    scene: Scene, smtp
) -> None:
    reservation_id, _ = await _booked_while_mail_is_refused(scene, smtp)

    cancelled = await scene.api.delete(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert cancelled.status_code == 204
    smtp.refuse_with = None
    await scene.sleep(timedelta(minutes=2))

    await wait_for(lambda: _has(scene, reservation_id, "cancellation"))
    rows = await sent(scene, reservation_id)
    assert [(row["kind"], row["version"]) for row in rows] == [("cancellation", 1)]
    assert [m.message["Subject"].split(":")[0] for m in smtp.received] == [
        "Your booking is cancelled"
    ]


async def test_a_move_after_a_failed_confirmation_sends_one_confirmation_at_once(
    scene: Scene, smtp
) -> None:
    reservation_id, starts_at = await _booked_into_failed_mail(
        scene, smtp, hours_ahead=30
    )
    smtp.refuse_with = None
    later = starts_at + timedelta(hours=3)

    await _move(scene, reservation_id, later)

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_SENT)
    rows = await sent(scene, reservation_id)
    assert [(row["kind"], row["version"]) for row in rows] == [("confirmation", 2)]
    _the_one_invitation(smtp, later)


async def test_a_reminder_behind_a_failed_round_is_tried_again_before_the_start(
    scene: Scene, smtp
) -> None:
    await scene.resources.pool.execute(
        "UPDATE coworking.coworkings SET reminder_lead_minutes = 6 WHERE id = $1",
        scene.coworking_id,
    )
    starts_at, ends_at = await scene.slot(hours_ahead=2)
    await scene.sleep(starts_at - timedelta(minutes=7) - await scene.now())
    smtp.refuse_with = "451 4.3.0 try again later"
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    # the reminder comes due a minute on, while the confirmation is refused
    await scene.sleep(timedelta(minutes=4))

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_FAILED)
    smtp.refuse_with = None
    await scene.sleep(timedelta(minutes=4))

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_SENT)
    rows = await sent(scene, reservation_id)
    assert [row["kind"] for row in rows] == ["confirmation", "reminder"]
    assert rows[1]["due_at"] == starts_at - timedelta(minutes=6)
    round_failed = await _rounds_failed(scene, reservation_id)
    assert len(round_failed) == 1
    # half the time left before the start, not the usual ten minutes
    halfway = round_failed[0] + (starts_at - round_failed[0]) / 2
    assert abs(rows[0]["scheduled_at"] - halfway) < timedelta(seconds=2)
    assert rows[1]["scheduled_at"] < starts_at
    assert len(smtp.received) == 2


async def test_a_cancelled_reservation_shows_its_failed_mail_until_it_is_sent(
    scene: Scene, smtp
) -> None:
    reservation_id, _ = await _booked(scene)
    await wait_for(lambda: _has(scene, reservation_id, "confirmation"))
    path = f"/api/reservations/{reservation_id}"
    smtp.refuse_with = "550 5.1.1 mailbox unavailable"
    cancelled = await scene.api.delete(path, headers=scene.client.headers)
    assert cancelled.status_code == 204

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_FAILED)
    seen = (await scene.api.get(path, headers=scene.admin.headers)).json()
    assert (seen["status"], seen["notification_status"]) == ("cancelled", "failed")
    # closed, it waits a week for ops, and the history says until when
    from temporalio.api.enums.v1 import EventType

    from workflows.reservation import FAILED_MAIL_PATIENCE

    patience = [
        (event.event_time.ToDatetime(tzinfo=UTC), event.user_metadata.summary.data)
        async for event in _handle(scene, reservation_id).fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        and b"give up" in event.user_metadata.summary.data
    ]
    assert len(patience) == 1
    # the event is written a moment after the workflow task read its clock
    given_up = [
        patience[0][0] + FAILED_MAIL_PATIENCE - timedelta(seconds=s) for s in (0, 1)
    ]
    assert patience[0][1] in {
        f'"give up on undelivered mail {at:%Y-%m-%d %H:%M} UTC"'.encode()
        for at in given_up
    }

    smtp.refuse_with = None
    retry = await scene.api.post(
        f"{path}/notifications/retry", headers=scene.admin.headers
    )
    assert retry.status_code == 202

    async def closed() -> bool:
        handle = _handle(scene, reservation_id)
        return (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await wait_for(closed)
    after = (await scene.api.get(path, headers=scene.client.headers)).json()
    assert (after["status"], after["notification_status"]) == ("cancelled", None)
    assert await _kinds(scene, reservation_id) == ["confirmation", "cancellation"]


async def test_mail_past_the_recipients_limit_waits_its_turn_and_a_flood_folds(
    scene: Scene, smtp
) -> None:
    from tests.factories import create_coworking, create_seat
    from workflows.reservation import MAIL_TURN_PAUSE

    settings = scene.resources.settings
    limit = settings.mail_recipient_limit
    window = timedelta(minutes=settings.mail_recipient_window_minutes)
    coworking = await create_coworking(
        scene.resources.pool, max_active_per_client=limit + 5
    )
    seat = await create_seat(scene.resources.pool, coworking)
    booked = []
    for day in range(limit + 2):
        starts_at, ends_at = await scene.slot(hours_ahead=30 + 24 * day)
        booked.append((await scene.book(starts_at, ends_at, seat_id=seat)).json())
    first, late = booked[0], booked[limit]
    ids = [uuid.UUID(b["id"]) for b in booked]
    await wait_for(lambda: _sent_count(scene, ids, limit))
    # a script moving one booking again and again while the rest wait
    for minutes in (15, 30, 45):
        moved = await _move_by(scene, first, timedelta(minutes=minutes))
        assert moved.status_code == 200
    assert (await _move_by(scene, late, timedelta(hours=1))).status_code == 200
    await scene.sleep(timedelta(seconds=30))
    assert len(smtp.received) == limit
    details = _details_of(
        scene.resources.temporal.get_workflow_handle(f"reservation-{ids[-1]}")
    )
    said = await details()
    held = ". Mail: the confirmation mail waits for its recipient's turn; tried again "
    assert held in said, said
    again = datetime.strptime(said.split(held)[1], "%Y-%m-%d %H:%M:%S UTC")
    now = await scene.now()
    assert now < again.replace(tzinfo=UTC) <= now + MAIL_TURN_PAUSE

    await scene.sleep(window + MAIL_TURN_PAUSE)
    await wait_for(lambda: _sent_count(scene, ids, limit + 3))
    rows = await scene.resources.pool.fetch(
        "SELECT reservation_id::text AS id, kind, version, scheduled_at"
        " FROM notifications.sent_mail WHERE reservation_id = ANY($1)"
        " ORDER BY scheduled_at, message_id",
        ids,
    )
    on_time, waited = rows[:limit], rows[limit:]
    assert "Mail:" not in await details()
    assert [(r["id"], r["kind"], r["version"]) for r in on_time] == [
        (b["id"], "confirmation", 1) for b in booked[:limit]
    ]
    # the three moves came to one mail; the late confirmation names its move
    assert sorted((r["id"], r["kind"], r["version"]) for r in waited) == sorted([
        (first["id"], "reschedule", 4),
        (late["id"], "confirmation", 2),
        (booked[limit + 1]["id"], "confirmation", 1),
    ])  # fmt: skip
    opened = on_time[0]["scheduled_at"] + window
    for row in waited:
        assert opened <= row["scheduled_at"] < opened + MAIL_TURN_PAUSE * 2
    assert len(smtp.received) == limit + 3


async def _sent_count(scene: Scene, ids: list[uuid.UUID], count: int) -> bool:
    sent_now = await scene.resources.pool.fetchval(
        "SELECT count(*) FROM notifications.sent_mail WHERE reservation_id = ANY($1)",
        ids,
    )
    return bool(sent_now >= count)


async def _move_by(scene: Scene, booking: dict, by: timedelta) -> object:
    starts_at = datetime.fromisoformat(booking["starts_at"]) + by
    ends_at = datetime.fromisoformat(booking["ends_at"]) + by
    return await scene.api.patch(
        f"/api/reservations/{booking['id']}",
        json={"starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat()},
        headers=scene.client.headers,
    )


async def test_a_backlog_picked_up_at_once_takes_only_the_turns_there_are(
    scene: Scene, smtp
) -> None:
    """Mails for one address that wait out a stopped worker all start together
    when it comes back: counting what was sent let every one of them through,
    and turns dated when the attempts were scheduled ran out early."""
    import dataclasses

    from temporalio.testing import ActivityEnvironment

    from activities.mail import MailActivities
    from workers import mail as mail_worker

    settings = scene.resources.settings
    limit = settings.mail_recipient_limit
    starts_at, _ = await scene.slot(hours_ahead=30)
    reservation_ids = [str(uuid.uuid4()) for _ in range(limit + 3)]
    for day, reservation_id in enumerate(reservation_ids):
        await scene.resources.pool.execute(
            "INSERT INTO reservation.reservations (id, client_id, seat_id,"
            " coworking_id, starts_at, ends_at, status)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'confirmed')",
            uuid.UUID(reservation_id), scene.client.id, scene.seat_id,
            scene.coworking_id, starts_at + timedelta(days=day),
            starts_at + timedelta(days=day, hours=1),
        )  # fmt: skip
    connections = mail_worker.smtp_connections(settings)
    activities = MailActivities(scene.resources.pool, settings, connections)
    back_at = await scene.now()

    async def remind(
        reservation_id: str, scheduled: datetime, started: datetime
    ) -> str:
        environment = ActivityEnvironment()
        environment.info = dataclasses.replace(
            environment.info,
            current_attempt_scheduled_time=scheduled,
            started_time=started,
        )
        request = _mail_request(scene, reservation_id, pb.MAIL_KIND_REMINDER, starts_at)
        try:
            result = await environment.run(activities.send_mail, request)
        except ApplicationError as refused:
            return refused.type or ""
        return "sent" if result.sent else "not sent"

    try:
        # due twenty minutes ago, all picked up as the worker comes back
        due = back_at - timedelta(minutes=20)
        told = await asyncio.gather(*(remind(r, due, back_at) for r in reservation_ids))
        assert sorted(told) == ["MailThrottled"] * 3 + ["sent"] * limit
        # tried again a few seconds on: the window began when they went out
        later = back_at + timedelta(seconds=5)
        retried = [r for r, said in zip(reservation_ids, told, strict=True)
                   if said == "MailThrottled"]  # fmt: skip
        again = await asyncio.gather(*(remind(r, later, later) for r in retried))
        assert again == ["MailThrottled"] * 3
    finally:
        await connections.close()
    assert len(smtp.received) == limit


async def test_a_mail_whose_client_changed_address_between_attempts_takes_a_turn_there(
    scene: Scene, smtp
) -> None:
    import dataclasses

    from temporalio.testing import ActivityEnvironment

    from activities.mail import MailActivities
    from workers import mail as mail_worker

    settings = scene.resources.settings
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = str(uuid.uuid4())
    await scene.resources.pool.execute(
        "INSERT INTO reservation.reservations (id, client_id, seat_id,"
        " coworking_id, starts_at, ends_at, status)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'confirmed')",
        uuid.UUID(reservation_id), scene.client.id, scene.seat_id,
        scene.coworking_id, starts_at, ends_at,
    )  # fmt: skip
    connections = mail_worker.smtp_connections(settings)
    activities = MailActivities(scene.resources.pool, settings, connections)
    environment = ActivityEnvironment()
    environment.info = dataclasses.replace(
        environment.info,
        current_attempt_scheduled_time=await scene.now(),
        started_time=await scene.now(),
    )
    request = _mail_request(scene, reservation_id, pb.MAIL_KIND_REMINDER, starts_at)
    try:
        # the first attempt takes its turn, then the server defers it
        smtp.refuse_with = "451 4.3.0 try again later"
        with pytest.raises(ApplicationError):
            await environment.run(activities.send_mail, request)
        await scene.resources.pool.execute(
            "UPDATE client.clients SET email = 'ada.new@example.com',"
            " email_key = 'ada.new@example.com' WHERE id = $1",
            scene.client.id,
        )
        smtp.refuse_with = None
        result = await environment.run(activities.send_mail, request)
    finally:
        await connections.close()

    assert result.sent
    [received] = smtp.received
    assert received.envelope_to == ["ada.new@example.com"]
    turns = await scene.resources.pool.fetch(
        "SELECT recipient_key FROM notifications.mail_turns"
    )
    assert [row["recipient_key"] for row in turns] == ["ada.new@example.com"]


@pytest.mark.parametrize(
    ("address", "box"),
    [
        ("Flood+1@Example.com", "flood@example.com"),
        ("flood+a+b@example.com", "flood@example.com"),
        ("+only@example.com", "+only@example.com"),
        ("f.l.o.o.d+x@googlemail.com", "flood@gmail.com"),
        ("f.lood@example.com", "f.lood@example.com"),
        ("flood@example.com", "flood@example.com"),
    ],
)
def test_the_mailbox_an_address_reaches(address: str, box: str) -> None:
    from activities.mail import mailbox_key

    assert mailbox_key(address) == box


async def test_subaddresses_of_one_mailbox_share_its_turns(scene: Scene) -> None:
    """An account per `+tag` of someone's address got a window per account."""
    from activities.mail import MailActivities

    settings = scene.resources.settings
    limit = settings.mail_recipient_limit
    activities = MailActivities(scene.resources.pool, settings, None)  # type: ignore[arg-type]
    at = await scene.now()
    taken = [
        await activities._take_turn(f"<m{n}@t>", f"victim+{n}@example.com", at)
        for n in range(limit)
    ]
    plain = await activities._take_turn("<plain@t>", "Victim@example.com", at)
    other = await activities._take_turn("<other@t>", "someone@example.com", at)
    assert (taken, plain, other) == ([True] * limit, False, True)
    keys = await scene.resources.pool.fetch(
        "SELECT DISTINCT recipient_key FROM notifications.mail_turns"
        " WHERE message_id LIKE '<m%'"
    )
    assert [row["recipient_key"] for row in keys] == ["victim@example.com"]


async def test_a_retry_signal_the_converter_cannot_read_is_still_a_retry(
    scene: Scene, smtp
) -> None:
    """The UI's signal form offers encodings the converter cannot read alone
    (json/protobuf wants a message type); such a signal was dropped with an
    error in the worker's log while the sender was told it went through."""
    from temporalio.api.common.v1 import Payload
    from temporalio.common import RawValue

    reservation_id, _ = await _booked_into_failed_mail(scene, smtp, hours_ahead=30)
    handle = _handle(scene, reservation_id)
    smtp.refuse_with = None

    def unreadable(**metadata: bytes) -> RawValue:
        return RawValue(Payload(metadata=metadata, data=b'{"requestedBy": "ops:me"}'))

    for payload in (
        unreadable(encoding=b"json/protobuf"),
        unreadable(encoding=b"json/protobuf", messageType=b"tlounge.Nope"),
        unreadable(encoding=b"foo/bar"),
    ):
        await handle.signal("retry_notification", payload)

    await _notification_reaches(scene, reservation_id, pb.NOTIFICATION_STATUS_SENT)
    # then a readable one finds nothing failed and sends nothing more
    await handle.signal("retry_notification")
    # a cancel that cannot be read is ignored, never taken with no reason
    await handle.signal("cancel", unreadable(encoding=b"foo/bar"))
    assert (await _state(scene, reservation_id)).status == 2
    await handle.signal("cancel", {"reason": "burst pipe"})

    await wait_for(lambda: _row_status_is(scene, reservation_id, "cancelled"))
    await wait_for(lambda: _has(scene, reservation_id, "cancellation"))
    assert [m.message["Subject"] for m in smtp.received] == [
        "Your seat is booked: Lounge One",
        "Your booking is cancelled: Lounge One",
    ]
    assert await _kinds(scene, reservation_id) == ["confirmation", "cancellation"]
    events = (await handle.fetch_history()).events
    assert [
        e for e in events if e.HasField("workflow_task_failed_event_attributes")
    ] == []
