"""Policy drafts: seeded from a bundle, edited safely, checked with errors at their lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from signalhub.config import load_settings
from signalhub.console.dlq import MASK, mask_signal
from signalhub.console.drafts import PolicyDraft, locate_problems
from signalhub.errors import PolicyError
from signalhub.policy.bundle import bundle_from_dir
from signalhub.schema.registry import SchemaRegistry


@pytest.fixture
def draft(tmp_path: Path) -> PolicyDraft:
    made = PolicyDraft.for_user(tmp_path, "sam")
    made.seed(bundle_from_dir(load_settings().policies_dir))
    return made


def test_a_seeded_draft_checks_and_its_tests_pass(draft: PolicyDraft) -> None:
    assert "signalhub/sharing/sharing.rego" in draft.files()
    assert draft.check() == []
    results = draft.test()
    assert results
    assert all(ok for _, ok, _ in results)


def test_a_syntax_error_is_placed_at_its_file_and_line(draft: PolicyDraft) -> None:
    lines = draft.read("signalhub/sharing/sharing.rego").split("\n")
    lines.insert(4, "broken_rule if {{ not closed")
    draft.write("signalhub/sharing/sharing.rego", "\r\n".join(lines))
    problems = draft.check()
    assert problems
    assert (problems[0].file, problems[0].line) == ("signalhub/sharing/sharing.rego", 5)
    assert "\r" not in draft.read("signalhub/sharing/sharing.rego")


def test_invalid_json_data_is_placed_at_its_line(draft: PolicyDraft) -> None:
    draft.write("data/agreements.json", '{\n  "a": 1,\n  oops\n}\n')
    problems = draft.check()
    assert [(p.file, p.line) for p in problems] == [("data/agreements.json", 3)]


@pytest.mark.parametrize("name", ["../../etc/passwd.json", "/tmp/x.rego", "notes.txt"])
def test_a_draft_refuses_paths_outside_it(draft: PolicyDraft, name: str) -> None:
    with pytest.raises(PolicyError):
        draft.write(name, "x", create=True)


def test_messages_without_a_location_stay_whole() -> None:
    (problem,) = locate_problems(["the engine exploded"])
    assert (problem.file, problem.line, str(problem)) == (None, None, "the engine exploded")


def test_masking_hides_every_pii_field_and_unknown_fields() -> None:
    registry = SchemaRegistry.from_dir(load_settings().schemas_dir)
    record = {
        "envelope": {"signal_type": "nuisance_report", "signal_id": "s1"},
        "payload": {
            "subject_bsn": "111222333",
            "subject_name": "A. Person",
            "address": "Straat 1",
            "postcode": "6211AB",
            "description": "free text",
            "severity": 3,
            "category": "noise",
            "surprise": "not in the schema",
            "reporter_type": None,
        },
    }
    shown = mask_signal(registry, record)["payload"]
    for name in ("subject_bsn", "subject_name", "address", "postcode", "description", "surprise"):
        assert shown[name] == MASK, name
    assert (shown["severity"], shown["category"], shown["reporter_type"]) == (3, "noise", None)
    unknown = mask_signal(registry, {"envelope": {"signal_type": "x"}, "payload": {"a": "b"}})
    assert unknown["payload"] == {"a": MASK}


def test_dead_letter_view_masks_the_agencys_record_key() -> None:
    """A police registration number, or a BSN an agency keys its records by, stays hidden."""
    registry = SchemaRegistry.from_dir(load_settings().schemas_dir)
    envelope = {
        "signal_id": "s1",
        "signal_type": "nuisance_report",
        "source_agency": "politie",
        "source_ref": "111222333",
        "schema_version": 1,
        "surprise": "not an envelope field",
    }
    shown = mask_signal(registry, {"envelope": envelope, "payload": {}})["envelope"]
    assert (shown["source_ref"], shown["surprise"]) == (MASK, MASK)
    assert shown["source_agency"] == "politie"
    assert shown["signal_id"] == "s1"
