"""uvicorn's HTTP/1.1 protocol with a deadline for each request's head.

uvicorn times out idle keep-alive connections and nothing else: a client that
connects and sends its request line and headers a byte at a time holds a
connection, and a slot of the server, for as long as it likes. Here every
request head has to be complete within a deadline counted from the
connection, or from the first byte of the next request on a kept-alive one;
past it the connection is closed. The body has its own deadline, in the
body-limit middleware.

A head that h11 cannot parse (malformed, or larger than it buffers) gets the
API's JSON error shape rather than uvicorn's line of plain text.
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_BAD_HEAD = json.dumps(
    {
        "error": "bad_request",
        "description": "request: not a valid HTTP/1.1 head (malformed, or too large)",
    },
    separators=(",", ":"),
).encode()


class HeadDeadlineProtocol(H11Protocol):
    head_timeout: float = 10.0
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        self._disarm()
        headers = [
            (b"content-type", b"application/json"),
            (b"connection", b"close"),
        ]
        event = h11.Response(status_code=400, headers=headers, reason=b"Bad Request")
        for part in (event, h11.Data(data=_BAD_HEAD), h11.EndOfMessage()):
            self.transport.write(self.conn.send(part) or b"")
        self.transport.close()

    def _arm(self) -> None:
        if self._head_deadline is None and not self.transport.is_closing():
            self._head_deadline = self.loop.call_later(
                self.head_timeout, self._head_too_slow
            )

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        # disarmed as soon as a head is complete, so IDLE here means still incomplete
        if self.conn.their_state is h11.IDLE:
            self.transport.close()


def with_head_timeout(seconds: float) -> type[H11Protocol]:
    return type(
        "HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"head_timeout": seconds}
    )
