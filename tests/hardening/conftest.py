"""The reservation scene, shared with the reservation tests."""

from tests.reservations.conftest import scene  # noqa: F401
