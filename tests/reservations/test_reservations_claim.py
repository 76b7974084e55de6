"""The claim transaction itself, called as the worker calls it, against PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import valkey.asyncio as valkey

from activities.reservation import ReservationActivities, grains, seat_lock_key
from api.errors import Conflict
from api.models.coworkings import ClosureCreate
from api.services import coworkings, reservation_reads
from api.settings import Settings
from proto import reservation_pb2 as pb
from tests.factories import create_client, create_coworking, create_seat

# a Monday, 10:00 in Berlin
MONDAY = datetime(2099, 1, 5, 9, tzinfo=UTC)


def _claim(
    client_id: uuid.UUID,
    seat_id: uuid.UUID,
    starts_at: datetime,
    hours: float = 1,
    *,
    reservation_id: uuid.UUID | None = None,
    version: int = 1,
) -> pb.ClaimInput:
    request = pb.ClaimInput(
        reservation_id=str(reservation_id or uuid.uuid4()),
        client_id=str(client_id),
        seat_id=str(seat_id),
        version=version,
        reschedule=version > 1,
    )
    request.starts_at.FromDatetime(starts_at)
    request.ends_at.FromDatetime(starts_at + timedelta(hours=hours))
    request.now.FromDatetime(MONDAY - timedelta(days=1))
    return request


async def _closure(
    db: asyncpg.Pool, coworking_id: uuid.UUID, seat_id: uuid.UUID | None, hour: int
) -> None:
    await db.execute(
        "INSERT INTO coworking.closures (id, coworking_id, seat_id, starts_at, ends_at,"
        " reason) VALUES ($1, $2, $3, $4, $5, 'works')",
        uuid.uuid4(), coworking_id, seat_id, MONDAY.replace(hour=hour),
        MONDAY.replace(hour=hour + 2),
    )  # fmt: skip


async def _two_seats_two_clients(
    db: asyncpg.Pool, settings: Settings
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    coworking = await create_coworking(db)
    seats = [await create_seat(db, coworking, number=n) for n in (1, 2)]
    clients = [(await create_client(db, settings)).id for _ in range(2)]
    return seats[0], seats[1], clients[0], clients[1]


async def _booked_on_monday(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> tuple[ReservationActivities, pb.ClaimInput]:
    """The activities, and an hour on seat 1 on MONDAY, claimed."""
    seat, _, client, _ = await _two_seats_two_clients(db, settings)
    claims = ReservationActivities(db, kv)
    booked = _claim(client, seat, MONDAY)
    await claims.claim_seat(booked)
    return claims, booked


async def _claims(db: asyncpg.Pool, table: str, reservation_id: str) -> list[datetime]:
    rows = await db.fetch(
        f"SELECT slot_start FROM reservation.{table} WHERE reservation_id = $1"  # noqa: S608
        " ORDER BY slot_start",
        uuid.UUID(reservation_id),
    )
    return [row["slot_start"] for row in rows]


async def test_a_claim_writes_its_row_and_a_claim_per_grain(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    coworking = await create_coworking(db, timezone="Europe/Berlin", auto_confirm=False)
    seat = await create_seat(db, coworking, number=3)
    client = (await create_client(db, settings)).id
    request = _claim(client, seat, MONDAY, hours=0.5)

    result = await ReservationActivities(db, kv).claim_seat(request)

    assert (result.outcome, result.status) == (
        pb.HOLD_OUTCOME_HELD, pb.RESERVATION_STATUS_HELD,
    )  # fmt: skip
    assert (result.coworking_id, result.rules.timezone) == (
        str(coworking), "Europe/Berlin",
    )  # fmt: skip
    row = await db.fetchrow(
        "SELECT seat_id, client_id, coworking_id, status, version"
        " FROM reservation.reservations WHERE id = $1",
        uuid.UUID(request.reservation_id),
    )
    assert tuple(row) == (seat, client, coworking, "held", 1)
    expected = grains(MONDAY, MONDAY + timedelta(minutes=30))
    assert len(expected) == 6
    assert await _claims(db, "seat_claims", request.reservation_id) == expected
    assert await _claims(db, "client_claims", request.reservation_id) == expected


async def test_closures_of_the_seat_and_the_coworking_refuse_only_where_they_fall(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    coworking = await create_coworking(db)
    seat = await create_seat(db, coworking, number=4)
    other = await create_seat(db, coworking, number=5)
    client = (await create_client(db, settings)).id
    await _closure(db, coworking, seat, 8)  # 08:00-10:00 on this seat
    await _closure(db, coworking, other, 12)  # another seat's
    await _closure(db, coworking, None, 20)  # the whole coworking, in the evening
    claims = ReservationActivities(db, kv)

    closed = await claims.claim_seat(_claim(client, seat, MONDAY))
    elsewhere = await claims.claim_seat(_claim(client, seat, MONDAY.replace(hour=12)))
    evening = await claims.claim_seat(_claim(client, other, MONDAY.replace(hour=20)))

    assert (closed.outcome, closed.rule) == (pb.HOLD_OUTCOME_REJECTED, "closure")
    assert elsewhere.outcome == pb.HOLD_OUTCOME_HELD
    assert (evening.outcome, evening.rule) == (pb.HOLD_OUTCOME_REJECTED, "closure")
    assert await db.fetchval("SELECT count(*) FROM reservation.reservations") == 1


async def test_a_claim_waits_for_a_closure_in_flight_and_then_sees_it(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    coworking = await create_coworking(db)
    seat = await create_seat(db, coworking, number=4)
    client = (await create_client(db, settings)).id
    claims = ReservationActivities(db, kv)
    # a closure's transaction, stopped between its lock and its commit
    async with db.acquire() as conn:
        closing = conn.transaction()
        await closing.start()
        await coworkings._hold_off_claims(conn, coworking)
        await _closure(conn, coworking, seat, 9)
        claim = asyncio.create_task(claims.claim_seat(_claim(client, seat, MONDAY)))
        await asyncio.sleep(0.5)
        waited = not claim.done()
        await closing.commit()
    answer = await claim

    assert waited
    assert (answer.outcome, answer.rule) == (pb.HOLD_OUTCOME_REJECTED, "closure")
    assert await db.fetchval("SELECT count(*) FROM reservation.reservations") == 0


async def test_a_closure_waits_for_a_claim_in_flight_and_then_refuses(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    coworking = await create_coworking(db)
    seat = await create_seat(db, coworking, number=4)
    client = (await create_client(db, settings)).id
    claims = ReservationActivities(db, kv)
    request = _claim(client, seat, MONDAY)
    closure = ClosureCreate(
        seat_id=None, starts_at=MONDAY.replace(hour=8), ends_at=MONDAY.replace(hour=11)
    )
    # the claim's own transaction, stopped before its commit
    async with db.acquire() as conn:
        claiming = conn.transaction()
        await claiming.start()
        held = await claims._claim(
            conn, request, uuid.UUID(request.reservation_id), set()
        )
        closing = asyncio.create_task(
            coworkings.create_closure(db, kv, coworking, closure, now=datetime.now(UTC))
        )
        await asyncio.sleep(0.5)
        waited = not closing.done()
        await claiming.commit()

    assert waited and held.outcome == pb.HOLD_OUTCOME_HELD
    with pytest.raises(Conflict) as refused:
        await closing
    assert refused.value.description == (
        f"closure: 1 active reservation falls inside it; cancel it first:"
        f" {request.reservation_id} (seat 4, 2099-01-05 09:00–10:00) (times in UTC)"
    )
    assert await db.fetchval("SELECT count(*) FROM coworking.closures") == 0


async def test_a_seat_delete_in_flight_holds_off_a_claim_that_then_finds_it_gone(
    db: asyncpg.Pool,
    kv: valkey.Valkey,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    coworking = await create_coworking(db)
    seat = await create_seat(db, coworking, number=4)
    client = (await create_client(db, settings)).id
    claims = ReservationActivities(db, kv)
    claim = None
    # the delete's own transaction, stopped after its count of upcoming bookings
    real_count = reservation_reads.upcoming_count

    async def count_then_let_a_claim_in(conn, **kwargs):
        nonlocal claim
        counted = await real_count(conn, **kwargs)
        claim = asyncio.create_task(claims.claim_seat(_claim(client, seat, MONDAY)))
        await asyncio.sleep(0.5)
        assert not claim.done()
        return counted

    monkeypatch.setattr(reservation_reads, "upcoming_count", count_then_let_a_claim_in)
    await coworkings.delete_seat(db, kv, coworking, seat, now=MONDAY)
    assert claim is not None
    answer = await claim

    assert (answer.outcome, answer.rule) == (pb.HOLD_OUTCOME_REJECTED, "seat_not_found")
    assert await db.fetchval("SELECT count(*) FROM reservation.reservations") == 0


async def test_refusals_name_their_reason_and_write_nothing(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    coworking = await create_coworking(db, max_active_per_client=1)
    staff_only = await create_seat(db, coworking, number=1, internal_only=True)
    seat = await create_seat(db, coworking, number=2)
    guest = (await create_client(db, settings)).id
    gone = (await create_client(db, settings)).id
    await db.execute("UPDATE client.clients SET deleted_at = now() WHERE id = $1", gone)
    claims = ReservationActivities(db, kv)
    assert (await claims.claim_seat(_claim(guest, seat, MONDAY))).outcome == (
        pb.HOLD_OUTCOME_HELD
    )

    answers = [
        await claims.claim_seat(request)
        for request in (
            _claim(guest, staff_only, MONDAY.replace(hour=14)),
            _claim(guest, uuid.uuid4(), MONDAY.replace(hour=14)),
            _claim(gone, seat, MONDAY.replace(hour=14)),
            _claim(guest, seat, MONDAY.replace(hour=14)),
        )
    ]

    assert [(a.outcome, a.rule) for a in answers] == [
        (pb.HOLD_OUTCOME_REJECTED, "internal_only"),
        (pb.HOLD_OUTCOME_REJECTED, "seat_not_found"),
        (pb.HOLD_OUTCOME_REJECTED, "client_not_found"),
        (pb.HOLD_OUTCOME_REJECTED, "active_limit"),
    ]
    assert answers[3].description.startswith("client: already holds 1 active")
    assert await db.fetchval("SELECT count(*) FROM reservation.reservations") == 1
    assert await db.fetchval("SELECT count(*) FROM reservation.seat_claims") == 12


async def test_a_taken_seat_or_client_slot_is_a_conflict_that_writes_nothing(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    seat, other, anna, ben = await _two_seats_two_clients(db, settings)
    claims = ReservationActivities(db, kv)
    first = _claim(anna, seat, MONDAY)
    assert (await claims.claim_seat(first)).outcome == pb.HOLD_OUTCOME_HELD

    on_seat = await claims.claim_seat(_claim(ben, seat, MONDAY + timedelta(minutes=30)))
    by_client = await claims.claim_seat(
        _claim(anna, other, MONDAY - timedelta(minutes=30))
    )
    touching = await claims.claim_seat(_claim(ben, seat, MONDAY + timedelta(hours=1)))

    for answer, scope in ((on_seat, "seat"), (by_client, "client")):
        assert answer.outcome == pb.HOLD_OUTCOME_CONFLICT
        assert answer.conflict.scope == scope
        assert answer.conflict.starts_at.ToDatetime(tzinfo=UTC) == MONDAY
        assert answer.conflict.ends_at.ToDatetime(tzinfo=UTC) == MONDAY + timedelta(
            hours=1
        )
    assert touching.outcome == pb.HOLD_OUTCOME_HELD
    assert await db.fetchval("SELECT count(*) FROM reservation.reservations") == 2
    assert await db.fetchval("SELECT count(*) FROM reservation.client_claims") == 24


async def test_a_refused_booking_claimed_again_is_refused_again_as_it_was(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    """A workflow reset to its first task runs its claim again."""
    seat, _, anna, ben = await _two_seats_two_clients(db, settings)
    claims = ReservationActivities(db, kv)
    first = _claim(anna, seat, MONDAY)
    await claims.claim_seat(first)
    refused = _claim(ben, seat, MONDAY)
    answer = await claims.claim_seat(refused)
    assert answer.outcome == pb.HOLD_OUTCOME_CONFLICT
    # the seat comes free after ben was told 409
    await claims.release_seat(
        pb.ReleaseInput(
            reservation_id=first.reservation_id, status=pb.RESERVATION_STATUS_CANCELLED
        )
    )

    again = await claims.claim_seat(refused)

    assert again == answer
    assert await db.fetchval(
        "SELECT count(*) FROM reservation.reservations WHERE id = $1",
        uuid.UUID(refused.reservation_id),
    ) == 0  # fmt: skip
    assert await db.fetchval("SELECT count(*) FROM reservation.seat_claims") == 0
    # a booking of its own, with another id, takes the seat
    assert (await claims.claim_seat(_claim(ben, seat, MONDAY))).outcome == (
        pb.HOLD_OUTCOME_HELD
    )


async def test_refusals_are_forgotten_once_past_any_reset(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    claims = ReservationActivities(db, kv)
    old, recent = uuid.uuid4(), uuid.uuid4()
    for reservation_id, age in ((old, 91), (recent, 89)):
        await db.execute(
            "INSERT INTO reservation.refused_bookings"
            " (reservation_id, result, created_at)"
            " VALUES ($1, '', now() - make_interval(days => $2))",
            reservation_id, age,
        )  # fmt: skip

    # staff's mark on the recent one, left by a retried key that raced its
    # claim, and one on a booking that holds
    booked = uuid.uuid4()
    for reservation_id in (recent, booked):
        await db.execute(
            "INSERT INTO reservation.staff_bookings (reservation_id, admin_id)"
            " VALUES ($1, $2)",
            reservation_id, uuid.uuid4(),
        )  # fmt: skip

    assert await claims.forget_refusals() == 1
    left = await db.fetch("SELECT reservation_id FROM reservation.refused_bookings")
    assert [row["reservation_id"] for row in left] == [recent]
    marks = await db.fetch("SELECT reservation_id FROM reservation.staff_bookings")
    assert [row["reservation_id"] for row in marks] == [booked]


async def test_a_claim_found_made_answers_with_the_rules_it_was_made_on(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    """A workflow reset to its first task keeps the terms of its booking."""
    seat, other, client, _ = await _two_seats_two_clients(db, settings)
    coworking = await db.fetchval(
        "SELECT coworking_id FROM coworking.seats WHERE id = $1", seat
    )
    claims = ReservationActivities(db, kv)
    booked = _claim(client, seat, MONDAY)
    made = await claims.claim_seat(booked)

    async def rules_become(lead: int, grace: int) -> None:
        await db.execute(
            "UPDATE coworking.coworkings SET reminder_lead_minutes = $2,"
            " checkin_grace_minutes = $3 WHERE id = $1",
            coworking, lead, grace,
        )  # fmt: skip

    await rules_become(60, 20)
    again = await claims.claim_seat(booked)
    assert (again.rules.reminder_lead_minutes, again.rules.checkin_grace_minutes) == (
        made.rules.reminder_lead_minutes,
        made.rules.checkin_grace_minutes,
    )
    assert made.rules.reminder_lead_minutes == 180

    # a move is claimed on the rules of its day, and keeps them in turn
    move = _claim(
        client, other, MONDAY, reservation_id=uuid.UUID(booked.reservation_id),
        version=2,
    )  # fmt: skip
    moved = await claims.claim_seat(move)
    await rules_become(30, 5)
    moved_again = await claims.claim_seat(move)
    for answer in (moved, moved_again):
        rules = answer.rules
        assert (rules.reminder_lead_minutes, rules.checkin_grace_minutes) == (60, 20)

    # a row claimed before the rules were kept on it reads the coworking's
    await db.execute("UPDATE reservation.reservations SET rules = NULL")
    unkept = (await claims.claim_seat(move)).rules
    assert (unkept.reminder_lead_minutes, unkept.checkin_grace_minutes) == (30, 5)


async def test_a_retried_claim_answers_held_even_once_its_seat_is_gone(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    coworking = await create_coworking(db, timezone="Asia/Almaty")
    seat = await create_seat(db, coworking)
    client = (await create_client(db, settings)).id
    request = _claim(client, seat, MONDAY)
    claims = ReservationActivities(db, kv)
    assert (await claims.claim_seat(request)).outcome == pb.HOLD_OUTCOME_HELD
    await db.execute(
        "UPDATE coworking.seats SET deleted_at = now() WHERE id = $1", seat
    )

    again = await claims.claim_seat(request)

    assert (again.outcome, again.status) == (
        pb.HOLD_OUTCOME_HELD, pb.RESERVATION_STATUS_CONFIRMED,
    )  # fmt: skip
    assert (again.coworking_id, again.rules.timezone) == (str(coworking), "Asia/Almaty")
    assert await db.fetchval("SELECT count(*) FROM reservation.seat_claims") == 12


async def test_a_reschedule_moves_every_claim_in_one_transaction(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    seat, other, anna, ben = await _two_seats_two_clients(db, settings)
    claims = ReservationActivities(db, kv)
    mine = _claim(anna, seat, MONDAY)
    await claims.claim_seat(mine)
    await claims.claim_seat(_claim(ben, other, MONDAY.replace(hour=12)))
    rid = uuid.UUID(mine.reservation_id)

    blocked = await claims.claim_seat(
        _claim(anna, other, MONDAY.replace(hour=12), reservation_id=rid, version=2)
    )
    moved = await claims.claim_seat(
        _claim(anna, other, MONDAY.replace(hour=15), reservation_id=rid, version=2)
    )

    assert (blocked.outcome, blocked.conflict.scope) == (
        pb.HOLD_OUTCOME_CONFLICT,
        "seat",
    )
    assert moved.outcome == pb.HOLD_OUTCOME_HELD
    row = await db.fetchrow(
        "SELECT seat_id, starts_at, version FROM reservation.reservations"
        " WHERE id = $1",
        rid,
    )
    assert tuple(row) == (other, MONDAY.replace(hour=15), 2)
    assert await _claims(db, "seat_claims", mine.reservation_id) == grains(
        MONDAY.replace(hour=15), MONDAY.replace(hour=16)
    )


async def test_the_active_limit_counts_only_the_coworkings_own_reservations(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    strict = await create_coworking(db, max_active_per_client=1)
    other = await create_coworking(db, max_active_per_client=5)
    here = await create_seat(db, strict, number=1)
    there = await create_seat(db, other, number=1)
    client = (await create_client(db, settings)).id
    claims = ReservationActivities(db, kv)
    for hour in (9, 11):
        held = await claims.claim_seat(_claim(client, there, MONDAY.replace(hour=hour)))
        assert held.outcome == pb.HOLD_OUTCOME_HELD

    first = await claims.claim_seat(_claim(client, here, MONDAY.replace(hour=13)))
    second = await claims.claim_seat(_claim(client, here, MONDAY.replace(hour=15)))

    assert first.outcome == pb.HOLD_OUTCOME_HELD
    assert (second.outcome, second.rule, second.description) == (
        pb.HOLD_OUTCOME_REJECTED,
        "active_limit",
        "client: already holds 1 active reservations, the most this coworking"
        " allows is 1",
    )


async def _active_reservations(db: asyncpg.Pool, client: uuid.UUID) -> list[uuid.UUID]:
    rows = await db.fetch(
        "SELECT id FROM reservation.reservations WHERE client_id = $1"
        " AND status IN ('held', 'confirmed', 'checked_in')",
        client,
    )
    return [row["id"] for row in rows]


async def test_a_move_is_not_held_to_a_limit_lowered_below_what_the_client_has(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    coworking = await create_coworking(db, max_active_per_client=3)
    seat = await create_seat(db, coworking, number=1)
    other = await create_seat(db, coworking, number=2)
    client = (await create_client(db, settings)).id
    claims = ReservationActivities(db, kv)
    booked = [_claim(client, seat, MONDAY + timedelta(days=day)) for day in (0, 1)]
    for request in booked:
        assert (await claims.claim_seat(request)).outcome == pb.HOLD_OUTCOME_HELD
    await db.execute(
        "UPDATE coworking.coworkings SET max_active_per_client = 1 WHERE id = $1",
        coworking,
    )

    moved = await claims.claim_seat(
        _claim(
            client, other, MONDAY.replace(hour=14),
            reservation_id=uuid.UUID(booked[0].reservation_id), version=2,
        )
    )  # fmt: skip
    third = await claims.claim_seat(_claim(client, other, MONDAY + timedelta(days=2)))

    assert moved.outcome == pb.HOLD_OUTCOME_HELD
    assert (third.outcome, third.rule) == (pb.HOLD_OUTCOME_REJECTED, "active_limit")
    row = await db.fetchrow(
        "SELECT seat_id, starts_at FROM reservation.reservations WHERE id = $1",
        uuid.UUID(booked[0].reservation_id),
    )
    assert (row["seat_id"], row["starts_at"]) == (other, MONDAY.replace(hour=14))
    assert await _claims(db, "seat_claims", booked[0].reservation_id) == [
        MONDAY.replace(hour=14) + timedelta(minutes=5 * n) for n in range(12)
    ]
    assert sorted(await _active_reservations(db, client)) == sorted(
        uuid.UUID(request.reservation_id) for request in booked
    )


async def test_a_clients_second_claim_waits_for_their_first_and_then_counts_it(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    coworking = await create_coworking(db, max_active_per_client=1)
    seat = await create_seat(db, coworking, number=1)
    other = await create_seat(db, coworking, number=2)
    client = (await create_client(db, settings)).id
    claims = ReservationActivities(db, kv)
    first = _claim(client, seat, MONDAY)
    # the first claim's own transaction, stopped before its commit; the second is
    # on another seat and another day, so no claim row of theirs can collide
    async with db.acquire() as conn:
        claiming = conn.transaction()
        await claiming.start()
        held = await claims._claim(conn, first, uuid.UUID(first.reservation_id), set())
        second = asyncio.create_task(
            claims.claim_seat(_claim(client, other, MONDAY + timedelta(days=1)))
        )
        await asyncio.sleep(0.5)
        waited = not second.done()
        await claiming.commit()
    answer = await second

    assert held.outcome == pb.HOLD_OUTCOME_HELD
    assert (answer.outcome, answer.rule, answer.description) == (
        pb.HOLD_OUTCOME_REJECTED,
        "active_limit",
        "client: already holds 1 active reservations, the most this coworking"
        " allows is 1",
    )
    assert await _active_reservations(db, client) == [uuid.UUID(first.reservation_id)]
    assert waited


async def test_claims_by_one_client_at_once_keep_to_their_active_limit(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    coworking = await create_coworking(db, max_active_per_client=1)
    seats = [await create_seat(db, coworking, number=n) for n in range(1, 7)]
    client = (await create_client(db, settings)).id
    claims = ReservationActivities(db, kv)
    requests = [
        _claim(client, seat, MONDAY + timedelta(days=day))
        for day, seat in enumerate(seats)
    ]

    answers = await asyncio.gather(*(claims.claim_seat(r) for r in requests))

    outcomes = sorted((a.outcome, a.rule) for a in answers)
    assert (
        outcomes
        == [(pb.HOLD_OUTCOME_HELD, "")]
        + [(pb.HOLD_OUTCOME_REJECTED, "active_limit")] * 5
    )
    held = {
        uuid.UUID(request.reservation_id)
        for request, answer in zip(requests, answers, strict=True)
        if answer.outcome == pb.HOLD_OUTCOME_HELD
    }
    assert set(await _active_reservations(db, client)) == held


async def test_a_reschedule_onto_a_seat_of_another_coworking_is_refused(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    home = await create_coworking(db)
    elsewhere = await create_coworking(db, auto_confirm=False)
    seat = await create_seat(db, home, number=1)
    foreign = await create_seat(db, elsewhere, number=7)
    client = (await create_client(db, settings)).id
    claims = ReservationActivities(db, kv)
    booked = _claim(client, seat, MONDAY)
    assert (await claims.claim_seat(booked)).outcome == pb.HOLD_OUTCOME_HELD
    reservation_id = uuid.UUID(booked.reservation_id)

    moved = await claims.claim_seat(
        _claim(client, foreign, MONDAY, reservation_id=reservation_id, version=2)
    )

    assert (moved.outcome, moved.rule, moved.description) == (
        pb.HOLD_OUTCOME_REJECTED,
        "other_coworking",
        "seat_id: seat 7 is in another coworking; a booking moves only between"
        " seats of its own coworking",
    )
    row = await db.fetchrow(
        "SELECT seat_id, coworking_id, version FROM reservation.reservations"
        " WHERE id = $1",
        reservation_id,
    )
    assert tuple(row) == (seat, home, 1)
    assert await _claims(db, "seat_claims", booked.reservation_id) == grains(
        MONDAY, MONDAY + timedelta(hours=1)
    )


async def test_claims_on_one_seat_take_turns_on_its_lock(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    seat, _, anna, _ = await _two_seats_two_clients(db, settings)
    claims = ReservationActivities(db, kv)
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", seat_lock_key(seat))
        claiming = asyncio.create_task(claims.claim_seat(_claim(anna, seat, MONDAY)))
        await asyncio.sleep(0.3)
        # still waiting for the seat while another transaction holds it
        assert not claiming.done()
    assert (await claiming).outcome == pb.HOLD_OUTCOME_HELD


async def _deadlocks(db: asyncpg.Pool) -> int:
    return await db.fetchval(
        "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
    )


async def test_a_move_racing_bookings_over_its_old_and_new_grains_never_deadlocks(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    coworking = await create_coworking(
        db, max_days_ahead=400, max_active_per_client=1000
    )
    seat = await create_seat(db, coworking, number=1)
    clients = [(await create_client(db, settings)).id for _ in range(5)]
    claims = ReservationActivities(db, kv)
    before = await _deadlocks(db)
    for day in range(12):
        # the move's new grains and its old ones both meet the bookings' grains
        base = MONDAY + timedelta(days=7 * day)
        mine = _claim(clients[0], seat, base.replace(hour=11), hours=2)
        assert (await claims.claim_seat(mine)).outcome == pb.HOLD_OUTCOME_HELD
        move = _claim(
            clients[0], seat, base.replace(hour=9), hours=1.5,
            reservation_id=uuid.UUID(mine.reservation_id), version=2,
        )  # fmt: skip
        bookings = [
            _claim(client, seat, base.replace(hour=10, minute=15 * n), hours=1)
            for n, client in enumerate(clients[1:])
        ]
        results = await asyncio.gather(
            *(claims.claim_seat(request) for request in [*bookings, move])
        )
        assert all(
            result.outcome in (pb.HOLD_OUTCOME_HELD, pb.HOLD_OUTCOME_CONFLICT)
            for result in results
        )
    assert await _deadlocks(db) == before


async def test_a_move_asked_by_a_workflow_behind_its_row_is_refused(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    """A run reset past a move holds version 1 where the row holds 2: its
    next move, version 2 as it counts, is not a retry of the row's."""
    seat, other, client, _ = await _two_seats_two_clients(db, settings)
    claims = ReservationActivities(db, kv)
    booked = _claim(client, seat, MONDAY)
    rid = uuid.UUID(booked.reservation_id)
    await claims.claim_seat(booked)
    moved = _claim(client, other, MONDAY, reservation_id=rid, version=2)
    assert (await claims.claim_seat(moved)).outcome == pb.HOLD_OUTCOME_HELD

    retried = await claims.claim_seat(moved)
    behind = await claims.claim_seat(
        _claim(client, seat, MONDAY.replace(hour=14), reservation_id=rid, version=2)
    )

    assert (retried.outcome, retried.seat_id, retried.version) == (
        pb.HOLD_OUTCOME_HELD, str(other), 2,
    )  # fmt: skip
    assert (behind.outcome, behind.rule) == (
        pb.HOLD_OUTCOME_REJECTED,
        "workflow_behind",
    )
    assert behind.description.startswith("version: the reservation's record is at")
    # the refusal carries the row, for the run to take over
    assert (behind.seat_id, behind.version, behind.status) == (
        str(other), 2, pb.RESERVATION_STATUS_CONFIRMED,
    )  # fmt: skip
    assert (behind.starts_at.ToDatetime(UTC), behind.ends_at.ToDatetime(UTC)) == (
        MONDAY,
        MONDAY + timedelta(hours=1),
    )
    row = await db.fetchrow(
        "SELECT seat_id, starts_at, version FROM reservation.reservations"
        " WHERE id = $1",
        rid,
    )
    assert tuple(row) == (other, MONDAY, 2)
    expected = grains(MONDAY, MONDAY + timedelta(hours=1))
    assert await _claims(db, "seat_claims", str(rid)) == expected
    owners = await db.fetch(
        "SELECT DISTINCT seat_id FROM reservation.seat_claims"
        " WHERE reservation_id = $1",
        rid,
    )
    assert [r["seat_id"] for r in owners] == [other]


async def test_a_closed_reservation_keeps_the_end_it_had(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    """A run reset past a cancel decides a no-show, or the end, of its own."""
    claims, booked = await _booked_on_monday(db, kv, settings)
    cancel = pb.ReleaseInput(
        reservation_id=booked.reservation_id,
        status=pb.RESERVATION_STATUS_CANCELLED,
        reason="by phone",
    )
    assert (await claims.release_seat(cancel)).released == 24
    # a retry of the same close is answered as the first
    assert (await claims.release_seat(cancel)).released == 0

    no_show = pb.ReleaseInput(
        reservation_id=booked.reservation_id, status=pb.RESERVATION_STATUS_NO_SHOW
    )
    no_show.release_from.FromDatetime(MONDAY + timedelta(minutes=15))
    completed = pb.StatusInput(
        reservation_id=booked.reservation_id, status=pb.RESERVATION_STATUS_COMPLETED
    )
    completed.at.FromDatetime(MONDAY + timedelta(hours=1))

    assert (await claims.release_seat(no_show)).released == 0
    assert (await claims.record_status(completed)).changed is False
    moved = await claims.claim_seat(
        _claim(
            uuid.UUID(booked.client_id), uuid.UUID(booked.seat_id),
            MONDAY.replace(hour=14), reservation_id=uuid.UUID(booked.reservation_id),
            version=2,
        )
    )  # fmt: skip
    assert (moved.outcome, moved.rule) == (pb.HOLD_OUTCOME_REJECTED, "workflow_behind")
    assert moved.description.startswith(
        "status: the reservation's record says cancelled"
    )
    assert await _claims(db, "seat_claims", booked.reservation_id) == []
    row = await db.fetchrow(
        "SELECT status, cancel_reason FROM reservation.reservations WHERE id = $1",
        uuid.UUID(booked.reservation_id),
    )
    assert tuple(row) == ("cancelled", "by phone")


async def _status(db: asyncpg.Pool, reservation_id: str) -> str:
    return await db.fetchval(
        "SELECT status FROM reservation.reservations WHERE id = $1",
        uuid.UUID(reservation_id),
    )


def _timed_close(
    reservation_id: str, status: int, decided_on: int, version: int
) -> pb.ReleaseInput:
    close = pb.ReleaseInput(
        reservation_id=reservation_id, status=status, decided_on=decided_on,
        version=version,
    )  # fmt: skip
    close.release_from.FromDatetime(MONDAY + timedelta(minutes=15))
    return close


async def test_a_timers_close_leaves_a_row_ahead_of_its_run_as_it_stands(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    """A run reset to a point in between decides its timers on its own slot."""
    seat, other, client, _ = await _two_seats_two_clients(db, settings)
    claims = ReservationActivities(db, kv)
    booked = _claim(client, seat, MONDAY)
    rid = booked.reservation_id
    await claims.claim_seat(booked)
    later = MONDAY + timedelta(days=1)
    await claims.claim_seat(
        _claim(client, other, later, reservation_id=uuid.UUID(rid), version=2)
    )
    confirmed, no_show = pb.RESERVATION_STATUS_CONFIRMED, pb.RESERVATION_STATUS_NO_SHOW

    stale = await claims.release_seat(_timed_close(rid, no_show, confirmed, 1))

    assert stale.released == 0
    ahead = stale.ahead
    assert (ahead.seat_id, ahead.version, ahead.status) == (str(other), 2, confirmed)
    assert (ahead.starts_at.ToDatetime(UTC), ahead.ends_at.ToDatetime(UTC)) == (
        later,
        later + timedelta(hours=1),
    )
    assert await _claims(db, "seat_claims", rid) == grains(
        later, later + timedelta(hours=1)
    )

    # at the row's version, but checked in since the run last looked
    checked_in = pb.StatusInput(
        reservation_id=rid, status=pb.RESERVATION_STATUS_CHECKED_IN
    )
    checked_in.at.FromDatetime(later)
    assert (await claims.record_status(checked_in)).changed is True
    stale = await claims.release_seat(_timed_close(rid, no_show, confirmed, 2))
    assert (stale.released, stale.ahead.status) == (
        0,
        pb.RESERVATION_STATUS_CHECKED_IN,
    )
    row = await db.fetchrow(
        "SELECT status, version FROM reservation.reservations WHERE id = $1",
        uuid.UUID(rid),
    )
    assert tuple(row) == ("checked_in", 2)

    # the end, asked at the row's version, is written, and so is its retry
    completed = pb.StatusInput(
        reservation_id=rid, status=pb.RESERVATION_STATUS_COMPLETED, version=2
    )
    completed.at.FromDatetime(later + timedelta(hours=1))
    first = await claims.record_status(completed)
    again = await claims.record_status(completed)
    assert (first.changed, first.HasField("ahead")) == (True, False)
    assert (again.changed, again.HasField("ahead")) == (False, False)


async def test_a_timers_close_at_the_rows_version_closes_and_its_retry_agrees(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    claims, booked = await _booked_on_monday(db, kv, settings)
    rid = booked.reservation_id
    close = _timed_close(
        rid, pb.RESERVATION_STATUS_NO_SHOW, pb.RESERVATION_STATUS_CONFIRMED, 1
    )

    first = await claims.release_seat(close)
    again = await claims.release_seat(close)

    # the grains from the deadline on: 15 minutes in, 9 of the hour's 12
    assert (first.released, first.HasField("ahead")) == (18, False)
    assert (again.released, again.HasField("ahead")) == (0, False)
    assert await _claims(db, "seat_claims", rid) == grains(
        MONDAY, MONDAY + timedelta(minutes=15)
    )
    assert await _status(db, rid) == "no_show"


async def test_the_end_of_a_run_behind_a_cancel_takes_the_cancel(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    claims, booked = await _booked_on_monday(db, kv, settings)
    rid = booked.reservation_id
    cancel = pb.ReleaseInput(reservation_id=rid, status=pb.RESERVATION_STATUS_CANCELLED)
    await claims.release_seat(cancel)
    completed = pb.StatusInput(
        reservation_id=rid, status=pb.RESERVATION_STATUS_COMPLETED, version=1
    )
    completed.at.FromDatetime(MONDAY + timedelta(hours=1))

    result = await claims.record_status(completed)

    assert (result.changed, result.ahead.status) == (
        False,
        pb.RESERVATION_STATUS_CANCELLED,
    )
    assert await _status(db, rid) == "cancelled"


async def test_a_row_behind_its_run_takes_the_runs_close(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    """A database restored from a backup: the run knows a later version."""
    claims, booked = await _booked_on_monday(db, kv, settings)
    completed = pb.StatusInput(
        reservation_id=booked.reservation_id,
        status=pb.RESERVATION_STATUS_COMPLETED,
        version=3,
    )
    completed.at.FromDatetime(MONDAY + timedelta(hours=1))

    result = await claims.record_status(completed)

    assert (result.changed, result.HasField("ahead")) == (True, False)


def test_a_move_refused_as_behind_reaches_the_caller_as_a_conflict() -> None:
    from api.services.reservations import _raise_for_outcome

    said = "version: the reservation's record is at version 2, ahead of its workflow"
    with pytest.raises(Conflict) as raised:
        _raise_for_outcome(
            pb.HOLD_OUTCOME_REJECTED, pb.Conflict(), "workflow_behind", said
        )

    assert (raised.value.status_code, raised.value.description) == (409, said)


async def test_overdue_finds_open_rows_past_a_deadline_of_their_own(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    """The sweep's list of runs to nudge: a hold run out, a grace passed, an end,
    each as the row's own claim set it, whatever the coworking says today."""
    held_here = await create_coworking(db, auto_confirm=False, hold_minutes=60)
    graced = await create_coworking(db, checkin_grace_minutes=15)
    seats = [await create_seat(db, graced, number=n) for n in (1, 2, 3)]
    claims = ReservationActivities(db, kv)

    async def book(seat: uuid.UUID, starts_at: datetime) -> uuid.UUID:
        client = (await create_client(db, settings)).id
        request = _claim(client, seat, starts_at)
        assert (await claims.claim_seat(request)).outcome == pb.HOLD_OUTCOME_HELD
        return uuid.UUID(request.reservation_id)

    held = await book(await create_seat(db, held_here), MONDAY)
    confirmed = await book(seats[0], MONDAY + timedelta(hours=1))
    checked_in = await book(seats[1], MONDAY + timedelta(hours=2))
    cancelled = await book(seats[2], MONDAY - timedelta(hours=1))
    for reservation_id, status in (
        (checked_in, "checked_in"),
        (cancelled, "cancelled"),
    ):
        await db.execute(
            "UPDATE reservation.reservations SET status = $2 WHERE id = $1",
            reservation_id, status,
        )  # fmt: skip
    # rules changed after the bookings do not move their deadlines
    await db.execute(
        "UPDATE coworking.coworkings SET hold_minutes = 5,"
        " checkin_grace_minutes = NULL WHERE id = $1",
        held_here,
    )
    await db.execute(
        "UPDATE coworking.coworkings SET checkin_grace_minutes = 120,"
        " hold_minutes = 5 WHERE id = $1",
        graced,
    )
    # the claims' clock: the hold runs an hour from it
    hold_ends = MONDAY - timedelta(days=1) + timedelta(hours=1)
    minute = timedelta(minutes=1)

    async def overdue(before: datetime) -> set[uuid.UUID]:
        return {reservation_id for _, reservation_id in await claims.overdue(before)}

    assert await overdue(hold_ends - minute) == set()
    assert await overdue(hold_ends + minute) == {held}
    # the grace of a confirmed row; a checked-in one waits for its end
    grace_ends = MONDAY + timedelta(hours=1, minutes=15)
    assert await overdue(grace_ends - minute) == {held}
    assert await overdue(grace_ends + minute) == {held, confirmed}
    assert await overdue(MONDAY + timedelta(hours=3) + minute) == {
        held, confirmed, checked_in,
    }  # fmt: skip
    assert cancelled not in await overdue(MONDAY + timedelta(days=1))


async def test_a_claim_keeps_the_holds_end_that_a_run_keeps(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    """A held booking's hold runs from its claim; a move of it keeps that end,
    and a client's move of a confirmed one back to held starts a new one."""
    coworking = await create_coworking(db, auto_confirm=False, hold_minutes=60)
    seat = await create_seat(db, coworking, number=1)
    client = await create_client(db, settings)
    claims = ReservationActivities(db, kv)
    first = _claim(client.id, seat, MONDAY)
    reservation_id = uuid.UUID(first.reservation_id)
    booked_at = MONDAY - timedelta(days=1)

    async def deadlines() -> tuple:
        row = await db.fetchrow(
            "SELECT status, hold_expires_at, no_show_at"
            " FROM reservation.reservations WHERE id = $1",
            reservation_id,
        )
        return tuple(row)

    claimed = await claims.claim_seat(first)
    assert claimed.outcome == pb.HOLD_OUTCOME_HELD
    # only a retry, which finds the row made, tells the run the hold's end
    assert not claimed.HasField("hold_expires_at")
    assert await deadlines() == ("held", booked_at + timedelta(hours=1), None)
    retried = await claims.claim_seat(first)
    assert retried.hold_expires_at.ToDatetime(tzinfo=UTC) == booked_at + timedelta(
        hours=1
    )

    move = _claim(client.id, seat, MONDAY + timedelta(hours=2),
                  reservation_id=reservation_id, version=2)  # fmt: skip
    move.requested_by = f"client:{client.id}"
    move.now.FromDatetime(booked_at + timedelta(minutes=30))
    assert (await claims.claim_seat(move)).outcome == pb.HOLD_OUTCOME_HELD
    assert await deadlines() == ("held", booked_at + timedelta(hours=1), None)

    await db.execute(
        "UPDATE reservation.reservations SET status = 'confirmed' WHERE id = $1",
        reservation_id,
    )
    await db.execute(
        "UPDATE coworking.coworkings SET checkin_grace_minutes = 10 WHERE id = $1",
        coworking,
    )
    again = _claim(client.id, seat, MONDAY + timedelta(hours=4),
                   reservation_id=reservation_id, version=3)  # fmt: skip
    again.requested_by = f"client:{client.id}"
    again.now.FromDatetime(booked_at + timedelta(hours=5))
    assert (await claims.claim_seat(again)).outcome == pb.HOLD_OUTCOME_HELD
    assert await deadlines() == (
        "held",
        booked_at + timedelta(hours=6),
        MONDAY + timedelta(hours=4, minutes=10),
    )
    read = await claims.read_row(pb.StatusInput(reservation_id=str(reservation_id)))
    assert read.hold_expires_at.ToDatetime(tzinfo=UTC) == booked_at + timedelta(hours=6)


async def test_a_client_move_keeps_its_fallback_and_goes_back_to_it_once(
    db: asyncpg.Pool, kv: valkey.Valkey, settings: Settings
) -> None:
    """Activity by activity: the move claims beside what staff confirmed, a
    retry answers as the move did, a run behind learns the fallback, and the
    lapse goes back to it once, however often it is asked."""
    coworking = await create_coworking(db, auto_confirm=False)
    seat = await create_seat(db, coworking, number=1)
    other = await create_seat(db, coworking, number=2)
    client = (await create_client(db, settings)).id
    claims = ReservationActivities(db, kv)
    booked = _claim(client, seat, MONDAY)
    rid = uuid.UUID(booked.reservation_id)
    await claims.claim_seat(booked)
    confirm = pb.StatusInput(
        reservation_id=str(rid), status=pb.RESERVATION_STATUS_CONFIRMED
    )
    assert (await claims.record_status(confirm)).changed
    # half an hour later, on the other seat: the clients' grains overlap
    move = _claim(client, other, MONDAY + timedelta(minutes=30), reservation_id=rid,
                  version=2)  # fmt: skip
    move.requested_by = f"client:{client}"
    move.keep_fallback = True

    moved = await claims.claim_seat(move)
    retried = await claims.claim_seat(move)
    behind = await claims.claim_seat(
        _claim(client, seat, MONDAY.replace(hour=14), reservation_id=rid, version=2)
    )

    for answer in (moved, retried, behind):
        assert (
            answer.fallback.seat_id,
            answer.fallback.starts_at.ToDatetime(UTC),
            answer.fallback.ends_at.ToDatetime(UTC),
        ) == (str(seat), MONDAY, MONDAY + timedelta(hours=1))
    assert (moved.status, retried.status, behind.rule) == (
        pb.RESERVATION_STATUS_HELD, pb.RESERVATION_STATUS_HELD, "workflow_behind",
    )  # fmt: skip
    new_grains = grains(MONDAY + timedelta(minutes=30), MONDAY + timedelta(hours=1.5))
    old_grains = grains(MONDAY, MONDAY + timedelta(hours=1))
    seat_rows = await db.fetch(
        "SELECT seat_id, slot_start FROM reservation.seat_claims"
        " WHERE reservation_id = $1 ORDER BY seat_id, slot_start",
        rid,
    )
    assert sorted((r["seat_id"], r["slot_start"]) for r in seat_rows) == sorted(
        [(seat, g) for g in old_grains] + [(other, g) for g in new_grains]
    )
    assert await _claims(db, "client_claims", str(rid)) == sorted(
        set(old_grains) | set(new_grains)
    )

    stale = pb.ReleaseInput(reservation_id=str(rid), version=1)
    lapse = pb.ReleaseInput(reservation_id=str(rid), version=2)
    untouched = await claims.revert_move(stale)
    assert (untouched.status, untouched.version, untouched.seat_id) == (
        pb.RESERVATION_STATUS_HELD, 2, str(other),
    )  # fmt: skip
    back = await claims.revert_move(lapse)
    again = await claims.revert_move(lapse)
    for answer in (back, again):
        assert (answer.status, answer.version, answer.seat_id) == (
            pb.RESERVATION_STATUS_CONFIRMED, 3, str(seat),
        )  # fmt: skip
        assert not answer.HasField("fallback")
    assert await _claims(db, "seat_claims", str(rid)) == old_grains
    assert await _claims(db, "client_claims", str(rid)) == old_grains
    row = await db.fetchrow(
        "SELECT starts_at, hold_expires_at, fallback_seat_id, no_show_at"
        " FROM reservation.reservations WHERE id = $1",
        rid,
    )
    assert tuple(row) == (MONDAY, None, None, None)
