"""Photos of coworkings and seats: decoded, cleaned, stored by content.

An upload is trusted for nothing: Pillow decides what it is, the size in
pixels is checked from the header before any decoding, and the picture is
re-encoded so EXIF (GPS and all) and other metadata never reach the store.
The object key is the hash of the cleaned bytes, made here.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import hashlib
import io
import logging
import warnings
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from PIL import Image, ImageOps, UnidentifiedImageError

from api.errors import (
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    UnsupportedMedia,
)
from api.objectstore import ObjectStore, ObjectStoreError

logger = logging.getLogger(__name__)

# what Pillow calls the format -> (content type, extension)
ACCEPTED = {
    "JPEG": ("image/jpeg", "jpg"),
    "PNG": ("image/png", "png"),
    "WEBP": ("image/webp", "webp"),
}
_DECODING = asyncio.Semaphore(1)


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "")
        libc.malloc_trim  # noqa: B018 - glibc's alone; elsewhere nothing to trim
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()
_COLUMNS = (
    "id, coworking_id, seat_id, object_key, content_type, width, height, size_bytes,"
    " position, created_at"
)


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int

    @property
    def key(self) -> str:
        digest = hashlib.sha256(self.data).hexdigest()
        return f"images/{digest[:2]}/{digest}.{self.extension}"


def clean_image(data: bytes, *, max_pixels: int) -> CleanImage:
    """The upload decoded and re-encoded without metadata, or why it is refused."""
    with warnings.catch_warnings():
        # Pillow only warns below twice its own limit; here any bomb is an error
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PayloadTooLarge(f"file: more than {max_pixels} pixels") from None
        except UnidentifiedImageError:
            raise UnsupportedMedia("file: not a JPEG, PNG or WebP image") from None
        except (OSError, SyntaxError, ValueError):
            raise InvalidInput("file: the image header is broken") from None
    with image:
        if image.format not in ACCEPTED:
            raise UnsupportedMedia(
                f"file: {image.format} is not accepted; send JPEG, PNG or WebP"
            )
        content_type, extension = ACCEPTED[image.format]
        width, height = image.size
        # open() read only the header; refuse a bomb before load() decodes it
        if width * height > max_pixels:
            raise PayloadTooLarge(
                f"file: {width}x{height} is more than {max_pixels} pixels"
            )
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            raise InvalidInput("file: the image is broken or truncated") from None
        image_format = image.format
        # in place: a copy would double what a large picture holds in memory
        ImageOps.exif_transpose(image, in_place=True)
        encoded = _encode(image, image_format=image_format)
        return CleanImage(encoded, content_type, extension, image.width, image.height)


def _give_back_memory() -> None:
    """Return freed heap to the system, from the thread that freed it.

    A decoded picture takes width x height x 4 bytes in blocks that glibc keeps
    in the worker thread's arena once freed, so each large upload left the API
    some 300 MB bigger for good.
    """
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _clean_and_give_back(data: bytes, max_pixels: int) -> CleanImage:
    try:
        return clean_image(data, max_pixels=max_pixels)
    finally:
        _give_back_memory()


def _encode(image: Image.Image, *, image_format: str) -> bytes:
    has_alpha = image.mode in ("RGBA", "LA") or "transparency" in image.info
    if image_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    elif image_format == "WEBP" and image.mode not in ("RGB", "RGBA"):
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif image_format == "PNG" and image.mode == "CMYK":
        image = image.convert("RGB")
    # metadata rides in info; keep only what draws the picture, so nothing else
    # of the upload (EXIF, XMP, text chunks) is written back
    image.info = {k: v for k, v in image.info.items() if k == "transparency"}
    out = io.BytesIO()
    options: dict[str, Any] = (
        {"quality": 90} if image_format in ("JPEG", "WEBP") else {}
    )
    image.save(out, format=image_format, **options)
    return out.getvalue()


# the first key of the two-key advisory lock an owner's uploads take
_OWNER_LOCK = 0x696D6167


def _lock_key(object_key: str) -> int:
    """A signed 64-bit advisory lock id per object key."""
    return int.from_bytes(
        hashlib.sha256(object_key.encode()).digest()[:8], "big", signed=True
    )


async def _check_owner(
    conn: asyncpg.Connection, coworking_id: UUID, seat_id: UUID | None
) -> None:
    if (
        await conn.fetchval(
            "SELECT 1 FROM coworking.coworkings WHERE id = $1", coworking_id
        )
        is None
    ):
        raise NotFound(f"coworking_id: no coworking {coworking_id}")
    if seat_id is not None:
        found = await conn.fetchval(
            "SELECT 1 FROM coworking.seats WHERE id = $1 AND coworking_id = $2"
            " AND deleted_at IS NULL",
            seat_id, coworking_id,
        )  # fmt: skip
        if found is None:
            raise NotFound(f"seat_id: no seat {seat_id} in this coworking")


def image_public(row: asyncpg.Record) -> dict[str, Any]:
    public = dict(row)
    del public["object_key"]
    # Served by this API, not linked to the store: a presigned link named the
    # store's own address (inside a cluster, unreachable for a browser), lapsed
    # in minutes, changed on every read, and came without our headers.
    public["url"] = f"/api/images/{row['id']}"
    return public


async def add_image(
    pool: asyncpg.Pool,
    store: ObjectStore,
    *,
    coworking_id: UUID,
    seat_id: UUID | None,
    data: bytes,
    max_pixels: int,
) -> dict[str, Any]:
    async with pool.acquire() as conn:
        await _check_owner(conn, coworking_id, seat_id)
    # one decode at a time: a picture may take 160 MB decoded, and uploads are
    # a staff member's occasional act, so waiting costs little
    async with _DECODING:
        clean = await asyncio.to_thread(_clean_and_give_back, data, max_pixels)
    key = clean.key
    async with pool.acquire() as conn, conn.transaction():
        # every writer of this key takes the lock, so a delete of the last row
        # cannot remove the object under an upload that is about to use it
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(key))
        # uploads to one owner take turns, so each reads the last position
        await conn.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
            _OWNER_LOCK, f"{coworking_id}/{seat_id}",
        )  # fmt: skip
        shared = await conn.fetchval(
            "SELECT count(*) FROM images.images WHERE object_key = $1", key
        )
        try:
            await store.put(key, clean.data, clean.content_type)
        except ObjectStoreError as error:
            raise Unavailable(
                "The image store is unavailable; nothing was saved"
            ) from error
        try:
            row = await conn.fetchrow(
                "INSERT INTO images.images (id, coworking_id, seat_id, object_key,"  # noqa: S608
                " content_type, width, height, size_bytes, position)"
                " SELECT $1, $2, $3, $4, $5, $6, $7, $8, coalesce(max(position) + 1, 0)"
                " FROM images.images WHERE coworking_id = $2"
                " AND seat_id IS NOT DISTINCT FROM $3"
                f" RETURNING {_COLUMNS}",
                uuid4(), coworking_id, seat_id, key, clean.content_type, clean.width,
                clean.height, len(clean.data),
            )  # fmt: skip
        except BaseException:
            # no row points at a new object, so it goes with the failed insert
            if not shared:
                await store.delete(key)
            raise
    logger.info("stored image %s for coworking %s", row["id"], coworking_id)
    return image_public(row)


async def list_images(
    conn: asyncpg.Pool, store: ObjectStore, *, coworking_id: UUID, seat_id: UUID | None
) -> list[dict[str, Any]]:
    async with conn.acquire() as connection:
        await _check_owner(connection, coworking_id, seat_id)
        rows = await connection.fetch(
            f"SELECT {_COLUMNS} FROM images.images WHERE coworking_id = $1"  # noqa: S608
            " AND seat_id IS NOT DISTINCT FROM $2 ORDER BY position, created_at, id",
            coworking_id, seat_id,
        )  # fmt: skip
    return [image_public(row) for row in rows]


async def reorder_images(
    pool: asyncpg.Pool,
    store: ObjectStore,
    *,
    coworking_id: UUID,
    seat_id: UUID | None,
    image_ids: list[UUID],
) -> list[dict[str, Any]]:
    async with pool.acquire() as conn, conn.transaction():
        await _check_owner(conn, coworking_id, seat_id)
        current = await conn.fetch(
            "SELECT id FROM images.images WHERE coworking_id = $1"
            " AND seat_id IS NOT DISTINCT FROM $2 FOR UPDATE",
            coworking_id, seat_id,
        )  # fmt: skip
        _require_each_once(image_ids, [row["id"] for row in current])
        await conn.executemany(
            "UPDATE images.images SET position = $2 WHERE id = $1",
            [(image_id, index) for index, image_id in enumerate(image_ids)],
        )
    return await list_images(pool, store, coworking_id=coworking_id, seat_id=seat_id)


def _require_each_once(sent: list[UUID], current: list[UUID]) -> None:
    """Every image of the owner, once each; the first one amiss is named, so
    a list read before another staff member's change says what changed."""
    seen: set[UUID] = set()
    owned = set(current)
    for index, image_id in enumerate(sent):
        if image_id in seen:
            raise InvalidInput(f"body.{index}: image {image_id} is listed twice")
        if image_id not in owned:
            raise InvalidInput(
                f"body.{index}: image {image_id} is not one of this owner's"
                " (deleted since, or another's)"
            )
        seen.add(image_id)
    missing = [image_id for image_id in current if image_id not in seen]
    if missing:
        raise InvalidInput(
            f"body: image {missing[0]} of this owner is not listed"
            + (f", nor {len(missing) - 1} more" if len(missing) > 1 else "")
            + " (added since?); list every image once"
        )


async def delete_image(
    pool: asyncpg.Pool,
    store: ObjectStore,
    *,
    coworking_id: UUID,
    seat_id: UUID | None,
    image_id: UUID,
) -> None:
    async with pool.acquire() as conn, conn.transaction():
        key = await conn.fetchval(
            "DELETE FROM images.images WHERE id = $1 AND coworking_id = $2"
            " AND seat_id IS NOT DISTINCT FROM $3 RETURNING object_key",
            image_id, coworking_id, seat_id,
        )  # fmt: skip
        if key is None:
            raise NotFound(f"image_id: no image {image_id} here")
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(key))
        others = await conn.fetchval(
            "SELECT count(*) FROM images.images WHERE object_key = $1", key
        )
        if not others:
            # inside the transaction: if the store refuses, the row stays too
            try:
                await store.delete(key)
            except ObjectStoreError as error:
                raise Unavailable(
                    "The image store is unavailable; nothing was deleted"
                ) from error
    logger.info("deleted image %s of coworking %s", image_id, coworking_id)


async def forget_objects(
    pool: asyncpg.Pool, store: ObjectStore, keys: list[str]
) -> None:
    """Remove the stored objects of images whose rows are gone, where no other
    image shares them. Their rows were the only way to them, so an object the
    store fails to delete now is left behind, never shown."""
    for key in keys:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(key))
            if await conn.fetchval(
                "SELECT count(*) FROM images.images WHERE object_key = $1", key
            ):
                continue
            try:
                await store.delete(key)
            except ObjectStoreError as error:
                logger.warning("image object %s left in the store: %s", key, error)


async def read_image(
    pool: asyncpg.Pool, store: ObjectStore, image_id: UUID
) -> tuple[bytes, str]:
    row = await pool.fetchrow(
        "SELECT object_key, content_type FROM images.images WHERE id = $1", image_id
    )
    if row is None:
        raise NotFound(f"image_id: no image {image_id}")
    try:
        return await store.get(row["object_key"]), row["content_type"]
    except ObjectStoreError as error:
        raise Unavailable("The image store is unavailable") from error
