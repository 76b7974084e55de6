"""The app's own OpenAPI, telling the truth about error answers.

FastAPI documents a 422 with its own body for every operation, but every
error here is a 400, 401, 404... with the contract's ApiError body (see
api/errors.py). Generated clients and fuzzers read this document, so it
names the statuses we really answer, and the body they really carry.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

API_ERROR = {
    "type": "object",
    "required": ["error", "description"],
    "properties": {"error": {"type": "string"}, "description": {"type": "string"}},
}
_REF = {"$ref": "#/components/schemas/ApiError"}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": _REF}},
    }


def _path_parameters_required(operation: dict[str, Any]) -> None:
    # a route serving `/x` and `/x/{id}` types id as optional; in a path it never is
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        if parameter.get("in") == "path" and "anyOf" in schema:
            options = [o for o in schema["anyOf"] if o.get("type") != "null"]
            if len(options) == 1:
                parameter["schema"] = {**options[0], "title": schema.get("title")}


_COWORKING_PATHS = ("/api/coworking", "/api/coworkings/{coworking_id}")


def _document_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    responses.setdefault(
        "400", _error("Invalid input; the description names the field")
    )
    if operation.get("security"):
        responses.setdefault("401", _error("Missing or invalid credentials"))
        responses.setdefault("403", _error("Not allowed for this account"))
    # an id in the path, the default coworking the singular paths stand for,
    # or the seat a booking names
    names_a_row = (
        "{" in path
        or path == "/api/coworking"
        or path.startswith("/api/coworking/")
        or (path, method) == ("/api/reservations", "post")
    )
    if names_a_row:
        responses.setdefault(
            "404", _error("Nothing of that id that the caller may see")
        )
    if path.startswith("/api/reservations") and method != "get":
        responses.setdefault(
            "409",
            _error("The reservation's state refuses it: a taken slot (named),"
                   " a status that does not allow it, or a change made since"),
        )  # fmt: skip
    # what bookings stand in the way of: a seat's delete, a closure, new hours
    in_the_way = (
        (method == "delete" and path.endswith("/seats/{seat_id}"))
        or (method in ("post", "patch") and "/closures" in path)
        or (method == "patch" and path in _COWORKING_PATHS)
    )
    if in_the_way:
        responses.setdefault(
            "409", _error("Bookings stand in the way; the description names them")
        )
    if method == "post" and path.endswith("/images"):
        responses.setdefault("413", _error("The file is too large, in bytes or pixels"))
        responses.setdefault("415", _error("Not a PNG, JPEG or WebP picture"))
    # every other refusal (413, 415, 429, 503...) has the same body
    responses.setdefault("default", _error("Refused; see error and description"))


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description,
            routes=app.routes,
        )  # fmt: skip
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["ApiError"] = API_ERROR
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                _path_parameters_required(operation)
                _document_errors(path, method, operation)
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]


# Swagger UI and ReDoc as a package ships them: FastAPI's own pages load them
# from a CDN, and stay blank on a machine that is offline or walled in.
_DOCS_FILES = files("fastapi_offline") / "static"
_DOCS_STATIC = "/docs/static"


# these name source maps the package does not ship, which a browser's
# developer tools then ask for and report missing
_MAPPED = {"swagger-ui.css": "text/css", "redoc.standalone.js": "text/javascript"}
# (ReDoc also carries one inside the source of its web worker, as a string)
_SOURCE_MAP = re.compile(rb"(?://|/\*)# sourceMappingURL=[\w./-]+\.map(?:\s*\*/)?")


@lru_cache(maxsize=len(_MAPPED))
def _without_source_map(name: str) -> tuple[bytes, str]:
    body = _SOURCE_MAP.sub(b"", (_DOCS_FILES / name).read_bytes())
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _matches(if_none_match: str, etag: str) -> bool:
    # RFC 9110 13.1.2: a list, compared weakly, or `*`
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return etag in tags or "*" in tags


def _unmapped(name: str, media_type: str) -> Any:
    async def serve(request: Request) -> Response:
        body, etag = _without_source_map(name)
        headers = {"ETag": etag, "Cache-Control": "public, max-age=86400"}
        if _matches(request.headers.get("if-none-match", ""), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media_type, headers=headers)

    return serve


def install_docs(app: FastAPI) -> None:
    for name, media_type in _MAPPED.items():
        app.add_api_route(
            f"{_DOCS_STATIC}/{name}", _unmapped(name, media_type), methods=["GET"],
            include_in_schema=False,
        )  # fmt: skip
    app.mount(_DOCS_STATIC, StaticFiles(directory=str(_DOCS_FILES)), name="docs")
    favicon = f"{_DOCS_STATIC}/favicon.png"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json", title=f"{app.title} API",
            swagger_js_url=f"{_DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{_DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=favicon,
        )  # fmt: skip

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json", title=f"{app.title} API",
            redoc_js_url=f"{_DOCS_STATIC}/redoc.standalone.js",
            redoc_favicon_url=favicon, with_google_fonts=False,
        )  # fmt: skip


_UUID = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def _documented(app: FastAPI) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Each documented path template with its methods, as the caches key them."""
    return tuple(
        (template, tuple(m.upper() for m in operations))
        for template, operations in app.openapi().get("paths", {}).items()
    )


@lru_cache(maxsize=8)
def _templates(paths: tuple[tuple[str, tuple[str, ...]], ...]) -> list[tuple]:
    out = []
    for template, methods in paths:
        parts = re.split(r"\{[^}]+\}", template)
        strict = "^" + _UUID.join(map(re.escape, parts)) + "$"
        loose = "^" + "[^/]+".join(map(re.escape, parts)) + "$"
        out.append((re.compile(strict), re.compile(loose), methods))
    return out


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """What the document promises at `path`, for the Allow header of a 405.

    Ids are UUIDs, so `/api/admin/login` is not `/api/admin/{admin_id}`; a path
    whose id is malformed falls back to any segment.
    """
    paths = _documented(app)
    templates = _templates(paths)
    for index in (0, 1):
        found = {m for *patterns, methods in templates
                 if patterns[index].match(path) for m in methods}  # fmt: skip
        if found:
            # every GET answers HEAD as well (HeadAsGet in api/main.py)
            return sorted(found | {"HEAD"} if "GET" in found else found)
    return []


def documented_template(app: FastAPI, path: str) -> str | None:
    """The operation's path template that `path` falls under, for a request
    refused before routing; ids as UUIDs first, as `allowed_methods` reads."""
    paths = _documented(app)
    for index in (0, 1):
        for (template, _), (*patterns, _methods) in zip(
            paths, _templates(paths), strict=True
        ):
            if patterns[index].match(path):
                return template
    return None


@lru_cache(maxsize=8)
def _id_templates(
    paths: tuple[tuple[str, tuple[str, ...]], ...],
) -> list[tuple[re.Pattern[str], list[str], tuple[str, ...]]]:
    out = []
    for template, methods in paths:
        names = re.findall(r"\{([^}]+)\}", template)
        if names:
            parts = re.split(r"\{[^}]+\}", template)
            loose = "^" + "([^/]+)".join(map(re.escape, parts)) + "$"
            out.append((re.compile(loose), names, methods))
    return out


def malformed_id(app: FastAPI, method: str, path: str) -> str | None:
    """The path parameter that keeps `path` from an operation it otherwise
    names, since every id here is a UUID; None when no operation is near."""
    paths = _documented(app)
    for pattern, names, methods in _id_templates(paths):
        found = pattern.match(path)
        if found is None or method not in methods:
            continue
        for name, value in zip(names, found.groups(), strict=True):
            if not re.fullmatch(_UUID, value):
                return name
    return None
