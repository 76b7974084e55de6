"""PostgreSQL outages: mail and bookings delayed while they last, not dropped or
doubled.

The mail worker reaches PostgreSQL through a relay that the test cuts, while
the reservation worker and the API keep their own connections.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.mail import MailActivities
from activities.mail_render import message_id
from proto import reservation_pb2 as pb
from tests.pg_proxy import PostgresProxy
from tests.reservations.conftest import Scene, running_workers
from tests.reservations.test_reservations_lifecycle import sent, wait_for
from workers import mail as mail_worker
from workflows.reservation import ReservationWorkflow

STATE = pb.ReservationState


@pytest_asyncio.fixture
async def proxy(pg_dsn: str) -> AsyncIterator[PostgresProxy]:
    # a short folder: a Unix socket's path has a small limit
    with tempfile.TemporaryDirectory(prefix="pgp-") as folder:
        relay = PostgresProxy(pg_dsn, Path(folder))
        await relay.restore()
        yield relay
        relay.cut()


@pytest_asyncio.fixture
async def relayed_pool(proxy: PostgresProxy) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(proxy.dsn, min_size=1, max_size=4)
    yield pool
    pool.terminate()


async def _mail_worker_behind(scene: Scene, pool: asyncpg.Pool) -> None:
    """Replace the scene's workers with ones whose mail worker uses `pool`."""
    await scene.workers.aclose()
    scene.workers = contextlib.AsyncExitStack()
    await scene.workers.enter_async_context(
        running_workers(scene.resources, mail_pool=pool)
    )


def _confirmations(smtp, reservation_id: str) -> list[str]:
    wanted = f"<reservation-{reservation_id}.confirmation.v1@tlounge.local>"
    return [
        m.message["Message-ID"].strip()
        for m in smtp.received
        if m.message["Message-ID"].strip() == wanted
    ]


async def test_mail_waits_out_a_database_outage_longer_than_its_retries(
    scene: Scene, smtp, proxy: PostgresProxy, relayed_pool: asyncpg.Pool
) -> None:
    await _mail_worker_behind(scene, relayed_pool)
    proxy.cut()
    starts_at, ends_at = await scene.slot(hours_ahead=8)
    response = await scene.book(starts_at, ends_at)
    assert response.status_code == 200
    reservation_id = response.json()["id"]
    handle = scene.resources.temporal.get_workflow_handle(
        f"reservation-{reservation_id}"
    )

    # eight attempts take about two minutes; this is several rounds of them
    await scene.sleep(timedelta(minutes=8))
    state = await handle.query(
        ReservationWorkflow.state, result_type=pb.ReservationState
    )
    assert state.notification_status == pb.NOTIFICATION_STATUS_PENDING
    assert list(state.failed_mails) == []
    described = await handle.describe()
    fields = described.raw_description.workflow_execution_info.search_attributes
    assert fields.indexed_fields["NotificationStatus"].data == b'"ok"'
    events = [event async for event in handle.fetch_history_events()]
    failures = [
        e.activity_task_failed_event_attributes.failure
        for e in events
        if e.HasField("activity_task_failed_event_attributes")
    ]
    assert len(failures) >= 2
    assert {f.application_failure_info.type for f in failures} == {
        "DatabaseUnavailable"
    }
    patches = [
        json.loads(
            e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data
        )
        for e in events
        if e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    # a booking of this revision waits for the database without asking for a patch
    assert patches == []
    assert _confirmations(smtp, reservation_id) == []

    await proxy.restore()
    await scene.sleep(timedelta(minutes=2))
    await wait_for(lambda: sent(scene, reservation_id))
    assert [row["kind"] for row in await sent(scene, reservation_id)] == [
        "confirmation"
    ]
    assert len(_confirmations(smtp, reservation_id)) == 1
    state = await handle.query(
        ReservationWorkflow.state, result_type=pb.ReservationState
    )
    assert state.notification_status == pb.NOTIFICATION_STATUS_SENT


async def test_mail_accepted_before_its_record_failed_is_recorded_not_sent_again(
    scene: Scene,
    smtp,
    proxy: PostgresProxy,
    relayed_pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts_at, ends_at = await scene.slot(hours_ahead=8)
    reservation_id = (await scene.book(starts_at, ends_at)).json()["id"]
    await wait_for(lambda: sent(scene, reservation_id))
    settings = scene.resources.settings
    smtp_connections = mail_worker.smtp_connections(settings)
    activities = MailActivities(relayed_pool, settings, smtp_connections)
    request = pb.MailInput(
        reservation_id=reservation_id,
        kind=pb.MAIL_KIND_REMINDER,
        version=1,
        seat_id=str(scene.seat_id),
    )
    request.starts_at.FromDatetime(starts_at)
    request.ends_at.FromDatetime(ends_at)
    request.due_at.FromDatetime(starts_at - timedelta(hours=3))
    expected = message_id(reservation_id, pb.MAIL_KIND_REMINDER, 1, "tlounge.local")
    before = len(smtp.received)

    deliver = activities._deliver

    async def deliver_then_lose_the_database(message: object, kind: str) -> None:
        # the server took the message; PostgreSQL goes before it is recorded
        await deliver(message, kind)
        proxy.cut()

    monkeypatch.setattr(activities, "_deliver", deliver_then_lose_the_database)
    beats: list[object] = []
    first = ActivityEnvironment()
    first.on_heartbeat = lambda *details: beats.extend(details)
    try:
        with pytest.raises(ApplicationError) as failed:
            await first.run(activities.send_mail, request)
        assert failed.value.type == "DatabaseUnavailable"
        assert beats == [expected]
        assert len(smtp.received) == before + 1
        assert [row["kind"] for row in await sent(scene, reservation_id)] == [
            "confirmation"
        ]

        await proxy.restore()
        retry = ActivityEnvironment()
        retry.info = dataclasses.replace(retry.info, attempt=2, heartbeat_details=beats)
        result = await retry.run(activities.send_mail, request)
    finally:
        await smtp_connections.close()
    assert (result.sent, result.message_id) == (True, expected)
    assert len(smtp.received) == before + 1
    rows = await sent(scene, reservation_id)
    assert sorted((row["kind"], row["message_id"]) for row in rows) == [
        ("confirmation", expected.replace("reminder", "confirmation")),
        ("reminder", expected),
    ]


async def test_a_booking_whose_claim_meets_a_database_outage_answers_503_then_its_key(
    scene: Scene,
    proxy: PostgresProxy,
    relayed_pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api.services import reservations

    monkeypatch.setattr(reservations, "ANSWER_WAIT_SECONDS", 2.0)
    await scene.workers.aclose()
    scene.workers = contextlib.AsyncExitStack()
    await scene.workers.enter_async_context(
        running_workers(scene.resources, reservation_pool=relayed_pool)
    )
    proxy.cut()
    starts_at, ends_at = await scene.slot(hours_ahead=8)
    key = {"Idempotency-Key": "through-the-outage"}

    waiting = await scene.book(starts_at, ends_at, headers=key)

    assert waiting.status_code == 503
    assert waiting.headers["Retry-After"] == "5"
    assert waiting.json() == {
        "error": "unavailable",
        "description": "reservation: still being worked on; ask again shortly (a"
        " booking with the same Idempotency-Key gets its answer)",
    }
    assert (
        await scene.resources.pool.fetchval(
            "SELECT count(*) FROM reservation.reservations"
        )
        == 0
    )

    await proxy.restore()
    answered = await scene.book(starts_at, ends_at, headers=key)
    assert answered.status_code == 200, answered.text
    rows = await scene.resources.pool.fetch("SELECT id FROM reservation.reservations")
    assert [str(row["id"]) for row in rows] == [answered.json()["id"]]
