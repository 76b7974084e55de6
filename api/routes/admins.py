"""Admin accounts: the contract's /api/admin operations, and sessions beside them."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from api.auth import CurrentStaff, Owner
from api.deps import ClientAddressDep, ResourcesDep
from api.errors import Forbidden
from api.models.accounts import (
    Admin,
    AdminAuthResponse,
    AdminForm,
    AdminOwnerUpdate,
    AdminUpdate,
    ChangePasswordRequest,
    Credentials,
    DeleteAccountRequest,
    LogoutRequest,
    RefreshRequest,
)
from api.services import accounts, admins
from api.services.accounts import SignedIn

router = APIRouter(prefix="/api/admin", tags=["admins"])


async def _auth_response(
    resources: ResourcesDep, signed_in: SignedIn
) -> AdminAuthResponse:
    admin = await admins.get_admin(resources.pool, signed_in.account_id)
    return AdminAuthResponse(
        token=signed_in.issued.token,
        admin=admin,
        refresh_token=signed_in.issued.refresh_token,
    )


@router.post("/login")
async def admin_login(
    credentials: Credentials, resources: ResourcesDep, address: ClientAddressDep
) -> AdminAuthResponse:
    signed_in = await accounts.sign_in(
        resources, kind="admin", credentials=credentials, address=address
    )
    return await _auth_response(resources, signed_in)


@router.post("/token/refresh")
async def refresh_admin_token(
    body: RefreshRequest, resources: ResourcesDep
) -> AdminAuthResponse:
    signed_in = await accounts.refresh(
        resources, kind="admin", refresh_token=body.refresh_token
    )
    return await _auth_response(resources, signed_in)


@router.post("/logout", status_code=204)
async def admin_logout(
    admin: CurrentStaff,
    resources: ResourcesDep,
    body: LogoutRequest | None = Body(default=None),
) -> None:
    all_sessions = body.all_sessions if body else False
    await accounts.sign_out(resources, admin, all_sessions=all_sessions)


@router.post("/register", response_model=AdminAuthResponse)
async def register_admin(
    form: AdminForm,
    admin: Owner,
    resources: ResourcesDep,
    address: ClientAddressDep,
) -> JSONResponse:
    """An owner adds an admin; as in the contract, the answer signs the new one in."""
    created, signed_in = await admins.register_admin(resources, form, address=address)
    # the contract's token, which lapses within the hour; no refresh token, so
    # the owner does not hold a month's sign-in as the person they added
    answer = AdminAuthResponse(token=signed_in.issued.token, admin=created)
    return JSONResponse(answer.model_dump(mode="json", exclude={"refresh_token"}))


@router.get("")
async def get_current_admin_account(
    admin: CurrentStaff, resources: ResourcesDep
) -> Admin:
    return await admins.get_admin(resources.pool, admin.id)


@router.patch("")
async def edit_admin_account(
    changes: AdminUpdate, admin: CurrentStaff, resources: ResourcesDep
) -> Admin:
    return await admins.update_admin(resources.pool, admin.id, changes)


@router.delete("", status_code=204)
async def delete_admin_account(
    admin: CurrentStaff,
    resources: ResourcesDep,
    address: ClientAddressDep,
    body: DeleteAccountRequest | None = Body(default=None),
) -> None:
    if body and body.password is not None:
        await accounts.check_password(resources, admin, body.password, address=address)
    await admins.delete_admin(resources.pool, admin.id)


@router.put("/password")
async def change_admin_password(
    request: ChangePasswordRequest,
    admin: CurrentStaff,
    resources: ResourcesDep,
    address: ClientAddressDep,
) -> AdminAuthResponse:
    issued = await accounts.change_password(resources, admin, request, address=address)
    return await _auth_response(resources, SignedIn(admin.id, issued))


# Owners and support read any admin; a manager reads only themself.
@router.get("/{admin_id:uuid}")
async def get_admin_by_id(
    admin_id: uuid.UUID, admin: CurrentStaff, resources: ResourcesDep
) -> Admin:
    if admin.role == "manager" and admin_id != admin.id:
        raise Forbidden("Managers read only their own admin account")
    return await admins.get_admin(resources.pool, admin_id)


@router.patch("/{admin_id:uuid}")
async def edit_admin_by_id(
    admin_id: uuid.UUID,
    changes: AdminOwnerUpdate,
    admin: Owner,
    resources: ResourcesDep,
) -> Admin:
    return await admins.update_admin(resources.pool, admin_id, changes)


@router.delete("/{admin_id:uuid}", status_code=204)
async def delete_admin_by_id(
    admin_id: uuid.UUID, admin: Owner, resources: ResourcesDep
) -> None:
    await admins.delete_admin(resources.pool, admin_id)
