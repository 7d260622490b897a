"""The audit ledger: hash-chained JSON lines, appended from the head alone, verified line by line."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kfm_gitops.identity import canonical_json, digest_of
from kfm_gitops.ledger import LedgerError, append_only, head_of, new_line, verify

SHOWN = "releases/ks/ledger.jsonl"


def fields(version: str, event: str = "promotion", **over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "event_type": event, "status": "published", "principal": "rm-lee", "role": "release_manager",
        "created_at": "2023-07-06T12:00:00Z",
        "subject": {"dataset_version_id": version, "evidence_commit": "a" * 40},
        "receipts": [{"run_id": "kfm://run/20230706T120000Z.2023-06.0123abcd", "digest": "sha256:" + "1" * 64}],
        "gates": {g: "passed" for g in "ABCDEFG"}, "policy_decision_id": "sha256:" + "2" * 64,
        "approvals": [{"role": "steward", "principal": "steward-kim"}], "alias_previous": None,
        "supersedes": None, "reason": "first release",
    }
    out.update(over)
    return out


def ledger(*versions: str) -> bytes:
    data = b""
    for v in versions:
        data += new_line(fields(v), head_of(data, SHOWN))
    return data


def test_a_chain_of_three_verifies_and_each_entry_names_the_one_before() -> None:
    data = ledger("2023-06.69a8eb0e.7df9ce5a", "2023-06.69a8eb0e.fbdb57cb", "2023-06.69a8eb0e.7df9ce5a")
    assert verify(data, SHOWN) == (3, [])
    entries = [json.loads(line) for line in data.splitlines()]
    assert [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["prev"] is None
    assert [e["prev"] for e in entries[1:]] == [e["audit_entry_id"] for e in entries[:-1]]
    for e, line in zip(entries, data.splitlines(), strict=True):
        assert canonical_json(e) == line
        assert e["audit_entry_id"] == digest_of({k: v for k, v in e.items() if k != "audit_entry_id"})
    head = head_of(data, SHOWN)
    assert head is not None and (head.seq, head.audit_entry_id) == (3, entries[2]["audit_entry_id"])


def test_an_empty_ledger_has_no_head_and_verifies_empty() -> None:
    assert head_of(b"", SHOWN) is None
    assert verify(b"", SHOWN) == (0, [])


@pytest.mark.parametrize("damage, line, words", [
    (lambda ls: [ls[0], ls[1].replace(b"first release", b"first  release"), ls[2]], 2, "audit_entry_id does not"),
    (lambda ls: [ls[0], ls[2]], 2, "seq is 3, expected 2"),
    (lambda ls: [ls[1], ls[0], ls[2]], 1, "seq is 2, expected 1"),
    (lambda ls: [ls[0], ls[1] + b" ", ls[2]], 2, "not in canonical form"),
    (lambda ls: [ls[0], b"{oops", ls[2]], 2, "not JSON"),
])
def test_the_first_bad_line_is_named(damage: Any, line: int, words: str) -> None:
    good = ledger("2023-06.69a8eb0e.7df9ce5a", "2023-06.69a8eb0e.fbdb57cb", "2023-06.69a8eb0e.307e516a").splitlines()
    bad = b"\n".join(damage(good)) + b"\n"
    n, findings = verify(bad, SHOWN)
    assert n == line - 1
    assert len(findings) == 1
    f = findings[0]
    assert (f.code, f.location and f.location.line) == ("LEDGER_CHAIN", line)
    assert words in f.message


def test_a_rewritten_entry_with_a_recomputed_id_still_breaks_the_chain() -> None:
    good = ledger("2023-06.69a8eb0e.7df9ce5a", "2023-06.69a8eb0e.fbdb57cb").splitlines()
    forged = json.loads(good[0])
    forged["principal"] = "mallory"
    forged["audit_entry_id"] = digest_of({k: v for k, v in forged.items() if k != "audit_entry_id"})
    n, findings = verify(canonical_json(forged) + b"\n" + good[1] + b"\n", SHOWN)
    assert n == 1 and findings[0].location is not None and findings[0].location.line == 2
    assert "prev does not name the entry before it" in findings[0].message


def test_entries_are_refused_with_unknown_or_missing_fields_or_events() -> None:
    with pytest.raises(LedgerError, match="missing: reason"):
        new_line({k: v for k, v in fields("x").items() if k != "reason"}, None)
    with pytest.raises(LedgerError, match="unknown: extra"):
        new_line({**fields("x"), "extra": 1}, None)
    with pytest.raises(LedgerError, match="event_type 'delete'"):
        new_line(fields("x", event="delete"), None)


def test_a_damaged_head_stops_an_append() -> None:
    data = ledger("2023-06.69a8eb0e.7df9ce5a")
    with pytest.raises(LedgerError, match=":1: the newest ledger entry is unreadable"):
        head_of(data.replace(b"rm-lee", b"rm-lea"), SHOWN)


def test_only_appends_are_allowed() -> None:
    one = ledger("2023-06.69a8eb0e.7df9ce5a")
    two = one + new_line(fields("2023-06.69a8eb0e.fbdb57cb"), head_of(one, SHOWN))
    assert append_only(one, two, SHOWN) == []
    assert append_only(b"", two, SHOWN) == []
    edited = two.replace(b"rm-lee", b"rm-lea", 1)
    [f] = append_only(two, edited, SHOWN)
    assert (f.code, f.location and f.location.line) == ("LEDGER_APPEND_ONLY", 1)
    [f] = append_only(two, one, SHOWN)
    assert f.location is not None and f.location.line == 2
