from tests.factories import create_admin, create_client, create_coworking, create_seat


async def test_factories_make_rows_and_valid_tokens(db, settings) -> None:
    coworking_id = await create_coworking(db, timezone="Europe/Berlin", slot_minutes=30)
    seat_id = await create_seat(db, coworking_id, number=7, features=["Monitor"])
    client = await create_client(db, settings, email="Mixed@Example.com")
    admin = await create_admin(db, settings, role="manager", coworkings=[coworking_id])
    row = await db.fetchrow(
        "SELECT timezone, slot_minutes FROM coworking.coworkings WHERE id=$1",
        coworking_id,
    )
    assert (row["timezone"], row["slot_minutes"]) == ("Europe/Berlin", 30)
    assert await db.fetchval(
        "SELECT features FROM coworking.seats WHERE id=$1", seat_id
    ) == ["Monitor"]
    assert (
        await db.fetchval("SELECT email_key FROM client.clients WHERE id=$1", client.id)
        == "mixed@example.com"
    )
    assert (
        await db.fetchval(
            "SELECT coworking_id FROM admin.admin_coworkings WHERE admin_id=$1",
            admin.id,
        )
        == coworking_id
    )
    assert client.headers["Authorization"].startswith("Bearer ey")
