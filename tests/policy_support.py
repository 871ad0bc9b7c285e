"""Shared helpers of the policy lifecycle tests: candidate policy dirs and signal records."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from signalhub.schema.registry import SchemaRegistry

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
AGREEMENT = "nuisance_report/gemeente/public_order"


def copy_policies(target: Path) -> Path:
    """A copy of the shipped policy directory at ``target``."""
    shutil.copytree(POLICIES, target)
    return target


def add_clear_field(policies_dir: Path, agreement: str, field: str) -> Path:
    """Edit an agreement in a policy copy so it discloses one more field in clear."""
    path = policies_dir / "data" / "agreements.json"
    agreements = json.loads(path.read_text("utf-8"))
    agreements[agreement]["fields"] = sorted([*agreements[agreement]["fields"], field])
    path.write_text(json.dumps(agreements, indent=1), "utf-8")
    return policies_dir


def break_syntax(policies_dir: Path) -> Path:
    rego = policies_dir / "signalhub" / "sharing" / "sharing.rego"
    rego.write_text(rego.read_text("utf-8") + "\nthis is not rego {\n", "utf-8")
    return policies_dir


def add_failing_test(policies_dir: Path) -> Path:
    rego = policies_dir / "signalhub" / "sharing" / "sharing_test.rego"
    rego.write_text(rego.read_text("utf-8") + "\ntest_deny_always_fails if {\n\tfalse\n}\n")
    return policies_dir


def undecided_policy(policies_dir: Path) -> Path:
    """A policy that loads and compiles but leaves every subscription without a decision."""
    shutil.rmtree(policies_dir / "signalhub")
    rego = policies_dir / "signalhub" / "sharing" / "sharing.rego"
    rego.parent.mkdir(parents=True)
    rego.write_text("package signalhub.sharing\n\nimport rego.v1\n\ndefault decisions := {}\n")
    return policies_dir


def nuisance_signal(severity: int = 3, *, source: str = "politie") -> dict[str, Any]:
    """A valid decoded nuisance_report signal with a fresh signal id."""
    now = datetime.now(UTC).replace(microsecond=0)
    return {
        "envelope": {
            "signal_id": str(uuid.uuid4()),
            "signal_type": "nuisance_report",
            "source_agency": source,
            "source_ref": "test",
            "observed_at": now,
            "registered_at": now,
            "schema_version": 1,
        },
        "payload": {
            "subject_bsn": "111222333",
            "subject_name": "Test Persoon",
            "address": "Markt 1, Maastricht",
            "postcode": "6211 CK",
            "category": "noise",
            "severity": severity,
            "reporter_type": "resident",
            "neighbourhood_code": "BU09350101",
            "description": None,
        },
    }


def registry() -> SchemaRegistry:
    return SchemaRegistry.from_dir(ROOT / "schemas")
