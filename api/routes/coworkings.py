"""Coworkings, seats, closures, clients of a day and availability.

The contract's singular paths (/api/coworking/...) and T-Lounge's own
(/api/coworkings/{coworking_id}/...) are the same routes, built once by
`scoped_router` and registered twice: they differ only in how the coworking
is found.
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from api.auth import (
    CurrentStaff,
    OptionalViewer,
    Owner,
    managed_coworkings,
    require_coworking_write,
    require_role,
)
from api.deps import PoolDep, SettingsDep, StoreDep, ValkeyDep, gate, judge_query
from api.errors import Forbidden, InvalidQuery, NotFound
from api.models.common import InDigits, Instant, SearchText
from api.models.coworkings import (
    AvailabilityPublic,
    ClientPublic,
    ClosureCreate,
    ClosurePublic,
    ClosureUpdate,
    CoworkingCreate,
    CoworkingPublic,
    CoworkingUpdate,
    SeatCreate,
    SeatFeature,
    SeatPublic,
    SeatUpdate,
)
from api.services import availability as availability_service
from api.services import coworkings as service
from api.services import images as image_service
from api.services.coworkings import MAX_BULK_SEATS as MAX_BULK
from api.tokens import Principal

# the contract sets no maximum, so a larger limit is read as the page size,
# never refused: a client moves offset on by the rows it got, until none come
Limit = Annotated[
    int | None,
    InDigits,
    Query(
        ge=0,
        description=f"rows per page, at most {service.MAX_PAGE}; a larger"
        f" value gives {service.MAX_PAGE}",
    ),
]
Offset = Annotated[int | None, InDigits, Query(ge=0, le=10**12)]


def _now() -> datetime:
    return datetime.now(UTC)


# added to the generated admin requirement: `{}` says anyone may call without one
OPTIONAL_ADMIN_DOC: dict[str, Any] = {"security": [{}]}


async def can_read_all(
    pool: PoolDep, viewer: Principal | None, coworking_id: UUID
) -> bool:
    """Whether the viewer sees the coworking's inactive and staff-only parts."""
    if viewer is None or viewer.kind != "admin":
        return False
    scope = await managed_coworkings(pool, viewer)
    return scope is None or coworking_id in scope


async def require_visible(
    pool: PoolDep, viewer: Principal | None, coworking_id: UUID
) -> None:
    """A 404, as for no coworking at all, where an inactive one is hidden from
    the viewer; an unknown coworking is left to the operation's own 404."""
    active = await pool.fetchval(
        "SELECT active FROM coworking.coworkings WHERE id = $1", coworking_id
    )
    if active is False and not await _can_see(pool, viewer, coworking_id):
        raise NotFound(f"coworking_id: no coworking {coworking_id}")


async def _can_see(pool: PoolDep, viewer: Principal | None, coworking_id: UUID) -> bool:
    """Whether an inactive coworking and its seats are shown to the viewer: its
    staff, and a client with a booking there, whose app must still show where
    and which seat."""
    if viewer is not None and viewer.kind == "client":
        return bool(
            await pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM reservation.reservations"
                " WHERE client_id = $1 AND coworking_id = $2)",
                viewer.id,
                coworking_id,
            )  # fmt: skip
        )
    return await can_read_all(pool, viewer, coworking_id)


async def require_coworking_read(
    pool: PoolDep, who: Principal, coworking_id: UUID
) -> None:
    if who.kind != "admin" or not await can_read_all(pool, who, coworking_id):
        raise Forbidden("This coworking is outside your scope")


async def _default_coworking(pool: PoolDep, settings: SettingsDep) -> UUID:
    return await service.default_coworking_id(pool, settings)


async def _path_coworking(coworking_id: UUID) -> UUID:
    return coworking_id


DEFAULT_COWORKING = Depends(_default_coworking)
PATH_COWORKING = Depends(_path_coworking)


def staff_let_in(
    coworking: Any, require: Callable[[Any, Principal, UUID], Awaitable[None]]
) -> Any:
    """The staff member `require` lets at the coworking, as a dependency: a
    manager out of scope is told so before the body or query is checked,
    rather than how to mend a request that would still be refused."""

    @gate
    async def let_in(
        request: Request,
        pool: PoolDep,
        coworking_id: Annotated[UUID, coworking],
        who: CurrentStaff,
    ) -> Principal:
        await require(pool, who, coworking_id)
        judge_query(request, let_in)
        return who

    return Depends(let_in)


def scoped_router(prefix: str, coworking: Any) -> APIRouter:
    """Every operation on one coworking, found by the `coworking` dependency."""
    router = APIRouter(prefix=prefix, tags=["coworkings"])
    CoworkingId = Annotated[UUID, coworking]
    Writer = Annotated[Principal, staff_let_in(coworking, require_coworking_write)]
    Reader = Annotated[Principal, staff_let_in(coworking, require_coworking_read)]

    @router.get("", response_model=CoworkingPublic, openapi_extra=OPTIONAL_ADMIN_DOC)
    async def read_coworking(
        pool: PoolDep, coworking_id: CoworkingId, viewer: OptionalViewer
    ) -> dict[str, Any]:
        show = await _can_see(pool, viewer, coworking_id)
        return await service.get_coworking(
            pool, coworking_id, show_inactive=show, now=_now()
        )

    @router.patch("", response_model=CoworkingPublic)
    async def update_coworking(
        pool: PoolDep,
        kv: ValkeyDep,
        coworking_id: CoworkingId,
        who: Writer,
        body: CoworkingUpdate,
    ) -> dict[str, Any]:
        return await service.update_coworking(pool, kv, coworking_id, body, now=_now())

    @router.get(
        "/seats", response_model=list[SeatPublic], openapi_extra=OPTIONAL_ADMIN_DOC
    )
    async def list_seats(
        pool: PoolDep,
        coworking_id: CoworkingId,
        viewer: OptionalViewer,
        limit: Limit = None,
        offset: Offset = None,
    ) -> list[dict[str, Any]]:
        show = await _can_see(pool, viewer, coworking_id)
        return await service.list_seats(
            pool, coworking_id, limit=limit, offset=offset, show_inactive=show
        )

    @router.post("/seats", response_model=SeatPublic, status_code=201)
    async def create_seat(
        pool: PoolDep, kv: ValkeyDep, coworking_id: CoworkingId, who: Writer,
        body: SeatCreate,
    ) -> dict[str, Any]:  # fmt: skip
        (created,) = await service.create_seats(pool, kv, coworking_id, [body])
        return created

    @router.post("/seats/bulk", response_model=list[SeatPublic], status_code=201)
    async def create_seats(
        pool: PoolDep, kv: ValkeyDep, coworking_id: CoworkingId, who: Writer,
        body: Annotated[list[SeatCreate], Body(min_length=1, max_length=MAX_BULK)],
    ) -> list[dict[str, Any]]:  # fmt: skip
        return await service.create_seats(pool, kv, coworking_id, body)

    @router.get("/seats/{seat_id:uuid}", response_model=SeatPublic)
    async def read_seat(
        pool: PoolDep, coworking_id: CoworkingId, seat_id: UUID, who: CurrentStaff
    ) -> dict[str, Any]:
        # the contract gives this one to admins only; the list is public
        require_role(who, "owner", "manager", "support")
        # and hidden, with its coworking, where that is inactive and not theirs:
        # in the words of a missing seat, as an unknown coworking answers here
        try:
            await require_visible(pool, who, coworking_id)
        except NotFound:
            raise NotFound(f"seat_id: no seat {seat_id} in this coworking") from None
        return await service.get_seat(pool, coworking_id, seat_id)

    @router.patch("/seats/{seat_id:uuid}", response_model=SeatPublic)
    async def update_seat(
        pool: PoolDep, kv: ValkeyDep, coworking_id: CoworkingId, seat_id: UUID,
        who: Writer, body: SeatUpdate,
    ) -> dict[str, Any]:  # fmt: skip
        return await service.update_seat(pool, kv, coworking_id, seat_id, body)

    @router.delete("/seats/{seat_id:uuid}", status_code=204)
    async def delete_seat(
        pool: PoolDep, kv: ValkeyDep, store: StoreDep, coworking_id: CoworkingId,
        seat_id: UUID, who: Writer,
    ) -> Response:  # fmt: skip
        keys = await service.delete_seat(pool, kv, coworking_id, seat_id, now=_now())
        await image_service.forget_objects(pool, store, keys)
        return Response(status_code=204)

    @router.get("/clients", response_model=list[ClientPublic])
    async def list_clients(
        pool: PoolDep,
        coworking_id: CoworkingId,
        who: Reader,
        # bounded loosely: the calendar's own check names the day, month or
        # year that does not exist, in one wording whatever the value
        day: Annotated[int | None, InDigits, Query(ge=0, le=99999)] = None,
        month: Annotated[int | None, InDigits, Query(ge=0, le=99999)] = None,
        year: Annotated[int | None, InDigits, Query(ge=0, le=99999)] = None,
        limit: Limit = None,
        offset: Offset = None,
    ) -> list[dict[str, Any]]:
        return await service.clients_on_day(
            pool, coworking_id, day=day, month=month, year=year,
            limit=limit, offset=offset, now=_now(),
        )  # fmt: skip

    @router.get("/closures", response_model=list[ClosurePublic])
    async def list_closures(
        pool: PoolDep,
        coworking_id: CoworkingId,
        who: Reader,
        from_: Annotated[Instant | None, Query(alias="from")] = None,
        to: Instant | None = None,
        limit: Limit = None,
        offset: Offset = None,
    ) -> list[dict[str, Any]]:
        if from_ and to and to <= from_:
            raise InvalidQuery("query.to: must be after from")
        return await service.list_closures(
            pool, coworking_id, start=from_, end=to, limit=limit, offset=offset
        )

    @router.post("/closures", response_model=ClosurePublic, status_code=201)
    async def create_closure(
        pool: PoolDep, kv: ValkeyDep, coworking_id: CoworkingId, who: Writer,
        body: ClosureCreate,
    ) -> dict[str, Any]:  # fmt: skip
        return await service.create_closure(pool, kv, coworking_id, body, now=_now())

    @router.get("/closures/{closure_id}", response_model=ClosurePublic)
    async def read_closure(
        pool: PoolDep,
        coworking_id: CoworkingId,
        closure_id: UUID,
        who: Reader,
    ) -> dict[str, Any]:
        return await service.get_closure(pool, coworking_id, closure_id)

    @router.patch("/closures/{closure_id}", response_model=ClosurePublic)
    async def update_closure(
        pool: PoolDep, kv: ValkeyDep, coworking_id: CoworkingId, closure_id: UUID,
        who: Writer, body: ClosureUpdate,
    ) -> dict[str, Any]:  # fmt: skip
        return await service.update_closure(
            pool, kv, coworking_id, closure_id, body, now=_now()
        )

    @router.delete("/closures/{closure_id}", status_code=204)
    async def delete_closure(
        pool: PoolDep, kv: ValkeyDep, coworking_id: CoworkingId, closure_id: UUID,
        who: Writer,
    ) -> Response:  # fmt: skip
        await service.delete_closure(pool, kv, coworking_id, closure_id)
        return Response(status_code=204)

    async def _availability(
        pool: PoolDep,
        kv: ValkeyDep,
        coworking_id: CoworkingId,
        viewer: OptionalViewer,
        from_: Annotated[Instant, Query(alias="from")],
        to: Instant,
        type: Literal["OpenSpace", "Cabin", "Room"] | None = None,  # noqa: A002
        features: Annotated[list[SeatFeature] | None, Query()] = None,
        seat_id: UUID | None = None,
    ) -> dict[str, Any]:
        async def shown_inactive() -> bool:
            return await _can_see(pool, viewer, coworking_id)

        return await availability_service.availability(
            pool, kv, coworking_id, start=from_, end=to, now=_now(), kind=type,
            features=list(features or []), seat_id=seat_id,
            shown_inactive=shown_inactive,
        )  # fmt: skip

    # one body for the coworking and for one seat: {seat_id} fills seat_id
    for path in ("/availability", "/seats/{seat_id}/availability"):
        router.add_api_route(
            path,
            _availability,
            methods=["GET"],
            response_model=AvailabilityPublic,
            openapi_extra=OPTIONAL_ADMIN_DOC,
        )
    return router


collection = APIRouter(prefix="/api/coworkings", tags=["coworkings"])


@collection.get(
    "", response_model=list[CoworkingPublic], openapi_extra=OPTIONAL_ADMIN_DOC
)
async def list_coworkings(
    pool: PoolDep,
    viewer: OptionalViewer,
    name: Annotated[SearchText | None, Query()] = None,
    city: Annotated[SearchText | None, Query()] = None,
    limit: Limit = None,
    offset: Offset = None,
) -> list[dict[str, Any]]:
    # staff find the coworkings they run among the rest, active or not
    inactive: set[UUID] | None = set()
    if viewer is not None and viewer.kind == "admin":
        inactive = await managed_coworkings(pool, viewer)
    return await service.list_coworkings(
        pool, name=name, city=city, limit=limit, offset=offset, now=_now(),
        inactive_shown=inactive,
    )  # fmt: skip


@collection.post("", response_model=CoworkingPublic, status_code=201)
async def create_coworking(
    pool: PoolDep, who: Owner, body: CoworkingCreate
) -> dict[str, Any]:
    return await service.create_coworking(pool, body, now=_now())


router = APIRouter()
router.include_router(collection)
router.include_router(scoped_router("/api/coworking", DEFAULT_COWORKING))
router.include_router(scoped_router("/api/coworkings/{coworking_id}", PATH_COWORKING))
