"""Bounds on what a request may cost before any route sees it.

A pure ASGI middleware: it reads the body itself, up to a limit and within a
deadline, and answers 413, 408, 415 or 400 on its own, so an oversized,
dribbled, compressed, mislabelled or absurdly nested body is never handed to
a parser. What passes is replayed to the application unchanged. It also
refuses a JSON body with a key twice in one object, a request that names its
credentials or its idempotency key twice, or its length two ways, and one
whose head is larger than any client of this API sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from email.message import Message as MimeHeaders
from email.utils import collapse_rfc2231_value
from typing import Any
from urllib.parse import parse_qsl, unquote_to_bytes

from api.errors import error_body

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# room for the multipart boundaries and part headers around an image
MULTIPART_SLACK = 16 * 1024
# Headers that name one thing: with two, which one counted would be up to the
# framework (the first, silently), whoever put the second there.
# The body's type and coding too: the checks below read the last of two, the
# framework parses by the first.
_ONCE_ONLY = {
    "authorization": "Authorization",
    "idempotency-key": "Idempotency-Key",
    "content-type": "Content-Type",
    "content-encoding": "Content-Encoding",
}
# Likewise a query parameter named twice: the last one would win without a
# word, where the caller may have meant either, or both. Only these take lists.
_LIST_QUERIES = frozenset({"features"})
_QUERY_NAME = re.compile(r"[a-z_]{1,40}")
# h11 stops a head left incomplete past 16 KiB, but parses one of any size that
# arrives in a single read; this bound holds whatever the reads were
MAX_HEAD_BYTES = 16 * 1024
# no body of this API nests deeper than a handful of levels
MAX_JSON_DEPTH = 32
# After a 413 the rest of the body is read and thrown away, up to this much, so
# a client that sends before it reads sees the answer instead of a reset.
DRAIN_BYTES = 32 * 1024 * 1024
# ... and only while it keeps coming: a client that declared a large body and
# went quiet is waiting for the answer, not about to send the rest
DRAIN_IDLE_SECONDS = 2.0
# the image uploads, of a coworking or a seat: the one body not sent as JSON
_UPLOAD_PATH = re.compile(r"/api/coworking(?:s/[^/]+)?(?:/seats/[^/]+)?/images")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class _Refused(Exception):
    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status, self.code, self.description = status, code, description


def _named_twice(query: bytes) -> str | None:
    """The first parameter name that the query string carries twice, if any."""
    if query.count(b"=") < 2:
        return None
    seen: set[str] = set()
    for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        # a name no route reads is ignored anyway, and never echoed back
        if name in seen and _QUERY_NAME.fullmatch(name) and name not in _LIST_QUERIES:
            return name
        seen.add(name)
    return None


def _not_utf8(query: bytes) -> str | None:
    """Where the query's escapes spell no UTF-8 text: the framework reads them
    as U+FFFD, so a search for "%ff" looked for that character and found none."""
    if b"%" not in query and query.isascii():
        return None
    for pair in query.split(b"&"):
        name, _, value = pair.partition(b"=")
        try:
            unquote_to_bytes(name).decode()
        except UnicodeDecodeError:
            return "query"
        try:
            unquote_to_bytes(value).decode()
        except UnicodeDecodeError:
            label = name.decode("latin-1")
            return f"query.{label}" if _QUERY_NAME.fullmatch(label) else "query"
    return None


def _utf8_text(body: bytes) -> bool:
    # a raw NUL is never in JSON text (it is escaped), but is in UTF-16's
    if b"\x00" in body:
        return False
    try:
        body.decode()
    except UnicodeDecodeError:
        return False
    return True


class _KeyTwice(ValueError):
    pass


def _one_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _KeyTwice(key)
        found[key] = value
    return found


def key_named_twice(body: bytes) -> str | None:
    """The first key a JSON object of the body names twice, if any; None too
    for a body that is not JSON, which the route's own parser refuses."""
    try:
        json.loads(body, object_pairs_hook=_one_each)
    except _KeyTwice as twice:
        return str(twice.args[0])
    except (ValueError, RecursionError):
        return None
    return None


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest, strings aside."""
    # cheap exit for ordinary bodies: fewer openers than the bound
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return 0
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_json_bytes: int,
        max_upload_bytes: int,
        read_timeout: float,
    ) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes + MULTIPART_SLACK
        self.read_timeout = read_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head_bytes = len(scope.get("raw_path") or b"") + len(
            scope.get("query_string", b"")
        )
        head_bytes += sum(len(key) + len(value) + 4 for key, value in scope["headers"])
        if head_bytes > MAX_HEAD_BYTES:
            await _answer(
                send,
                _Refused(
                    431, "headers_too_large",
                    f"header: the request line and headers take {head_bytes} "
                    f"bytes, over the {MAX_HEAD_BYTES} allowed",
                ),
            )  # fmt: skip
            return
        names = [key.decode("latin-1").lower() for key, _ in scope["headers"]]
        for name, label in _ONCE_ONLY.items():
            if names.count(name) > 1:
                await _answer(
                    send,
                    _Refused(
                        400, "invalid_header", f"header.{label}: sent more than once"
                    ),
                )
                return
        twice = _named_twice(scope.get("query_string", b""))
        if twice is not None:
            await _answer(
                send,
                _Refused(400, "invalid_query", f"query.{twice}: sent more than once"),
            )
            return
        garbled = _not_utf8(scope.get("query_string", b""))
        if garbled is not None:
            await _answer(
                send,
                _Refused(
                    400, "invalid_query", f"{garbled}: its %-escapes are not UTF-8"
                ),
            )
            return
        headers = {
            key.decode("latin-1").lower(): value.decode("latin-1")
            for key, value in scope["headers"]
        }
        if "content-length" in headers and "transfer-encoding" in headers:
            # Two framings: a proxy in front that believed the other one would
            # see where this request ends, and the next begins, elsewhere than
            # we do (request smuggling). RFC 9112 wants the connection closed.
            await _answer(
                send,
                _Refused(
                    400, "invalid_header",
                    "header.Transfer-Encoding: not allowed beside Content-Length",
                ),
            )  # fmt: skip
            return
        if "content-length" not in headers and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)
            return
        content_type = headers.get("content-type", "").lower()
        # the route decides what body it takes, not the label alone: a login
        # labelled multipart was read up to an image's size
        upload = scope.get("method") == "POST" and bool(
            _UPLOAD_PATH.fullmatch(scope.get("path", ""))
        )
        image = upload and content_type.startswith("multipart/form-data")
        limit = self.max_upload_bytes if image else self.max_json_bytes
        try:
            if headers.get("content-length") != "0":
                _check_encoding(headers, content_type, upload=upload)
            body = await self._read(headers, receive, limit)
            if "json" in content_type and not _utf8_text(body):
                # RFC 8259 wants UTF-8; the parser would guess UTF-16 or -32
                # from the bytes and read what no client of ours sends
                raise _Refused(
                    400, "invalid_body", "body: not valid JSON (not UTF-8 text)"
                )
            if "json" in content_type and json_depth(body) > MAX_JSON_DEPTH:
                raise _Refused(
                    400, "invalid_body",
                    f"body: nested deeper than {MAX_JSON_DEPTH} levels",
                )  # fmt: skip
            if "json" in content_type and (key := key_named_twice(body)) is not None:
                # the parser would keep the last silently; the caller may have meant
                # either, and a proxy that read the first saw another request
                name = f"body.{key}" if _QUERY_NAME.fullmatch(key) else "body"
                raise _Refused(
                    400, "invalid_body", f"{name}: a key given twice in one object"
                )
        except _Refused as refused:
            logger.info(
                "refused body on %s %s: %s",
                scope.get("method"), scope.get("path"), refused.code,
            )  # fmt: skip
            # a client that asked to continue has sent nothing yet; keep it so
            if refused.status in (413, 415) and "100-continue" not in headers.get(
                "expect", ""
            ):
                await self._drain(receive)
            await _answer(send, refused)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(
        self, headers: dict[str, str], receive: Receive, limit: int
    ) -> bytes:
        declared = headers.get("content-length", "")
        too_large = _Refused(
            413, "payload_too_large", f"body: larger than {limit} bytes"
        )
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks: list[bytes] = []
        seen = 0
        try:
            async with asyncio.timeout(self.read_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        raise _Refused(400, "invalid_body", "body: client went away")
                    chunk = message.get("body", b"")
                    seen += len(chunk)
                    # a chunked body has no length to check up front
                    if seen > limit:
                        raise too_large
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        return b"".join(chunks)
        except TimeoutError:
            raise _Refused(
                408, "request_timeout",
                f"body: not received within {self.read_timeout:g} seconds",
            ) from None  # fmt: skip

    async def _drain(self, receive: Receive) -> None:
        """Discard what is left of the body, bounded in bytes and in time."""
        discarded = 0
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.read_timeout):
                while discarded <= DRAIN_BYTES:
                    message = await asyncio.wait_for(receive(), DRAIN_IDLE_SECONDS)
                    discarded += len(message.get("body", b""))
                    if message["type"] != "http.request" or not message.get(
                        "more_body", False
                    ):
                        return


def _check_encoding(
    headers: dict[str, str], content_type: str, *, upload: bool
) -> None:
    """Bodies here are JSON, or a multipart image upload, and never compressed."""
    if headers.get("content-encoding", "identity").lower() != "identity":
        raise _Refused(
            415, "unsupported_media_type",
            "header.Content-Encoding: bodies are accepted uncompressed only",
        )  # fmt: skip
    media = content_type.partition(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        charset = _charset(content_type)
        if charset not in (None, "utf-8", "utf8"):
            # RFC 8259: JSON between systems is UTF-8; latin-1 bytes read so
            # would turn into other text than the sender meant
            raise _Refused(
                415, "unsupported_media_type",
                f"header.Content-Type: charset {charset} is not accepted;"
                " JSON is read as UTF-8",
            )  # fmt: skip
        # an upload's route answers a JSON body itself, after its credentials
        return
    if upload and media == "multipart/form-data":
        return
    wanted = (
        "the image as multipart/form-data, field file" if upload else "application/json"
    )
    # FastAPI reads a body without a Content-Type as no JSON at all
    given = f"{media} is not accepted" if media else "missing"
    raise _Refused(
        415, "unsupported_media_type", f"header.Content-Type: {given}; send {wanted}"
    )


def _charset(content_type: str) -> str | None:
    # the standard library's MIME reader: quoted strings and RFC 2231's
    # `charset*=` as a mail reader has them
    header = MimeHeaders()
    header["Content-Type"] = content_type
    named = [
        collapse_rfc2231_value(value).lower()
        for name, value in header.get_params(failobj=[], header="content-type")[1:]
        if name == "charset"
    ]
    if len(named) > 1:
        # read by its first or its last, each reader would read other text
        return "given more than once"
    return named[0] if named else None


async def _answer(send: Send, refused: _Refused) -> None:
    # the rest of the body is never read, so the connection cannot be reused
    await send_error(
        send, refused.status, refused.code, refused.description,
        headers=[(b"connection", b"close")],
    )  # fmt: skip


async def send_error(
    send: Send,
    status: int,
    code: str,
    description: str,
    *,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """The contract's error body, from a middleware that answers on its own."""
    # compact, as Starlette writes every other error body
    payload = json.dumps(error_body(code, description), separators=(",", ":")).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
            *headers,
        ],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": payload})
