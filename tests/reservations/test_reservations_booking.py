import json
import uuid
from datetime import timedelta

import pytest

from proto import reservation_pb2 as pb
from tests.factories import create_client, create_coworking, create_seat
from tests.reservations.conftest import Scene
from tests.reservations.test_reservations_lifecycle import wait_for
from workflows.reservation import (
    PATCH_2026_12,
    PATCH_MAIL_GIVES_WAY,
    ReservationWorkflow,
)


async def test_book_seat_free_slot_answers_reservation_and_claims_rows(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=24, length_minutes=30)
    response = await scene.book(starts_at, ends_at)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["client_id"] == str(scene.client.id)
    assert body["seat_id"] == str(scene.seat_id)
    assert body["cancelled"] is False
    assert body["status"] == "confirmed"
    reservation_id = uuid.UUID(body["id"])
    claims = await scene.resources.pool.fetch(
        "SELECT slot_start FROM reservation.seat_claims"
        " WHERE reservation_id = $1 ORDER BY 1",
        reservation_id,
    )
    assert [row["slot_start"] for row in claims] == [
        starts_at + timedelta(minutes=5 * i) for i in range(6)
    ]
    client_claims = await scene.resources.pool.fetchval(
        "SELECT count(*) FROM reservation.client_claims WHERE reservation_id = $1",
        reservation_id,
    )
    assert client_claims == 6


async def test_book_seat_taken_slot_answers_409_naming_interval(scene: Scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    first = await scene.book(starts_at, ends_at)
    assert first.status_code == 200, first.text
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    second = await scene.book(
        starts_at + timedelta(minutes=30),
        ends_at + timedelta(minutes=30),
        account=rival,
    )
    assert second.status_code == 409
    assert second.json() == {
        "error": "conflict",
        "description": (
            f"seat: already booked from {starts_at.isoformat().replace('+00:00', 'Z')}"
            f" to {ends_at.isoformat().replace('+00:00', 'Z')}"
        ),
    }
    assert (
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM reservation.reservations"
        )
        == 1
    )


async def test_inactive_seat_keeps_its_bookings_and_takes_no_new_one_or_move(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=26)
    kept = await scene.book(starts_at, ends_at, seat_id=scene.other_seat_id)
    elsewhere = await scene.book(
        starts_at + timedelta(hours=2), ends_at + timedelta(hours=2)
    )
    assert (kept.status_code, elsewhere.status_code) == (200, 200)
    seat_url = f"/api/coworkings/{scene.coworking_id}/seats/{scene.other_seat_id}"
    seat = (await scene.api.get(seat_url, headers=scene.admin.headers)).json()
    off = await scene.api.patch(
        seat_url,
        # the contract makes an edit carry the features
        json={"active": False, "features": seat["features"]},
        headers=scene.admin.headers,
    )
    assert (off.status_code, off.json()["active"]) == (200, False)

    still = await scene.api.get(
        f"/api/reservations/{kept.json()['id']}", headers=scene.client.headers
    )
    assert (still.status_code, still.json()["status"]) == (200, "confirmed")
    refused = {
        "error": "rule_violation",
        "description": "seat_id: seat 2 takes no bookings",
    }
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    new = await scene.book(
        starts_at + timedelta(hours=4), ends_at + timedelta(hours=4),
        seat_id=scene.other_seat_id, account=rival,
    )  # fmt: skip
    moved = await scene.api.patch(
        f"/api/reservations/{elsewhere.json()['id']}",
        json={"seat_id": str(scene.other_seat_id)},
        headers=scene.client.headers,
    )
    assert (new.status_code, new.json()) == (400, refused)
    assert (moved.status_code, moved.json()) == (400, refused)
    # its own booking may give time back, not take more
    kept_url = f"/api/reservations/{kept.json()['id']}"
    longer = await scene.api.patch(
        kept_url,
        json={"ends_at": (ends_at + timedelta(minutes=30)).isoformat()},
        headers=scene.client.headers,
    )
    assert (longer.status_code, longer.json()) == (400, refused)
    shorter = await scene.api.patch(
        kept_url,
        json={"ends_at": (ends_at - timedelta(minutes=30)).isoformat()},
        headers=scene.client.headers,
    )
    assert (shorter.status_code, shorter.json()["ends_at"]) == (
        200,
        (ends_at - timedelta(minutes=30)).isoformat().replace("+00:00", "Z"),
    )
    seats = await scene.resources.pool.fetch(
        "SELECT seat_id, status FROM reservation.reservations ORDER BY starts_at"
    )
    assert [(row["seat_id"], row["status"]) for row in seats] == [
        (scene.other_seat_id, "confirmed"),
        (scene.seat_id, "confirmed"),
    ]


async def _settled_history(scene: Scene, reservation_id: str) -> list:
    """The events of a booking once its confirmation mail has been recorded as sent."""
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )

    async def mailed() -> bool:
        state = await handle.query(
            ReservationWorkflow.state, result_type=pb.ReservationState
        )
        return state.notification_status == pb.NOTIFICATION_STATUS_SENT

    await wait_for(mailed)
    return [event async for event in handle.fetch_history_events()]


def _patch_markers(events: list) -> list[dict]:
    return [
        json.loads(
            e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
        )
        for e in events
        if e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]


def _upserted(events: list) -> list[set[str]]:
    return [
        set(e.upsert_workflow_search_attributes_event_attributes.search_attributes
            .indexed_fields)
        for e in events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
    ]  # fmt: skip


async def test_booking_records_no_patch_marker_and_writes_no_attribute_after_start(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=26)
    response = await scene.book(starts_at, ends_at)
    assert response.status_code == 200, response.text

    events = await _settled_history(scene, response.json()["id"])
    assert _patch_markers(events) == []
    assert _upserted(events) == []
    started = events[0].workflow_execution_started_event_attributes
    assert started.search_attributes.indexed_fields["ReservationStatus"].data == (
        b'"confirmed"'
    )


async def test_reservations_run_to_their_end_with_no_patch_marker(
    scene: Scene,
) -> None:
    """Every timed close asks whether a reset left the run behind its row; the
    revision answers, not a marker and a visibility write per reservation."""
    strict = await create_coworking(scene.resources.pool, checkin_grace_minutes=15)
    door = await create_seat(scene.resources.pool, strict)
    starts_at, ends_at = await scene.slot(hours_ahead=4)
    completed = (await scene.book(starts_at, ends_at)).json()["id"]
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    no_show = (
        await scene.book(starts_at, ends_at, seat_id=door, account=rival)
    ).json()["id"]

    await scene.sleep(ends_at + timedelta(seconds=1) - await scene.now())
    for reservation_id, status in (
        (completed, pb.RESERVATION_STATUS_COMPLETED),
        (no_show, pb.RESERVATION_STATUS_NO_SHOW),
    ):
        handle = scene.resources.temporal.get_workflow_handle(
            f"reservation-{reservation_id}"
        )
        assert (await handle.result()).status == status
        events = [event async for event in handle.fetch_history_events()]
        assert _patch_markers(events) == []
        assert {"TemporalChangeVersion"} not in _upserted(events)


async def test_booking_from_an_older_starter_asks_for_its_patches(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an API of an earlier release leaves the revision at 0
    monkeypatch.setattr("api.services.reservations.REVISION", 0)
    starts_at, ends_at = await scene.slot(hours_ahead=26)
    response = await scene.book(starts_at, ends_at)
    assert response.status_code == 200, response.text

    events = await _settled_history(scene, response.json()["id"])
    assert _patch_markers(events) == [
        {"id": PATCH_2026_12, "deprecated": False},
        {"id": PATCH_MAIL_GIVES_WAY, "deprecated": False},
    ]
    assert _upserted(events) == [{"TemporalChangeVersion"}, {"TemporalChangeVersion"}]


async def test_a_client_without_mail_is_told_none_is_pending(scene: Scene) -> None:
    quiet = await create_client(
        scene.resources.pool, scene.resources.settings, send_notifications=False
    )
    starts_at, ends_at = await scene.slot(hours_ahead=30)

    booked = await scene.book(starts_at, ends_at, account=quiet)
    later = starts_at + timedelta(hours=2)
    moved = await scene.api.patch(
        f"/api/reservations/{booked.json()['id']}",
        json={"starts_at": later.isoformat()},
        headers=quiet.headers,
    )
    mailed = await scene.book(
        starts_at + timedelta(days=1), ends_at + timedelta(days=1)
    )

    assert (booked.status_code, booked.json()["notification_status"]) == (200, "none")
    assert (moved.status_code, moved.json()["notification_status"]) == (200, "none")
    # a client who takes mail still sees it on its way
    assert mailed.json()["notification_status"] == "pending"


async def test_a_get_while_a_mail_waits_says_none_for_a_client_who_opted_out(
    scene: Scene, smtp
) -> None:
    # the server defers every mail, so the confirmation waits in its retries
    smtp.refuse_with = "451 4.3.0 try again later"
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    rid = (await scene.book(starts_at, ends_at)).json()["id"]

    async def shown() -> str:
        got = await scene.api.get(
            f"/api/reservations/{rid}", headers=scene.client.headers
        )
        return got.json()["notification_status"]

    try:
        before = await shown()
        await scene.resources.pool.execute(
            "UPDATE client.clients SET send_notifications = false WHERE id = $1",
            scene.client.id,
        )
        after = await shown()
    finally:
        smtp.refuse_with = None

    assert (before, after) == ("pending", "none")


async def test_a_client_who_turned_mail_off_after_a_mail_is_told_sent_throughout(
    scene: Scene, smtp
) -> None:
    """The workflow ends on "sent" where a mail went out before: the move's
    answer and the reads before the skipped mail's turn say so too, rather
    than "none" and then "sent" a moment later."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    rid = (await scene.book(starts_at, ends_at)).json()["id"]
    path = f"/api/reservations/{rid}"

    async def told() -> str:
        got = await scene.api.get(path, headers=scene.client.headers)
        return str(got.json()["notification_status"])

    await wait_for(lambda: _told_is(told, "sent"))
    await scene.resources.pool.execute(
        "UPDATE client.clients SET send_notifications = false WHERE id = $1",
        scene.client.id,
    )
    moved = await scene.api.patch(
        path,
        json={"starts_at": (starts_at + timedelta(hours=2)).isoformat()},
        headers=scene.client.headers,
    )
    assert (moved.status_code, moved.json()["notification_status"]) == (200, "sent")
    await scene.sleep(timedelta(seconds=5))
    assert await told() == "sent"
    assert len(smtp.received) == 1


async def _told_is(told: object, status: str) -> bool:
    return bool(await told() == status)  # type: ignore[operator]


async def test_a_booking_and_its_reads_hand_nothing_to_the_thread_pool(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fastapi.dependencies.utils
    import fastapi.routing

    handed: list[str] = []

    def recording(module: object) -> None:
        original = module.run_in_threadpool  # type: ignore[attr-defined]

        async def run_in_threadpool(func, *args, **kwargs):  # type: ignore[no-untyped-def]
            handed.append(getattr(func, "__qualname__", repr(func)))
            return await original(func, *args, **kwargs)

        monkeypatch.setattr(module, "run_in_threadpool", run_in_threadpool)

    recording(fastapi.dependencies.utils)
    recording(fastapi.routing)
    starts_at, ends_at = await scene.slot(hours_ahead=26)

    booked = await scene.book(starts_at, ends_at)
    assert booked.status_code == 200, booked.text
    rid = booked.json()["id"]
    read = await scene.api.get(f"/api/reservations/{rid}", headers=scene.client.headers)
    listed = await scene.api.get(
        "/api/client/reservations", headers=scene.client.headers
    )

    assert (read.status_code, listed.status_code) == (200, 200)
    assert handed == []
