"""Sign-in sessions: an access JWT plus a refresh token that rotates on every use.

A session is a refresh-token family in Valkey, keyed by its id (the access
token's `sid`). Only the SHA-256 of each refresh token is stored. Using the
current token of a family replaces it; using a token the family already
rotated past means it leaked, so the whole family is revoked and the access
tokens of that session with it (a marker the auth dependency checks).

What must survive Valkey losing data lives in PostgreSQL instead: each account's
token_version, which refuses every token issued before a password change,
a sign-out everywhere or a deletion. Losing Valkey only signs people out.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import valkey.asyncio as valkey
from valkey.exceptions import ValkeyError

from api.errors import Unauthorized, Unavailable
from api.settings import Settings
from api.tokens import Kind, issue_access_token

logger = logging.getLogger(__name__)

_REFRESH_FORMAT = re.compile(r"^([0-9a-f]{32})\.([A-Za-z0-9_-]{43})$")

# KEYS: the family, the session's revocation marker.
# ARGV: presented hash, replacement hash, family ttl, marker ttl, expected kind.
# Returns {1, subject, version} on rotation, {-1} on reuse, {0} when unknown.
_ROTATE = """
local family = redis.call('HMGET', KEYS[1], 'cur', 'kind', 'sub', 'ver')
if not family[1] or family[2] ~= ARGV[5] then
  return {0}
end
if family[1] == ARGV[1] then
  redis.call('HSET', KEYS[1], 'cur', ARGV[2], 'u:' .. ARGV[1], '1')
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return {1, family[3], family[4]}
end
if redis.call('HEXISTS', KEYS[1], 'u:' .. ARGV[1]) == 1 then
  redis.call('DEL', KEYS[1])
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
  return {-1}
end
return {0}
"""


@dataclass(frozen=True)
class Issued:
    token: str
    refresh_token: str
    session_id: str


@dataclass(frozen=True)
class Rotated:
    subject: uuid.UUID
    version: int
    session_id: str
    refresh_token: str


# The braces are a hash tag: a family and its marker share one cluster slot.
def _family_key(session_id: str) -> str:
    return f"auth:session:{{{session_id}}}"


def _revoked_key(session_id: str) -> str:
    return f"auth:revoked:{{{session_id}}}"


def _digest(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


def _new_refresh_token(session_id: str) -> str:
    return f"{session_id}.{secrets.token_urlsafe(32)}"


T = TypeVar("T")


async def valkey_or_503(operation: Callable[[], Awaitable[T]]) -> T:
    """Valkey down means we cannot tell who is signed in: answer 503, never 200."""
    try:
        return await operation()
    except (ValkeyError, OSError) as error:
        logger.warning("session store unavailable: %s", type(error).__name__)
        raise Unavailable("The session store is unavailable; try again") from error


async def start_session(
    settings: Settings,
    kv: valkey.Valkey,
    *,
    kind: Kind,
    subject: uuid.UUID,
    role: str,
    version: int,
) -> Issued:
    session_id = uuid.uuid4().hex
    refresh_token = _new_refresh_token(session_id)
    fields = {"cur": _digest(refresh_token), "kind": kind, "sub": str(subject),
              "ver": str(version)}  # fmt: skip

    async def _store() -> Any:
        async with kv.pipeline(transaction=True) as pipe:
            pipe.hset(_family_key(session_id), mapping=fields)
            pipe.expire(_family_key(session_id), settings.jwt_refresh_ttl_seconds)
            return await pipe.execute()

    await valkey_or_503(_store)
    token = issue_access_token(
        settings, kind=kind, subject=subject, role=role,
        session_id=session_id, version=version,
    )  # fmt: skip
    return Issued(token, refresh_token, session_id)


async def rotate(
    settings: Settings, kv: valkey.Valkey, refresh_token: str, *, kind: Kind
) -> Rotated:
    """Trade a refresh token for its successor; every refusal is the same 401."""
    match = _REFRESH_FORMAT.match(refresh_token)
    if match is None:
        raise Unauthorized()
    session_id = match.group(1)
    successor = _new_refresh_token(session_id)
    script = kv.register_script(_ROTATE)
    result = await valkey_or_503(
        lambda: script(
            keys=[_family_key(session_id), _revoked_key(session_id)],
            args=[
                _digest(refresh_token),
                _digest(successor),
                settings.jwt_refresh_ttl_seconds,
                _marker_ttl(settings),
                kind,
            ],
        )  # fmt: skip
    )
    status = int(result[0])
    if status == -1:
        logger.warning("refresh token reused; session %s revoked", session_id)
    if status != 1:
        raise Unauthorized()
    subject = result[1].decode() if isinstance(result[1], bytes) else result[1]
    return Rotated(uuid.UUID(subject), int(result[2]), session_id, successor)


def _marker_ttl(settings: Settings) -> int:
    # the last access token of a revoked session expires within this time
    return settings.jwt_access_ttl_seconds + 60


async def end_session(settings: Settings, kv: valkey.Valkey, session_id: str) -> None:
    """Revoke one session: its refresh tokens now, its access tokens by the marker."""

    async def _revoke() -> Any:
        async with kv.pipeline(transaction=True) as pipe:
            pipe.delete(_family_key(session_id))
            pipe.set(_revoked_key(session_id), "1", ex=_marker_ttl(settings))
            return await pipe.execute()

    await valkey_or_503(_revoke)


async def is_revoked(kv: valkey.Valkey, session_id: str) -> bool:
    return bool(await valkey_or_503(lambda: kv.exists(_revoked_key(session_id))))
