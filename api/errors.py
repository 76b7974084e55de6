"""Our exception family and the one place that turns it into the contract's body.

Every error answer is `{"error": <code>, "description": <text>}` (the
contract's ApiError). Services raise these; routers never build error bodies.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from valkey.exceptions import ConnectionError as ValkeyConnectionError
from valkey.exceptions import TimeoutError as ValkeyTimeoutError

from api.openapi import allowed_methods, malformed_id

logger = logging.getLogger(__name__)


class TLoungeError(Exception):
    status_code = 400
    code = "bad_request"

    def __init__(self, description: str, *, headers: dict[str, str] | None = None):
        super().__init__(description)
        self.description = description
        self.headers = headers or {}


class InvalidInput(TLoungeError):
    status_code = 400
    code = "invalid_body"


class InvalidQuery(InvalidInput):
    """A query parameter that passed its type but not the request's sense."""

    code = "invalid_query"


class RuleViolation(TLoungeError):
    """A booking rule of the coworking refuses the request."""

    status_code = 400
    code = "rule_violation"

    def __init__(self, rule: str, description: str):
        super().__init__(description)
        self.rule = rule
        if rule == "end_before_start":
            # no coworking's rule but the body's sense, as a booking's check has it:
            # one error code for the one fault, whichever check met it first
            self.code = InvalidInput.code


class Unauthorized(TLoungeError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, description: str = "Missing or invalid credentials"):
        super().__init__(description, headers={"WWW-Authenticate": "Bearer"})


class InvalidCredentials(TLoungeError):
    """Sign-in refused; the same answer whether the email or the password is wrong.

    A 400, the one refusal the contract lists for its sign-in: frontends take a
    401 for a session gone stale, and may answer it by refreshing or leaving.
    """

    status_code = 400
    code = "invalid_credentials"

    def __init__(self) -> None:
        super().__init__("Wrong email or password")


class InvalidPassword(TLoungeError):
    """The current password sent with a sensitive change does not match."""

    status_code = 400
    code = "invalid_password"

    def __init__(self) -> None:
        super().__init__("The current password is not correct")


class Forbidden(TLoungeError):
    status_code = 403
    code = "forbidden"


class NotFound(TLoungeError):
    status_code = 404
    code = "not_found"


class Conflict(TLoungeError):
    status_code = 409
    code = "conflict"


class EmailTaken(TLoungeError):
    # 400: the contract's registration and profile edits list no 409
    status_code = 400
    code = "email_taken"

    def __init__(self) -> None:
        super().__init__("email: an account with this email already exists")


class PayloadTooLarge(TLoungeError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMedia(TLoungeError):
    status_code = 415
    code = "unsupported_media_type"


class RateLimited(TLoungeError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, retry_after: int):
        super().__init__(
            "Too many attempts; try again later",
            headers={"Retry-After": str(max(1, retry_after))},
        )


class Unavailable(TLoungeError):
    """A dependency is down; the request changed nothing and may be retried."""

    status_code = 503
    code = "unavailable"

    def __init__(self, description: str, retry_after: int = 5):
        super().__init__(description, headers={"Retry-After": str(retry_after)})


# A dependency that went away under a request: the request was fine, so it is
# a 503 to retry, wherever in the code the connection broke.
DEPENDENCY_DOWN: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    ValkeyConnectionError,
    ValkeyTimeoutError,
    OSError,
)
# the same for PostgreSQL alone, with a pooled connection that broke under us
DATABASE_DOWN: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ConnectionDoesNotExistError,
    OSError,
)


def error_body(code: str, description: str) -> dict[str, str]:
    return {"error": code, "description": description}


# a frontend tells a bad query string or header from a bad body by the code
_CODE_BY_LOCATION = {
    "query": "invalid_query",
    "path": "invalid_path",
    "header": "invalid_header",
}


def validation_code(errors: list[Any]) -> str:
    """The code for the first failing input's location; a body by default."""
    location = errors[0].get("loc", ()) if errors else ()
    return _CODE_BY_LOCATION.get(str(location[0]) if location else "", "invalid_body")


# where pydantic's words speak of Python rather than of the request
_OUR_WORDS = {
    "timezone_aware": "needs its offset, such as +01:00 or Z; a time without"
    " one is never read as UTC",
    "uuid_type": "must be a UUID written as a string",
}


def describe_validation(errors: list[Any]) -> str:
    parts = []
    for item in errors[:5]:
        if item.get("type") == "json_invalid":
            # its location is a character offset, not a field
            reason = item.get("ctx", {}).get("error", "malformed")
            parts.append(f"body: not valid JSON ({reason})")
            continue
        loc = tuple(item.get("loc", ()))
        location = [str(part) for part in loc if part != "body"]
        if loc[:1] == ("body",) and len(loc) > 1 and isinstance(loc[1], int):
            # an item of a body that is a list: "body.3", not a bare "3"
            location.insert(0, "body")
        field = ".".join(location) or "body"
        # our validators' own words, without pydantic's label for their kind
        message = _OUR_WORDS.get(item.get("type", "")) or str(
            item.get("msg", "invalid")
        ).removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    return "; ".join(parts)


# FastAPI's words for a body its JSON or form parser gave up on, the parser's
# own error as the cause
_UNPARSED_BODY = "There was an error parsing the body"


def _unparsed_reason(cause: BaseException | None) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return "body: not valid JSON (not UTF-8 text)"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return "body: not valid JSON (a number of more than 4300 digits)"
    return "body: cannot be parsed"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TLoungeError)
    async def _ours(request: Request, error: TLoungeError) -> JSONResponse:
        return JSONResponse(
            error_body(error.code, error.description),
            status_code=error.status_code,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = list(error.errors())
        return JSONResponse(
            error_body(validation_code(errors), describe_validation(errors)),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        if error.detail == _UNPARSED_BODY:
            return JSONResponse(
                error_body("invalid_body", _unparsed_reason(error.__cause__)),
                status_code=400,
            )
        if error.status_code == 404 and error.detail == "Not Found":
            # a route whose id is typed in its path never matched a malformed
            # one; say so as the routes that parse their ids do
            name = malformed_id(request.app, request.method, request.url.path)
            if name is not None:
                return JSONResponse(
                    error_body(
                        "invalid_path", f"path.{name}: Input should be a valid UUID"
                    ),
                    status_code=400,
                )
            # and a method it does not take is a 405 there, as with a valid id
            allowed = allowed_methods(request.app, request.url.path)
            if allowed:
                return JSONResponse(
                    error_body(
                        "method_not_allowed",
                        f"method: {request.method} is not allowed here",
                    ),
                    status_code=405,
                    headers={"Allow": ", ".join(allowed)},
                )
        code = {404: "not_found", 405: "method_not_allowed"}.get(
            error.status_code, "http_error"
        )
        headers = dict(getattr(error, "headers", None) or {})
        # Starlette's words for a route it did not find, said the way ours are
        description = {
            "Not Found": "path: no resource at this address",
            "Method Not Allowed": f"method: {request.method} is not allowed here",
        }.get(str(error.detail), str(error.detail))
        if error.status_code == 405:
            # the router names only the first route it matched; list them all
            headers["Allow"] = ", ".join(
                allowed_methods(request.app, request.url.path)
            ) or headers.get("Allow", "")
        return JSONResponse(
            error_body(code, description),
            status_code=error.status_code,
            headers=headers or None,
        )

    async def _dependency_down(request: Request, error: Exception) -> JSONResponse:
        logger.warning(
            "%s %s: a dependency is unavailable (%s)",
            request.method, request.url.path, type(error).__name__,
        )  # fmt: skip
        unavailable = Unavailable(
            "A service we depend on is unavailable; retry shortly"
        )
        return JSONResponse(
            error_body(unavailable.code, unavailable.description),
            status_code=unavailable.status_code,
            headers=unavailable.headers,
        )

    for kind in DEPENDENCY_DOWN:
        app.add_exception_handler(kind, _dependency_down)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", "Something went wrong on our side"),
            status_code=500,
        )
