"""Request bodies of the reservation operations (the contract's, with additions)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, ConfigDict

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
