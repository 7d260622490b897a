"""Policies that cannot be evaluated: each is a located, one-line finding and a deny, never an internal error, and
nothing the engine or its process prints (tracebacks included) leaks into a message."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Runner, git
from kfm_gitops import policy
from kfm_gitops.example import FIRST_PLAN

LABELS = ["public", "public_generalized", "internal", "restricted", "restricted_sensitive_location", "embargoed",
          "quarantine"]
SYNTAX_HINT = "fix the Rego at this position; `kfm policy test` checks the policies"
COMPILE_HINT = "fix the Rego here or in another file of the same package; `kfm policy test` checks the policies"


def processing() -> dict[str, Any]:
    return {"label": "public", "vocabulary": {"labels": LABELS}, "obligations": [],
            "license": {"spdx": "CC-BY-4.0"}, "terms": {"digest": "sha256:" + "ab" * 32}}


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def assert_one_line_each(text: str) -> None:
    assert "Traceback" not in text and "File \"" not in text and "%0A" not in text, text


def test_a_policy_that_is_not_utf8_is_a_located_deny(governed: Path, kfm: Runner) -> None:
    (governed / "policies/notes.rego").write_bytes(b"package kfm.processing\n\n# caf\xe9 \xe2\x9c\x93\n")
    r = kfm("policy", "test")
    assert (r.code, r.err) == (1, "")
    assert r.out == ("policies/notes.rego:3:6: POLICY_ENCODING: not UTF-8: byte 0xe9 cannot be decoded "
                     "(invalid continuation byte) (hint: save the file as UTF-8)\n"
                     "no policy case checked: nothing to validate is a failure\n")
    decision, findings = policy.decide(governed, "processing", processing())
    assert not decision.allow and decision.deny == ("POLICY_ERROR",)
    assert [(f.code, str(f.location)) for f in findings] == [("POLICY_ENCODING", "policies/notes.rego:3:6")]


def test_an_unreadable_policy_is_a_deny(governed: Path, kfm: Runner) -> None:
    (governed / "policies/folder.rego").mkdir()
    r = kfm("policy", "test")
    assert r.code == 1
    assert r.out.splitlines()[0] == "policies/folder.rego: POLICY_UNREADABLE: cannot be read: Is a directory"
    decision, findings = policy.decide(governed, "processing", processing())
    assert not decision.allow and [f.code for f in findings] == ["POLICY_UNREADABLE"]


def test_the_bundle_digest_tells_undecodable_policies_apart(governed: Path) -> None:
    bad = governed / "policies/notes.rego"
    bad.write_bytes(b"package kfm.processing\n# \xe9\n")
    first = policy.load_bundle(governed).digest
    bad.write_bytes(b"package kfm.processing\n# \xe8\n")
    assert policy.load_bundle(governed).digest != first


def test_a_backfill_under_an_undecodable_policy_stops_with_a_finding(governed: Path, kfm: Runner) -> None:
    (governed / "policies/notes.rego").write_bytes(b"package kfm.processing\n# \xff\n")
    commit_all(governed, "a policy in latin-1")
    r = kfm("backfill", "run", FIRST_PLAN, "--yes", "--chunk", "2023-01")
    assert r.code == 1, r.out + r.err
    assert "internal error" not in r.err
    assert "policies/notes.rego:2:3: POLICY_ENCODING: not UTF-8: byte 0xff cannot be decoded" in r.err
    assert not (governed / "releases/ks_storm_reports/runs").exists() or \
        not list((governed / "releases/ks_storm_reports/runs").glob("*.2023-01.*"))


def test_an_undecodable_cases_file_is_located(governed: Path, kfm: Runner) -> None:
    (governed / "policies/tests/extra.cases.json").write_bytes(b'[\n  {"name": "caf\xe9"}\n]\n')
    r = kfm("policy", "test")
    assert r.code == 1
    assert "policies/tests/extra.cases.json:2:16: POLICY_CASES_INVALID: not UTF-8: byte 0xe9 cannot be decoded" \
        in r.out


def test_a_cases_file_that_is_not_json_is_located(governed: Path, kfm: Runner) -> None:
    (governed / "policies/tests/extra.cases.json").write_text('[\n  {"name": x}\n]\n')
    r = kfm("policy", "test")
    assert r.code == 1
    assert "policies/tests/extra.cases.json:2:12: POLICY_CASES_INVALID: not JSON: Expecting value" in r.out


DUPLICATE_DEFAULT = "package kfm.processing\n\nimport rego.v1\n\ndefault allow := false\n"


def test_two_defaults_for_one_rule_are_one_line_and_located(governed: Path, kfm: Runner) -> None:
    (governed / "policies/extra.rego").write_text(DUPLICATE_DEFAULT)
    # The engine names one of the two declarations: the default policy's `default allow := false`, line 7.
    expected = f"policies/processing.rego:7:18: POLICY_ERROR: Multiple default rules (hint: {COMPILE_HINT})"
    r = kfm("policy", "test")
    assert (r.code, r.err) == (1, "")
    assert r.out == expected + "\nno policy case checked: nothing to validate is a failure\n"
    r = kfm("policy", "test", "--format", "github")
    assert r.code == 1
    assert r.out.splitlines()[0] == ("::error file=policies/processing.rego,line=7,col=18,title=POLICY_ERROR::"
                                     f"Multiple default rules (hint: {COMPILE_HINT})")
    assert_one_line_each(r.out)
    decision, findings = policy.decide(governed, "processing", processing())
    assert not decision.allow and decision.deny == ("POLICY_ERROR",)
    assert [f.text() for f in findings] == [expected]


def test_a_backfill_under_conflicting_policies_reports_one_line(governed: Path, kfm: Runner) -> None:
    (governed / "policies/extra.rego").write_text(DUPLICATE_DEFAULT)
    commit_all(governed, "a second default")
    r = kfm("backfill", "run", FIRST_PLAN, "--yes", "--chunk", "2023-01")
    assert r.code == 1
    assert_one_line_each(r.out + r.err)
    assert "decode" not in r.err
    assert "  policies/processing.rego:7:18: POLICY_ERROR: Multiple default rules" in r.err.splitlines()[1]


def test_a_syntax_error_after_comments_is_reported_once(governed: Path, kfm: Runner) -> None:
    rego = governed / "policies/processing.rego"
    lines = rego.read_text().count("\n")
    rego.write_text(rego.read_text() + "\nallow if {\n")
    r = kfm("policy", "test")
    assert r.code == 1
    shown = [line for line in r.out.splitlines() if "POLICY_SYNTAX" in line]
    assert shown == [f"policies/processing.rego:{lines + 2}:10: POLICY_SYNTAX: this is unclosed (hint: "
                     f"{SYNTAX_HINT})"]
    _, findings = policy.decide(governed, "processing", processing())
    assert [str(f.location) for f in findings] == [f"policies/processing.rego:{lines + 2}:10"]


def test_two_unclosed_brackets_are_both_reported(governed: Path) -> None:
    (governed / "policies/processing.rego").write_text(
        "package kfm.processing\n\nimport rego.v1\n\nallow if {\n  x := [1,\n")
    _, findings = policy.decide(governed, "processing", processing())
    assert [str(f.location) for f in findings] == ["policies/processing.rego:6:8", "policies/processing.rego:5:10"]


def test_positions_count_characters_after_non_ascii_text(governed: Path) -> None:
    # The engine counts bytes; a column counts characters.
    (governed / "policies/processing.rego").write_text(
        "# café ✓\npackage kfm.processing\n\nimport rego.v1\n\nallow if { \"é\" == [\n")
    _, findings = policy.decide(governed, "processing", processing())
    assert [str(f.location) for f in findings] == ["policies/processing.rego:6:19", "policies/processing.rego:6:10"]


TRACEBACK = 'import json; json.loads("<error>")'


def test_an_engine_traceback_does_not_leak(governed: Path, kfm: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(policy, "ENGINE", (sys.executable, "-c", TRACEBACK))
    decision, findings = policy.decide(governed, "processing", processing())
    assert not decision.allow and decision.deny == ("POLICY_ERROR",)
    assert [f.message for f in findings] == [
        "the policy engine crashed (exit 1): json.decoder.JSONDecodeError: Expecting value: line 1 column 1 (char 0)"]
    r = kfm("policy", "test", "--format", "github")
    assert r.code == 1
    assert_one_line_each(r.out)


@pytest.mark.parametrize("answers", [
    {"answers": [{"ok": False, "error": "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                                        "ValueError: the engine broke\n"}]},
    {"answers": []},
    {"answers": "nothing"},
    ["not", "an", "answer"],
])
def test_an_engine_answer_that_makes_no_sense_is_a_one_line_deny(governed: Path, kfm: Runner,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               answers: Any) -> None:
    script = f"import json, sys; sys.stdin.read(); print(json.dumps({answers!r}))"
    monkeypatch.setattr(policy, "ENGINE", (sys.executable, "-c", script))
    decision, findings = policy.decide(governed, "processing", processing())
    assert not decision.allow and decision.deny == ("POLICY_ERROR",)
    assert len(findings) == 1 and "\n" not in findings[0].message and "Traceback" not in findings[0].message
    r = kfm("policy", "test")
    assert r.code == 1
    assert_one_line_each(r.out + r.err)
    assert "internal error" not in r.err


def test_the_engine_error_line_is_kept(governed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    answer = {"answers": [{"ok": False, "error": "Traceback (most recent call last):\n  File \"x.py\", line 1\n"
                                                 "ValueError: the engine broke\n"}]}
    script = f"import json, sys; sys.stdin.read(); print({json.dumps(json.dumps(answer))})"
    monkeypatch.setattr(policy, "ENGINE", (sys.executable, "-c", script))
    _, findings = policy.decide(governed, "processing", processing())
    assert [(f.code, f.message) for f in findings] == [("POLICY_ERROR", "ValueError: the engine broke")]
