"""Book, cancel and reschedule against a model calendar, step by step.

Hypothesis draws a sequence of operations; after each one the API's status
and the open reservations in the database must equal what a plain list of
intervals says. Every example gets its own coworking, so examples never see
each other's reservations.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import create_client, create_coworking, create_seat
from tests.hardening.invariants import violations
from tests.reservations.conftest import Scene

SEATS, CLIENTS = 3, 3
QUARTER = timedelta(minutes=15)
MAX_QUARTERS = 4  # the coworking's maximum duration: one hour

# a short day, so that clashes and touching intervals are common
starts = st.integers(min_value=0, max_value=7)
# mostly valid; zero is an empty interval and five is over the maximum: both 400
valid = st.integers(min_value=1, max_value=MAX_QUARTERS)
lengths = st.one_of(valid, valid, valid, st.sampled_from([0, MAX_QUARTERS + 1]))
booking = st.tuples(
    st.just("book"),
    st.integers(0, CLIENTS - 1),
    st.integers(0, SEATS - 1),
    starts,
    lengths,
)
cancel = st.tuples(st.just("cancel"), st.integers(0, 50))
reschedule = st.tuples(
    st.just("reschedule"),
    st.integers(0, 50),
    st.integers(0, SEATS - 1),
    starts,
    lengths,
)
operations = st.one_of(booking, booking, booking, reschedule, reschedule, cancel)


@dataclass
class Booking:
    client: int
    seat: int
    start: int
    end: int
    open: bool = True


@dataclass
class Calendar:
    """The model: intervals in quarters, half-open, so touching ones never clash."""

    bookings: dict[str, Booking] = field(default_factory=dict)

    def clash(self, candidate: Booking, *, besides: str | None = None) -> bool:
        for key, other in self.bookings.items():
            if key == besides or not other.open:
                continue
            if (other.seat == candidate.seat or other.client == candidate.client) and (
                other.start < candidate.end and candidate.start < other.end
            ):
                return True
        return False

    def answer(self, candidate: Booking, *, besides: str | None = None) -> int:
        if not 0 < candidate.end - candidate.start <= MAX_QUARTERS:
            return 400
        return 409 if self.clash(candidate, besides=besides) else 200


async def _lounge(scene: Scene) -> tuple[list[uuid.UUID], list, datetime]:
    pool = scene.resources.pool
    coworking = await create_coworking(
        pool, timezone="UTC", max_days_ahead=400, max_duration_minutes=15 * MAX_QUARTERS
    )
    seats = [await create_seat(pool, coworking, number=n + 1) for n in range(SEATS)]
    clients = [
        await create_client(pool, scene.resources.settings) for _ in range(CLIENTS)
    ]
    now = await scene.now()
    day = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=5)
    return seats, clients, day


async def _open_rows(scene: Scene, seats: list[uuid.UUID]) -> dict[str, tuple]:
    rows = await scene.resources.pool.fetch(
        "SELECT id, seat_id, client_id, starts_at, ends_at"
        " FROM reservation.reservations"
        " WHERE seat_id = ANY($1::uuid[]) AND status = 'confirmed'",
        seats,
    )
    return {
        str(row["id"]): (
            row["seat_id"],
            row["client_id"],
            row["starts_at"],
            row["ends_at"],
        )
        for row in rows
    }


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(operations, min_size=8, max_size=12))
async def test_book_cancel_reschedule_match_model_calendar_every_step(
    scene: Scene, steps: list[tuple]
) -> None:
    seats, clients, day = await _lounge(scene)
    model = Calendar()
    made: list[str] = []
    versions: dict[str, int] = {}

    def at(quarter: int) -> str:
        return (day + QUARTER * quarter).isoformat()

    def expected_rows() -> dict[str, tuple]:
        return {
            key: (
                seats[b.seat],
                clients[b.client].id,
                day + QUARTER * b.start,
                day + QUARTER * b.end,
            )
            for key, b in model.bookings.items()
            if b.open
        }

    for step in steps:
        if step[0] == "book":
            _, client, seat, start, length = step
            candidate = Booking(client, seat, start, start + length)
            want = model.answer(candidate)
            response = await scene.book(
                day + QUARTER * start,
                day + QUARTER * (start + length),
                seat_id=seats[seat],
                account=clients[client],
            )
            assert response.status_code == want, (step, response.text)
            if want == 200:
                body = response.json()
                assert (body["seat_id"], body["starts_at"], body["ends_at"]) == (
                    str(seats[seat]),
                    at(start).replace("+00:00", "Z"),
                    at(start + length).replace("+00:00", "Z"),
                )
                model.bookings[body["id"]] = candidate
                made.append(body["id"])
                versions[body["id"]] = body["version"]
        elif not made:
            continue
        elif step[0] == "cancel":
            key = made[step[1] % len(made)]
            owner = clients[model.bookings[key].client]
            response = await scene.api.delete(
                f"/api/reservations/{key}", headers=owner.headers
            )
            # cancelling twice is the same answer as once
            assert response.status_code == 204, (step, response.text)
            model.bookings[key].open = False
        else:
            _, index, seat, start, length = step
            key = made[index % len(made)]
            booking = model.bookings[key]
            candidate = Booking(booking.client, seat, start, start + length)
            if candidate.end <= candidate.start:
                # refused on the body alone, as a booking is, whatever its state
                want = 400
            elif not booking.open:
                want = 409
            else:
                want = model.answer(candidate, besides=key)
            response = await scene.api.patch(
                f"/api/reservations/{key}",
                json={
                    "seat_id": str(seats[seat]),
                    "starts_at": at(start),
                    "ends_at": at(start + length),
                },
                headers=clients[booking.client].headers,
            )
            assert response.status_code == want, (step, response.text)
            if want == 200:
                # a move onto its own seat and slot changes nothing, its version too
                moved = candidate != booking
                version = response.json()["version"]
                assert version == versions[key] + moved, (step, version)
                versions[key] = version
                model.bookings[key] = candidate

        assert await _open_rows(scene, seats) == expected_rows(), step

    checks = await violations(scene.resources.pool)
    assert {name: rows for name, rows in checks.items() if rows} == {}
