"""The reservations scene, for hostile tests that need real bookings."""

from tests.reservations.conftest import scene  # noqa: F401
