import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReservationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESERVATION_STATUS_UNSPECIFIED: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_HELD: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_CONFIRMED: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_CHECKED_IN: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_COMPLETED: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_CANCELLED: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_EXPIRED: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_NO_SHOW: _ClassVar[ReservationStatus]
    RESERVATION_STATUS_REJECTED: _ClassVar[ReservationStatus]

class HoldOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOLD_OUTCOME_UNSPECIFIED: _ClassVar[HoldOutcome]
    HOLD_OUTCOME_HELD: _ClassVar[HoldOutcome]
    HOLD_OUTCOME_CONFLICT: _ClassVar[HoldOutcome]
    HOLD_OUTCOME_REJECTED: _ClassVar[HoldOutcome]

class NotificationStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_STATUS_UNSPECIFIED: _ClassVar[NotificationStatus]
    NOTIFICATION_STATUS_NONE: _ClassVar[NotificationStatus]
    NOTIFICATION_STATUS_PENDING: _ClassVar[NotificationStatus]
    NOTIFICATION_STATUS_SENT: _ClassVar[NotificationStatus]
    NOTIFICATION_STATUS_FAILED: _ClassVar[NotificationStatus]

class MailKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MAIL_KIND_UNSPECIFIED: _ClassVar[MailKind]
    MAIL_KIND_CONFIRMATION: _ClassVar[MailKind]
    MAIL_KIND_REMINDER: _ClassVar[MailKind]
    MAIL_KIND_CANCELLATION: _ClassVar[MailKind]
    MAIL_KIND_RESCHEDULE: _ClassVar[MailKind]
    MAIL_KIND_EXPIRED: _ClassVar[MailKind]
    MAIL_KIND_NO_SHOW: _ClassVar[MailKind]
RESERVATION_STATUS_UNSPECIFIED: ReservationStatus
RESERVATION_STATUS_HELD: ReservationStatus
RESERVATION_STATUS_CONFIRMED: ReservationStatus
RESERVATION_STATUS_CHECKED_IN: ReservationStatus
RESERVATION_STATUS_COMPLETED: ReservationStatus
RESERVATION_STATUS_CANCELLED: ReservationStatus
RESERVATION_STATUS_EXPIRED: ReservationStatus
RESERVATION_STATUS_NO_SHOW: ReservationStatus
RESERVATION_STATUS_REJECTED: ReservationStatus
HOLD_OUTCOME_UNSPECIFIED: HoldOutcome
HOLD_OUTCOME_HELD: HoldOutcome
HOLD_OUTCOME_CONFLICT: HoldOutcome
HOLD_OUTCOME_REJECTED: HoldOutcome
NOTIFICATION_STATUS_UNSPECIFIED: NotificationStatus
NOTIFICATION_STATUS_NONE: NotificationStatus
NOTIFICATION_STATUS_PENDING: NotificationStatus
NOTIFICATION_STATUS_SENT: NotificationStatus
NOTIFICATION_STATUS_FAILED: NotificationStatus
MAIL_KIND_UNSPECIFIED: MailKind
MAIL_KIND_CONFIRMATION: MailKind
MAIL_KIND_REMINDER: MailKind
MAIL_KIND_CANCELLATION: MailKind
MAIL_KIND_RESCHEDULE: MailKind
MAIL_KIND_EXPIRED: MailKind
MAIL_KIND_NO_SHOW: MailKind

class BookingRules(_message.Message):
    __slots__ = ("auto_confirm", "hold_minutes", "reminder_lead_minutes", "checkin_grace_minutes", "timezone")
    AUTO_CONFIRM_FIELD_NUMBER: _ClassVar[int]
    HOLD_MINUTES_FIELD_NUMBER: _ClassVar[int]
    REMINDER_LEAD_MINUTES_FIELD_NUMBER: _ClassVar[int]
    CHECKIN_GRACE_MINUTES_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    auto_confirm: bool
    hold_minutes: int
    reminder_lead_minutes: int
    checkin_grace_minutes: int
    timezone: str
    def __init__(self, auto_confirm: _Optional[bool] = ..., hold_minutes: _Optional[int] = ..., reminder_lead_minutes: _Optional[int] = ..., checkin_grace_minutes: _Optional[int] = ..., timezone: _Optional[str] = ...) -> None: ...

class ReservationInput(_message.Message):
    __slots__ = ("reservation_id", "client_id", "seat_id", "starts_at", "ends_at", "request_hash", "mail_task_queue", "announced_status", "announced_notification", "revision")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HASH_FIELD_NUMBER: _ClassVar[int]
    MAIL_TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCED_STATUS_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCED_NOTIFICATION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    client_id: str
    seat_id: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    request_hash: str
    mail_task_queue: str
    announced_status: str
    announced_notification: str
    revision: int
    def __init__(self, reservation_id: _Optional[str] = ..., client_id: _Optional[str] = ..., seat_id: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., request_hash: _Optional[str] = ..., mail_task_queue: _Optional[str] = ..., announced_status: _Optional[str] = ..., announced_notification: _Optional[str] = ..., revision: _Optional[int] = ...) -> None: ...

class HoldRequest(_message.Message):
    __slots__ = ("request_hash",)
    REQUEST_HASH_FIELD_NUMBER: _ClassVar[int]
    request_hash: str
    def __init__(self, request_hash: _Optional[str] = ...) -> None: ...

class Conflict(_message.Message):
    __slots__ = ("starts_at", "ends_at", "scope")
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    scope: str
    def __init__(self, starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scope: _Optional[str] = ...) -> None: ...

class HoldResult(_message.Message):
    __slots__ = ("outcome", "state", "conflict", "rule", "description")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    outcome: HoldOutcome
    state: ReservationState
    conflict: Conflict
    rule: str
    description: str
    def __init__(self, outcome: _Optional[_Union[HoldOutcome, str]] = ..., state: _Optional[_Union[ReservationState, _Mapping]] = ..., conflict: _Optional[_Union[Conflict, _Mapping]] = ..., rule: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class ConfirmRequest(_message.Message):
    __slots__ = ("admin_id", "expected_version")
    ADMIN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    admin_id: str
    expected_version: int
    def __init__(self, admin_id: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class CheckInRequest(_message.Message):
    __slots__ = ("admin_id", "expected_version")
    ADMIN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    admin_id: str
    expected_version: int
    def __init__(self, admin_id: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class RescheduleRequest(_message.Message):
    __slots__ = ("seat_id", "starts_at", "ends_at", "requested_by", "summary", "expected_version")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    seat_id: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    requested_by: str
    summary: str
    expected_version: int
    def __init__(self, seat_id: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., requested_by: _Optional[str] = ..., summary: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class RescheduleResult(_message.Message):
    __slots__ = ("outcome", "state", "conflict", "rule", "description")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    outcome: HoldOutcome
    state: ReservationState
    conflict: Conflict
    rule: str
    description: str
    def __init__(self, outcome: _Optional[_Union[HoldOutcome, str]] = ..., state: _Optional[_Union[ReservationState, _Mapping]] = ..., conflict: _Optional[_Union[Conflict, _Mapping]] = ..., rule: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("reason", "requested_by")
    REASON_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    reason: str
    requested_by: str
    def __init__(self, reason: _Optional[str] = ..., requested_by: _Optional[str] = ...) -> None: ...

class RetryNotificationRequest(_message.Message):
    __slots__ = ("requested_by",)
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    requested_by: str
    def __init__(self, requested_by: _Optional[str] = ...) -> None: ...

class ReservationState(_message.Message):
    __slots__ = ("reservation_id", "client_id", "seat_id", "coworking_id", "starts_at", "ends_at", "status", "version", "notification_status", "cancel_reason", "checked_in_at", "waiting_for", "hold", "rules", "request_hash", "failed_mails", "hold_expires_at", "fallback")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    COWORKING_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_STATUS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    CHECKED_IN_AT_FIELD_NUMBER: _ClassVar[int]
    WAITING_FOR_FIELD_NUMBER: _ClassVar[int]
    HOLD_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HASH_FIELD_NUMBER: _ClassVar[int]
    FAILED_MAILS_FIELD_NUMBER: _ClassVar[int]
    HOLD_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    client_id: str
    seat_id: str
    coworking_id: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    status: ReservationStatus
    version: int
    notification_status: NotificationStatus
    cancel_reason: str
    checked_in_at: _timestamp_pb2.Timestamp
    waiting_for: str
    hold: HoldResult
    rules: BookingRules
    request_hash: str
    failed_mails: _containers.RepeatedScalarFieldContainer[MailKind]
    hold_expires_at: _timestamp_pb2.Timestamp
    fallback: Slot
    def __init__(self, reservation_id: _Optional[str] = ..., client_id: _Optional[str] = ..., seat_id: _Optional[str] = ..., coworking_id: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[ReservationStatus, str]] = ..., version: _Optional[int] = ..., notification_status: _Optional[_Union[NotificationStatus, str]] = ..., cancel_reason: _Optional[str] = ..., checked_in_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., waiting_for: _Optional[str] = ..., hold: _Optional[_Union[HoldResult, _Mapping]] = ..., rules: _Optional[_Union[BookingRules, _Mapping]] = ..., request_hash: _Optional[str] = ..., failed_mails: _Optional[_Iterable[_Union[MailKind, str]]] = ..., hold_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fallback: _Optional[_Union[Slot, _Mapping]] = ...) -> None: ...

class Slot(_message.Message):
    __slots__ = ("seat_id", "starts_at", "ends_at")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    seat_id: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    def __init__(self, seat_id: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ClaimInput(_message.Message):
    __slots__ = ("reservation_id", "client_id", "seat_id", "starts_at", "ends_at", "version", "now", "reschedule", "requested_by", "request_hash", "keep_fallback")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    RESCHEDULE_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HASH_FIELD_NUMBER: _ClassVar[int]
    KEEP_FALLBACK_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    client_id: str
    seat_id: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    version: int
    now: _timestamp_pb2.Timestamp
    reschedule: bool
    requested_by: str
    request_hash: str
    keep_fallback: bool
    def __init__(self, reservation_id: _Optional[str] = ..., client_id: _Optional[str] = ..., seat_id: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., now: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reschedule: _Optional[bool] = ..., requested_by: _Optional[str] = ..., request_hash: _Optional[str] = ..., keep_fallback: _Optional[bool] = ...) -> None: ...

class ClaimResult(_message.Message):
    __slots__ = ("outcome", "coworking_id", "status", "rules", "conflict", "rule", "description", "seat_id", "starts_at", "ends_at", "version", "hold_expires_at", "fallback")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    COWORKING_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HOLD_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    outcome: HoldOutcome
    coworking_id: str
    status: ReservationStatus
    rules: BookingRules
    conflict: Conflict
    rule: str
    description: str
    seat_id: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    version: int
    hold_expires_at: _timestamp_pb2.Timestamp
    fallback: Slot
    def __init__(self, outcome: _Optional[_Union[HoldOutcome, str]] = ..., coworking_id: _Optional[str] = ..., status: _Optional[_Union[ReservationStatus, str]] = ..., rules: _Optional[_Union[BookingRules, _Mapping]] = ..., conflict: _Optional[_Union[Conflict, _Mapping]] = ..., rule: _Optional[str] = ..., description: _Optional[str] = ..., seat_id: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., hold_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fallback: _Optional[_Union[Slot, _Mapping]] = ...) -> None: ...

class ReleaseInput(_message.Message):
    __slots__ = ("reservation_id", "release_from", "status", "reason", "version", "decided_on")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FROM_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DECIDED_ON_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    release_from: _timestamp_pb2.Timestamp
    status: ReservationStatus
    reason: str
    version: int
    decided_on: ReservationStatus
    def __init__(self, reservation_id: _Optional[str] = ..., release_from: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[_Union[ReservationStatus, str]] = ..., reason: _Optional[str] = ..., version: _Optional[int] = ..., decided_on: _Optional[_Union[ReservationStatus, str]] = ...) -> None: ...

class ReleaseResult(_message.Message):
    __slots__ = ("released", "ahead", "closed")
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    AHEAD_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    released: int
    ahead: ReservationRow
    closed: ReservationRow
    def __init__(self, released: _Optional[int] = ..., ahead: _Optional[_Union[ReservationRow, _Mapping]] = ..., closed: _Optional[_Union[ReservationRow, _Mapping]] = ...) -> None: ...

class ReservationRow(_message.Message):
    __slots__ = ("seat_id", "starts_at", "ends_at", "version", "status", "rules", "hold_expires_at", "fallback")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    HOLD_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    FALLBACK_FIELD_NUMBER: _ClassVar[int]
    seat_id: str
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    version: int
    status: ReservationStatus
    rules: BookingRules
    hold_expires_at: _timestamp_pb2.Timestamp
    fallback: Slot
    def __init__(self, seat_id: _Optional[str] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., status: _Optional[_Union[ReservationStatus, str]] = ..., rules: _Optional[_Union[BookingRules, _Mapping]] = ..., hold_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., fallback: _Optional[_Union[Slot, _Mapping]] = ...) -> None: ...

class LookAtRowRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatusInput(_message.Message):
    __slots__ = ("reservation_id", "status", "at", "version", "decided_on")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DECIDED_ON_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    status: ReservationStatus
    at: _timestamp_pb2.Timestamp
    version: int
    decided_on: ReservationStatus
    def __init__(self, reservation_id: _Optional[str] = ..., status: _Optional[_Union[ReservationStatus, str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., decided_on: _Optional[_Union[ReservationStatus, str]] = ...) -> None: ...

class StatusResult(_message.Message):
    __slots__ = ("changed", "ahead")
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    AHEAD_FIELD_NUMBER: _ClassVar[int]
    changed: bool
    ahead: ReservationRow
    def __init__(self, changed: _Optional[bool] = ..., ahead: _Optional[_Union[ReservationRow, _Mapping]] = ...) -> None: ...

class MailInput(_message.Message):
    __slots__ = ("reservation_id", "kind", "version", "starts_at", "ends_at", "seat_id", "due_at", "cancel_reason", "move_lapsed", "may_give_way", "kept_booking")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTS_AT_FIELD_NUMBER: _ClassVar[int]
    ENDS_AT_FIELD_NUMBER: _ClassVar[int]
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    MOVE_LAPSED_FIELD_NUMBER: _ClassVar[int]
    MAY_GIVE_WAY_FIELD_NUMBER: _ClassVar[int]
    KEPT_BOOKING_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    kind: MailKind
    version: int
    starts_at: _timestamp_pb2.Timestamp
    ends_at: _timestamp_pb2.Timestamp
    seat_id: str
    due_at: _timestamp_pb2.Timestamp
    cancel_reason: str
    move_lapsed: bool
    may_give_way: bool
    kept_booking: bool
    def __init__(self, reservation_id: _Optional[str] = ..., kind: _Optional[_Union[MailKind, str]] = ..., version: _Optional[int] = ..., starts_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ends_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., seat_id: _Optional[str] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_reason: _Optional[str] = ..., move_lapsed: _Optional[bool] = ..., may_give_way: _Optional[bool] = ..., kept_booking: _Optional[bool] = ...) -> None: ...

class MailResult(_message.Message):
    __slots__ = ("sent", "message_id", "duplicate", "stale")
    SENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    sent: bool
    message_id: str
    duplicate: bool
    stale: bool
    def __init__(self, sent: _Optional[bool] = ..., message_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., stale: _Optional[bool] = ...) -> None: ...
