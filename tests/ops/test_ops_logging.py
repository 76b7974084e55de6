import io
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi import FastAPI

from api.logging_setup import (
    MASK,
    bind_log_context,
    configure_logging,
    current_log_context,
)
from api.main import create_app
from tests.conftest import make_settings

Capture = Callable[..., io.StringIO]


@pytest.fixture
def capture() -> Iterator[Capture]:
    """configure_logging into a buffer; the process's logging is put back after."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    named = {
        name: (list(logger.handlers), logger.propagate, logger.disabled)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        for logger in [logging.getLogger(name)]
    }
    made: list[logging.Handler] = []

    def _configure(*, json_lines: bool = True, service: str = "api") -> io.StringIO:
        stream = io.StringIO()
        made.append(
            configure_logging(
                make_settings(log_json=json_lines), service, stream=stream
            )
        )
        return stream

    yield _configure
    for handler in made:
        root.removeHandler(handler)
        handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, (handlers, propagate, disabled) in named.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.propagate, logger.disabled = propagate, disabled


def events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_lines(stream: io.StringIO) -> list[dict]:
    return [e for e in events(stream) if e["logger"] == "tlounge.access"]


@pytest.fixture
def app() -> FastAPI:
    app = create_app(make_settings())

    @app.get("/things/{thing_id}")
    async def read_thing(thing_id: int) -> dict[str, int]:
        logging.getLogger("tests.things").info("reading %s", thing_id)
        return {"id": thing_id}

    return app


async def get(app: FastAPI, path: str, headers: dict | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.get(path, headers=headers)


async def test_echo_request_id_header_when_safe(app: FastAPI) -> None:
    response = await get(app, "/health", {"X-Request-ID": "edge-42_a.b"})
    assert response.headers["x-request-id"] == "edge-42_a.b"


@pytest.mark.parametrize(
    "incoming",
    ["x" * 65, "has space", "semi;colon", 'quote"d', "ünïcode"],
    ids=["too-long", "space", "semicolon", "quote", "non-ascii"],
)
async def test_replace_request_id_when_unsafe(app: FastAPI, incoming: str) -> None:
    response = await get(app, "/health", {"X-Request-ID": incoming.encode()})
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_make_request_id_when_absent(app: FastAPI) -> None:
    first, second = await get(app, "/health"), await get(app, "/health")
    assert re.fullmatch(r"[0-9a-f]{32}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_log_access_line_with_route_template_and_request_id(
    app: FastAPI, capture: Capture
) -> None:
    stream = capture(json_lines=True)
    response = await get(app, "/things/7", {"X-Request-ID": "req-7"})
    assert response.status_code == 200
    lines = events(stream)
    inner = next(e for e in lines if e["logger"] == "tests.things")
    assert inner["message"] == "reading 7"
    assert inner["request_id"] == "req-7"
    assert inner["service"] == "api"
    access = [e for e in lines if e["logger"] == "tlounge.access"]
    assert len(access) == 1
    assert access[0]["method"] == "GET"
    assert access[0]["route"] == "/things/{thing_id}"
    assert access[0]["path"] == "/things/7"
    assert access[0]["status"] == 200
    assert access[0]["request_id"] == "req-7"
    assert access[0]["duration_ms"] >= 0
    assert access[0]["level"] == "info"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", access[0]["ts"]
    )
    assert current_log_context() == {}


async def test_log_probe_requests_below_info(app: FastAPI, capture: Capture) -> None:
    stream = capture(json_lines=True)
    assert (await get(app, "/health")).status_code == 200
    assert (await get(app, "/missing")).status_code == 404
    access = access_lines(stream)
    assert [(e["route"], e["status"]) for e in access] == [("<unmatched>", 404)]


def test_mask_secrets_in_dict_args_and_extra_fields(capture: Capture) -> None:
    stream = capture(json_lines=True)
    log = logging.getLogger("tests.secrets")
    log.info("login %(user)s with %(password)s", {"user": "ana", "password": "hunter2"})
    log.warning(
        "smtp said no",
        extra={
            "authorization": "Bearer abc.def",
            "smtp": {
                "host": "mail",
                "api_key": "k-1",
                "nested": [{"refresh_token": "r"}],
            },
            "mail_body": "Dear Ana, your booking link is ...",
            "kind": "reminder",
        },
    )
    text = stream.getvalue()
    for secret in ("hunter2", "abc.def", "k-1", '"r"', "booking link"):
        assert secret not in text
    first, second = events(stream)
    assert first["message"] == f"login ana with {MASK}"
    assert second["authorization"] == MASK
    assert second["smtp"] == {
        "host": "mail",
        "api_key": MASK,
        "nested": [{"refresh_token": MASK}],
    }
    assert second["mail_body"] == "<34 chars>"
    assert second["kind"] == "reminder"


def test_bind_log_context_adds_ids_inside_only(capture: Capture) -> None:
    stream = capture(json_lines=True, service="reservation-worker")
    log = logging.getLogger("tests.bound")
    reservation = uuid.uuid4()
    with bind_log_context(
        reservation_id=reservation, workflow_id=f"reservation-{reservation}"
    ):
        with bind_log_context(attempt=2, skipped=None):
            log.info("claiming")
        log.info("claimed")
    log.info("after")
    claiming, claimed, after = events(stream)
    assert claiming["reservation_id"] == str(reservation)
    assert claiming["workflow_id"] == f"reservation-{reservation}"
    assert claiming["attempt"] == "2"
    assert "skipped" not in claiming
    assert "attempt" not in claimed and claimed["reservation_id"] == str(reservation)
    assert "reservation_id" not in after and after["service"] == "reservation-worker"


def test_take_workflow_and_reservation_ids_from_temporal_extra(
    capture: Capture,
) -> None:
    stream = capture(json_lines=True, service="mail-worker")
    reservation = uuid.uuid4()
    info = {"workflow_id": f"reservation-{reservation}", "activity_type": "send_mail"}
    logging.getLogger("temporalio.activity").info(
        "sending", extra={"temporal_activity": info}
    )
    (event,) = events(stream)
    assert event["workflow_id"] == f"reservation-{reservation}"
    assert event["reservation_id"] == str(reservation)
    assert event["temporal_activity"]["activity_type"] == "send_mail"


def test_format_dev_lines_readable_with_fields(capture: Capture) -> None:
    stream = capture(json_lines=False)
    with bind_log_context(reservation_id="r-1"):
        logging.getLogger("tests.dev").warning("seat %s taken", "A4")
    try:
        raise ValueError("bad")
    except ValueError:
        logging.getLogger("tests.dev").exception("failed")
    lines = stream.getvalue().splitlines()
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} WARNING tests\.dev: "
        r"seat A4 taken \[reservation_id=r-1\]",
        lines[0],
    )
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} ERROR   tests\.dev: failed", lines[1])
    assert lines[2] == "  Traceback (most recent call last):"
    assert lines[-1] == "  ValueError: bad"


async def test_dev_lines_keep_a_hostile_path_on_its_own_line(capture: Capture) -> None:
    stream = capture(json_lines=False)
    app = create_app(make_settings())
    forged = "/api/x%0D%0A09:99:99.999%20CRITICAL%20forged%1B[2J"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        response = await http.get(forged)
    assert response.status_code == 404
    (line,) = [
        line for line in stream.getvalue().splitlines() if "tlounge.access" in line
    ]
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3} INFO    tlounge\.access: GET ", line)
    # quoted, since the spaces in it could pass for the end of the field
    assert "path='/api/x\\r\\n09:99:99.999 CRITICAL forged\\x1b[2J']" in line
    more = [
        (
            "/api/y%20status=500%20route=/api/admin",
            "path='/api/y status=500 route=/api/admin'",
        ),
        ("/api/z%E2%80%AEgnp.exe", "path=/api/z\\u202egnp.exe]"),
    ]
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        for sent, _ in more:
            assert (await http.get(sent)).status_code == 404
    lines = [
        line for line in stream.getvalue().splitlines() if "tlounge.access" in line
    ]
    for (_, logged), line in zip(more, lines[1:], strict=True):
        assert logged in line
    try:
        raise ValueError("bad\r\n09:99:99.999 CRITICAL forged")
    except ValueError:
        logging.getLogger("tests.dev").exception("failed")
    assert not [
        line for line in stream.getvalue().splitlines() if line.startswith("09:99")
    ]


def test_configure_logging_twice_keeps_one_handler(capture: Capture) -> None:
    root = logging.getLogger()
    bare = logging.StreamHandler(io.StringIO())  # what logging.basicConfig adds
    root.addHandler(bare)
    first = capture(json_lines=True)
    second = capture(json_lines=True)
    logging.getLogger("tests.once").info("hello")
    assert first.getvalue() == ""
    assert [e["message"] for e in events(second)] == ["hello"]
    assert bare not in root.handlers
    assert len([h for h in root.handlers if getattr(h, "_tlounge_handler", False)]) == 1
    assert logging.getLogger("uvicorn.access").disabled
    assert logging.getLogger("uvicorn.error").propagate


def test_cli_log_lines_carry_the_time_of_day() -> None:
    import subprocess
    import sys

    # a fresh interpreter: basicConfig does nothing where handlers already exist
    script = (
        "import logging; from api.cli import configure_cli_logging;"
        " configure_cli_logging();"
        " logging.getLogger('api.devstack').warning('mail-worker exited with 3')"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d\.\d{3} WARNING api\.devstack: mail-worker exited with 3\n",
        done.stderr,
    ), done.stderr


async def test_an_activitys_json_line_keeps_the_sdks_info_out_of_its_text(
    capture: Capture,
) -> None:
    from temporalio import activity
    from temporalio.testing import ActivityEnvironment

    @activity.defn
    async def send_mail() -> None:
        activity.logger.warning("mail deferred")

    stream = capture(json_lines=True, service="mail-worker")
    await ActivityEnvironment().run(send_mail)
    dev = capture(json_lines=False, service="mail-worker")
    await ActivityEnvironment().run(send_mail)

    (event,) = [e for e in events(stream) if e["logger"] == "temporalio.activity"]
    assert event["message"] == "mail deferred"
    assert event["temporal_activity"]["activity_type"] == "unknown"
    # a readable line still names the activity in its text
    assert "mail deferred ({'activity_id'" in dev.getvalue()


async def test_the_openapi_documents_access_line_names_its_route(
    capture: Capture,
) -> None:
    stream = capture(json_lines=True)
    response = await get(create_app(make_settings()), "/openapi.json")
    assert response.status_code == 200
    [access] = access_lines(stream)
    assert (access["route"], access["path"]) == ("/openapi.json", "/openapi.json")


async def test_a_head_request_is_logged_under_the_route_that_answered_it(
    capture: Capture,
) -> None:
    stream = capture(json_lines=True)
    transport = httpx.ASGITransport(app=create_app(make_settings()))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        for path in ("/openapi.json", "/docs"):
            assert (await http.head(path)).status_code == 200
    access = access_lines(stream)
    assert [(e["method"], e["route"]) for e in access] == [
        ("HEAD", "/openapi.json"), ("HEAD", "/docs"),
    ]  # fmt: skip


async def test_a_request_refused_before_routing_is_logged_under_its_route(
    capture: Capture,
) -> None:
    stream = capture(json_lines=True)
    transport = httpx.ASGITransport(app=create_app(make_settings()))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        twice = await http.get("/api/coworkings?name=a&name=b")
        icon = await http.get("/docs/static/favicon.png")
        made_up = await http.get("/wp-login.php")
    assert [twice.status_code, icon.status_code, made_up.status_code] == [
        400, 200, 404,
    ]  # fmt: skip
    access = access_lines(stream)
    assert [e["route"] for e in access] == [
        "/api/coworkings", "/docs/static/{path}", "<unmatched>",
    ]  # fmt: skip
