"""Access tokens: JWTs with one pinned algorithm and audiences per kind of account."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Literal

import jwt

from api.errors import Unauthorized
from api.settings import Settings

ALGORITHM = "HS256"
Kind = Literal["client", "admin"]
# Client and admin tokens are told apart by audience, so neither passes for the other.
AUDIENCE: dict[str, str] = {"client": "tlounge:client", "admin": "tlounge:admin"}
# A bearer token longer than this is refused before it is parsed.
MAX_TOKEN_LENGTH = 4096
_REQUIRED_CLAIMS = ["iss", "aud", "sub", "role", "iat", "exp", "jti", "sid", "ver"]


@dataclass(frozen=True)
class Principal:
    kind: Kind
    id: uuid.UUID
    role: str  # "client", or an admin role: owner, manager, support
    issued_at: int
    token_id: str
    # the sign-in this token belongs to (its refresh family), and the account's
    # token_version when it was issued; see api/sessions.py
    session_id: str = ""
    version: int = 0


def _secret(settings: Settings) -> str:
    assert settings.jwt_secret is not None, "a JWT secret is configured at start-up"
    return settings.jwt_secret.get_secret_value()


def issue_access_token(
    settings: Settings,
    *,
    kind: Kind,
    subject: uuid.UUID,
    role: str,
    now: float | None = None,
    session_id: str | None = None,
    version: int = 0,
) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": AUDIENCE[kind],
        "sub": str(subject),
        "role": role,
        "iat": issued,
        "exp": issued + settings.jwt_access_ttl_seconds,
        "jti": uuid.uuid4().hex,
        "sid": session_id or uuid.uuid4().hex,
        "ver": version,
    }
    return jwt.encode(claims, _secret(settings), algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str, *, kind: Kind) -> Principal:
    """The principal a token names; any fault is the same bare 401.

    Only the signature and claims are checked here; whether the session and the
    account still stand is the auth dependency's business (api/auth.py).
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized()
    try:
        claims = jwt.decode(
            token,
            _secret(settings),
            algorithms=[ALGORITHM],
            audience=AUDIENCE[kind],
            issuer=settings.jwt_issuer,
            options={"require": _REQUIRED_CLAIMS},
        )
        subject = uuid.UUID(claims["sub"])
        session_id, version = claims["sid"], claims["ver"]
    except (jwt.PyJWTError, ValueError, TypeError):
        raise Unauthorized() from None
    if not isinstance(session_id, str) or type(version) is not int:
        raise Unauthorized()
    role = claims["role"]
    if kind == "client" and role != "client":
        raise Unauthorized()
    if kind == "admin" and role not in ("owner", "manager", "support"):
        raise Unauthorized()
    return Principal(
        kind, subject, role, int(claims["iat"]), str(claims["jti"]), session_id, version
    )
