"""A bound on how long any request may take, whatever it waits on.

Each wait has its own timeout (a query 5 s, a workflow's answer 20 s), but
waits add up and queue: with PostgreSQL hung, requests lined up for the
pool's connections, each connection's replacement waited out its own
timeout, and the last in line heard a 503 after minutes. Past the deadline
the request is cancelled and answered 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from api.errors import error_body

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# past the 20 s a booking or a move waits for its workflow, and the few
# queries around that wait
REQUEST_DEADLINE_SECONDS = 25.0
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestDeadline:
    def __init__(self, app: ASGIApp, *, seconds: float | None = None):
        self.app = app
        self.seconds = seconds or REQUEST_DEADLINE_SECONDS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        answered = False

        async def watched(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                answered = True
            await send(message)

        bound = asyncio.timeout(self.seconds)
        try:
            async with bound:
                await self.app(scope, receive, watched)
        except TimeoutError:
            # a TimeoutError of the route's own is its to answer, not ours
            if not bound.expired() or answered:
                raise
            logger.warning(
                "%s %s: no answer within %g s; answered 503",
                scope.get("method"), scope.get("path"), self.seconds,
            )  # fmt: skip
            await _unavailable(send, scope.get("method", ""), self.seconds)


async def _unavailable(send: Send, method: str, seconds: float) -> None:
    description = f"request: no answer within {seconds:g} s; retry shortly"
    if method not in _SAFE:
        description = (
            f"request: no answer within {seconds:g} s, and it may yet take"
            " effect; read before asking again (a booking with the same"
            " Idempotency-Key gets its answer)"
        )
    payload = json.dumps(
        error_body("unavailable", description), separators=(",", ":")
    ).encode()
    await send({
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            (b"retry-after", b"5"),
        ],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": payload})
