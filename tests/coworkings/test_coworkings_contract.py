"""Every coworking and seat operation of the gateway contract, checked against its schemas.

A shared contract checker is being written elsewhere; until it lands this
file carries a small one: the published YAML read from the sibling
reference folder, OpenAPI 3.1 schemas validated as JSON Schema 2020-12.
"""

from functools import lru_cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.factories import create_admin, create_client, create_coworking, create_seat

CONTRACT = (
    Path(__file__).resolve().parents[2].parent
    / "shared" / "reference" / "tlounge-gateway-0.1.0.openapi.yaml"
)  # fmt: skip
_URI = "urn:tlounge:gateway-0.1.0"


@lru_cache(maxsize=1)
def _contract() -> tuple[dict[str, Any], Registry]:
    if not CONTRACT.is_file():
        pytest.skip("the reference contract is not next to the repository")
    document = yaml.safe_load(CONTRACT.read_text())
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return document, Registry().with_resource(_URI, resource)


def assert_matches(response: httpx.Response, path: str, method: str) -> None:
    """The status is one the contract lists for the operation, and the body its schema."""
    document, registry = _contract()
    operation = document["paths"][path][method.lower()]
    status = str(response.status_code)
    assert status in operation["responses"], (
        f"{method} {path} answered {status}; the contract lists {sorted(operation['responses'])}"
    )
    content = operation["responses"][status].get("content")
    if content is None:
        assert response.content == b"", f"{method} {path} {status} should have no body"
        return
    # refs in the contract are local to its document; point them at the registry
    schema = _rebase(content["application/json"]["schema"])
    # formats such as u-int64 are the gateway's own; only shapes are checked
    jsonschema.Draft202012Validator(schema, registry=registry).validate(response.json())


def _rebase(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: (_URI + v if k == "$ref" else _rebase(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_rebase(item) for item in schema]
    return schema


async def test_contract_coworking_and_seat_operations(api: httpx.AsyncClient, db, settings) -> None:
    coworking_id = await create_coworking(db)
    await create_seat(db, coworking_id, number=1, kind="Room", capacity=6, features=["Monitor"])
    owner = await create_admin(db, settings)
    client = await create_client(db, settings)
    auth = owner.headers

    calls = [
        ("GET", "/api/coworking", await api.get("/api/coworking")),
        ("PATCH", "/api/coworking", await api.patch("/api/coworking", headers=auth,
                                                    json={"name": "Renamed", "address": "2 Road"})),
        ("PATCH", "/api/coworking", await api.patch("/api/coworking", json={"name": "X"})),
        ("GET", "/api/coworking/seats", await api.get("/api/coworking/seats?limit=5&offset=0")),
    ]
    created = await api.post("/api/coworking/seats", headers=auth, json={
        "type": {"Cabin": 2}, "number": 2, "features": ["Laptop"], "cost": 100})  # fmt: skip
    seat_url = f"/api/coworking/seats/{created.json()['id']}"
    calls += [
        ("POST", "/api/coworking/seats", created),
        ("POST", "/api/coworking/seats", await api.post("/api/coworking/seats", json={})),
        ("GET", "/api/coworking/seats/{seat_id}", await api.get(seat_url, headers=auth)),
        ("GET", "/api/coworking/seats/{seat_id}", await api.get(seat_url)),
        ("PATCH", "/api/coworking/seats/{seat_id}", await api.patch(
            seat_url, headers=auth, json={"features": [], "type": "OpenSpace", "cost": 5})),
        ("PATCH", "/api/coworking/seats/{seat_id}", await api.patch(
            seat_url, headers=auth, json={"features": [], "number": 5000})),
        ("GET", "/api/coworking/clients", await api.get(
            "/api/coworking/clients?day=1&month=1&year=2030", headers=auth)),
        ("GET", "/api/coworking/clients", await api.get("/api/coworking/clients")),
        ("DELETE", "/api/coworking/seats/{seat_id}", await api.delete(seat_url, headers=auth)),
        ("GET", "/api/coworking/seats/{seat_id}", await api.get(seat_url, headers=auth)),
        ("DELETE", "/api/coworking/seats/{seat_id}", await api.delete(seat_url)),
    ]  # fmt: skip

    for method, path, response in calls:
        assert_matches(response, path, method)
    assert [response.status_code for _, _, response in calls] == [
        200, 200, 401, 200, 201, 401, 200, 401, 200, 400, 200, 401, 204, 404, 401]
    assert calls[1][2].json()["name"] == "Renamed"
    assert [s["type"] for s in calls[3][2].json()] == [{"Room": 6}]
    assert (await api.patch("/api/coworking", headers=client.headers, json={})).status_code == 403
