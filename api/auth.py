"""Who is asking: the bearer token turned into a principal, and admin scope checks."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import PoolDep, SettingsDep
from api.errors import Forbidden, Unauthorized
from api.tokens import Principal, decode_access_token

_bearer_client = HTTPBearer(auto_error=False, scheme_name="client")
_bearer_admin = HTTPBearer(auto_error=False, scheme_name="admin")


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    return credentials.credentials


async def _current_client(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_client)],
) -> Principal:
    return decode_access_token(settings, _token(credentials), kind="client")


async def _current_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_admin)],
) -> Principal:
    return decode_access_token(settings, _token(credentials), kind="admin")


async def _current_principal(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_client)],
) -> Principal:
    token = _token(credentials)
    try:
        return decode_access_token(settings, token, kind="client")
    except Unauthorized:
        return decode_access_token(settings, token, kind="admin")


CurrentClient = Annotated[Principal, Depends(_current_client)]
CurrentAdmin = Annotated[Principal, Depends(_current_admin)]
CurrentPrincipal = Annotated[Principal, Depends(_current_principal)]


def require_role(admin: Principal, *roles: str) -> None:
    if admin.kind != "admin" or admin.role not in roles:
        raise Forbidden("This operation needs the role: " + " or ".join(roles))


async def managed_coworkings(pool: PoolDep, admin: Principal) -> set[uuid.UUID] | None:
    """None means every coworking (owner and, for reading, support)."""
    if admin.role in ("owner", "support"):
        return None
    rows = await pool.fetch(
        "SELECT coworking_id FROM admin.admin_coworkings WHERE admin_id = $1", admin.id
    )
    return {row["coworking_id"] for row in rows}


async def require_coworking_write(pool: PoolDep, admin: Principal, coworking_id: uuid.UUID) -> None:
    """Owners change any coworking; managers only theirs; support none."""
    if admin.role == "owner":
        return
    if admin.role == "manager":
        scope = await managed_coworkings(pool, admin)
        if scope is not None and coworking_id in scope:
            return
    raise Forbidden("This coworking is outside your scope")
