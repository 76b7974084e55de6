"""Request bodies of the reservation operations (the contract's, with additions)."""

from __future__ import annotations

import uuid

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field


def _text_only(value: object) -> object:
    # epoch numbers would pass as UTC instants; the contract says RFC 3339 text
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 date-time string with an offset")
    return value


def _sane_year(value: datetime) -> datetime:
    if not 2000 <= value.year <= 2200:
        raise ValueError("must lie between the years 2000 and 2200")
    return value


Instant = Annotated[AwareDatetime, BeforeValidator(_text_only), AfterValidator(_sane_year)]


class CreateReservation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seat_id: uuid.UUID
    # a time without an offset is refused, never read as UTC
    starts_at: Instant
    ends_at: Instant
    # beside the contract: an admin books on behalf of a client
    client_id: uuid.UUID | None = None


class ReservationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seat_id: uuid.UUID | None = None
    starts_at: Instant | None = None
    ends_at: Instant | None = None


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=200)
