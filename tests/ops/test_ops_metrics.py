import asyncio

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY

from api.main import create_app
from api.metrics import HTTP_IN_PROGRESS, UNMATCHED
from tests.conftest import make_settings


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def app() -> FastAPI:
    app = create_app(make_settings())

    @app.get("/things/{thing_id}")
    async def read_thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    return app


async def call(app: FastAPI, method: str, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.request(method, path)


async def test_count_requests_by_route_template_not_raw_path(app: FastAPI) -> None:
    labels = {"method": "GET", "route": "/things/{thing_id}", "status": "200"}
    before = sample("tlounge_http_requests_total", **labels)
    for thing_id in (1, 2, 3):
        assert (await call(app, "GET", f"/things/{thing_id}")).status_code == 200
    assert sample("tlounge_http_requests_total", **labels) == before + 3
    assert (
        sample(
            "tlounge_http_requests_total", method="GET", route="/things/1", status="200"
        )
        == 0
    )


async def test_count_unmatched_paths_under_one_label(app: FastAPI) -> None:
    labels = {"method": "GET", "route": UNMATCHED, "status": "404"}
    before = sample("tlounge_http_requests_total", **labels)
    for path in ("/nope/a", "/nope/b", "/x/y/z"):
        assert (await call(app, "GET", path)).status_code == 404
    assert sample("tlounge_http_requests_total", **labels) == before + 3


async def test_count_unknown_method_as_other(app: FastAPI) -> None:
    labels = {"method": "OTHER", "route": "/things/{thing_id}", "status": "405"}
    before = sample("tlounge_http_requests_total", **labels)
    assert (await call(app, "BREW", "/things/1")).status_code == 405
    assert sample("tlounge_http_requests_total", **labels) == before + 1


async def test_count_unhandled_error_as_500(app: FastAPI) -> None:
    labels = {"method": "GET", "route": "/boom", "status": "500"}
    before = sample("tlounge_http_requests_total", **labels)
    response = await call(app, "GET", "/boom")
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert sample("tlounge_http_requests_total", **labels) == before + 1
    assert HTTP_IN_PROGRESS._value.get() == 0


async def test_observe_latency_histogram_per_route(app: FastAPI) -> None:
    labels = {"method": "GET", "route": "/health"}
    count = sample("tlounge_http_request_duration_seconds_count", **labels)
    total = sample("tlounge_http_request_duration_seconds_sum", **labels)
    assert (await call(app, "GET", "/health")).status_code == 200
    assert sample("tlounge_http_request_duration_seconds_count", **labels) == count + 1
    assert sample("tlounge_http_request_duration_seconds_sum", **labels) > total
    assert (
        sample("tlounge_http_request_duration_seconds_bucket", le="+Inf", **labels)
        == count + 1
    )


async def test_track_in_progress_requests_while_handler_runs(app: FastAPI) -> None:
    entered, release = asyncio.Event(), asyncio.Event()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        entered.set()
        await release.wait()
        return {"status": "done"}

    baseline = sample("tlounge_http_requests_in_progress")
    request = asyncio.create_task(call(app, "GET", "/slow"))
    await asyncio.wait_for(entered.wait(), 5)
    assert sample("tlounge_http_requests_in_progress") == baseline + 1
    release.set()
    assert (await request).json() == {"status": "done"}
    assert sample("tlounge_http_requests_in_progress") == baseline


async def test_serve_metrics_endpoint_in_text_format(app: FastAPI) -> None:
    import workers.metrics  # noqa: F401 - its metrics share the registry

    workers.metrics.RESERVATIONS_CREATED.inc()

    await call(app, "GET", "/health")
    response = await call(app, "GET", "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert (
        'tlounge_http_requests_total{method="GET",route="/health",status="200"}'
        in response.text
    )
    assert "# TYPE tlounge_http_request_duration_seconds histogram" in response.text
    # the workers' counters, registered here too, are the workers' to serve:
    # the API would show them at 0
    assert "tlounge_reminder_lateness_seconds" not in response.text
    assert "tlounge_reservations_created" not in response.text
    # but for the cancels it writes itself (workflows ended in the Temporal UI)
    assert "tlounge_reservations_cancelled_total" in response.text
    assert "process_cpu_seconds_total" in response.text
    assert "/metrics" not in app.openapi()["paths"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", "Basic scrape-secret-1", "scrape-secret-1"],
    ids=["none", "wrong", "other-scheme", "no-scheme"],
)
async def test_metrics_behind_a_token_refuse_a_scrape_without_it(
    authorization: str | None,
) -> None:
    app = create_app(make_settings(metrics_token="scrape-secret-1"))
    headers = {"Authorization": authorization} if authorization else {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        refused = await http.get("/metrics", headers=headers)
        # RFC 9110: the scheme's case does not matter
        allowed = await http.get(
            "/metrics", headers={"Authorization": "bearer scrape-secret-1"}
        )

    assert (refused.status_code, refused.json()) == (
        401,
        {"error": "unauthorized", "description": "This scrape needs the metrics token"},
    )
    assert refused.headers["www-authenticate"] == "Bearer"
    assert allowed.status_code == 200
    assert "# TYPE tlounge_http_requests_total counter" in allowed.text
