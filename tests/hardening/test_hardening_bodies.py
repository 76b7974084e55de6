"""Hostile bodies and queries: oversized, nested, dribbled, or asking for everything."""

import asyncio
import contextlib
import json
import time
from dataclasses import replace

import httpx
import pytest

from api.http_protocol import with_head_timeout
from api.limits import (
    DRAIN_IDLE_SECONDS,
    MAX_JSON_DEPTH,
    BodyLimitMiddleware,
    json_depth,
    key_named_twice,
)
from api.main import create_app
from tests.factories import create_admin, create_client, create_coworking, create_seat
from tests.hardening.fuzz_api import serving

REGISTER = "/api/client/register"
MIB = 1024 * 1024


def _form(**extra: object) -> dict:
    return {
        "email": "new@example.com", "password": "long enough pass", "name": "Bea",
        "surname": "Stone", "patronymic": "", **extra,
    }  # fmt: skip


async def test_post_json_body_over_limit_refused_before_parsing(api, db) -> None:
    huge = json.dumps(_form(patronymic="x" * (11 * MIB))).encode()
    declared = await api.post(
        REGISTER, content=huge, headers={"Content-Type": "application/json"}
    )

    async def dribble():
        for _ in range(11):
            yield b" " * MIB

    chunked = await api.post(
        REGISTER, content=dribble(), headers={"Content-Type": "application/json"}
    )
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json() == {
            "error": "payload_too_large",
            "description": f"body: larger than {MIB} bytes",
        }
    assert await db.fetchval("SELECT count(*) FROM client.clients") == 0


async def test_post_json_nested_ten_thousand_deep_refused(api, db) -> None:
    nested = b'{"email": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    response = await api.post(
        REGISTER, content=nested, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    # written as compactly as the errors that the application itself answers
    assert response.content == (
        b'{"error":"invalid_body","description":"body: nested deeper than '
        + str(MAX_JSON_DEPTH).encode()
        + b' levels"}'
    )
    # brackets inside strings are text, not nesting
    text = await api.post(REGISTER, json=_form(patronymic="[" * 19))
    assert text.status_code == 200, text.text
    assert await db.fetchval("SELECT patronymic FROM client.clients") == "[" * 19


async def test_a_json_key_given_twice_is_refused_and_nothing_is_made(
    api, db, settings
) -> None:
    body = json.dumps(_form())[:-1] + ', "email": "other@example.com"}'
    nested = b'{"opening_hours": {"mon": [], "mon": []}}'
    owner = await create_admin(db, settings)
    coworking = await create_coworking(db)

    twice = await api.post(
        REGISTER, content=body, headers={"Content-Type": "application/json"}
    )
    inner = await api.patch(
        f"/api/coworkings/{coworking}",
        content=nested,
        headers={**owner.headers, "Content-Type": "application/json"},
    )

    assert (twice.status_code, twice.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "body.email: a key given twice in one object",
        },
    )
    assert (inner.status_code, inner.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "body.mon: a key given twice in one object",
        },
    )
    assert await db.fetchval("SELECT count(*) FROM client.clients") == 0
    # the look of it inside a string is text
    both = await api.post(REGISTER, json=_form(patronymic='{"a":1,"a":2}'))
    assert both.status_code == 200, both.text


@pytest.mark.parametrize(
    ("body", "key"),
    [
        pytest.param(b'{"a": {"b": 1}, "c": {"b": 2}}', None, id="apart"),
        pytest.param(b'[{"a": 1}, {"a": 1}]', None, id="in_list_items"),
        pytest.param(b'{"a": 1, "a": 1}', "a", id="same_value"),
        pytest.param(b'{"\\u0061": 1, "a": 2}', "a", id="escaped"),
        pytest.param(b'{"a": 1, "a"', None, id="not_json"),
    ],
)
def test_find_a_key_named_twice(body: bytes, key: str | None) -> None:
    assert key_named_twice(body) == key


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        pytest.param(b"[]", 0, id="shallow_fast_path"),
        pytest.param(b"[" * 40 + b"]" * 40, 40, id="arrays"),
        pytest.param(b'{"a":' * 40 + b"1" + b"}" * 40, 40, id="objects"),
        pytest.param(b'["\\"[[[' + b"[" * 40 + b'"]', 1, id="escaped_quote_in_string"),
    ],
)
def test_measure_json_depth_counts_only_structure(body: bytes, depth: int) -> None:
    assert json_depth(body) == depth


@pytest.mark.parametrize(
    ("expect", "pulled_messages"), [("100-continue", 0), (None, 1)],
    ids=["expect_continue_never_read", "rest_drained_unparsed"],
)  # fmt: skip
async def test_body_limit_declared_length_refused_before_app(
    expect, pulled_messages
) -> None:
    called, pulled, sent = [], [], []

    async def app(scope, receive, send):
        called.append(scope)

    async def receive():
        pulled.append(1)
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    guard = BodyLimitMiddleware(
        app, max_json_bytes=1024, max_upload_bytes=2048, read_timeout=1
    )
    scope = {
        "type": "http", "method": "POST", "path": "/x",
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(11 * MIB).encode())]
                   + ([(b"expect", expect.encode())] if expect else []),
    }  # fmt: skip
    await guard(scope, receive, send)
    assert (called, len(pulled)) == ([], pulled_messages)
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"]) == {
        "error": "payload_too_large", "description": "body: larger than 1024 bytes"
    }  # fmt: skip


@pytest.mark.parametrize(
    "path",
    ["/api/coworkings?limit={n}", "/api/coworkings/{cw}/seats?limit={n}"],
    ids=["coworkings", "seats"],
)
async def test_list_with_huge_limit_clamped(api, db, path: str) -> None:
    coworking_id = await create_coworking(db)
    response = await api.get(path.format(n=10**30, cw=coworking_id))
    assert response.status_code == 200
    assert len(response.content) < 64 * 1024
    assert isinstance(response.json(), list)


async def test_client_reservations_with_huge_limit_clamped(api, db, settings) -> None:
    client = await create_client(db, settings)
    admin = await create_admin(db, settings)
    mine = await api.get(
        f"/api/client/reservations?limit={10**30}", headers=client.headers
    )
    staff = await api.get(f"/api/reservations?limit={10**30}", headers=admin.headers)
    assert (mine.status_code, mine.json()) == (200, [])
    assert (staff.status_code, staff.json()) == (200, [])


async def test_slow_client_dribbling_body_dropped(resources, db) -> None:
    # the deadline falls between two dribbled bytes, so no write races the close
    settings = resources.settings.model_copy(update={"body_read_timeout_seconds": 1.5})
    app = create_app(settings, resources=replace(resources, settings=settings))
    async with serving(app) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/client/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 60\r\n\r\n"
        )
        began = time.monotonic()

        async def dribble() -> None:
            with contextlib.suppress(ConnectionError):
                for _ in range(10):
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(1.0)

        sender = asyncio.create_task(dribble())
        answer = b""
        with contextlib.suppress(ConnectionError):
            # read until the server closes its side
            while chunk := await asyncio.wait_for(reader.read(4096), timeout=5.0):
                answer += chunk
        elapsed = time.monotonic() - began
        sender.cancel()
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert json.loads(body) == {
        "error": "request_timeout",
        "description": "body: not received within 1.5 seconds",
    }
    assert elapsed < 4.0


async def test_a_body_framed_two_ways_is_refused_and_the_connection_closed(
    resources, db
) -> None:
    app = create_app(resources.settings, resources=resources)
    # the API's own HTTP protocol, h11 (httptools refuses this request itself)
    protocol = with_head_timeout(resources.settings.head_read_timeout_seconds)
    async with serving(app, http=protocol) as base_url:
        port = int(base_url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # a chunked body that a Content-Length reader would end after 4 bytes,
        # then a second request pipelined behind it
        writer.write(
            b"POST /api/client/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
            b"2\r\n{}\r\n0\r\n\r\n"
            b"GET /api/ping HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        )
        await writer.drain()
        answer = b""
        with contextlib.suppress(ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(4096), timeout=5.0):
                answer += chunk
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in head.lower()
    assert json.loads(body) == {
        "error": "invalid_header",
        "description": "header.Transfer-Encoding: not allowed beside Content-Length",
    }
    # the pipelined request was never answered: the server closed instead
    assert answer.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize(
    "path",
    ["/api/client/reservations", "/api/reservations", "/api/client/{c}/reservations",
     "/api/coworkings"],
    ids=["mine", "staff", "of_client", "coworkings"],
)  # fmt: skip
async def test_list_with_offset_past_bigint_refused(api, db, settings, path) -> None:
    client = await create_client(db, settings)
    headers = (
        client.headers if path == "/api/client/reservations"
        else (await create_admin(db, settings)).headers
    )  # fmt: skip
    url = path.format(c=client.id) + f"?offset={10**28}&limit=5"
    response = await api.get(url, headers=headers)
    assert response.status_code == 400
    assert response.json()["description"].startswith("query.offset:")


async def test_post_oversized_body_to_real_server_sees_413(resources, db) -> None:
    # over a socket: the server reads and drops the rest, so the answer arrives
    app = create_app(resources.settings, resources=resources)
    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        response = await http.post(
            REGISTER, content=b"[" + b" " * (11 * MIB) + b"]",
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large", "description": f"body: larger than {MIB} bytes"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("path", "most"),
    [("/api/reservations", 200), ("/api/client/reservations", 200),
     ("/api/coworkings", 100)],
    ids=["reservations", "own-reservations", "coworkings"],
)  # fmt: skip
async def test_openapi_tells_the_page_size_a_larger_limit_gives(
    api, path: str, most: int
) -> None:
    spec = (await api.get("/openapi.json")).json()
    limit = next(
        parameter
        for parameter in spec["paths"][path]["get"]["parameters"]
        if parameter["name"] == "limit"
    )
    assert limit["description"] == (
        f"rows per page, at most {most}; a larger value gives {most}"
    )


async def test_openapi_shows_the_optional_cancel_reason(api) -> None:
    spec = (await api.get("/openapi.json")).json()
    body = spec["paths"]["/api/reservations/{reservation_id}"]["delete"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    assert (body["required"], schema["properties"]["reason"]["maxLength"]) == (
        False,
        200,
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/api/reservations"),
        ("post", "/api/coworking/seats"),
        ("patch", "/api/coworking"),
        ("get", "/api/coworking/seats/{seat_id}"),
    ],
)
async def test_openapi_names_the_admin_scheme_where_admins_are_taken(
    api, method: str, path: str
) -> None:
    spec = (await api.get("/openapi.json")).json()
    security = spec["paths"][path][method]["security"]
    assert {name for requirement in security for name in requirement} >= {"admin"}


async def test_two_authorization_headers_are_refused_not_the_first_believed(
    api, db, settings
) -> None:
    mine = await create_client(db, settings)
    other = await create_client(db, settings)
    response = await api.get(
        "/api/client",
        headers=[
            ("Authorization", f"Bearer {mine.token}"),
            ("Authorization", f"Bearer {other.token}"),
        ],
    )
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": "invalid_header",
            "description": "header.Authorization: sent more than once",
        },
    )


async def test_a_body_typed_twice_is_refused_before_any_check_is_fooled(
    api, db, settings
) -> None:
    client = await create_client(db, settings)
    response = await api.patch(
        "/api/client",
        content=b'{"name": "A", "name": "B"}',
        headers=[
            *client.headers.items(),
            ("Content-Type", "application/json"),
            ("Content-Type", "multipart/form-data; boundary=x"),
        ],
    )
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": "invalid_header",
            "description": "header.Content-Type: sent more than once",
        },
    )
    assert (
        await db.fetchval("SELECT name FROM client.clients WHERE id = $1", client.id)
        == "Ada"
    )


async def test_declared_large_body_that_stops_coming_is_answered_at_once() -> None:
    """Content-Length says 2 MB, two bytes come, then nothing: the 413 goes out
    once the client is quiet, not after the whole body deadline."""
    sent: list[dict] = []
    messages = [{"type": "http.request", "body": b"{}", "more_body": True}]

    async def receive():
        if messages:
            return messages.pop()
        await asyncio.sleep(3600)

    async def send(message):
        sent.append(message)

    async def app(scope, receive, send):
        raise AssertionError("the application never sees this body")

    guard = BodyLimitMiddleware(
        app, max_json_bytes=1024, max_upload_bytes=2048, read_timeout=30
    )
    scope = {
        "type": "http", "method": "POST", "path": "/x",
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", b"2000000")],
    }  # fmt: skip
    began = asyncio.get_running_loop().time()
    await guard(scope, receive, send)
    waited = asyncio.get_running_loop().time() - began
    assert sent[0]["status"] == 413
    assert DRAIN_IDLE_SECONDS <= waited < DRAIN_IDLE_SECONDS + 1


@pytest.mark.parametrize(
    ("headers", "description"),
    [
        ({"Content-Type": "text/plain"},
         "header.Content-Type: text/plain is not accepted; send application/json"),
        ({"Content-Type": "application/json", "Content-Encoding": "gzip"},
         "header.Content-Encoding: bodies are accepted uncompressed only"),
        # FastAPI would not read it as JSON, and said only that it was no object
        ({}, "header.Content-Type: missing; send application/json"),
        # read as UTF-8 all the same, its ö would have become other text
        ({"Content-Type": 'application/json; charset="ISO-8859-1"'},
         "header.Content-Type: charset iso-8859-1 is not accepted;"
         " JSON is read as UTF-8"),
        ({"Content-Type": "application/json;charset=utf-8;charset=latin-1"},
         "header.Content-Type: charset given more than once is not accepted;"
         " JSON is read as UTF-8"),
        # a semicolon inside quotes is the value's, not the next parameter's
        ({"Content-Type": 'application/json; charset="utf-8;x"'},
         "header.Content-Type: charset utf-8;x is not accepted;"
         " JSON is read as UTF-8"),
        # RFC 2231's form says the same as the plain one
        ({"Content-Type": "application/json; charset*=iso-8859-1'en'latin-1"},
         "header.Content-Type: charset latin-1 is not accepted;"
         " JSON is read as UTF-8"),
    ],
    ids=["text-plain", "gzip", "none", "latin-1", "two-charsets", "quoted",
         "extended"],
)  # fmt: skip
async def test_body_of_another_kind_is_a_415_naming_the_header(
    api, db, headers: dict[str, str], description: str
) -> None:
    response = await api.post(
        REGISTER, content=json.dumps(_form()).encode(), headers=headers
    )
    assert (response.status_code, response.json()) == (
        415,
        {"error": "unsupported_media_type", "description": description},
    )
    assert await db.fetchval("SELECT count(*) FROM client.clients") == 0


@pytest.mark.parametrize(
    ("method", "path", "wanted"),
    [
        ("POST", "/api/coworkings/{coworking}/images",
         "the image as multipart/form-data, field file"),
        ("POST", "/api/coworkings/{coworking}/seats/{seat}/images",
         "the image as multipart/form-data, field file"),
        ("POST", "/api/coworking/images",
         "the image as multipart/form-data, field file"),
        ("PUT", "/api/coworkings/{coworking}/images/order", "application/json"),
        ("POST", "/api/coworkings/{coworking}/seats", "application/json"),
    ],
    ids=["coworking-upload", "seat-upload", "default-upload", "reorder", "seats"],
)  # fmt: skip
async def test_raw_image_body_is_a_415_naming_what_the_route_takes(
    api, db, settings, method: str, path: str, wanted: str
) -> None:
    coworking = await create_coworking(db)
    seat = await create_seat(db, coworking)
    owner = await create_admin(db, settings)

    response = await api.request(
        method,
        path.format(coworking=coworking, seat=seat),
        content=b"\x89PNG\r\n\x1a\n" + bytes(64),
        headers={**owner.headers, "Content-Type": "image/png"},
    )

    assert (response.status_code, response.json()) == (
        415,
        {
            "error": "unsupported_media_type",
            "description": "header.Content-Type: image/png is not accepted;"
            f" send {wanted}",
        },
    )
    assert await db.fetchval("SELECT count(*) FROM images.images") == 0


async def test_a_body_labelled_multipart_outside_an_upload_is_a_415() -> None:
    """The route says what it takes: a sign-in labelled multipart was read to
    the size of an image, ten times a JSON body's, before anything refused it."""
    reached: list[str] = []

    async def app(scope, receive, send):
        reached.append(scope["path"])
        body = (await receive())["body"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(len(body)).encode()})

    guard = BodyLimitMiddleware(
        app, max_json_bytes=1024, max_upload_bytes=64 * 1024, read_timeout=30
    )

    async def post(path: str, content_type: bytes, size: int) -> dict:
        sent: list[dict] = []
        body = [{"type": "http.request", "body": b"x" * size, "more_body": False}]

        async def receive():
            return body.pop() if body else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http", "method": "POST", "path": path,
            "headers": [(b"content-type", content_type),
                        (b"content-length", str(size).encode())],
        }  # fmt: skip
        await guard(scope, receive, send)
        return {"status": sent[0]["status"], "body": json.loads(sent[1]["body"])}

    multipart = b"multipart/form-data; boundary=x"
    assert await post("/api/client/login", multipart, 4096) == {
        "status": 415,
        "body": {
            "error": "unsupported_media_type",
            "description": "header.Content-Type: multipart/form-data is not accepted;"
            " send application/json",
        },
    }
    assert reached == []
    # an upload takes its image up to its own bound
    assert await post("/api/coworking/images", multipart, 4096) == {
        "status": 200,
        "body": 4096,
    }
    assert reached == ["/api/coworking/images"]


async def test_empty_body_with_any_content_type_reaches_the_route(api) -> None:
    # browsers label even an empty POST; it is not a body of another kind
    response = await api.post(
        REGISTER, content=b"", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_body"


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/api/coworking/availability?from={early}&to={fine}", "query.from"),
        ("/api/coworking/availability?from={fine}&to={late}", "query.to"),
        ("/api/reservations?starts_from={late}", "query.starts_from"),
        ("/api/reservations?starts_before={early}", "query.starts_before"),
        ("/api/coworking/closures?to={late}", "query.to"),
    ],
)
async def test_an_offset_that_carries_a_query_time_past_year_9999_is_a_400(
    api, db, settings, path: str, field: str
) -> None:
    await create_coworking(db)
    owner = await create_admin(db, settings)
    url = path.format(
        early="0001-01-01T00:30:00%2B01:00",
        late="9999-12-31T23:30:00-01:00",
        fine="2030-01-01T00:00:00Z",
    )
    response = await api.get(url, headers=owner.headers)
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": "invalid_query",
            "description": f"{field}: lies outside the years 1 to 9999 once in UTC",
        },
    )


async def test_a_query_parameter_named_twice_is_refused_unless_it_takes_a_list(
    api, db, settings
) -> None:
    await create_coworking(db)
    owner = await create_admin(db, settings)
    twice = await api.get(
        "/api/reservations?status=cancelled&limit=2&status=confirmed",
        headers=owner.headers,
    )
    listed = await api.get(
        "/api/coworking/availability?from=2030-01-07T08:00:00Z"
        "&to=2030-01-07T10:00:00Z&features=Monitor&features=Laptop"
    )
    assert (twice.status_code, twice.json()) == (
        400,
        {"error": "invalid_query", "description": "query.status: sent more than once"},
    )
    assert listed.status_code == 200, listed.text


@pytest.mark.parametrize(
    "encoding",
    ["utf-16", "utf-16-le", "utf-32", "latin-1"],
)
async def test_a_json_body_not_in_utf8_is_refused(api, db, encoding: str) -> None:
    form = {**_form(), "name": "Zoë"}
    response = await api.post(
        REGISTER,
        content=json.dumps(form, ensure_ascii=False).encode(encoding),
        headers={"Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "body: not valid JSON (not UTF-8 text)",
        },
    )
    assert await db.fetchval("SELECT count(*) FROM client.clients") == 0


async def test_a_query_whose_escapes_are_not_utf8_is_refused_naming_it(api, db) -> None:
    await create_coworking(db, name="Lounge Ünïon")
    garbled = await api.get("/api/coworkings?name=%ff")
    raw_name = await api.get("/api/coworkings?%c3=x")
    fine = await api.get("/api/coworkings?name=%C3%BCn")
    assert (garbled.status_code, garbled.json()) == (
        400,
        {
            "error": "invalid_query",
            "description": "query.name: its %-escapes are not UTF-8",
        },
    )
    assert (raw_name.status_code, raw_name.json()["description"]) == (
        400,
        "query: its %-escapes are not UTF-8",
    )
    assert (fine.status_code, [c["name"] for c in fine.json()]) == (
        200,
        ["Lounge Ünïon"],
    )


async def test_a_query_time_whose_plus_became_a_space_says_to_send_2b(
    api, db, settings
) -> None:
    owner = await create_admin(db, settings)
    response = await api.get(
        "/api/reservations?starts_from=2026-12-07T09:00:00+01:00",
        headers=owner.headers,
    )
    encoded = await api.get(
        "/api/reservations?starts_from=2026-12-07T09:00:00%2B01:00",
        headers=owner.headers,
    )
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": "invalid_query",
            "description": "query.starts_from: the offset's '+' arrived as a"
            " space, as a query string reads it; send it as %2B",
        },
    )
    assert (encoded.status_code, encoded.json()) == (200, [])


@pytest.mark.parametrize(
    "path",
    [
        "/api/reservations?limit={n}",
        "/api/reservations?offset={n}",
        "/api/coworkings?limit={n}",
        "/api/coworking/seats?limit={n}",
    ],
)
@pytest.mark.parametrize("number", ["1.0", "1e1", "0x10", " 1", "1_000"])
async def test_an_integer_query_parameter_takes_digits_only(
    api, db, settings, path: str, number: str
) -> None:
    await create_coworking(db)
    owner = await create_admin(db, settings)
    name = path.rsplit("?", 1)[1].split("=")[0]
    response = await api.get(
        path.format(n=number.replace(" ", "%20")), headers=owner.headers
    )
    digits = await api.get(path.format(n="1"), headers=owner.headers)
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": "invalid_query",
            "description": f"query.{name}: must be a whole number written in digits",
        },
    )
    assert digits.status_code == 200, digits.text


async def test_a_query_parameter_the_operation_does_not_read_is_refused(
    api, db, settings
) -> None:
    await create_coworking(db)
    owner = await create_admin(db, settings)
    misspelt = await api.get(
        "/api/reservations?starts_frm=2026-12-07T00:00:00Z", headers=owner.headers
    )
    unknown = await api.get("/api/coworkings?colour=red")
    hostile = await api.get("/api/coworkings?%3Cscript%3E=1")
    # an operation with no parameters has nothing to misspell
    busted = await api.get("/api/health?v=2&_=1765000000")
    known = await api.get(
        "/api/reservations?starts_from=2026-12-07T00:00:00Z", headers=owner.headers
    )

    assert (misspelt.status_code, misspelt.json()) == (
        400,
        {
            "error": "invalid_query",
            "description": "query.starts_frm: not a parameter of this operation;"
            " did you mean starts_from?",
        },
    )
    assert (unknown.status_code, unknown.json()["description"]) == (
        400,
        "query.colour: not a parameter of this operation",
    )
    assert (hostile.status_code, hostile.json()["description"]) == (
        400,
        "query: a parameter this operation does not take",
    )
    assert (known.status_code, known.json()) == (200, [])
    assert busted.status_code == 200, busted.text
    # nobody signed in is told that first, where the operation needs a sign-in;
    # a public read still names the unknown parameter
    anonymous = await api.get("/api/client/reservations?client_id=x")
    assert (anonymous.status_code, anonymous.json()["error"]) == (401, "unauthorized")


@pytest.mark.parametrize("value", ["5", 5.0, True])
async def test_a_booking_rule_takes_a_json_integer_only(
    api, db, settings, value: object
) -> None:
    coworking_id = await create_coworking(db)
    owner = await create_admin(db, settings)
    before = await db.fetchval(
        "SELECT hold_minutes FROM coworking.coworkings WHERE id = $1", coworking_id
    )
    response = await api.patch(
        f"/api/coworkings/{coworking_id}",
        json={"hold_minutes": value},
        headers=owner.headers,
    )
    assert (response.status_code, response.json()) == (
        400,
        {
            "error": "invalid_body",
            "description": "hold_minutes: Input should be a valid integer",
        },
    )
    after = await db.fetchval(
        "SELECT hold_minutes FROM coworking.coworkings WHERE id = $1", coworking_id
    )
    assert after == before


@pytest.mark.parametrize(
    "content_type",
    ["Application/JSON; Charset=UTF-8",
     # a charset named inside another parameter's quotes is no charset
     'application/json; x="a;charset=latin-1"'],
)  # fmt: skip
async def test_json_named_in_any_case_with_a_utf8_charset_is_read(
    api, db, content_type: str
) -> None:
    form = {**_form(), "name": "Zoë"}
    response = await api.post(
        REGISTER,
        content=json.dumps(form, ensure_ascii=False).encode(),
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 200, response.text
    assert await db.fetchval("SELECT name FROM client.clients") == "Zoë"
