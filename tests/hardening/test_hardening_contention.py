import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.factories import create_client, create_coworking, create_seat
from tests.hardening.contention import contend, tally
from tests.hardening.invariants import violations
from tests.reservations.conftest import Scene

# On the real-time dev server: this much contention on the shared time-skipping
# server left later tests' clock stalled there.
pytestmark = pytest.mark.real_time_server

CLIENTS = 100
# twenty rounds take about 30 s here; the script `python -m tests.hardening.contention`
# runs them all against the real stack, the suite keeps a few
ROUNDS = 4


async def _arena(scene: Scene, clients: int) -> tuple[object, list, datetime]:
    """A round-the-clock UTC coworking where nobody runs into the active limit."""
    pool = scene.resources.pool
    coworking = await create_coworking(
        pool, timezone="UTC", max_days_ahead=400, max_active_per_client=ROUNDS + 5
    )
    seat = await create_seat(pool, coworking)
    accounts = [
        await create_client(pool, scene.resources.settings) for _ in range(clients)
    ]
    now = await scene.now()
    base = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=3)
    return seat, accounts, base


def _found(checks: dict[str, list]) -> dict[str, list]:
    return {name: rows for name, rows in checks.items() if rows}


async def test_book_one_seat_by_hundred_at_once_one_wins_every_round(
    scene: Scene,
) -> None:
    seat, accounts, base = await _arena(scene, CLIENTS)

    async def book(account, starts_at, ends_at):
        return await scene.book(starts_at, ends_at, seat_id=seat, account=account)

    started = time.monotonic()
    winners = []
    for round_ in range(ROUNDS):
        # rounds touch end to start, so each also proves adjacency is not a conflict
        starts_at = base + timedelta(hours=round_)
        responses = await contend(
            book, accounts, starts_at=starts_at, ends_at=starts_at + timedelta(hours=1)
        )
        assert tally(responses) == {200: 1, 409: CLIENTS - 1}, (
            round_,
            tally(responses),
        )
        losers = [r.json()["description"] for r in responses if r.status_code == 409]
        assert all(text.startswith("seat: already booked from") for text in losers)
        winners.append(next(r.json() for r in responses if r.status_code == 200))
    elapsed = time.monotonic() - started

    rows = await scene.resources.pool.fetch(
        "SELECT id, starts_at FROM reservation.reservations WHERE seat_id = $1"
        " ORDER BY starts_at",
        seat,
    )
    assert [str(row["id"]) for row in rows] == [winner["id"] for winner in winners]
    assert [row["starts_at"] for row in rows] == [
        base + timedelta(hours=n) for n in range(ROUNDS)
    ]
    claims = await scene.resources.pool.fetchval(
        "SELECT count(*) FROM reservation.seat_claims WHERE seat_id = $1", seat
    )
    assert claims == ROUNDS * 12
    assert _found(await violations(scene.resources.pool)) == {}
    # all rounds together, so a slow claim path shows up as a failure, not a long suite
    assert elapsed < ROUNDS * 10


async def test_book_without_unique_claims_is_caught_by_the_checks(scene: Scene) -> None:
    # The negative control: with the primary keys gone ON CONFLICT never fires,
    # which is the build without the guard. The same checks must then see it.
    pool = scene.resources.pool
    seat, accounts, base = await _arena(scene, 20)

    async def book(account, starts_at, ends_at):
        return await scene.book(starts_at, ends_at, seat_id=seat, account=account)

    await pool.execute(
        "ALTER TABLE reservation.seat_claims DROP CONSTRAINT seat_claims_pkey;"
        "ALTER TABLE reservation.client_claims DROP CONSTRAINT client_claims_pkey"
    )
    try:
        responses = await contend(
            book, accounts, starts_at=base, ends_at=base + timedelta(hours=1)
        )
        found = await violations(pool)
    finally:
        await pool.execute(
            "TRUNCATE reservation.seat_claims, reservation.client_claims;"
            "ALTER TABLE reservation.seat_claims ADD PRIMARY KEY (seat_id, slot_start);"
            "ALTER TABLE reservation.client_claims"
            " ADD PRIMARY KEY (client_id, slot_start)"
        )
    assert tally(responses) == {200: 20}
    pairs = {(row["first"], row["second"]) for row in found["overlapping reservations"]}
    assert len(pairs) == 20 * 19 // 2
    assert {row["holders"] for row in found["grains held twice"]} == {20}
    assert len(found["grains held twice"]) == 12
    assert found["reservations without their claims"] == []


async def test_check_overlaps_ignores_cancelled_reservation(scene: Scene) -> None:
    pool = scene.resources.pool
    seat, accounts, base = await _arena(scene, 2)
    rows = []
    for account, status in zip(accounts, ["cancelled", "confirmed"], strict=True):
        response = await scene.book(
            base, base + timedelta(hours=1), seat_id=seat, account=account
        )
        rows.append(response)
        if status == "cancelled":
            reservation_id = response.json()["id"]
            deleted = await scene.api.delete(
                f"/api/reservations/{reservation_id}", headers=account.headers
            )
            assert deleted.status_code == 204
    assert [r.status_code for r in rows] == [200, 200]
    assert _found(await violations(pool)) == {}
