"""Rules that no other row decides are judged before any workflow starts.

A booking refused there costs no workflow, no history and no kept refusal; a
flood of bad requests reaches neither Temporal nor the claim. Rules judged by
the clock, closures and the client's other bookings stay with the claim.
"""

import asyncio
import contextlib
import gc
import logging
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from api.services import reservations
from api.services.reservations import _IDEMPOTENCY_NAMESPACE, workflow_id
from tests.factories import create_client, create_coworking, create_seat
from tests.reservations.conftest import Scene


def _reservation_for_key(scene: Scene, key: str) -> uuid.UUID:
    return uuid.uuid5(_IDEMPOTENCY_NAMESPACE, f"{scene.client.id}:{key}")


async def _no_workflow(scene: Scene, reservation_id: uuid.UUID) -> bool:
    handle = scene.env.client.get_workflow_handle(workflow_id(reservation_id))
    try:
        await handle.describe()
    except RPCError as error:
        return error.status == RPCStatusCode.NOT_FOUND
    return False


async def _kept(scene: Scene) -> tuple[int, int]:
    pool = scene.resources.pool
    return (
        await pool.fetchval("SELECT count(*) FROM reservation.reservations"),
        await pool.fetchval("SELECT count(*) FROM reservation.refused_bookings"),
    )


async def _close(scene: Scene, starts_at, ends_at, reason: str) -> None:
    await scene.resources.pool.execute(
        "INSERT INTO coworking.closures (id, coworking_id, starts_at, ends_at, reason)"
        " VALUES ($1, $2, $3, $4, $5)",
        uuid.uuid4(), scene.coworking_id, starts_at, ends_at, reason,
    )  # fmt: skip


async def _seat_takes_no_bookings(scene: Scene) -> None:
    await scene.resources.pool.execute(
        "UPDATE coworking.seats SET active = false WHERE id = $1", scene.seat_id
    )


async def test_rules_of_the_seat_and_slot_refuse_before_a_workflow(
    scene: Scene,
) -> None:
    pool = scene.resources.pool
    staff_seat = await create_seat(
        pool, scene.coworking_id, number=7, internal_only=True
    )
    idle_seat = await create_seat(pool, scene.coworking_id, number=8, active=False)
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    cases = [
        (
            "grid",
            starts_at + timedelta(minutes=7),
            ends_at,
            scene.seat_id,
            "starts_at: ",
            "is off the 15-minute slot grid",
        ),
        (
            "employees",
            starts_at,
            ends_at,
            staff_seat,
            "seat_id: seat 7 is reserved for employees",
            "",
        ),
        (
            "idle",
            starts_at,
            ends_at,
            idle_seat,
            "seat_id: seat 8 takes no bookings",
            "",
        ),
        (
            "long",
            starts_at,
            starts_at + timedelta(hours=13),
            scene.seat_id,
            "ends_at: 780 minutes is longer than the maximum of 720",
            "",
        ),
        (
            # the clock's rule, told as the claim tells it first, since the
            # booking is off the grid as well
            "far",
            starts_at + timedelta(days=401, minutes=7),
            ends_at + timedelta(days=401),
            scene.seat_id,
            "starts_at: ",
            "is more than 400 days ahead",
        ),
    ]
    for key, start, end, seat, opening, ending in cases:
        refused = await scene.book(
            start, end, seat_id=seat, headers={"Idempotency-Key": key}
        )
        assert refused.status_code == 400, (key, refused.text)
        body = refused.json()
        assert body["error"] == "rule_violation"
        assert body["description"].startswith(opening), (key, body)
        assert body["description"].endswith(ending), (key, body)
        assert await _no_workflow(scene, _reservation_for_key(scene, key)), key
    assert await _kept(scene) == (0, 0)


async def test_opening_hours_refuse_before_a_workflow(scene: Scene) -> None:
    pool = scene.resources.pool
    # open on no day at all: every slot is outside the hours
    shut = await create_coworking(
        pool, timezone="Europe/Berlin", opening_hours={}, max_days_ahead=400
    )
    seat = await create_seat(pool, shut)
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    refused = await scene.book(
        starts_at, ends_at, seat_id=seat, headers={"Idempotency-Key": "shut"}
    )
    assert refused.status_code == 400
    assert refused.json()["description"].endswith(
        "is not entirely within opening hours"
    )
    assert await _no_workflow(scene, _reservation_for_key(scene, "shut"))
    assert await _kept(scene) == (0, 0)


async def test_a_closure_is_still_judged_by_the_claim(scene: Scene) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    await _close(scene, starts_at, ends_at, "painting")
    refused = await scene.book(
        starts_at, ends_at, headers={"Idempotency-Key": "painting"}
    )
    assert refused.status_code == 400
    assert refused.json()["description"].endswith("(painting)")
    # the claim refused it, and kept the refusal for a reset to find
    assert not await _no_workflow(scene, _reservation_for_key(scene, "painting"))
    assert await _kept(scene) == (0, 1)


async def _booked_and_cancelled(
    scene: Scene, headers: dict[str, str]
) -> tuple[str, datetime, datetime]:
    """A booking made with the key in `headers`, then cancelled by its client."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    booked = await scene.book(starts_at, ends_at, headers=headers)
    assert booked.status_code == 200, booked.text
    rid = booked.json()["id"]
    cancelled = await scene.api.delete(
        f"/api/reservations/{rid}", headers=scene.client.headers
    )
    assert cancelled.status_code == 204
    return rid, starts_at, ends_at


async def test_a_used_key_answers_as_it_did_though_the_seat_closed_since(
    scene: Scene,
) -> None:
    headers = {"Idempotency-Key": "then-closed"}
    rid, starts_at, ends_at = await _booked_and_cancelled(scene, headers)
    await _seat_takes_no_bookings(scene)
    retry = await scene.book(starts_at, ends_at, headers=headers)
    assert retry.status_code == 200, retry.text
    assert retry.json()["id"] == rid
    assert retry.json()["status"] == "cancelled"


async def test_a_key_refused_by_the_claim_keeps_its_refusal_after_rules_change(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    await _close(scene, starts_at, ends_at, "flooded")
    headers = {"Idempotency-Key": "flooded"}
    first = await scene.book(starts_at, ends_at, headers=headers)
    assert first.status_code == 400
    await _seat_takes_no_bookings(scene)
    retry = await scene.book(starts_at, ends_at, headers=headers)
    assert retry.status_code == 400
    assert retry.json() == first.json()


@pytest.mark.parametrize("keyed", [False, True])
async def test_a_booking_refused_early_books_once_the_rule_allows_it(
    scene: Scene, keyed: bool
) -> None:
    """Nothing was accepted, so nothing is kept: the same request, sent again
    once the seat is open, books (as a payment API does with a request that
    failed its checks)."""
    pool = scene.resources.pool
    seat = await create_seat(pool, scene.coworking_id, number=5, active=False)
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    headers = {"Idempotency-Key": "reopened"} if keyed else {}
    assert (
        await scene.book(starts_at, ends_at, seat_id=seat, headers=headers)
    ).status_code == 400
    await pool.execute("UPDATE coworking.seats SET active = true WHERE id = $1", seat)
    booked = await scene.book(starts_at, ends_at, seat_id=seat, headers=headers)
    assert booked.status_code == 200, booked.text
    assert booked.json()["seat_id"] == str(seat)


async def _updates(scene: Scene, reservation_id: str) -> list[str]:
    """The updates the workflow's history holds; its mails come and go beside."""
    handle = scene.env.client.get_workflow_handle(f"reservation-{reservation_id}")
    return [
        EventType.Name(event.event_type)
        async for event in handle.fetch_history_events()
        if "UPDATE" in EventType.Name(event.event_type)
    ]


async def test_a_move_that_breaks_a_rule_reaches_no_workflow(
    scene: Scene,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    url = f"/api/reservations/{reservation_id}"
    before = await _updates(scene, reservation_id)
    # the hold's
    assert before == [
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
        "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED",
    ]

    off_grid = await scene.api.patch(
        url,
        json={"starts_at": (starts_at + timedelta(minutes=5)).isoformat()},
        headers=scene.client.headers,
    )
    too_long = await scene.api.patch(
        url,
        json={"ends_at": (starts_at + timedelta(hours=13)).isoformat()},
        headers=scene.client.headers,
    )

    assert off_grid.status_code == too_long.status_code == 400
    assert off_grid.json()["description"].endswith("is off the 15-minute slot grid")
    assert too_long.json() == {
        "error": "rule_violation",
        "description": "ends_at: 780 minutes is longer than the maximum of 720",
    }
    assert await _updates(scene, reservation_id) == before


async def test_a_move_that_gives_time_back_is_judged_as_the_claim_judges_it(
    scene: Scene,
) -> None:
    """On a seat closed since the booking, a move that only shortens the
    booking goes ahead; one that takes new time is refused."""
    starts_at, ends_at = await scene.slot(hours_ahead=30, length_minutes=120)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    url = f"/api/reservations/{reservation_id}"
    await _seat_takes_no_bookings(scene)
    before = await _updates(scene, reservation_id)

    later = await scene.api.patch(
        url,
        json={"starts_at": (starts_at + timedelta(hours=1)).isoformat()},
        headers=scene.client.headers,
    )
    assert later.status_code == 400
    assert later.json()["description"] == "seat_id: seat 1 takes no bookings"
    assert await _updates(scene, reservation_id) == before

    shorter = await scene.api.patch(
        url,
        json={"ends_at": (ends_at - timedelta(hours=1)).isoformat()},
        headers=scene.client.headers,
    )
    assert shorter.status_code == 200, shorter.text
    assert shorter.json()["ends_at"] == (
        ends_at - timedelta(hours=1)
    ).isoformat().replace("+00:00", "Z")


async def test_a_key_whose_claim_still_waits_is_not_refused_by_a_rule_changed_since(
    scene: Scene, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Told 503, the client asks again with the key, as told: the booking in
    its workflow answers, not the rules as they are while it waits."""
    monkeypatch.setattr(reservations, "ANSWER_WAIT_SECONDS", 1.0)
    await scene.workers.aclose()
    scene.workers = contextlib.AsyncExitStack()
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    key = {"Idempotency-Key": "waits"}

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        waiting = await scene.book(starts_at, ends_at, headers=key)
        gc.collect()
    assert waiting.status_code == 503
    # the start's fate, parked on the operation, is not left to be logged
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []

    await _seat_takes_no_bookings(scene)
    again = await scene.book(starts_at, ends_at, headers=key)
    assert again.status_code == 503, again.text

    await scene.resources.pool.execute(
        "UPDATE coworking.seats SET active = true WHERE id = $1", scene.seat_id
    )
    await scene.restart_workers()
    answered = await scene.book(starts_at, ends_at, headers=key)
    assert answered.status_code == 200, answered.text
    assert answered.json()["id"] == str(_reservation_for_key(scene, "waits"))


async def test_a_used_key_answers_though_its_seat_was_deleted_since(
    scene: Scene,
) -> None:
    key = {"Idempotency-Key": "seat-gone"}
    rid, starts_at, ends_at = await _booked_and_cancelled(scene, key)
    await scene.resources.pool.execute(
        "UPDATE coworking.seats SET deleted_at = now() WHERE id = $1", scene.seat_id
    )

    retry = await scene.book(starts_at, ends_at, headers=key)
    other_body = await scene.book(starts_at, ends_at + timedelta(hours=1), headers=key)
    unkeyed = await scene.book(starts_at, ends_at)

    assert retry.status_code == 200, retry.text
    assert (retry.json()["id"], retry.json()["status"]) == (rid, "cancelled")
    assert other_body.status_code == 409
    assert other_body.json() == {
        "error": "conflict",
        "description": "header.Idempotency-Key: already used for a different request",
    }
    assert unkeyed.status_code == 404
    assert unkeyed.json()["description"] == f"seat_id: no seat {scene.seat_id}"


async def test_a_staff_booking_its_claim_refuses_leaves_no_mark_of_staff(
    scene: Scene,
) -> None:
    """The mark that staff made a booking tells a manager's check on a client
    apart; a booking that never was must leave none."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    assert (await scene.book(starts_at, ends_at)).status_code == 200
    rival = await create_client(scene.resources.pool, scene.resources.settings)
    body = {
        "seat_id": str(scene.seat_id),
        "starts_at": starts_at.isoformat(),
        "ends_at": ends_at.isoformat(),
        "client_id": str(rival.id),
    }
    headers = {**scene.admin.headers, "Idempotency-Key": "for-rival"}
    for _ in range(2):
        taken = await scene.api.post("/api/reservations", json=body, headers=headers)
        assert taken.status_code == 409, taken.text
        assert (
            await scene.resources.pool.fetchval(
                "SELECT count(*) FROM reservation.staff_bookings"
            )
            == 0
        )
    assert await _kept(scene) == (1, 1)


async def test_a_used_key_whose_workflow_task_failed_is_told_to_ask_again(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker stopped mid-task leaves the task failed until another takes
    it; the server refuses updates meanwhile, which is a wait, not a fault."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    key = {"Idempotency-Key": "task-failed"}
    assert (await scene.book(starts_at, ends_at, headers=key)).status_code == 200
    await scene.resources.pool.execute(
        "UPDATE coworking.seats SET deleted_at = now() WHERE id = $1", scene.seat_id
    )

    async def task_failed(*_: object) -> None:
        raise RPCError(
            "Unable to perform workflow execution update due to Workflow Task"
            " in failed state.",
            RPCStatusCode.FAILED_PRECONDITION,
            b"",
        )

    monkeypatch.setattr(reservations, "_join_existing", task_failed)
    retry = await scene.book(starts_at, ends_at, headers=key)

    assert (retry.status_code, retry.json()) == (
        503,
        {
            "error": "unavailable",
            "description": "reservation: still being worked on; ask again shortly"
            " (a booking with the same Idempotency-Key gets its answer)",
        },
    )


@pytest.mark.parametrize(
    "query_fails",
    [
        None,
        # what a running dev server answers (tester M): a worker that hangs,
        # or one gone long enough that no poller is seen
        RPCStatusCode.CANCELLED,
        RPCStatusCode.FAILED_PRECONDITION,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.UNAVAILABLE,
        # the client retries a timed-out query on its own (tester N)
        "hangs",
    ],
    ids=[
        "workers-stopped",
        "cancelled",
        "no-poller",
        "deadline",
        "unavailable",
        "hangs",
    ],
)
async def test_a_key_retried_while_no_worker_answers_is_answered_from_its_row(
    scene: Scene,
    monkeypatch: pytest.MonkeyPatch,
    query_fails: RPCStatusCode | str | None,
) -> None:
    """The booking held and its worker has stopped since: the row its claim
    wrote answers the key, without waiting on an update nobody takes."""
    key = {"Idempotency-Key": "worker-gone"}
    starts_at, ends_at, booked = await _held_then_workers_stop(scene, key)
    monkeypatch.setattr(reservations, "QUERY_WAIT", timedelta(seconds=1))
    if query_fails is not None:

        async def failing_query(*args: object, **kwargs: object) -> None:
            if query_fails == "hangs":
                await asyncio.Event().wait()
            assert isinstance(query_fails, RPCStatusCode)
            raise RPCError("the query found no worker", query_fails, b"")

        monkeypatch.setattr(WorkflowHandle, "query", failing_query)

    async def no_update(*args: object) -> None:
        raise AssertionError("the row answers; no update is sent")

    monkeypatch.setattr(reservations, "_join_existing", no_update)

    again = await scene.book(starts_at, ends_at, headers=key)
    other_body = await scene.book(starts_at, ends_at + timedelta(hours=1), headers=key)

    assert again.status_code == 200, again.text
    # the notification's state is the workflow's to tell, as on a GET
    assert again.json() == {**booked.json(), "notification_status": None}
    assert other_body.status_code == 409, other_body.text
    assert other_body.json()["description"].startswith("header.Idempotency-Key:")
    assert await scene.resources.pool.fetchval(
        "SELECT request_hash FROM reservation.reservations WHERE id = $1",
        uuid.UUID(booked.json()["id"]),
    ) == reservations.request_hash(
        client_id=scene.client.id, seat_id=scene.seat_id,
        starts_at=starts_at, ends_at=ends_at,
    )  # fmt: skip


async def test_a_booking_whose_workflow_task_failed_answers_503_not_500(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker took the workflow's task and hangs: the server refuses the
    update with FAILED_PRECONDITION until another worker answers (tester M)."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    error = RPCError(
        "Unable to perform workflow execution update due to Workflow Task in"
        " failed state", RPCStatusCode.FAILED_PRECONDITION, b"",
    )  # fmt: skip

    async def refused(*args: object, start_workflow_operation, **kwargs) -> None:
        # as the SDK does, the start's outcome is parked on the operation too
        start_workflow_operation._workflow_handle.set_exception(error)
        raise error

    monkeypatch.setattr(
        scene.resources.temporal, "execute_update_with_start_workflow", refused
    )

    answer = await scene.book(
        starts_at, ends_at, headers={"Idempotency-Key": "task-failed"}
    )

    assert (answer.status_code, answer.json()) == (
        503,
        {
            "error": "unavailable",
            "description": "reservation: still being worked on; ask again shortly"
            " (a booking with the same Idempotency-Key gets its answer)",
        },
    )
    assert await _kept(scene) == (0, 0)


async def _update_refused(*args: object, **kwargs: object) -> None:
    # a worker took the workflow's task and hangs (tester M)
    raise RPCError("Workflow Task in failed state",
                   RPCStatusCode.FAILED_PRECONDITION, b"")  # fmt: skip


async def _update_unanswered(*args: object, **kwargs: object) -> None:
    await asyncio.sleep(60)


@pytest.mark.parametrize(
    ("update", "description"),
    [
        (
            _update_refused,
            "reservation: its workflow waits for a worker; ask again shortly",
        ),
        # a move has no key to ask again with (tester N)
        (
            _update_unanswered,
            "reservation: still being worked on, and the change may yet be"
            " made; read the reservation before asking again",
        ),
    ],
    ids=["task-failed", "no-answer-in-time"],
)
async def test_a_move_without_its_workflows_answer_is_a_503_that_says_why(
    scene: Scene, monkeypatch: pytest.MonkeyPatch, update, description: str
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    booked = await scene.book(starts_at, ends_at)
    assert booked.status_code == 200, booked.text
    monkeypatch.setattr(reservations, "ANSWER_WAIT_SECONDS", 0.5)
    monkeypatch.setattr(WorkflowHandle, "execute_update", update)

    moved = await scene.api.patch(
        f"/api/reservations/{booked.json()['id']}",
        json={"starts_at": (starts_at + timedelta(hours=2)).isoformat()},
        headers=scene.client.headers,
    )

    assert (moved.status_code, moved.json()) == (
        503,
        {"error": "unavailable", "description": description},
    )
    row = await scene.resources.pool.fetchrow(
        "SELECT starts_at, version FROM reservation.reservations WHERE id = $1",
        uuid.UUID(booked.json()["id"]),
    )
    assert (row["starts_at"], row["version"]) == (starts_at, 1)


async def test_a_key_retried_with_a_seat_that_is_not_there_is_told_apart_by_its_row(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another body under a held booking's key, naming no seat, while no
    worker answers: the row's hash refuses it at once (tester N)."""
    key = {"Idempotency-Key": "seat-unknown"}
    starts_at, ends_at, booked = await _held_then_workers_stop(scene, key)

    async def no_update(*args: object) -> None:
        raise AssertionError("the row answers; no update is sent")

    monkeypatch.setattr(reservations, "_join_existing", no_update)
    other = await scene.book(starts_at, ends_at, seat_id=uuid.uuid4(), headers=key)

    assert (other.status_code, other.json()) == (
        409,
        {
            "error": "conflict",
            "description": "header.Idempotency-Key: already used for a different"
            " request",
        },
    )


async def test_a_read_whose_query_hangs_answers_from_the_row_in_the_query_wait(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client retries a timed-out query by itself; a GET waited for two
    of them while the worker was down (tester M)."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    booked = await scene.book(starts_at, ends_at)
    assert booked.status_code == 200, booked.text
    monkeypatch.setattr(reservations, "QUERY_WAIT", timedelta(seconds=0.5))

    async def hangs(*args: object, **kwargs: object) -> None:
        await asyncio.Event().wait()

    monkeypatch.setattr(WorkflowHandle, "query", hangs)
    read = await scene.api.get(
        f"/api/reservations/{booked.json()['id']}", headers=scene.client.headers
    )

    assert read.status_code == 200, read.text
    assert read.json() == {**booked.json(), "notification_status": None}


async def _held_then_workers_stop(
    scene: Scene, key: dict[str, str]
) -> tuple[datetime, datetime, httpx.Response]:
    """A booking a day ahead, held under `key`, whose workers then stop."""
    starts_at, ends_at = await scene.slot(hours_ahead=30)
    booked = await scene.book(starts_at, ends_at, headers=key)
    assert booked.status_code == 200, booked.text
    await scene.workers.aclose()
    scene.workers = contextlib.AsyncExitStack()
    return starts_at, ends_at, booked


async def test_a_coworking_that_takes_no_bookings_hides_its_seats_from_clients(
    scene: Scene,
) -> None:
    pool = scene.resources.pool
    hidden = await create_coworking(pool, active=False)
    seat = await create_seat(pool, hidden, number=3)
    starts_at, ends_at = await scene.slot(hours_ahead=30)

    # as a seat that never was: a client learns nothing of the coworking
    for asked in (seat, uuid.uuid4()):
        refused = await scene.book(
            starts_at, ends_at, seat_id=asked, headers={"Idempotency-Key": str(asked)}
        )
        assert (refused.status_code, refused.json()) == (
            404,
            {"error": "not_found", "description": f"seat_id: no seat {asked}"},
        )
        assert await _no_workflow(scene, _reservation_for_key(scene, str(asked)))
    booked = (await scene.book(starts_at, ends_at)).json()
    moved = await scene.api.patch(
        f"/api/reservations/{booked['id']}",
        json={"seat_id": str(seat)},
        headers=scene.client.headers,
    )
    assert (moved.status_code, moved.json()["description"]) == (
        404,
        f"seat_id: no seat {seat}",
    )
    assert (await scene.api.get(
        f"/api/reservations/{booked['id']}", headers=scene.client.headers
    )).json()["seat_id"] == booked["seat_id"]  # fmt: skip

    # a client who booked there reads the coworking, and is told why
    other = await create_seat(pool, hidden, number=4)
    await pool.execute(
        "INSERT INTO reservation.reservations (id, client_id, seat_id, coworking_id,"
        " starts_at, ends_at, status) VALUES ($1, $2, $3, $4, $5, $6, 'completed')",
        uuid.uuid4(), scene.client.id, other, hidden,
        starts_at - timedelta(days=3), ends_at - timedelta(days=3),
    )  # fmt: skip
    told = await scene.book(starts_at, ends_at, seat_id=seat)
    assert (told.status_code, told.json()["description"]) == (
        400,
        "seat_id: the coworking takes no bookings",
    )

    # staff, who see the coworking, are told why
    by_staff = await scene.api.post(
        "/api/reservations",
        json={"seat_id": str(seat), "client_id": str(scene.client.id),
              "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat()},
        headers=scene.admin.headers,
    )  # fmt: skip
    assert (by_staff.status_code, by_staff.json()) == (
        400,
        {
            "error": "rule_violation",
            "description": "seat_id: the coworking takes no bookings",
        },
    )
    # the booking above and the past one: nothing else was written
    assert await _kept(scene) == (2, 0)
