"""The FastAPI application: resources in the lifespan, thin routers, one error map."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import unquote

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.db import migrate
from api.deadline import RequestDeadline
from api.deps import refuse_unknown_query
from api.errors import error_body, install_error_handlers
from api.limits import BodyLimitMiddleware, send_error
from api.logging_setup import install_request_context
from api.metrics import install_metrics
from api.openapi import install_docs, install_openapi
from api.resources import Resources, open_resources
from api.routes import admins, clients, health, reservations
from api.routes import coworkings as coworking_routes
from api.routes import images as image_routes
from api.settings import Settings, settings_or_exit

logger = logging.getLogger(__name__)

# Any port on a loopback host: what a frontend's dev server uses.
_DEV_ORIGINS = r"^http://(localhost|127\.0\.0\.1)(:\d{1,5})?$"


# what Starlette's refusal lists, and the request header that each refers to
_PREFLIGHT_FAILURES = {
    "origin": "header.Origin: not an allowed origin",
    "method": "header.Access-Control-Request-Method: not an allowed method",
    "headers": "header.Access-Control-Request-Headers: names a header not allowed",
    "private-network": (
        "header.Access-Control-Request-Private-Network: not allowed here"
    ),
}


class Cors(CORSMiddleware):
    """Starlette's CORS, with a refused preflight in our JSON error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        answer = super().preflight_response(request_headers)
        if answer.status_code != 400:
            return answer
        failures = bytes(answer.body).decode().removeprefix("Disallowed CORS ")
        reasons = [
            _PREFLIGHT_FAILURES.get(name.strip(), name.strip())
            for name in failures.split(",")
        ]
        headers = {
            name: value
            for name, value in answer.headers.items()
            if name not in ("content-type", "content-length")
        }
        return JSONResponse(
            error_body("invalid_header", "; ".join(reasons)),
            status_code=400,
            headers=headers,
        )


class HeadAsGet:
    """HEAD answered as GET would be, headers and all, without the body.

    FastAPI's routes answer only the methods they name, so a load balancer's
    or a link checker's HEAD met a 405 where RFC 9110 expects what GET says.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, without_body)
        finally:
            # the route that answered, for the access line and the metrics outside
            for key in ("route", "endpoint"):
                if key in as_get:
                    scope[key] = as_get[key]


# RFC 3986's host (a bracketed IPv6 literal, or a name or IPv4 address) and port
_HOST = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::(?P<port>[0-9]{0,5}))?"
)


class OriginForm:
    """A request target in absolute form (`GET http://host/path`), which RFC
    9112 requires a server to accept, served as its path; its authority stands
    in for Host. uvicorn passes the whole URL on as the path, which no route
    matched. A target that is neither that nor a path from `/` (nor the `*` of
    OPTIONS) is a 400, as it names no resource."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") or b""
        if scope["type"] != "http" or raw.startswith(b"/"):
            await self.app(scope, receive, send)
            return
        if raw == b"*":
            await _of_the_server(scope, send)
            return
        scheme, found, rest = raw.partition(b"://")
        # the authority ends where the path, the query or a fragment begins
        authority = re.split(rb"[/?#]", rest, maxsplit=1)[0]
        host = authority
        named = _HOST.fullmatch(host)
        if (
            not found
            # RFC 9110 4.2.4: userinfo in an http(s) URI is to be taken as an
            # error, as it serves to pass one host off as another
            or b"@" in authority
            or scheme.lower() not in (b"http", b"https")
            or named is None
            or int(named.group("port") or 0) > 65535
        ):
            await send_error(
                send, 400, "bad_request",
                "request: the target must be a path from /, or an http(s) URL"
                " with a host (and no user)",
                headers=[],
            )  # fmt: skip
            return
        tail = rest[len(authority) :]
        if scope["method"] == "OPTIONS" and not tail.startswith(b"/"):
            # RFC 9112 reads an OPTIONS of the authority alone as one of `*`
            await _of_the_server(scope, send)
            return
        raw_path = tail if tail.startswith(b"/") else b"/"
        headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
        await self.app(
            {
                **scope,
                "raw_path": raw_path,
                "path": unquote(raw_path.decode("ascii", "replace")),
                "headers": [(b"host", host), *headers],
            },
            receive,
            send,
        )


# every method some route of ours takes
_SERVER_METHODS = b"DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"


async def _of_the_server(scope: Scope, send: Send) -> None:
    """`OPTIONS *` asks what the server as a whole takes; `*` names nothing
    else (RFC 9110, 9.3.7)."""
    if scope["method"] != "OPTIONS":
        await send_error(
            send, 400, "bad_request",
            "request: the target * is for OPTIONS alone", headers=[],
        )  # fmt: skip
        return
    headers = [(b"allow", _SERVER_METHODS)]
    named = {key for key, _ in scope["headers"]}
    if b"content-length" in named or b"transfer-encoding" in named:
        # a body this answer never reads would hold the connection open
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


def create_app(
    settings: Settings | None = None, *, resources: Resources | None = None
) -> FastAPI:
    settings = settings or settings_or_exit()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if resources is not None:
            yield
            return
        opened = await open_resources(settings)
        async with opened.pool.acquire() as conn:
            await migrate(conn)
        app.state.resources = opened
        try:
            yield
        finally:
            await opened.close()

    app = FastAPI(
        title="T-Lounge",
        version="0.1.0",
        description="Booking engine for coworking spaces",
        lifespan=lifespan,
        # a trailing slash is a 404 in our shape, not a redirect whose
        # Location is built from the request's Host header
        redirect_slashes=False,
        dependencies=[Depends(refuse_unknown_query)],
        # served from the package's files instead (install_docs)
        docs_url=None,
        redoc_url=None,
    )
    # innermost: the logs, metrics and CORS still see the HEAD
    app.add_middleware(HeadAsGet)
    # inside the body's bounds, so a slow upload is not counted against it
    app.add_middleware(RequestDeadline)
    app.add_middleware(
        BodyLimitMiddleware,
        max_json_bytes=settings.max_body_bytes,
        max_upload_bytes=settings.image_max_bytes,
        read_timeout=settings.body_read_timeout_seconds,
    )
    app.add_middleware(
        Cors,
        allow_origins=settings.cors_origins,
        allow_origin_regex=_DEV_ORIGINS if settings.is_dev else None,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=[
            "Authorization",
            "Content-Type",
            "Idempotency-Key",
            "X-Request-ID",
        ],
        # a browser frontend reads Retry-After only when told it may
        expose_headers=["X-Request-ID", "Retry-After"],
        max_age=600,
    )
    install_metrics(
        app,
        token=settings.metrics_token.get_secret_value()
        if settings.metrics_token
        else None,
    )
    install_request_context(app)
    # outermost: the logs and metrics name the path, not the URL
    app.add_middleware(OriginForm)
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    if resources is not None:
        app.state.resources = resources
    app.include_router(health.router)
    app.include_router(reservations.router)
    app.include_router(coworking_routes.router)
    app.include_router(image_routes.router)
    app.include_router(clients.router)
    app.include_router(admins.router)
    return app


def app_factory() -> FastAPI:
    """Entry point for uvicorn (`--factory api.main:app_factory`)."""
    return create_app()
