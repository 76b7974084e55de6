"""Histories of the main paths, recorded from earlier versions, must still replay.

A change to the workflow that would break a reservation asleep in production
fails here; such a change needs `workflow.patched`. Record the histories of a
new version with `TLOUNGE_RECORD_HISTORIES=<tag> pytest tests/reservations`.
"""

import asyncio
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from proto.converter import DATA_CONVERTER
from workflows.reservation import ReservationWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_recorded_histories_cover_main_paths() -> None:
    names = {path.stem.rsplit("-", 1)[0].split(".")[0] for path in HISTORIES}
    assert {
        "book_confirmed_reminder_sent_at_start_minus_lead",
        "cancel_before_reminder_releases_seat_and_sends_no_reminder",
        "held_reservation_expires_after_hold_time_and_frees_seat",
        "no_check_in_by_start_plus_grace_ends_no_show_and_frees_rest",
        "check_in_near_start_then_completed_after_end",
        "reschedule_moves_reminder_and_keeps_old_slot_until_new_holds",
        "smtp_refusing_for_good_marks_failed_then_retry_signal_delivers",
        "mail_waits_out_a_database_outage_longer_than_its_retries",
        "confirm_at_the_hold_deadline_answered_200_stays_confirmed",
        "check_in_at_the_grace_deadline_answered_200_is_no_no_show",
        "check_in_at_the_end_is_written_before_completed",
        "cancel_just_after_the_end_leaves_the_reservation_completed",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_replay_recorded_history_is_deterministic(path: Path) -> None:
    recorded = await asyncio.to_thread(path.read_text)
    history = WorkflowHistory.from_json(f"reservation-{path.stem}", recorded)
    # the worker's converter: it reads signals the UI sends as plain JSON
    replayer = Replayer(workflows=[ReservationWorkflow], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(history)
    assert result.replay_failure is None
