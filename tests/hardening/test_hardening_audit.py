"""Bandit over our code: every finding judged and waived with a reason, or none."""

from tests.hardening.audit import bandit_findings, load_waivers, unwaived


def test_scan_code_with_bandit_no_unwaived_finding() -> None:
    findings = bandit_findings()
    assert unwaived(findings, load_waivers()) == []
    # the scan really ran over our packages
    assert {f["filename"].split("/")[0] for f in findings} >= {"api", "activities"}


def test_check_waivers_new_finding_in_waived_file_fails() -> None:
    waivers = [{"test": "B608", "file": "api/x.py", "count": 1, "reason": "judged"}]
    finding = {"test_id": "B608", "filename": "api/x.py", "line_number": 3,
               "issue_text": "sql"}  # fmt: skip
    assert unwaived([finding], waivers) == []
    assert unwaived([finding, {**finding, "line_number": 9}], waivers) == [
        "B608 api/x.py:3 sql", "B608 api/x.py:9 sql",
    ]  # fmt: skip
    assert all(w["reason"].strip() for w in load_waivers())
