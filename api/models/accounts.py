"""Request and response shapes of the client and admin operations.

Names and bounds follow the contract (Client, ClientForm, ClientUpdate, Admin,
AdminForm, AdminUpdate, Credentials, ChangePasswordRequest and the auth
responses). Request bodies refuse unknown fields with a 400 that names them,
so a client cannot slip in `verified` or `is_internal`, and a typo is not
silently ignored. What is new beside the contract is optional.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)

from api.models.common import EmailAddress, SafeText

# The contract's bounds; checked before anything is hashed.
Password = Annotated[str, StringConstraints(min_length=8, max_length=100)]


def refuse_blank(password: str) -> str:
    # spaces, zero-width and other format or control characters show nothing
    if not any(char.isprintable() and not char.isspace() for char in password):
        raise ValueError("must have a visible character, not white space alone")
    return password


# A password being set; one given to sign in is only checked against the hash,
# so an account made before this rule still signs in.
NewPassword = Annotated[Password, AfterValidator(refuse_blank)]
Name = Annotated[str, SafeText(min_length=1, max_length=15)]
Patronymic = Annotated[str, SafeText(max_length=20)]
Role = Literal["owner", "manager", "support"]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Credentials(RequestBody):
    email: EmailAddress
    password: Password


class ClientForm(Credentials):
    password: NewPassword
    name: Name
    surname: Name
    patronymic: Patronymic
    send_notifications: StrictBool = False


class ClientUpdate(RequestBody):
    """A null or absent field keeps its value."""

    email: EmailAddress | None = None
    name: Name | None = None
    surname: Name | None = None
    patronymic: Patronymic | None = None
    send_notifications: StrictBool | None = None


class ClientAdminUpdate(ClientUpdate):
    """What staff may change on a client: the profile, and two flags only they set."""

    is_internal: StrictBool | None = None
    verified: StrictBool | None = None


# a bound on one request's list, far above any real chain of coworkings
MAX_COWORKINGS = 1000


class AdminForm(Credentials):
    # least privilege: an admin who may change things is made so explicitly
    role: Role = "support"
    coworking_ids: list[uuid.UUID] | None = Field(
        default=None,
        max_length=MAX_COWORKINGS,
        description="The coworkings a manager runs; managers only",
    )


class AdminUpdate(RequestBody):
    email: EmailAddress | None = None


class AdminOwnerUpdate(AdminUpdate):
    """What an owner may change on another admin."""

    role: Role | None = None
    coworking_ids: list[uuid.UUID] | None = Field(
        default=None, max_length=MAX_COWORKINGS
    )


class ChangePasswordRequest(RequestBody):
    current_password: Password
    new_password: NewPassword
    new_password_confirm: Password


class DeleteAccountRequest(RequestBody):
    """The optional body of DELETE /api/client and /api/admin.

    The contract sends none; a password, when sent, must be the account's.
    """

    password: Password | None = None


class RefreshRequest(RequestBody):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class LogoutRequest(RequestBody):
    all_sessions: StrictBool = Field(
        default=False, description="Also sign out every other session of the account"
    )


class Client(BaseModel):
    id: uuid.UUID
    email: str
    name: str
    surname: str
    patronymic: str
    send_notifications: bool
    is_internal: bool
    verified: bool


class Admin(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    coworking_ids: list[uuid.UUID] = []


class ClientAuthResponse(BaseModel):
    token: str
    client: Client
    refresh_token: str | None = None


class AdminAuthResponse(BaseModel):
    token: str
    admin: Admin
    refresh_token: str | None = None
