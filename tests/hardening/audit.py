"""Security audit: bandit over our code against judged waivers, then pip-audit.

    python -m tests.hardening.audit [--bandit-only]

Exits non-zero on a bandit finding that no waiver in bandit-waivers.toml
covers, and when pip-audit finds a vulnerability or cannot check a dependency
(it needs the vulnerability service; offline it can check none).
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PACKAGES = ["api", "workflows", "activities", "workers", "proto"]


def bandit_findings() -> list[dict]:
    result = subprocess.run(  # noqa: S603
        [str(BIN / "bandit"), "-q", "-c", "pyproject.toml", "-r", *PACKAGES,
         "-f", "json"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    report = json.loads(result.stdout)
    if report.get("errors"):
        raise RuntimeError(f"bandit could not scan: {report['errors']}")
    return list(report["results"])


def unwaived(findings: list[dict], waivers: list[dict]) -> list[str]:
    """Findings beyond what the waivers cover, one line each."""
    allowed = {(w["test"], w["file"]): int(w["count"]) for w in waivers}
    seen = collections.Counter((f["test_id"], f["filename"]) for f in findings)
    out = []
    for finding in findings:
        key = (finding["test_id"], finding["filename"])
        if seen[key] > allowed.get(key, 0):
            out.append(
                f"{finding['test_id']} {finding['filename']}:{finding['line_number']}"
                f" {finding['issue_text']}"
            )
    return out


def load_waivers() -> list[dict]:
    data = tomllib.loads((ROOT / "bandit-waivers.toml").read_text())
    waivers = list(data.get("waiver", []))
    for waiver in waivers:
        if not str(waiver.get("reason", "")).strip():
            raise ValueError(f"waiver without a reason: {waiver}")
    return waivers


def run_bandit() -> int:
    findings = bandit_findings()
    problems = unwaived(findings, load_waivers())
    print(f"bandit: {len(findings)} findings, {len(problems)} unwaived")  # noqa: T201
    for line in problems:
        print(f"  {line}")  # noqa: T201
    return 1 if problems else 0


def run_pip_audit() -> int:
    result = subprocess.run(  # noqa: S603
        [str(BIN / "pip-audit"), "--local", "--progress-spinner", "off", "-f", "json"],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    try:
        report = json.loads(result.stdout)
    except ValueError:
        print(f"pip-audit: did not run: {result.stderr.strip()[-300:]}")  # noqa: T201
        return 1
    dependencies = report.get("dependencies", [])
    skipped = [d for d in dependencies if "skip_reason" in d]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    print(  # noqa: T201
        f"pip-audit: {len(dependencies)} dependencies, {len(vulnerable)} vulnerable,"
        f" {len(skipped)} not audited"
    )
    for dependency in vulnerable:
        ids = ", ".join(v["id"] for v in dependency["vulns"])
        print(f"  {dependency['name']} {dependency['version']}: {ids}")  # noqa: T201
    if skipped:
        print(f"  e.g. {skipped[0]['skip_reason']}")  # noqa: T201
    return 1 if vulnerable or skipped else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bandit-only", action="store_true")
    args = parser.parse_args()
    failed = run_bandit()
    if not args.bandit_only:
        failed |= run_pip_audit()
    sys.exit(failed)


if __name__ == "__main__":
    main()
