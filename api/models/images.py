"""Response shape of a stored photo."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel


class ImagePublic(BaseModel):
    id: UUID
    coworking_id: UUID
    seat_id: UUID | None
    # this API's own stream of the object, the same for as long as it exists
    url: str
    content_type: str
    width: int
    height: int
    size_bytes: int
    position: int
    created_at: datetime
