"""A bound on how long any request may take, whatever it waits on.

Each wait has its own timeout (a query 5 s, a workflow's answer 20 s), but
waits add up and queue: with PostgreSQL hung, requests lined up for the
pool's connections, each connection's replacement waited out its own
timeout, and the last in line heard a 503 after minutes. Past the deadline
the request is cancelled and answered 503.
"""

from __future__ import annotations

import asyncio
import logging

from api.limits import ASGIApp, Message, Receive, Scope, Send, send_error

logger = logging.getLogger(__name__)

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
    await send_error(
        send, 503, "unavailable", description, headers=[(b"retry-after", b"5")]
    )
