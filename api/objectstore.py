"""Object storage behind one small interface: a folder by default, or S3."""

from __future__ import annotations

import asyncio
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from minio import Minio
from minio.error import S3Error

from api.settings import Settings

# Keys are made by the server; this guard keeps a bug from becoming a path escape.
_SAFE_KEY = re.compile(r"^[a-z0-9][a-z0-9/_.-]{0,200}$")


class ObjectStoreError(Exception):
    """The store could not do what was asked."""


def _checked(key: str) -> str:
    if not _SAFE_KEY.match(key) or ".." in key:
        raise ObjectStoreError(f"refusing object key {key!r}")
    return key


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def delete(self, key: str) -> None: ...
    async def exists(self, key: str) -> bool: ...
    async def check(self) -> None: ...


class FilesystemStore:
    def __init__(self, root: Path):
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _checked(key)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # write then rename, so a reader never sees half an object
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError as error:
            raise ObjectStoreError(f"no object {key}") from error

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    async def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    async def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not os.access(self.root, os.W_OK):
            raise ObjectStoreError(f"{self.root} is not writable")


class S3Store:
    def __init__(self, client: Minio, bucket: str):
        self.client = client
        self.bucket = bucket
        self._bucket_ready = False

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        exists = await asyncio.to_thread(self.client.bucket_exists, self.bucket)
        if not exists:
            try:
                await asyncio.to_thread(self.client.make_bucket, self.bucket)
            except S3Error as error:
                if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise ObjectStoreError(str(error)) from error
        self._bucket_ready = True

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._ensure_bucket()
        try:
            await asyncio.to_thread(
                self.client.put_object,
                self.bucket,
                _checked(key),
                io.BytesIO(data),
                len(data),
                content_type=content_type,
            )
        except S3Error as error:
            raise ObjectStoreError(str(error)) from error

    async def get(self, key: str) -> bytes:
        def _read() -> bytes:
            response = self.client.get_object(self.bucket, _checked(key))
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        try:
            return await asyncio.to_thread(_read)
        except S3Error as error:
            raise ObjectStoreError(str(error)) from error

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(
                self.client.remove_object, self.bucket, _checked(key)
            )
        except S3Error as error:
            raise ObjectStoreError(str(error)) from error

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self.client.stat_object, self.bucket, _checked(key))
        except S3Error as error:
            if error.code in ("NoSuchKey", "NoSuchBucket"):
                return False
            raise ObjectStoreError(str(error)) from error
        return True

    async def check(self) -> None:
        try:
            await self._ensure_bucket()
        except Exception as error:  # any transport error means "not ready"
            raise ObjectStoreError(str(error)) from error


def create_object_store(settings: Settings) -> ObjectStore:
    if not settings.s3_endpoint:
        return FilesystemStore(settings.objects_dir)
    endpoint = re.sub(r"^https?://", "", settings.s3_endpoint).rstrip("/")
    client = Minio(
        endpoint,
        access_key=settings.s3_access_key,
        secret_key=(
            settings.s3_secret_key.get_secret_value()
            if settings.s3_secret_key
            else None
        ),
        secure=settings.s3_secure,
        region=settings.s3_region,
    )
    return S3Store(client, settings.s3_bucket)
