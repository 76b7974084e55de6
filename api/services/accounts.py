"""What clients and admins share: signing in, passwords, sessions and their revocation.

Order matters on every path that takes a password: the body is validated
(lengths included), then the attempt is counted against the rate limits, and
only then is anything hashed or verified.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

import asyncpg

from api import ratelimit
from api.errors import InvalidCredentials, InvalidInput, InvalidPassword, Unauthorized
from api.models.accounts import ChangePasswordRequest, Credentials
from api.models.common import email_key
from api.passwords import (
    hash_password,
    needs_rehash,
    staff_password_problem,
    verify_password,
)
from api.resources import Resources
from api.sessions import Issued, end_session, rotate, start_session
from api.tokens import Kind, Principal, issue_access_token

logger = logging.getLogger(__name__)

# A deleted client keeps an anonymised row for its past reservations; a deleted
# admin's row is gone. Either way these queries no longer find the account.
_STATE_SQL: dict[Kind, str] = {
    "client": "SELECT id, 'client' AS role, token_version, password_hash"
    " FROM client.clients WHERE id = $1 AND deleted_at IS NULL",
    "admin": "SELECT id, role, token_version, password_hash"
    " FROM admin.admins WHERE id = $1",
}
_BY_EMAIL_SQL: dict[Kind, str] = {
    "client": "SELECT id, 'client' AS role, token_version, password_hash"
    " FROM client.clients WHERE email_key = $1 AND deleted_at IS NULL",
    "admin": "SELECT id, role, token_version, password_hash"
    " FROM admin.admins WHERE email_key = $1",
}
# only if nobody changed the password since it was read
_REHASH_SQL: dict[Kind, str] = {
    "client": "UPDATE client.clients SET password_hash = $3"
    " WHERE id = $1 AND password_hash = $2",
    "admin": "UPDATE admin.admins SET password_hash = $3"
    " WHERE id = $1 AND password_hash = $2",
}
# a new password refuses every token issued under the old one
_SET_PASSWORD_SQL: dict[Kind, str] = {
    "client": "UPDATE client.clients SET password_hash = $2,"
    " token_version = token_version + 1, updated_at = now()"
    " WHERE id = $1 AND deleted_at IS NULL RETURNING token_version",
    "admin": "UPDATE admin.admins SET password_hash = $2,"
    " token_version = token_version + 1, updated_at = now()"
    " WHERE id = $1 RETURNING token_version",
}
_BUMP_SQL: dict[Kind, str] = {
    "client": "UPDATE client.clients SET token_version = token_version + 1"
    " WHERE id = $1 RETURNING token_version",
    "admin": "UPDATE admin.admins SET token_version = token_version + 1"
    " WHERE id = $1 RETURNING token_version",
}


@dataclass(frozen=True)
class SignedIn:
    account_id: uuid.UUID
    issued: Issued


async def account_state(
    pool: asyncpg.Pool, kind: Kind, account_id: uuid.UUID
) -> asyncpg.Record | None:
    """The live account's role, token_version and hash; None once deleted."""
    return await pool.fetchrow(_STATE_SQL[kind], account_id)


async def open_session(
    resources: Resources, *, kind: Kind, account_id: uuid.UUID, role: str, version: int
) -> Issued:
    return await start_session(
        resources.settings, resources.valkey,
        kind=kind, subject=account_id, role=role, version=version,
    )  # fmt: skip


async def sign_in(
    resources: Resources, *, kind: Kind, credentials: Credentials, address: str | None
) -> SignedIn:
    key = email_key(credentials.email)
    await ratelimit.enforce(
        resources.settings, resources.valkey,
        action=f"{kind}-login", address=address, account=key,
    )  # fmt: skip
    row = await resources.pool.fetchrow(_BY_EMAIL_SQL[kind], key)
    stored = row["password_hash"] if row else None
    # an unknown email costs a dummy verify, so time tells nothing either
    if not await verify_password(stored, credentials.password) or row is None:
        raise InvalidCredentials()
    if needs_rehash(row["password_hash"]):
        fresh = await hash_password(credentials.password)
        await resources.pool.execute(
            _REHASH_SQL[kind], row["id"], row["password_hash"], fresh
        )
        logger.info("password hash of %s %s upgraded", kind, row["id"])
    issued = await open_session(
        resources, kind=kind, account_id=row["id"], role=row["role"],
        version=row["token_version"],
    )  # fmt: skip
    return SignedIn(row["id"], issued)


async def check_password(
    resources: Resources, principal: Principal, password: str, *, address: str | None
) -> None:
    """Refuse a sensitive change unless the account's current password is sent."""
    await ratelimit.enforce(
        resources.settings, resources.valkey,
        action=f"{principal.kind}-password", address=address, account=str(principal.id),
    )  # fmt: skip
    row = await account_state(resources.pool, principal.kind, principal.id)
    if row is None:
        raise Unauthorized()
    if not await verify_password(row["password_hash"], password):
        raise InvalidPassword()


async def change_password(
    resources: Resources,
    principal: Principal,
    request: ChangePasswordRequest,
    *,
    address: str | None,
) -> Issued:
    """Set a new password, revoke every earlier token, and sign this session in anew."""
    if request.new_password != request.new_password_confirm:
        raise InvalidInput("new_password_confirm: does not match new_password")
    if request.new_password == request.current_password:
        # a "change" to the same secret would revoke every session and protect nothing
        raise InvalidInput("new_password: is the same as current_password")
    if principal.kind == "admin":
        email = await resources.pool.fetchval(
            "SELECT email FROM admin.admins WHERE id = $1", principal.id
        )
        # zxcvbn's estimate takes milliseconds of CPU, kept off the event loop
        problem = await asyncio.to_thread(
            staff_password_problem, request.new_password, email or ""
        )
        if problem:
            raise InvalidInput(f"new_password: a staff password {problem}")
    await check_password(
        resources, principal, request.current_password, address=address
    )
    fresh = await hash_password(request.new_password)
    version = await resources.pool.fetchval(
        _SET_PASSWORD_SQL[principal.kind], principal.id, fresh
    )
    if version is None:
        raise Unauthorized()
    await end_session(resources.settings, resources.valkey, principal.session_id)
    return await open_session(
        resources, kind=principal.kind, account_id=principal.id,
        role=principal.role, version=version,
    )  # fmt: skip


async def refresh(resources: Resources, *, kind: Kind, refresh_token: str) -> SignedIn:
    """A fresh access token and the family's next refresh token."""
    rotated = await rotate(
        resources.settings, resources.valkey, refresh_token, kind=kind
    )
    row = await account_state(resources.pool, kind, rotated.subject)
    if row is None or row["token_version"] != rotated.version:
        # the account was deleted or its tokens revoked since this session began
        await end_session(resources.settings, resources.valkey, rotated.session_id)
        raise Unauthorized()
    token = issue_access_token(
        resources.settings, kind=kind, subject=rotated.subject, role=row["role"],
        session_id=rotated.session_id, version=rotated.version,
    )  # fmt: skip
    issued = Issued(token, rotated.refresh_token, rotated.session_id)
    return SignedIn(rotated.subject, issued)


async def sign_out(
    resources: Resources, principal: Principal, *, all_sessions: bool
) -> None:
    await end_session(resources.settings, resources.valkey, principal.session_id)
    if all_sessions:
        await revoke_all(resources.pool, principal.kind, principal.id)


async def revoke_all(pool: asyncpg.Pool, kind: Kind, account_id: uuid.UUID) -> None:
    """Refuse every access and refresh token the account was given until now."""
    await pool.execute(_BUMP_SQL[kind], account_id)
