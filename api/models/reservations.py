"""Request bodies of the reservation operations (the contract's, with additions)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.models.common import BookingInstant, SafeText


class CreateReservation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seat_id: uuid.UUID
    # a time without an offset is refused, never read as UTC
    starts_at: BookingInstant
    ends_at: BookingInstant
    # beside the contract: an admin books on behalf of a client
    client_id: uuid.UUID | None = None


class ReservationUpdate(BaseModel):
    # an empty change is refused; the schema says so, for generated clients
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    seat_id: uuid.UUID | None = None
    starts_at: BookingInstant | None = None
    ends_at: BookingInstant | None = None


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # it reaches the database, the workflow's history and the client's mail
    reason: Annotated[str, SafeText(max_length=200)] = ""


# The answers below are built by the service as plain JSON; these models only
# describe them in the OpenAPI document, for generated clients and /docs.


class SlotPublic(BaseModel):
    seat_id: uuid.UUID
    starts_at: str = Field(json_schema_extra={"format": "date-time"})
    ends_at: str = Field(json_schema_extra={"format": "date-time"})


class ReservationPublic(BaseModel):
    """The contract's Reservation, with what T-Lounge adds beside it."""

    id: uuid.UUID
    client_id: uuid.UUID
    seat_id: uuid.UUID
    starts_at: str = Field(
        json_schema_extra={"format": "date-time"}, description="RFC 3339, in UTC"
    )
    ends_at: str = Field(
        json_schema_extra={"format": "date-time"}, description="RFC 3339, in UTC"
    )
    cancelled: bool = Field(
        description="the contract's flag: true once the seat was released"
        " (cancelled, expired or no-show)"
    )
    status: Literal[
        "held", "confirmed", "checked_in", "completed", "cancelled", "expired",
        "no_show",
    ]  # fmt: skip
    coworking_id: uuid.UUID | None
    version: int = Field(
        description="counts the booking's changes; staff pass it as ?version="
        " to confirm or check in only what they saw"
    )
    notification_status: Literal["none", "pending", "sent", "failed"] | None = Field(
        description="the client's mail about this booking; null when unknown"
        " (its workflow could not be asked)"
    )
    cancel_reason: str | None
    hold_expires_at: str | None = Field(
        json_schema_extra={"format": "date-time"},
        description="while held, when it expires unless staff confirm it",
    )
    fallback: SlotPublic | None = Field(
        description="while a client's move waits for staff, the seat and time"
        " staff confirmed, still kept"
    )


RESERVATION_DOC: dict[int | str, dict[str, Any]] = {
    200: {"model": ReservationPublic, "description": "The reservation"}
}
RESERVATIONS_DOC: dict[int | str, dict[str, Any]] = {
    200: {"model": list[ReservationPublic], "description": "The reservations"}
}
