"""Shared tools of the hostile tests: forged tokens, route lists, table snapshots."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator

import asyncpg
import jwt
from fastapi import FastAPI

from api.settings import Settings
from api.tokens import AUDIENCE, issue_access_token
from tests.conftest import SCHEMAS

# every 401 answers exactly this, whatever was wrong with the token
UNAUTHORIZED = {
    "error": "unauthorized",
    "description": "Missing or invalid credentials",
}
WRONG_KEY = "y" * 48


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims_for(settings: Settings, *, kind: str, subject: uuid.UUID, role: str) -> dict:
    now = int(time.time())
    return {
        "iss": settings.jwt_issuer, "aud": AUDIENCE[kind], "sub": str(subject),
        "role": role, "iat": now, "exp": now + 600, "jti": uuid.uuid4().hex,
        "sid": uuid.uuid4().hex, "ver": 0,
    }  # fmt: skip


def edit_payload(token: str, **changes: object) -> str:
    """The same header and signature over a payload someone edited."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    return ".".join([header, _b64(json.dumps(claims).encode()), signature])


def forged_tokens(
    settings: Settings, *, valid: str, subject: uuid.UUID, kind: str, refresh: str
) -> dict[str, str]:
    """Every way a token can be wrong, for an account of `kind` named `subject`."""
    secret = settings.jwt_secret.get_secret_value()  # type: ignore[union-attr]
    role = "client" if kind == "client" else "owner"
    claims = claims_for(settings, kind=kind, subject=subject, role=role)
    header, payload, _ = valid.split(".")
    return {
        "alg_none": jwt.encode(claims, None, algorithm="none"),
        "alg_none_header_on_valid": ".".join(
            [_b64(b'{"alg":"none","typ":"JWT"}'), payload, ""]
        ),
        "wrong_key": jwt.encode(claims, WRONG_KEY, algorithm="HS256"),
        "hs512_same_key": jwt.encode(claims, secret * 2, algorithm="HS512"),
        "stripped_signature": f"{header}.{payload}.",
        "edited_subject": edit_payload(valid, sub=str(uuid.uuid4())),
        "edited_expiry": edit_payload(valid, exp=int(time.time()) + 10**6),
        "expired": issue_access_token(
            settings,
            kind=kind,
            subject=subject,
            role=role,  # type: ignore[arg-type]
            now=time.time() - 2 * settings.jwt_access_ttl_seconds,
        ),  # fmt: skip
        "wrong_issuer": jwt.encode({**claims, "iss": "someone-else"}, secret, "HS256"),
        "wrong_audience": jwt.encode(
            {**claims, "aud": "tlounge:nobody"}, secret, "HS256"
        ),
        "missing_version": jwt.encode(
            {k: v for k, v in claims.items() if k != "ver"}, secret, "HS256"
        ),
        "refresh_as_access": refresh,
        # as large as a head may be; a larger one is refused before any route
        "fifteen_kilobytes": "a" * (15 * 1024),
        "garbage": "not.a.jwt",
        "empty_parts": "..",
    }


def forged_admin_tokens(
    settings: Settings, *, client_id: uuid.UUID, client_token: str
) -> dict:
    """A client's way into admin routes: its own token, edited or re-signed."""
    secret = settings.jwt_secret.get_secret_value()  # type: ignore[union-attr]
    owner = claims_for(settings, kind="admin", subject=client_id, role="owner")
    return {
        "client_token": client_token,
        "client_role_edited": edit_payload(
            client_token, role="owner", aud=AUDIENCE["admin"]
        ),
        "wrong_key_owner": jwt.encode(owner, WRONG_KEY, algorithm="HS256"),
        # rightly signed, but no admin account has this id
        "signed_owner_for_client_id": jwt.encode(owner, secret, algorithm="HS256"),
        "expired_owner": jwt.encode(
            {**owner, "iat": owner["iat"] - 7200, "exp": owner["iat"] - 3600},
            secret,
            "HS256",
        ),  # fmt: skip
    }


def admin_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path) of every operation that only staff may perform.

    Read from the app's own OpenAPI: the admin bearer scheme alone marks
    CurrentStaff (unless `{}` beside it makes it optional: public reads that
    show staff more; beside the client scheme, either may call), and coworking
    and image writes take any principal but answer staff.
    """
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            schemes = {name for item in operation.get("security", []) for name in item}
            tags = set(operation.get("tags", []))
            staff_write = (
                bool(schemes)
                and bool(tags & {"coworkings", "images"})
                and (method != "get" or path.endswith("/clients"))
            )
            optional = {} in operation.get("security", [])
            staff_only = schemes == {"admin"} and not optional
            if staff_only or staff_write:
                yield method.upper(), path


def fill_path(path: str, values: dict[str, str]) -> str:
    return re.sub(
        r"\{(\w+)(?::\w+)?\}", lambda m: values.get(m.group(1), str(uuid.uuid4())), path
    )


async def snapshot(pool: asyncpg.Pool) -> dict[str, list[tuple]]:
    """Every row of every table we own, in a stable order."""
    tables = await pool.fetch(
        "SELECT schemaname, tablename FROM pg_tables"
        " WHERE schemaname = ANY($1::text[]) ORDER BY 1, 2",
        list(SCHEMAS),
    )
    out: dict[str, list[tuple]] = {}
    for row in tables:
        name = f'"{row["schemaname"]}"."{row["tablename"]}"'
        rows = await pool.fetch(f"SELECT * FROM {name}")  # noqa: S608
        out[name] = sorted(tuple(map(repr, r.values())) for r in rows)
    return out
