import asyncio
import json

import pytest

from api.deadline import RequestDeadline


async def _call(app, method: str = "POST") -> list[dict]:
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/api/reservations"}
    await RequestDeadline(app, seconds=0.05)(scope, receive, send)
    return sent


async def _hangs(scope, receive, send) -> None:
    await asyncio.sleep(3600)


async def test_a_change_past_the_deadline_is_told_it_may_yet_take_effect() -> None:
    start, body = await _call(_hangs)

    assert start["status"] == 503
    assert (b"retry-after", b"5") in start["headers"]
    assert json.loads(body["body"]) == {
        "error": "unavailable",
        "description": "request: no answer within 0.05 s, and it may yet take"
        " effect; read before asking again (a booking with the same"
        " Idempotency-Key gets its answer)",
    }


async def test_a_read_past_the_deadline_is_told_to_retry() -> None:
    _, body = await _call(_hangs, method="GET")

    assert json.loads(body["body"])["description"] == (
        "request: no answer within 0.05 s; retry shortly"
    )


async def test_a_timeout_of_the_routes_own_is_not_taken_for_the_deadline() -> None:
    async def times_out(scope, receive, send) -> None:
        raise TimeoutError("the route's own")

    with pytest.raises(TimeoutError, match="the route's own"):
        await _call(times_out)


async def test_an_answer_begun_is_not_answered_twice() -> None:
    async def begins_then_hangs(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(3600)

    with pytest.raises(TimeoutError):
        await _call(begins_then_hangs)
