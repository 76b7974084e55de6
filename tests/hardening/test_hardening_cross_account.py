"""Five clients with four bookings each: nobody reaches anybody else's."""

import asyncio
import uuid

from tests.factories import create_client
from tests.hardening.hardening_kit import snapshot

CLIENTS, PER_CLIENT = 5, 4


async def _settled(scene, count: int) -> None:
    # the confirmation mails land after the booking answers; wait for all of them
    for _ in range(300):
        sent = await scene.resources.pool.fetchval(
            "SELECT count(*) FROM notifications.sent_mail"
        )
        if sent >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {sent} of {count} confirmations recorded")


async def _states(scene, bookings) -> dict[str, dict]:
    out = {}
    for account, reservation_id in bookings:
        response = await scene.api.get(
            f"/api/reservations/{reservation_id}", headers=account.headers
        )
        assert response.status_code == 200, response.text
        out[reservation_id] = response.json()
    return out


async def test_touch_other_clients_reservations_and_profiles_refused(scene) -> None:
    resources = scene.resources
    clients = [scene.client] + [
        await create_client(
            resources.pool, resources.settings, email=f"c{i}@example.com"
        )
        for i in range(1, CLIENTS)
    ]
    bookings = []
    for index in range(CLIENTS * PER_CLIENT):
        account = clients[index % CLIENTS]
        starts_at, ends_at = await scene.slot(hours_ahead=30 + index)
        response = await scene.book(
            starts_at, ends_at, account=account,
            seat_id=scene.seat_id if index % 2 else scene.other_seat_id,
        )  # fmt: skip
        assert response.status_code == 200, response.text
        bookings.append((account, response.json()["id"]))
    await _settled(scene, CLIENTS * PER_CLIENT)
    new_start, new_end = await scene.slot(hours_ahead=200)
    states = await _states(scene, bookings)
    before = await snapshot(resources.pool)

    operations = [
        ("GET", "/api/reservations/{r}", None),
        ("DELETE", "/api/reservations/{r}", None),
        ("PATCH", "/api/reservations/{r}",
         {"starts_at": new_start.isoformat(), "ends_at": new_end.isoformat()}),
        ("PATCH", "/api/reservations/{r}", {"seat_id": str(scene.other_seat_id)}),
        ("GET", "/api/reservations/{r}/qr", None),
        ("POST", "/api/reservations/{r}/confirm", None),
        ("POST", "/api/reservations/{r}/check-in", None),
        ("POST", "/api/reservations/{r}/notifications/retry", None),
    ]  # fmt: skip
    profile_operations = [
        ("GET", "/api/client/{c}", None),
        ("PATCH", "/api/client/{c}", {"name": "Mallory"}),
        ("DELETE", "/api/client/{c}", None),
        ("GET", "/api/client/{c}/reservations", None),
    ]
    answers: dict[int, int] = {}
    tried = 0
    for attacker in clients:
        for owner, reservation_id in bookings:
            if owner is attacker:
                continue
            for method, path, body in operations:
                response = await scene.api.request(
                    method, path.format(r=reservation_id), json=body,
                    headers=attacker.headers,
                )  # fmt: skip
                answers[response.status_code] = answers.get(response.status_code, 0) + 1
                tried += 1
        for victim in clients:
            if victim is attacker:
                continue
            for method, path, body in profile_operations:
                response = await scene.api.request(
                    method,
                    path.format(c=victim.id),
                    json=body,
                    headers=attacker.headers,
                )
                answers[response.status_code] = answers.get(response.status_code, 0) + 1
                tried += 1

    expected = (
        CLIENTS
        * (CLIENTS - 1)
        * (PER_CLIENT * len(operations) + len(profile_operations))
    )
    assert tried == expected
    # a client's own token on someone else's reservation finds nothing (404);
    # staff operations and other profiles refuse a client token outright, as
    # staff's (403), before the id is looked up
    foreign = CLIENTS * (CLIENTS - 1) * PER_CLIENT
    assert answers == {
        404: foreign * 5,
        403: foreign * 3 + CLIENTS * (CLIENTS - 1) * len(profile_operations),
    }
    assert await snapshot(resources.pool) == before
    assert await _states(scene, bookings) == states
    # a random id answers the same as somebody else's, so existence does not leak
    stranger = await scene.api.get(
        f"/api/reservations/{uuid.uuid4()}", headers=clients[1].headers
    )
    foreign = await scene.api.get(
        f"/api/reservations/{bookings[0][1]}", headers=clients[1].headers
    )
    assert (foreign.status_code, foreign.json()) == (
        stranger.status_code,
        stranger.json(),
    )
