"""Rows made straight in the database, and tokens for them, for tests of any area."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import asyncpg
from argon2 import PasswordHasher

from api.settings import Settings
from api.tokens import issue_access_token

# Cheap parameters: tests make many accounts; the real hasher is tested apart.
_FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
PASSWORD = "correct horse battery"


@dataclass
class Account:
    id: uuid.UUID
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def create_client(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    email: str | None = None,
    is_internal: bool = False,
    send_notifications: bool = True,
    name: str = "Ada",
    surname: str = "Lovelace",
) -> Account:
    client_id = uuid.uuid4()
    email = email or f"client-{client_id.hex[:8]}@example.com"
    await pool.execute(
        "INSERT INTO client.clients (id, email, email_key, password_hash, name,"
        " surname, patronymic, send_notifications, is_internal)"
        " VALUES ($1,$2,$3,$4,$5,$6,'',$7,$8)",
        client_id, email, email.lower(), _FAST.hash(PASSWORD), name, surname,
        send_notifications, is_internal,
    )  # fmt: skip
    token = issue_access_token(
        settings, kind="client", subject=client_id, role="client"
    )
    return Account(client_id, email, token)


async def create_admin(
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    role: str = "owner",
    coworkings: list[uuid.UUID] = (),  # type: ignore[assignment]
    email: str | None = None,
) -> Account:
    admin_id = uuid.uuid4()
    # digits only after the role: each run of letters before the @ is a name
    # a staff password may not hold, and a random one would make that random
    email = email or f"{role}-{admin_id.int % 10**12:012d}@example.com"
    await pool.execute(
        "INSERT INTO admin.admins (id, email, email_key, password_hash, role)"
        " VALUES ($1, $2, $3, $4, $5)",
        admin_id, email, email.lower(), _FAST.hash(PASSWORD), role,
    )  # fmt: skip
    for coworking_id in coworkings:
        await pool.execute(
            "INSERT INTO admin.admin_coworkings (admin_id, coworking_id)"
            " VALUES ($1, $2)",
            admin_id, coworking_id,
        )  # fmt: skip
    token = issue_access_token(settings, kind="admin", subject=admin_id, role=role)
    return Account(admin_id, email, token)


async def create_coworking(
    pool: asyncpg.Pool,
    *,
    name: str = "Test Lounge",
    timezone: str = "UTC",
    opening_hours: dict | None = None,
    **rules: object,
) -> uuid.UUID:
    coworking_id = uuid.uuid4()
    columns = ["id", "name", "address", "city", "timezone", "opening_hours", *rules]
    values = [coworking_id, name, "1 Test Street", "Testville", timezone,
              json.dumps(opening_hours) if opening_hours is not None else None,
              *rules.values()]  # fmt: skip
    placeholders = ", ".join(
        f"${i}::jsonb" if column == "opening_hours" else f"${i}"
        for i, column in enumerate(columns, start=1)
    )
    await pool.execute(
        f"INSERT INTO coworking.coworkings ({', '.join(columns)})"
        f" VALUES ({placeholders})",
        *values,
    )
    return coworking_id


async def create_seat(
    pool: asyncpg.Pool,
    coworking_id: uuid.UUID,
    *,
    number: int = 1,
    kind: str = "OpenSpace",
    capacity: int = 1,
    features: list[str] = (),  # type: ignore[assignment]
    cost: float = 100.0,
    internal_only: bool = False,
    active: bool = True,
) -> uuid.UUID:
    seat_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO coworking.seats (id, coworking_id, number, kind, capacity,"
        " features, cost, internal_only, active)"
        " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
        seat_id, coworking_id, number, kind, capacity, list(features), cost,
        internal_only, active,
    )  # fmt: skip
    return seat_id
