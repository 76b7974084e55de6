"""The ops commands against the real-time dev server, whose visibility lists
workflows."""

import argparse
import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api import ops_reservations
from api.cache import availability_version
from api.errors import Conflict
from api.resources import Resources
from api.services import reservations
from proto import reservation_pb2 as pb
from proto.converter import DATA_CONVERTER
from tests.factories import create_client, create_coworking, create_seat
from tests.reservations.conftest import bounded_workers
from workflows.reservation import ReservationWorkflow


@pytest.fixture
def ops_settings(settings, dev_env: WorkflowEnvironment):
    return settings.model_copy(
        update={"temporal_address": dev_env.client.service_client.config.target_host}
    )


async def _wait(check, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await check()):
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)
    return value


def _ops_resources(
    settings, db, kv, dev_env: WorkflowEnvironment
) -> tuple[Client, Resources]:
    client = Client(**{**dev_env.client.config(), "data_converter": DATA_CONVERTER})
    return client, Resources(settings, db, kv, client, None)  # type: ignore[arg-type]


async def _book_two_days_ahead(resources: Resources) -> reservations.ReservationView:
    coworking = await create_coworking(resources.pool)
    seat = await create_seat(resources.pool, coworking)
    guest = await create_client(resources.pool, resources.settings)
    starts_at = (datetime.now(UTC) + timedelta(days=2)).replace(
        minute=0, second=0, microsecond=0
    )
    return await reservations.book(
        resources, client_id=guest.id, seat_id=seat, starts_at=starts_at,
        ends_at=starts_at + timedelta(hours=1), idempotency_key=None,
    )  # fmt: skip


async def test_notifications_failed_then_retry_all_delivers_and_show_cancel(
    ops_settings, db, kv, smtp, dev_env: WorkflowEnvironment, capsys
) -> None:
    client, resources = _ops_resources(ops_settings, db, kv, dev_env)
    smtp.refuse_with = "550 5.1.1 no such mailbox"
    async with bounded_workers(resources):
        view = await _book_two_days_ahead(resources)

        async def listed() -> bool:
            capsys.readouterr()
            args = argparse.Namespace(action="failed", reservation_id=None, all=False)
            assert await ops_reservations.notifications(ops_settings, args) == 0
            return str(view.id) in capsys.readouterr().out

        await _wait(listed)
        capsys.readouterr()
        failing = argparse.Namespace(action="show", reservation_id=view.id, reason=None)
        assert await ops_reservations.reservation(ops_settings, failing) == 0
        told = capsys.readouterr().out
        assert "notification_status  failed" in told
        assert "last mail failure    " in told
        assert (
            "last mail failure    'the SMTP server refused the message: 550"
            " 5.1.1 no such mailbox'" in told
        )
        smtp.refuse_with = None
        args = argparse.Namespace(action="retry", reservation_id=None, all=True)
        assert await ops_reservations.notifications(ops_settings, args) == 0
        assert f"retry requested for {view.id}" in capsys.readouterr().out

        async def delivered() -> bool:
            return any(
                m.message["Subject"].startswith("Your seat is booked")
                for m in smtp.received
            )

        await _wait(delivered)

        show = argparse.Namespace(action="show", reservation_id=view.id, reason=None)
        assert await ops_reservations.reservation(ops_settings, show) == 0
        out = capsys.readouterr().out
        assert f"id                   {view.id}" in out
        assert "status               confirmed" in out
        assert f"workflow             reservation-{view.id} (running)" in out
        assert "\nworkflow state " not in out
        # a workflow reset past a move lags its row: show says so
        await db.execute(
            "UPDATE reservation.reservations SET version = 2 WHERE id = $1", view.id
        )
        assert await ops_reservations.reservation(ops_settings, show) == 0
        lagging = capsys.readouterr().out
        # the answer is the row's; the line after it, what the run knows
        assert "version              2" in lagging
        assert (
            f"workflow state       confirmed seat {view.seat_id} from"
            f" {view.starts_at.isoformat()} to {view.ends_at.isoformat()} version 1"
            " (behind its record, as after a reset; told to look at its record, it"
            " takes it over)"
        ) in lagging

        cancel = argparse.Namespace(
            action="cancel", reservation_id=view.id, reason="phone call"
        )
        assert await ops_reservations.reservation(ops_settings, cancel) == 0
        row = await db.fetchrow(
            "SELECT status, cancel_reason FROM reservation.reservations WHERE id = $1",
            view.id,
        )
        assert (row["status"], row["cancel_reason"]) == ("cancelled", "phone call")
        capsys.readouterr()
        again = argparse.Namespace(
            action="cancel", reservation_id=view.id, reason="second call"
        )
        assert await ops_reservations.reservation(ops_settings, again) == 0
        assert capsys.readouterr().out == f"{view.id} was already cancelled\n"
        assert (
            await db.fetchval(
                "SELECT cancel_reason FROM reservation.reservations WHERE id = $1",
                view.id,
            )
            == "phone call"
        )

        async def nothing_to_retry() -> bool:
            capsys.readouterr()
            args = argparse.Namespace(action="retry", reservation_id=None, all=True)
            assert await ops_reservations.notifications(ops_settings, args) == 0
            return capsys.readouterr().out == (
                "no reservation has a failed notification; nothing to retry\n"
            )

        await _wait(nothing_to_retry)
        # the cancellation mail settled: its workflow closes once it is out
        await client.get_workflow_handle(f"reservation-{view.id}").result()
        one = argparse.Namespace(action="retry", reservation_id=view.id, all=False)
        assert (
            await ops_reservations.notifications(ops_settings, one)
            == ops_reservations.EXIT_BAD_INPUT
        )
        assert capsys.readouterr().err == (
            f"tlounge: {view.id}: notification_status sent; only a failed"
            " notification is retried\n"
        )

    missing = argparse.Namespace(
        action="show", reservation_id=uuid.uuid4(), reason=None
    )
    assert (
        await ops_reservations.reservation(ops_settings, missing)
        == ops_reservations.EXIT_NOT_FOUND
    )


@pytest.mark.parametrize(
    ("status", "code", "out", "err"),
    [
        ("cancelled", 0, "{id} was already cancelled\n", ""),
        ("expired", 2, "", "tlounge: {id}: cannot cancel an expired reservation\n"),
        ("completed", 2, "", "tlounge: {id}: cannot cancel a completed reservation\n"),
        ("no_show", 2, "", "tlounge: {id}: cannot cancel a no-show reservation\n"),
    ],
    ids=["cancelled", "expired", "completed", "no-show"],
)  # fmt: skip
async def test_reservation_cancel_of_an_ended_one_exits_non_zero_unless_cancelled(
    ops_settings, db, capsys, status, code, out, err
) -> None:
    coworking = await create_coworking(db)
    seat = await create_seat(db, coworking)
    guest = await create_client(db, ops_settings)
    reservation_id = uuid.uuid4()
    starts_at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    await db.execute(
        "INSERT INTO reservation.reservations (id, client_id, seat_id, coworking_id,"
        " starts_at, ends_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        reservation_id, guest.id, seat, coworking, starts_at,
        starts_at + timedelta(hours=1), status,
    )  # fmt: skip
    cancel = argparse.Namespace(
        action="cancel", reservation_id=reservation_id, reason="by phone"
    )

    assert await ops_reservations.reservation(ops_settings, cancel) == code

    assert capsys.readouterr() == (
        out.format(id=reservation_id),
        err.format(id=reservation_id),
    )
    row = await db.fetchrow(
        "SELECT status, cancel_reason FROM reservation.reservations WHERE id = $1",
        reservation_id,
    )
    assert (row["status"], row["cancel_reason"]) == (status, None)


async def test_reservation_show_with_no_stack_running_says_so(
    settings, db, capsys, tmp_path
) -> None:
    from api.devstack import free_port

    nobody = settings.model_copy(
        update={
            "temporal_address": f"127.0.0.1:{free_port()}",
            "data_dir": tmp_path / "no-stack",
        }
    )
    show = argparse.Namespace(action="show", reservation_id=uuid.uuid4(), reason=None)

    assert await ops_reservations.reservation(nobody, show) == 4

    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("tlounge: a dependency is unreachable: ")
    assert err.endswith(f" (no stack runs on {tmp_path / 'no-stack'})\n")


async def test_availability_rebuild_bumps_every_coworking_version(
    ops_settings, db, kv, capsys
) -> None:
    first, second = await create_coworking(db), await create_coworking(db, name="Two")
    before = [await availability_version(kv, c) for c in (first, second)]
    args = argparse.Namespace(action="rebuild")
    assert await ops_reservations.availability(ops_settings, args) == 0
    assert [await availability_version(kv, c) for c in (first, second)] == [
        v + 1 for v in before
    ]
    assert "availability cache rebuilt for 2 coworking(s)" in capsys.readouterr().out


async def test_demo_loads_once(ops_settings, db, capsys) -> None:
    assert await ops_reservations.demo(ops_settings, argparse.Namespace()) == 0
    assert "client  client@demo.tlounge.example" in capsys.readouterr().out
    assert await db.fetchval("SELECT count(*) FROM coworking.coworkings") == 2
    assert await ops_reservations.demo(ops_settings, argparse.Namespace()) == 0
    assert "nothing loaded" in capsys.readouterr().out
    assert await db.fetchval("SELECT count(*) FROM coworking.coworkings") == 2


@pytest.mark.parametrize(
    ("reason", "error"),
    [
        (
            "bad\r\nreason",
            "reason: must not contain control or formatting characters (U+000D)",
        ),
        ("y" * 201, "reason: String should have at most 200 characters"),
    ],
)
async def test_reservation_cancel_refuses_a_reason_the_api_refuses(
    ops_settings, db, capsys, reason: str, error: str
) -> None:
    coworking = await create_coworking(db)
    seat = await create_seat(db, coworking)
    guest = await create_client(db, ops_settings)
    reservation_id = uuid.uuid4()
    starts_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    await db.execute(
        "INSERT INTO reservation.reservations (id, client_id, seat_id, coworking_id,"
        " starts_at, ends_at, status) VALUES ($1, $2, $3, $4, $5, $6, 'confirmed')",
        reservation_id, guest.id, seat, coworking, starts_at,
        starts_at + timedelta(hours=1),
    )  # fmt: skip
    cancel = argparse.Namespace(
        action="cancel", reservation_id=reservation_id, reason=reason
    )

    assert await ops_reservations.reservation(ops_settings, cancel) == 2

    assert capsys.readouterr() == ("", f"tlounge: {error}\n")
    row = await db.fetchrow(
        "SELECT status, cancel_reason FROM reservation.reservations WHERE id = $1",
        reservation_id,
    )
    assert (row["status"], row["cancel_reason"]) == ("confirmed", None)


async def test_a_retry_for_a_workflow_ended_in_temporal_is_refused_not_an_error(
    ops_settings, db, kv, smtp, dev_env: WorkflowEnvironment, capsys
) -> None:
    client, resources = _ops_resources(ops_settings, db, kv, dev_env)
    smtp.refuse_with = "550 5.1.1 no such mailbox"
    async with bounded_workers(resources):
        view = await _book_two_days_ahead(resources)
        handle = client.get_workflow_handle(f"reservation-{view.id}")

        async def failed() -> bool:
            state = await handle.query(ReservationWorkflow.state)
            return state.notification_status == pb.NOTIFICATION_STATUS_FAILED

        await _wait(failed)
        # as an operator might, by mistake, from the Temporal UI
        await handle.terminate(reason="clicked the wrong one")

        with pytest.raises(Conflict) as refused:
            await reservations.retry_notification(
                resources, ops_reservations._OPERATOR, view.id
            )
        assert refused.value.description == (
            "reservation: its workflow has ended, so no mail of it waits for a retry"
        )
        capsys.readouterr()
        args = argparse.Namespace(action="retry", reservation_id=view.id, all=False)
        assert await ops_reservations.notifications(ops_settings, args) == 2
        assert capsys.readouterr().err == (
            f"tlounge: {view.id}: its workflow has ended, so no mail of it waits"
            " for a retry\n"
        )
    assert [m.message["Subject"] for m in smtp.received] == []


@pytest.mark.parametrize("action", ["show", "cancel"])
async def test_reservation_commands_give_up_on_a_hung_database(
    ops_settings, pg_dsn: str, tmp_path, capsys, action: str
) -> None:
    """With PostgreSQL stopped dead, the commands hung without a word until
    killed, where the runbook promises exit 4."""
    import time

    from api.resources import API_QUERY_TIMEOUT
    from tests.pg_proxy import PostgresProxy

    proxy = PostgresProxy(pg_dsn, tmp_path / "pg")
    await proxy.restore()
    settings = ops_settings.model_copy(update={"database_url": proxy.dsn})
    args = argparse.Namespace(
        action=action,
        reservation_id=uuid.uuid4(),
        reason="phone call" if action == "cancel" else None,
    )
    proxy.freeze()
    try:
        began = time.monotonic()
        code = await asyncio.wait_for(ops_reservations.reservation(settings, args), 30)
        waited = time.monotonic() - began
    finally:
        proxy.thaw()
        proxy.cut()

    assert code == 4
    assert capsys.readouterr().err == (
        f"tlounge: PostgreSQL is unreachable: no answer within {API_QUERY_TIMEOUT:g}"
        " s\n"
    )
    assert API_QUERY_TIMEOUT <= waited < 3 * API_QUERY_TIMEOUT


async def test_a_cancel_with_an_empty_reason_gives_the_client_the_default_one(
    ops_settings, db, kv, smtp, dev_env: WorkflowEnvironment, capsys
) -> None:
    _, resources = _ops_resources(ops_settings, db, kv, dev_env)
    async with bounded_workers(resources):
        view = await _book_two_days_ahead(resources)
        # as `--reason=` parses
        cancel = argparse.Namespace(action="cancel", reservation_id=view.id, reason="")
        assert await ops_reservations.reservation(ops_settings, cancel) == 0

    assert capsys.readouterr().out == f"cancelled {view.id}\n"
    assert (
        await db.fetchval(
            "SELECT cancel_reason FROM reservation.reservations WHERE id = $1", view.id
        )
        == "cancelled by operations"
    )
