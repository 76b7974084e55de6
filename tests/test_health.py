import json

import asyncpg
import httpx
import valkey.asyncio as valkey
from temporalio.client import Client

from api.devstack import start_postgres, stop_postgres
from api.main import create_app
from api.objectstore import FilesystemStore
from api.resources import Resources
from api.settings import Settings


async def test_health_answers_ok(api: httpx.AsyncClient) -> None:
    response = await api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert (await api.get("/api/health")).text == "OK"
    assert (await api.get("/api/ping")).status_code == 200


async def test_head_answers_what_get_would_without_a_body(
    api: httpx.AsyncClient,
) -> None:
    for path in ("/health", "/api/health"):
        got, head = await api.get(path), await api.head(path)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["content-length"] == str(len(got.content))
        assert head.headers["content-type"] == got.headers["content-type"]
    # the route's own checks still run: no token, no answer
    refused = await api.head("/api/client/reservations")
    assert (refused.status_code, refused.content) == (401, b"")
    assert refused.headers["content-type"] == "application/json"
    # a route that takes no GET takes no HEAD either
    post_only = await api.head("/api/client/login")
    assert (post_only.status_code, post_only.headers["allow"]) == (405, "POST")


async def test_a_head_over_16_kib_is_refused_whatever_its_reads(
    api: httpx.AsyncClient,
) -> None:
    padding = {f"X-Pad-{n}": "p" * 1000 for n in range(17)}
    response = await api.get("/api/health", headers=padding)
    assert response.status_code == 431
    body = response.json()
    assert body["error"] == "headers_too_large"
    assert body["description"].startswith("header: the request line and headers take ")
    assert body["description"].endswith(" bytes, over the 16384 allowed")
    # a head of an ordinary size, a few KiB of cookies say, passes
    fine = await api.get("/api/health", headers={"Cookie": "c" * 8000})
    assert (fine.status_code, fine.text) == (200, "OK")


async def test_ready_all_dependencies_up(api: httpx.AsyncClient) -> None:
    response = await api.get("/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {
            "postgres": "ok",
            "valkey": "ok",
            "temporal": "ok",
            "object_store": "ok",
        },
    }


async def test_ready_reports_stopped_postgres(
    workdir, settings: Settings, kv: valkey.Valkey, temporal: Client
) -> None:
    server, dsn = start_postgres(workdir / "pg-doomed")
    pool = await asyncpg.create_pool(dsn, min_size=0, max_size=2)
    resources = Resources(
        settings, pool, kv, temporal, FilesystemStore(settings.objects_dir)
    )
    app = create_app(settings, resources=resources)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            assert (await http.get("/ready")).status_code == 200
            stop_postgres(server, mode="immediate")
            response = await http.get("/ready")
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        body = response.json()
        assert body["error"] == "not_ready"
        assert body["description"] == "unavailable: postgres"
        assert body["checks"]["postgres"] == "unavailable"
        assert body["checks"]["valkey"] == "ok"
    finally:
        await pool.close()


async def test_ready_reports_unreachable_valkey(resources: Resources) -> None:
    dead = valkey.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    broken = Resources(
        resources.settings, resources.pool, dead, resources.temporal, resources.store
    )
    app = create_app(resources.settings, resources=broken)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        response = await http.get("/ready")
    await dead.aclose()
    assert response.status_code == 503
    assert response.json()["description"] == "unavailable: valkey"


async def preflight(
    http: httpx.AsyncClient, origin: str, method: str = "GET", headers: str = ""
) -> httpx.Response:
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return await http.options("/api/client", headers=asked)


async def test_cors_preflight_dev_allows_localhost_any_port(
    api: httpx.AsyncClient,
) -> None:
    response = await preflight(api, "http://localhost:5173", headers="Authorization")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    assert "authorization" in response.headers["access-control-allow-headers"].lower()


async def test_cors_preflight_refuses_unlisted_method_and_header_in_json(
    api: httpx.AsyncClient,
) -> None:
    response = await preflight(
        api, "http://localhost:5173", "TRACE", headers="Authorization, X-Evil"
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_header",
        "description": (
            "header.Access-Control-Request-Method: not an allowed method;"
            " header.Access-Control-Request-Headers: names a header not allowed"
        ),
    }
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"


async def test_cors_preflight_production_refuses_unlisted_origin(
    resources: Resources,
) -> None:
    settings = resources.settings.model_copy(
        update={"env": "production", "cors_origins": ["https://app.example"]}
    )
    app = create_app(settings, resources=resources)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        refused = await preflight(http, "http://localhost:5173")
        allowed = await preflight(http, "https://app.example")
    assert refused.status_code == 400
    assert refused.json() == {
        "error": "invalid_header",
        "description": "header.Origin: not an allowed origin",
    }
    assert "access-control-allow-origin" not in refused.headers
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"


async def test_a_trailing_slash_is_not_redirected(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/health/", headers={"Host": "evil.example"})
    assert (response.status_code, response.json()) == (
        404,
        {"error": "not_found", "description": "path: no resource at this address"},
    )
    assert "location" not in response.headers


async def test_unknown_path_answers_contract_error_body(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/nothing-here")
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "description": "path: no resource at this address",
    }


async def test_cors_lets_a_browser_frontend_read_retry_after(
    api: httpx.AsyncClient,
) -> None:
    # a 404 passes the CORS layer like any answer; the header list is the same
    response = await api.get(
        "/api/no-such", headers={"Origin": "http://localhost:5173"}
    )
    exposed = response.headers["access-control-expose-headers"].lower().split(", ")
    assert sorted(exposed) == ["retry-after", "x-request-id"]


async def test_a_request_target_in_absolute_form_is_served_as_its_path(
    resources: Resources,
) -> None:
    import asyncio

    from tests.hardening.test_hardening_slow_head import _until_closed, serving

    async def ask(target: bytes, method: bytes = b"GET") -> tuple[bytes, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            method + b" " + target + b" HTTP/1.1\r\nHost: elsewhere.test\r\n"
            b"Connection: close\r\n\r\n"
        )
        head, _, body = (await _until_closed(reader)).partition(b"\r\n\r\n")
        writer.close()
        heads.append(head.lower())
        return head.split(b"\r\n", 1)[0], body

    heads: list[bytes] = []

    app = create_app(resources.settings, resources=resources)
    async with serving(10.0, app) as port:
        assert await ask(b"http://127.0.0.1/api/health") == (b"HTTP/1.1 200 OK", b"OK")
        assert await ask(b"HTTPS://127.0.0.1:443/health?") == (
            b"HTTP/1.1 200 OK",
            b'{"status":"ok"}',
        )
        # the authority alone is the root, which is no route of ours
        status, body = await ask(b"http://127.0.0.1")
        assert (status, json.loads(body)["error"]) == (
            b"HTTP/1.1 404 Not Found",
            "not_found",
        )
        # an OPTIONS of the authority alone asks of the server, as `*` does
        for target in (b"*", b"http://127.0.0.1", b"http://127.0.0.1?x=1"):
            assert await ask(target, b"OPTIONS") == (b"HTTP/1.1 204 No Content", b"")
            assert (
                b"\r\nallow: delete, get, head, options, patch, post, put" in heads[-1]
            )
        # a body it will not read ends the connection, rather than hold it
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"OPTIONS * HTTP/1.1\r\nHost: h\r\n"
                     b"Content-Length: 999999999\r\n\r\n")  # fmt: skip
        answered = await _until_closed(reader)
        writer.close()
        assert answered.startswith(b"HTTP/1.1 204 No Content\r\n")
        assert b"\r\nconnection: close\r\n" in answered.lower()
        status, _ = await ask(b"http://127.0.0.1/", b"OPTIONS")
        assert status != b"HTTP/1.1 204 No Content"
        status, body = await ask(b"*")
        assert (status, json.loads(body)["description"]) == (
            b"HTTP/1.1 400 Bad Request", "request: the target * is for OPTIONS alone",
        )  # fmt: skip
        # a scheme of another kind is not a URL of ours: the path as it came
        status, _ = await ask(b"/api/ftp://127.0.0.1/api/health")
        assert status == b"HTTP/1.1 404 Not Found"
        # what follows a fragment's mark is no path; the root is no route
        status, _ = await ask(b"http://127.0.0.1#/api/health")
        assert status == b"HTTP/1.1 404 Not Found"
        # no host, a broken one, another scheme, or no leading slash
        # or a user before the host, which passes one host off as another
        broken = (b"http:///api/health", b"ftp://127.0.0.1/api/health",
                  b"api/health", b"http://[::1/api/health",
                  b"http://h:99999/api/health", b"http://h:abc/api/health",
                  b"http://user@127.0.0.1/api/health",
                  b"http://127.0.0.1:1@evil.test/api/health")  # fmt: skip
        for target in broken:
            status, body = await ask(target)
            assert (status, json.loads(body)) == (
                b"HTTP/1.1 400 Bad Request",
                {"error": "bad_request", "description": "request: the target must"
                 " be a path from /, or an http(s) URL with a host (and no user)"},
            ), target  # fmt: skip


async def test_the_docs_pages_load_nothing_from_another_host(
    api: httpx.AsyncClient,
) -> None:
    import re

    for page in ("/docs", "/redoc"):
        html = await api.get(page)
        assert html.status_code == 200
        assert html.headers["content-type"].startswith("text/html")
        sources = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert sources and all(s.startswith("/docs/static/") for s in sources), sources
        assert "https://" not in html.text
        for source in sources:
            served = await api.get(source)
            assert served.status_code == 200, source
            assert len(served.content) > 1000, source
        # no file names a source map that is not there to fetch
        assert not re.search(r"sourceMappingURL=[\w./-]+\.map", served.text), source
    css = await api.get("/docs/static/swagger-ui.css")
    assert css.headers["content-type"].startswith("text/css")
    again = await api.get(
        "/docs/static/swagger-ui.css", headers={"If-None-Match": css.headers["etag"]}
    )
    assert (again.status_code, again.content) == (304, b"")
    # weakly compared, and among others in a list
    for listed in (f"W/{css.headers['etag']}", f'"other", {css.headers["etag"]}'):
        cached = await api.get(
            "/docs/static/swagger-ui.css", headers={"If-None-Match": listed}
        )
        assert cached.status_code == 304, listed
    missing = await api.get("/docs/static/nothing.js")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")


def test_options_star_names_every_method_some_route_takes(
    resources: Resources,
) -> None:
    from api.main import _SERVER_METHODS

    app = create_app(resources.settings, resources=resources)
    paths = app.openapi()["paths"].values()
    taken = {method.upper() for operations in paths for method in operations}
    # HEAD rides on GET, OPTIONS on the CORS layer
    assert _SERVER_METHODS.decode().split(", ") == sorted(taken | {"HEAD", "OPTIONS"})
