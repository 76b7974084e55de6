"""Structured logs: one event per line, with the ids that tie a line to its cause.

JSON in production, a short readable line in dev. Every record carries the
service name and, where they apply, the request id, the reservation id and
the workflow id. Values under secret-looking keys are masked before any
formatter sees them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

import temporalio.activity
import temporalio.workflow
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import METRICS_PATH, route_template
from api.settings import Settings

ACCESS_LOGGER = "tlounge.access"
REQUEST_ID_HEADER = "x-request-id"
MASK = "***"

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_FIELD_BREAKS = re.compile(r"[\s=\[\]'\"]")
# what a terminal or a line-based reader would take as layout, not text, and
# the bidirectional controls, which show part of a line reversed
_UNPRINTABLE = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)
_SECRET_KEY = re.compile(
    r"authorization|password|passwd|secret|token|api[-_]?key|cookie|credential",
    re.IGNORECASE,
)
# mail bodies can hold a client's personal data and booking links
_BODY_KEY = re.compile(r"(^|_)(body|html|plain_text)$", re.IGNORECASE)
_NO_FIELDS: Mapping[str, str] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, str]] = ContextVar(
    "tlounge_log_context", default=_NO_FIELDS
)
# probes and scrapes arrive every few seconds and say nothing new
_QUIET_PATHS = frozenset(
    {"/health", "/ready", "/api/health", "/api/ping", METRICS_PATH}
)
# attributes every LogRecord has; anything else on a record came from `extra`
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "service"}
)
_HANDLER_MARK = "_tlounge_handler"
# uvicorn repeats its message with terminal colour codes under this key
_DROPPED = frozenset({"color_message"})


def current_log_context() -> Mapping[str, str]:
    return _CONTEXT.get()


@contextmanager
def bind_log_context(**fields: object) -> Iterator[None]:
    """Add fields (reservation_id, workflow_id, ...) to every line logged inside."""
    merged = {**_CONTEXT.get()}
    merged.update({k: str(v) for k, v in fields.items() if v is not None})
    token = _CONTEXT.set(merged)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def redact(value: Any, key: str = "") -> Any:
    if key and _SECRET_KEY.search(key):
        return MASK
    if key and _BODY_KEY.search(key) and isinstance(value, str | bytes):
        return f"<{len(value)} chars>"
    if isinstance(value, Mapping):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if type(value) in (list, tuple):
        return type(value)(redact(item) for item in value)
    return value


def _ids_from_temporal(record: logging.LogRecord) -> dict[str, str]:
    """The SDK's workflow and activity loggers put their info dict on `extra`."""
    for attribute in ("temporal_workflow", "temporal_activity"):
        info = getattr(record, attribute, None)
        if isinstance(info, Mapping) and info.get("workflow_id"):
            return {"workflow_id": str(info["workflow_id"])}
    return {}


class ContextFilter(logging.Filter):
    """Stamps the service and the bound ids on each record; `extra` wins."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        fields = {**_ids_from_temporal(record), **_CONTEXT.get()}
        workflow_id = fields.get("workflow_id", "")
        if workflow_id.startswith("reservation-") and "reservation_id" not in fields:
            fields["reservation_id"] = workflow_id.removeprefix("reservation-")
        for key, value in fields.items():
            if key not in record.__dict__:
                setattr(record, key, value)
        return True


class RedactFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping | tuple) and record.args:
            record.args = redact(record.args)
        for key in record.__dict__.keys() - _STANDARD:
            record.__dict__[key] = redact(record.__dict__[key], key)
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD and key not in _DROPPED and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname.lower(),
            "service": getattr(record, "service", ""),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event.update(_extras(record))
        if record.exc_info:
            event["exc"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str, ensure_ascii=False)


def _field(value: object) -> str:
    """A field's value, quoted where a space, '=' or bracket in it (a path a
    request chose, say) could read as the end of it or as another field."""
    text = str(value)
    return repr(text) if _FIELD_BREAKS.search(text) else text


def _escaped(text: str) -> str:
    return _UNPRINTABLE.sub(lambda match: repr(match.group())[1:-1], text)


class DevFormatter(logging.Formatter):
    """A record is one line from column 0; what a request put in it (a path,
    a name) is escaped, and a traceback's lines are indented under it, so no
    input can start a line that reads as a record of its own."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = (
            f"{stamp}.{int(record.msecs):03d} {record.levelname:<7} "
            f"{record.name}: {record.getMessage()}"
        )
        extras = _extras(record)
        if extras:
            line += " [" + " ".join(f"{k}={_field(v)}" for k, v in extras.items()) + "]"
        line = _escaped(line)
        if record.exc_info:
            trace = self.formatException(record.exc_info)
            line += "".join(f"\n  {_escaped(part)}" for part in trace.split("\n"))
        return line


def configure_logging(
    settings: Settings, service: str, *, stream: TextIO | None = None
) -> logging.Handler:
    """Route every logger to one handler; safe to call again (it replaces it)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    json_lines = settings.effective_log_json
    handler.setFormatter(JsonFormatter() if json_lines else DevFormatter())
    handler.addFilter(ContextFilter(service))
    handler.addFilter(RedactFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    # ours from an earlier call, and the bare one logging.basicConfig made; a
    # test runner's capture handlers are subclasses and stay
    stale = [
        h
        for h in root.handlers
        if getattr(h, _HANDLER_MARK, False) or type(h) is logging.StreamHandler
    ]
    for old in stale:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # a JSON line has the SDK's info dict as a field of its own; in the text it
    # read as a Python dict, which no log search parses
    temporalio.workflow.logger.workflow_info_on_message = not json_lines
    temporalio.activity.logger.activity_info_on_message = not json_lines
    # our access line replaces uvicorn's; its error logger joins the root handler
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = name != "uvicorn.access"
    logging.getLogger("uvicorn.access").disabled = True
    return handler


def new_request_id() -> str:
    return uuid.uuid4().hex


def accepted_request_id(value: str | None) -> str | None:
    """A caller's id is kept only when short and plain, so it cannot forge log lines."""
    if value and _REQUEST_ID.match(value):
        return value
    return None


class RequestContextMiddleware:
    """Request id in, request id out, and one access line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.access = logging.getLogger(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = accepted_request_id(value.decode("latin-1"))
                break
        request_id = incoming or new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = _CONTEXT.set({**_CONTEXT.get(), "request_id": request_id})
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # left bound on purpose: the server's error handler logs this failure
            # after we return, in the same context, and its line needs the id
            self._log(scope, status, started, request_id)
            raise
        self._log(scope, status, started, request_id)
        _CONTEXT.reset(token)

    def _log(self, scope: Scope, status: int, started: float, request_id: str) -> None:
        level = logging.DEBUG if scope["path"] in _QUIET_PATHS else logging.INFO
        if not self.access.isEnabledFor(level):
            return
        route = route_template(scope)
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        self.access.log(
            level,
            "%s %s %s %.2fms",
            scope["method"], route, status, duration_ms,
            extra={
                "method": scope["method"], "route": route, "status": status,
                "duration_ms": duration_ms, "request_id": request_id,
                "path": scope["path"],
            },
        )  # fmt: skip


def install_request_context(app: Any) -> None:
    app.add_middleware(RequestContextMiddleware)
