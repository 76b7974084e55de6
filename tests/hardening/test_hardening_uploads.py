"""A corpus of hostile uploads: only re-encoded pictures reach the store."""

import io
import json
import re
import struct
import subprocess
import sys
import zipfile
import zlib

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from tests.factories import create_admin, create_coworking

KEY = re.compile(r"^images/([0-9a-f]{2})/\1[0-9a-f]{62}\.(png|jpg|webp)$")


def _png(size=(24, 12), color=(10, 200, 30)) -> bytes:
    # a text chunk, as cameras and editors leave: re-encoding must drop it
    info = PngInfo()
    info.add_text("Comment", "uploaded by a test")
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def _jpeg(size=(24, 12)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (90, 20, 160)).save(out, format="JPEG")
    return out.getvalue()


def _zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("evil.sh", "#!/bin/sh\necho owned\n")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png_bomb(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * 65536, 9)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows)
            + _chunk(b"IEND", b""))  # fmt: skip


def jpeg_bomb(width: int, height: int) -> bytes:
    """A small JPEG whose frame header was edited to claim a huge picture."""
    data = bytearray(_jpeg())
    at = data.index(b"\xff\xc0") + 5
    data[at : at + 4] = struct.pack(">HH", height, width)
    return bytes(data)


def gif_bomb() -> bytes:
    return b"GIF89a" + struct.pack("<HH", 65535, 65535) + b"\x00\x00\x00" + b"\x3b"


SVG = (b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg">'
       b"<script>alert(document.cookie)</script></svg>")  # fmt: skip
# name, bytes, declared type, file name -> expected status
REFUSED = [
    ("text_as_png", b"just some text, honest", "image/png", "photo.png", 415),
    (
        "html_as_png",
        b"<html><script>alert(1)</script></html>",
        "image/png",
        "a.png",
        415,
    ),
    ("svg_with_script", SVG, "image/svg+xml", "logo.svg", 415),
    ("svg_as_png", SVG, "image/png", "logo.png", 415),
    ("zip_as_jpeg", _zip(), "image/jpeg", "a.jpg", 415),
    ("truncated_png", _png((200, 200))[:120], "image/png", "a.png", 400),
    ("truncated_jpeg", _jpeg((300, 300))[:300], "image/jpeg", "a.jpg", 400),
    ("header_only_png", _png()[:33], "image/png", "a.png", 415),
    ("gif", gif_bomb(), "image/gif", "a.gif", 415),
    ("png_bomb", png_bomb(30_000, 30_000), "image/png", "a.png", 413),
    ("jpeg_bomb", jpeg_bomb(60_000, 60_000), "image/jpeg", "a.jpg", 413),
    ("empty", b"", "image/png", "a.png", 400),
    # a part header past the multipart parser's bound is refused whole
    ("huge_name", _png(), "image/png", "x" * 20_000 + ".png", 400),
]
ACCEPTED = [
    ("png_with_zip", _png() + _zip(), "image/png", "a.png"),
    ("png_with_html", _png(color=(1, 2, 3)) + b"<script>alert(1)</script>", "image/png",
     "a.png"),
    ("jpeg_as_png", _jpeg(), "image/png", "photo.png"),
    ("dotdot_name", _png(color=(4, 5, 6)), "image/png", "../../etc/passwd"),
    ("nul_name", _png(color=(7, 8, 9)), "image/png", "a\x00.png/../../x"),
    ("long_name", _png(color=(9, 9, 9)), "image/png", "x" * 1000 + ".png"),
    ("backslash_name", _png(color=(3, 3, 3)), "image/png", "..\\..\\win.ini"),
]  # fmt: skip


async def test_upload_hostile_corpus_only_clean_images_stored(
    api, db, settings
) -> None:
    coworking_id = await create_coworking(db)
    owner = await create_admin(db, settings)
    url = f"/api/coworkings/{coworking_id}/images"
    refused = {}
    for name, data, content_type, filename, _ in REFUSED:
        response = await api.post(
            url, headers=owner.headers, files={"file": (filename, data, content_type)}
        )
        refused[name] = (response.status_code, sorted(response.json()))
    assert refused == {
        name: (status, ["description", "error"]) for name, *_, status in REFUSED
    }
    assert await db.fetchval("SELECT count(*) FROM images.images") == 0

    uploads = {}
    for name, data, content_type, filename in ACCEPTED:
        response = await api.post(
            url, headers=owner.headers, files={"file": (filename, data, content_type)}
        )
        assert response.status_code == 201, (name, response.text)
        uploads[response.json()["id"]] = data

    rows = await db.fetch("SELECT id, object_key, content_type FROM images.images")
    assert len(rows) == len(ACCEPTED)
    root = settings.objects_dir
    on_disk = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert on_disk == sorted({row["object_key"] for row in rows})
    for row in rows:
        assert KEY.match(row["object_key"]), row["object_key"]
        stored = (root / row["object_key"]).read_bytes()
        # re-encoded: never the upload's bytes, nothing appended survives
        assert stored != uploads[str(row["id"])]
        assert b"PK\x03\x04" not in stored and b"<script" not in stored
        assert b"tEXt" not in stored
        with Image.open(io.BytesIO(stored)) as image:
            image.load()
            expected = {"PNG": "image/png", "JPEG": "image/jpeg"}[image.format]
        assert row["content_type"] == expected


_MEASURE = r"""
import json, re, time
from api.errors import TLoungeError
from api.services.images import clean_image
from tests.hardening.test_hardening_uploads import REFUSED
out = {}
for name, data, *_ in REFUSED:
    if "bomb" not in name:
        continue
    began = time.perf_counter()
    try:
        clean_image(data, max_pixels=40_000_000)
        outcome = "accepted"
    except TLoungeError as error:
        outcome = error.status_code
    out[name] = [outcome, time.perf_counter() - began]
# the peak of this process's own memory map: ru_maxrss may carry the parent's
# size across the fork, VmHWM starts afresh at exec
status = open("/proc/self/status").read()
out["max_rss_mb"] = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
print(json.dumps(out))
"""


def test_clean_image_bombs_refused_fast_in_little_memory() -> None:
    # a fresh process, so its peak resident size is the bombs' and nothing else's
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _MEASURE], capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    figures = json.loads(result.stdout)
    assert {k: v[0] for k, v in figures.items() if k != "max_rss_mb"} == {
        "png_bomb": 413, "jpeg_bomb": 413
    }  # fmt: skip
    assert all(v[1] < 1.0 for k, v in figures.items() if k != "max_rss_mb"), figures
    assert figures["max_rss_mb"] < 200, figures


_LARGE_UPLOADS = r"""
import asyncio, ctypes, io, json, psutil
from PIL import Image
from api.services import images

picture = Image.new("RGBA", (6_000, 6_600), (10, 20, 30, 255))
buffer = io.BytesIO()
picture.save(buffer, "PNG")
data = buffer.getvalue()
del picture
ctypes.CDLL("").malloc_trim(0)
me = psutil.Process()
before = me.memory_info().rss


async def upload():
    async with images._DECODING:
        return await asyncio.to_thread(images._clean_and_give_back, data, 40_000_000)


async def main():
    return await asyncio.gather(*(upload() for _ in range(3)))


cleaned = asyncio.run(main())
print(json.dumps({
    "sizes": [[c.width, c.height] for c in cleaned],
    "grew_mb": (me.memory_info().rss - before) / 2**20,
}))
"""


def test_large_pictures_in_parallel_leave_the_process_no_bigger() -> None:
    # 40 M pixels less a little, 160 MB decoded, from a 167 KB upload
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _LARGE_UPLOADS], capture_output=True, text=True,
        timeout=120, check=True,
    )  # fmt: skip
    figures = json.loads(result.stdout)
    assert figures["sizes"] == [[6_000, 6_600]] * 3
    # before: some 300 MB more for each picture decoded at the same time
    assert figures["grew_mb"] < 48, figures


@pytest.mark.parametrize(
    "size", [(8_000, 6_000), (40_000, 1_001)], ids=["48mp", "wide"]
)
async def test_upload_bomb_just_over_limit_refused(api, db, settings, size) -> None:
    coworking_id = await create_coworking(db)
    owner = await create_admin(db, settings)
    response = await api.post(
        f"/api/coworkings/{coworking_id}/images", headers=owner.headers,
        files={"file": ("a.png", png_bomb(*size), "image/png")},
    )  # fmt: skip
    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "description": f"file: {size[0]}x{size[1]} is more than 40000000 pixels",
    }
