import io
import re
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from PIL import Image

from api.main import create_app
from api.objectstore import FilesystemStore, S3Store, create_object_store
from api.resources import Resources
from tests.conftest import make_settings
from tests.factories import create_admin, create_client, create_coworking, create_seat

KEY = re.compile(r"^images/([0-9a-f]{2})/\1[0-9a-f]{62}\.(png|jpg|webp)$")


def png_bytes(size=(32, 16), color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


def jpeg_with_gps(size=(40, 20)) -> bytes:
    image = Image.new("RGB", size, (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to show
    exif[0x010F] = "SpyCam"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (52.0, 31.0, 12.0)
    gps[3], gps[4] = "E", (13.0, 24.0, 36.0)
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A few hundred bytes whose header claims a huge picture."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", rows)
        + chunk(b"IEND", b"")
    )


async def stored_keys(store) -> list[str]:
    if isinstance(store, FilesystemStore):
        if not store.root.exists():
            return []
        return sorted(
            str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file()
        )
    assert isinstance(store, S3Store)
    await store.check()
    return sorted(
        o.object_name for o in store.client.list_objects(store.bucket, recursive=True)
    )


@pytest_asyncio.fixture(params=["filesystem", "s3"])
async def stack(request, resources: Resources, tmp_path: Path) -> AsyncIterator[tuple]:
    store = FilesystemStore(tmp_path / "objects")
    if request.param == "s3":
        store = create_object_store(make_settings(
            s3_endpoint=request.getfixturevalue("s3_endpoint"), s3_access_key="testing",
            s3_secret_key="testing", s3_secure=False,
            s3_bucket=f"img-{tmp_path.name.lower().replace('_', '-')[-40:]}",
        ))  # fmt: skip
    settings = resources.settings
    app = create_app(
        settings,
        resources=Resources(
            settings, resources.pool, resources.valkey, resources.temporal, store
        ),
    )
    coworking_id = await create_coworking(resources.pool)
    owner = await create_admin(resources.pool, settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:  # fmt: skip
        yield http, store, coworking_id, owner


def upload(
    data: bytes, name: str = "photo.png", content_type: str = "image/png"
) -> dict:
    return {"files": {"file": (name, data, content_type)}}


async def test_upload_image_png_stored_listed_served(stack, db) -> None:
    http, store, coworking_id, owner = stack
    url = f"/api/coworkings/{coworking_id}/images"

    response = await http.post(url, headers=owner.headers, **upload(png_bytes()))

    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["content_type"], body["width"], body["height"], body["position"]) == (
        "image/png",
        32,
        16,
        0,
    )
    row = await db.fetchrow("SELECT object_key, size_bytes FROM images.images")
    assert KEY.match(row["object_key"]) and row["object_key"].endswith(".png")
    assert await stored_keys(store) == [row["object_key"]]
    served = await store.get(row["object_key"])
    assert len(served) == row["size_bytes"] == body["size_bytes"]
    assert Image.open(io.BytesIO(served)).getpixel((0, 0)) == (200, 30, 30)

    listed = (await http.get(url)).json()
    assert [i["id"] for i in listed] == [body["id"]]
    # from either store, a link a browser reaches: the store may sit where it cannot
    assert listed[0]["url"] == body["url"] == f"/api/images/{body['id']}"
    streamed = await http.get(f"/api/images/{body['id']}")
    assert streamed.status_code == 200 and streamed.content == served
    assert streamed.headers["content-type"] == "image/png"
    assert streamed.headers["x-content-type-options"] == "nosniff"


async def test_the_images_of_an_inactive_coworking_are_hidden_as_it_is(
    stack, db, settings
) -> None:
    http, _, coworking_id, owner = stack
    seat = await create_seat(db, coworking_id, number=3)
    paths = (
        f"/api/coworkings/{coworking_id}/images",
        f"/api/coworkings/{coworking_id}/seats/{seat}/images",
    )
    ids = []
    for path in paths:
        made = await http.post(path, headers=owner.headers, **upload(png_bytes()))
        assert made.status_code == 201, made.text
        ids.append([made.json()["id"]])
    await db.execute(
        "UPDATE coworking.coworkings SET active = false WHERE id = $1", coworking_id
    )
    client = await create_client(db, settings)

    for path, listed in zip(paths, ids, strict=True):
        for headers in ({}, client.headers):
            hidden = await http.get(path, headers=headers)
            assert (hidden.status_code, hidden.json()) == (
                404,
                {
                    "error": "not_found",
                    "description": f"coworking_id: no coworking {coworking_id}",
                },
            )
        seen = await http.get(path, headers=owner.headers)
        assert [image["id"] for image in seen.json()] == listed
    forged = await http.get(paths[0], headers={"Authorization": "Bearer x.y.z"})
    assert forged.status_code == 401


@pytest.mark.parametrize(
    ("data", "status", "description"),
    [
        pytest.param(b"just some notes\n" * 20, 415,
                     "file: not a JPEG, PNG or WebP image", id="renamed_text"),
        pytest.param(None, 400, "file: the image is broken or truncated",
                     id="truncated_jpeg"),
        pytest.param(png_bomb(30_000, 30_000), 413,
                     "file: more than 40000000 pixels", id="bomb_huge"),
        pytest.param(png_bomb(8_000, 6_000), 413,
                     "file: 8000x6000 is more than 40000000 pixels", id="bomb_48mp"),
        pytest.param(b"", 400, "file: empty", id="empty"),
    ],
)  # fmt: skip
async def test_upload_image_refuses_bad_file(
    stack, db, data, status, description
) -> None:
    http, store, coworking_id, owner = stack
    if data is None:
        whole = jpeg_with_gps(size=(400, 300))
        data = whole[: len(whole) // 2]

    response = await http.post(f"/api/coworkings/{coworking_id}/images",
                               headers=owner.headers,
                               **upload(data, name="cat.png"))  # fmt: skip

    assert response.status_code == status, response.text
    assert response.json()["description"] == description
    assert await db.fetchval("SELECT count(*) FROM images.images") == 0
    assert await stored_keys(store) == []


async def test_upload_image_strips_gps_and_applies_orientation(
    api, db, settings, resources
) -> None:
    coworking_id = await create_coworking(db)
    owner = await create_admin(db, settings)
    original = jpeg_with_gps()
    assert b"SpyCam" in original and Image.open(io.BytesIO(original)).getexif().get_ifd(
        0x8825
    )

    response = await api.post(
        f"/api/coworkings/{coworking_id}/images",
        headers=owner.headers,
        **upload(original, name="x.jpg", content_type="image/jpeg"),
    )

    assert response.status_code == 201, response.text
    key = await db.fetchval("SELECT object_key FROM images.images")
    stored = await resources.store.get(key)
    assert key.endswith(".jpg") and b"SpyCam" not in stored and b"Exif" not in stored
    cleaned = Image.open(io.BytesIO(stored))
    assert dict(cleaned.getexif()) == {}
    # the 40x20 picture marked "rotate 90" is stored upright as 20x40
    assert cleaned.size == (20, 40) and (
        response.json()["width"],
        response.json()["height"],
    ) == (20, 40)


async def test_upload_image_size_limit_and_auth(resources, db) -> None:
    settings = resources.settings.model_copy(update={"image_max_bytes": 2048})
    app = create_app(
        settings,
        resources=Resources(
            settings,
            resources.pool,
            resources.valkey,
            resources.temporal,
            resources.store,
        ),
    )
    coworking_id = await create_coworking(db)
    owner = await create_admin(db, settings)
    client = await create_client(db, settings)
    big = bytes(range(256)) * 12
    url = f"/api/coworkings/{coworking_id}/images"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://test") as http:  # fmt: skip
        too_big = await http.post(url, headers=owner.headers, **upload(big))
        declared = await http.post(
            url,
            headers={
                **owner.headers,
                "Content-Length": "999999",
                "Content-Type": "multipart/form-data; boundary=x",
            },
            content=b"--x--",
        )
        not_multipart = await http.post(url, headers=owner.headers, content=png_bytes())
        nobody = await http.post(url, **upload(png_bytes()))
        guest = await http.post(url, headers=client.headers, **upload(png_bytes()))
        wrong_field = await http.post(
            url,
            headers=owner.headers,
            files={"photo": ("a.png", png_bytes(), "image/png")},
        )
        extra_field = await http.post(
            url,
            headers=owner.headers,
            files={"file": ("a.png", png_bytes(), "image/png")},
            data={"caption": "front desk"},
        )
    assert (too_big.status_code, too_big.json()["description"]) == (
        413,
        "file: larger than 2048 bytes",
    )
    assert declared.status_code == 413
    assert not_multipart.status_code == 415
    assert (nobody.status_code, guest.status_code) == (401, 403)
    assert wrong_field.status_code == 400 and wrong_field.json()[
        "description"
    ].startswith("file: missing")
    assert (extra_field.status_code, extra_field.json()["description"]) == (
        400,
        "caption: not a field of an upload; send the image alone, in a field"
        " named file",
    )
    assert await db.fetchval("SELECT count(*) FROM images.images") == 0


async def test_reorder_and_delete_images_shared_object(
    api, db, settings, resources
) -> None:
    coworking_id = await create_coworking(db)
    seat_id = await create_seat(db, coworking_id)
    owner = await create_admin(db, settings)
    base = f"/api/coworkings/{coworking_id}"
    red = (
        await api.post(f"{base}/images", headers=owner.headers, **upload(png_bytes()))
    ).json()
    blue = (
        await api.post(
            f"{base}/images",
            headers=owner.headers,
            **upload(png_bytes(color=(0, 0, 255))),
        )
    ).json()
    # the same picture on the seat shares the stored object
    seat_red = (
        await api.post(
            f"{base}/seats/{seat_id}/images",
            headers=owner.headers,
            **upload(png_bytes()),
        )
    ).json()
    assert (blue["position"], seat_red["position"], seat_red["seat_id"]) == (
        1,
        0,
        str(seat_id),
    )
    assert [
        i["id"] for i in (await api.get(f"{base}/seats/{seat_id}/images")).json()
    ] == [seat_red["id"]]

    reordered = await api.put(
        f"{base}/images/order", headers=owner.headers, json=[blue["id"], red["id"]]
    )
    assert [(i["id"], i["position"]) for i in reordered.json()] == [
        (blue["id"], 0),
        (red["id"], 1),
    ]
    partial = await api.put(
        f"{base}/images/order", headers=owner.headers, json=[blue["id"]]
    )
    assert (partial.status_code, partial.json()["description"]) == (
        400, f"body: image {red['id']} of this owner is not listed (added since?);"
        " list every image once",
    )  # fmt: skip
    foreign = await api.put(
        f"{base}/images/order", headers=owner.headers, json=[blue["id"], seat_red["id"]]
    )
    assert (foreign.status_code, foreign.json()["description"]) == (
        400, f"body.1: image {seat_red['id']} is not one of this owner's"
        " (deleted since, or another's)",
    )  # fmt: skip
    garbled = await api.put(
        f"{base}/images/order", headers=owner.headers, json=[blue["id"], "nope"]
    )
    assert garbled.json()["description"].startswith("body.1: ")
    twice = await api.put(
        f"{base}/images/order", headers=owner.headers, json=[blue["id"], blue["id"]]
    )
    assert (twice.status_code, twice.json()["description"]) == (
        400, f"body.1: image {blue['id']} is listed twice",
    )  # fmt: skip

    red_key = await db.fetchval(
        "SELECT object_key FROM images.images WHERE id = $1", red["id"]
    )
    assert (
        await api.delete(f"{base}/images/{red['id']}", headers=owner.headers)
    ).status_code == 204
    assert await resources.store.exists(red_key)
    assert (
        await api.delete(
            f"{base}/seats/{seat_id}/images/{seat_red['id']}", headers=owner.headers
        )
    ).status_code == 204
    assert not await resources.store.exists(red_key)
    assert (
        await api.delete(f"{base}/images/{red['id']}", headers=owner.headers)
    ).status_code == 404
    assert (await api.get(f"/api/images/{red['id']}")).status_code == 404
    assert [i["id"] for i in (await api.get(f"{base}/images")).json()] == [blue["id"]]


def encoded(image: Image.Image, image_format: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=image_format, **options)
    return out.getvalue()


@pytest.mark.parametrize(
    ("data", "content_type", "mode"),
    [
        pytest.param(encoded(Image.new("RGBA", (8, 8), (1, 2, 3, 100)), "WEBP"),
                     "image/webp", "RGBA", id="webp_alpha"),
        pytest.param(encoded(Image.new("L", (8, 8), 90), "WEBP"),
                     "image/webp", "RGB", id="webp_grey"),
        pytest.param(encoded(Image.new("CMYK", (8, 8)), "JPEG"),
                     "image/jpeg", "RGB", id="jpeg_cmyk"),
        pytest.param(encoded(Image.new("P", (8, 8)), "PNG", transparency=0),
                     "image/png", "P", id="png_palette"),
    ],
)  # fmt: skip
def test_clean_image_keeps_format_and_drawable_mode(data, content_type, mode) -> None:
    from api.services.images import clean_image

    clean = clean_image(data, max_pixels=1000)
    assert (clean.content_type, clean.width, clean.height) == (content_type, 8, 8)
    reopened = Image.open(io.BytesIO(clean.data))
    assert reopened.mode == mode
    assert KEY.match(clean.key)


def test_clean_image_refuses_gif_and_broken_header() -> None:
    from api.errors import UnsupportedMedia
    from api.services.images import clean_image

    with pytest.raises(UnsupportedMedia, match="GIF is not accepted"):
        clean_image(encoded(Image.new("P", (4, 4)), "GIF"), max_pixels=1000)
    broken = bytearray(png_bytes())
    broken[16:24] = b"\x00" * 8  # zero width and height in IHDR: no plugin takes it
    with pytest.raises(UnsupportedMedia, match="not a JPEG, PNG or WebP image"):
        clean_image(bytes(broken), max_pixels=1000)


async def test_a_deleted_seats_images_go_with_it(api, db, settings, resources) -> None:
    coworking_id = await create_coworking(db)
    seat_id = await create_seat(db, coworking_id)
    owner = await create_admin(db, settings)
    base = f"/api/coworkings/{coworking_id}"
    # the coworking's own picture and the seat's first share one object
    shared = await api.post(f"{base}/images", headers=owner.headers,
                            **upload(png_bytes()))  # fmt: skip
    on_seat = [
        (await api.post(f"{base}/seats/{seat_id}/images", headers=owner.headers,
                        **upload(png_bytes(color=color)))).json()
        for color in ((200, 30, 30), (0, 0, 255))
    ]  # fmt: skip
    keys = {
        image["id"]: await db.fetchval(
            "SELECT object_key FROM images.images WHERE id = $1", image["id"]
        )
        for image in on_seat
    }

    deleted = await api.delete(f"{base}/seats/{seat_id}", headers=owner.headers)

    assert deleted.status_code == 204
    assert (
        await db.fetchval(
            "SELECT count(*) FROM images.images WHERE seat_id = $1", seat_id
        )
        == 0
    )
    for image in on_seat:
        assert (await api.get(f"/api/images/{image['id']}")).status_code == 404
    red, blue = (keys[image["id"]] for image in on_seat)
    # the object the coworking's picture still uses stays, the other goes
    assert (await resources.store.exists(red), await resources.store.exists(blue)) == (
        True, False,
    )  # fmt: skip
    assert (await api.get(f"/api/images/{shared.json()['id']}")).status_code == 200


async def test_uploads_at_once_take_positions_in_turn(api, db, settings) -> None:
    import asyncio

    coworking_id = await create_coworking(db)
    owner = await create_admin(db, settings)
    base = f"/api/coworkings/{coworking_id}"
    answers = await asyncio.gather(*(
        api.post(f"{base}/images", headers=owner.headers,
                 **upload(png_bytes(color=(n * 20, 0, 0))))
        for n in range(8)
    ))  # fmt: skip
    assert [a.status_code for a in answers] == [201] * 8
    assert sorted(a.json()["position"] for a in answers) == list(range(8))
