from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from api.objectstore import FilesystemStore, ObjectStoreError, create_object_store
from tests.conftest import make_settings


@pytest.fixture(params=["filesystem", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "filesystem":
        return FilesystemStore(tmp_path / "objects")
    endpoint = request.getfixturevalue("s3_endpoint")
    settings = make_settings(
        s3_endpoint=endpoint,
        s3_access_key="testing",
        s3_secret_key="testing",
        s3_secure=False,
        s3_bucket=f"bucket-{tmp_path.name.lower().replace('_', '-')[:40]}",
    )
    return create_object_store(settings)


async def test_store_put_get_delete_roundtrip(store) -> None:
    await store.check()
    await store.put("images/ab/cdef.png", b"\x89PNG-bytes", "image/png")
    assert await store.exists("images/ab/cdef.png")
    assert await store.get("images/ab/cdef.png") == b"\x89PNG-bytes"
    await store.delete("images/ab/cdef.png")
    assert not await store.exists("images/ab/cdef.png")


@pytest.mark.parametrize("key", ["../etc/passwd", "/abs", "a/../../b", "UPPER", ""])
async def test_store_refuses_unsafe_key(store, key: str) -> None:
    with pytest.raises(ObjectStoreError, match="refusing object key"):
        await store.put(key, b"x", "text/plain")


async def test_s3_presigned_url_serves_object(s3_endpoint: str) -> None:
    settings = make_settings(
        s3_endpoint=s3_endpoint,
        s3_access_key="testing",
        s3_secret_key="testing",
        s3_secure=False,
        s3_bucket="presign-check",
    )
    store = create_object_store(settings)
    await store.put("images/pp/key.webp", b"RIFFdata", "image/webp")
    url = await store.presigned_url("images/pp/key.webp", timedelta(minutes=5))
    assert url is not None and "X-Amz-Signature" in url
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200
    assert response.content == b"RIFFdata"


async def test_filesystem_get_missing_raises(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    assert await store.presigned_url("a/b", timedelta(minutes=1)) is None
    with pytest.raises(ObjectStoreError, match="no object a/b"):
        await store.get("a/b")
