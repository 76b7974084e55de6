import httpx

from api.devstack import free_port
from api.main import create_app
from api.resources import Resources, connect_temporal
from tests.factories import create_client, create_coworking, create_seat


async def test_book_while_temporal_down_answers_503_and_changes_nothing(
    resources: Resources,
) -> None:
    settings = resources.settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{free_port()}"}
    )
    dead = await connect_temporal(settings, lazy=True)
    broken = Resources(
        settings, resources.pool, resources.valkey, dead, resources.store
    )
    coworking = await create_coworking(resources.pool)
    seat = await create_seat(resources.pool, coworking)
    client = await create_client(resources.pool, settings)
    app = create_app(settings, resources=broken)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        response = await http.post(
            "/api/reservations",
            json={
                "seat_id": str(seat),
                "starts_at": "2030-01-07T10:00:00+00:00",
                "ends_at": "2030-01-07T11:00:00+00:00",
            },
            headers=client.headers,
        )
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "5"
    assert response.json() == {
        "error": "unavailable",
        "description": "the booking engine is unavailable; retry shortly",
    }
    assert (
        await resources.pool.fetchval("SELECT count(*) FROM reservation.reservations")
        == 0
    )
