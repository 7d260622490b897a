"""The audit ledger: `releases/<slug>/ledger.jsonl` on the release branch, one hash-chained entry per event
(promotion, rollback, republish). Append-only: corrections are new entries.

Each line is the RFC 8785 canonical JSON of one entry. ``audit_entry_id`` is the digest of the entry's canonical
JSON without that field; ``prev`` is the previous entry's ``audit_entry_id`` (null for the first), and ``seq``
counts from 1. Editing, removing or reordering any line breaks the chain from that line on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kfm_gitops.errors import KfmError
from kfm_gitops.findings import Finding, Location
from kfm_gitops.identity import canonical_json, digest_of, is_digest

LEDGER_VERSION = "v1"
EVENT_TYPES = ("promotion", "rollback", "republish")
# What the writer supplies; the chain fields (version, seq, prev, id) are the ledger's own.
ENTRY_FIELDS = ("event_type", "status", "principal", "role", "created_at", "subject", "receipts", "gates",
                "policy_decision_id", "approvals", "alias_previous", "supersedes", "reason")
CHAIN_FIELDS = ("kfm_audit_entry_version", "seq", "prev", "audit_entry_id")


class LedgerError(KfmError):
    code = "LEDGER_INVALID"


@dataclass(frozen=True, slots=True)
class Head:
    """The newest entry of a ledger: enough to append the next one without reading the rest."""

    seq: int
    audit_entry_id: str
    entry: Mapping[str, Any]


def entry_id(entry: Mapping[str, Any]) -> str:
    return digest_of({k: v for k, v in entry.items() if k != "audit_entry_id"})


def new_line(fields: Mapping[str, Any], head: Head | None) -> bytes:
    """The line that appends an event after ``head`` (None: the first entry)."""
    unknown = sorted(set(fields) - set(ENTRY_FIELDS))
    missing = [k for k in ENTRY_FIELDS if k not in fields]
    if unknown or missing:
        raise LedgerError(f"a ledger entry needs exactly {', '.join(ENTRY_FIELDS)}; "
                          f"unknown: {', '.join(unknown) or 'none'}, missing: {', '.join(missing) or 'none'}")
    if fields["event_type"] not in EVENT_TYPES:
        raise LedgerError(f"event_type {fields['event_type']!r} is not one of {', '.join(EVENT_TYPES)}")
    entry: dict[str, Any] = {**fields, "kfm_audit_entry_version": LEDGER_VERSION,
                             "seq": head.seq + 1 if head else 1, "prev": head.audit_entry_id if head else None}
    entry["audit_entry_id"] = entry_id(entry)
    return canonical_json(entry) + b"\n"


def last_line(data: bytes) -> bytes | None:
    """The ledger's last line, found from the end: appending never reads the whole history."""
    body = data.rstrip(b"\n")
    if not body:
        return None
    return body[body.rfind(b"\n") + 1:]


def head_of(data: bytes, shown: str) -> Head | None:
    """The newest entry, checked on its own (its id recomputes); None for an empty ledger."""
    line = last_line(data)
    if line is None:
        return None
    n = data.rstrip(b"\n").count(b"\n") + 1
    entry, problem = _parse(line)
    if entry is None or problem:
        raise LedgerError(f"{shown}:{n}: the newest ledger entry is unreadable: {problem or 'not an object'}",
                          hint=f"run `kfm ledger verify` to find the first bad line; never edit {shown} by hand")
    return Head(int(entry["seq"]), str(entry["audit_entry_id"]), entry)


def _parse(line: bytes) -> tuple[dict[str, Any] | None, str]:
    """An entry and what is wrong with it on its own ("" when nothing)."""
    try:
        entry = json.loads(line)
    except ValueError as exc:
        return None, f"not JSON ({exc})"
    if not isinstance(entry, dict):
        return None, "not a JSON object"
    if entry.get("kfm_audit_entry_version") != LEDGER_VERSION:
        return entry, f"kfm_audit_entry_version is not {LEDGER_VERSION!r}"
    missing = [k for k in (*CHAIN_FIELDS, *ENTRY_FIELDS) if k not in entry]
    if missing:
        return entry, f"missing {', '.join(missing)}"
    extra = sorted(set(entry) - {*CHAIN_FIELDS, *ENTRY_FIELDS})
    if extra:
        return entry, f"unknown field(s) {', '.join(extra)}"
    if not isinstance(entry["seq"], int) or isinstance(entry["seq"], bool):
        return entry, "seq is not a whole number"
    if entry["event_type"] not in EVENT_TYPES:
        return entry, f"event_type {entry['event_type']!r} is not one of {', '.join(EVENT_TYPES)}"
    if not is_digest(entry["audit_entry_id"]) or entry["audit_entry_id"] != entry_id(entry):
        return entry, "audit_entry_id does not match the entry (it was edited)"
    if canonical_json(entry) != line:
        return entry, "the line is not in canonical form (it was reformatted or edited)"
    return entry, ""


def verify(data: bytes, shown: str) -> tuple[int, list[Finding]]:
    """Recompute the whole chain; the number of entries, and a finding at the first bad line (nothing after it
    can be trusted, so nothing after it is reported)."""
    if data and not data.endswith(b"\n"):
        data += b"\n"  # a missing final newline is reported below if the last line is otherwise bad
    prev: str | None = None
    lines = data.split(b"\n")[:-1] if data else []
    for n, line in enumerate(lines, start=1):
        entry, problem = _parse(line)
        if entry is not None and not problem:
            if entry["seq"] != n:
                problem = f"seq is {entry['seq']}, expected {n} (a line was removed, inserted or moved)"
            elif entry["prev"] != prev:
                problem = "prev does not name the entry before it (the chain is broken here)"
        if problem:
            return n - 1, [Finding("LEDGER_CHAIN", f"entry {n}: {problem}", Location(shown, n),
                                   hint="the ledger is append-only: restore this line from the release branch's "
                                   "history; corrections are new entries")]
        assert entry is not None
        prev = str(entry["audit_entry_id"])
    return len(lines), []


def append_only(old: bytes, new: bytes, shown: str) -> list[Finding]:
    """A change to a ledger may only add lines at its end."""
    if new.startswith(old) and (not old or old.endswith(b"\n")):
        return []
    old_lines, new_lines = old.split(b"\n"), new.split(b"\n")
    n = next((i for i, (a, b) in enumerate(zip(old_lines, new_lines, strict=False)) if a != b),
             min(len(old_lines), len(new_lines)))
    return [Finding("LEDGER_APPEND_ONLY", f"line {n + 1} of the committed ledger was changed or removed",
                    Location(shown, n + 1), hint="the ledger is append-only: restore the committed lines and add "
                    "a new entry for the correction")]
