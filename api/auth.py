"""Who is asking: the bearer token turned into a principal, and admin scope checks."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import PoolDep, ResourcesDep, gate, judge_query
from api.errors import Forbidden, Unauthorized
from api.resources import Resources
from api.services.accounts import account_state
from api.sessions import is_revoked
from api.tokens import Kind, Principal, decode_access_token

_bearer_client = HTTPBearer(auto_error=False, scheme_name="client")
_bearer_admin = HTTPBearer(auto_error=False, scheme_name="admin")


def _token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    return credentials.credentials


async def authenticate(resources: Resources, token: str, *, kind: Kind) -> Principal:
    """A valid signature is not enough: the session and the account must still stand.

    The role is read from the account, so a change of role applies at once.
    """
    principal = decode_access_token(resources.settings, token, kind=kind)
    # two stores, asked at once: every authenticated request waits for both
    revoked, state = await asyncio.gather(
        is_revoked(resources.valkey, principal.session_id),
        account_state(resources.pool, kind, principal.id),
    )
    if revoked or state is None or state["token_version"] != principal.version:
        raise Unauthorized()
    return replace(principal, role=state["role"])


ClientBearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_client)]
AdminBearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_admin)]


async def _current_client(
    resources: ResourcesDep, credentials: ClientBearer
) -> Principal:
    return await authenticate(resources, _token(credentials), kind="client")


async def _current_principal(
    resources: ResourcesDep,
    credentials: ClientBearer,
    # the same header, read twice so that the API's schema names both schemes
    _as_admin: AdminBearer,
) -> Principal:
    token = _token(credentials)
    try:
        return await authenticate(resources, token, kind="client")
    except Unauthorized:
        return await authenticate(resources, token, kind="admin")


@gate
async def _current_staff(
    request: Request, resources: ResourcesDep, credentials: AdminBearer
) -> Principal:
    """An admin. A client's valid token is told the route is staff's, before
    its body is read, and not taken for a lapsed sign-in (a 401 would sign
    the client's app out)."""
    token = _token(credentials)
    try:
        await authenticate(resources, token, kind="client")
    except Unauthorized:
        admin = await authenticate(resources, token, kind="admin")
        judge_query(request, _current_staff)
        return admin
    raise Forbidden(STAFF_ONLY)


STAFF_ONLY = "only staff use this; a client's token does not reach it"
CurrentStaff = Annotated[Principal, Depends(_current_staff)]


async def _optional_viewer(
    request: Request, resources: ResourcesDep, credentials: AdminBearer
) -> Principal | None:
    """Whoever asks, admin or client, or None for anyone; a bad token is a 401."""
    if credentials is None:
        # a header the bearer scheme cannot read ("Basic ...", "Bearer" alone)
        # is a client that meant to sign in: answering it as anyone would
        # hide an expired or mangled session behind the public view
        if request.headers.get("authorization", "").strip():
            raise Unauthorized()
        return None
    token = _token(credentials)
    try:
        return await authenticate(resources, token, kind="admin")
    except Unauthorized:
        return await authenticate(resources, token, kind="client")


OptionalViewer = Annotated[Principal | None, Depends(_optional_viewer)]
CurrentClient = Annotated[Principal, Depends(_current_client)]
CurrentPrincipal = Annotated[Principal, Depends(_current_principal)]


def require_role(admin: Principal, *roles: str) -> None:
    if admin.kind != "admin" or admin.role not in roles:
        raise Forbidden("This operation needs the role: " + " or ".join(roles))


def _in_role(*roles: str) -> Any:
    @gate
    async def in_role(request: Request, who: CurrentStaff) -> Principal:
        require_role(who, *roles)
        judge_query(request, in_role)
        return who

    return Depends(in_role)


# as dependencies, so a role that may not act is told so before its body is
# checked: how to mend a request that would still be refused is no answer
Owner = Annotated[Principal, _in_role("owner")]
OwnerOrManager = Annotated[Principal, _in_role("owner", "manager")]


async def managed_coworkings(pool: PoolDep, admin: Principal) -> set[uuid.UUID] | None:
    """None means every coworking (owner and, for reading, support)."""
    if admin.role in ("owner", "support"):
        return None
    rows = await pool.fetch(
        "SELECT coworking_id FROM admin.admin_coworkings WHERE admin_id = $1", admin.id
    )
    return {row["coworking_id"] for row in rows}


async def require_coworking_write(
    pool: PoolDep, admin: Principal, coworking_id: uuid.UUID
) -> None:
    """Owners change any coworking; managers only theirs; support none."""
    if admin.role == "owner":
        return
    if admin.role == "manager":
        scope = await managed_coworkings(pool, admin)
        if scope is not None and coworking_id in scope:
            return
    if admin.role == "support":
        raise Forbidden("support staff read coworkings but do not change them")
    raise Forbidden("This coworking is outside your scope")
