"""Checks answers against the original gateway's REST contract, for tests of any area.

    from tests.contract import assert_matches
    response = await api.get(f"/api/client/{client_id}", headers=admin.headers)
    assert_matches(response, "/api/client/{client_id}", "get")

The status must be one the contract lists for that operation, and the body must
match its schema, with `$ref` and `allOf` resolved (OpenAPI 3.1 schemas are JSON
Schema 2020-12). Answers we add beside the contract (a 409, a 429) are checked
with `assert_api_error`, the contract's error shape.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from jsonschema import Draft202012Validator

CONTRACT = (
    Path(__file__).resolve().parents[1]
    / ".."
    / "shared"
    / "reference"
    / "tlounge-gateway-0.1.0.openapi.yaml"
)
_METHODS = ("get", "put", "post", "delete", "patch")


@lru_cache(maxsize=1)
def contract() -> dict[str, Any]:
    if not CONTRACT.exists() and not os.environ.get("CI"):
        # the contract lives beside the repository, not in it; CI always has it
        pytest.skip(f"the REST contract is not at {CONTRACT.resolve()}")
    with CONTRACT.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def operations(*prefixes: str) -> set[tuple[str, str]]:
    """(method, path) of every contract operation whose path starts with a prefix."""
    return {
        (method, path)
        for path, item in contract()["paths"].items()
        if path.startswith(prefixes)
        for method in item
        if method in _METHODS
    }


def operation(path: str, method: str) -> dict[str, Any]:
    paths = contract()["paths"]
    assert path in paths, f"the contract has no path {path}"
    assert method.lower() in paths[path], f"the contract has no {method.upper()} {path}"
    return paths[path][method.lower()]


def validate(instance: Any, schema: dict[str, Any]) -> None:
    """Validate against a contract schema; its `#/components/...` refs resolve."""
    # The components ride along in the root, where the refs point.
    root = {**schema, "components": contract()["components"]}
    Draft202012Validator(root).validate(instance)


def component(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def assert_matches(response: httpx.Response, path: str, method: str) -> None:
    """The answer is one the contract lists for `method path`, in its shape."""
    responses = operation(path, method)["responses"]
    status = str(response.status_code)
    assert status in responses, (
        f"{method.upper()} {path} answered {status} ({response.text[:200]}); "
        f"the contract lists {sorted(responses)}"
    )
    content = responses[status].get("content")
    if response.status_code == 204 or not content:
        if response.status_code == 204:
            assert response.content == b"", "a 204 carries no body"
        return
    assert response.headers["content-type"].startswith("application/json")
    validate(response.json(), content["application/json"]["schema"])


def assert_api_error(
    response: httpx.Response, status: int, code: str | None = None
) -> None:
    """An answer beside the contract: its status, and the contract's ApiError body."""
    assert response.status_code == status, response.text
    body = response.json()
    validate(body, component("ApiError"))
    if code is not None:
        assert body["error"] == code, body
