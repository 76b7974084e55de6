"""Client accounts: the contract's /api/client operations, and sessions beside them.

The reservation lists under /api/client live with the reservations.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Body

from api.auth import (
    CurrentClient,
    CurrentStaff,
    Owner,
    OwnerOrManager,
    managed_coworkings,
)
from api.deps import ClientAddressDep, ResourcesDep
from api.errors import Forbidden
from api.models.accounts import (
    ChangePasswordRequest,
    Client,
    ClientAdminUpdate,
    ClientAuthResponse,
    ClientForm,
    ClientUpdate,
    Credentials,
    DeleteAccountRequest,
    LogoutRequest,
    RefreshRequest,
)
from api.resources import Resources
from api.services import accounts, clients
from api.services.accounts import SignedIn
from api.tokens import Principal

router = APIRouter(prefix="/api/client", tags=["clients"])


async def _auth_response(
    resources: ResourcesDep, signed_in: SignedIn
) -> ClientAuthResponse:
    client = await clients.get_client(resources.pool, signed_in.account_id)
    return ClientAuthResponse(
        token=signed_in.issued.token,
        client=client,
        refresh_token=signed_in.issued.refresh_token,
    )


@router.post("/register")
async def register_client(
    form: ClientForm, resources: ResourcesDep, address: ClientAddressDep
) -> ClientAuthResponse:
    client, signed_in = await clients.register_client(resources, form, address=address)
    issued = signed_in.issued
    return ClientAuthResponse(
        token=issued.token, client=client, refresh_token=issued.refresh_token
    )


@router.post("/login")
async def client_login(
    credentials: Credentials, resources: ResourcesDep, address: ClientAddressDep
) -> ClientAuthResponse:
    signed_in = await accounts.sign_in(
        resources, kind="client", credentials=credentials, address=address
    )
    return await _auth_response(resources, signed_in)


@router.post("/token/refresh")
async def refresh_client_token(
    body: RefreshRequest, resources: ResourcesDep
) -> ClientAuthResponse:
    signed_in = await accounts.refresh(
        resources, kind="client", refresh_token=body.refresh_token
    )
    return await _auth_response(resources, signed_in)


@router.post("/logout", status_code=204)
async def client_logout(
    client: CurrentClient,
    resources: ResourcesDep,
    body: LogoutRequest | None = Body(default=None),
) -> None:
    all_sessions = body.all_sessions if body else False
    await accounts.sign_out(resources, client, all_sessions=all_sessions)


@router.get("")
async def get_current_client_account(
    client: CurrentClient, resources: ResourcesDep
) -> Client:
    return await clients.get_client(resources.pool, client.id)


@router.patch("")
async def edit_client_account(
    changes: ClientUpdate, client: CurrentClient, resources: ResourcesDep
) -> Client:
    return await clients.update_client(resources.pool, client.id, changes)


@router.delete("", status_code=204)
async def delete_client_account(
    client: CurrentClient,
    resources: ResourcesDep,
    address: ClientAddressDep,
    body: DeleteAccountRequest | None = Body(default=None),
) -> None:
    if body and body.password is not None:
        await accounts.check_password(resources, client, body.password, address=address)
    await clients.delete_client(resources, client.id, session_id=client.session_id)


@router.put("/password")
async def change_client_password(
    request: ChangePasswordRequest,
    client: CurrentClient,
    resources: ResourcesDep,
    address: ClientAddressDep,
) -> ClientAuthResponse:
    issued = await accounts.change_password(resources, client, request, address=address)
    return await _auth_response(resources, SignedIn(client.id, issued))


# Staff: any admin reads a client; owners edit any; a manager marks as
# verified, after checking a document at the door, a client checked in at a
# coworking they run for a booking the client made, and changes nothing else
# of anyone's; only owners delete.
@router.get("/{client_id:uuid}")
async def get_client_by_id(
    client_id: uuid.UUID, admin: CurrentStaff, resources: ResourcesDep
) -> Client:
    return await clients.get_client(resources.pool, client_id)


@router.patch("/{client_id:uuid}")
async def edit_client_by_id(
    client_id: uuid.UUID,
    changes: ClientAdminUpdate,
    admin: OwnerOrManager,
    resources: ResourcesDep,
) -> Client:
    if admin.role == "manager":
        await _require_managed_client(resources, admin, client_id, changes)
    return await clients.update_client(resources.pool, client_id, changes)


async def _require_managed_client(
    resources: Resources,
    manager: Principal,
    client_id: uuid.UUID,
    changes: ClientAdminUpdate,
) -> None:
    scope = await managed_coworkings(resources.pool, manager)
    # staff book and check in alone, so only a booking the client made and a
    # check-in, the moment staff see the person at the door, tie them together
    seen_here = await resources.pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM reservation.reservations r"
        " WHERE r.client_id = $1 AND r.coworking_id = ANY($2::uuid[])"
        " AND r.checked_in_at IS NOT NULL AND NOT EXISTS ("
        "  SELECT 1 FROM reservation.staff_bookings b WHERE b.reservation_id = r.id))",
        client_id, list(scope or ()),
    )  # fmt: skip
    if not seen_here:
        raise Forbidden(
            "client_id: this client was never checked in at a coworking you manage"
            " for a booking of their own"
        )
    # and even then, what a manager changes stays what the door needs
    current = await clients.get_client(resources.pool, client_id)
    for field, value in changes.model_dump(exclude_none=True).items():
        if field != "verified" and getattr(current, field) != value:
            raise Forbidden(f"{field}: only an owner changes a client's {field}")


@router.delete("/{client_id:uuid}", status_code=204)
async def delete_client_by_id(
    client_id: uuid.UUID, admin: Owner, resources: ResourcesDep
) -> None:
    await clients.delete_client(resources, client_id)
