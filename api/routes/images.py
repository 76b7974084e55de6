"""Photos of a coworking and of its seats, and the stream that serves them."""

from collections.abc import AsyncGenerator
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Request, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from api.auth import OptionalViewer, require_coworking_write
from api.deps import PoolDep, SettingsDep, StoreDep
from api.errors import InvalidInput, PayloadTooLarge, UnsupportedMedia
from api.models.images import ImagePublic
from api.routes.coworkings import (
    DEFAULT_COWORKING,
    OPTIONAL_ADMIN_DOC,
    PATH_COWORKING,
    require_visible,
    staff_let_in,
)
from api.services import images as service
from api.tokens import Principal

# room for the multipart boundaries and part headers around the file itself
_MULTIPART_SLACK = 16 * 1024
_UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


async def read_upload(request: Request, *, max_bytes: int) -> bytes:
    """The `file` part of a multipart body, never reading far past `max_bytes`."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMedia(
            "body: send the image as multipart/form-data, field file"
        )
    budget = max_bytes + _MULTIPART_SLACK
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > budget:
        raise PayloadTooLarge(f"file: larger than {max_bytes} bytes")

    async def limited() -> AsyncGenerator[bytes, None]:
        # a chunked body has no length to check up front; count as it comes
        seen = 0
        async for chunk in request.stream():
            seen += len(chunk)
            if seen > budget:
                raise PayloadTooLarge(f"file: larger than {max_bytes} bytes")
            yield chunk

    parser = MultiPartParser(request.headers, limited(), max_files=1, max_fields=5)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise InvalidInput(f"body: {error.message}") from None
    try:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput(
                "file: missing; send the image in a multipart field named file"
            )
        # as a JSON body's unknown field is refused, so is a form's
        unknown = sorted(set(form.keys()) - {"file"})
        if unknown:
            raise InvalidInput(
                f"{unknown[0]}: not a field of an upload; send the image alone,"
                " in a field named file"
            )
        data = await upload.read(max_bytes + 1)
    finally:
        await form.close()
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"file: larger than {max_bytes} bytes")
    if not data:
        raise InvalidInput("file: empty")
    return data


def scoped_router(prefix: str, coworking: Any) -> APIRouter:
    router = APIRouter(prefix=prefix, tags=["images"])
    CoworkingId = Annotated[UUID, coworking]
    Writer = Annotated[Principal, staff_let_in(coworking, require_coworking_write)]

    async def upload_image(
        request: Request, pool: PoolDep, store: StoreDep, settings: SettingsDep,
        coworking_id: CoworkingId, who: Writer, seat_id: UUID | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        data = await read_upload(request, max_bytes=settings.image_max_bytes)
        return await service.add_image(
            pool, store, coworking_id=coworking_id, seat_id=seat_id, data=data,
            max_pixels=settings.image_max_pixels,
        )  # fmt: skip

    async def list_images(
        pool: PoolDep,
        store: StoreDep,
        coworking_id: CoworkingId,
        viewer: OptionalViewer,
        seat_id: UUID | None = None,
    ) -> list[dict[str, Any]]:
        await require_visible(pool, viewer, coworking_id)
        return await service.list_images(
            pool, store, coworking_id=coworking_id, seat_id=seat_id
        )

    async def reorder_images(
        pool: PoolDep, store: StoreDep, coworking_id: CoworkingId,
        who: Writer, image_ids: Annotated[list[UUID], Body(max_length=1000)],
        seat_id: UUID | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        return await service.reorder_images(
            pool, store, coworking_id=coworking_id, seat_id=seat_id, image_ids=image_ids
        )

    async def delete_image(
        pool: PoolDep, store: StoreDep, coworking_id: CoworkingId, image_id: UUID,
        who: Writer, seat_id: UUID | None = None,
    ) -> Response:  # fmt: skip
        await service.delete_image(
            pool, store, coworking_id=coworking_id, seat_id=seat_id, image_id=image_id
        )
        return Response(status_code=204)

    # the same bodies serve the coworking's photos and a seat's
    for base in ("/images", "/seats/{seat_id}/images"):
        router.add_api_route(
            base, upload_image, methods=["POST"], status_code=201,
            response_model=ImagePublic, openapi_extra=_UPLOAD_DOC,
        )  # fmt: skip
        router.add_api_route(
            base, list_images, methods=["GET"], response_model=list[ImagePublic],
            openapi_extra=OPTIONAL_ADMIN_DOC,
        )  # fmt: skip
        router.add_api_route(
            f"{base}/order", reorder_images, methods=["PUT"],
            response_model=list[ImagePublic],
        )  # fmt: skip
        router.add_api_route(
            # typed in the path, so `order` is not taken for an id
            f"{base}/{{image_id:uuid}}",
            delete_image,
            methods=["DELETE"],
            status_code=204,
        )
    return router


router = APIRouter()
router.include_router(scoped_router("/api/coworking", DEFAULT_COWORKING))
router.include_router(scoped_router("/api/coworkings/{coworking_id}", PATH_COWORKING))


@router.get("/api/images/{image_id}", tags=["images"])
async def read_image(pool: PoolDep, store: StoreDep, image_id: UUID) -> Response:
    data, content_type = await service.read_image(pool, store, image_id)
    return Response(
        data,
        media_type=content_type,
        headers={
            "X-Content-Type-Options": "nosniff",
            # the key is the content's hash, so what an id shows never changes
            "Cache-Control": "public, max-age=86400",
            "Content-Security-Policy": "default-src 'none'",
        },
    )
