"""Admin accounts and their roles.

owner: everything, and the only role that manages admins.
manager: changes the coworkings assigned in admin.admin_coworkings.
support: reads everything, and acts on reservations; changes nothing else.
There is always at least one owner: the last one cannot be removed or demoted.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import asyncpg

from api import ratelimit
from api.errors import Conflict, EmailTaken, InvalidInput, NotFound
from api.models.accounts import Admin, AdminForm, AdminOwnerUpdate, AdminUpdate
from api.models.common import email_key
from api.passwords import hash_password, staff_password_problem
from api.resources import Resources
from api.services.accounts import SignedIn, open_session

logger = logging.getLogger(__name__)

_SELECT_ADMIN = (
    "SELECT a.id, a.email, a.role, coalesce(array(SELECT c.coworking_id"
    " FROM admin.admin_coworkings c WHERE c.admin_id = a.id ORDER BY 1),"
    " '{}') AS coworking_ids FROM admin.admins a WHERE a.id = $1"
)


class LastOwner(Conflict):
    code = "last_owner"

    def __init__(self) -> None:
        super().__init__("The last owner cannot be removed or given another role")


async def get_admin(
    pool: asyncpg.Pool | asyncpg.Connection, admin_id: uuid.UUID
) -> Admin:
    row = await pool.fetchrow(_SELECT_ADMIN, admin_id)
    if row is None:
        raise NotFound("admin_id: no such admin")
    return Admin.model_validate(dict(row))


def _check_coworkings(role: str, coworking_ids: list[uuid.UUID] | None) -> None:
    if coworking_ids and role != "manager":
        raise InvalidInput("coworking_ids: only a manager is assigned coworkings")


async def _set_coworkings(
    conn: asyncpg.Connection, admin_id: uuid.UUID, coworking_ids: list[uuid.UUID]
) -> None:
    wanted = list(dict.fromkeys(coworking_ids))
    known = await conn.fetch(
        "SELECT id FROM coworking.coworkings WHERE id = ANY($1::uuid[])", wanted
    )
    unknown = [str(i) for i in wanted if i not in {row["id"] for row in known}]
    if unknown:
        # inside the caller's transaction: the admin and its role change roll back
        more = f" and {len(unknown) - 3} more" if len(unknown) > 3 else ""
        raise InvalidInput(
            f"coworking_ids: no coworking {', '.join(unknown[:3])}{more}"
        )
    await conn.execute(
        "DELETE FROM admin.admin_coworkings WHERE admin_id = $1", admin_id
    )
    await conn.executemany(
        "INSERT INTO admin.admin_coworkings (admin_id, coworking_id) VALUES ($1, $2)",
        [(admin_id, coworking_id) for coworking_id in wanted],
    )


async def register_admin(
    resources: Resources, form: AdminForm, *, address: str | None
) -> tuple[Admin, SignedIn]:
    _check_coworkings(form.role, form.coworking_ids)
    # zxcvbn's estimate takes milliseconds of CPU, kept off the event loop
    problem = await asyncio.to_thread(staff_password_problem, form.password, form.email)
    if problem:
        raise InvalidInput(f"password: a staff password {problem}")
    key = email_key(form.email)
    await ratelimit.enforce(
        resources.settings, resources.valkey,
        action="admin-register", address=address, account=key,
    )  # fmt: skip
    password_hash = await hash_password(form.password)
    async with resources.pool.acquire() as conn:
        admin_id = await create_admin(
            conn, email=form.email, password_hash=password_hash,
            role=form.role, coworking_ids=form.coworking_ids or [],
        )  # fmt: skip
    issued = await open_session(
        resources, kind="admin", account_id=admin_id, role=form.role, version=0
    )
    return await get_admin(resources.pool, admin_id), SignedIn(admin_id, issued)


async def create_admin(
    conn: asyncpg.Connection,
    *,
    email: str,
    password_hash: str,
    role: str,
    coworking_ids: list[uuid.UUID] = (),  # type: ignore[assignment]
) -> uuid.UUID:
    """Insert an admin whose email is already normalised (the API and the CLI)."""
    admin_id = uuid.uuid4()
    async with conn.transaction():
        try:
            await conn.execute(
                "INSERT INTO admin.admins (id, email, email_key, password_hash, role)"
                " VALUES ($1, $2, $3, $4, $5)",
                admin_id, email, email_key(email), password_hash, role,
            )  # fmt: skip
        except asyncpg.UniqueViolationError as error:
            raise EmailTaken() from error
        await _set_coworkings(conn, admin_id, list(coworking_ids))
    logger.info("admin %s created with role %s", admin_id, role)
    return admin_id


async def _lock_owners(conn: asyncpg.Connection) -> set[uuid.UUID]:
    # two owners removing each other at once must not leave none
    rows = await conn.fetch(
        "SELECT id FROM admin.admins WHERE role = 'owner' FOR UPDATE"
    )
    return {row["id"] for row in rows}


async def update_admin(
    pool: asyncpg.Pool, admin_id: uuid.UUID, changes: AdminUpdate
) -> Admin:
    owner_changes = (
        changes if isinstance(changes, AdminOwnerUpdate) else AdminOwnerUpdate()
    )
    async with pool.acquire() as conn, conn.transaction():
        owners = await _lock_owners(conn)
        role = await conn.fetchval(
            "SELECT role FROM admin.admins WHERE id = $1 FOR UPDATE", admin_id
        )
        if role is None:
            raise NotFound("admin_id: no such admin")
        new_role = owner_changes.role or role
        if role == "owner" and new_role != "owner" and owners == {admin_id}:
            raise LastOwner()
        coworking_ids = owner_changes.coworking_ids
        _check_coworkings(new_role, coworking_ids)
        try:
            await conn.execute(
                "UPDATE admin.admins SET email = coalesce($2, email),"
                " email_key = coalesce($3, email_key), role = $4, updated_at = now()"
                " WHERE id = $1",
                admin_id, changes.email,
                email_key(changes.email) if changes.email else None, new_role,
            )  # fmt: skip
        except asyncpg.UniqueViolationError as error:
            raise EmailTaken() from error
        if new_role != "manager":
            coworking_ids = []
        if coworking_ids is not None:
            await _set_coworkings(conn, admin_id, coworking_ids)
        return await get_admin(conn, admin_id)


async def delete_admin(pool: asyncpg.Pool, admin_id: uuid.UUID) -> None:
    """Remove the admin; their tokens die with the row (the auth check reads it)."""
    async with pool.acquire() as conn, conn.transaction():
        owners = await _lock_owners(conn)
        if owners == {admin_id}:
            raise LastOwner()
        deleted = await conn.fetchval(
            "DELETE FROM admin.admins WHERE id = $1 RETURNING id", admin_id
        )
    if deleted is None:
        raise NotFound("admin_id: no such admin")
    logger.info("admin %s deleted", admin_id)
