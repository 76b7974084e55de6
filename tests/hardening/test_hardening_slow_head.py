"""A request head sent a byte at a time is cut off; a prompt one is served."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn

from api.devstack import free_port
from api.http_protocol import HeadDeadlineProtocol, with_head_timeout
from api.ops_runtime import uvicorn_config
from tests.conftest import make_settings

HEAD = (
    b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"p" * 40 + b"\r\n\r\n"
)


async def app(scope: dict, receive: object, send: object) -> None:
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-length", b"2")],
    }
    await send(start)  # type: ignore[operator]
    await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]


async def reading_app(scope: dict, receive: object, send: object) -> None:
    while (await receive()).get("more_body", False):  # type: ignore[operator]
        pass
    await app(scope, receive, send)


@contextlib.asynccontextmanager
async def serving(
    seconds: float, served: Callable[..., Any] = app
) -> AsyncIterator[int]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(
        served, host="127.0.0.1", port=port, lifespan="off", log_level="critical",
        http=with_head_timeout(seconds),
    ))  # fmt: skip
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


async def _until_closed(reader: asyncio.StreamReader) -> bytes:
    answer = b""
    with contextlib.suppress(ConnectionError):
        while chunk := await asyncio.wait_for(reader.read(4096), timeout=5.0):
            answer += chunk
    return answer


async def _dribble(writer: asyncio.StreamWriter, data: bytes, pause: float) -> None:
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(pause)


async def test_a_dribbled_head_is_cut_off_at_the_deadline() -> None:
    async with serving(1.0) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        began = time.monotonic()
        sender = asyncio.create_task(_dribble(writer, HEAD, 0.2))
        answer = await _until_closed(reader)
        elapsed = time.monotonic() - began
        sender.cancel()
        writer.close()
    assert answer == b""
    assert 0.9 < elapsed < 2.5


async def test_a_silent_connection_is_closed() -> None:
    async with serving(0.5) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        began = time.monotonic()
        assert await _until_closed(reader) == b""
        writer.close()
    assert 0.4 < time.monotonic() - began < 2.0


async def test_prompt_requests_on_one_connection_are_served() -> None:
    async with serving(0.5) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        answers = []
        for _ in range(2):
            writer.write(HEAD)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            answers.append((head.split(b"\r\n")[0], await reader.readexactly(2)))
            # longer than the head deadline, idle between requests: keep-alive's turn
            await asyncio.sleep(0.8)
        writer.close()
    assert answers == [(b"HTTP/1.1 200 OK", b"ok")] * 2


async def test_a_slow_second_head_on_a_kept_alive_connection_is_cut_off() -> None:
    async with serving(1.0) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEAD)
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        await reader.readexactly(2)
        began = time.monotonic()
        sender = asyncio.create_task(_dribble(writer, HEAD, 0.2))
        rest = await _until_closed(reader)
        elapsed = time.monotonic() - began
        sender.cancel()
        writer.close()
    assert first.startswith(b"HTTP/1.1 200 ")
    assert rest == b""
    assert 0.9 < elapsed < 2.5


async def test_a_head_too_large_gets_the_json_error_and_the_connection_closes() -> None:
    async with serving(5.0) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # a valid request but for its size, in pieces: h11 refuses a head left
        # incomplete past its buffer (16 KiB), which one big write may not do
        head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 70_000
        # read while writing: the answer comes before the head is all sent
        answering = asyncio.create_task(_until_closed(reader))
        with contextlib.suppress(ConnectionError):
            for offset in range(0, len(head), 4096):
                writer.write(head[offset : offset + 4096])
                await writer.drain()
                await asyncio.sleep(0.001)
            writer.write(b"\r\n\r\n")
        answer = await answering
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    # as for a head that arrives whole, which the body-limit middleware sizes
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {
        "error": "headers_too_large",
        "description": "header: the request line and headers take more than"
        " 16384 bytes, the most allowed",
    }


async def test_a_malformed_request_line_gets_the_json_error() -> None:
    async with serving(5.0) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n")
        answer = await _until_closed(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"] == "bad_request"


CHUNKED_HEAD = (
    b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
)


async def test_a_malformed_chunk_is_blamed_on_the_body() -> None:
    async with serving(5.0, reading_app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(CHUNKED_HEAD + b"4\r\nfine\r\n")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.write(b"zz\r\nnot a chunk\r\n")
        answer = await _until_closed(reader)
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert json.loads(answer.partition(b"\r\n\r\n")[2]) == {
        "error": "bad_request",
        "description": "body: not valid HTTP/1.1 framing (a malformed chunk)",
    }


async def test_a_malformed_chunk_after_the_answer_began_ends_the_connection() -> None:
    async with serving(5.0) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(CHUNKED_HEAD)
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
        writer.write(b"zz\r\nnot a chunk\r\n")
        rest = await _until_closed(reader)
        writer.close()
    assert first.startswith(b"HTTP/1.1 200 OK\r\n")
    # the answer already begun, and nothing after it
    assert rest == b"ok"


def test_the_api_server_uses_the_deadline() -> None:
    config = uvicorn_config(make_settings(head_read_timeout_seconds=3.5))
    assert issubclass(config.http, HeadDeadlineProtocol)  # type: ignore[arg-type]
    assert config.http.head_timeout == 3.5  # type: ignore[union-attr]
