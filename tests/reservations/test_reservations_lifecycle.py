import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle

from proto import reservation_pb2 as pb
from tests.reservations.conftest import Scene


def berlin(at: datetime) -> datetime:
    return at.astimezone(ZoneInfo("Europe/Berlin"))


async def wait_for(
    check: Callable[[], Awaitable[object]], *, timeout: float = 45.0
) -> object:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def sent(scene: Scene, reservation_id: str) -> list[dict]:
    rows = await scene.resources.pool.fetch(
        "SELECT kind, version, due_at, scheduled_at, message_id"
        " FROM notifications.sent_mail"
        " WHERE reservation_id = $1 ORDER BY scheduled_at, kind",
        uuid.UUID(reservation_id),
    )
    return [dict(row) for row in rows]


async def test_book_confirmed_reminder_sent_at_start_minus_lead(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=26)
    response = await scene.book(starts_at, ends_at)
    reservation_id = response.json()["id"]

    rows = await wait_for(lambda: sent(scene, reservation_id))
    assert [(r["kind"], r["version"]) for r in rows] == [("confirmation", 1)]
    confirmation = smtp.received[0].message
    assert confirmation["To"] == "Ada Lovelace <ada@example.com>"
    assert (
        confirmation["Message-ID"]
        == f"<reservation-{reservation_id}.confirmation.v1@tlounge.local>"
    )
    invite = next(part for part in confirmation.iter_attachments())
    assert invite.get_content_type() == "text/calendar"
    event = Calendar.from_ical(invite.get_content()).walk("VEVENT")[0]
    assert event.decoded("dtstart") == starts_at
    assert str(event.decoded("dtstart").tzinfo) == "Europe/Berlin"

    # skip the server clock to just past the reminder instant
    await scene.sleep(
        starts_at - timedelta(hours=3) - await scene.now() + timedelta(seconds=1)
    )
    rows = await wait_for(lambda: _kinds(scene, reservation_id, "reminder"))
    reminder = rows[0]
    assert reminder["due_at"] == starts_at - timedelta(hours=3)
    # the server clock when the workflow asked for the send: the timer's instant
    assert (
        timedelta(0)
        <= reminder["scheduled_at"] - (starts_at - timedelta(hours=3))
        < timedelta(seconds=1)
    )
    assert [m.message["Subject"] for m in smtp.received] == [
        "Your seat is booked: Lounge One",
        f"Reminder: your seat on {berlin(starts_at):%a %d %b, %H:%M}: Lounge One",
    ]


async def _kinds(scene: Scene, reservation_id: str, kind: str) -> list[dict]:
    return [row for row in await sent(scene, reservation_id) if row["kind"] == kind]


async def test_book_two_hours_ahead_reminder_sent_at_once(scene: Scene, smtp) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=2)
    booked_at = await scene.now()
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    rows = await wait_for(lambda: _kinds(scene, reservation_id, "reminder"))
    assert rows[0]["due_at"] == starts_at - timedelta(hours=3)
    assert booked_at <= rows[0]["scheduled_at"] < booked_at + timedelta(seconds=30)


async def test_cancel_before_reminder_releases_seat_and_sends_no_reminder(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await wait_for(lambda: _kinds(scene, reservation_id, "confirmation"))

    response = await scene.api.delete(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert response.status_code == 204
    row = await scene.resources.pool.fetchrow(
        "SELECT status FROM reservation.reservations WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    assert row["status"] == "cancelled"
    assert (
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM reservation.seat_claims WHERE reservation_id = $1",
            uuid.UUID(reservation_id),
        )
        == 0
    )
    await wait_for(lambda: _kinds(scene, reservation_id, "cancellation"))
    # the slot is free again for someone else
    again = await scene.book(starts_at, ends_at)
    assert again.status_code == 200, again.text

    await scene.sleep(timedelta(hours=30))
    kinds = [row["kind"] for row in await sent(scene, reservation_id)]
    assert kinds == ["confirmation", "cancellation"]
    got = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    assert got.status_code == 200
    assert got.json()["cancelled"] is True and got.json()["status"] == "cancelled"


async def test_reschedule_moves_reminder_and_keeps_old_slot_until_new_holds(
    scene: Scene, smtp
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=10)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await wait_for(lambda: _kinds(scene, reservation_id, "confirmation"))
    new_start, new_end = starts_at + timedelta(hours=5), ends_at + timedelta(hours=5)

    response = await scene.api.patch(
        f"/api/reservations/{reservation_id}",
        json={
            "starts_at": new_start.isoformat(),
            "ends_at": new_end.isoformat(),
            "seat_id": str(scene.other_seat_id),
        },
        headers=scene.client.headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["starts_at"], body["seat_id"], body["version"]) == (
        new_start.isoformat().replace("+00:00", "Z"),
        str(scene.other_seat_id),
        2,
    )
    # the move's mail is queued by the time the update answers, as a GET shows
    assert body["notification_status"] == "pending"
    seats = await scene.resources.pool.fetch(
        "SELECT DISTINCT seat_id FROM reservation.seat_claims"
        " WHERE reservation_id = $1",
        uuid.UUID(reservation_id),
    )
    assert [row["seat_id"] for row in seats] == [scene.other_seat_id]
    await wait_for(lambda: _kinds(scene, reservation_id, "reschedule"))

    # past the old reminder instant, nothing; at the new one, the reminder of version 2
    await scene.sleep(
        starts_at - timedelta(hours=3) - await scene.now() + timedelta(minutes=1)
    )
    await asyncio.sleep(0.3)
    assert await _kinds(scene, reservation_id, "reminder") == []
    await scene.sleep(
        new_start - timedelta(hours=3) - await scene.now() + timedelta(seconds=1)
    )
    rows = await wait_for(lambda: _kinds(scene, reservation_id, "reminder"))
    assert rows[0]["version"] == 2
    assert (
        timedelta(0)
        <= rows[0]["scheduled_at"] - (new_start - timedelta(hours=3))
        < timedelta(seconds=1)
    )


async def test_reschedule_onto_taken_slot_answers_409_and_changes_nothing(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=40)
    from tests.factories import create_client

    rival = await create_client(scene.resources.pool, scene.resources.settings)
    taken = await scene.book(
        starts_at + timedelta(hours=2), ends_at + timedelta(hours=2), account=rival
    )
    assert taken.status_code == 200
    mine = (await scene.book(starts_at, ends_at)).json()
    response = await scene.api.patch(
        f"/api/reservations/{mine['id']}",
        json={
            "starts_at": (starts_at + timedelta(hours=2)).isoformat(),
            "ends_at": (ends_at + timedelta(hours=2)).isoformat(),
        },
        headers=scene.client.headers,
    )
    assert response.status_code == 409
    assert response.json()["description"].startswith("seat: already booked from")
    row = await scene.resources.pool.fetchrow(
        "SELECT starts_at, version FROM reservation.reservations WHERE id = $1",
        uuid.UUID(mine["id"]),
    )
    assert (row["starts_at"], row["version"]) == (starts_at, 1)
    claims = await scene.resources.pool.fetchval(
        "SELECT count(*) FROM reservation.seat_claims WHERE reservation_id = $1",
        uuid.UUID(mine["id"]),
    )
    assert claims == 12


async def test_reschedule_onto_the_same_seat_and_slot_changes_nothing_and_mails_nobody(
    scene: Scene, smtp
) -> None:
    from zoneinfo import ZoneInfo

    starts_at, ends_at = await scene.slot(hours_ahead=30)
    booked = (await scene.book(starts_at, ends_at)).json()
    await wait_for(lambda: sent(scene, booked["id"]))
    mails = len(smtp.received)
    berlin = ZoneInfo("Europe/Berlin")

    for body in (
        {"starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat()},
        # the same instants written in local time, with the seat named
        {
            "seat_id": str(scene.seat_id),
            "starts_at": starts_at.astimezone(berlin).isoformat(),
        },
    ):
        response = await scene.api.patch(
            f"/api/reservations/{booked['id']}", json=body, headers=scene.client.headers
        )
        assert response.status_code == 200, response.text
        assert response.json() == {**booked, "notification_status": "sent"}

    await asyncio.sleep(0.5)
    assert len(smtp.received) == mails
    assert [row["kind"] for row in await sent(scene, booked["id"])] == ["confirmation"]
    row = await scene.resources.pool.fetchrow(
        "SELECT version FROM reservation.reservations WHERE id = $1",
        uuid.UUID(booked["id"]),
    )
    assert row["version"] == 1


async def _morning_in_two_days(scene: Scene) -> tuple[datetime, datetime]:
    """08:00 to 09:00 on Berlin's clock two days on: a span over midnight
    reads otherwise, whatever hour the suite runs at."""
    day = berlin(await scene.now() + timedelta(days=2))
    starts_at = day.replace(hour=8, minute=0, second=0, microsecond=0)
    return starts_at, starts_at + timedelta(hours=1)


async def test_reschedule_is_told_in_the_current_details_in_local_time(
    scene: Scene,
) -> None:
    from zoneinfo import ZoneInfo

    starts_at, ends_at = await _morning_in_two_days(scene)
    rid = (await scene.book(starts_at, ends_at)).json()["id"]
    later = starts_at + timedelta(hours=2)
    moved = await scene.api.patch(
        f"/api/reservations/{rid}",
        json={"seat_id": str(scene.other_seat_id), "starts_at": later.isoformat()},
        headers=scene.client.headers,
    )
    assert moved.status_code == 200, moved.text
    name = await scene.resources.pool.fetchval(
        "SELECT name || ' ' || surname FROM client.clients WHERE id = $1",
        scene.client.id,
    )
    start = later.astimezone(ZoneInfo("Europe/Berlin"))
    end = start + (ends_at - starts_at)
    handle = scene.resources.temporal.get_workflow_handle(f"reservation-{rid}")

    details = _details_of(handle)

    await wait_for(lambda: _starts_with(details, "Moved: "))
    assert (await details()).startswith(
        f"Moved: {name} · seat 2 at Lounge One"
        f" · {start:%a %d %b %Y %H:%M}–{end:%H:%M} {start:%Z}. Waiting for "
    )


async def _summary_for(
    scene: Scene, *, name: str, surname: str
) -> tuple[str | None, datetime, datetime]:
    """The Temporal UI summary of a morning booked by a client of that name."""
    from tests.factories import create_client

    client = await create_client(
        scene.resources.pool, scene.resources.settings, name=name, surname=surname
    )
    starts_at, ends_at = await _morning_in_two_days(scene)
    rid = (await scene.book(starts_at, ends_at, account=client)).json()["id"]
    handle = scene.resources.temporal.get_workflow_handle(f"reservation-{rid}")
    return await (await handle.describe()).static_summary(), starts_at, ends_at


async def test_a_name_in_markdown_reaches_the_temporal_ui_summary_as_text(
    scene: Scene,
) -> None:
    summary, starts_at, ends_at = await _summary_for(
        scene, name="[x](//ev.io) {workflowId}", surname="<b>hi</b> &lt;i&gt;"
    )
    start = berlin(starts_at)
    assert summary == (
        r"Booked: \[x\](//ev.io) \{workflowId\} \<b\>hi\</b\> \&lt;i\&gt;"
        " · seat 1 at Lounge One"
        f" · {start:%a %d %b %Y %H:%M}–{berlin(ends_at):%H:%M} {start:%Z}"
    )


async def test_a_web_address_in_a_name_reaches_the_summary_as_no_link(
    scene: Scene,
) -> None:
    summary, _, _ = await _summary_for(
        scene, name="www.ev.io", surname="https://ev.io x@ev.io"
    )
    assert summary is not None
    assert summary.split(" · ")[0] == r"Booked: www\.ev.io https\://ev.io x\@ev.io"


async def test_a_refused_booking_says_so_in_its_current_details(scene: Scene) -> None:
    from api.services.reservations import _IDEMPOTENCY_NAMESPACE
    from tests.factories import create_client

    starts_at, ends_at = await scene.slot(hours_ahead=30)
    assert (await scene.book(starts_at, ends_at)).status_code == 200
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    taken = await scene.book(
        starts_at, ends_at, account=rival, headers={"Idempotency-Key": "taken"}
    )
    past = await scene.book(
        starts_at - timedelta(days=3),
        ends_at - timedelta(days=3),
        account=rival,
        headers={"Idempotency-Key": "past"},
    )
    assert (taken.status_code, past.status_code) == (409, 400)

    async def details_for(key: str) -> str:
        rid = uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{rival.id}:{key}")
        handle = scene.resources.temporal.get_workflow_handle(f"reservation-{rid}")
        return await _details_of(handle)()

    assert await details_for("taken") == (
        "Refused (the slot is taken); no seat was held"
    )
    assert await details_for("past") == "Refused (in_past); no seat was held"


async def test_current_details_give_the_next_instant_on_the_coworkings_clock(
    scene: Scene,
) -> None:
    from zoneinfo import ZoneInfo

    starts_at, ends_at = await scene.slot(hours_ahead=30)
    rid = (await scene.book(starts_at, ends_at)).json()["id"]
    handle = scene.resources.temporal.get_workflow_handle(f"reservation-{rid}")
    reminder_at = starts_at - timedelta(hours=3)
    local = reminder_at.astimezone(ZoneInfo("Europe/Berlin"))

    details = _details_of(handle)

    # once the confirmation mail is out, and the details no longer say it is sent
    await wait_for(lambda: _is(details, (
        f"Waiting for the reminder at {local:%a %d %b %Y %H:%M} {local:%Z}"
        f" ({reminder_at.astimezone(UTC):%H:%M} UTC)"
    )))  # fmt: skip
    # the API's view keeps the instant machine-readable
    state = await handle.query("state", result_type=pb.ReservationState)
    assert state.waiting_for == (
        f"the reminder at {reminder_at.astimezone(UTC).isoformat()}"
    )
    # the history names each step too: the hold, the timer, the mail
    named = [
        (event.event_type, json.loads(event.user_metadata.summary.data))
        async for event in handle.fetch_history_events()
        if event.user_metadata.HasField("summary")
        and event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    ]
    assert named[:3] == [
        (EventType.EVENT_TYPE_MARKER_RECORDED, "hold the seat"),
        (
            EventType.EVENT_TYPE_TIMER_STARTED,
            f"the reminder at {reminder_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
        ),
        (EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, "confirmation mail, version 1"),
    ]


async def test_a_lead_of_zero_waits_for_the_start_and_sends_no_reminder(
    scene: Scene,
) -> None:
    from tests.factories import create_coworking, create_seat

    coworking = await create_coworking(scene.resources.pool, reminder_lead_minutes=0)
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    rid = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    handle = scene.resources.temporal.get_workflow_handle(f"reservation-{rid}")

    details = _details_of(handle)

    await wait_for(lambda: _is(
        details, f"Waiting for the start at {starts_at:%a %d %b %Y %H:%M} UTC"
    ))  # fmt: skip
    state = await handle.query("state", result_type=pb.ReservationState)
    assert state.waiting_for == f"the start at {starts_at.isoformat()}"

    await scene.sleep(starts_at - await scene.now() + timedelta(minutes=1))
    await wait_for(lambda: _starts_with(details, "Waiting for the end at"))
    assert [row["kind"] for row in await sent(scene, rid)] == ["confirmation"]


def _details_of(handle: WorkflowHandle) -> Callable[[], Awaitable[str]]:
    """What the Temporal UI shows as the workflow's current details, on call."""

    async def details() -> str:
        metadata = await handle.query(
            "__temporal_workflow_metadata", result_type=WorkflowMetadata
        )
        return metadata.current_details

    return details


async def _starts_with(text: Callable[[], Awaitable[str]], prefix: str) -> bool:
    return (await text()).startswith(prefix)


async def _is(text: Callable[[], Awaitable[str]], expected: str) -> bool:
    return await text() == expected


async def test_reschedule_after_the_start_is_refused_saying_so(scene: Scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=4)
    rid = (await scene.book(starts_at, ends_at)).json()["id"]
    await scene.sleep(starts_at - await scene.now() + timedelta(minutes=1))
    later = starts_at + timedelta(days=1)

    response = await scene.api.patch(
        f"/api/reservations/{rid}",
        json={
            "starts_at": later.isoformat(),
            "ends_at": (later + timedelta(hours=1)).isoformat(),
        },
        headers=scene.client.headers,
    )
    assert (response.status_code, response.json()) == (
        409,
        {
            "error": "conflict",
            "description": "cannot reschedule a reservation that has started",
        },
    )
    row = await scene.resources.pool.fetchrow(
        "SELECT starts_at, version FROM reservation.reservations WHERE id = $1",
        uuid.UUID(rid),
    )
    assert (row["starts_at"], row["version"]) == (starts_at, 1)


async def test_cancelled_reservation_tells_support_it_is_closed(scene: Scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    rid = (await scene.book(starts_at, ends_at)).json()["id"]
    cancelled = await scene.api.delete(
        f"/api/reservations/{rid}", headers=scene.client.headers
    )
    assert cancelled.status_code == 204
    handle = scene.resources.temporal.get_workflow_handle(f"reservation-{rid}")

    details = _details_of(handle)

    # not "Waiting for the reminder at ...", which it no longer does
    assert await wait_for(lambda: _starts_with(details, "Closed: "))
    assert await details() == "Closed: cancelled"


# the dev server: the time-skipping one keeps a workflow task for every
# rejected update, and late in a full run left updates unanswered
@pytest.mark.real_time_server
async def test_a_reservation_past_its_move_budget_refuses_moves_without_a_trace(
    scene: Scene,
) -> None:
    from workflows.reservation import MOVE_HISTORY_BUDGET, RETRY_NOTIFICATION

    starts_at, ends_at = await scene.slot(hours_ahead=40)
    rid = (await scene.book(starts_at, ends_at)).json()["id"]
    handle = scene.resources.temporal.get_workflow_handle(f"reservation-{rid}")
    # The budget is filled with signals that change nothing, fifty to a
    # workflow task. Refused moves filled its end once, and on a loaded
    # machine a full run timed out at 300 s with the workflow thread still
    # formatting a refusal's stack; signals need no worker to be written.
    length = (await handle.describe()).history_length
    while length <= MOVE_HISTORY_BUDGET:
        await asyncio.gather(
            *(
                handle.signal(
                    RETRY_NOTIFICATION,
                    pb.RetryNotificationRequest(),
                )
                for _ in range(50)
            )
        )
        length = (await handle.describe()).history_length
    # a batch's last workflow task may still be on its way into the history
    while True:
        await asyncio.sleep(0.5)
        settled = (await handle.describe()).history_length
        if settled == length:
            break
        length = settled

    response = await scene.api.patch(
        f"/api/reservations/{rid}",
        json={"seat_id": str(scene.other_seat_id)},
        headers=scene.client.headers,
    )
    assert (response.status_code, response.json()) == (
        409,
        {
            "error": "conflict",
            "description": "this reservation has been moved, or refused a move,"
            " too many times; cancel it and book again",
        },
    )
    # not accepted, so not written; at most the server keeps the workflow task
    # that carried the refusal, which it usually drops
    events = (await handle.fetch_history()).events[length:]
    assert [event.event_type for event in events] in (
        [],
        [
            EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        ],
    )
    row = await scene.resources.pool.fetchrow(
        "SELECT seat_id, starts_at, version FROM reservation.reservations"
        " WHERE id = $1",
        uuid.UUID(rid),
    )
    assert (row["seat_id"], row["starts_at"], row["version"]) == (
        scene.seat_id,
        starts_at,
        1,
    )
    # the way out it names still works
    cancelled = await scene.api.delete(
        f"/api/reservations/{rid}", headers=scene.client.headers
    )
    assert cancelled.status_code == 204


async def test_a_move_whose_length_reads_two_ways_needs_its_end(scene: Scene) -> None:
    async def move(rid: str, **times: datetime) -> object:
        return await scene.api.patch(
            f"/api/reservations/{rid}",
            json={name: value.isoformat() for name, value in times.items()},
            headers=scene.client.headers,
        )

    booked = await scene.book(
        datetime.fromisoformat("2027-03-20T00:30:00+01:00"),
        datetime.fromisoformat("2027-03-20T02:30:00+01:00"),
    )
    rid = booked.json()["id"]
    # onto the spring night: 02:30 does not exist, so the end reads 03:30
    onto_gap = await move(
        rid, starts_at=datetime.fromisoformat("2027-03-28T00:30:00+01:00")
    )
    assert onto_gap.json()["ends_at"] == "2027-03-28T01:30:00Z"

    later = datetime.fromisoformat("2027-04-04T00:30:00+02:00")
    ambiguous = await move(rid, starts_at=later)
    told = await move(rid, starts_at=later, ends_at=later + timedelta(hours=2))

    assert (ambiguous.status_code, ambiguous.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "ends_at: required to move this booking: it ends just"
            " after the clocks went forward, so the length to keep reads two ways",
        },
    )
    assert told.status_code == 200
    assert (told.json()["starts_at"], told.json()["ends_at"]) == (
        "2027-04-03T22:30:00Z",
        "2027-04-04T00:30:00Z",
    )


@pytest.mark.parametrize(
    ("booked", "new_start", "told_end", "moved"),
    [
        # into the repeated autumn hour: the first 02:30 plus an hour on the
        # wall is two elapsed hours
        (("2027-10-31T01:30:00+02:00", "2027-10-31T02:30:00+02:00"),
         "2027-10-31T02:30:00+02:00", "2027-10-31T02:30:00+01:00",
         ("2027-10-31T00:30:00Z", "2027-10-31T01:30:00Z")),
        # two hours on the wall from 01:00 on the spring night end at 03:00,
        # one elapsed hour: it would shrink, and then read two ways
        (("2027-03-27T23:00:00+01:00", "2027-03-28T01:00:00+01:00"),
         "2027-03-28T01:00:00+01:00", "2027-03-28T04:00:00+02:00",
         ("2027-03-28T00:00:00Z", "2027-03-28T02:00:00Z")),
    ],
    ids=["autumn_repeated_hour", "spring_gap_shrinks"],
)  # fmt: skip
async def test_a_move_by_its_start_across_a_clock_change_needs_its_end(
    scene: Scene,
    booked: tuple[str, str],
    new_start: str,
    told_end: str,
    moved: tuple[str, str],
) -> None:
    made = await scene.book(*(datetime.fromisoformat(at) for at in booked))
    path = f"/api/reservations/{made.json()['id']}"

    guessed = await scene.api.patch(
        path, json={"starts_at": new_start}, headers=scene.client.headers
    )
    told = await scene.api.patch(
        path,
        json={"starts_at": new_start, "ends_at": told_end},
        headers=scene.client.headers,
    )

    assert (guessed.status_code, guessed.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "ends_at: required to move this booking by its start"
            " alone: where the clocks change, the length to keep reads two ways",
        },
    )
    assert (told.status_code, told.json()["version"]) == (200, 2)
    assert (told.json()["starts_at"], told.json()["ends_at"]) == moved


async def test_a_move_given_the_version_seen_is_refused_once_another_came_first(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    rid = (await scene.book(starts_at, ends_at)).json()["id"]
    path = f"/api/reservations/{rid}"

    async def move(hours: int, version: object) -> object:
        return await scene.api.patch(
            path,
            params={"version": version},
            json={"starts_at": (starts_at + timedelta(hours=hours)).isoformat()},
            headers=scene.admin.headers,
        )

    first = await move(1, 1)
    late = await move(2, 1)
    garbled = await move(2, "abc")
    current = (await scene.api.get(path, headers=scene.client.headers)).json()
    again = await move(2, 2)

    assert (first.status_code, first.json()["version"]) == (200, 2)
    assert (late.status_code, late.json()) == (409, {
        "error": "conflict",
        "description": "version: the reservation is at version 2 now, not 1;"
        " look at it again",
    })  # fmt: skip
    assert (garbled.status_code, garbled.json()["error"]) == (400, "invalid_query")
    # the late move changed nothing
    assert (current["version"], current["starts_at"]) == (
        2, (starts_at + timedelta(hours=1)).astimezone(UTC).isoformat().replace(
            "+00:00", "Z"),
    )  # fmt: skip
    assert (again.status_code, again.json()["version"]) == (200, 3)
