"""uvicorn's HTTP/1.1 protocol with a deadline for each request's head.

uvicorn times out idle keep-alive connections and nothing else: a client that
connects and sends its request line and headers a byte at a time holds a
connection, and a slot of the server, for as long as it likes. Here every
request head has to be complete within a deadline counted from the
connection, or from the first byte of the next request on a kept-alive one;
past it the connection is closed. The body has its own deadline, in the
body-limit middleware.

A head that h11 cannot parse (malformed: a 400; larger than it buffers: a
431), or a chunked body it cannot, gets the API's JSON error shape rather
than uvicorn's line of plain text.
"""

from __future__ import annotations

import asyncio
import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from api.limits import MAX_HEAD_BYTES


def _bad_request(description: str) -> bytes:
    body = {"error": "bad_request", "description": description}
    return json.dumps(body, separators=(",", ":")).encode()


_BAD_HEAD = _bad_request("request: not a valid HTTP/1.1 head")
_BAD_BODY = _bad_request("body: not valid HTTP/1.1 framing (a malformed chunk)")
# the same words as the body-limit middleware's 431, which sees a head that
# arrived whole; one that arrives in pieces overflows h11's buffer first
_HEAD_TOO_LARGE = json.dumps(
    {
        "error": "headers_too_large",
        "description": "header: the request line and headers take more than"
        f" {MAX_HEAD_BYTES} bytes, the most allowed",
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
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            # an answer has begun: a 400 cannot follow it, the connection can end
            self.transport.close()
            return
        # h11 owes an answer only once it has parsed a head, so the fault is after it
        status, reason = 400, b"Bad Request"
        body = _BAD_BODY if self.conn.our_state is h11.SEND_RESPONSE else _BAD_HEAD
        if (
            self.conn.our_state is h11.IDLE
            and len(self.conn.trailing_data[0]) > MAX_HEAD_BYTES
        ):
            status, reason = 431, b"Request Header Fields Too Large"
            body = _HEAD_TOO_LARGE
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        event = h11.Response(status_code=status, headers=headers, reason=reason)
        for part in (event, h11.Data(data=body), h11.EndOfMessage()):
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
