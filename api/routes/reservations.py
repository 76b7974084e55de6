import io
import json
import re
import uuid
from typing import Annotated, Any, Literal

import qrcode
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, ValidationError

from api import ratelimit
from api.auth import CurrentClient, CurrentPrincipal, CurrentStaff, managed_coworkings
from api.deps import ResourcesDep
from api.errors import InvalidInput, InvalidQuery, NotFound, describe_validation
from api.models.common import InDigits, Instant
from api.models.reservations import (
    RESERVATION_DOC,
    RESERVATIONS_DOC,
    CancelBody,
    CreateReservation,
    ReservationUpdate,
)
from api.resources import Resources
from api.services import reservations
from api.tokens import Principal

router = APIRouter(tags=["reservations"])

_VISIBLE_ASCII = re.compile(r"[!-~]+")


_KEY_WORDS = "1 to 200 visible ASCII characters, with no space (a UUID serves well)"


def _visible_ascii(value: str | None) -> str | None:
    # said in words: the schema's own errors show a regular expression, and
    # call a blank key (which HTTP trims to nothing) shorter than one character
    if value is not None and not (
        len(value) <= 200 and _VISIBLE_ASCII.fullmatch(value)
    ):
        raise ValueError(_KEY_WORDS)
    return value


# visible ASCII only: an empty or blank key would make every booking of a
# client that always sends one the same reservation
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        json_schema_extra={"pattern": "^[!-~]+$", "minLength": 1, "maxLength": 200},
    ),
    AfterValidator(_visible_ascii),
]
# the contract sets no maximum, so a larger limit is read as the page size,
# never refused: a client moves offset on by the rows it got, until none come
Limit = Annotated[
    int | None,
    InDigits,
    Query(
        ge=0,
        description=f"rows per page, at most {reservations.MAX_PAGE}; a larger"
        f" value gives {reservations.MAX_PAGE}",
    ),
]
ReservationStatus = Literal[
    "held", "confirmed", "checked_in", "completed", "cancelled", "expired", "no_show"
]
# an offset past what PostgreSQL counts in a bigint is refused, not a 500
Offset = Annotated[int | None, InDigits, Query(ge=0, le=10**12)]


async def _count_write(resources: Resources, principal: Principal) -> None:
    # staff act for many clients; a client's own writes are what floods come from
    if principal.kind == "client":
        await ratelimit.enforce_booking_rate(
            resources.settings, resources.valkey, principal.id
        )


def _as_list(items: list[reservations.ReservationView]) -> list[dict[str, Any]]:
    return [item.public() for item in items]


@router.post("/api/reservations", response_model=None, responses=RESERVATION_DOC)
async def create_reservation(
    body: CreateReservation,
    principal: CurrentPrincipal,
    resources: ResourcesDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    if principal.kind == "client":
        if body.client_id not in (None, principal.id):
            raise InvalidInput("client_id: a client books only for themselves")
        client_id = principal.id
    else:
        if body.client_id is None:
            raise InvalidInput("client_id: required when staff book for a client")
        await reservations.require_booking_scope(resources, principal, body.seat_id)
        client_id = body.client_id
    if body.ends_at <= body.starts_at:
        raise InvalidInput("ends_at: must be after starts_at")
    await _count_write(resources, principal)
    view = await reservations.book(
        resources,
        client_id=client_id,
        seat_id=body.seat_id,
        starts_at=body.starts_at,
        ends_at=body.ends_at,
        idempotency_key=idempotency_key,
        booked_by=None if principal.kind == "client" else principal.id,
    )
    return view.public()


@router.get("/api/reservations", response_model=None, responses=RESERVATIONS_DOC)
async def list_reservations(
    admin: CurrentStaff,
    resources: ResourcesDep,
    coworking_id: uuid.UUID | None = None,
    seat_id: uuid.UUID | None = None,
    client_id: uuid.UUID | None = None,
    status: ReservationStatus | None = None,
    starts_from: Instant | None = None,
    starts_before: Instant | None = None,
    limit: Limit = None,
    offset: Offset = None,
) -> list[dict[str, Any]]:
    if starts_from and starts_before and starts_before <= starts_from:
        # an empty window is a caller's mistake, not a day without bookings
        raise InvalidQuery("query.starts_before: must be after starts_from")
    items = await reservations.list_filtered(
        resources, admin,
        coworking_id=coworking_id, seat_id=seat_id, client_id=client_id,
        status=status, starts_from=starts_from, starts_before=starts_before,
        limit=limit, offset=offset,
    )  # fmt: skip
    return _as_list(items)


@router.get(
    "/api/reservations/{reservation_id}", response_model=None, responses=RESERVATION_DOC
)
async def get_reservation(
    reservation_id: uuid.UUID, principal: CurrentPrincipal, resources: ResourcesDep
) -> dict[str, Any]:
    return (await reservations.get(resources, principal, reservation_id)).public()


@router.delete(
    "/api/reservations/{reservation_id}",
    status_code=204,
    # read by hand below, since the contract's DELETE may come without a body
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": CancelBody.model_json_schema()}},
        }
    },
)
async def cancel_reservation(
    reservation_id: uuid.UUID,
    principal: CurrentPrincipal,
    resources: ResourcesDep,
    request: Request,
) -> Response:
    reason = ""
    if await request.body():
        try:
            reason = CancelBody.model_validate_json(await request.body()).reason
        except ValidationError as error:
            raise InvalidInput(describe_validation(list(error.errors()))) from None
    await _count_write(resources, principal)
    await reservations.cancel(resources, principal, reservation_id, reason=reason)
    return Response(status_code=204)


# Beside the contract: staff who pass the version they looked at are refused
# when the client moved the booking meanwhile, rather than approve a slot
# unseen; a move given one is refused when another came first.
SeenVersion = Annotated[
    int | None,
    InDigits,
    Query(
        ge=1,
        le=2**31 - 1,
        description="the reservation's version as staff saw it; a 409 if it"
        " has changed since",
    ),
]


@router.patch(
    "/api/reservations/{reservation_id}", response_model=None, responses=RESERVATION_DOC
)
async def reschedule_reservation(
    reservation_id: uuid.UUID,
    body: ReservationUpdate,
    principal: CurrentPrincipal,
    resources: ResourcesDep,
    version: SeenVersion = None,
) -> dict[str, Any]:
    if body.seat_id is None and body.starts_at is None and body.ends_at is None:
        raise InvalidInput("body: name at least one of seat_id, starts_at, ends_at")
    # as a booking is refused; an end given alone is checked against the
    # workflow's start, which only the workflow knows for sure
    if body.starts_at and body.ends_at and body.ends_at <= body.starts_at:
        raise InvalidInput("ends_at: must be after starts_at")
    await _count_write(resources, principal)
    view = await reservations.reschedule(
        resources, principal, reservation_id,
        seat_id=body.seat_id, starts_at=body.starts_at, ends_at=body.ends_at,
        expected_version=version,
    )  # fmt: skip
    return view.public()


async def _takes_no_body(request: Request) -> None:
    """The contract's staff actions take no body; one sent is refused, never
    dropped, as a version put there would protect nothing."""
    raw = await request.body()
    if not raw.strip():
        return
    try:
        sent = json.loads(raw)
    except ValueError:
        raise InvalidInput(
            "body: not valid JSON, and this operation takes none"
        ) from None
    if sent == {}:
        return
    first = next(iter(sent), "") if isinstance(sent, dict) else ""
    field = first if re.fullmatch(r"[a-z_]{1,40}", first) else "body"
    raise InvalidInput(
        f"{field}: this operation takes no body; the version staff saw goes in"
        " the query, as ?version="
    )


NoBody = Annotated[None, Depends(_takes_no_body)]


@router.post(
    "/api/reservations/{reservation_id}/confirm",
    response_model=None,
    responses=RESERVATION_DOC,
)
async def confirm_reservation(
    reservation_id: uuid.UUID,
    admin: CurrentStaff,
    _: NoBody,
    resources: ResourcesDep,
    version: SeenVersion = None,
) -> dict[str, Any]:
    view = await reservations.confirm(
        resources, admin, reservation_id, expected_version=version
    )
    return view.public()


@router.post(
    "/api/reservations/{reservation_id}/check-in",
    response_model=None,
    responses=RESERVATION_DOC,
)
async def check_in_reservation(
    reservation_id: uuid.UUID,
    admin: CurrentStaff,
    _: NoBody,
    resources: ResourcesDep,
    version: SeenVersion = None,
) -> dict[str, Any]:
    view = await reservations.confirm(
        resources, admin, reservation_id, check_in_only=True,
        expected_version=version,
    )  # fmt: skip
    return view.public()


@router.post("/api/reservations/{reservation_id}/notifications/retry", status_code=202)
async def retry_reservation_notification(
    reservation_id: uuid.UUID, admin: CurrentStaff, resources: ResourcesDep
) -> JSONResponse:
    await reservations.retry_notification(resources, admin, reservation_id)
    return JSONResponse({"status": "retry requested"}, status_code=202)


@router.get("/api/reservations/{reservation_id}/qr", response_class=Response)
async def reservation_qr(
    reservation_id: uuid.UUID, principal: CurrentPrincipal, resources: ResourcesDep
) -> Response:
    row = await reservations.load_authorized(resources, principal, reservation_id)
    # a code for a booking that has ended would only be turned away at the desk
    reservations.require_open(row, "show the check-in code of")
    image = qrcode.make(f"tlounge:reservation:{row['id']}", box_size=8, border=2)
    buffer = io.BytesIO()
    image.save(buffer)
    return Response(
        buffer.getvalue(),
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=300"},
    )


@router.get("/api/client/reservations", response_model=None, responses=RESERVATIONS_DOC)
async def get_client_reservations(
    client: CurrentClient,
    resources: ResourcesDep,
    limit: Limit = None,
    offset: Offset = None,
) -> list[dict[str, Any]]:
    items = await reservations.list_for_client(
        resources, client_id=client.id, limit=limit, offset=offset
    )
    return _as_list(items)


@router.get(
    "/api/client/{client_id}/reservations",
    response_model=None,
    responses=RESERVATIONS_DOC,
)
async def get_client_reservations_by_id(
    client_id: uuid.UUID,
    admin: CurrentStaff,
    resources: ResourcesDep,
    limit: Limit = None,
    offset: Offset = None,
) -> list[dict[str, Any]]:
    scope = await managed_coworkings(resources.pool, admin)
    exists = await resources.pool.fetchval(
        "SELECT 1 FROM client.clients WHERE id = $1", client_id
    )
    if not exists:
        raise NotFound("client_id: no such client")
    items = await reservations.list_for_client(
        resources, client_id=client_id, limit=limit, offset=offset, scope=scope
    )
    return _as_list(items)
