"""Every coworking and seat operation of the gateway contract, checked against
its schemas."""

import httpx

from tests.contract import assert_api_error, assert_matches
from tests.factories import create_admin, create_client, create_coworking, create_seat


async def test_contract_coworking_and_seat_operations(
    api: httpx.AsyncClient, db, settings
) -> None:
    coworking_id = await create_coworking(db)
    await create_seat(
        db, coworking_id, number=1, kind="Room", capacity=6, features=["Monitor"]
    )
    owner = await create_admin(db, settings)
    client = await create_client(db, settings)
    auth = owner.headers

    calls = [
        ("GET", "/api/coworking", await api.get("/api/coworking")),
        (
            "PATCH",
            "/api/coworking",
            await api.patch(
                "/api/coworking",
                headers=auth,
                json={"name": "Renamed", "address": "2 Road"},
            ),
        ),
        (
            "PATCH",
            "/api/coworking",
            await api.patch("/api/coworking", json={"name": "X"}),
        ),
        (
            "GET",
            "/api/coworking/seats",
            await api.get("/api/coworking/seats?limit=5&offset=0"),
        ),
    ]
    created = await api.post("/api/coworking/seats", headers=auth, json={
        "type": {"Cabin": 2}, "number": 2, "features": ["Laptop"], "cost": 100,
    })  # fmt: skip
    seat_url = f"/api/coworking/seats/{created.json()['id']}"
    calls += [
        ("POST", "/api/coworking/seats", created),
        ("POST", "/api/coworking/seats", await api.post(
            "/api/coworking/seats", json={})),
        ("GET", "/api/coworking/seats/{seat_id}", await api.get(
            seat_url, headers=auth)),
        ("GET", "/api/coworking/seats/{seat_id}", await api.get(seat_url)),
        ("PATCH", "/api/coworking/seats/{seat_id}", await api.patch(
            seat_url, headers=auth,
            json={"features": [], "type": "OpenSpace", "cost": 5})),
        ("PATCH", "/api/coworking/seats/{seat_id}", await api.patch(
            seat_url, headers=auth, json={"features": [], "number": 5000})),
        ("GET", "/api/coworking/clients", await api.get(
            "/api/coworking/clients?day=1&month=1&year=2030", headers=auth)),
        ("GET", "/api/coworking/clients", await api.get("/api/coworking/clients")),
        ("DELETE", "/api/coworking/seats/{seat_id}", await api.delete(
            seat_url, headers=auth)),
        ("GET", "/api/coworking/seats/{seat_id}", await api.get(
            seat_url, headers=auth)),
        ("DELETE", "/api/coworking/seats/{seat_id}", await api.delete(seat_url)),
    ]  # fmt: skip

    for method, path, response in calls:
        assert_matches(response, path, method)
    assert [response.status_code for _, _, response in calls] == [
        200,
        200,
        401,
        200,
        201,
        401,
        200,
        401,
        200,
        400,
        200,
        401,
        204,
        404,
        401,
    ]
    assert calls[1][2].json()["name"] == "Renamed"
    assert [s["type"] for s in calls[3][2].json()] == [{"Room": 6}]
    # beside the contract: a valid client token is refused, not unknown
    refused = await api.patch("/api/coworking", headers=client.headers, json={})
    assert_api_error(refused, 403, "forbidden")
