"""Demo data for a first start: two coworkings, seats, one client, one admin.

Passwords are generated here and shown once; none is fixed in code.
"""

from __future__ import annotations

import json
import secrets
import uuid

import asyncpg

from api.passwords import hash_password

_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEMO_CLIENT_EMAIL = "client@demo.tlounge.example"
DEMO_ADMIN_EMAIL = "owner@demo.tlounge.example"


def _office_hours(start: str, end: str, *, weekend: bool) -> str:
    hours = {day: [[start, end]] for day in _WEEKDAYS[:5]}
    hours.update({day: ([[start, end]] if weekend else []) for day in _WEEKDAYS[5:]})
    return json.dumps(hours)


async def load_demo(conn: asyncpg.Connection) -> str:
    client_password = secrets.token_urlsafe(12)
    admin_password = secrets.token_urlsafe(12)
    coworkings = [
        ("T-Lounge Berlin Mitte", "Torstrasse 1", "Berlin", "Europe/Berlin",
         _office_hours("08:00", "20:00", weekend=False)),
        ("T-Lounge Almaty Dostyk", "Dostyk Avenue 5", "Almaty", "Asia/Almaty", None),
    ]  # fmt: skip
    async with conn.transaction():
        for order, (name, address, city, zone, hours) in enumerate(coworkings):
            coworking_id = uuid.uuid4()
            # distinct creation times: the first one is the contract's default coworking
            await conn.execute(
                "INSERT INTO coworking.coworkings (id, name, address, city, timezone,"
                " opening_hours, created_at)"
                " VALUES ($1, $2, $3, $4, $5, $6::jsonb,"
                " now() + $7 * interval '1 second')",
                coworking_id, name, address, city, zone, hours, order,
            )  # fmt: skip
            seats = [
                (uuid.uuid4(), coworking_id, number, kind, capacity, features, cost)
                for number, kind, capacity, features, cost in (
                    (1, "OpenSpace", 1, ["Monitor"], 500.0),
                    (2, "OpenSpace", 1, ["Monitor", "Laptop"], 700.0),
                    (3, "OpenSpace", 1, [], 400.0),
                    (10, "Cabin", 2, ["Monitor"], 1500.0),
                    (20, "Room", 8, ["Monitor"], 4000.0),
                )
            ]
            await conn.executemany(
                "INSERT INTO coworking.seats (id, coworking_id, number, kind, capacity,"
                " features, cost) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                seats,
            )
        await conn.execute(
            "INSERT INTO client.clients (id, email, email_key, password_hash, name,"
            " surname, patronymic, send_notifications) VALUES ($1, $2, $2, $3,"
            " 'Demo', 'Client', '', true)",
            uuid.uuid4(), DEMO_CLIENT_EMAIL, await hash_password(client_password),
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO admin.admins (id, email, email_key, password_hash, role)"
            " VALUES ($1, $2, $2, $3, 'owner')",
            uuid.uuid4(), DEMO_ADMIN_EMAIL, await hash_password(admin_password),
        )  # fmt: skip
    return (
        "Demo data loaded. These passwords are shown only now:\n"
        f"  client  {DEMO_CLIENT_EMAIL}  {client_password}\n"
        f"  admin   {DEMO_ADMIN_EMAIL}  {admin_password}  (owner)"
    )


async def load_demo_if_empty(dsn: str) -> str | None:
    conn = await asyncpg.connect(dsn)
    try:
        # the lock keeps two first starts from both loading
        async with conn.transaction():
            await conn.execute("LOCK TABLE coworking.coworkings IN EXCLUSIVE MODE")
            if await conn.fetchval("SELECT count(*) FROM coworking.coworkings"):
                return None
            return await load_demo(conn)
    finally:
        await conn.close()
