"""The data converter: protobuf messages as JSON, tolerant of fields it does not know.

During a rolling deploy a newer worker or API may add a field to a message
that an older worker still decodes; ignoring unknown fields is what makes
"add fields, never renumber" a safe rule.
"""

from __future__ import annotations

import dataclasses

from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONProtoPayloadConverter,
)


class TolerantPayloadConverter(CompositePayloadConverter):
    def __init__(self) -> None:
        super().__init__(
            *(
                JSONProtoPayloadConverter(ignore_unknown_fields=True)
                if isinstance(converter, JSONProtoPayloadConverter)
                else converter
                for converter in (
                    DefaultPayloadConverter.default_encoding_payload_converters
                )
            )
        )


DATA_CONVERTER = dataclasses.replace(
    DataConverter.default, payload_converter_class=TolerantPayloadConverter
)
