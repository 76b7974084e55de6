from pathlib import Path

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


async def test_filesystem_get_missing_raises(tmp_path: Path) -> None:
    store = FilesystemStore(tmp_path)
    with pytest.raises(ObjectStoreError, match="no object a/b"):
        await store.get("a/b")
