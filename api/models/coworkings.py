"""Request and response shapes for coworkings, seats, closures and availability.

The contract's fields (Coworking, CoworkingUpdate, CreateSeat, SeatUpdate,
Seat, Client) keep their names and limits; everything T-Lounge adds is an
optional field beside them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    WithJsonSchema,
)

from api.booking_rules import (
    HHMM_PATTERN,
    MAX_INTERVALS_PER_DAY,
    WEEKDAYS,
    parse_opening_hours,
    validate_timezone,
)
from api.models.common import BookingInstant, SafeText

SEAT_KINDS = ("OpenSpace", "Cabin", "Room")
MAX_CAPACITY = 1000
MAX_POSITION = 1_000_000.0


def _seat_type(value: Any) -> Any:
    """The contract's SeatType: "OpenSpace", {"Cabin": n} or {"Room": n}."""
    if value == "OpenSpace":
        return value
    if isinstance(value, dict) and len(value) == 1:
        ((kind, capacity),) = value.items()
        if kind in ("Cabin", "Room"):
            if type(capacity) is not int or not 0 <= capacity <= MAX_CAPACITY:
                raise ValueError(f"{kind} capacity must be an integer 0-{MAX_CAPACITY}")
            return {kind: capacity}
    raise ValueError('expected "OpenSpace", {"Cabin": capacity} or {"Room": capacity}')


def _opening_hours(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError('expected {"mon": [["08:00", "20:00"]], ...} or null')
    return parse_opening_hours(value)


_SEAT_TYPE_SCHEMA = {
    "oneOf": [
        {"type": "string", "enum": ["OpenSpace"]},
        {"type": "object", "required": ["Cabin"],
         "properties": {"Cabin": {"type": "integer", "minimum": 0}}},
        {"type": "object", "required": ["Room"],
         "properties": {"Room": {"type": "integer", "minimum": 0}}},
    ]
}  # fmt: skip

SeatType = Annotated[
    Any, BeforeValidator(_seat_type), WithJsonSchema(_SEAT_TYPE_SCHEMA)
]
SeatFeature = Literal["Monitor", "Laptop"]


def _each_once(features: list[str]) -> list[str]:
    repeated = sorted({f for f in features if features.count(f) > 1})
    if repeated:
        raise ValueError(f"{', '.join(repeated)} listed more than once")
    return features


Features = Annotated[
    list[SeatFeature], Field(max_length=24), AfterValidator(_each_once)
]
Name = Annotated[str, SafeText(min_length=1, max_length=50)]
Address = Annotated[str, SafeText(min_length=1, max_length=100)]
City = Annotated[str, SafeText(max_length=50)]
Reason = Annotated[str, SafeText(max_length=200)]
TimeZone = Annotated[str, AfterValidator(validate_timezone)]
_INTERVAL_SCHEMA = {
    "type": "array", "minItems": 2, "maxItems": 2,
    "prefixItems": [
        {"type": "string", "pattern": HHMM_PATTERN},
        {"type": "string", "pattern": r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$"},
    ],
}  # fmt: skip
_OPENING_HOURS_SCHEMA = {
    "anyOf": [
        {"type": "object", "additionalProperties": False,
         "properties": {day: {"type": "array", "maxItems": MAX_INTERVALS_PER_DAY,
                              "items": _INTERVAL_SCHEMA} for day in WEEKDAYS}},
        {"type": "null"},
    ]
}  # fmt: skip
OpeningHoursField = Annotated[
    dict[str, list[list[str]]] | None,
    BeforeValidator(_opening_hours),
    WithJsonSchema(_OPENING_HOURS_SCHEMA),
]
# strict: true is not a cost of 1, nor "7" seat number 7; NaN is no number at all
# a cent at least: 1e-300 is no price
Cost = Annotated[float, Field(ge=0.01, le=1_000_000, strict=True, allow_inf_nan=False)]
SeatNumber = Annotated[int, Field(ge=1, le=1000, strict=True)]
Position = Annotated[
    float,
    Field(ge=-MAX_POSITION, le=MAX_POSITION, strict=True, allow_inf_nan=False),
]


def seat_type_json(kind: str, capacity: int) -> Any:
    return kind if kind == "OpenSpace" else {kind: capacity}


def seat_kind(value: Any) -> tuple[str, int]:
    """(kind, capacity) columns for a checked SeatType."""
    if value == "OpenSpace":
        return "OpenSpace", 1
    ((kind, capacity),) = value.items()
    return kind, capacity


def _divides_a_day(minutes: int | None) -> int | None:
    # the grid starts again at each local midnight: a length that does not
    # divide the day leaves a short last slot before it
    if minutes is not None and 1440 % minutes:
        raise ValueError(
            f"{minutes} does not divide a day (1440 minutes); use a divisor"
            " such as 15, 30, 60 or 90"
        )
    return minutes


class RuleFields(BaseModel):
    """Booking rules, all optional: new beside the contract."""

    model_config = ConfigDict(extra="forbid")

    slot_minutes: Annotated[
        int | None,
        Field(strict=True, ge=5, le=1440, multiple_of=5),
        AfterValidator(_divides_a_day),
    ] = None
    min_duration_minutes: int | None = Field(None, strict=True, ge=5, le=7 * 1440)
    max_duration_minutes: int | None = Field(None, strict=True, ge=5, le=7 * 1440)
    max_days_ahead: int | None = Field(None, strict=True, ge=1, le=730)
    max_active_per_client: int | None = Field(None, strict=True, ge=1, le=1000)
    auto_confirm: StrictBool | None = None
    hold_minutes: int | None = Field(None, strict=True, ge=1, le=7 * 1440)
    reminder_lead_minutes: int | None = Field(None, strict=True, ge=0, le=7 * 1440)
    # null: no check-in deadline; a client who does not come keeps the seat
    checkin_grace_minutes: int | None = Field(
        None,
        strict=True,
        ge=1,
        le=1440,
        description="minutes after the start by which someone must check in, or"
        " the rest of the slot is released (no_show); null for no such release",
    )


class CoworkingCreate(RuleFields):
    name: Name
    address: Address
    city: City = ""
    timezone: TimeZone = "UTC"
    opening_hours: OpeningHoursField = None
    active: StrictBool = True


class CoworkingUpdate(RuleFields):
    """A null name or address leaves it as it is (the contract's reading);
    a null opening_hours or checkin_grace_minutes sets it to null."""

    name: Name | None = None
    address: Address | None = None
    city: City | None = None
    timezone: TimeZone | None = None
    opening_hours: OpeningHoursField = None
    active: StrictBool | None = None


class SeatStats(BaseModel):
    available: int
    total: int


class CoworkingPublic(BaseModel):
    id: UUID
    name: str
    address: str
    seats: SeatStats
    city: str
    timezone: str
    opening_hours: dict[str, list[list[str]]] | None
    slot_minutes: int
    min_duration_minutes: int
    max_duration_minutes: int
    max_days_ahead: int
    max_active_per_client: int
    auto_confirm: bool
    hold_minutes: int
    reminder_lead_minutes: int
    checkin_grace_minutes: int | None
    active: bool


class SeatCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: SeatType
    number: SeatNumber
    features: Features
    cost: Cost
    internal_only: StrictBool = False
    active: StrictBool = True
    pos_x: Position | None = None
    pos_y: Position | None = None


class SeatUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # the contract makes features required even in an edit
    features: Features
    type: SeatType | None = None
    number: SeatNumber | None = None
    cost: Cost | None = None
    internal_only: StrictBool | None = None
    active: StrictBool | None = None
    pos_x: Position | None = None
    pos_y: Position | None = None


class SeatPublic(BaseModel):
    id: UUID
    coworking_id: UUID
    type: SeatType
    number: int
    features: list[str]
    cost: float
    internal_only: bool
    active: bool
    pos_x: float | None
    pos_y: float | None


class ClosureCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seat_id: UUID | None = None
    starts_at: BookingInstant
    ends_at: BookingInstant
    reason: Reason = ""


class ClosureUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: BookingInstant | None = None
    ends_at: BookingInstant | None = None
    reason: Reason | None = None


class ClosurePublic(BaseModel):
    id: UUID
    coworking_id: UUID
    seat_id: UUID | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_at: datetime


class ClientPublic(BaseModel):
    """The contract's Client."""

    id: UUID
    email: str
    name: str
    surname: str
    patronymic: str
    send_notifications: bool
    is_internal: bool
    verified: bool


class FreeInterval(BaseModel):
    starts_at: datetime
    ends_at: datetime


class SeatAvailability(BaseModel):
    seat_id: UUID
    number: int
    type: SeatType
    features: list[str]
    internal_only: bool
    free: list[FreeInterval]


class AvailabilityPublic(BaseModel):
    coworking_id: UUID
    timezone: str
    slot_minutes: int
    from_: datetime = Field(alias="from")
    to: datetime
    seats: list[SeatAvailability]

    model_config = {"populate_by_name": True}
