"""Policy as code: the default policies and their cases, fail-closed evaluation, and the processing decision and
obligations in a backfill, end to end."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import Runner, git
from kfm_gitops import policy
from kfm_gitops.example import FIRST_PLAN

SLUG = "ks_storm_reports"
LABELS = ["public", "public_generalized", "internal", "restricted", "restricted_sensitive_location", "embargoed",
          "quarantine"]


def processing(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"label": "public", "vocabulary": {"labels": LABELS}, "obligations": [],
                            "license": {"spdx": "CC-BY-4.0"}, "terms": {"digest": "sha256:" + "ab" * 32}}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_kfm_policy_test_passes_on_the_defaults(governed: Path, kfm: Runner) -> None:
    r = kfm("policy", "test")
    assert (r.code, r.out) == (0, "21 policy cases pass\n")
    # The repository's own copy is the package's.
    for rel, data in policy.default_files().items():
        assert (governed / rel).read_bytes() == data


@pytest.mark.parametrize(("changes", "deny"), [
    ({}, ()),
    ({"label": "secret"}, ("UNKNOWN_LABEL",)),
    ({"label": "quarantine"}, ("SENSITIVITY_UNRESOLVED",)),
    ({"label": "public_generalized"}, ("OBLIGATION_MISSING",)),
    ({"license": None}, ("UNKNOWN_LICENSE",)),
    ({"license": {"spdx": "All-Rights-Reserved"}}, ("UNKNOWN_LICENSE",)),
    ({"terms": None}, ("RIGHTS_UNKNOWN",)),
])
def test_each_deny_code_fires_on_its_own_input(governed: Path, changes: dict[str, Any], deny: tuple[str, ...]) -> None:
    decision, findings = policy.decide(governed, "processing", processing(**changes))
    assert findings == []
    assert decision.deny == deny
    assert decision.allow is (not deny)
    assert decision.decision_id.startswith("kfm://policy_decision/")


def test_decisions_are_identified_by_input_and_policies(governed: Path) -> None:
    a, _ = policy.decide(governed, "processing", processing())
    b, _ = policy.decide(governed, "processing", processing())
    c, _ = policy.decide(governed, "processing", processing(label="restricted"))
    assert a.decision_id == b.decision_id != c.decision_id
    rego = governed / "policies/processing.rego"
    rego.write_text(rego.read_text() + "\n# a comment changes the bundle\n")
    d, _ = policy.decide(governed, "processing", processing())
    assert d.bundle_digest != a.bundle_digest and d.decision_id != a.decision_id


def test_promotion_needs_approvals_and_respects_embargoes(governed: Path) -> None:
    base = {**processing(), "required_approvals": [{"role": "steward", "min": 1}],
            "approvals": [{"role": "steward", "principal": "steward-kim"}], "now": "2026-11-25T00:00:00Z"}
    assert policy.decide(governed, "promotion", base)[0].allow
    assert policy.decide(governed, "promotion", {**base, "approvals": []})[0].deny == ("APPROVALS_MISSING",)
    late = {**base, "embargo_until": "2030-01-01T00:00:00Z"}
    assert policy.decide(governed, "promotion", late)[0].deny == ("EMBARGOED",)


def test_a_syntax_error_is_located(governed: Path, kfm: Runner) -> None:
    (governed / "policies/processing.rego").write_text("package kfm.processing\n\nimport rego.v1\n\nallow if {\n")
    r = kfm("policy", "test")
    assert r.code == 1
    assert r.out.splitlines()[0].startswith("policies/processing.rego:5:10: POLICY_SYNTAX: this is unclosed")
    # Once, at the brace: not again at the `package` keyword.
    assert [line for line in r.out.splitlines() if "POLICY_SYNTAX" in line] == [r.out.splitlines()[0]]
    decision, findings = policy.decide(governed, "processing", processing())
    assert not decision.allow and decision.deny == ("POLICY_ERROR",)
    assert [(f.code, str(f.location)) for f in findings] == [("POLICY_SYNTAX", "policies/processing.rego:5:10")]


@pytest.mark.parametrize(("source", "code"), [
    ("package kfm.processing\n\nimport rego.v1\n\ndeny contains \"X\" if false\n", "POLICY_NO_ALLOW"),
    ("package kfm.processing\n\nimport rego.v1\n\ndefault allow := true\n", "POLICY_NO_RULES"),
    ("package kfm.other\n\nimport rego.v1\n\ndefault allow := true\n", "POLICY_NO_RULES"),
])
def test_policies_that_cannot_decide_deny(governed: Path, source: str, code: str) -> None:
    for p in (governed / "policies").glob("*.rego"):
        p.unlink()
    (governed / "policies/only.rego").write_text(source)
    decision, findings = policy.decide(governed, "processing", processing())
    assert not decision.allow
    assert decision.deny == (code,)
    assert findings[0].code == code


def test_no_policy_at_all_denies(governed: Path, kfm: Runner) -> None:
    for p in (governed / "policies").glob("*.rego"):
        p.unlink()
    decision, findings = policy.decide(governed, "processing", processing())
    assert not decision.allow and findings[0].code == "POLICY_EMPTY"
    r = kfm("policy", "test")
    assert r.code == 1 and "POLICY_EMPTY" in r.out


def test_an_engine_crash_fails_closed(governed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crash = f"import os, signal; os.kill(os.getpid(), signal.{signal.SIGSEGV.name})"
    monkeypatch.setattr(policy, "ENGINE", (sys.executable, "-c", crash))
    decision, findings = policy.decide(governed, "processing", processing())
    assert not decision.allow and decision.deny == ("POLICY_ERROR",)
    assert findings[0].code == "POLICY_ENGINE"
    assert f"crashed (signal {int(signal.SIGSEGV)})" in findings[0].message


def test_a_failing_case_is_reported(governed: Path, kfm: Runner) -> None:
    cases = governed / "policies/tests/processing.cases.json"
    data = json.loads(cases.read_text())
    data[0]["deny"] = ["UNKNOWN_LABEL"]
    cases.write_text(json.dumps(data))
    r = kfm("policy", "test")
    assert r.code == 1
    assert "POLICY_TEST_FAILED: public with a licence and terms is allowed: expected deny ['UNKNOWN_LABEL'], got []" \
        in r.out


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def test_an_unknown_licence_quarantines_the_chunks(governed: Path, kfm: Runner) -> None:
    ds = governed / "datasets" / SLUG / "dataset.yaml"
    ds.write_text(ds.read_text().replace("spdx: CC-BY-4.0", "spdx: Proprietary-1.0"))
    commit_all(governed, "an unclear licence")
    r = kfm("backfill", "run", FIRST_PLAN, "--yes", "--chunk", "2023-01")
    assert r.code == 1
    assert "POLICY_DENIED: the processing policy denies this data: UNKNOWN_LICENSE" in r.out
    run = next((governed / "releases" / SLUG / "runs").glob("*.2023-01.*"))
    q = json.loads((run / "quarantine.json").read_text())
    assert q["whole_chunk"] is True and q["reasons"] == ["UNKNOWN_LICENSE"]
    decision = json.loads((run / "policy.json").read_text())
    assert decision["outcome"] == "deny" and decision["deny"] == ["UNKNOWN_LICENSE"]
    receipt = json.loads((run / "receipt.json").read_text())
    assert receipt["policy"]["decision_id"] == decision["decision_id"]
    assert not [o for o in receipt["outputs"] if o.get("role", "").startswith("partition:")]


def run_tightened(governed: Path, kfm: Runner, label: str, obligations: list[str], chunk: str
                  ) -> tuple[dict[str, Any], Any]:
    """The example plan under a tighter label with obligations added, run for one chunk: its receipt, and its
    partition as read back by geopandas (the artifact alone)."""
    import geopandas

    text = (governed / FIRST_PLAN).read_text().replace("policy_label: public", f"policy_label: {label}")
    text = text.replace("  obligations:\n", "  obligations:\n" + "".join(f"    - {o}\n" for o in obligations))
    rel = f"plans/{SLUG}/backfill-20230706-5e5e5e.yml"
    (governed / rel).write_text(text)
    commit_all(governed, "tightened plan")
    r = kfm("backfill", "run", rel, "--yes", "--chunk", chunk)
    assert r.code == 0, r.out + r.err
    run = next((governed / "releases" / SLUG / "runs").glob(f"*.{chunk}.*"))
    receipt: dict[str, Any] = json.loads((run / "receipt.json").read_text())
    digest = next(o["digest"] for o in receipt["outputs"] if o.get("role") == f"partition:{chunk}")
    return receipt, geopandas.read_parquet(governed / ".kfm/objects/sha256" / digest[7:9] / digest[7:])


def test_a_restricted_plan_is_generalised_and_redacted(governed: Path, kfm: Runner) -> None:
    """The example under a tightened label: coordinates rounded to one decimal, injuries removed, counties with
    fewer than 3 reports in a month suppressed; the receipt says so with evidence the output confirms."""
    receipt, df = run_tightened(governed, kfm, "restricted_sensitive_location", [
        '{"type": "generalize_geometry", "params": {"method": "round_1_decimals"}}',
        '{"type": "redact_fields", "params": {"fields": ["injuries"]}}',
        '{"type": "min_count_threshold", "params": {"min_count": 3, "group_by": ["county"]}}'], "2023-01")
    applied = {o["type"]: o for o in receipt["obligations_applied"]}
    assert applied["remove_attributes"]["evidence"] == {"absent": ["injuries"]}
    assert applied["generalize_geometry"]["evidence"]["max_decimals"] <= 1
    smallest = applied["min_count_threshold"]["evidence"]["smallest_group"]
    assert smallest >= 3
    assert applied["require_attribution"]["evidence"] == {"recorded": True}
    # Check the evidence against the artifact alone.
    import numpy as np

    assert "injuries" not in df.columns
    coords = np.column_stack([df.geometry.x, df.geometry.y])
    assert np.all(np.round(coords, 1) == coords)
    counts = df.groupby("county").size()
    assert counts.min() == smallest >= 3
    suppressed = applied["min_count_threshold"]["evidence"]["suppressed_rows"]
    assert len(df) + suppressed == 120
    run = next((governed / "releases" / SLUG / "runs").glob("*.2023-01.*"))
    assert json.loads((run / "qa.json").read_text())["rows"] == {
        "total": 120, "accepted": 120, "quarantined": 0, "other_chunks": 0, "suppressed": suppressed}


def test_grid_aggregation_snaps_every_point_to_a_cell_centre(governed: Path, kfm: Runner) -> None:
    receipt, df = run_tightened(governed, kfm, "public_generalized", [
        '{"type": "generalize_geometry", "params": {"method": "grid_aggregation_10km"}}'], "2023-02")
    (applied,) = [o for o in receipt["obligations_applied"] if o["type"] == "generalize_geometry"]
    cell = 10 / 111.32
    assert applied["evidence"]["off_grid"] == 0
    assert applied["evidence"]["cell_degrees"] == pytest.approx(cell)
    import numpy as np

    steps = (np.column_stack([df.geometry.x, df.geometry.y]) - cell / 2) / cell
    assert np.allclose(steps, np.round(steps), atol=1e-6)  # the evidence holds on the artifact alone
    assert len(np.unique(steps.round(), axis=0)) < len(df)  # reports share cells: precision is gone


@pytest.mark.parametrize("method", ["centroid_only", "bounding_box_only"])
def test_a_method_that_leaves_points_where_they_are_is_refused_for_points(governed: Path, kfm: Runner,
                                                                         method: str) -> None:
    text = (governed / FIRST_PLAN).read_text().replace("policy_label: public", "policy_label: public_generalized")
    text = text.replace("  obligations:\n", "  obligations:\n"
                        f'    - {{"type": "generalize_geometry", "params": {{"method": "{method}"}}}}\n')
    (governed / FIRST_PLAN).write_text(text)
    r = kfm("plan", "validate", FIRST_PLAN)
    assert r.code == 1
    assert (f"{FIRST_PLAN}:27:7: PLAN_OBLIGATION_INAPPLICABLE: {method} leaves a point where it is: it does not "
            "generalise a dataset of points") in r.out


def test_centroid_and_bounding_box_generalise_polygons_with_evidence() -> None:
    import pyarrow as pa
    import shapely

    from kfm_gitops.normalize import bbox_type
    from kfm_gitops.obligations import Obligations

    square = shapely.box(-98.123456, 38.123456, -98.023456, 38.223456)
    for method, expected_type, expected in [("centroid_only", "Point", square.centroid),
                                            ("bounding_box_only", "Polygon", square.envelope)]:
        obl, problems = Obligations.build([{"type": "generalize_geometry", "params": {"method": method}}],
                                          ["id"], "geometry", ("id",), ("Polygon",))
        assert problems == []
        table = pa.table({"id": ["a"], "geometry": pa.array([shapely.to_wkb(square)], pa.binary()),
                          "bbox": pa.array([dict(zip(["xmin", "ymin", "xmax", "ymax"], square.bounds, strict=True))],
                                           bbox_type())})
        out = obl.apply(table)
        assert shapely.from_wkb(out.column("geometry")[0].as_py()).equals(expected)
        (applied,) = obl.evidence(out.column_names)
        assert applied["evidence"]["geometry_types"] == [expected_type]


def test_an_obligation_that_cannot_apply_is_a_finding(governed: Path, kfm: Runner) -> None:
    text = (governed / FIRST_PLAN).read_text().replace(
        "  obligations:\n",
        '  obligations:\n    - {"type": "remove_attributes", "params": {"fields": ["report_id"]}}\n')
    (governed / FIRST_PLAN).write_text(text)
    commit_all(governed, "remove the id")
    r = kfm("backfill", "run", FIRST_PLAN, "--yes", "--chunk", "2023-01")
    assert r.code == 1
    # refused with the plan, at its line, before any chunk runs
    assert (f"{FIRST_PLAN}:27:7: PLAN_OBLIGATION_INAPPLICABLE: remove_attributes cannot remove report_id"
            in r.err)
    assert not (governed / "releases" / "ks_storm_reports" / "runs").exists()
