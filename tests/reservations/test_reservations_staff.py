import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from api.auth import STAFF_ONLY
from api.errors import Conflict
from api.services.reservations import require_open
from tests.factories import create_client, create_coworking, create_seat
from tests.reservations.conftest import Scene
from tests.reservations.test_reservations_lifecycle import wait_for


async def _status(scene: Scene, reservation_id: str) -> str:
    return await scene.resources.pool.fetchval(
        "SELECT status FROM reservation.reservations WHERE id = $1",
        uuid.UUID(reservation_id),
    )


async def _claims(scene: Scene, reservation_id: str) -> int:
    return await scene.resources.pool.fetchval(
        "SELECT count(*) FROM reservation.seat_claims WHERE reservation_id = $1",
        uuid.UUID(reservation_id),
    )


async def test_confirm_held_reservation_by_staff_before_hold_expires(
    scene: Scene,
) -> None:
    coworking = await create_coworking(
        scene.resources.pool, auto_confirm=False, hold_minutes=30
    )
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=48)
    booked = await scene.book(starts_at, ends_at, seat_id=seat)
    assert booked.status_code == 200
    assert booked.json()["status"] == "held"
    reservation_id = booked.json()["id"]

    by_client = await scene.api.post(
        f"/api/reservations/{reservation_id}/confirm", headers=scene.client.headers
    )
    assert (by_client.status_code, by_client.json()["description"]) == (
        403, STAFF_ONLY,
    )  # fmt: skip
    response = await scene.api.post(
        f"/api/reservations/{reservation_id}/confirm", headers=scene.admin.headers
    )
    assert response.status_code == 200, response.text
    # the confirmation mail is queued by the time the update answers
    assert (response.json()["status"], response.json()["notification_status"]) == (
        "confirmed",
        "pending",
    )
    assert await _status(scene, reservation_id) == "confirmed"

    # a second confirm, far from the start, is not a check-in
    again = await scene.api.post(
        f"/api/reservations/{reservation_id}/confirm", headers=scene.admin.headers
    )
    assert again.status_code == 409
    assert again.json() == {
        "error": "conflict",
        "description": "cannot confirm a confirmed reservation",
    }


async def test_held_reservation_expires_after_hold_time_and_frees_seat(
    scene: Scene,
) -> None:
    coworking = await create_coworking(
        scene.resources.pool, auto_confirm=False, hold_minutes=20
    )
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=48)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    assert await _claims(scene, reservation_id) == 12

    await scene.sleep(timedelta(minutes=21))
    assert await wait_for(lambda: _is(scene, reservation_id, "expired"))
    assert await _claims(scene, reservation_id) == 0
    # the contract knows only "cancelled": a booking that no longer holds is
    assert await _contract_flags(scene, reservation_id) == ("expired", True)
    late = await scene.api.post(
        f"/api/reservations/{reservation_id}/confirm", headers=scene.admin.headers
    )
    assert (late.status_code, late.json()) == (
        409,
        {"error": "conflict", "description": "cannot confirm an expired reservation"},
    )


async def test_a_held_reservation_says_until_when_staff_may_confirm_it(
    scene: Scene,
) -> None:
    """Its hold's end, or its start where that comes first; nothing once
    confirmed. The workflow's answer and the row's agree."""
    coworking = await create_coworking(
        scene.resources.pool, auto_confirm=False, hold_minutes=90
    )
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=48)
    soon, soon_end = await scene.slot(hours_ahead=1)
    booked_at = await scene.now()
    far = await scene.book(starts_at, ends_at, seat_id=seat)
    near = await scene.book(soon, soon_end, seat_id=seat)
    assert (far.status_code, near.status_code) == (200, 200), near.text

    hold_ends = await scene.resources.pool.fetchval(
        "SELECT hold_expires_at FROM reservation.reservations WHERE id = $1",
        uuid.UUID(far.json()["id"]),
    )
    assert booked_at + timedelta(minutes=90) <= hold_ends
    assert hold_ends < booked_at + timedelta(minutes=91)
    # the workflow's deadline is read from its clock a moment after the claim's
    told = datetime.fromisoformat(far.json()["hold_expires_at"])
    assert timedelta(0) <= told - hold_ends < timedelta(seconds=1)
    starts = soon.astimezone(UTC).isoformat().replace("+00:00", "Z")
    assert near.json()["hold_expires_at"] == starts
    # lists answer from the rows
    listed = await scene.api.get(
        "/api/client/reservations", headers=scene.client.headers
    )
    assert {r["id"]: r["hold_expires_at"] for r in listed.json()} == {
        far.json()["id"]: hold_ends.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        near.json()["id"]: starts,
    }

    confirmed = await scene.api.post(
        f"/api/reservations/{far.json()['id']}/confirm", headers=scene.admin.headers
    )
    read = await scene.api.get(
        f"/api/reservations/{far.json()['id']}", headers=scene.client.headers
    )
    assert (confirmed.json()["hold_expires_at"], read.json()["hold_expires_at"]) == (
        None,
        None,
    )
    cancelled = await scene.api.delete(
        f"/api/reservations/{near.json()['id']}", headers=scene.client.headers
    )
    assert cancelled.status_code == 204, cancelled.text
    # nor do the rows keep a deadline that no longer stands
    rows = await scene.resources.pool.fetch(
        "SELECT id::text, status, hold_expires_at FROM reservation.reservations"
        " WHERE id = ANY($1::uuid[])",
        [far.json()["id"], near.json()["id"]],
    )
    assert {tuple(row) for row in rows} == {
        (far.json()["id"], "confirmed", None),
        (near.json()["id"], "cancelled", None),
    }


@pytest.mark.parametrize(
    ("status", "description"),
    [
        ("expired", "cannot cancel an expired reservation"),
        ("cancelled", "cannot cancel a cancelled reservation"),
        ("completed", "cannot cancel a completed reservation"),
        ("no_show", "cannot cancel a no-show reservation"),
    ],
    ids=["expired", "cancelled", "completed", "no-show"],
)
def test_require_open_refuses_an_ended_reservation_with_its_article(
    status: str, description: str
) -> None:
    with pytest.raises(Conflict) as refused:
        require_open({"status": status}, "cancel")  # type: ignore[arg-type]

    assert refused.value.description == description


async def _contract_flags(scene: Scene, reservation_id: str) -> tuple[str, bool]:
    got = await scene.api.get(
        f"/api/reservations/{reservation_id}", headers=scene.client.headers
    )
    return got.json()["status"], got.json()["cancelled"]


async def _is(scene: Scene, reservation_id: str, status: str) -> bool:
    return await _status(scene, reservation_id) == status


async def test_no_check_in_by_start_plus_grace_ends_no_show_and_frees_rest(
    scene: Scene,
) -> None:
    coworking = await create_coworking(scene.resources.pool, checkin_grace_minutes=15)
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=5, length_minutes=120)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]

    await scene.sleep(
        starts_at + timedelta(minutes=15) - await scene.now() + timedelta(seconds=1)
    )
    assert await wait_for(lambda: _is(scene, reservation_id, "no_show"))
    assert await _contract_flags(scene, reservation_id) == ("no_show", True)
    # the grains before the deadline stay claimed as history; the rest is free
    remaining = await scene.resources.pool.fetch(
        "SELECT slot_start FROM reservation.seat_claims"
        " WHERE reservation_id = $1 ORDER BY 1",
        uuid.UUID(reservation_id),
    )
    # the grain in progress at the deadline stays; every later one is released
    assert [row["slot_start"] for row in remaining] == [
        starts_at + timedelta(minutes=5 * i) for i in range(4)
    ]
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    rest = await scene.book(
        starts_at + timedelta(minutes=30), ends_at, seat_id=seat, account=rival
    )
    assert rest.status_code == 200, rest.text


async def test_check_in_near_start_then_completed_after_end(scene: Scene) -> None:
    coworking = await create_coworking(scene.resources.pool, checkin_grace_minutes=10)
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=4)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]

    early = await scene.api.post(
        f"/api/reservations/{reservation_id}/check-in", headers=scene.admin.headers
    )
    assert early.status_code == 409
    await scene.sleep(starts_at - timedelta(minutes=10) - await scene.now())
    # at the door, after the QR scan: /confirm on a confirmed reservation checks in
    response = await scene.api.post(
        f"/api/reservations/{reservation_id}/confirm", headers=scene.admin.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "checked_in"

    await scene.sleep(ends_at - await scene.now() + timedelta(seconds=1))
    assert await wait_for(lambda: _is(scene, reservation_id, "completed"))
    assert await _contract_flags(scene, reservation_id) == ("completed", False)
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    final = await handle.result()
    assert final.status == 4  # RESERVATION_STATUS_COMPLETED


async def test_reservation_of_another_client_is_not_found(scene: Scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=50)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    intruder = await create_client(scene.resources.pool, scene.resources.settings)
    url = f"/api/reservations/{reservation_id}"
    for method, kwargs in (
        ("GET", {}),
        ("DELETE", {}),
        (
            "PATCH",
            {"json": {"starts_at": (starts_at + timedelta(hours=1)).isoformat()}},
        ),
    ):
        response = await scene.api.request(
            method, url, headers=intruder.headers, **kwargs
        )
        assert response.status_code == 404, (method, response.text)
        assert response.json() == {
            "error": "not_found",
            "description": "reservation_id: no such reservation",
        }
    qr = await scene.api.get(f"{url}/qr", headers=intruder.headers)
    assert qr.status_code == 404
    assert await _status(scene, reservation_id) == "confirmed"
    mine = await scene.api.get(f"{url}/qr", headers=scene.client.headers)
    assert mine.status_code == 200
    assert mine.headers["content-type"] == "image/png"
    assert mine.content.startswith(b"\x89PNG")
    cancelled = await scene.api.delete(url, headers=scene.client.headers)
    assert cancelled.status_code == 204
    ended = await scene.api.get(f"{url}/qr", headers=scene.client.headers)
    assert ended.status_code == 409
    assert ended.json() == {
        "error": "conflict",
        "description": "cannot show the check-in code of a cancelled reservation",
    }


async def _book_where_staff_confirm(scene: Scene) -> tuple[str, datetime, datetime]:
    """A booking held in a coworking where staff confirm, with an hour to do it."""
    coworking = await create_coworking(
        scene.resources.pool, auto_confirm=False, hold_minutes=60
    )
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=48)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    return reservation_id, starts_at, ends_at


async def _move(
    scene: Scene, path: str, starts_at: datetime, headers: dict[str, str]
) -> httpx.Response:
    """Move the reservation at `path` to an hour from `starts_at`."""
    return await scene.api.patch(
        path,
        json={"starts_at": starts_at.isoformat(),
              "ends_at": (starts_at + timedelta(hours=1)).isoformat()},
        headers=headers,
    )  # fmt: skip


async def test_hold_moved_before_confirmation_gets_confirmation_mail(
    scene: Scene, smtp
) -> None:
    reservation_id, starts_at, ends_at = await _book_where_staff_confirm(scene)
    moved = await _move(
        scene,
        f"/api/reservations/{reservation_id}",
        starts_at + timedelta(hours=1),
        scene.client.headers,
    )
    assert moved.status_code == 200 and moved.json()["status"] == "held"
    confirmed = await scene.api.post(
        f"/api/reservations/{reservation_id}/confirm", headers=scene.admin.headers
    )
    assert confirmed.status_code == 200

    async def mailed() -> list:
        return await scene.resources.pool.fetch(
            "SELECT kind, version FROM notifications.sent_mail"
            " WHERE reservation_id = $1",
            uuid.UUID(reservation_id),
        )

    rows = await wait_for(mailed)
    assert [(row["kind"], row["version"]) for row in rows] == [("confirmation", 2)]


async def _mails(scene: Scene, reservation_id: str) -> list[tuple[str, int]]:
    rows = await scene.resources.pool.fetch(
        "SELECT kind, version FROM notifications.sent_mail"
        " WHERE reservation_id = $1 ORDER BY scheduled_at, version",
        uuid.UUID(reservation_id),
    )
    return [(row["kind"], row["version"]) for row in rows]


async def test_client_move_of_a_staff_confirmed_booking_waits_for_staff_again(
    scene: Scene, smtp
) -> None:
    reservation_id, starts_at, ends_at = await _book_where_staff_confirm(scene)
    path = f"/api/reservations/{reservation_id}"
    confirmed = await scene.api.post(f"{path}/confirm", headers=scene.admin.headers)
    assert confirmed.json()["status"] == "confirmed"
    await wait_for(lambda: _mails(scene, reservation_id))

    # giving time back keeps what staff approved
    shorter = await scene.api.patch(
        path,
        json={"ends_at": (ends_at - timedelta(minutes=30)).isoformat()},
        headers=scene.client.headers,
    )
    assert (shorter.status_code, shorter.json()["status"]) == (200, "confirmed")
    # another day is not what staff approved; what they did stays claimed
    later = starts_at + timedelta(days=1)
    moved = await _move(scene, path, later, scene.client.headers)
    assert (moved.status_code, moved.json()["status"]) == (200, "held")
    assert moved.json()["version"] == 3
    assert await _status(scene, reservation_id) == "held"
    assert await _claims(scene, reservation_id) == 12 + 6

    # nobody confirms the move: it lapses, and the booking stands where staff
    # confirmed it, as the client is told
    await scene.sleep(timedelta(minutes=61))
    assert await wait_for(lambda: _is(scene, reservation_id, "confirmed"))
    row = await scene.resources.pool.fetchrow(
        "SELECT starts_at, ends_at, version FROM reservation.reservations"
        " WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    assert tuple(row.values()) == (starts_at, ends_at - timedelta(minutes=30), 4)
    assert await _claims(scene, reservation_id) == 6
    assert await _contract_flags(scene, reservation_id) == ("confirmed", False)
    late = await scene.api.post(f"{path}/confirm", headers=scene.admin.headers)
    assert (late.status_code, late.json()) == (
        409,
        {
            "error": "conflict",
            "description": "cannot confirm a confirmed reservation: the client's"
            " move lapsed unconfirmed, and it went back to the seat and time"
            " staff had confirmed",
        },
    )
    await wait_for(lambda: _mails_include(scene, reservation_id, ("reschedule", 4)))
    assert await _mails(scene, reservation_id) == [
        ("confirmation", 1), ("reschedule", 2), ("reschedule", 4),
    ]  # fmt: skip
    [lapsed] = [
        m.message
        for m in smtp.received
        if m.message["Message-ID"].strip().endswith(".reschedule.v4@tlounge.local>")
    ]
    assert lapsed["Subject"].startswith("Your change was not confirmed: ")
    assert "stays at the seat and time they had confirmed" in lapsed.get_body(
        ("plain",)
    ).get_content().replace("\n", " ")
    [calendar] = list(lapsed.iter_attachments())
    assert calendar.get_param("method") == "PUBLISH"


async def _mails_include(
    scene: Scene, reservation_id: str, wanted: tuple[str, int]
) -> bool:
    return wanted in await _mails(scene, reservation_id)


async def test_staff_confirm_a_clients_move_and_move_confirmed_bookings_themselves(
    scene: Scene,
) -> None:
    reservation_id, starts_at, ends_at = await _book_where_staff_confirm(scene)
    path = f"/api/reservations/{reservation_id}"
    await scene.api.post(f"{path}/confirm", headers=scene.admin.headers)
    later = starts_at + timedelta(days=1)
    moved = await _move(scene, path, later, scene.client.headers)
    assert moved.json()["status"] == "held"

    again = await scene.api.post(f"{path}/confirm", headers=scene.admin.headers)
    assert (again.status_code, again.json()["status"]) == (200, "confirmed")
    by_staff = await _move(scene, path, later + timedelta(hours=2), scene.admin.headers)
    assert (by_staff.status_code, by_staff.json()["status"]) == (200, "confirmed")
    assert await _status(scene, reservation_id) == "confirmed"
    await wait_for(lambda: _mails_include(scene, reservation_id, ("reschedule", 3)))
    assert await _mails(scene, reservation_id) == [
        ("confirmation", 1), ("reschedule", 2), ("reschedule", 3),
    ]  # fmt: skip


async def _held_booking(scene: Scene) -> tuple[str, datetime]:
    """A booking that waits for staff, two days ahead: its path and start."""
    coworking = await create_coworking(
        scene.resources.pool, auto_confirm=False, hold_minutes=30
    )
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=48)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    return f"/api/reservations/{reservation_id}", starts_at


async def test_staff_naming_the_version_they_saw_do_not_confirm_a_later_move(
    scene: Scene,
) -> None:
    path, starts_at = await _held_booking(scene)
    reservation_id = path.rsplit("/", 1)[1]
    later = starts_at + timedelta(hours=2)
    moved = await _move(scene, path, later, scene.client.headers)
    assert moved.json()["version"] == 2

    stale = await scene.api.post(
        f"{path}/confirm?version=1", headers=scene.admin.headers
    )
    zero = await scene.api.post(
        f"{path}/confirm?version=0", headers=scene.admin.headers
    )
    assert (stale.status_code, stale.json()) == (
        409,
        {
            "error": "conflict",
            "description": "version: the reservation is at version 2 now, not 1;"
            " look at it again",
        },
    )
    assert (zero.status_code, zero.json()["error"]) == (400, "invalid_query")
    assert await _status(scene, reservation_id) == "held"

    seen = await scene.api.post(
        f"{path}/confirm?version=2", headers=scene.admin.headers
    )
    assert (seen.status_code, seen.json()["status"], seen.json()["version"]) == (
        200, "confirmed", 2,
    )  # fmt: skip
    assert await _status(scene, reservation_id) == "confirmed"


async def test_a_confirm_waiting_behind_a_move_is_refused_when_it_named_the_old_version(
    scene: Scene,
) -> None:
    import asyncio

    from tests.reservations.test_reservations_races import row_locked

    path, starts_at = await _held_booking(scene)
    reservation_id = path.rsplit("/", 1)[1]
    later = starts_at + timedelta(hours=2)

    async def claim_waits() -> bool:
        return bool(
            await scene.resources.pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%FROM reservation.reservations%FOR UPDATE%'"
            )
        )

    # the move's claim waits on the row, holding the workflow's lock, while
    # staff confirm the version 1 they saw; then the row is let go
    async with row_locked(scene, reservation_id):
        move = asyncio.create_task(_move(scene, path, later, scene.client.headers))
        assert await wait_for(claim_waits)
        confirm = asyncio.create_task(
            scene.api.post(f"{path}/confirm?version=1", headers=scene.admin.headers)
        )
        # A claim that outlasts most of a workflow task's timeout is reported by
        # the worker with a workflow task of its own (the move's acceptance);
        # the next one brings the confirm, whose validator still sees version 1,
        # so only its handler, behind the move, can see version 2.
        assert await wait_for(lambda: _accepted_updates(scene, reservation_id, 2))
        await asyncio.sleep(1)
        assert not confirm.done()
    moved, refused = await move, await confirm

    assert (moved.status_code, moved.json()["version"]) == (200, 2)
    assert (refused.status_code, refused.json()["description"]) == (
        409,
        "version: the reservation is at version 2 now, not 1; look at it again",
    )
    row = await scene.resources.pool.fetchrow(
        "SELECT status, version, starts_at FROM reservation.reservations WHERE id = $1",
        uuid.UUID(reservation_id),
    )
    assert (row["status"], row["version"], row["starts_at"]) == ("held", 2, later)


async def _accepted_updates(scene: Scene, reservation_id: str, count: int) -> bool:
    from temporalio.api.enums.v1 import EventType

    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    accepted = [
        event
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    ]
    return len(accepted) >= count


async def test_a_client_checked_in_before_a_short_lead_reminder_gets_none(
    scene: Scene,
) -> None:
    # the check-in window opens 30 minutes before the start, a 10-minute lead after
    coworking = await create_coworking(scene.resources.pool, reminder_lead_minutes=10)
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=4)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    await wait_for(lambda: _mails_include(scene, reservation_id, ("confirmation", 1)))
    await scene.sleep(starts_at - timedelta(minutes=20) - await scene.now())

    checked = await scene.api.post(
        f"/api/reservations/{reservation_id}/check-in", headers=scene.admin.headers
    )
    assert (checked.status_code, checked.json()["status"]) == (200, "checked_in")
    await scene.sleep(ends_at - await scene.now() + timedelta(seconds=1))
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    final = await handle.result()

    assert final.status == 4  # RESERVATION_STATUS_COMPLETED
    # every mail due has gone out by the time the workflow closes
    assert await _mails(scene, reservation_id) == [("confirmation", 1)]


async def test_a_hold_longer_than_the_wait_for_the_start_tells_the_start(
    scene: Scene,
) -> None:
    from zoneinfo import ZoneInfo

    from tests.reservations.test_reservations_lifecycle import _details_of

    coworking = await create_coworking(
        scene.resources.pool, auto_confirm=False, hold_minutes=7 * 1440,
        timezone="Europe/Berlin",
    )  # fmt: skip
    seat = await create_seat(scene.resources.pool, coworking)
    quiet = await create_client(
        scene.resources.pool, scene.resources.settings, send_notifications=False
    )
    starts_at, ends_at = await scene.slot(hours_ahead=20)
    booked = await scene.book(starts_at, ends_at, seat_id=seat, account=quiet)
    reservation_id = booked.json()["id"]
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    local = starts_at.astimezone(ZoneInfo("Europe/Berlin"))
    details = _details_of(handle)

    assert await details() == (
        f"Waiting for confirmation by staff before {local:%a %d %b %Y %H:%M}"
        f" {local:%Z} ({starts_at:%H:%M} UTC)"
    )
    confirmed = await scene.api.post(
        f"/api/reservations/{reservation_id}/confirm", headers=scene.admin.headers
    )
    # as the GET after it says: this client takes no mail
    assert (confirmed.json()["status"], confirmed.json()["notification_status"]) == (
        "confirmed", "none",
    )  # fmt: skip


async def test_a_manager_verifies_a_client_seen_for_their_own_booking_only(
    scene: Scene,
) -> None:
    from tests.factories import create_admin

    manager = await create_admin(
        scene.resources.pool,
        scene.resources.settings,
        role="manager",
        coworkings=[scene.coworking_id],
    )
    starts_at, ends_at = await scene.slot(hours_ahead=2)
    by_staff = await scene.api.post(
        "/api/reservations",
        json={
            "client_id": str(scene.client.id),
            "seat_id": str(scene.seat_id),
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
        },
        headers=manager.headers,
    )
    assert by_staff.status_code == 200, by_staff.text
    own = await scene.book(starts_at, ends_at, seat_id=scene.other_seat_id)
    assert own.status_code == 409  # one client, one place at a time
    await scene.sleep(starts_at - timedelta(minutes=10) - await scene.now())

    async def check_in_and_verify(reservation_id: str) -> httpx.Response:
        checked = await scene.api.post(
            f"/api/reservations/{reservation_id}/check-in", headers=manager.headers
        )
        assert checked.status_code == 200, checked.text
        return await scene.api.patch(
            f"/api/client/{scene.client.id}",
            json={"verified": True},
            headers=manager.headers,
        )

    refused = await check_in_and_verify(by_staff.json()["id"])
    assert (refused.status_code, refused.json()) == (
        403,
        {
            "error": "forbidden",
            "description": "client_id: this client was never checked in at a"
            " coworking you manage for a booking of their own",
        },
    )
    later_start, later_end = (
        starts_at + timedelta(hours=1),
        ends_at + timedelta(hours=1),
    )
    own = await scene.book(later_start, later_end, seat_id=scene.other_seat_id)
    assert own.status_code == 200, own.text
    await scene.sleep(later_start - timedelta(minutes=10) - await scene.now())
    allowed = await check_in_and_verify(own.json()["id"])
    assert (allowed.status_code, allowed.json()["verified"]) == (200, True)


@pytest.mark.uncached_workers
async def test_a_confirm_that_arrives_after_the_cancel_is_refused(scene: Scene) -> None:
    import asyncio

    from proto import reservation_pb2 as pb

    coworking = await create_coworking(
        scene.resources.pool, auto_confirm=False, hold_minutes=30
    )
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=48)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    # no worker: the cancel waits in the history, the confirm at the server
    await scene.workers.aclose()
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )
    await handle.signal("cancel", pb.CancelRequest(reason="changed my mind"))
    confirm = asyncio.create_task(
        scene.api.post(
            f"/api/reservations/{reservation_id}/confirm", headers=scene.admin.headers
        )
    )
    await asyncio.sleep(1)
    await scene.restart_workers()

    response = await confirm
    assert (response.status_code, response.json()) == (
        409,
        {
            "error": "conflict",
            "description": "cannot confirm a reservation that is being cancelled",
        },
    )
    assert await wait_for(lambda: _is(scene, reservation_id, "cancelled"))


async def test_a_hold_timer_that_fired_is_due_whatever_clock_its_task_carries(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tester N hung a worker across a hold's end: the task after the timer
    carried a clock from before the timer was set, and the run set it again
    for the whole hold, so staff could still confirm. Here each task that
    fires a timer carries a clock two minutes slow."""
    from temporalio.worker._workflow_instance import _WorkflowInstanceImpl

    coworking = await create_coworking(
        scene.resources.pool, auto_confirm=False, hold_minutes=60
    )
    seat = await create_seat(scene.resources.pool, coworking)
    starts_at, ends_at = await scene.slot(hours_ahead=48)
    reservation_id = (await scene.book(starts_at, ends_at, seat_id=seat)).json()["id"]
    assert await _status(scene, reservation_id) == "held"
    activate = _WorkflowInstanceImpl.activate

    def slow_clock(self, act):  # type: ignore[no-untyped-def]
        if any(job.WhichOneof("variant") == "fire_timer" for job in act.jobs):
            act.timestamp.FromNanoseconds(act.timestamp.ToNanoseconds() - 120 * 10**9)
        return activate(self, act)

    monkeypatch.setattr(_WorkflowInstanceImpl, "activate", slow_clock)
    await scene.sleep(timedelta(minutes=60, seconds=30))

    assert await wait_for(lambda: _is(scene, reservation_id, "expired"))
    assert await _claims(scene, reservation_id) == 0


async def test_staff_actions_refuse_a_body_rather_than_drop_it(scene: Scene) -> None:
    reservation_id, _, _ = await _book_where_staff_confirm(scene)
    path = f"/api/reservations/{reservation_id}"

    versioned = await scene.api.post(
        f"{path}/confirm", json={"version": 99}, headers=scene.admin.headers
    )
    garbled = await scene.api.post(
        f"{path}/check-in",
        content=b"garbage{{",
        headers={**scene.admin.headers, "content-type": "application/json"},
    )

    assert (versioned.status_code, versioned.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "version: this operation takes no body; the version"
            " staff saw goes in the query, as ?version=",
        },
    )
    assert (garbled.status_code, garbled.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "body: not valid JSON, and this operation takes none",
        },
    )
    assert await _status(scene, reservation_id) == "held"
    # an empty object, as some HTTP clients send with every POST, is no body
    confirmed = await scene.api.post(
        f"{path}/confirm", json={}, headers=scene.admin.headers
    )
    assert (confirmed.status_code, confirmed.json()["status"]) == (200, "confirmed")
