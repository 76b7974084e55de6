"""Prometheus metrics of the API: request counts, latency and in-flight requests.

Requests are labelled by route template (`/api/reservations/{reservation_id}`),
never by raw path, so ids cannot grow the number of series; a path that
matches no route is counted under one label.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Unauthorized
from api.openapi import documented_template
from workers.metrics import served_by

UNMATCHED = "<unmatched>"
METRICS_PATH = "/metrics"
# a client may send any method name; only these become their own label
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "tlounge_http_requests",
    "HTTP requests answered, by route template and status",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "tlounge_http_request_duration_seconds",
    "Time from the request's arrival to the end of its response",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_IN_PROGRESS = Gauge(
    "tlounge_http_requests_in_progress", "HTTP requests being served right now"
)


def route_template(scope: Scope) -> str:
    """The path template of the route that served the request, or UNMATCHED."""
    route = scope.get("route") or _plain_route(scope)
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(template, str) and template:
        return template
    return _unrouted_template(scope) or UNMATCHED


def _unrouted_template(scope: Scope) -> str | None:
    """Where a request refused before routing (a repeated query parameter, a
    body too large) was going, or the folder of static files it read: so a
    route's refusals are counted under it. Documented paths only, so a
    scanner's made-up paths stay one label."""
    app = scope.get("app")
    if not isinstance(app, FastAPI):
        return None
    path = scope.get("path", "")
    for route in app.router.routes:
        if isinstance(route, Mount) and path.startswith(f"{route.path}/"):
            return f"{route.path}/{{path}}"
    return documented_template(app, path)


def _plain_route(scope: Scope) -> Any:
    """A plain Starlette route (the OpenAPI document, the docs pages) names no
    `route` in the scope, only its endpoint."""
    endpoint = scope.get("endpoint")
    router = getattr(scope.get("app"), "router", None)
    if endpoint is None or router is None:
        return None
    return next(
        (r for r in router.routes if getattr(r, "endpoint", None) is endpoint), None
    )


class MetricsMiddleware:
    """Pure ASGI, so streaming responses and background tasks are untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # labels() takes a lock and validates on every call; the label sets
        # are few, so their children are looked up once and kept here
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        HTTP_IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            HTTP_IN_PROGRESS.dec()
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self._observe(
                method, route_template(scope), status,
                time.perf_counter() - started,
            )  # fmt: skip

    def _observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, str(status))
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = HTTP_REQUESTS.labels(*key)
        counter.inc()
        histogram = self._histograms.get(key[:2])
        if histogram is None:
            histogram = self._histograms[key[:2]] = HTTP_DURATION.labels(method, route)
        histogram.observe(seconds)


def metrics_endpoint(token: str | None) -> Callable[[Request], Awaitable[Response]]:
    """The scrape, behind a bearer token where one is set: route names and
    traffic are nobody's business but the operator's."""
    expected = token.encode() if token else None

    async def scrape(request: Request) -> Response:
        if expected is not None:
            scheme, _, sent = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                sent.encode(), expected
            ):
                raise Unauthorized("This scrape needs the metrics token")
        return Response(
            generate_latest(served_by("api")),  # type: ignore[arg-type]
            media_type=CONTENT_TYPE_LATEST,
        )

    return scrape


def install_metrics(app: FastAPI, *, token: str | None = None) -> None:
    app.add_middleware(MetricsMiddleware)
    app.add_route(
        METRICS_PATH, metrics_endpoint(token), methods=["GET"], include_in_schema=False
    )
