"""Property-based fuzzing (hypothesis) of what users and workflows hand kfm: plans, dataset contracts, promotion
manifests and ledgers, each a valid file bent by a few random edits. Whatever the edit: no traceback, no internal
error (exit 3); a refusal is exit 1 with a finding that names the file and, where there is one, the line.

Example counts are bounded for CI (50 per suite); ``KFM_LONG=1`` tries 1000, ``KFM_FUZZ_EXAMPLES=N`` N."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import Runner
from kfm_gitops.example import FIRST_PLAN

SLUG = "ks_storm_reports"
EXAMPLES = int(os.environ.get("KFM_FUZZ_EXAMPLES", "1000" if os.environ.get("KFM_LONG") == "1" else "50"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Values that have broken parsers before: YAML's special forms, huge and odd numbers, dates out of range, anchors,
# tags, unterminated quotes, control characters, paths that leave the repository.
NASTY = ["", "null", "~", "[]", "{}", "-1", "0", "1e999", ".nan", "-.inf", "true", "&a x", "*a", "!!binary eA==",
         "!!python/object/apply:os.system ['true']", "'unterminated", '"\\x"', "\t", "2023-13-45T99:99:99Z",
         "9" * 400, "{a: [", "<<: *a", "../../../etc/passwd", "/etc/shadow", "..", "\x00", "\u202e", "é" * 50,
         "2023-01-01", "2023-01-01T00:00:00Z", "sha256:" + "0" * 64, "- - -", "? x", "%YAML 1.1", "---", "..."]


def edits() -> st.SearchStrategy[list[tuple[str, int, str]]]:
    ops = st.sampled_from(["value", "delete", "duplicate", "insert", "indent"])
    text = st.one_of(st.sampled_from(NASTY), st.text(max_size=30))
    return st.lists(st.tuples(ops, st.integers(min_value=0, max_value=10_000), text), min_size=1, max_size=4)


def bend(source: str, changes: list[tuple[str, int, str]]) -> str:
    """Apply the edits to the lines of a YAML or JSON document."""
    lines = source.splitlines()
    for op, where, text in changes:
        if not lines:
            lines = [text]
            continue
        i = where % len(lines)
        if op == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {text}"
        elif op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "insert":
            lines.insert(i, text)
        else:
            lines[i] = " " * (where % 5) + lines[i].lstrip()
    return "\n".join(lines) + "\n"


def refused_well(code: int, out: str, name: str) -> None:
    assert code in (0, 1), f"exit {code}:\n{out}"
    assert "Traceback" not in out, out
    assert "internal error" not in out.lower(), out
    if code == 1:
        assert re.search(re.escape(name) + r":\d+", out) or f"{name}: " in out, f"no location in:\n{out}"


@FUZZ
@given(changes=edits())
def test_fuzzed_plans_are_refused_with_a_location(governed: Path, kfm: Runner,
                                                  changes: list[tuple[str, int, str]]) -> None:
    original = (governed / FIRST_PLAN).read_text()
    target = governed / "plans" / SLUG / "backfill-20230705-ffffff.yml"
    target.write_text(bend(original, changes), encoding="utf-8", errors="surrogatepass")
    r = kfm("plan", "validate", str(target.relative_to(governed)))
    refused_well(r.code, r.out + r.err, target.name)


@FUZZ
@given(changes=edits(), which=st.sampled_from(["dataset.yaml", "pipeline.yaml"]))
def test_fuzzed_contracts_are_refused_with_a_location(governed: Path, kfm: Runner, changes: list[tuple[str, int, str]],
                                                      which: str) -> None:
    folder = governed / "datasets" / SLUG
    originals = {n: (folder / n).read_text() for n in ("dataset.yaml", "pipeline.yaml")}
    try:
        (folder / which).write_text(bend(originals[which], changes), encoding="utf-8", errors="surrogatepass")
        r = kfm("dataset", "validate", SLUG)
    finally:
        for n, text in originals.items():
            (folder / n).write_text(text)
    refused_well(r.code, r.out + r.err, which)


@pytest.fixture(scope="module")
def manifest_text() -> str:
    return json.dumps({
        "kfm_promotion_manifest_version": "v1", "dataset_slug": SLUG, "dataset_version_id": "2023-06.69a8eb0e.7df9ce5a",
        "spec_hash": "sha256:" + "ab" * 32, "base_dataset_version_id": "", "plan": FIRST_PLAN,
        "artifacts": [{"path": f"processed/{SLUG}/2023-01.parquet", "digest": "sha256:" + "cd" * 32,
                       "media_type": "application/vnd.apache.parquet"}],
        "partitions": [{"partition": "2023-01", "processed": "sha256:" + "cd" * 32, "raw": ["sha256:" + "ef" * 32]}],
        "catalogs": [], "checksums_digest": "sha256:" + "12" * 32, "runs_digest": "sha256:" + "34" * 32,
        "policy": {"label": "public"}, "qa": {"status": "pass"}}, indent=2, sort_keys=True)


@FUZZ
@given(changes=edits())
def test_fuzzed_manifests_are_refused_with_a_location(tmp_path: Path, manifest_text: str,
                                                      changes: list[tuple[str, int, str]]) -> None:
    from kfm_gitops.versions import parse_version

    shown = f"releases/{SLUG}/2023-06.69a8eb0e.7df9ce5a/promotion-manifest.json"
    got = parse_version(tmp_path, bend(manifest_text, changes), shown)
    if isinstance(got, list):
        assert got and all(f.location is not None and f.location.path == shown for f in got), got


def ledger_lines(n: int) -> bytes:
    from kfm_gitops import ledger

    data, head = b"", None
    for i in range(n):
        line = ledger.new_line({
            "event_type": "promotion", "status": "published", "principal": "rm-lee", "role": "release_manager",
            "created_at": f"2026-11-2{i}T00:00:00Z",
            "subject": {"dataset_version_id": "2023-06.69a8eb0e.7df9ce5a", "evidence_commit": "c0ffee" * 6 + "c0ff"},
            "receipts": [], "gates": {}, "policy_decision_id": "kfm://policy_decision/x", "approvals": [],
            "alias_previous": None, "supersedes": None, "reason": ""}, head)
        data += line
        head = ledger.head_of(data, "ledger.jsonl")
    return data


@FUZZ
@given(changes=edits(), flips=st.lists(st.integers(min_value=0, max_value=10_000), max_size=3))
def test_fuzzed_ledgers_name_the_first_bad_line(changes: list[tuple[str, int, str]], flips: list[int]) -> None:
    from kfm_gitops import ledger

    good = ledger_lines(3)
    assert ledger.verify(good, "ledger.jsonl") == (3, [])
    data = bytearray(bend(good.decode(), changes).encode("utf-8", "surrogatepass"))
    for f in flips:
        if data:
            data[f % len(data)] ^= 0x20
    n, findings = ledger.verify(bytes(data), "ledger.jsonl")
    if findings:
        assert len(findings) == 1 and findings[0].code == "LEDGER_CHAIN"
        assert findings[0].location is not None and findings[0].location.line == n + 1
    else:  # the edits kept a valid chain (a value rewritten to what it was): every line counted
        assert n == len(bytes(data).rstrip(b"\n").split(b"\n"))

