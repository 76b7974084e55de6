"""The data converter: protobuf messages as JSON, tolerant of fields it does not know
and of a message sent as plain JSON.

During a rolling deploy a newer worker or API may add a field to a message
that an older worker still decodes; ignoring unknown fields is what makes
"add fields, never renumber" a safe rule.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Sequence
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
    JSONProtoPayloadConverter,
)


def _message_type(type_hint: Any) -> type[Message] | None:
    """The protobuf message a type hint asks for, also as `Message | None`."""
    if isinstance(type_hint, type) and issubclass(type_hint, Message):
        return type_hint
    if typing.get_origin(type_hint) in (typing.Union, types.UnionType):
        found = [_message_type(arg) for arg in typing.get_args(type_hint)]
        return next((kind for kind in found if kind is not None), None)
    return None


class PlainJsonIntoMessages(JSONPlainPayloadConverter):
    """Plain JSON read into the message a handler asks for.

    The Temporal UI sends a signal's input as plain JSON; the default converter
    cannot make a message of it and drops the signal with only a worker log line.
    """

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        message = _message_type(type_hint)
        if message is None:
            return super().from_payload(payload, type_hint)
        name = message.DESCRIPTOR.name
        try:
            data = json.loads(payload.data)
            if data is None and type_hint is not message:
                # `null` for a handler that takes none, as no input at all
                return None
            # a bare string or list would parse as an empty message, and a
            # cancel's reason sent as a string would be lost without a word
            if not isinstance(data, dict):
                raise RuntimeError(f"not a {name}: a JSON object is expected")
            return json_format.ParseDict(data, message(), ignore_unknown_fields=True)
        except (ValueError, json_format.ParseError) as error:
            raise RuntimeError(f"not a {name}: {error}") from error


def _tolerant(converter: EncodingPayloadConverter) -> EncodingPayloadConverter:
    if isinstance(converter, JSONProtoPayloadConverter):
        return JSONProtoPayloadConverter(ignore_unknown_fields=True)
    if isinstance(converter, JSONPlainPayloadConverter):
        return PlainJsonIntoMessages()
    return converter


@dataclasses.dataclass(frozen=True)
class Unreadable:
    """An input no converter could read, passed on so its handler decides.

    Only where the handler names no type, as a signal taking any inputs does:
    there the SDK would drop the whole signal with an error in the worker's log,
    while its sender had been told it went through."""

    encoding: str
    reason: str


class TolerantPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(
            *(
                _tolerant(converter)
                for converter in (
                    DefaultPayloadConverter.default_encoding_payload_converters
                )
            )
        )

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        if type_hints is not None:
            return super().from_payloads(payloads, type_hints)
        values: list[Any] = []
        for payload in payloads:
            try:
                values.extend(super().from_payloads([payload]))
            # whatever the input: JSON past a parser's limits raises ValueError
            except Exception as error:  # noqa: BLE001
                encoding = payload.metadata.get("encoding", b"").decode(
                    errors="replace"
                )
                cause = error.__cause__ or error
                values.append(Unreadable(encoding, str(cause)[:200]))
        return values


DATA_CONVERTER = dataclasses.replace(
    DataConverter.default, payload_converter_class=TolerantPayloadConverter
)
