from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload

from proto import reservation_pb2 as pb
from proto.build import HERE, build
from proto.converter import DATA_CONVERTER, PlainJsonIntoMessages


def test_generated_code_is_current(tmp_path: Path) -> None:
    for fresh in build(tmp_path):
        for suffix in (".py", ".pyi"):
            generated = fresh.with_suffix(suffix)
            committed = HERE / generated.name
            assert generated.read_bytes() == committed.read_bytes(), (
                f"{committed.name} is stale: run `make proto`"
            )


def test_payload_reads_as_json_and_tolerates_unknown_fields() -> None:
    state = pb.ReservationState(
        reservation_id="r1", status=pb.RESERVATION_STATUS_CONFIRMED
    )
    state.starts_at.FromDatetime(datetime(2027, 1, 5, 9, 0, tzinfo=UTC))
    text = json_format.MessageToJson(state)
    assert '"status": "RESERVATION_STATUS_CONFIRMED"' in text
    assert '"startsAt": "2027-01-05T09:00:00Z"' in text
    # a payload written by a newer worker with a field we do not know yet
    parsed = json_format.Parse(
        '{"reservationId": "r1", "fieldFromTheFuture": 7}',
        pb.ReservationState(),
        ignore_unknown_fields=True,
    )
    assert parsed.reservation_id == "r1"


def test_converter_decodes_payload_with_unknown_field() -> None:
    from temporalio.api.common.v1 import Payload

    from proto.converter import DATA_CONVERTER

    converter = DATA_CONVERTER.payload_converter
    newer = Payload(
        metadata={
            "encoding": b"json/protobuf",
            "messageType": b"tlounge.reservation.v1.HoldRequest",
        },
        data=b'{"requestHash": "abc", "addedLater": true}',
    )
    [decoded] = converter.from_payloads([newer], [pb.HoldRequest])
    assert decoded == pb.HoldRequest(request_hash="abc")
    [payload] = converter.to_payloads([pb.HoldRequest(request_hash="abc")])
    assert payload.metadata["encoding"] == b"json/protobuf"
    assert payload.data == b'{"requestHash":"abc"}'


def _plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


def test_plain_json_from_the_ui_reads_into_the_message_a_handler_takes() -> None:
    convert = DATA_CONVERTER.payload_converter
    hint = pb.CancelRequest | None
    [got] = convert.from_payloads(
        [_plain('{"reason": "water damage", "requestedBy": "ui", "extra": 1}')], [hint]
    )
    assert got == pb.CancelRequest(reason="water damage", requested_by="ui")
    # `null` is no input to a handler that takes none, and nothing else
    plain = PlainJsonIntoMessages()
    assert plain.from_payload(_plain("null"), hint) is None
    for text in ("null", '"the client phoned"', "[]", '{"reason": 42}', "{"):
        with pytest.raises(RuntimeError, match="^not a CancelRequest"):
            plain.from_payload(_plain(text), pb.CancelRequest)
    for text in ('"the client phoned"', "[]"):
        with pytest.raises(RuntimeError, match="a JSON object is expected"):
            plain.from_payload(_plain(text), hint)


def test_an_input_no_converter_reads_is_passed_on_only_where_no_type_is_asked() -> None:
    from proto.converter import Unreadable

    convert = DATA_CONVERTER.payload_converter
    untyped = Payload(metadata={"encoding": b"json/protobuf"}, data=b"{}")
    unknown = Payload(metadata={"encoding": b"foo/bar"}, data=b"x")
    # valid JSON, past the 4300 digits Python reads into an int
    huge = _plain("9" * 5000)

    assert convert.from_payloads([untyped, _plain('{"a": 1}'), unknown, huge]) == [
        Unreadable("json/protobuf", "Unknown Protobuf type <unknown>"),
        {"a": 1},
        Unreadable("foo/bar", "'Unknown payload encoding foo/bar'"),
        Unreadable(
            "json/plain",
            "Exceeds the limit (4300 digits) for integer string conversion: value"
            " has 5000 digits; use sys.set_int_max_str_digits() to increase the"
            " limit",
        ),
    ]
    # a handler, query or activity that names its type still fails loudly
    with pytest.raises(RuntimeError):
        convert.from_payloads([untyped], [pb.CancelRequest])
    with pytest.raises(KeyError):
        convert.from_payloads([unknown], [pb.CancelRequest])
